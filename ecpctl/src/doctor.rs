//! `ecpctl doctor`: checks a setup end to end and says what is wrong.

use std::path::{Path, PathBuf};

use ecp_core::bus::AdminProxy;
use ecp_core::keyfile_io::{read_key_file, FileError};
use ecp_core::when::{days_left, expires_soon, format_utc, unix_now};

use crate::cli::DoctorArgs;
use crate::failure::Failure;
use crate::keys::{expected_owner, key_path_or_default};
use crate::pam_stack;

/// Where Debian and others install PAM modules.
fn module_dirs() -> Vec<PathBuf> {
    let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
    vec![
        PathBuf::from(format!("/usr/lib/{triple}/security")),
        PathBuf::from(format!("/lib/{triple}/security")),
        PathBuf::from("/usr/lib/security"),
        PathBuf::from("/lib/security"),
        PathBuf::from("/usr/lib64/security"),
    ]
}

struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: &str) {
        println!("ok    {what}");
    }
    fn warn(&self, what: &str) {
        println!("warn  {what}");
    }
    fn fail(&mut self, what: &str) {
        println!("FAIL  {what}");
        self.problems += 1;
    }
    /// Exit status 1 (CheckFailed) when any line said FAIL.
    fn finish(&self) -> Result<(), Failure> {
        if self.problems > 0 {
            return Err(Failure::CheckFailed(format!(
                "{} problem(s) found",
                self.problems
            )));
        }
        println!("no problems found");
        Ok(())
    }
}

/// How long before a CRL's nextUpdate doctor starts to warn.
const CRL_WARNING_SECS: i64 = 86_400;

/// The organisation CAs ecpd trusts: a CRL that is past its nextUpdate
/// (that CA's certificates are refused), or due within a day; a CA file
/// that the daemon could not use.
fn check_trust(report: &mut Report, trust: &ecp_core::bus::TrustReport, now: i64) {
    if !trust.configured {
        return;
    }
    if !trust.problem.is_empty() {
        report.fail(&format!(
            "ecpd could not use its CA or CRL files, and keeps what it had: {}",
            trust.problem
        ));
    }
    for ca in &trust.cas {
        let name = &ca.subject;
        if ca.not_after <= now {
            report.fail(&format!(
                "trusted CA {name} expired on {}: its certificates are refused",
                format_utc(ca.not_after)
            ));
        }
        match (ca.crl_this_update, ca.crl_next_update) {
            (0, _) => report.warn(&format!(
                "no CRL is loaded for CA {name}: with require_crl (the default) its certificates are refused"
            )),
            (_, 0) => report.ok(&format!("CA {name}: CRL without nextUpdate")),
            (_, next) if next <= now => report.fail(&format!(
                "the CRL of CA {name} is past its nextUpdate ({}): its certificates are refused until a fresh CRL is in crl_file",
                format_utc(next)
            )),
            (_, next) if next - now < CRL_WARNING_SECS => report.warn(&format!(
                "the CRL of CA {name} is due on {}: publish a fresh one before then",
                format_utc(next)
            )),
            (_, next) => report.ok(&format!(
                "CA {name}: CRL current until {}",
                format_utc(next)
            )),
        }
    }
}

/// The directory: a probe that found no server fails (with what that
/// means for logins); lookups failing since the last good one warn; a
/// non-root run cannot probe and says so.
fn check_directory(report: &mut Report, d: &ecp_core::bus::DirectoryReport, now: i64) {
    if !d.configured {
        return;
    }
    let servers = d.servers.join(", ");
    if !d.probed {
        report.warn(&format!(
            "directory {servers}: not tried (run doctor as root to try the servers)"
        ));
    } else if d.answered_by.is_empty() {
        let serving = if d.cached_users == 0 {
            "no user has a cached answer, so directory users cannot log in".to_owned()
        } else {
            format!(
                "{} cached users keep logging in until their answer is {} s old (the oldest was fetched {} s ago)",
                d.cached_users,
                d.max_offline_secs,
                now.saturating_sub(d.oldest_cached)
            )
        };
        report.fail(&format!("directory unreachable: {}; {serving}", d.problem));
        if d.servers.iter().any(|uri| !uri.starts_with("ldapi://")) {
            report.warn(
                "the packaged ecpd.service keeps ecpd off the network: for ldap(s):// servers install /usr/share/doc/ecp/examples/ecpd-directory.conf as a drop-in (see the file)",
            );
        }
    } else {
        report.ok(&format!("directory {} answers", d.answered_by));
    }
    if d.last_failure > d.last_success {
        report.warn(&format!(
            "the last directory lookup failed ({} s ago): {}",
            now.saturating_sub(d.last_failure),
            d.last_failure_reason
        ));
    }
}

