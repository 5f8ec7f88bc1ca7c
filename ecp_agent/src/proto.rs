//! Messages and framing: a message is a 32-bit big-endian length, a type
//! byte and its body. Lengths are checked before anything is allocated.

use std::io::{Read, Write};

use ssh_encoding::{Decode, Encode, Reader};

/// The largest message either side accepts: OpenSSH's own limit.
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

pub const SSH_AGENT_FAILURE: u8 = 5;
pub const SSH_AGENT_SUCCESS: u8 = 6;
pub const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
pub const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
pub const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
pub const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
pub const SSH_AGENTC_EXTENSION: u8 = 27;
pub const SSH_AGENT_EXTENSION_FAILURE: u8 = 28;

/// The extension OpenSSH (8.9 and later) sends on each connection it
/// opens to the agent, naming the server host key it came through.
pub const SESSION_BIND: &str = "session-bind@openssh.com";

/// Why a message could not be read or made sense of.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a message of {len} bytes is longer than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("an empty message")]
    Empty,
    #[error("a malformed message: {0}")]
    Malformed(String),
}

impl From<ssh_encoding::Error> for ProtoError {
    fn from(e: ssh_encoding::Error) -> Self {
        ProtoError::Malformed(e.to_string())
    }
}

/// One message: its type and body (without the length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: u8,
    pub body: Vec<u8>,
}

impl Message {
    pub fn new(kind: u8, body: Vec<u8>) -> Message {
        Message { kind, body }
    }

    /// A message that is only its type (FAILURE, SUCCESS, ...).
    pub fn bare(kind: u8) -> Message {
        Message::new(kind, Vec::new())
    }

    /// The bytes on the wire: length, type, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = u32::try_from(self.body.len() + 1).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(self.body.len() + 5);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(self.kind);
        out.extend_from_slice(&self.body);
        out
    }

    pub fn write_to(&self, out: &mut impl Write) -> Result<(), ProtoError> {
        out.write_all(&self.to_bytes())?;
        out.flush()?;
        Ok(())
    }

    /// Reads one message of at most `max` bytes. `Ok(None)` at a clean end
    /// of the stream (before a length).
    pub fn read_from(input: &mut impl Read, max: usize) -> Result<Option<Message>, ProtoError> {
        let mut len = [0u8; 4];
        match input.read(&mut len[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        input.read_exact(&mut len[1..])?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return Err(ProtoError::Empty);
        }
        if len > max {
            return Err(ProtoError::TooLong { len, max });
        }
        let mut body = vec![0u8; len];
        input.read_exact(&mut body)?;
        let kind = body.remove(0);
        Ok(Some(Message { kind, body }))
    }
}

/// What a client asks, as an agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Identities,
    Sign {
        key_blob: Vec<u8>,
        data: Vec<u8>,
        flags: u32,
    },
    Extension {
        name: String,
        contents: Vec<u8>,
    },
    /// Any other type: the agent answers FAILURE, or passes it upstream.
    Other(Message),
}

impl Request {
    pub fn parse(message: &Message) -> Result<Request, ProtoError> {
        let reader = &mut message.body.as_slice();
        let request = match message.kind {
            SSH_AGENTC_REQUEST_IDENTITIES => Request::Identities,
            SSH_AGENTC_SIGN_REQUEST => Request::Sign {
                key_blob: Vec::decode(reader)?,
                data: Vec::decode(reader)?,
                flags: u32::decode(reader)?,
            },
            SSH_AGENTC_EXTENSION => {
                let name = String::decode(reader)?;
                // The rest of the message is the extension's own.
                let contents = std::mem::take(reader).to_vec();
                return Ok(Request::Extension { name, contents });
            }
            _ => return Ok(Request::Other(message.clone())),
        };
        if !reader.is_finished() {
            return Err(ProtoError::Malformed(format!(
                "{} bytes after the request",
                reader.remaining_len()
            )));
        }
        Ok(request)
    }

    pub fn to_message(&self) -> Message {
        match self {
            Request::Identities => Message::bare(SSH_AGENTC_REQUEST_IDENTITIES),
            Request::Sign {
                key_blob,
                data,
                flags,
            } => Message::new(
                SSH_AGENTC_SIGN_REQUEST,
                encode_all(&[key_blob.as_slice(), data.as_slice()], Some(*flags), &[]),
            ),
            Request::Extension { name, contents } => {
                let mut body = Vec::new();
                // Writing to a Vec cannot fail.
                let _ = name.as_str().encode(&mut body);
                body.extend_from_slice(contents);
                Message::new(SSH_AGENTC_EXTENSION, body)
            }
            Request::Other(message) => message.clone(),
        }
    }
}

/// `strings` as RFC 4251 strings, then `flags` if any, then `raw` as is.
fn encode_all(strings: &[&[u8]], flags: Option<u32>, raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for s in strings {
        let _ = s.encode(&mut body);
    }
    if let Some(flags) = flags {
        let _ = flags.encode(&mut body);
    }
    body.extend_from_slice(raw);
    body
}

/// An IDENTITIES_ANSWER listing (key blob, comment) pairs.
pub fn identities_answer(identities: &[(Vec<u8>, String)]) -> Message {
    let mut body = Vec::new();
    let _ = u32::try_from(identities.len())
        .unwrap_or(u32::MAX)
        .encode(&mut body);
    for (blob, comment) in identities {
        let _ = blob.as_slice().encode(&mut body);
        let _ = comment.as_str().encode(&mut body);
    }
    Message::new(SSH_AGENT_IDENTITIES_ANSWER, body)
}

