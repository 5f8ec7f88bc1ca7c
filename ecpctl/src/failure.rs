//! Everything that can make ecpctl fail, and the one mapping from failures
//! to the exit codes documented in `--help`.

use ecp_core::keyfile_io::FileError;
use ecp_core::{CertificateError, ChallengeError, KeyFileError};

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Certificate(#[from] CertificateError),
    #[error("{0}")]
    Challenge(#[from] ChallengeError),
    #[error("{0}")]
    KeyFile(#[from] KeyFileError),
    #[error("key file {0}")]
    KeyFileAccess(FileError),
    #[error("{0}")]
    File(FileError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Terminal(String),
}

impl Failure {
    /// Exit status for this failure. No catch-all arm: a new variant makes
    /// the compiler ask which code it gets.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Certificate(_) | Failure::Challenge(_) => 1,
            Failure::Usage(_) => 2,
            Failure::KeyFile(_) | Failure::KeyFileAccess(_) | Failure::Terminal(_) => 3,
            Failure::File(_) => 4,
        }
    }
}
