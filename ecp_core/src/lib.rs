//! What the ecp PAM module, the daemon and the CLI share: validated names,
//! the encrypted key file, the user certificate rule and the signed
//! challenge format.
//!
//! This crate does no I/O beyond reading the OS random source and
//! [`keyfile_io`]'s careful file reading; it never sees a daemon or PAM.

#![forbid(unsafe_code)]

pub mod bus;
pub mod certificate;
pub mod challenge;
pub mod hex;
pub mod issue;
pub mod keyfile;
pub mod keyfile_io;
pub mod names;
pub mod oids;
pub mod trust;
pub mod user_files;
pub mod verify;
pub mod when;

pub use certificate::{validate_certificate, CertificateError, ParsedCertificate};
pub use challenge::{Challenge, ChallengeError};
pub use keyfile::{KdfParams, KeyFileError, Passphrase};
pub use names::{HostName, NameError, RemoteHost, ServiceName, UserName};
