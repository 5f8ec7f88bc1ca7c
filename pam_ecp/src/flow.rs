//! The authentication and account flows. They gather what PAM knows, talk
//! to the user and the daemon, and return an `Outcome`; they decide nothing
//! about trust: only the daemon's "verified" makes a success.

use ecp_core::bus::EcpError;
use ecp_core::keyfile::decrypt_key_pem;
use ecp_core::when::{format_utc, unix_now};
use ecp_core::{Challenge, Passphrase, ServiceName, UserName};
use nix::unistd::User;

use crate::conversation::Conversation;
use crate::daemon_client::{Daemon, DaemonError};
use crate::keyfile;
use crate::options::{Mode, Options};
use crate::syslog::Log;

/// What a call ends in. `ffi::pam_code` turns it into a PAM return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The daemon verified a signature.
    Success,
    /// Not for this module to decide (`nouserok` and no certificate; or an
    /// account check with nothing to say).
    Ignore,
    /// Refused: bad signature, wrong passphrase, bad key file, bad input.
    Denied,
    /// PAM_USER names no account on this system.
    UserUnknown,
    /// The daemon could not be asked, or answered nonsense: fail closed.
    Unavailable,
}

/// The login as PAM describes it.
pub struct Login {
    pub user: UserName,
    pub service: ServiceName,
    pub rhost: String,
}

/// Certificates expiring within this many days are announced at login.
const EXPIRY_WARNING_DAYS: i64 = 14;

fn trusted_uids(options: &Options) -> Vec<u32> {
    let mut uids = vec![0];
    if let Ok(Some(user)) = User::from_name(&options.daemon_user) {
        uids.push(user.uid.as_raw());
    }
    uids
}

async fn connect(options: &Options, log: &Log) -> Result<Daemon, Outcome> {
    let address = options
        .bus
        .as_deref()
        .unwrap_or(ecp_core::bus::SYSTEM_BUS_ADDRESS);
    Daemon::connect(address, options.timeout, &trusted_uids(options))
        .await
        .map_err(|e| {
            match e {
                DaemonError::Unavailable(m) => log.error(&format!("daemon unavailable: {m}")),
                DaemonError::Untrusted(m) => log.error(&format!("refusing untrusted daemon: {m}")),
            }
            Outcome::Unavailable
        })
}

/// Maps a daemon error on the way to a signature.
fn refused(error: EcpError, login: &Login, conv: &dyn Conversation, log: &Log) -> Outcome {
    let who = format!("user={} rhost={}", login.user, login.rhost);
    match error {
        EcpError::ZBus(e) => {
            log.error(&format!("{who} outcome=unavailable reason=\"{e}\""));
            Outcome::Unavailable
        }
        EcpError::Locked(m) | EcpError::RateLimited(m) => {
            log.warning(&format!("{who} outcome=refused reason=\"{m}\""));
            conv.tell_error(&format!("ecp: {m}"));
            Outcome::Denied
        }
        other => {
            log.warning(&format!("{who} outcome=failure reason=\"{other}\""));
            Outcome::Denied
        }
    }
}

/// The account PAM_USER names, if PAM_USER is its canonical name. A name
/// that resolves to an account under another spelling (`ALICE` for
/// `alice`, with a case-insensitive directory behind NSS) is refused: it
/// would escape the daemon's per-user counts and, with `nouserok`, look
/// unenrolled.
fn canonical_account(login: &Login, log: &Log) -> Result<User, Outcome> {
    let user = login.user.as_str();
    match User::from_name(user) {
        Ok(Some(account)) if account.name == user => Ok(account),
        Ok(Some(account)) => {
            log.warning(&format!(
                "user={user} rhost={} outcome=refused reason=\"not the canonical name of the account: {}\"",
                login.rhost, account.name
            ));
            Err(Outcome::Denied)
        }
        Ok(None) => {
            log.info(&format!(
                "user={user} rhost={} outcome=refused reason=\"no such account\"",
                login.rhost
            ));
            Err(Outcome::UserUnknown)
        }
        Err(e) => {
            log.error(&format!("user={user} cannot look up the account: {e}"));
            Err(Outcome::Unavailable)
        }
    }
}