/// At most this many identities are read from one answer.
pub const MAX_IDENTITIES: u32 = 1024;

/// The (key blob, comment) pairs of an IDENTITIES_ANSWER body.
pub fn parse_identities(body: &[u8]) -> Result<Vec<(Vec<u8>, String)>, ProtoError> {
    let reader = &mut &body[..];
    let count = u32::decode(reader)?;
    if count > MAX_IDENTITIES {
        return Err(ProtoError::Malformed(format!(
            "{count} identities; at most {MAX_IDENTITIES} are read"
        )));
    }
    let mut identities = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let blob = Vec::decode(reader)?;
        // Comments are the agent's text: kept only for display, lossily.
        let comment = Vec::decode(reader)?;
        identities.push((blob, String::from_utf8_lossy(&comment).into_owned()));
    }
    if !reader.is_finished() {
        return Err(ProtoError::Malformed("bytes after the identities".into()));
    }
    Ok(identities)
}

/// A SIGN_RESPONSE carrying `signature_blob`.
pub fn sign_response(signature_blob: &[u8]) -> Message {
    Message::new(
        SSH_AGENT_SIGN_RESPONSE,
        encode_all(&[signature_blob], None, &[]),
    )
}

/// The signature blob of a SIGN_RESPONSE body.
pub fn parse_sign_response(body: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let reader = &mut &body[..];
    let blob = Vec::decode(reader)?;
    if !reader.is_finished() {
        return Err(ProtoError::Malformed("bytes after the signature".into()));
    }
    Ok(blob)
}

/// What `session-bind@openssh.com` carries: the server's host key, the
/// session identifier, the host key's signature over it, and whether the
/// connection is one ssh opened for agent forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionBind {
    pub host_key: Vec<u8>,
    pub session_id: Vec<u8>,
    pub signature: Vec<u8>,
    pub is_forwarding: bool,
}

impl SessionBind {
    pub fn parse(contents: &[u8]) -> Result<SessionBind, ProtoError> {
        let reader = &mut &contents[..];
        let bind = SessionBind {
            host_key: Vec::decode(reader)?,
            session_id: Vec::decode(reader)?,
            signature: Vec::decode(reader)?,
            is_forwarding: bool::decode(reader)?,
        };
        if !reader.is_finished() {
            return Err(ProtoError::Malformed("bytes after the session bind".into()));
        }
        Ok(bind)
    }

    pub fn to_contents(&self) -> Vec<u8> {
        let mut body = encode_all(
            &[&self.host_key, &self.session_id, &self.signature],
            None,
            &[],
        );
        let _ = self.is_forwarding.encode(&mut body);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_trailing_bytes_are_refused() {
        for request in [
            Request::Identities,
            Request::Sign {
                key_blob: vec![1, 2, 3],
                data: b"data".to_vec(),
                flags: 0,
            },
            Request::Extension {
                name: SESSION_BIND.into(),
                contents: vec![9, 9],
            },
            Request::Other(Message::bare(17)),
        ] {
            let bytes = request.to_message().to_bytes();
            let message = Message::read_from(&mut bytes.as_slice(), MAX_MESSAGE_LEN)
                .unwrap()
                .unwrap();
            assert_eq!(Request::parse(&message).unwrap(), request);
        }
        let mut sign = Request::Sign {
            key_blob: vec![1],
            data: vec![2],
            flags: 0,
        }
        .to_message();
        sign.body.push(0);
        assert!(Request::parse(&sign).is_err());
    }

    #[test]
    fn lengths_are_checked_before_reading() {
        let huge = [0x7f, 0xff, 0xff, 0xff, SSH_AGENT_SUCCESS];
        assert!(matches!(
            Message::read_from(&mut huge.as_slice(), MAX_MESSAGE_LEN),
            Err(ProtoError::TooLong { .. })
        ));
        assert!(matches!(
            Message::read_from(&mut [0u8, 0, 0, 0].as_slice(), MAX_MESSAGE_LEN),
            Err(ProtoError::Empty)
        ));
        assert!(Message::read_from(&mut [].as_slice(), MAX_MESSAGE_LEN)
            .unwrap()
            .is_none());
        // A length promising more than arrives is an error, not a hang.
        assert!(Message::read_from(&mut [0u8, 0, 0, 9, 6].as_slice(), MAX_MESSAGE_LEN).is_err());
        // A string length inside a message larger than the message.
        let lying = Message::new(SSH_AGENTC_SIGN_REQUEST, vec![0xff, 0xff, 0xff, 0xff, 1]);
        assert!(Request::parse(&lying).is_err());
    }

    #[test]
    fn identities_and_session_binds_round_trip() {
        let ids = vec![(vec![1, 2], "one".to_owned()), (vec![3], "two".to_owned())];
        let answer = identities_answer(&ids);
        assert_eq!(parse_identities(&answer.body).unwrap(), ids);
        let mut too_many = Vec::new();
        let _ = (MAX_IDENTITIES + 1).encode(&mut too_many);
        assert!(parse_identities(&too_many).is_err());

        let bind = SessionBind {
            host_key: vec![1],
            session_id: vec![2; 32],
            signature: vec![3],
            is_forwarding: true,
        };
        assert_eq!(SessionBind::parse(&bind.to_contents()).unwrap(), bind);
    }
}
