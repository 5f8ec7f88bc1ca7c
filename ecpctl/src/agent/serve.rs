//! The agent at work: one thread per connection (bounded), each request
//! answered in turn. Only ecp challenges and renewal proofs are signed
//! with ecp keys, and only after the decision in [`Agent::decide`].

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecp_agent::key::{fingerprint, p256_signature_blob};
use ecp_agent::proto::{
    identities_answer, parse_identities, sign_response, SessionBind, MAX_MESSAGE_LEN, SESSION_BIND,
    SSH_AGENT_FAILURE, SSH_AGENT_IDENTITIES_ANSWER, SSH_AGENT_SUCCESS,
};
use ecp_agent::{AgentClient, Message, Request};
use ecp_core::challenge::SignedRequest;
use ecp_core::when::unix_now;
use p256::ecdsa::signature::Signer;

use super::ask::Questions;
use super::hostkey::verify_session_signature;
use super::known_hosts::{judge, HostVerdict};
use super::log::AgentLog;
use super::vault::Vault;
use crate::approved::{ApprovedHosts, Target};

/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 64;
/// How long a connection may stay silent between requests.
const IDLE_LIMIT: Duration = Duration::from_secs(120);
const SSH_AGENTC_LOCK: u8 = 22;
const SSH_AGENTC_UNLOCK: u8 = 23;
/// How long the upstream agent may take (it may ask its person too).
const UPSTREAM_WAIT: Duration = Duration::from_secs(120);

pub struct Agent {
    pub vault: Vault,
    pub questions: Questions,
    pub log: AgentLog,
    pub known_hosts: Vec<PathBuf>,
    pub approved_path: PathBuf,
    pub upstream: Option<PathBuf>,
    /// (device, inode) of this program: a client running it is one of
    /// ecpctl's own --agent commands.
    pub own_program: Option<(u64, u64)>,
    /// The ssh programs a peer may run to count as ssh.
    pub ssh_programs: Vec<SshProgram>,
    /// Which server an ssh process connects to (`ssh_target`; tests
    /// put their own here), remembered per process.
    pub target_of: fn(i32, &Path) -> Option<SshTarget>,
    pub targets: Mutex<HashMap<(i32, u64), Option<SshTarget>>>,
}

/// The server an ssh process was started for, as `ssh -G` resolves its
/// command line: the name it looks the host key up by, and the
/// known_hosts files it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub name: String,
    pub known_hosts: Vec<PathBuf>,
}

/// An ssh program this machine trusts to be OpenSSH: root-owned, not
/// writable by others, at a usual place. A peer counts as ssh only when
/// it runs one of these very files (device and inode); the agent never
/// executes what a peer runs (a sandbox's "ssh" would run on the host).
#[derive(Debug, Clone)]
pub struct SshProgram {
    pub id: (u64, u64),
    pub path: PathBuf,
    /// OpenSSH 8.9 or later: it sends session-bind.
    pub binds: bool,
}

/// The trusted ssh programs found now.
pub fn trusted_ssh_programs() -> Vec<SshProgram> {
    let mut found: Vec<SshProgram> = Vec::new();
    for path in ["/usr/bin/ssh", "/bin/ssh", "/usr/local/bin/ssh"] {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let id = (meta.dev(), meta.ino());
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 || found.iter().any(|p| p.id == id) {
            continue;
        }
        let mut version = std::process::Command::new(path);
        version.arg("-V");
        // ssh -V writes to standard error.
        version.stderr(std::process::Stdio::piped());
        let binds = version
            .output()
            .ok()
            .and_then(|out| crate::approved::openssh_version(&String::from_utf8_lossy(&out.stderr)))
            .is_some_and(|v| v >= (8, 9));
        found.push(SshProgram {
            id,
            path: PathBuf::from(path),
            binds,
        });
    }
    found
}

/// How long `ssh -G` may take.
const SSH_CONFIG_WAIT: Duration = Duration::from_secs(5);