/// Whose key file and enrollment doctor checks: `--user`, else whoever
/// runs it, except root without `--user` or `--key`: root's own key file
/// and enrollment are no sign of a healthy host, and failing on them
/// would make `sudo ecpctl doctor` useless as a gate.
fn user_to_check(args: &DoctorArgs) -> Option<String> {
    if let Some(user) = &args.user {
        return Some(user.to_string());
    }
    let uid = nix::unistd::getuid();
    if uid.is_root() && args.key.is_none() {
        return None;
    }
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
}

pub fn run(bus: &str, args: &DoctorArgs) -> Result<(), Failure> {
    let mut report = Report { problems: 0 };
    let user_checked = user_to_check(args);
    let user = user_checked.clone().unwrap_or_default();

    // 1. The daemon.
    let daemon = zbus::block_on(async {
        let unreachable = |e: &zbus::Error| crate::unreachable::reason(bus, e);
        let conn = ecp_core::bus::connection_builder(bus)
            .method_timeout(std::time::Duration::from_secs(10))
            .build()
            .await
            .map_err(|e| unreachable(&e))?;
        let admin = AdminProxy::new(&conn).await.map_err(|e| unreachable(&e))?;
        let status = admin.status().await.map_err(|e| match e {
            ecp_core::bus::EcpError::ZBus(e) => unreachable(&e),
            other => other.to_string(),
        })?;
        let certificates = match user_checked {
            Some(_) => Some(admin.list(&user).await.map_err(|e| e.to_string())),
            None => None,
        };
        let trust = admin.trust().await;
        let directory = admin.directory().await;
        Ok::<_, String>((status, certificates, trust, directory))
    });
    // Whether ecpd.toml names network directory servers (for the SELinux
    // boolean); known only when ecpd tells.
    let mut network_directory = None;
    let (status, certificates) = match daemon {
        Ok((status, certs, trust, directory)) => {
            report.ok(&format!(
                "ecpd {} is running on {} (bus: {bus})",
                status.version, status.host
            ));
            match trust {
                Ok(trust) => check_trust(&mut report, &trust, unix_now()),
                Err(ecp_core::bus::EcpError::AccessDenied(_)) => {
                    report.warn("the organisation CAs are not checked: run doctor as root")
                }
                Err(e) => report.fail(&format!("cannot ask ecpd for its CAs: {e}")),
            }
            match directory {
                Ok(directory) => {
                    network_directory = Some(
                        directory.configured
                            && directory.servers.iter().any(|u| !u.starts_with("ldapi://")),
                    );
                    check_directory(&mut report, &directory, unix_now())
                }
                Err(ecp_core::bus::EcpError::AccessDenied(_)) => {
                    report.warn("the directory is not checked: run doctor as root")
                }
                Err(e) => report.fail(&format!("cannot ask ecpd about the directory: {e}")),
            }
            (Some(status), Some(certs))
        }
        Err(e) => {
            report.fail(&format!("ecpd cannot be reached: {e}"));
            (None, None)
        }
    };

    // 2. The module.
    match module_dirs()
        .into_iter()
        .map(|d| d.join("pam_ecp.so"))
        .find(|p| p.exists())
    {
        Some(path) => report.ok(&format!("PAM module installed: {}", path.display())),
        None => report.fail("PAM module pam_ecp.so is not installed in any PAM module directory"),
    }

    // 3. PAM services, and whether pam_ecp in each is a real second factor.
    let users_enrolled = match &status {
        Some(status) if nix::unistd::getuid().is_root() => Some(status.users > 0),
        _ => None,
    };
    let vendor_dirs = if !args.vendor_pam_dir.is_empty() {
        args.vendor_pam_dir.clone()
    } else if args.pam_dir == Path::new("/etc/pam.d") {
        pam_stack::VENDOR_DIRS.iter().map(PathBuf::from).collect()
    } else {
        Vec::new()
    };
    let context = pam_stack::Context {
        users_enrolled,
        vendor_dirs,
    };
    match pam_stack::lint_dir(&args.pam_dir, &context) {
        Err(e) => report.fail(&format!(
            "cannot read the PAM directory {}: {e}",
            args.pam_dir.display()
        )),
        Ok(services) if services.is_empty() => report.warn(&format!(
            "no PAM service in {} uses pam_ecp for auth (see `pam-auth-update` or README: configure sshd and sudo)",
            args.pam_dir.display()
        )),
        Ok(services) => {
            if services.iter().any(|s| s.name == "sshd") {
                check_sshd(&mut report, &args.sshd_config);
            }
            let mut seen = std::collections::BTreeSet::new();
            for service in services {
                let uses: Vec<String> = service
                    .uses
                    .iter()
                    .map(|(place, mode)| {
                        if place.file.file_name() == Some(std::ffi::OsStr::new(&service.name)) {
                            format!("auth mode={mode}")
                        } else {
                            let via = place.file.file_name().unwrap_or_default().to_string_lossy();
                            format!("auth mode={mode} (via {via})")
                        }
                    })
                    .collect();
                report.ok(&format!("PAM service {}: {}", service.name, uses.join(", ")));
                for finding in service.findings {
                    // A shared file (common-auth) is named once, not once
                    // per service that includes it.
                    if seen.insert(finding.clone()) {
                        report.fail(&format!("{}: {}", finding.place, finding.why));
                    }
                }
            }
            if users_enrolled.is_none() {
                report.warn("whether \"nouserok\" is still needed was not checked (run as root with ecpd running)");
            }
        }
    }

    // 4. The key file of the user checked, where pam_ecp would look.
    let key = match &user_checked {
        Some(user) => key_file_of(args, user)?,
        None => None,
    };
    if user_checked.is_some() && key.is_none() {
        report.fail(&format!("no account named {user} on this system"));
    }

    // SELinux: the module, its boolean, and labels that would deny.
    let (key_path, home) = key
        .as_ref()
        .map(|k| (k.path.clone(), k.home.clone()))
        .unwrap_or_default();
    let files = crate::selinux::files_to_check(&key_path, home.as_deref());
    if let Some(state) = crate::selinux::read(Path::new(crate::selinux::SELINUXFS), &files) {
        if key.is_some() && !crate::selinux::key_in_labelled_place(&key_path, home.as_deref()) {
            report.warn(&format!(
                "key file {} is outside ~/.config/ecp: under SELinux the login programs \
                 read key files only there (type ecp_home_t), so key-file logins with it fail",
                key_path.display()
            ));
        }
        for (level, line) in crate::selinux::assess(&state, network_directory) {
            match level {
                crate::selinux::Level::Ok => report.ok(&line),
                crate::selinux::Level::Warn => report.warn(&line),
                crate::selinux::Level::Fail => report.fail(&line),
            }
        }
    }

    let Some(key) = key else {
        if user_checked.is_none() {
            report.ok(
                "checked this host only: `--user NAME` adds that user's key file and enrollment",
            );
        }
        return report.finish();
    };
    check_key_file(&mut report, &user, &key, args.key.is_some());

    // 5. Enrollment.

    match certificates.flatten() {
        None => report.fail("cannot check enrollment without the daemon"),
        Some(Err(e)) => report.fail(&format!("cannot list certificates of {user}: {e}")),
        Some(Ok(list)) if list.is_empty() => report.fail(&format!(
            "no certificate enrolled for {user} (root: `ecpctl enroll {user} --cert FILE`)"
        )),
        Some(Ok(list)) => {
            let now = unix_now();
            for cert in list {
                let days = days_left(cert.not_after, now);
                let line = format!(
                    "certificate \"{}\" of {user} enrolled, valid until {} ({days} days left)",
                    cert.label,
                    format_utc(cert.not_after)
                );
                if cert.not_after <= now {
                    report.fail(&format!(
                        "{}: an expired certificate cannot renew itself; root enrolls a new one (`ecpctl enroll {user} --cert FILE`)",
                        line.replace("valid until", "EXPIRED on")
                    ));
                } else if expires_soon(cert.not_after, now) {
                    report.warn(&format!(
                        "{line}: renew it before then with `ecpctl renew --key-out DIR`"
                    ));
                } else {
                    report.ok(&line);
                }
            }
        }
    }

    report.finish()
}

