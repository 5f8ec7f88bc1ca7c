//! The authentication and account flows. They gather what PAM knows, talk
//! to the user and the daemon, and return an `Outcome`; they decide nothing
//! about trust: only the daemon's "verified" makes a success.

use ecp_core::bus::EcpError;
use ecp_core::challenge::{prompt_with_token, SignedAnswer};
use ecp_core::keyfile::decrypt_key_pem;
use ecp_core::keyfile_io::FileError;
use ecp_core::when::{days_left, expires_soon, format_utc, unix_now};
use ecp_core::{Challenge, Passphrase, ServiceName, UserName};
use nix::unistd::User;

use crate::agent::AgentProblem;
use crate::conversation::Conversation;
use crate::daemon_client::{Daemon, DaemonError, EcpDaemon};
use crate::keyfile;
use crate::options::{ConsoleRescue, Mode, Options};
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

/// The login as PAM and the process describe it.
pub struct Login {
    pub user: UserName,
    pub service: ServiceName,
    pub rhost: String,
    /// PAM_RUSER: who runs the program, as a root application says.
    pub ruser: String,
    /// PAM_TTY: the terminal the login is on ("/dev/tty1", "ssh", "").
    pub tty: String,
    /// Whether the program asking (login, sshd, sudo…) runs with real
    /// uid 0: a set-uid program a user started (su, sudo) does not.
    pub caller_is_root: bool,
    /// SSH_AUTH_SOCK of the process: the agent of the person running it.
    pub agent_socket: Option<std::ffi::OsString>,
    /// logind's word on the calling process's session: local, remote, or
    /// nothing known.
    pub session_local: Option<bool>,
}

/// How a login is to be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Agent, Keyfile or Challenge; never Auto.
    pub mode: Mode,
    /// mode=auto's way when there is no agent to ask (no socket, or no
    /// key in it that may sign): the agent is tried first, not trusted
    /// to be there.
    pub without_agent: Option<Mode>,
}

impl Plan {
    fn only(mode: Mode) -> Plan {
        Plan {
            mode,
            without_agent: None,
        }
    }
}

fn trusted_uids(options: &Options) -> Vec<u32> {
    let mut uids = vec![0];
    if let Ok(Some(user)) = User::from_name(&options.daemon_user) {
        uids.push(user.uid.as_raw());
    }
    uids
}

async fn connect(options: &Options, log: &Log) -> Result<Daemon, DaemonError> {
    let address = options
        .bus
        .as_deref()
        .unwrap_or(ecp_core::bus::SYSTEM_BUS_ADDRESS);
    Daemon::connect(address, options.timeout, &trusted_uids(options))
        .await
        .inspect_err(|e| match e {
            DaemonError::NotRunning(m) | DaemonError::Unavailable(m) => {
                log.error(&format!("daemon unavailable: {m}"))
            }
            DaemonError::Untrusted(m) => log.error(&format!("refusing untrusted daemon: {m}")),
        })
}

/// Whether `tty` (PAM_TTY, with or without /dev/) is a text console of
/// the kind `which` names: a virtual terminal; or also a serial line, a
/// hypervisor console or the system console. A pseudo-terminal (ssh, a
/// terminal window), a display (":0") or "ssh" never is.
pub fn is_console(tty: &str, which: ConsoleRescue) -> bool {
    let name = tty.strip_prefix("/dev/").unwrap_or(tty);
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    const SERIAL: &[&str] = &[
        "ttyS", "ttyAMA", "ttyUSB", "ttyACM", "ttymxc", "ttyPS", "ttysclp", "hvc", "xvc",
    ];
    match which {
        ConsoleRescue::Off => false,
        ConsoleRescue::VirtualTerminals => numbered("tty"),
        ConsoleRescue::Any => {
            numbered("tty") || name == "console" || SERIAL.iter().any(|p| numbered(p))
        }
    }
}

/// `root_console_rescue`: when ecpd is not running, root logging in at a
/// console of this machine, through a program running as root (login,
/// not su or sudo started by a user), from no remote host. Only a daemon
/// that is certainly not running counts (`DaemonError::NotRunning`): one
/// that answers (even "no"), hangs, or whose bus name is held by an
/// untrusted process never lets anyone past.
fn console_rescue_applies(options: &Options, login: &Login, account: &User) -> bool {
    account.uid.is_root()
        && login.caller_is_root
        && login.rhost.is_empty()
        && is_console(&login.tty, options.root_console_rescue)
}

