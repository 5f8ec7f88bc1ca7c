//! The authselect profile packaging/authselect/ecp: its system-auth and
//! password-auth resolved for a set of features, put under Fedora-like
//! service files (sshd, sudo, su, login, polkit-1) and judged by
//! `ecpctl doctor`, which runs each stack the way libpam would.
//!
//! authselect itself is not packaged for Debian: the templates are resolved
//! here by the rules of authselect-profiles(5) (`{include if}`,
//! `{exclude if}`, `{if "f":a|b}`, `{if not "f":a}`, `{imply}`,
//! `{continue if}`). Running
//! the real `authselect select custom/ecp with-ecp` is on the README's
//! checklist for a Fedora/RHEL host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ecp_tests::{binary, Workdir};

fn profile_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/authselect/ecp")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `"feature"` at the start of `text`: the name and the rest.
fn quoted(text: &str) -> (&str, &str) {
    let text = text.strip_prefix('"').expect("a quoted feature name");
    let end = text.find('"').expect("closing quote");
    (&text[..end], &text[end + 1..])
}

/// Replaces every inline `{if [not] "f":yes|no}` in `line`.
fn resolve_inline(line: &str, on: &BTreeSet<String>) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("{if ") {
        out.push_str(&rest[..start]);
        let body_start = &rest[start + 4..];
        let end = body_start.find('}').expect("closing brace");
        let body = &body_start[..end];
        let (negated, body) = match body.strip_prefix("not ") {
            Some(b) => (true, b),
            None => (false, body),
        };
        let (feature, after) = quoted(body);
        let after = after.strip_prefix(':').expect("':' after the feature");
        let (yes, no) = after.split_once('|').unwrap_or((after, ""));
        let holds = on.contains(feature) != negated;
        out.push_str(if holds { yes } else { no });
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A profile file as authselect writes it for the features `on`.
fn resolve(template: &str, features: &[&str]) -> String {
    let mut on: BTreeSet<String> = features.iter().map(|f| f.to_string()).collect();
    // {imply "a" if "b"} lines first: they change what the others see.
    for line in template.lines() {
        if let Some(rest) = line.trim().strip_prefix("{imply ") {
            let (implied, rest) = quoted(rest);
            let (cause, _) = quoted(rest.trim_start().strip_prefix("if ").unwrap());
            if on.contains(cause) {
                on.insert(implied.to_owned());
            }
        }
    }
    let mut out = String::new();
    for line in template.lines() {
        if line.trim_start().starts_with("{imply ") {
            continue;
        }
        // {continue if "f"}: without f the rest of the file is dropped.
        if let Some(rest) = line.trim().strip_prefix("{continue if ") {
            if !on.contains(quoted(rest).0) {
                break;
            }
            continue;
        }
        let mut text = line.to_owned();
        let mut keep = true;
        for (directive, wanted) in [("{include if ", true), ("{exclude if ", false)] {
            if let Some(at) = text.find(directive) {
                let (feature, _) = quoted(&text[at + directive.len()..]);
                keep &= on.contains(feature) == wanted;
                text.truncate(at);
            }
        }
        if keep {
            out.push_str(resolve_inline(&text, &on).trim_end());
            out.push('\n');
        }
    }
    out
}

/// Fedora-like service files around the profile's two stacks.
const SERVICES: &[(&str, &str)] = &[
    (
        "sshd",
        "auth       substack     password-auth\nauth       include      postlogin\n\
         account    include      password-auth\n",
    ),
    ("sudo", "auth       include      system-auth\n"),
    (
        "su",
        "auth       sufficient   pam_rootok.so\nauth       substack     system-auth\n\
         auth       include      postlogin\n",
    ),
    (
        "login",
        "auth       substack     system-auth\nauth       include      postlogin\n",
    ),
    ("polkit-1", "auth       include      system-auth\n"),
    ("postlogin", "session    optional     pam_umask.so silent\n"),
];

/// A PAM directory with the profile resolved for `features`.
fn pam_dir(
    work: &Workdir,
    name: &str,
    features: &[&str],
    edit: impl Fn(String) -> String,
) -> PathBuf {
    let dir = work.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["system-auth", "password-auth"] {
        let resolved = edit(resolve(&profile_file(file), features));
        std::fs::write(dir.join(file), resolved).unwrap();
    }
    for (service, text) in SERVICES {
        std::fs::write(dir.join(service), text).unwrap();
    }
    dir
}

/// doctor's lines about files in `dir` (the daemon is not running, so the
/// other checks fail; only the PAM ones matter here).
fn doctor_pam_lines(dir: &Path) -> Vec<String> {
    let run = ecp_tests::run(
        &binary("ecpctl"),
        &[
            "--bus",
            "unix:path=/nonexistent/ecp-test-bus",
            "doctor",
            "--user",
            "root",
            "--key",
            "/nonexistent/key.pem",
            "--pam-dir",
            dir.to_str().unwrap(),
        ],
    );
    run.stdout
        .lines()
        .filter(|l| l.contains("PAM service") || l.contains(&*dir.to_string_lossy()))
        .map(str::to_owned)
        .collect()
}

fn failures(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("FAIL")).collect()
}