/// A user's key file as doctor checks it.
struct KeyFileOf {
    path: PathBuf,
    home: Option<PathBuf>,
    /// The account to read it as, when that is not whoever runs doctor.
    other: Option<nix::unistd::User>,
}

/// Where `user`'s key file is (`--key`, else their default), and whose
/// identity reads it; None when no account has that name.
fn key_file_of(args: &DoctorArgs, user: &str) -> Result<Option<KeyFileOf>, Failure> {
    let invoking = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten();
    if invoking.as_ref().is_some_and(|me| me.name == user) {
        return Ok(Some(KeyFileOf {
            path: key_path_or_default(args.key.as_deref())?,
            home: crate::keys::home_dir().ok(),
            other: None,
        }));
    }
    let Ok(Some(account)) = nix::unistd::User::from_name(user) else {
        // A file named with --key is checked even for a name this host
        // does not know (a directory user not yet resolvable here).
        return Ok(args.key.clone().map(|path| KeyFileOf {
            path,
            home: None,
            other: None,
        }));
    };
    Ok(Some(KeyFileOf {
        path: args
            .key
            .clone()
            .unwrap_or_else(|| ecp_core::user_files::default_key_path(&account.dir)),
        home: Some(account.dir.clone()),
        other: Some(account),
    }))
}