/// Maps a daemon error on the way to a signature.
fn refused(error: EcpError, login: &Login, conv: &dyn Conversation, log: &Log) -> Outcome {
    let who = format!("user={} rhost={}", login.user, login.rhost);
    match error {
        EcpError::ZBus(e) => {
            log.error(&format!("{who} outcome=unavailable reason=\"{e}\""));
            Outcome::Unavailable
        }
        // Fail closed, and never as "not enrolled" (nouserok would pass it).
        EcpError::DirectoryUnavailable(m) => {
            log.error(&format!("{who} outcome=unavailable reason=\"{m}\""));
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
/// Remote is a login from the network (PAM_RHOST) or, for mode=auto, any
/// session logind does not vouch for as local: sudo inside an ssh session
/// has no PAM_RHOST, and where logind cannot say, nothing the user does
/// not control can.
fn choose_mode(
    options: &Options,
    login: &Login,
    account: &User,
    conv: &dyn Conversation,
    log: &Log,
) -> Result<(Plan, std::path::PathBuf), Outcome> {
    let user = login.user.as_str();
    let from_network = !login.rhost.is_empty();
    let key_path = keyfile::expand_path(&options.keyfile, user, &account.dir);
    let plan = match options.mode {
        Mode::Agent if from_network => {
            log.warning(&format!(
                "user={user} rhost={} outcome=refused reason=\"mode=agent refuses a login from the network: the agent signs for a command run inside a session (sudo), and this process's SSH_AUTH_SOCK is not the remote person's (use mode=challenge here)\"",
                login.rhost
            ));
            return Err(Outcome::Denied);
        }
        Mode::Auto => {
            let without_agent = if from_network || login.session_local != Some(true) {
                Mode::Challenge
            } else if keyfile::exists_for(account, &key_path) {
                Mode::Keyfile
            } else {
                Mode::Challenge
            };
            if !from_network && login.agent_socket.is_some() {
                Plan {
                    mode: Mode::Agent,
                    without_agent: Some(without_agent),
                }
            } else {
                Plan::only(without_agent)
            }
        }
        Mode::Keyfile
            if (from_network || login.session_local == Some(false))
                && !options.allow_remote_keyfile =>
        {
            let why = if from_network {
                "a remote login"
            } else {
                "a command in a remote session (logind)"
            };
            log.warning(&format!(
                "user={user} rhost={} outcome=refused reason=\"mode=keyfile refuses {why}: a key file on this server proves nothing about the remote user (use mode=agent or mode=challenge, or allow_remote_keyfile)\"",
                login.rhost
            ));
            // Said to the person too: otherwise sudo reports only
            // "incorrect password attempts" after a right password.
            conv.tell_error(&format!(
                "ecp: this session came from the network: a key file on this server proves \
                 nothing about you, so {} does not use one here; sign on your own machine \
                 through the ecp agent that ssh forwards (pam_ecp mode=agent)",
                login.service
            ));
            return Err(Outcome::Denied);
        }
        mode => Plan::only(mode),
    };
    log.debug(&format!("user={user} plan={plan:?}"));
    Ok((plan, key_path))
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
    let (plan, key_path) = match choose_mode(options, login, &account, conv, log) {
        Ok(choice) => choice,
        Err(outcome) => return outcome,
    };
    let daemon = match connect(options, log).await {
        Ok(d) => d,
        Err(DaemonError::NotRunning(_)) if console_rescue_applies(options, login, &account) => {
            log.alert(&format!(
                "user={} tty={} outcome=ignored reason=\"ecpd is not running: root at the console passes with the password alone (root_console_rescue)\"",
                login.user, login.tty
            ));
            conv.tell_error(
                "ecp: ecpd is not running; root logs in on the console with the password \
                 alone (root_console_rescue)",
            );
            return Outcome::Ignore;
        }
        Err(_) => return Outcome::Unavailable,
    };
    let cert_path = match &options.certfile {
        Some(template) => keyfile::expand_path(template, login.user.as_str(), &account.dir),
        None => key_path.with_file_name(ecp_core::user_files::CERTIFICATE_FILE),
    };
    let attempt = Attempt {
        login,
        account: &account,
        plan,
        key_path: &key_path,
        cert_path,
    };
    authenticate_with(&daemon, options, &attempt, conv, log).await
}

/// One login, once the module knows whose and how it is signed.
struct Attempt<'a> {
    login: &'a Login,
    account: &'a User,
    plan: Plan,
    key_path: &'a std::path::Path,
    /// The certificate presented with a key-file signature, if CA-issued.
    cert_path: std::path::PathBuf,
}

/// The conversation with the daemon and the person: challenge, signature,
/// verdict.
async fn authenticate_with(
    daemon: &impl EcpDaemon,
    options: &Options,
    attempt: &Attempt<'_>,
    conv: &dyn Conversation,
    log: &Log,
) -> Outcome {
    let login = attempt.login;
    let user = login.user.as_str();
    if options.nouserok {
        // Ask before prompting: a user without a certificate is passed on
        // without being asked for something they cannot give.
        // With organisation CAs trusted, the daemon says every account
        // needs one: anyone may hold a CA-issued certificate.
        match daemon.needs_signature(user).await {
            Ok(false) => {
                log.info(&format!(
                    "user={user} outcome=ignored reason=\"no certificate enrolled (nouserok)\""
                ));
                return Outcome::Ignore;
            }
            Ok(true) => {}
            Err(e) => return refused(e, login, conv, log),
        }
    }

    // The agent is asked which key it holds before any challenge is
    // issued: no challenge is spent on an agent that cannot answer.
    let mut mode = attempt.plan.mode;
    let mut agent = None;
    if mode == Mode::Agent {
        match agent_for(daemon, options, attempt).await {
            Ok(ready) => agent = Some(ready),
            Err(AgentSetup::Daemon(e)) => return refused(e, login, conv, log),
            Err(AgentSetup::Problem(AgentProblem::Absent(why)))
                if attempt.plan.without_agent.is_some() =>
            {
                log.debug(&format!("user={user} not using an agent: {why:?}"));
                mode = attempt.plan.without_agent.unwrap_or(Mode::Challenge);
            }
            Err(AgentSetup::Problem(problem)) => {
                log.warning(&format!(
                    "user={user} rhost={} outcome=failure reason={:?}",
                    login.rhost,
                    format!("agent: {}", problem.message())
                ));
                conv.tell_error(&format!("ecp: {}", problem.message()));
                return Outcome::Denied;
            }
        }
    }

    let token = match daemon
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

    let (signature, certificate) = match mode {
        Mode::Agent => {
            let Some((mut client, key)) = agent else {
                return Outcome::Denied;
            };
            match crate::agent::sign(&mut client, &key, &challenge.signed_bytes()) {
                Ok(signature) => (ecp_core::challenge::signature_text(&signature), None),
                Err(problem) => {
                    log.warning(&format!(
                        "user={user} rhost={} outcome=failure reason={:?}",
                        login.rhost,
                        format!("agent: {}", problem.message())
                    ));
                    conv.tell_error(&format!("ecp: {}", problem.message()));
                    return Outcome::Denied;
                }
            }
        }
        Mode::Keyfile => {
            match sign_with_key_file(attempt.account, attempt.key_path, &challenge, conv, log) {
                // A CA-issued certificate beside the key travels with the
                // signature; the daemon decides whether it counts.
                KeyFileAnswer::Signed(signature) => (
                    signature,
                    keyfile::ca_issued_certificate_for(attempt.account, &attempt.cert_path),
                ),
                // Reported as an empty signature, so the daemon counts it like
                // a failed one: guessing passphrases at this prompt is limited
                // by the same per-source waits.
                KeyFileAnswer::CouldNotSign => (String::new(), None),
                KeyFileAnswer::NoAnswer => return Outcome::Denied,
            }
        }
        Mode::Challenge | Mode::Auto => {
            let prompt = prompt_with_token(&token, &options.prompt);
            let answer = conv
                .ask_visible(&prompt)
                .filter(|a| !a.trim().is_empty())
                .map(|a| SignedAnswer::parse(&a));
            match answer {
                Some(Ok(answer)) if !answer.signature.is_empty() => {
                    (answer.signature, answer.certificate_der)
                }
                Some(Err(e)) => {
                    log.warning(&format!(
                        "user={user} outcome=failure reason=\"unreadable answer: {e}\""
                    ));
                    conv.tell_error(&format!("ecp: {e}"));
                    return Outcome::Denied;
                }
                _ => {
                    log.warning(&format!(
                        "user={user} outcome=failure reason=\"no signature given\""
                    ));
                    return Outcome::Denied;
                }
            }
        }
    };

    let verdict = match &certificate {
        Some(der) => daemon.verify_presented(user, &token, &signature, der).await,
        None => daemon.verify(user, &token, &signature).await,
    };
    match verdict {
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

/// Why the agent is not used.
enum AgentSetup {
    Problem(AgentProblem),
    Daemon(EcpError),
}

/// The invoking user's agent and the key in it that may sign this login.
async fn agent_for(
    daemon: &impl EcpDaemon,
    options: &Options,
    attempt: &Attempt<'_>,
) -> Result<(ecp_agent::AgentClient, p256::ecdsa::VerifyingKey), AgentSetup> {
    let login = attempt.login;
    let invoking = crate::agent::invoking_account(&login.ruser)
        .map_err(|m| AgentSetup::Problem(AgentProblem::Refused(m)))?;
    if invoking.uid != attempt.account.uid {
        // su to another account: that account's agent is not this
        // person's, and this person's key does not sign for it.
        return Err(AgentSetup::Problem(AgentProblem::Absent(format!(
            "the agent signs only for the person running the command: {} is not {} (log in as {} with its own key, or use a challenge)",
            invoking.name, login.user, login.user
        ))));
    }
    let mut client = crate::agent::connect(
        attempt.account,
        login.agent_socket.as_deref(),
        options.agent_timeout,
    )
    .map_err(AgentSetup::Problem)?;
    let allowed = daemon
        .signing_keys(login.user.as_str())
        .await
        .map_err(AgentSetup::Daemon)?;
    let key = crate::agent::choose_key(&mut client, &allowed, login.user.as_str())
        .map_err(AgentSetup::Problem)?;
    Ok((client, key))
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
    let pem = match ecp_core::user_files::read_key_file_as(account, path) {
        Ok(pem) => pem,
        Err(e @ FileError::NotFound { .. }) => {
            log.error(&format!(
                "user={user} outcome=failure reason=\"key file {e}\""
            ));
            // The usual cause: the key is on the person's own machine and
            // this is sudo on a server they reached over ssh.
            conv.tell_error(&format!(
                "ecp: no key file on this host: {} (if your key is on your own machine, \
                 sign through the ecp agent that ssh forwards: pam_ecp mode=agent)",
                path.display()
            ));
            return KeyFileAnswer::NoAnswer;
        }
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
    warn_of_expiry(&daemon, login, conv, log, unix_now()).await
}

/// Tells the user of each certificate that expires soon; never denies.
async fn warn_of_expiry(
    daemon: &impl EcpDaemon,
    login: &Login,
    conv: &dyn Conversation,
    log: &Log,
    now: i64,
) -> Outcome {
    let Ok(certificates) = daemon.certificates(login.user.as_str()).await else {
        return Outcome::Ignore;
    };
    if certificates.is_empty() {
        return Outcome::Ignore;
    }
    for cert in &certificates {
        if expires_soon(cert.not_after, now) {
            let days_left = days_left(cert.not_after, now);
            let message = format!(
                "ecp: your certificate \"{}\" expires on {} ({} days); renew it with `ecpctl renew --key-out DIR` (or ask your admin)",
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

#[cfg(test)]
mod tests {
    use super::*;
    use ecp_core::bus::CertificateEntry;
    use ecp_core::keyfile::{encrypt_key_to_pem, generate_signing_key, KdfParams};
    use ecp_core::{HostName, RemoteHost};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use zeroize::Zeroizing;

    /// ecpd as the flow sees it: each answer scripted, each call recorded.
    #[derive(Default)]
    struct FakeDaemon {
        certificates: RefCell<Option<Result<Vec<CertificateEntry>, EcpError>>>,
        challenge: RefCell<Option<Result<String, EcpError>>>,
        verify: RefCell<Option<Result<(), EcpError>>>,
        needs_signature: RefCell<Option<Result<bool, EcpError>>>,
        signing_keys: RefCell<Option<Result<Vec<Vec<u8>>, EcpError>>>,
        calls: RefCell<Vec<String>>,
        /// The signature text of the last Verify call.
        signature: RefCell<Option<String>>,
        /// The certificate of the last VerifyPresented call.
        presented: RefCell<Option<Vec<u8>>>,
    }

    fn unscripted(call: &str) -> EcpError {
        EcpError::ZBus(zbus::Error::Failure(format!("{call}: not scripted")))
    }

    impl EcpDaemon for FakeDaemon {
        async fn certificates(&self, _user: &str) -> Result<Vec<CertificateEntry>, EcpError> {
            self.calls.borrow_mut().push("list".into());
            self.certificates
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Err(unscripted("list")))
        }
        async fn challenge(&self, _: &str, _: &str, _: &str) -> Result<String, EcpError> {
            self.calls.borrow_mut().push("challenge".into());
            self.challenge
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Err(unscripted("challenge")))
        }
        async fn verify(&self, _user: &str, _token: &str, signature: &str) -> Result<(), EcpError> {
            self.calls.borrow_mut().push("verify".into());
            *self.signature.borrow_mut() = Some(signature.to_owned());
            self.verify
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Err(unscripted("verify")))
        }
        async fn verify_presented(
            &self,
            _user: &str,
            _token: &str,
            signature: &str,
            certificate: &[u8],
        ) -> Result<(), EcpError> {
            self.calls.borrow_mut().push("verify_presented".into());
            *self.signature.borrow_mut() = Some(signature.to_owned());
            *self.presented.borrow_mut() = Some(certificate.to_vec());
            self.verify
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Err(unscripted("verify_presented")))
        }
        async fn signing_keys(&self, _user: &str) -> Result<Vec<Vec<u8>>, EcpError> {
            self.calls.borrow_mut().push("signing_keys".into());
            self.signing_keys
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Err(unscripted("signing_keys")))
        }
        async fn needs_signature(&self, _user: &str) -> Result<bool, EcpError> {
            self.calls.borrow_mut().push("needs_signature".into());
            self.needs_signature
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Err(unscripted("needs_signature")))
        }
    }

    /// The person at the keyboard: answers in order, everything shown kept.
    #[derive(Default)]
    struct Script {
        answers: RefCell<VecDeque<Option<String>>>,
        prompts: RefCell<Vec<String>>,
        errors: RefCell<Vec<String>>,
        infos: RefCell<Vec<String>>,
    }

    impl Script {
        fn answering(answers: &[Option<&str>]) -> Self {
            let script = Script::default();
            script
                .answers
                .borrow_mut()
                .extend(answers.iter().map(|a| a.map(str::to_owned)));
            script
        }
        fn next(&self, prompt: &str) -> Option<String> {
            self.prompts.borrow_mut().push(prompt.to_owned());
            self.answers.borrow_mut().pop_front().flatten()
        }
    }

    impl Conversation for Script {
        fn ask_hidden(&self, prompt: &str) -> Option<Zeroizing<Vec<u8>>> {
            self.next(prompt).map(|a| Zeroizing::new(a.into_bytes()))
        }
        fn ask_visible(&self, prompt: &str) -> Option<String> {
            self.next(prompt)
        }
        fn tell_error(&self, message: &str) {
            self.errors.borrow_mut().push(message.to_owned());
        }
        fn tell_info(&self, message: &str) {
            self.infos.borrow_mut().push(message.to_owned());
        }
    }

    /// Root's account: the one account every test machine has.
    fn root() -> User {
        User::from_uid(nix::unistd::Uid::from_raw(0))
            .unwrap()
            .unwrap()
    }

    fn login(rhost: &str) -> Login {
        Login {
            user: UserName::parse("root").unwrap(),
            service: ServiceName::parse("sshd").unwrap(),
            rhost: rhost.into(),
            ruser: String::new(),
            tty: String::new(),
            caller_is_root: true,
            agent_socket: None,
            session_local: None,
        }
    }

    fn token(user: &str, service: &str, rhost: &str) -> String {
        let now = unix_now() as u64;
        Challenge::unsealed(
            UserName::parse(user).unwrap(),
            HostName::parse("server").unwrap(),
            ServiceName::parse(service).unwrap(),
            RemoteHost::parse(rhost).unwrap(),
            0,
            now,
            300,
        )
        .unwrap()
        .to_token()
    }

    /// Runs the authentication flow against `daemon` and `script`.
    fn run(
        daemon: &FakeDaemon,
        options: &Options,
        login: &Login,
        mode: Mode,
        key_path: &std::path::Path,
        script: &Script,
    ) -> (Outcome, Log) {
        let account = root();
        let attempt = Attempt {
            login,
            account: &account,
            plan: Plan::only(mode),
            key_path,
            cert_path: key_path.with_file_name("certificate.pem"),
        };
        let log = Log::new("sshd", true);
        let outcome = zbus::block_on(authenticate_with(daemon, options, &attempt, script, &log));
        (outcome, log)
    }

    fn challenge_mode(daemon: &FakeDaemon, script: &Script, rhost: &str) -> Outcome {
        let options = Options::default();
        run(
            daemon,
            &options,
            &login(rhost),
            Mode::Challenge,
            std::path::Path::new("/nonexistent"),
            script,
        )
        .0
    }

    fn scripted(
        challenge: Result<String, EcpError>,
        verify: Option<Result<(), EcpError>>,
    ) -> FakeDaemon {
        let daemon = FakeDaemon::default();
        *daemon.challenge.borrow_mut() = Some(challenge);
        *daemon.verify.borrow_mut() = verify;
        daemon
    }

    #[test]
    fn only_a_signature_the_daemon_verifies_is_a_success() {
        let token = token("root", "sshd", "203.0.113.9");
        let daemon = scripted(Ok(token.clone()), Some(Ok(())));
        let script = Script::answering(&[Some(" MEUCIQsig \n")]);
        assert_eq!(
            challenge_mode(&daemon, &script, "203.0.113.9"),
            Outcome::Success
        );
        assert_eq!(
            *script.prompts.borrow(),
            [prompt_with_token(&token, crate::options::DEFAULT_PROMPT)]
        );
        assert_eq!(daemon.signature.borrow().as_deref(), Some("MEUCIQsig"));

        for (refusal, outcome) in [
            (
                EcpError::AuthenticationFailed("bad signature".into()),
                Outcome::Denied,
            ),
            (EcpError::ChallengeUnknown("used".into()), Outcome::Denied),
            // The answer never came: fail closed, never a success.
            (
                EcpError::ZBus(zbus::Error::Failure("timeout".into())),
                Outcome::Unavailable,
            ),
        ] {
            let daemon = scripted(Ok(token.clone()), Some(Err(refusal)));
            let script = Script::answering(&[Some("MEUCIQsig")]);
            assert_eq!(challenge_mode(&daemon, &script, "203.0.113.9"), outcome);
        }
    }

    #[test]
    fn no_answer_at_the_prompt_is_denied_without_asking_the_daemon() {
        for answer in [None, Some(""), Some("  \n")] {
            let daemon = scripted(Ok(token("root", "sshd", "")), Some(Ok(())));
            let script = Script::answering(&[answer]);
            assert_eq!(
                challenge_mode(&daemon, &script, ""),
                Outcome::Denied,
                "{answer:?}"
            );
            assert_eq!(*daemon.calls.borrow(), ["challenge"], "{answer:?}");
        }
    }

    #[test]
    fn a_challenge_for_another_login_or_a_malformed_one_fails_closed_unshown() {
        for wrong in [
            token("alice", "sshd", "203.0.113.9"),
            token("root", "sudo", "203.0.113.9"),
            token("root", "sshd", "198.51.100.7"),
            token("root", "sshd", ""),
            "AAAA".to_owned(),
            String::new(),
        ] {
            let daemon = scripted(Ok(wrong.clone()), Some(Ok(())));
            let script = Script::answering(&[Some("MEUCIQsig")]);
            assert_eq!(
                challenge_mode(&daemon, &script, "203.0.113.9"),
                Outcome::Unavailable,
                "{wrong}"
            );
            assert!(script.prompts.borrow().is_empty(), "{wrong}");
            assert_eq!(*daemon.calls.borrow(), ["challenge"]);
        }
    }

    #[test]
    fn a_throttled_challenge_is_explained_and_denied() {
        let daemon = scripted(
            Err(EcpError::RateLimited(
                "wait 20 s before the next try from this source".into(),
            )),
            None,
        );
        let script = Script::default();
        assert_eq!(
            challenge_mode(&daemon, &script, "203.0.113.9"),
            Outcome::Denied
        );
        assert_eq!(
            *script.errors.borrow(),
            ["ecp: wait 20 s before the next try from this source"]
        );
        assert!(script.prompts.borrow().is_empty());
    }

    #[test]
    fn nouserok_passes_on_only_whom_the_daemon_says_needs_no_signature() {
        let options = Options {
            nouserok: true,
            ..Options::default()
        };
        let daemon = FakeDaemon::default();
        *daemon.needs_signature.borrow_mut() = Some(Ok(false));
        let script = Script::default();
        let path = std::path::Path::new("/x");
        let (outcome, _) = run(
            &daemon,
            &options,
            &login(""),
            Mode::Challenge,
            path,
            &script,
        );
        assert_eq!(outcome, Outcome::Ignore);
        assert_eq!(*daemon.calls.borrow(), ["needs_signature"]);
        assert!(script.prompts.borrow().is_empty());

        // A user the daemon says needs one (enrolled, or any user once
        // CAs are trusted) is asked, and a failure is a failure.
        let daemon = scripted(
            Ok(token("root", "sshd", "")),
            Some(Err(EcpError::AuthenticationFailed("bad".into()))),
        );
        *daemon.needs_signature.borrow_mut() = Some(Ok(true));
        let script = Script::answering(&[Some("MEUCIQsig")]);
        let (outcome, _) = run(
            &daemon,
            &options,
            &login(""),
            Mode::Challenge,
            path,
            &script,
        );
        assert_eq!(outcome, Outcome::Denied);
        assert_eq!(
            *daemon.calls.borrow(),
            ["needs_signature", "challenge", "verify"]
        );

        // Without nouserok the same user is asked and refused.
        let daemon = scripted(Err(EcpError::NotEnrolled("no certificate".into())), None);
        let (outcome, _) = run(
            &daemon,
            &Options::default(),
            &login(""),
            Mode::Challenge,
            path,
            &script,
        );
        assert_eq!(outcome, Outcome::Denied);
    }

    #[test]
    fn a_certificate_in_the_answer_is_presented_and_a_broken_one_refused() {
        let token = token("root", "sshd", "203.0.113.9");
        let answer = SignedAnswer {
            signature: "MEUCIQsig".into(),
            certificate_der: Some(vec![0x30, 0x03, 0x02, 0x01, 0x05]),
        };
        let daemon = scripted(Ok(token.clone()), Some(Ok(())));
        let script = Script::answering(&[Some(&answer.to_line())]);
        assert_eq!(
            challenge_mode(&daemon, &script, "203.0.113.9"),
            Outcome::Success
        );
        assert_eq!(*daemon.calls.borrow(), ["challenge", "verify_presented"]);
        assert_eq!(daemon.signature.borrow().as_deref(), Some("MEUCIQsig"));
        assert_eq!(*daemon.presented.borrow(), answer.certificate_der);

        let daemon = scripted(Ok(token), Some(Ok(())));
        let script = Script::answering(&[Some("MEUCIQsig:%%%not-base64")]);
        assert_eq!(
            challenge_mode(&daemon, &script, "203.0.113.9"),
            Outcome::Denied
        );
        assert_eq!(*daemon.calls.borrow(), ["challenge"]);
        assert!(
            script.errors.borrow()[0].contains("not base64"),
            "{:?}",
            script.errors.borrow()
        );
    }

    #[test]
    fn a_missing_key_file_or_a_remote_session_says_why_to_the_person() {
        // No key file: the person is told where it was looked for and
        // what to use instead; nothing is asked and nothing reaches the
        // daemon's verify.
        let daemon = scripted(Ok(token("root", "sshd", "")), None);
        let script = Script::default();
        let missing = std::path::Path::new("/nonexistent/ecp/private_key.pem");
        let (outcome, _) = run(
            &daemon,
            &Options::default(),
            &login(""),
            Mode::Keyfile,
            missing,
            &script,
        );
        assert_eq!(outcome, Outcome::Denied);
        assert!(script.prompts.borrow().is_empty());
        let errors = script.errors.borrow();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("no key file on this host: /nonexistent/ecp/private_key.pem")
                && errors[0].contains("mode=agent"),
            "{errors:?}"
        );

        // mode=keyfile in a session logind calls remote (sudo inside ssh).
        let script = Script::default();
        let options = Options {
            mode: Mode::Keyfile,
            ..Options::default()
        };
        let remote = Login {
            session_local: Some(false),
            ..login("")
        };
        let log = Log::new("sudo", false);
        assert_eq!(
            choose_mode(&options, &remote, &root(), &script, &log).map(|(p, _)| p),
            Err(Outcome::Denied)
        );
        let errors = script.errors.borrow();
        assert!(
            errors.len() == 1 && errors[0].contains("this session came from the network"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_console_rescue_is_for_root_at_a_console_through_a_root_program_only() {
        use ConsoleRescue::{Any, Off, VirtualTerminals};
        for console in ["tty1", "/dev/tty1", "/dev/tty63"] {
            assert!(is_console(console, Any) && is_console(console, VirtualTerminals));
            assert!(!is_console(console, Off));
        }
        // Serial lines and hypervisor consoles: only without "=vt", since
        // they may be reachable from afar (IPMI, a cloud's serial console).
        for serial in [
            "ttyS0",
            "/dev/ttyAMA0",
            "hvc0",
            "console",
            "ttysclp0",
            "xvc0",
        ] {
            assert!(is_console(serial, Any), "{serial}");
            assert!(!is_console(serial, VirtualTerminals), "{serial}");
        }
        for other in [
            "",
            "ssh",
            "/dev/pts/0",
            "pts/3",
            ":0",
            "tty",
            "/dev/ttyx1",
            "tty1 ",
            "/dev/tty1/../pts/0",
        ] {
            assert!(!is_console(other, Any), "{other:?}");
        }
        let on = Options {
            root_console_rescue: Any,
            ..Options::default()
        };
        let at_console = Login {
            tty: "/dev/tty1".into(),
            ..login("")
        };
        assert!(console_rescue_applies(&on, &at_console, &root()));
        // Off unless the option is given.
        assert!(!console_rescue_applies(
            &Options::default(),
            &at_console,
            &root()
        ));
        // Not from the network, not on a pseudo-terminal, not through a
        // set-uid program a user started.
        let from_network = Login {
            rhost: "203.0.113.9".into(),
            tty: "/dev/tty1".into(),
            ..login("")
        };
        assert!(!console_rescue_applies(&on, &from_network, &root()));
        let on_pts = Login {
            tty: "/dev/pts/0".into(),
            ..login("")
        };
        assert!(!console_rescue_applies(&on, &on_pts, &root()));
        let by_a_user = Login {
            caller_is_root: false,
            tty: "/dev/tty1".into(),
            ..login("")
        };
        assert!(!console_rescue_applies(&on, &by_a_user, &root()));
        // Not for another account at the console.
        let nobody = User::from_name("nobody").unwrap().unwrap();
        assert!(!console_rescue_applies(&on, &at_console, &nobody));
    }

    /// A key file for root in a temporary directory.
    fn key_file(
        passphrase: &str,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        p256::ecdsa::SigningKey,
    ) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private_key.pem");
        let key = generate_signing_key();
        let pem = encrypt_key_to_pem(
            &key,
            &Passphrase::new(passphrase.as_bytes().to_vec()).unwrap(),
            KdfParams::INSECURE_FAST_FOR_TESTS,
        )
        .unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(pem.as_bytes())
            .unwrap();
        (dir, path, key)
    }

    #[test]
    fn a_key_file_signs_the_challenge_and_a_wrong_passphrase_is_counted() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the key file must belong to root's account");
            return;
        }
        let (_dir, path, key) = key_file("right passphrase");
        let token = token("root", "sshd", "");
        let options = Options::default();

        let daemon = scripted(Ok(token.clone()), Some(Ok(())));
        let script = Script::answering(&[Some("right passphrase")]);
        let (outcome, log) = run(&daemon, &options, &login(""), Mode::Keyfile, &path, &script);
        assert_eq!(outcome, Outcome::Success);
        let signature = daemon.signature.borrow().clone().unwrap();
        Challenge::from_token(&token)
            .unwrap()
            .verify(key.verifying_key(), &signature)
            .unwrap();
        assert!(script.prompts.borrow()[0].starts_with("Passphrase for ecp key "));
        assert!(!log
            .lines
            .borrow()
            .iter()
            .any(|l| l.contains("right passphrase")));

        // A wrong passphrase reaches the daemon as an empty signature, so
        // it counts there like a failed one.
        let daemon = scripted(
            Ok(token.clone()),
            Some(Err(EcpError::AuthenticationFailed("no signature".into()))),
        );
        let script = Script::answering(&[Some("hunter2-not-it")]);
        let (outcome, log) = run(&daemon, &options, &login(""), Mode::Keyfile, &path, &script);
        assert_eq!(outcome, Outcome::Denied);
        assert_eq!(daemon.signature.borrow().as_deref(), Some(""));
        assert!(!log
            .lines
            .borrow()
            .iter()
            .any(|l| l.contains("hunter2-not-it")));

        // A daemon that accepts an empty signature is not believed.
        let daemon = scripted(Ok(token), Some(Ok(())));
        let script = Script::answering(&[Some("hunter2-not-it")]);
        let (outcome, _) = run(&daemon, &options, &login(""), Mode::Keyfile, &path, &script);
        assert_eq!(outcome, Outcome::Unavailable);
    }

    #[test]
    fn remote_logins_and_remote_sessions_never_use_a_key_file_on_this_server() {
        let account = root();
        let log = Log::new("sshd", false);
        let choose = |mode: Mode, allow: bool, rhost: &str, local: Option<bool>, agent: bool| {
            let options = Options {
                mode,
                allow_remote_keyfile: allow,
                keyfile: "/".into(), // exists: auto would pick it locally
                ..Options::default()
            };
            let login = Login {
                session_local: local,
                agent_socket: agent.then(|| "/run/agent.sock".into()),
                ..login(rhost)
            };
            choose_mode(&options, &login, &account, &Script::default(), &log).map(|(plan, _)| plan)
        };
        let only = |mode| Ok(Plan::only(mode));
        let agent_then = |mode| {
            Ok(Plan {
                mode: Mode::Agent,
                without_agent: Some(mode),
            })
        };
        let (local, remote, unknown) = (Some(true), Some(false), None);
        // mode=auto: a key file only where logind vouches for a local
        // session; sudo inside ssh (no PAM_RHOST, a remote session) or a
        // host without logind gets the agent or a challenge.
        assert_eq!(
            choose(Mode::Auto, false, "203.0.113.9", local, false),
            only(Mode::Challenge)
        );
        assert_eq!(
            choose(Mode::Auto, false, "", local, false),
            only(Mode::Keyfile)
        );
        assert_eq!(
            choose(Mode::Auto, false, "", remote, false),
            only(Mode::Challenge)
        );
        assert_eq!(
            choose(Mode::Auto, false, "", unknown, false),
            only(Mode::Challenge)
        );
        assert_eq!(
            choose(Mode::Auto, false, "", remote, true),
            agent_then(Mode::Challenge)
        );
        assert_eq!(
            choose(Mode::Auto, false, "", local, true),
            agent_then(Mode::Keyfile)
        );
        // A login from the network never uses this process's agent.
        assert_eq!(
            choose(Mode::Auto, false, "203.0.113.9", local, true),
            only(Mode::Challenge)
        );
        assert_eq!(
            choose(Mode::Agent, false, "203.0.113.9", local, true),
            Err(Outcome::Denied)
        );
        assert_eq!(
            choose(Mode::Agent, false, "", remote, false),
            only(Mode::Agent)
        );
        // mode=keyfile, set by the admin: refused for a login from the
        // network or a session logind calls remote.
        assert_eq!(
            choose(Mode::Keyfile, false, "203.0.113.9", local, false),
            Err(Outcome::Denied)
        );
        assert_eq!(
            choose(Mode::Keyfile, false, "", remote, false),
            Err(Outcome::Denied)
        );
        assert_eq!(
            choose(Mode::Keyfile, false, "", unknown, false),
            only(Mode::Keyfile)
        );
        assert_eq!(
            choose(Mode::Keyfile, true, "203.0.113.9", remote, false),
            only(Mode::Keyfile)
        );
        assert_eq!(
            choose(Mode::Challenge, false, "", local, true),
            only(Mode::Challenge)
        );
    }

    /// An agent listening at `dir`/agent.sock that answers each request
    /// with `answer(request)` (raw bytes), for as long as the test runs.
    fn fake_agent(
        dir: &std::path::Path,
        answer: impl Fn(ecp_agent::Request) -> Vec<u8> + Send + 'static,
    ) -> std::path::PathBuf {
        use std::io::Write;
        let path = dir.join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                while let Ok(Some(message)) =
                    ecp_agent::Message::read_from(&mut stream, ecp_agent::proto::MAX_MESSAGE_LEN)
                {
                    let request = ecp_agent::Request::parse(&message).unwrap();
                    if stream.write_all(&answer(request)).is_err() {
                        break;
                    }
                }
            }
        });
        path
    }

    /// An agent holding `key` that signs whatever it is asked.
    fn agent_holding(dir: &std::path::Path, key: p256::ecdsa::SigningKey) -> std::path::PathBuf {
        use ecp_agent::key::{p256_key_blob, p256_signature_blob};
        use ecp_agent::proto::{identities_answer, sign_response};
        use p256::ecdsa::signature::Signer;
        fake_agent(dir, move |request| match request {
            ecp_agent::Request::Identities => {
                identities_answer(&[(p256_key_blob(key.verifying_key()), "k".into())]).to_bytes()
            }
            ecp_agent::Request::Sign { data, .. } => {
                let signature: p256::ecdsa::Signature = key.sign(&data);
                sign_response(&p256_signature_blob(&signature)).to_bytes()
            }
            _ => ecp_agent::Message::bare(ecp_agent::proto::SSH_AGENT_FAILURE).to_bytes(),
        })
    }

    /// A sudo-like login of the user running the tests, with the agent at
    /// `socket`, planned as `plan`.
    fn agent_login(
        daemon: &FakeDaemon,
        socket: &std::path::Path,
        plan: Plan,
        script: &Script,
    ) -> Outcome {
        let account = User::from_uid(nix::unistd::getuid()).unwrap().unwrap();
        let login = Login {
            user: UserName::parse(&account.name).unwrap(),
            service: ServiceName::parse("sudo").unwrap(),
            agent_socket: Some(socket.as_os_str().to_owned()),
            ..login("")
        };
        let options = Options {
            agent_timeout: std::time::Duration::from_secs(2),
            ..Options::default()
        };
        let key_path = std::path::Path::new("/nonexistent/key.pem");
        let attempt = Attempt {
            login: &login,
            account: &account,
            plan,
            key_path,
            cert_path: key_path.with_file_name("certificate.pem"),
        };
        let log = Log::new("sudo", true);
        zbus::block_on(authenticate_with(daemon, &options, &attempt, script, &log))
    }

    fn spki(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
        ecp_core::certificate::public_key_der(key.verifying_key())
    }

    #[test]
    fn the_agent_signs_with_the_key_that_may_sign_and_its_signature_is_checked_first() {
        let dir = tempfile::tempdir().unwrap();
        let enrolled = generate_signing_key();
        let socket = agent_holding(dir.path(), enrolled.clone());
        let user = User::from_uid(nix::unistd::getuid()).unwrap().unwrap().name;
        let token = token(&user, "sudo", "");
        let daemon = scripted(Ok(token.clone()), Some(Ok(())));
        *daemon.signing_keys.borrow_mut() =
            Some(Ok(vec![spki(&generate_signing_key()), spki(&enrolled)]));
        let script = Script::default();
        assert_eq!(
            agent_login(&daemon, &socket, Plan::only(Mode::Agent), &script),
            Outcome::Success
        );
        assert_eq!(
            *daemon.calls.borrow(),
            ["signing_keys", "challenge", "verify"]
        );
        let signature = daemon.signature.borrow().clone().unwrap();
        Challenge::from_token(&token)
            .unwrap()
            .verify(enrolled.verifying_key(), &signature)
            .unwrap();
        assert!(script.prompts.borrow().is_empty(), "nothing typed");

        // An agent whose keys may not sign: no challenge is spent; with
        // mode=agent the login fails, with mode=auto a challenge is shown.
        let daemon = scripted(Ok(token.clone()), None);
        *daemon.signing_keys.borrow_mut() = Some(Ok(vec![spki(&generate_signing_key())]));
        let script = Script::default();
        assert_eq!(
            agent_login(&daemon, &socket, Plan::only(Mode::Agent), &script),
            Outcome::Denied
        );
        assert_eq!(*daemon.calls.borrow(), ["signing_keys"]);
        assert!(
            script.errors.borrow()[0].contains("none of the 1 keys in your agent"),
            "{:?}",
            script.errors.borrow()
        );

        let daemon = scripted(Ok(token.clone()), None);
        *daemon.signing_keys.borrow_mut() = Some(Ok(vec![]));
        let script = Script::answering(&[None]);
        let auto = Plan {
            mode: Mode::Agent,
            without_agent: Some(Mode::Challenge),
        };
        assert_eq!(
            agent_login(&daemon, &socket, auto, &script),
            Outcome::Denied
        );
        assert!(
            script.prompts.borrow()[0].contains("ecp challenge"),
            "{:?}",
            script.prompts.borrow()
        );
    }

    #[test]
    fn a_hostile_absent_or_foreign_agent_fails_closed_with_its_own_message() {
        use ecp_agent::proto::{sign_response, SSH_AGENT_FAILURE};
        let user = User::from_uid(nix::unistd::getuid()).unwrap().unwrap().name;
        let enrolled = generate_signing_key();
        let daemon_for = || {
            let daemon = scripted(Ok(token(&user, "sudo", "")), Some(Ok(())));
            *daemon.signing_keys.borrow_mut() = Some(Ok(vec![spki(&enrolled)]));
            daemon
        };
        let listing = {
            let public = *enrolled.verifying_key();
            move |reply: Vec<u8>| {
                move |request| match request {
                    ecp_agent::Request::Identities => ecp_agent::proto::identities_answer(&[(
                        ecp_agent::key::p256_key_blob(&public),
                        "k".into(),
                    )])
                    .to_bytes(),
                    _ => reply.clone(),
                }
            }
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "refuses",
                ecp_agent::Message::bare(SSH_AGENT_FAILURE).to_bytes(),
                "your agent refused to sign",
            ),
            (
                "garbage",
                sign_response(b"garbage").to_bytes(),
                "the agent could not sign",
            ),
            (
                "oversized",
                {
                    let mut huge = (1u32 << 20).to_be_bytes().to_vec();
                    huge.push(14);
                    huge
                },
                "longer than",
            ),
            ("slow", vec![0, 0], "did not answer within"),
        ];
        for (name, reply, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let socket = fake_agent(dir.path(), listing(reply));
            let daemon = daemon_for();
            let script = Script::default();
            assert_eq!(
                agent_login(&daemon, &socket, Plan::only(Mode::Agent), &script),
                Outcome::Denied,
                "{name}"
            );
            let errors = script.errors.borrow();
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{name}: {errors:?}"
            );
            assert!(
                !daemon.calls.borrow().contains(&"verify".to_owned()),
                "{name}"
            );
        }

        // No agent at the path, and a path that is not a socket.
        let dir = tempfile::tempdir().unwrap();
        let script = Script::default();
        let gone = dir.path().join("gone.sock");
        assert_eq!(
            agent_login(&daemon_for(), &gone, Plan::only(Mode::Agent), &script),
            Outcome::Denied
        );
        assert!(
            script.errors.borrow()[0].contains("no agent at"),
            "{:?}",
            script.errors.borrow()
        );
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let script = Script::default();
        assert_eq!(
            agent_login(&daemon_for(), &file, Plan::only(Mode::Agent), &script),
            Outcome::Denied
        );
        assert!(
            script.errors.borrow()[0].contains("is not a socket"),
            "{:?}",
            script.errors.borrow()
        );

        // Another user's socket (needs root to make one).
        if nix::unistd::geteuid().is_root() {
            let socket = agent_holding(dir.path(), enrolled.clone());
            std::os::unix::fs::chown(&socket, Some(65534), None).unwrap();
            let script = Script::default();
            assert_eq!(
                agent_login(&daemon_for(), &socket, Plan::only(Mode::Agent), &script),
                Outcome::Denied
            );
            assert!(
                script.errors.borrow()[0].contains("belongs to uid 65534"),
                "{:?}",
                script.errors.borrow()
            );
        }
    }

    #[test]
    fn certificates_that_expire_soon_are_announced_and_never_deny() {
        let now = 1_800_000_000;
        let entry = |label: &str, days: i64| CertificateEntry {
            user: "root".into(),
            label: label.into(),
            fingerprint: "ab".repeat(32),
            not_before: now - 86_400,
            not_after: now + days * 86_400 + 60,
            enrolled_at: now,
            last_used: 0,
            renewed_from: String::new(),
        };
        let daemon = FakeDaemon::default();
        *daemon.certificates.borrow_mut() = Some(Ok(vec![entry("laptop", 3), entry("desk", 90)]));
        let script = Script::default();
        let log = Log::new("sshd", false);
        let outcome = zbus::block_on(warn_of_expiry(&daemon, &login(""), &script, &log, now));
        assert_eq!(outcome, Outcome::Success);
        let infos = script.infos.borrow();
        assert_eq!(infos.len(), 1, "{infos:?}");
        assert!(
            infos[0].contains("\"laptop\"")
                && infos[0].contains("(3 days)")
                && infos[0].contains("ecpctl renew"),
            "{infos:?}"
        );

        // No daemon answer: nothing to say, and no refusal.
        let daemon = FakeDaemon::default();
        let outcome = zbus::block_on(warn_of_expiry(&daemon, &login(""), &script, &log, now));
        assert_eq!(outcome, Outcome::Ignore);
    }
}
