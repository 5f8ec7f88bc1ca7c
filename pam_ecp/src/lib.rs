//! pam_ecp.so: the second factor in a PAM stack.
//!
//! It runs inside someone else's process (sshd, sudo, su, a screen locker),
//! keeps no state between calls, leaves no thread behind, and returns
//! success only when ecpd confirmed a signature. It asks ecpd for a
//! one-time challenge, gets it signed (with the user's encrypted key file,
//! through the user's forwarded ecp or ssh agent, or by the user pasting a
//! signature made elsewhere) and has ecpd verify it. It talks only to the real system bus, or to a `bus=` address from
//! the root-owned PAM configuration — never to one from the environment.

#![deny(unsafe_code)]

mod agent;
mod conversation;
mod daemon_client;
mod ffi;
mod flow;
mod keyfile;
mod options;
mod session;
mod syslog;

pub use ffi::*;
