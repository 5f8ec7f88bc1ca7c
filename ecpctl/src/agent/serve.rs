//! The agent at work: one thread per connection (bounded), each request
//! answered in turn. Only ecp challenges and renewal proofs are signed
//! with ecp keys, and only after the decision in [`Agent::decide`].

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
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

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 64;
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
    /// Whether each ssh program seen is OpenSSH 8.9 or later.
    pub ssh_versions: Mutex<HashMap<PathBuf, bool>>,
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// ecpctl itself (sign, askpass, test-login, renew with --agent):
    /// those commands showed the person what they sign.
    Ecpctl,
    /// OpenSSH's ssh; `binds` when it is 8.9 or later, so that the first
    /// session-bind on the connection is its own.
    Ssh {
        binds: bool,
    },
    Other,
}

/// Where a connection's requests come from, as far as the agent can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// No session-bind (a local program, or ssh older than 8.9).
    Unbound,
    /// ssh forwarded this connection from the server holding `host_key`.
    Forwarded { host_key: Vec<u8> },
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
            upstream: None,
        };
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
        let exe = format!("/proc/{pid}/exe");
        let Ok(meta) = std::fs::metadata(&exe) else {
            return Peer::Other;
        };
        if self.own_program == Some((meta.dev(), meta.ino())) {
            return Peer::Ecpctl;
        }
        let Ok(path) = std::fs::read_link(&exe) else {
            return Peer::Other;
        };
        if path.file_name().is_none_or(|n| n != "ssh") {
            return Peer::Other;
        }
        let mut versions = self
            .ssh_versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let binds = *versions.entry(path.clone()).or_insert_with(|| {
            std::process::Command::new(&path)
                .arg("-V")
                .output()
                .ok()
                .and_then(|out| {
                    crate::approved::openssh_version(&String::from_utf8_lossy(&out.stderr))
                })
                .is_some_and(|v| v >= (8, 9))
        });
        Peer::Ssh { binds }
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
            Route::Forwarded { host_key } => {
                let key = fingerprint(host_key);
                match judge(&self.known_hosts, host_key, challenge.host.as_str()) {
                    HostVerdict::Named => {}
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
                Peer::Ecpctl => {
                    self.log.info(&format!(
                        "signed the {what} of {account} for service {} (from {}) for ecpctl on this machine",
                        challenge.service,
                        origin(challenge)
                    ));
                    return Ok(None);
                }
                Peer::Ssh { binds: false } => {
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

fn origin(challenge: &ecp_core::Challenge) -> String {
    if challenge.rhost.is_local() {
        "a local login".to_owned()
    } else {
        challenge.rhost.to_string()
    }
}

struct Connection<'a> {
    agent: &'a Agent,
    peer: Peer,
    route: Route,
    binds: usize,
    upstream: Option<AgentClient>,
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
        if self.peer != (Peer::Ssh { binds: true }) {
            return Message::bare(SSH_AGENT_SUCCESS);
        }
        match verify_session_signature(&bind.host_key, &bind.session_id, &bind.signature) {
            Ok(()) => {
                self.route = if bind.is_forwarding {
                    Route::Forwarded {
                        host_key: bind.host_key,
                    }
                } else {
                    Route::Local
                };
                Message::bare(SSH_AGENT_SUCCESS)
            }
            Err(e) => {
                self.agent.log.warning(&format!(
                    "a session-bind from ssh did not verify ({e}): nothing ecp is signed on that connection"
                ));
                self.route = Route::Broken(e.to_string());
                Self::failure()
            }
        }
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
        if self.upstream.is_none() {
            self.upstream = AgentClient::connect(path, UPSTREAM_WAIT).ok();
        }
        let answer = self.upstream.as_mut()?.call(request);
        if answer.is_err() {
            self.upstream = None;
        }
        Some(answer)
    }
}