#[test]
fn with_ecp_the_resolved_stacks_pass_doctor_for_the_usual_feature_sets() {
    let work = Workdir::new();
    let sets: &[&[&str]] = &[
        &["with-ecp"],
        &["with-ecp", "with-faillock"],
        &[
            "with-ecp",
            "with-faillock",
            "with-mkhomedir",
            "with-pamaccess",
        ],
        &["with-ecp", "without-nullok", "with-pam-gnome-keyring"],
        &["with-ecp", "without-ecp-nouserok", "with-faillock"],
        &["with-ecp", "with-pam-u2f-2fa"],
        // Password-less features are left out of these two files.
        &[
            "with-ecp",
            "with-fingerprint",
            "with-pam-u2f",
            "with-gssapi",
        ],
        &[
            "with-ecp",
            "with-faillock",
            "with-gssapi",
            "with-fingerprint",
        ],
        &[
            "with-ecp",
            "with-systemd-homed",
            "with-pwhistory",
            "with-faillock",
        ],
    ];
    for (n, features) in sets.iter().enumerate() {
        let dir = pam_dir(&work, &format!("set{n}"), features, |s| s);
        let lines = doctor_pam_lines(&dir);
        assert!(
            failures(&lines).is_empty(),
            "features {features:?}: {lines:#?}\nsystem-auth:\n{}",
            std::fs::read_to_string(dir.join("system-auth")).unwrap()
        );
        for service in ["sshd", "sudo", "su", "login", "polkit-1"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("ok    PAM service {service}: auth mode=auto"))),
                "features {features:?}: {service} does not use pam_ecp: {lines:#?}"
            );
        }
        let system_auth = std::fs::read_to_string(dir.join("system-auth")).unwrap();
        assert!(!system_auth.contains('{'), "unresolved: {system_auth}");
        // cron jobs and user managers skip pam_ecp's account check.
        assert!(
            system_auth.contains(
                "pam_succeed_if.so service in crond:systemd-user quiet\n\
                 account     optional                                     pam_ecp.so"
            ),
            "{system_auth}"
        );
        let nouserok = system_auth.contains("pam_ecp.so nouserok");
        assert_eq!(
            nouserok,
            !features.contains(&"without-ecp-nouserok"),
            "{system_auth}"
        );
        for left_out in [
            "pam_fprintd.so",
            "pam_sss_gss.so",
            "pam_u2f.so cue\n",
            "auth        sufficient                                   pam_systemd_home.so",
        ] {
            assert!(
                !system_auth.contains(left_out),
                "{left_out} in {system_auth}"
            );
        }
    }
}

/// without-ecp-nouserok alone means with-ecp as well.
#[test]
fn without_ecp_nouserok_implies_with_ecp() {
    for file in ["system-auth", "password-auth"] {
        let text = resolve(&profile_file(file), &["without-ecp-nouserok"]);
        assert!(text.contains("pam_ecp.so\n"), "{file}: {text}");
        assert!(!text.contains("nouserok"), "{file}: {text}");
    }
}

#[test]
fn without_with_ecp_the_profile_has_no_ecp_line_and_is_the_sssd_stack() {
    let work = Workdir::new();
    for features in [&[][..], &["with-faillock", "with-fingerprint"][..]] {
        let dir = pam_dir(&work, &format!("plain{}", features.len()), features, |s| s);
        for file in ["system-auth", "password-auth"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(!text.contains("pam_ecp"), "{file}: {text}");
            assert!(!text.contains('{'), "unresolved: {text}");
            // sssd's shape: a sufficient password module, then deny.
            assert!(
                text.contains("sufficient                                   pam_unix.so nullok"),
                "{text}"
            );
            assert!(
                text.contains(
                    "auth        required                                     pam_deny.so\n"
                ),
                "{text}"
            );
        }
        let lines = doctor_pam_lines(&dir);
        assert!(
            lines.iter().all(|l| !l.starts_with("ok    PAM service")),
            "{lines:#?}"
        );
    }
}

