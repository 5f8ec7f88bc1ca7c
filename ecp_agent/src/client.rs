//! A client of an ssh agent: list its keys, ask it to sign. Every request
//! has one deadline for the whole answer (a peer dripping a byte at a
//! time does not stretch it) and answers are capped in size: the PAM
//! module talks through this to a socket its user controls.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use p256::ecdsa::{Signature, VerifyingKey};

use crate::key::{parse_p256_signature_blob, KeyBlobError};
use crate::proto::{
    parse_identities, parse_sign_response, Message, ProtoError, Request, SSH_AGENT_FAILURE,
    SSH_AGENT_IDENTITIES_ANSWER, SSH_AGENT_SIGN_RESPONSE, SSH_AGENT_SUCCESS,
};

/// The largest answer read from an agent: a list of keys fits with room
/// to spare, and nothing an agent says is kept beyond the call.
pub const MAX_ANSWER_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("the agent did not answer within {0} seconds")]
    Timeout(u64),
    #[error("the agent closed the connection")]
    Closed,
    #[error("the agent refused")]
    Refused,
    #[error("the agent sent an unexpected answer (message type {0})")]
    Unexpected(u8),
    #[error("the agent's answer is unusable: {0}")]
    Protocol(#[from] ProtoError),
    #[error("the agent's signature is unusable: {0}")]
    Signature(#[from] KeyBlobError),
    #[error("the agent's signature does not verify with the key it was asked to use")]
    WrongSignature,
}

pub struct AgentClient {
    stream: UnixStream,
    timeout: Duration,
}

impl AgentClient {
    pub fn connect(path: &Path, timeout: Duration) -> Result<AgentClient, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        Ok(AgentClient::over(stream, timeout))
    }

    /// A client over a connection made elsewhere (the PAM module connects
    /// with the user's file-system identity).
    pub fn over(stream: UnixStream, timeout: Duration) -> AgentClient {
        AgentClient { stream, timeout }
    }

    /// One request, one answer, within the deadline.
    pub fn call(&mut self, request: &Request) -> Result<Message, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut timed = Deadline {
            stream: &self.stream,
            deadline,
            secs: self.timeout.as_secs(),
        };
        request
            .to_message()
            .write_to(&mut timed)
            .map_err(|e| timed.explain(e))?;
        match Message::read_from(&mut timed, MAX_ANSWER_LEN) {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err(ClientError::Closed),
            Err(e) => Err(timed.explain(e)),
        }
    }

    /// The agent's keys: (key blob, comment).
    pub fn identities(&mut self) -> Result<Vec<(Vec<u8>, String)>, ClientError> {
        let answer = self.call(&Request::Identities)?;
        match answer.kind {
            SSH_AGENT_IDENTITIES_ANSWER => Ok(parse_identities(&answer.body)?),
            SSH_AGENT_FAILURE => Err(ClientError::Refused),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// The raw signature blob the agent makes over `data` with `key_blob`.
    pub fn sign_blob(&mut self, key_blob: &[u8], data: &[u8]) -> Result<Vec<u8>, ClientError> {
        let answer = self.call(&Request::Sign {
            key_blob: key_blob.to_vec(),
            data: data.to_vec(),
            flags: 0,
        })?;
        match answer.kind {
            SSH_AGENT_SIGN_RESPONSE => Ok(parse_sign_response(&answer.body)?),
            SSH_AGENT_FAILURE => Err(ClientError::Refused),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// An ECDSA P-256 signature over `data` by `key`, checked against
    /// `key` before it is returned: a confused or hostile agent's answer
    /// never travels on.
    pub fn sign_p256(&mut self, key: &VerifyingKey, data: &[u8]) -> Result<Signature, ClientError> {
        let blob = self.sign_blob(&crate::key::p256_key_blob(key), data)?;
        let signature = parse_p256_signature_blob(&blob)?;
        ecp_core::verify::p256_sha256(key, data, &signature)
            .map_err(|_| ClientError::WrongSignature)?;
        Ok(signature)
    }

    /// Sends an extension request; true for SUCCESS.
    pub fn extension(&mut self, name: &str, contents: &[u8]) -> Result<Message, ClientError> {
        self.call(&Request::Extension {
            name: name.to_owned(),
            contents: contents.to_vec(),
        })
    }

    /// Whether the agent answered SUCCESS to an extension request.
    pub fn extension_succeeded(answer: &Message) -> bool {
        answer.kind == SSH_AGENT_SUCCESS
    }
}

/// The stream with every read and write bounded by one deadline.
struct Deadline<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
    secs: u64,
}

impl Deadline<'_> {
    fn remaining(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }

    fn explain(&self, error: ProtoError) -> ClientError {
        match error {
            ProtoError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                ClientError::Timeout(self.secs)
            }
            ProtoError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                ClientError::Closed
            }
            other => ClientError::Protocol(other),
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.remaining()?))?;
        (&*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    /// send(2) with MSG_NOSIGNAL: an agent that went away must not raise
    /// SIGPIPE in the process the client runs in (sudo, a screen locker),
    /// whatever the Rust version's own write does.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        self.stream.set_write_timeout(Some(self.remaining()?))?;
        nix::sys::socket::send(
            self.stream.as_raw_fd(),
            buf,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        )
        .map_err(std::io::Error::from)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{p256_key_blob, p256_signature_blob};
    use crate::proto::{identities_answer, sign_response, MAX_MESSAGE_LEN};
    use p256::ecdsa::signature::Signer;

    /// An agent on one end of a socket pair that answers each request
    /// with `answer(request)` (raw bytes).
    fn fake_agent(
        answer: impl Fn(Request) -> Vec<u8> + Send + 'static,
    ) -> (UnixStream, std::thread::JoinHandle<()>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let handle = std::thread::spawn(move || {
            let mut theirs = theirs;
            while let Ok(Some(message)) = Message::read_from(&mut theirs, MAX_MESSAGE_LEN) {
                let reply = answer(Request::parse(&message).unwrap());
                if theirs.write_all(&reply).is_err() {
                    break;
                }
            }
        });
        (ours, handle)
    }

    #[test]
    fn lists_keys_and_checks_signatures_against_the_key() {
        let key = ecp_core::keyfile::generate_signing_key();
        let other = ecp_core::keyfile::generate_signing_key();
        let public = *key.verifying_key();
        let (stream, _agent) = fake_agent(move |request| match request {
            Request::Identities => {
                identities_answer(&[(p256_key_blob(&public), "k".into())]).to_bytes()
            }
            // Signs with the wrong key when asked about "wrong".
            Request::Sign { data, .. } if data == b"wrong" => {
                let s: Signature = other.sign(&data);
                sign_response(&p256_signature_blob(&s)).to_bytes()
            }
            Request::Sign { data, .. } => {
                let s: Signature = key.sign(&data);
                sign_response(&p256_signature_blob(&s)).to_bytes()
            }
            _ => Message::bare(SSH_AGENT_FAILURE).to_bytes(),
        });
        let mut client = AgentClient::over(stream, Duration::from_secs(5));
        let ids = client.identities().unwrap();
        assert_eq!(ids, vec![(p256_key_blob(&public), "k".to_owned())]);
        client.sign_p256(&public, b"data").unwrap();
        assert!(matches!(
            client.sign_p256(&public, b"wrong"),
            Err(ClientError::WrongSignature)
        ));
    }

    #[test]
    fn slow_oversized_and_garbage_answers_fail() {
        let key = ecp_core::keyfile::generate_signing_key();
        let public = *key.verifying_key();
        // Drips one byte of a length, then nothing: the deadline ends it.
        let (stream, _agent) = fake_agent(|_| {
            std::thread::sleep(Duration::from_millis(300));
            vec![0]
        });
        let mut client = AgentClient::over(stream, Duration::from_millis(200));
        assert!(matches!(client.identities(), Err(ClientError::Timeout(_))));

        let (stream, _agent) = fake_agent(|_| {
            let mut huge = ((MAX_ANSWER_LEN + 1) as u32).to_be_bytes().to_vec();
            huge.push(SSH_AGENT_IDENTITIES_ANSWER);
            huge
        });
        let mut client = AgentClient::over(stream, Duration::from_secs(5));
        assert!(matches!(
            client.identities(),
            Err(ClientError::Protocol(ProtoError::TooLong { .. }))
        ));

        let (stream, _agent) =
            fake_agent(|_| Message::new(SSH_AGENT_SIGN_RESPONSE, vec![1, 2, 3]).to_bytes());
        let mut client = AgentClient::over(stream, Duration::from_secs(5));
        assert!(client.sign_p256(&public, b"x").is_err());

        let (stream, _agent) = fake_agent(|_| Message::bare(SSH_AGENT_SUCCESS).to_bytes());
        let mut client = AgentClient::over(stream, Duration::from_secs(5));
        assert!(matches!(
            client.sign_p256(&public, b"x"),
            Err(ClientError::Unexpected(SSH_AGENT_SUCCESS))
        ));

        let (stream, agent) = fake_agent(|_| Vec::new());
        drop(agent);
        let mut client = AgentClient::over(stream, Duration::from_millis(300));
        assert!(client.identities().is_err());
    }
}
