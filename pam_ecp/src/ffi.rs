//! The C edge: PAM's six entry points. All of this crate's `unsafe` is in
//! the `pam_hooks!` expansion here (pam-bindings checks the handle and
//! argv). Every hook is written out, and every one catches panics, so no
//! panic crosses into the host process and none becomes a success.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ecp_core::{ServiceName, UserName};
use pam::constants::{PamFlag, PamResultCode, PAM_SILENT};
use pam::conv::Conv;
use pam::items::{RHost, RUser, Service, Tty};
use pam::module::{PamHandle, PamHooks};

use crate::conversation::PamConversation;
use crate::flow::{self, Login, Outcome};
use crate::options::Options;
use crate::syslog::Log;

pub struct EcpModule;

pam::pam_hooks!(EcpModule);

/// The one mapping from outcomes to PAM codes; no catch-all arm.
fn pam_code(outcome: Outcome) -> PamResultCode {
    match outcome {
        Outcome::Success => PamResultCode::PAM_SUCCESS,
        Outcome::Ignore => PamResultCode::PAM_IGNORE,
        Outcome::Denied => PamResultCode::PAM_AUTH_ERR,
        Outcome::UserUnknown => PamResultCode::PAM_USER_UNKNOWN,
        Outcome::Unavailable => PamResultCode::PAM_AUTHINFO_UNAVAIL,
    }
}

/// Runs `f`, turning a panic into `on_panic`.
fn guarded(on_panic: PamResultCode, f: impl FnOnce() -> PamResultCode) -> PamResultCode {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// Options, service and log for one call, or the failure to return.
fn setup(pamh: &PamHandle, args: &[&CStr]) -> Result<(Options, ServiceName, Log), Outcome> {
    let service_raw = match pamh.get_item::<Service>() {
        Ok(Some(s)) => s.0.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    let args: Vec<&str> = match args.iter().map(|a| a.to_str()).collect() {
        Ok(args) => args,
        Err(_) => {
            Log::new(&service_raw, false).error("configuration: an option is not UTF-8");
            return Err(Outcome::Denied);
        }
    };
    let options = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            Log::new(&service_raw, false).error(&format!("configuration: {e}"));
            return Err(Outcome::Denied);
        }
    };
    let log = Log::new(&service_raw, options.debug);
    let service = ServiceName::parse(&service_raw).map_err(|e| {
        log.error(&format!("PAM service: {e}"));
        Outcome::Denied
    })?;
    Ok((options, service, log))
}

fn login_of(pamh: &mut PamHandle, service: ServiceName, log: &Log) -> Result<Login, Outcome> {
    let user_raw = pamh.get_user(None).map_err(|_| {
        log.error("cannot get the user name from PAM");
        Outcome::Denied
    })?;
    let user = UserName::parse(&user_raw).map_err(|e| {
        log.warning(&format!("outcome=failure reason=\"{e}\""));
        Outcome::Denied
    })?;
    let rhost = match pamh.get_item::<RHost>() {
        Ok(Some(r)) => r.0.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    let ruser = match pamh.get_item::<RUser>() {
        Ok(Some(r)) => r.0.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    let tty = match pamh.get_item::<Tty>() {
        Ok(Some(t)) => t.0.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    Ok(Login {
        user,
        service,
        rhost,
        ruser,
        tty,
        caller_is_root: nix::unistd::getuid().is_root(),
        // The process's own environment (sudo's, su's): where sshd put
        // the forwarded agent for the session.
        agent_socket: std::env::var_os("SSH_AUTH_SOCK"),
        session_local: crate::session::logind_says_local(),
    })
}

fn run(
    pamh: &mut PamHandle,
    args: &[&CStr],
    flags: PamFlag,
    body: impl AsyncFnOnce(&Options, &Login, &PamConversation<'_>, &Log) -> Outcome,
) -> Outcome {
    let (options, service, log) = match setup(pamh, args) {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let login = match login_of(pamh, service, &log) {
        Ok(l) => l,
        Err(outcome) => return outcome,
    };
    let conv = match pamh.get_item::<Conv>() {
        Ok(Some(conv)) => PamConversation {
            conv,
            silent: flags & PAM_SILENT != 0,
        },
        _ => {
            log.error("the application gave PAM no conversation function");
            return Outcome::Denied;
        }
    };
    // Everything that touches the bus happens inside this one block_on:
    // the connection is made and dropped in it, and nothing is left
    // running in the host process when the call returns.
    zbus::block_on(body(&options, &login, &conv, &log))
}

impl PamHooks for EcpModule {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        guarded(PamResultCode::PAM_AUTH_ERR, || {
            pam_code(run(pamh, &args, flags, async |o, l, c, g| {
                flow::authenticate(o, l, c, g).await
            }))
        })
    }

    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        guarded(PamResultCode::PAM_AUTH_ERR, || {
            pam_code(run(pamh, &args, flags, async |o, l, c, g| {
                flow::account(o, l, c, g).await
            }))
        })
    }

    /// Nothing to establish: ecp grants no credentials.
    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }

    /// ecp has no password to change (key passphrases: `ecpctl passwd`).
    fn sm_chauthtok(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_IGNORE
    }

    /// Sessions are not ecp's business.
    fn sm_open_session(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_IGNORE
    }

    fn sm_close_session(
        _pamh: &mut PamHandle,
        _args: Vec<&CStr>,
        _flags: PamFlag,
    ) -> PamResultCode {
        PamResultCode::PAM_IGNORE
    }
}