/// The user's key file, read as that user would read it. A missing one
/// in the default place is no failure: the user may sign on their own
/// machine, with a token or through an agent. One named with --key is
/// expected to be there.
fn check_key_file(report: &mut Report, user: &str, key: &KeyFileOf, named: bool) {
    let read = match &key.other {
        Some(account) => ecp_core::user_files::read_key_file_as(account, &key.path),
        None => read_key_file(&key.path, expected_owner()),
    };
    match read {
        Ok(bytes) if String::from_utf8_lossy(&bytes).contains("BEGIN ENCRYPTED PRIVATE KEY") => {
            report.ok(&format!(
                "key file {} is present, private and encrypted",
                key.path.display()
            ))
        }
        Ok(_) => report.fail(&format!(
            "key file {} is not an encrypted PKCS#8 key (see `ecpctl sign` for the exact reason)",
            key.path.display()
        )),
        Err(FileError::NotFound { .. }) if !named => report.warn(&format!(
            "no key file for {user} at {}: key-file logins on this host (mode=keyfile, \
             or mode=auto at the console) cannot work for {user}; fine if {user} signs \
             on their own machine, through an agent or with a token",
            key.path.display()
        )),
        Err(e) => report.fail(&format!("key file {e}")),
    }

    // A CA-issued certificate beside the key is renewed by its CA.
    let beside = key
        .path
        .with_file_name(ecp_core::user_files::CERTIFICATE_FILE);
    // Like the key file: no symlink, no FIFO, bounded.
    let read = match &key.other {
        Some(account) => ecp_core::user_files::read_certificate_as(account, &beside),
        None => ecp_core::keyfile_io::read_owned_file(
            &beside,
            ecp_core::keyfile_io::ExpectedOwner::Anyone,
            ecp_core::certificate::MAX_CERTIFICATE_LEN,
        ),
    };
    if let Ok(pem) = read {
        if let Ok(cert) = ecp_core::certificate::parse_user_certificate_pem(&pem) {
            if !cert.is_self_issued() {
                let line = format!(
                    "{} was issued by {} (valid until {}): renewal is that CA's business, not `ecpctl renew`",
                    beside.display(),
                    cert.issuer(),
                    format_utc(cert.not_after())
                );
                if expires_soon(cert.not_after(), unix_now()) {
                    report.warn(&line);
                } else {
                    report.ok(&line);
                }
            }
        }
    }
}