/// How this login gets its signature. A remote login never uses a key
/// file on this server: that file is not something the remote person has.
fn choose_mode(
    options: &Options,
    login: &Login,
    account: &User,
    log: &Log,
) -> Result<(Mode, std::path::PathBuf), Outcome> {
    let user = login.user.as_str();
    let remote = !login.rhost.is_empty();
    let key_path = keyfile::expand_path(&options.keyfile, user, &account.dir);
    let mode = match options.mode {
        Mode::Auto if remote => Mode::Challenge,
        Mode::Auto if keyfile::exists_for(account, &key_path) => Mode::Keyfile,
        Mode::Auto => Mode::Challenge,
        Mode::Keyfile if remote && !options.allow_remote_keyfile => {
            log.warning(&format!(
                "user={user} rhost={} outcome=refused reason=\"mode=keyfile refuses a remote login: a key file on this server proves nothing about the remote user (use mode=challenge, or allow_remote_keyfile)\"",
                login.rhost
            ));
            return Err(Outcome::Denied);
        }
        mode => mode,
    };
    log.debug(&format!("user={user} mode={mode:?}"));
    Ok((mode, key_path))
}

pub async fn authenticate(
    options: &Options,
    login: &Login,
    conv: &dyn Conversation,
    log: &Log,
) -> Outcome {
    // Decided before the daemon is asked anything.
    let account = match canonical_account(login, log) {
        Ok(account) => account,
        Err(outcome) => return outcome,
    };
    let (mode, key_path) = match choose_mode(options, login, &account, log) {
        Ok(choice) => choice,
        Err(outcome) => return outcome,
    };
    let daemon = match connect(options, log).await {
        Ok(d) => d,
        Err(outcome) => return outcome,
    };
    let user = login.user.as_str();

    if options.nouserok {
        // Ask before prompting: a user without a certificate is passed on
        // without being asked for something they cannot give.
        match daemon.admin.list(user).await {
            Ok(certificates) if certificates.is_empty() => {
                log.info(&format!(
                    "user={user} outcome=ignored reason=\"no certificate enrolled (nouserok)\""
                ));
                return Outcome::Ignore;
            }
            Ok(_) => {}
            Err(e) => return refused(e, login, conv, log),
        }
    }

    let token = match daemon
        .auth
        .challenge(user, login.service.as_str(), &login.rhost)
        .await
    {
        Ok(token) => token,
        Err(e) => return refused(e, login, conv, log),
    };
    // Fail closed on a malformed answer or one not for this login.
    let challenge = match Challenge::from_token(&token) {
        Ok(c)
            if c.user == login.user
                && c.service == login.service
                && c.rhost.as_str() == login.rhost =>
        {
            c
        }
        Ok(_) => {
            log.error("daemon issued a challenge for another user, service or remote host");
            return Outcome::Unavailable;
        }
        Err(e) => {
            log.error(&format!("daemon sent a malformed challenge: {e}"));
            return Outcome::Unavailable;
        }
    };
    log.debug(&format!(
        "user={user} nonce_id={} challenge issued",
        challenge.nonce_id.to_hex()
    ));

    let signature = match mode {
        Mode::Keyfile => match sign_with_key_file(&account, &key_path, &challenge, conv, log) {
            KeyFileAnswer::Signed(signature) => signature,
            // Reported as an empty signature, so the daemon counts it like
            // a failed one: guessing passphrases at this prompt is limited
            // by the same per-source waits.
            KeyFileAnswer::CouldNotSign => String::new(),
            KeyFileAnswer::NoAnswer => return Outcome::Denied,
        },
        Mode::Challenge | Mode::Auto => {
            let prompt = format!("ecp challenge {token}\n{}", options.prompt);
            match conv.ask_visible(&prompt) {
                Some(answer) if !answer.trim().is_empty() => answer.trim().to_owned(),
                _ => {
                    log.warning(&format!(
                        "user={user} outcome=failure reason=\"no signature given\""
                    ));
                    return Outcome::Denied;
                }
            }
        }
    };

    match daemon.auth.verify(user, &token, &signature).await {
        Ok(()) if !signature.is_empty() => {
            log.info(&format!(
                "user={user} rhost={} outcome=success",
                login.rhost
            ));
            Outcome::Success
        }
        // Never a success without a signature, whatever the daemon says.
        Ok(()) => {
            log.error("daemon accepted an empty signature; refusing");
            Outcome::Unavailable
        }
        Err(EcpError::NotEnrolled(_)) if options.nouserok => {
            log.info(&format!(
                "user={user} outcome=ignored reason=\"no certificate enrolled (nouserok)\""
            ));
            Outcome::Ignore
        }
        Err(_) if signature.is_empty() => Outcome::Denied,
        Err(e) => refused(e, login, conv, log),
    }
}