/// The server ssh process `pid` (running `program`, a trusted ssh) was
/// started for: `program -G` with the process's arguments, working
/// directory and environment, so that relative paths and `${VAR}` tokens
/// resolve as they did for it.
pub fn ssh_target(pid: i32, program: &Path) -> Option<SshTarget> {
    use std::os::unix::ffi::OsStrExt;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args: Vec<&[u8]> = cmdline.split(|b| *b == 0).skip(1).collect();
    // The NUL after the last argument, not an empty argument.
    if args.last() == Some(&&b""[..]) {
        args.pop();
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let mut command = std::process::Command::new(program);
    command.arg("-G").current_dir(cwd).env_clear();
    for arg in args {
        command.arg(std::ffi::OsStr::from_bytes(arg));
    }
    for pair in environ.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        if let Some(at) = pair.iter().position(|b| *b == b'=') {
            command.env(
                std::ffi::OsStr::from_bytes(&pair[..at]),
                std::ffi::OsStr::from_bytes(&pair[at + 1..]),
            );
        }
    }
    let finished = super::run::run_with_deadline(&mut command, SSH_CONFIG_WAIT, 1 << 20).ok()?;
    if !finished.success {
        return None;
    }
    let value = |key: &str| {
        finished
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(str::to_owned)
    };
    let host = value("hostname")?;
    let port = value("port")?.parse().ok()?;
    let alias = value("hostkeyalias").filter(|a| a != "none");
    let mut known_hosts: Vec<PathBuf> = Vec::new();
    for key in ["userknownhostsfile", "globalknownhostsfile"] {
        if let Some(files) = value(key) {
            // ssh prints them space-separated; a relative piece is half
            // of a path with a space in it, or relative to a directory
            // that is not the user's to vouch for: left out.
            known_hosts.extend(
                files
                    .split_whitespace()
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute()),
            );
        }
    }
    Some(SshTarget {
        name: super::known_hosts::lookup_name(alias.as_deref(), &host, port),
        known_hosts,
    })
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// ecpctl itself (sign, askpass, test-login, renew with --agent):
    /// those commands showed the person what they sign.
    Ecpctl,
    /// A trusted OpenSSH ssh program (`program`: its index) run by process
    /// `pid`; `binds` when it is 8.9 or later, so that the first
    /// session-bind on an agent-forwarding connection is its own.
    Ssh {
        binds: bool,
        pid: i32,
        program: usize,
    },
    Other,
}

/// Where a connection's requests come from, as far as the agent can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// No session-bind (a local program, or ssh older than 8.9).
    Unbound,
    /// ssh forwarded this connection from the server holding `host_key`;
    /// `known_hosts`: the files that name it.
    Forwarded {
        host_key: Vec<u8>,
        known_hosts: Vec<PathBuf>,
    },
    /// ssh's own connection (publickey authentication to a server).
    Local,
    /// The first session-bind did not verify: nothing ecp is signed here.
    Broken(String),
}