/// sshd's effective configuration, when pam_ecp is in its PAM stack: a
/// login that never runs keyboard-interactive never meets pam_ecp.
fn check_sshd(report: &mut Report, config: &Path) {
    const SSHD: &str = "/usr/sbin/sshd";
    if !Path::new(SSHD).exists() {
        report.warn("pam_ecp is in the sshd PAM service, but sshd is not installed here");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        report.warn("sshd's configuration is not checked: sshd -T needs root (run doctor as root)");
        return;
    }
    // sshd -T checks its privilege separation directory first.
    let _ = std::fs::create_dir_all("/run/sshd");
    match crate::sshd_config::check(Path::new(SSHD), config) {
        Err(e) => report.fail(&format!("cannot read sshd's effective configuration: {e}")),
        Ok(findings) if findings.iter().all(|f| !f.fail) => {
            // A rollout's warnings say which logins skip it.
            if !findings.iter().any(|f| f.text.starts_with("rollout:")) {
                report.ok(&format!(
                    "sshd ({}) runs keyboard-interactive, and so pam_ecp, on every allowed login",
                    config.display()
                ));
            }
            for finding in findings {
                report.warn(&finding.text);
            }
        }
        Ok(findings) => {
            for finding in findings {
                if finding.fail {
                    report.fail(&finding.text);
                } else {
                    report.warn(&finding.text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecp_core::bus::{TrustReport, TrustedCaEntry};

    fn ca(crl_this_update: i64, crl_next_update: i64) -> TrustedCaEntry {
        TrustedCaEntry {
            subject: "CN=Org CA".into(),
            fingerprint: "ab".repeat(32),
            not_before: 0,
            not_after: 2_000_000_000,
            crl_this_update,
            crl_next_update,
        }
    }

    fn problems(trust: &TrustReport, now: i64) -> usize {
        let mut report = Report { problems: 0 };
        check_trust(&mut report, trust, now);
        report.problems
    }

    #[test]
    fn a_crl_past_its_next_update_fails_and_one_due_within_a_day_warns() {
        let now = 1_800_000_000;
        let with = |cas: Vec<TrustedCaEntry>, problem: &str| TrustReport {
            configured: true,
            cas,
            problem: problem.into(),
        };
        assert_eq!(
            problems(&with(vec![ca(now - 10, now + 7 * 86_400)], ""), now),
            0
        );
        assert_eq!(problems(&with(vec![ca(now - 10, now + 3600)], ""), now), 0);
        assert_eq!(problems(&with(vec![ca(now - 10, now - 1)], ""), now), 1);
        // No CRL loaded: a warning (require_crl decides), not a failure.
        assert_eq!(problems(&with(vec![ca(0, 0)], ""), now), 0);
        // A file ecpd could not use (a non-CA certificate in ca_file).
        let bad = with(
            vec![ca(now - 10, now + 86_400 * 2)],
            "/etc/ecp/ca.pem: CA certificate CN=x is not a CA",
        );
        assert_eq!(problems(&bad, now), 1);
        // Nothing configured, nothing to say.
        assert_eq!(problems(&TrustReport::default(), now), 0);
    }

    #[test]
    fn an_unreachable_directory_fails_and_says_who_still_logs_in() {
        use ecp_core::bus::DirectoryReport;
        let now = 1_800_000_000;
        let count = |d: &DirectoryReport| {
            let mut report = Report { problems: 0 };
            check_directory(&mut report, d, now);
            report.problems
        };
        assert_eq!(count(&DirectoryReport::default()), 0);
        let answered = DirectoryReport {
            configured: true,
            servers: vec!["ldaps://a".into()],
            probed: true,
            answered_by: "ldaps://a".into(),
            ..DirectoryReport::default()
        };
        assert_eq!(count(&answered), 0);
        let down = DirectoryReport {
            answered_by: String::new(),
            problem: "connect timed out".into(),
            cached_users: 3,
            oldest_cached: now - 100,
            ..answered.clone()
        };
        assert_eq!(count(&down), 1);
        // Not probed (not root): a warning, not a failure.
        let unasked = DirectoryReport {
            probed: false,
            ..down
        };
        assert_eq!(count(&unasked), 0);
    }
}