#[test]
fn an_ungated_stack_or_a_login_that_skips_the_key_is_named_by_doctor() {
    let work = Workdir::new();
    // Without the "requisite pam_deny.so" after the password modules, a
    // wrong password would go on to pam_permit and pam_ecp.
    let dir = pam_dir(&work, "ungated", &["with-ecp", "with-faillock"], |s| {
        s.replace(
            "auth        requisite                                    pam_deny.so\n",
            "",
        )
    });
    let lines = doctor_pam_lines(&dir);
    for file in ["system-auth", "password-auth"] {
        assert!(
            failures(&lines)
                .iter()
                .any(|l| l.contains(file) && l.contains("after a failed password")),
            "{file}: {lines:#?}"
        );
    }
    // Smartcard logins complete without pam_ecp: doctor says so.
    let dir = pam_dir(&work, "smartcard", &["with-ecp", "with-smartcard"], |s| s);
    let lines = doctor_pam_lines(&dir);
    assert!(
        failures(&lines).iter().any(|l| l.contains("system-auth")),
        "{lines:#?}"
    );
}

/// GNOME's switchable login (with-switchable-auth) runs its own stack,
/// which in the sssd profile ends at a sufficient password module: with
/// with-ecp it is shut (a required pam_debug that answers
/// authinfo_unavail), so a password alone never opens a session there.
/// Run by real libpam with the right password.
#[test]
fn with_ecp_the_switchable_login_is_shut_and_without_it_is_sssds() {
    use ecp_tests::daemon::{running_as_root, TestBus, TestUser};
    use ecp_tests::pam::PamServices;
    let shut = resolve(
        &profile_file("switchable-auth"),
        &["with-ecp", "with-switchable-auth"],
    );
    assert!(
        shut.starts_with("auth required pam_debug.so auth=authinfo_unavail\n"),
        "{shut}"
    );
    let open = resolve(&profile_file("switchable-auth"), &["with-switchable-auth"]);
    assert!(!open.contains("pam_debug"), "{open}");
    assert!(open.contains("sufficient                                   pam_unix.so"));
    // without-ecp-nouserok means with-ecp in this file too (authselect
    // applies {imply} file by file).
    let implied = resolve(
        &profile_file("switchable-auth"),
        &["without-ecp-nouserok", "with-switchable-auth"],
    );
    assert!(implied.starts_with("auth required pam_debug"), "{implied}");
    // Switchable login not selected: shut either way.
    assert!(resolve(&profile_file("switchable-auth"), &[]).starts_with("auth required pam_debug"));

    if !running_as_root() {
        eprintln!("skipped the libpam part: needs root to create a test user");
        return;
    }
    let bus = TestBus::start();
    let user = TestUser::create(bus.dir());
    user.enable_login("account pass");
    for (stack, expected) in [(&shut, 1), (&open, 0)] {
        let services = PamServices::new();
        // pam_selinux_permit is Fedora's; the rest is Debian's libpam.
        services.add(
            "gdm-switchable-auth",
            &stack
                .replace("pam_selinux_permit.so", "pam_debug.so auth=ignore")
                .replace("delay=2000000", "delay=0"),
        );
        let run = services.pamtester(
            "gdm-switchable-auth",
            &user.name,
            &["authenticate"],
            "",
            "account pass\n",
        );
        assert_eq!(run.code, expected, "{stack}\n{}", run.stderr);
    }
}

#[test]
fn the_requirements_and_readme_name_the_features() {
    let readme = profile_file("README");
    for needle in [
        "with-ecp::",
        "without-ecp-nouserok::",
        "without-ecp-console-rescue::",
        "authselect select custom/ecp with-ecp",
    ] {
        assert!(readme.contains(needle), "README lacks {needle}");
    }
    // The console rescue is in system-auth with with-ecp, and its feature
    // takes it out (and implies with-ecp, like without-ecp-nouserok).
    let with = resolve(&profile_file("system-auth"), &["with-ecp"]);
    assert!(
        with.contains("pam_ecp.so nouserok root_console_rescue"),
        "{with}"
    );
    let without = resolve(
        &profile_file("system-auth"),
        &["without-ecp-console-rescue"],
    );
    assert!(
        without.contains("pam_ecp.so nouserok") && !without.contains("root_console_rescue"),
        "{without}"
    );
    let requirements = resolve(&profile_file("REQUIREMENTS"), &["with-ecp"]);
    assert!(requirements.contains("ecpctl doctor"), "{requirements}");
    let implied = resolve(&profile_file("REQUIREMENTS"), &["without-ecp-nouserok"]);
    assert!(implied.contains("ecpctl doctor"), "{implied}");
    let plain = resolve(&profile_file("REQUIREMENTS"), &[]);
    assert!(!plain.contains("ecp"), "{plain}");
}