impl Agent {
    pub fn serve(self: Arc<Agent>, listener: UnixListener) {
        let active = Arc::new(AtomicUsize::new(0));
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                self.log
                    .warning("too many connections at once: one was closed unanswered");
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let agent = self.clone();
            let active = active.clone();
            std::thread::spawn(move || {
                agent.connection(stream);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    fn connection(&self, mut stream: UnixStream) {
        let Ok(credentials) =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        else {
            return;
        };
        // The socket is the user's alone; root could read the keys anyway.
        let uid = nix::unistd::getuid().as_raw();
        if credentials.uid() != uid && credentials.uid() != 0 {
            self.log.warning(&format!(
                "refused a connection from uid {}",
                credentials.uid()
            ));
            return;
        }
        let mut connection = Connection {
            agent: self,
            peer: self.peer_of(credentials.pid()),
            route: Route::Unbound,
            binds: 0,
            upstream: Upstream::NotYet,
        };
        // A connection that says nothing for this long is closed: idle
        // forwarded channels must not use up the agent's connections.
        let _ = stream.set_read_timeout(Some(IDLE_LIMIT));
        while let Ok(Some(message)) = Message::read_from(&mut stream, MAX_MESSAGE_LEN) {
            let answer = match Request::parse(&message) {
                Ok(request) => connection.answer(request),
                Err(_) => Message::bare(SSH_AGENT_FAILURE),
            };
            if answer.write_to(&mut stream).is_err() {
                break;
            }
        }
    }

    fn peer_of(&self, pid: i32) -> Peer {
        let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/exe")) else {
            return Peer::Other;
        };
        let id = (meta.dev(), meta.ino());
        if self.own_program == Some(id) {
            return Peer::Ecpctl;
        }
        match self.ssh_programs.iter().position(|p| p.id == id) {
            Some(index) => Peer::Ssh {
                binds: self.ssh_programs[index].binds,
                pid,
                program: index,
            },
            None => Peer::Other,
        }
    }

    /// The server ssh process `pid` connects to, worked out once per
    /// process (its start time tells a reused pid apart).
    fn target(&self, pid: i32, program: usize) -> Option<SshTarget> {
        let started = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                // Field 22, counted after the parenthesised command name.
                let after = stat.rsplit_once(')')?.1;
                after.split_whitespace().nth(19)?.parse::<u64>().ok()
            })?;
        let mut targets = self
            .targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = targets.get(&(pid, started)) {
            return known.clone();
        }
        if targets.len() >= 64 {
            targets.clear();
        }
        let target = (self.target_of)(pid, &self.ssh_programs.get(program)?.path);
        targets.insert((pid, started), target.clone());
        target
    }

    /// Whether to sign `request` arriving by `route` from `peer`: Ok with
    /// the approval to remember, if any; Err with the reason to log.
    fn decide(
        &self,
        request: &SignedRequest,
        route: &Route,
        peer: Peer,
    ) -> Result<Option<Target>, String> {
        let challenge = request.challenge();
        let what = match request {
            SignedRequest::Login(_) => "login",
            SignedRequest::Renewal(_) => "renewal",
        };
        let account = format!("{}@{}", challenge.user, challenge.host);
        let now = u64::try_from(unix_now()).unwrap_or(0);
        challenge
            .check_not_expired(now)
            .map_err(|e| format!("refused the {what} of {account}: {e}"))?;
        let came_through = match route {
            Route::Broken(why) => {
                return Err(format!(
                    "refused the {what} of {account}: the connection's session-bind did not verify ({why})"
                ))
            }
            Route::Forwarded {
                host_key,
                known_hosts,
            } => {
                let key = fingerprint(host_key);
                match judge(known_hosts, host_key, challenge.host.as_str()) {
                    HostVerdict::Named => {}
                    HostVerdict::Unreadable(why) => {
                        return Err(format!(
                            "refused the {what} of {account}: cannot read known_hosts whole ({why})"
                        ))
                    }
                    HostVerdict::Revoked => {
                        return Err(format!(
                            "refused the {what} of {account}: it came through a server whose host key {key} is @revoked in known_hosts"
                        ))
                    }
                    HostVerdict::Other { names, hashed } => {
                        let known = match (names.is_empty(), hashed) {
                            (true, 0) => "a key not in your known_hosts".to_owned(),
                            (true, n) => format!("a key known under {n} hashed name(s), none of them {}", challenge.host),
                            (false, _) => format!("the key of {}", names.join(", ")),
                        };
                        return Err(format!(
                            "relay refused: a {what} challenge of {account} (service {}, from {}) arrived through ssh's forwarded connection to the server with host key {key}, {known}: a server may only ask for its own logins",
                            challenge.service,
                            origin(challenge)
                        ));
                    }
                }
                let target = Target::of(challenge, &format!("agent@{key}"));
                let approved = ApprovedHosts::load(&self.approved_path).map_err(|e| e.to_string())?;
                if approved.contains(&target) {
                    self.log.info(&format!(
                        "signed the {what} of {account} for service {} (from {}): on the approved list, forwarded from {} (host key {key})",
                        challenge.service,
                        origin(challenge),
                        challenge.host
                    ));
                    return Ok(None);
                }
                return self
                    .ask(
                        request,
                        &format!(
                            "It came through ssh's forwarded connection to {} (host key {key}, checked against your known_hosts). A yes is remembered in {}.",
                            challenge.host,
                            self.approved_path.display()
                        ),
                    )
                    .map(|()| Some(target));
            }
            Route::Unbound | Route::Local => match peer {
                // ssh 8.9 and later bind every connection they forward
                // with -A before anything else: an ecp request on one
                // they did not came from a server that reached the agent
                // through a socket forwarded some other way (-R).
                Peer::Ssh { binds: true, .. } => {
                    return Err(format!(
                        "refused the {what} of {account}: it came through ssh but not over an agent connection ssh forwarded with -A (no session-bind); forward the agent with -A only"
                    ))
                }
                Peer::Ecpctl => {
                    self.log.info(&format!(
                        "signed the {what} of {account} for service {} (from {}) for ecpctl on this machine",
                        challenge.service,
                        origin(challenge)
                    ));
                    return Ok(None);
                }
                Peer::Ssh { binds: false, .. } => {
                    "It came through ssh older than 8.9, which does not say which server it is connected to: asked every time, never remembered."
                }
                _ => "It came from a program on this machine, or through ssh that did not say which server it is connected to: asked every time, never remembered.",
            },
        };
        self.ask(request, came_through).map(|()| None)
    }