/// What came of the key-file prompt.
enum KeyFileAnswer {
    Signed(String),
    /// The file was read but could not be unlocked (wrong or empty
    /// passphrase, damaged file): reported to the daemon as a failure.
    CouldNotSign,
    /// No usable file, or no answer at the prompt: nothing to report.
    NoAnswer,
}

/// Reads, unlocks and uses the key file; every failure is logged and told
/// to the user (it is their own file), and yields `None`.
fn sign_with_key_file(
    account: &User,
    path: &std::path::Path,
    challenge: &Challenge,
    conv: &dyn Conversation,
    log: &Log,
) -> KeyFileAnswer {
    let user = &account.name;
    let pem = match keyfile::read_for(account, path) {
        Ok(pem) => pem,
        Err(e) => {
            log.error(&format!(
                "user={user} outcome=failure reason=\"key file {e}\""
            ));
            conv.tell_error(&format!("ecp: cannot use your key file: {e}"));
            return KeyFileAnswer::NoAnswer;
        }
    };
    let Some(answer) = conv.ask_hidden(&format!("Passphrase for ecp key {}: ", path.display()))
    else {
        return KeyFileAnswer::NoAnswer;
    };
    let passphrase = match Passphrase::new(answer.to_vec()) {
        Ok(p) => p,
        Err(_) => {
            log.warning(&format!(
                "user={user} outcome=failure reason=\"empty passphrase\""
            ));
            return KeyFileAnswer::CouldNotSign;
        }
    };
    drop(answer);
    match decrypt_key_pem(&pem, &passphrase) {
        Ok(key) => KeyFileAnswer::Signed(challenge.sign(&key)),
        Err(e) => {
            log.warning(&format!(
                "user={user} outcome=failure reason=\"key file {}: {e}\"",
                path.display()
            ));
            conv.tell_error(&format!("ecp: {e}"));
            KeyFileAnswer::CouldNotSign
        }
    }
}

/// Account check: warns when a certificate expires soon. It never denies
/// a login: authentication is where ecp decides.
pub async fn account(
    options: &Options,
    login: &Login,
    conv: &dyn Conversation,
    log: &Log,
) -> Outcome {
    let Ok(daemon) = connect(options, log).await else {
        return Outcome::Ignore;
    };
    let Ok(certificates) = daemon.admin.list(login.user.as_str()).await else {
        return Outcome::Ignore;
    };
    if certificates.is_empty() {
        return Outcome::Ignore;
    }
    let now = unix_now();
    for cert in &certificates {
        let days_left = (cert.not_after - now) / 86_400;
        if cert.not_after > now && days_left < EXPIRY_WARNING_DAYS {
            let message = format!(
                "ecp: your certificate \"{}\" expires on {} ({} days); ask for a new one",
                cert.label,
                format_utc(cert.not_after),
                days_left
            );
            log.info(&format!(
                "user={} certificate {} expires in {days_left} days",
                login.user, cert.fingerprint
            ));
            conv.tell_info(&message);
        }
    }
    Outcome::Success
}
