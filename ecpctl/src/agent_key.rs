//! A key held by an ssh agent (the ecp agent, OpenSSH's ssh-agent,
//! gpg-agent, a TPM- or token-backed agent) used as an ecp key: `--agent`.
//! Any ecdsa-sha2-nistp256 key will do; the agent signs the exact bytes,
//! and each signature is checked against the key before it is used.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ecp_agent::key::{fingerprint, parse_p256_key_blob};
use ecp_agent::AgentClient;
use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use p256::pkcs8::spki;

use crate::failure::Failure;

/// How long the agent may take: it may ask its person first.
const AGENT_WAIT: Duration = Duration::from_secs(120);

/// The agent to use: ECP_AUTH_SOCK (the ecp agent), else SSH_AUTH_SOCK.
pub fn agent_socket() -> Result<PathBuf, Failure> {
    ["ECP_AUTH_SOCK", "SSH_AUTH_SOCK"]
        .iter()
        .find_map(|name| std::env::var_os(name).filter(|v| !v.is_empty()))
        .map(PathBuf::from)
        .ok_or_else(|| {
            Failure::Agent(
                "neither ECP_AUTH_SOCK nor SSH_AUTH_SOCK is set: start one with `eval \"$(ecpctl agent)\"`".into(),
            )
        })
}

/// Which of the agent's keys to use.
pub enum Wanted<'a> {
    /// One of these keys (a certificate's, or those ecpd lets sign).
    OneOf(&'a [VerifyingKey]),
    /// The key whose OpenSSH fingerprint (SHA256:…) or comment is this;
    /// with None, the agent's only P-256 key.
    Named(Option<&'a str>),
}

pub struct AgentKey {
    client: Mutex<AgentClient>,
    public: VerifyingKey,
    description: String,
}

impl AgentKey {
    pub fn open(wanted: Wanted<'_>) -> Result<AgentKey, Failure> {
        let socket = agent_socket()?;
        let mut client =
            AgentClient::connect(&socket, AGENT_WAIT).map_err(|e| Failure::Agent(e.to_string()))?;
        let identities = client
            .identities()
            .map_err(|e| Failure::Agent(format!("cannot list the agent's keys: {e}")))?;
        let p256: Vec<(VerifyingKey, String, String)> = identities
            .iter()
            .filter_map(|(blob, comment)| {
                let key = parse_p256_key_blob(blob).ok()?;
                Some((key, fingerprint(blob), comment.clone()))
            })
            .collect();
        let chosen = match wanted {
            Wanted::OneOf(keys) => p256.iter().find(|(k, _, _)| keys.contains(k)).ok_or_else(|| {
                Failure::Agent(format!(
                    "none of the agent's {} ecdsa-sha2-nistp256 keys (of {} keys at {}) is the one wanted{}",
                    p256.len(),
                    identities.len(),
                    socket.display(),
                    if keys.is_empty() { ": ecpd lists no key that may sign for this user" } else { "" }
                ))
            })?,
            Wanted::Named(Some(name)) => {
                let found: Vec<_> = p256
                    .iter()
                    .filter(|(_, fp, comment)| fp == name || comment == name)
                    .collect();
                match found.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(Failure::Agent(format!(
                            "the agent at {} has no ecdsa-sha2-nistp256 key with fingerprint or comment {name:?}",
                            socket.display()
                        )))
                    }
                    _ => {
                        return Err(Failure::Agent(format!(
                            "several agent keys are called {name:?}: name one by its SHA256: fingerprint"
                        )))
                    }
                }
            }
            Wanted::Named(None) => match p256.as_slice() {
                [one] => one,
                [] => {
                    return Err(Failure::Agent(format!(
                        "the agent at {} holds no ecdsa-sha2-nistp256 key ({} keys of other types); add one with `ssh-add` (ssh-keygen -t ecdsa -b 256)",
                        socket.display(),
                        identities.len()
                    )))
                }
                several => {
                    return Err(Failure::Agent(format!(
                        "the agent holds {} ecdsa-sha2-nistp256 keys: choose one ({})",
                        several.len(),
                        several
                            .iter()
                            .map(|(_, fp, comment)| format!("{fp} {comment}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    )))
                }
            },
        };
        let (public, fp, comment) = chosen.clone();
        Ok(AgentKey {
            client: Mutex::new(client),
            public,
            description: format!("{fp} {comment}"),
        })
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The agent's signature over `message`, checked against the key.
    pub fn sign_message(&self, message: &[u8]) -> Result<Signature, Failure> {
        let mut client = self
            .client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        client.sign_p256(&self.public, message).map_err(|e| match e {
            ecp_agent::ClientError::Refused => Failure::Agent(
                "the agent refused to sign (not approved there, or it signs only ecp challenges)".into(),
            ),
            other => Failure::Agent(other.to_string()),
        })
    }
}

impl p256::ecdsa::signature::Keypair for AgentKey {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        self.public
    }
}

impl spki::SignatureAlgorithmIdentifier for AgentKey {
    type Params = spki::der::AnyRef<'static>;

    const SIGNATURE_ALGORITHM_IDENTIFIER: spki::AlgorithmIdentifier<Self::Params> =
        <Signature as spki::AssociatedAlgorithmIdentifier>::ALGORITHM_IDENTIFIER;
}

impl p256::ecdsa::signature::Signer<DerSignature> for AgentKey {
    fn try_sign(&self, message: &[u8]) -> Result<DerSignature, p256::ecdsa::signature::Error> {
        self.sign_message(message)
            .map(|s| s.to_der())
            .map_err(p256::ecdsa::signature::Error::from_source)
    }
}