    fn ask(&self, request: &SignedRequest, came_through: &str) -> Result<(), String> {
        let challenge = request.challenge();
        let now = u64::try_from(unix_now()).unwrap_or(0);
        let kind = match request {
            SignedRequest::Login(_) => "a login",
            SignedRequest::Renewal(_) => "a certificate renewal",
        };
        let question = format!(
            "ecp agent: sign {kind} of {}@{}?\n{}\n{came_through}",
            challenge.user,
            challenge.host,
            crate::sign::describe(challenge, now),
        );
        let account = format!("{}@{}", challenge.user, challenge.host);
        match self.questions.confirm(&question) {
            Ok(true) => {
                self.log.info(&format!(
                    "signed {kind} of {account} for service {} (from {}): approved",
                    challenge.service,
                    origin(challenge)
                ));
                Ok(())
            }
            Ok(false) => Err(format!("{kind} of {account}: not approved")),
            Err(e) => Err(format!("{kind} of {account}: {e}")),
        }
    }
}

/// Where the server saw the login come from, for "(from …)".
fn origin(challenge: &ecp_core::Challenge) -> String {
    if challenge.rhost.is_local() {
        format!("{} itself", challenge.host)
    } else {
        challenge.rhost.to_string()
    }
}

struct Connection<'a> {
    agent: &'a Agent,
    peer: Peer,
    route: Route,
    binds: usize,
    upstream: Upstream,
}

/// The connection's own connection to the upstream agent.
enum Upstream {
    NotYet,
    Open {
        client: AgentClient,
        /// A session-bind went up on it: upstream keeps its own view of
        /// the hops (ssh-agent's destination constraints) per connection.
        bound: bool,
    },
    /// It failed after a bind went up: a new, unbound connection would
    /// look local to upstream, so nothing more goes there.
    Gone,
}

