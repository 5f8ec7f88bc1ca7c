//! `mode=agent`: the challenge signed through the ssh agent of the person
//! who runs the command (for sudo inside an ssh session: the agent sshd
//! forwarded from the user's own machine, found by SSH_AUTH_SOCK).
//!
//! The module runs as root, and SSH_AUTH_SOCK is the user's text: it
//! could name another user's agent, or a socket only root can reach. So
//! the agent is used only for the invoking user's own login, the socket
//! must belong to that user and is reached with the user's file-system
//! identity, and the process answering must run as the user. What the
//! agent says is bounded in size and time, and its signature is checked
//! against the key before ecpd sees it.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ecp_agent::key::parse_p256_key_blob;
use ecp_agent::{AgentClient, ClientError};
use nix::unistd::User;
use p256::ecdsa::{Signature, VerifyingKey};

use ecp_core::user_files::as_user;

/// Why the agent cannot sign this login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentProblem {
    /// No agent of the user's to ask: SSH_AUTH_SOCK unset, nothing at the
    /// path, nothing listening, something there that is not the user's
    /// socket (a stale path another user took over), or no key the user
    /// may sign with. `mode=auto` goes on without the agent.
    Absent(String),
    /// An agent that must not or cannot be used: the login fails.
    Refused(String),
}

impl AgentProblem {
    pub fn message(&self) -> &str {
        match self {
            AgentProblem::Absent(m) | AgentProblem::Refused(m) => m,
        }
    }
}

/// The account of the person running the program: the real uid, or for
/// a process whose real uid is root, the PAM_RUSER its (root) application
/// set (sudo and su set it to the invoking user).
pub fn invoking_account(ruser: &str) -> Result<User, String> {
    let ruid = nix::unistd::getuid();
    let found = if !ruid.is_root() {
        User::from_uid(ruid)
    } else if !ruser.is_empty() {
        User::from_name(ruser)
    } else {
        User::from_uid(ruid)
    };
    match found {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(format!(
            "the invoking user (uid {ruid}, PAM_RUSER \"{ruser}\") has no account"
        )),
        Err(e) => Err(format!("cannot look up the invoking user: {e}")),
    }
}

/// A connection to the agent at `socket`, made as `account` and checked
/// to be `account`'s own.
pub fn connect(
    account: &User,
    socket: Option<&std::ffi::OsStr>,
    timeout: Duration,
) -> Result<AgentClient, AgentProblem> {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Err(AgentProblem::Absent(
            "no agent: SSH_AUTH_SOCK is not set (forward your ecp agent: ssh -A)".into(),
        ));
    };
    let path = Path::new(socket);
    if !path.is_absolute() {
        return Err(AgentProblem::Refused(format!(
            "SSH_AUTH_SOCK ({}) is not an absolute path",
            path.display()
        )));
    }
    let name = &account.name;
    let stream = as_user(account, || -> Result<UnixStream, AgentProblem> {
        let meta = match path.symlink_metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(AgentProblem::Absent(format!(
                    "no agent at {} (SSH_AUTH_SOCK): is it still running, and forwarded (ssh -A)?",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(AgentProblem::Refused(format!(
                    "cannot reach {} (SSH_AUTH_SOCK) as {name}: {e}",
                    path.display()
                )))
            }
        };
        if !meta.file_type().is_socket() {
            return Err(AgentProblem::Absent(format!(
                "{} (SSH_AUTH_SOCK) is not a socket",
                path.display()
            )));
        }
        if meta.uid() != account.uid.as_raw() {
            return Err(AgentProblem::Absent(format!(
                "{} (SSH_AUTH_SOCK) belongs to uid {}, not to {name}: only your own agent signs for you",
                path.display(),
                meta.uid()
            )));
        }
        UnixStream::connect(path).map_err(|e| match e.kind() {
            ErrorKind::ConnectionRefused | ErrorKind::NotFound => AgentProblem::Absent(format!(
                "no agent answers at {} (SSH_AUTH_SOCK): it has stopped, or the ssh session that forwarded it has ended",
                path.display()
            )),
            _ => AgentProblem::Refused(format!(
                "cannot connect to {} (SSH_AUTH_SOCK) as {name}: {e}",
                path.display()
            )),
        })
    })?;
    // The path was checked, but what answers is what counts: a process
    // of the user's own (the forwarding sshd session, or their agent).
    let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| {
            AgentProblem::Refused(format!("cannot tell who answers at SSH_AUTH_SOCK: {e}"))
        })?;
    if peer.uid() != account.uid.as_raw() {
        return Err(AgentProblem::Refused(format!(
            "the agent at {} (SSH_AUTH_SOCK) runs as uid {}, not as {name}",
            path.display(),
            peer.uid()
        )));
    }
    Ok(AgentClient::over(stream, timeout))
}

/// The first of the agent's keys that may sign for the user (`allowed`:
/// SubjectPublicKeyInfo DER, as ecpd's SigningKeys gives them).
pub fn choose_key(
    client: &mut AgentClient,
    allowed: &[Vec<u8>],
    user: &str,
) -> Result<VerifyingKey, AgentProblem> {
    use p256::pkcs8::DecodePublicKey;
    let identities = client
        .identities()
        .map_err(|e| AgentProblem::Refused(format!("the agent cannot list its keys: {e}")))?;
    let allowed: Vec<VerifyingKey> = allowed
        .iter()
        .filter_map(|der| VerifyingKey::from_public_key_der(der).ok())
        .collect();
    let count = identities.len();
    identities
        .iter()
        .filter_map(|(blob, _)| parse_p256_key_blob(blob).ok())
        .find(|key| allowed.contains(key))
        .ok_or_else(|| {
            AgentProblem::Absent(format!(
                "none of the {count} keys in your agent may sign for {user} (an ecp key must be enrolled, or in the directory)"
            ))
        })
}

/// The agent's signature over `data` with `key`, checked against `key`.
pub fn sign(
    client: &mut AgentClient,
    key: &VerifyingKey,
    data: &[u8],
) -> Result<Signature, AgentProblem> {
    client.sign_p256(key, data).map_err(|e| {
        AgentProblem::Refused(match e {
            ClientError::Refused => {
                "your agent refused to sign (not approved, or a challenge for another host than the one it forwards to)"
                    .to_owned()
            }
            other => format!("the agent could not sign: {other}"),
        })
    })
}