/// The resolved system-auth run by real libpam (pam_wrapper + pamtester)
/// with the real pam_unix, pam_faillock, pam_usertype and pam_localuser,
/// pam_ecp against a private ecpd (mode=keyfile, so the key file answers)
/// and no sssd on this machine (pam_sss cannot load: libpam skips it as
/// its control says). With and without with-faillock, whose line changes
/// the jumps' counts: the right password and key log in, a wrong password
/// never reaches pam_ecp, a wrong passphrase fails.
#[test]
fn libpam_runs_the_resolved_stack_as_doctor_judged_it() {
    use ecp_tests::daemon::{running_as_root, TestDaemon};
    use ecp_tests::pam::{module_path, PamServices};
    if !running_as_root() {
        eprintln!("skipped: needs root to create a test user");
        return;
    }
    let daemon = TestDaemon::start("challenges_per_user_per_minute = 0\n");
    let keyed = daemon.keyed_user("key pass", &[], Some("laptop"));
    keyed.user.enable_login("account pass");
    let tally = tempfile::tempdir().unwrap();
    for features in [&["with-ecp"][..], &["with-ecp", "with-faillock"][..]] {
        let services = PamServices::new();
        let resolved = resolve(&profile_file("system-auth"), features)
            .replace(
                "pam_ecp.so nouserok",
                &format!(
                    "{} bus={} mode=keyfile",
                    module_path().display(),
                    daemon.address()
                ),
            )
            .replace(
                "pam_faillock.so preauth silent",
                &format!(
                    "pam_faillock.so preauth silent dir={} deny=2 unlock_time=600",
                    tally.path().display()
                ),
            )
            .replace(
                "pam_faillock.so authfail",
                &format!(
                    "pam_faillock.so authfail dir={} deny=2 unlock_time=600",
                    tally.path().display()
                ),
            )
            // Fedora's two-second delay after a failure only slows the test.
            .replace("pam_faildelay.so delay=2000000", "pam_faildelay.so delay=0");
        services.add("system-auth", &resolved);
        // pam_wrapper moves the service files, not the includes: name
        // the included file by its path.
        services.add(
            "sudo",
            &format!(
                "auth       include      {}\n",
                services.dir().join("system-auth").display()
            ),
        );
        let login = |input: &str| {
            services.pamtester("sudo", &keyed.user.name, &["authenticate"], "", input)
        };

        let ok = login("account pass\nkey pass\n");
        assert_eq!(ok.code, 0, "{features:?}: {}\n{resolved}", ok.stderr);
        assert!(
            ok.stderr.contains("Passphrase for ecp key"),
            "{}",
            ok.stderr
        );

        let bad_password = login("wrong\nkey pass\n");
        assert_ne!(bad_password.code, 0, "{features:?}");
        assert!(
            !bad_password.stderr.contains("Passphrase for ecp key"),
            "{features:?}: pam_ecp asked after a wrong password: {}",
            bad_password.stderr
        );

        let bad_key = login("account pass\nnot the key pass\n");
        assert_ne!(bad_key.code, 0, "{features:?}");
        assert!(
            bad_key.stderr.contains("Passphrase for ecp key"),
            "{}",
            bad_key.stderr
        );

        // A second wrong password locks the account (deny=2): then even
        // the right one never reaches pam_ecp, whose prompt would tell the
        // guesser that it was right.
        if features.contains(&"with-faillock") {
            assert_ne!(login("wrong again\nkey pass\n").code, 0);
            let locked = login("account pass\nkey pass\n");
            assert_ne!(locked.code, 0, "a locked account logged in");
            assert!(
                !locked.stderr.contains("Passphrase for ecp key"),
                "pam_ecp asked on a locked account: {}",
                locked.stderr
            );
        }
    }
}