impl Connection<'_> {
    fn failure() -> Message {
        Message::bare(SSH_AGENT_FAILURE)
    }

    fn answer(&mut self, request: Request) -> Message {
        match request {
            Request::Identities => {
                let mut identities = self.agent.vault.identities();
                if let Some(Ok(answer)) = self.upstream_call(&Request::Identities) {
                    if answer.kind == SSH_AGENT_IDENTITIES_ANSWER {
                        if let Ok(theirs) = parse_identities(&answer.body) {
                            for identity in theirs {
                                if !identities.iter().any(|(blob, _)| *blob == identity.0) {
                                    identities.push(identity);
                                }
                            }
                        }
                    }
                }
                identities_answer(&identities)
            }
            Request::Sign {
                key_blob,
                data,
                flags,
            } => self.sign(key_blob, data, flags),
            Request::Extension { name, contents } if name == SESSION_BIND => {
                // Upstream keeps its own view of the hops.
                let _ = self.upstream_call(&Request::Extension {
                    name: name.clone(),
                    contents: contents.clone(),
                });
                self.session_bind(&contents)
            }
            // Locking upstream would leave the ecp keys usable: refused,
            // so that `ssh-add -x` does not say the agent is locked.
            Request::Other(message)
                if message.kind == SSH_AGENTC_LOCK || message.kind == SSH_AGENTC_UNLOCK =>
            {
                Self::failure()
            }
            other => match self.upstream_call(&other) {
                Some(Ok(answer)) => answer,
                _ => Self::failure(),
            },
        }
    }

    fn session_bind(&mut self, contents: &[u8]) -> Message {
        self.binds += 1;
        let Ok(bind) = SessionBind::parse(contents) else {
            return Self::failure();
        };
        if self.binds > 1 {
            // Only the first comes from the ssh on this machine; later
            // ones are the server's own words about further hops.
            return Message::bare(SSH_AGENT_SUCCESS);
        }
        let Peer::Ssh {
            binds: true,
            pid,
            program,
        } = self.peer
        else {
            return Message::bare(SSH_AGENT_SUCCESS);
        };
        if let Err(e) = verify_session_signature(&bind.host_key, &bind.session_id, &bind.signature)
        {
            self.agent.log.warning(&format!(
                "a session-bind from ssh did not verify ({e}): nothing ecp is signed on that connection"
            ));
            self.route = Route::Broken(e.to_string());
            return Self::failure();
        }
        if !bind.is_forwarding {
            self.route = Route::Local;
            return Message::bare(SSH_AGENT_SUCCESS);
        }
        // A signature over a session id proves only that the key once
        // signed it: anyone who connects to a server gets one. So the key
        // must be that of the server this ssh was started for; a bind
        // naming another (sent by a server itself, over a socket forwarded
        // some other way than -A) breaks the connection.
        self.route = match self.agent.target(pid, program) {
            None => Route::Broken(format!(
                "cannot tell which server ssh (pid {pid}) connects to"
            )),
            Some(target) => {
                let mut files = self.agent.known_hosts.clone();
                files.extend(target.known_hosts);
                match judge(&files, &bind.host_key, &target.name) {
                    HostVerdict::Named => Route::Forwarded {
                        host_key: bind.host_key,
                        known_hosts: files,
                    },
                    _ => Route::Broken(format!(
                        "the session-bind names host key {}, which known_hosts does not give {}, the server this ssh connects to",
                        fingerprint(&bind.host_key),
                        target.name
                    )),
                }
            }
        };
        if let Route::Broken(why) = &self.route {
            self.agent
                .log
                .warning(&format!("{why}: nothing ecp is signed on that connection"));
        }
        Message::bare(SSH_AGENT_SUCCESS)
    }

    fn sign(&mut self, key_blob: Vec<u8>, data: Vec<u8>, flags: u32) -> Message {
        let own = self.agent.vault.find(&key_blob);
        let request = match SignedRequest::from_signed_bytes(&data) {
            Ok(request) => request,
            Err(e) => {
                if let Some(key) = own {
                    self.agent.log.warning(&format!(
                        "refused to sign {} bytes with ecp key {}: {e}; this agent signs only ecp challenges",
                        data.len(),
                        key.comment
                    ));
                    return Self::failure();
                }
                // Ordinary ssh use of another key: upstream's business.
                return match self.upstream_call(&Request::Sign {
                    key_blob,
                    data,
                    flags,
                }) {
                    Some(Ok(answer)) => answer,
                    _ => Self::failure(),
                };
            }
        };
        if own.is_none() && self.agent.upstream.is_none() {
            return Self::failure();
        }
        let approval = match self.agent.decide(&request, &self.route, self.peer) {
            Ok(approval) => approval,
            Err(why) => {
                self.agent.log.warning(&why);
                return Self::failure();
            }
        };
        let answer = match own {
            Some(key) => {
                let signature: p256::ecdsa::Signature = key.signing.sign(&data);
                sign_response(&p256_signature_blob(&signature))
            }
            // An ssh-agent key used as an ecp key lives upstream: the
            // decision above was made here all the same.
            None => match self.upstream_call(&Request::Sign {
                key_blob,
                data,
                flags,
            }) {
                Some(Ok(answer)) => answer,
                _ => return Self::failure(),
            },
        };
        if let Some(target) = approval {
            self.remember(target);
        }
        answer
    }

    /// Adds a forwarded login approved by a "yes" to the approved list.
    fn remember(&self, target: Target) {
        if let Ok(mut approved) = ApprovedHosts::load(&self.agent.approved_path) {
            if !approved.contains(&target) {
                if let Err(e) = approved.add(target) {
                    self.agent.log.warning(&e.to_string());
                }
            }
        }
    }

    fn upstream_call(
        &mut self,
        request: &Request,
    ) -> Option<Result<Message, ecp_agent::ClientError>> {
        let path = self.agent.upstream.as_ref()?;
        let is_bind = matches!(request, Request::Extension { name, .. } if name == SESSION_BIND);
        if matches!(self.upstream, Upstream::NotYet) {
            match AgentClient::connect(path, UPSTREAM_WAIT) {
                Ok(client) => {
                    self.upstream = Upstream::Open {
                        client,
                        bound: false,
                    }
                }
                Err(_) => {
                    // A bind that could not go up must not be followed by
                    // an unbound connection later.
                    if is_bind {
                        self.upstream = Upstream::Gone;
                    }
                    return None;
                }
            }
        }
        let Upstream::Open { client, bound } = &mut self.upstream else {
            return None;
        };
        let answer = client.call(request);
        if is_bind {
            *bound = true;
        }
        if answer.is_err() {
            self.upstream = if *bound {
                Upstream::Gone
            } else {
                Upstream::NotYet
            };
        }
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::ask::Asker;
    use crate::agent::vault::AgentKey;
    use base64::Engine;
    use ecp_agent::key::p256_key_blob;
    use ecp_core::{Challenge, HostName, RemoteHost, ServiceName, UserName};

    struct Setup {
        dir: tempfile::TempDir,
        agent: Agent,
        host_key: p256::ecdsa::SigningKey,
    }

    /// An agent whose questions go to `answer` (a script answering yes or
    /// no and counting the questions), whose known_hosts names one host
    /// key "web1".
    fn setup(answer: Option<&str>) -> Setup {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let host_key = ecp_core::keyfile::generate_signing_key();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!(
                "web1 ecdsa-sha2-nistp256 {}\n",
                base64::engine::general_purpose::STANDARD
                    .encode(p256_key_blob(host_key.verifying_key()))
            ),
        )
        .unwrap();
        let asker = match answer {
            Some(answer) => {
                let script = dir.path().join("confirm");
                std::fs::write(
                    &script,
                    format!(
                        "#!/bin/sh\necho asked >> '{}'\n{answer}\n",
                        dir.path().join("asked").display()
                    ),
                )
                .unwrap();
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
                Asker::Askpass(script)
            }
            None => Asker::Nobody,
        };
        let (vault, _) = Vault::new(vec![AgentKey::new(
            ecp_core::keyfile::generate_signing_key(),
            "k".into(),
        )]);
        let agent = Agent {
            vault,
            questions: Questions::new(asker),
            log: AgentLog::new(true),
            known_hosts: vec![known_hosts],
            approved_path: dir.path().join("approved_hosts"),
            upstream: None,
            own_program: None,
            ssh_programs: vec![SshProgram {
                id: (0, 0),
                path: PathBuf::from("/nonexistent/ssh"),
                binds: true,
            }],
            targets: Mutex::new(HashMap::new()),
            target_of: |_, _| {
                Some(SshTarget {
                    name: "web1".into(),
                    known_hosts: Vec::new(),
                })
            },
        };
        Setup {
            dir,
            agent,
            host_key,
        }
    }

    impl Setup {
        fn asked(&self) -> usize {
            std::fs::read_to_string(self.dir.path().join("asked"))
                .map(|t| t.lines().count())
                .unwrap_or(0)
        }

        fn forwarded(&self) -> Route {
            Route::Forwarded {
                host_key: p256_key_blob(self.host_key.verifying_key()),
                known_hosts: self.agent.known_hosts.clone(),
            }
        }
    }

    fn login(host: &str, lifetime: u64) -> SignedRequest {
        let now = u64::try_from(unix_now()).unwrap();
        SignedRequest::Login(
            Challenge::unsealed(
                UserName::parse("alice").unwrap(),
                HostName::parse(host).unwrap(),
                ServiceName::parse("sudo").unwrap(),
                RemoteHost::local(),
                1000,
                now,
                lifetime,
            )
            .unwrap(),
        )
    }

    const SSH_9: Peer = Peer::Ssh {
        binds: true,
        pid: 1,
        program: 0,
    };

    #[test]
    fn a_forwarded_challenge_of_its_own_host_is_asked_and_remembered() {
        let s = setup(Some("exit 0"));
        let remember = s
            .agent
            .decide(&login("web1", 300), &s.forwarded(), SSH_9)
            .unwrap();
        assert_eq!(s.asked(), 1);
        let target = remember.expect("a yes to a forwarded request is remembered");
        let mut approved = ApprovedHosts::load(&s.agent.approved_path).unwrap();
        approved.add(target).unwrap();
        // On the list now: signed without a question.
        assert_eq!(
            s.agent
                .decide(&login("web1", 300), &s.forwarded(), SSH_9)
                .unwrap(),
            None
        );
        assert_eq!(s.asked(), 1);
    }

    #[test]
    fn a_relayed_challenge_is_refused_without_asking() {
        let s = setup(Some("exit 0"));
        let refused = s
            .agent
            .decide(&login("db1", 300), &s.forwarded(), SSH_9)
            .unwrap_err();
        assert!(refused.starts_with("relay refused"), "{refused}");
        assert!(refused.contains("the key of web1"), "{refused}");
        assert_eq!(s.asked(), 0);
        // An expired one, or one on a connection whose bind failed, too.
        assert!(s
            .agent
            .decide(&login("web1", 0), &s.forwarded(), SSH_9)
            .is_err());
        assert!(s
            .agent
            .decide(&login("web1", 300), &Route::Broken("bad".into()), SSH_9)
            .is_err());
        assert_eq!(s.asked(), 0);
    }

    #[test]
    fn an_ecp_request_from_new_ssh_without_a_forwarding_bind_is_refused_unasked() {
        // A server reaching the agent through a socket forwarded with -R
        // (ssh sends no bind there) or binding "not forwarding" itself.
        let s = setup(Some("exit 0"));
        for route in [Route::Unbound, Route::Local] {
            let refused = s
                .agent
                .decide(&login("web1", 300), &route, SSH_9)
                .unwrap_err();
            assert!(
                refused.contains("forward the agent with -A only"),
                "{refused}"
            );
        }
        assert_eq!(s.asked(), 0);
    }

    #[test]
    fn without_a_session_bind_the_person_is_asked_every_time_and_nothing_is_remembered() {
        let yes = setup(Some("exit 0"));
        for peer in [
            Peer::Ssh {
                binds: false,
                pid: 1,
                program: 0,
            },
            Peer::Other,
        ] {
            assert_eq!(
                yes.agent.decide(&login("db1", 300), &Route::Unbound, peer),
                Ok(None)
            );
        }
        assert_eq!(yes.asked(), 2);
        let no = setup(Some("exit 1"));
        assert!(no
            .agent
            .decide(&login("web1", 300), &Route::Unbound, Peer::Other)
            .is_err());
        // ecpctl's own commands asked their person already.
        let nobody = setup(None);
        assert_eq!(
            nobody
                .agent
                .decide(&login("web1", 300), &Route::Unbound, Peer::Ecpctl),
            Ok(None)
        );
        assert!(nobody
            .agent
            .decide(&login("web1", 300), &Route::Unbound, Peer::Other)
            .is_err());
    }

    fn bind(host_key: &p256::ecdsa::SigningKey, is_forwarding: bool) -> Vec<u8> {
        let session_id = [9u8; 32];
        let signature: p256::ecdsa::Signature = host_key.sign(&session_id);
        SessionBind {
            host_key: p256_key_blob(host_key.verifying_key()),
            session_id: session_id.to_vec(),
            signature: p256_signature_blob(&signature),
            is_forwarding,
        }
        .to_contents()
    }

    #[test]
    fn only_the_first_session_bind_from_a_new_ssh_counts() {
        let s = setup(None);
        let connection = |peer| Connection {
            agent: &s.agent,
            peer,
            route: Route::Unbound,
            binds: 0,
            upstream: Upstream::NotYet,
        };
        let mut from_ssh = connection(SSH_9);
        assert_eq!(
            from_ssh.session_bind(&bind(&s.host_key, true)).kind,
            SSH_AGENT_SUCCESS
        );
        assert_eq!(from_ssh.route, s.forwarded());
        // The server's own later bind, even one that verifies, changes nothing.
        let other = ecp_core::keyfile::generate_signing_key();
        from_ssh.session_bind(&bind(&other, true));
        assert_eq!(from_ssh.route, s.forwarded());

        // A first bind naming another server than the one this ssh
        // connects to (another server's bind, replayed by the server at
        // the other end of a socket forwarded some other way than -A):
        // nothing ecp is signed on that connection.
        let mut replayed = connection(SSH_9);
        replayed.session_bind(&bind(&other, true));
        assert!(
            matches!(&replayed.route, Route::Broken(why) if why.contains("the server this ssh connects to")),
            "{:?}",
            replayed.route
        );
        assert!(s
            .agent
            .decide(&login("web1", 300), &replayed.route, SSH_9)
            .is_err());

        // From an old ssh or another program, a bind is not believed.
        for peer in [
            Peer::Ssh {
                binds: false,
                pid: 1,
                program: 0,
            },
            Peer::Other,
            Peer::Ecpctl,
        ] {
            let mut c = connection(peer);
            c.session_bind(&bind(&s.host_key, true));
            assert_eq!(c.route, Route::Unbound, "{peer:?}");
        }
        // A bind whose signature does not verify breaks the connection.
        let mut forged = connection(SSH_9);
        let mut contents = bind(&s.host_key, true);
        let last = contents.len() - 2;
        contents[last] ^= 1;
        assert_eq!(forged.session_bind(&contents).kind, SSH_AGENT_FAILURE);
        assert!(matches!(forged.route, Route::Broken(_)));
        // ssh's own (not forwarded) connection is local.
        let mut local = connection(SSH_9);
        local.session_bind(&bind(&s.host_key, false));
        assert_eq!(local.route, Route::Local);
    }
}
