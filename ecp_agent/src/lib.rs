//! The ssh-agent protocol (draft-miller-ssh-agent) as ecp speaks it: the
//! messages an ecp agent serves and a client sends, the encodings of an
//! `ecdsa-sha2-nistp256` key and signature, and a client whose every read
//! is bounded in size and time.
//!
//! An ECDSA P-256 ssh-agent signature is ECDSA with SHA-256 over exactly
//! the bytes sent, so an agent key can sign what ecpd verifies: only the
//! encoding differs (two mpints here, DER there).

#![forbid(unsafe_code)]

pub mod client;
pub mod key;
pub mod proto;

pub use client::{AgentClient, ClientError};
pub use key::{KeyBlobError, P256_KEY_TYPE};
pub use proto::{Message, ProtoError, Request};

/// The RFC 4251 encoding crate this one speaks, for callers that read
/// other ssh structures (host keys, signatures).
pub use ssh_encoding;
