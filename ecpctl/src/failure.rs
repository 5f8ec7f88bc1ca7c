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
    #[error("cannot reach ecpd: {0}")]
    DaemonUnreachable(String),
    #[error("ecpd refused: {0}")]
    DaemonRefused(String),
    #[error("ecpd could not decide: the directory that holds the user's certificates cannot answer for this user ({0})")]
    DirectoryUnavailable(String),
    #[error("login failed: {0}")]
    LoginRefused(String),
    #[error("{0}")]
    CheckFailed(String),
    #[error("{0}")]
    NotApproved(String),
    #[error("{0}")]
    Token(#[from] crate::token::TokenError),
    #[error("agent: {0}")]
    Agent(String),
}

impl Failure {
    /// Sorts a daemon answer: transport trouble, a refused login, or a
    /// refused request.
    pub fn from_daemon(error: ecp_core::bus::EcpError) -> Self {
        use ecp_core::bus::EcpError as E;
        match error {
            E::ZBus(e) => Failure::DaemonUnreachable(crate::unreachable::reason("", &e)),
            E::DirectoryUnavailable(m) => Failure::DirectoryUnavailable(m),
            E::AuthenticationFailed(m)
            | E::NotEnrolled(m)
            | E::ChallengeExpired(m)
            | E::ChallengeUnknown(m)
            | E::Locked(m) => Failure::LoginRefused(m),
            E::InvalidArgument(m)
            | E::AccessDenied(m)
            | E::RateLimited(m)
            | E::CertificateRejected(m)
            | E::AlreadyEnrolled(m)
            | E::TooManyCertificates(m)
            | E::NotFound(m)
            | E::StoreFailure(m)
            | E::RenewalRefused(m) => Failure::DaemonRefused(m),
        }
    }

    /// Exit status for this failure. No catch-all arm: a new variant makes
    /// the compiler ask which code it gets.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Certificate(_)
            | Failure::Challenge(_)
            | Failure::LoginRefused(_)
            | Failure::CheckFailed(_)
            | Failure::NotApproved(_) => 1,
            Failure::Usage(_) => 2,
            Failure::KeyFile(_) | Failure::KeyFileAccess(_) | Failure::Terminal(_) => 3,
            Failure::File(_) => 4,
            Failure::DaemonUnreachable(_) => 5,
            Failure::DaemonRefused(_) => 6,
            Failure::Token(crate::token::TokenError::Unavailable(_))
            | Failure::Token(crate::token::TokenError::Failed(_)) => 7,
            Failure::Token(crate::token::TokenError::PinRefused(_)) => 8,
            Failure::Token(crate::token::TokenError::KeyNotFound(_)) => 9,
            Failure::DirectoryUnavailable(_) => 10,
            Failure::Agent(_) => 11,
        }
    }
}
