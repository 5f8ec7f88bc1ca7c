//! ecpctl's offline commands as a user meets them: files, modes, refusals,
//! exit codes.

use ecp_core::certificate::parse_certificate_pem;
use ecp_core::{Challenge, HostName, ServiceName, UserName};
use ecp_tests::{challenge_for, ecpctl, ecpctl_with_input, keygen, Workdir};

#[test]
fn keygen_writes_private_key_0600_and_certificate_0644() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "keys/alice", "pw");
    assert_eq!(work.mode("keys/alice/private_key.pem"), 0o600);
    assert_eq!(work.mode("keys/alice/certificate.pem"), 0o644);
    assert_eq!(work.mode("keys/alice"), 0o700);
    let cert = parse_certificate_pem(&std::fs::read(dir.join("certificate.pem")).unwrap()).unwrap();
    assert_eq!(cert.common_name(), "alice");
    let days = (cert.not_after() - cert.not_before()) / 86_400;
    assert_eq!(days, 365);
}

#[test]
fn keygen_days_option_sets_validity() {
    let work = Workdir::new();
    work.write("pw", b"pw", 0o600);
    ecpctl(&[
        "keygen",
        "--user",
        "bob",
        "--out",
        &work.arg("k"),
        "--days",
        "7",
        "--passphrase-file",
        &work.arg("pw"),
    ])
    .ok();
    let cert = parse_certificate_pem(&work.read("k/certificate.pem")).unwrap();
    assert_eq!((cert.not_after() - cert.not_before()) / 86_400, 7);
    let run = ecpctl(&[
        "keygen",
        "--user",
        "bob",
        "--out",
        &work.arg("k2"),
        "--days",
        "0",
        "--passphrase-file",
        &work.arg("pw"),
    ]);
    assert_eq!(run.code, 2);
}

#[test]
fn keygen_never_overwrites_without_force() {
    let work = Workdir::new();
    keygen(&work, "alice", "k", "pw");
    let key_before = work.read("k/private_key.pem");
    let cert_before = work.read("k/certificate.pem");
    let run = ecpctl(&[
        "keygen",
        "--user",
        "alice",
        "--out",
        &work.arg("k"),
        "--passphrase-file",
        &work.arg("k.pass"),
    ]);
    assert_eq!(run.code, 4);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(work.read("k/private_key.pem"), key_before);
    assert_eq!(work.read("k/certificate.pem"), cert_before);

    ecpctl(&[
        "keygen",
        "--user",
        "alice",
        "--out",
        &work.arg("k"),
        "--passphrase-file",
        &work.arg("k.pass"),
        "--force",
    ])
    .ok();
    assert_ne!(work.read("k/private_key.pem"), key_before);
    assert_ne!(work.read("k/certificate.pem"), cert_before);
    assert_eq!(work.mode("k/private_key.pem"), 0o600);
}

#[test]
fn keygen_refuses_empty_passphrase_and_missing_terminal() {
    let work = Workdir::new();
    let run = ecpctl_with_input(
        &[
            "keygen",
            "--user",
            "alice",
            "--out",
            &work.arg("k"),
            "--passphrase-file",
            "-",
        ],
        b"\n",
    );
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("empty passphrase"), "{}", run.stderr);
    assert!(!work.path("k/private_key.pem").exists());

    // No --passphrase-file and no terminal: a clear error, not a hang.
    let run = ecpctl(&["keygen", "--user", "alice", "--out", &work.arg("k")]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("--passphrase-file"), "{}", run.stderr);
    assert!(!work.path("k/private_key.pem").exists());
}

#[test]
fn keygen_refuses_odd_user_names() {
    let work = Workdir::new();
    for bad in ["../root", "al ice", "-x", "1000", "a/b", ""] {
        let run = ecpctl(&[
            "keygen",
            "--user",
            bad,
            "--out",
            &work.arg("k"),
            "--passphrase-file",
            "-",
        ]);
        assert_eq!(run.code, 2, "{bad:?}");
        assert!(!work.path("k").exists());
    }
}

#[test]
fn sign_reads_passphrase_from_stdin_and_describes_the_login() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "pw");
    let challenge = challenge_for("alice");
    let run = ecpctl_with_input(
        &[
            "sign",
            "--key",
            dir.join("private_key.pem").to_str().unwrap(),
            "--passphrase-file",
            "-",
            &challenge.to_token(),
        ],
        b"pw\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("alice@testhost.example"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("service sshd"), "{}", run.stderr);
    let cert = parse_certificate_pem(&work.read("k/certificate.pem")).unwrap();
    challenge
        .verify(cert.public_key(), run.stdout.trim())
        .unwrap();
    // Exactly one line on stdout: the signature.
    assert_eq!(run.stdout.lines().count(), 1);
}

#[test]
fn sign_refuses_expired_and_malformed_tokens_before_unlocking() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "pw");
    let key = dir.join("private_key.pem");
    let expired = Challenge::new_random(
        UserName::parse("alice").unwrap(),
        HostName::parse("h").unwrap(),
        ServiceName::parse("sshd").unwrap(),
        1_000,
        300,
    )
    .unwrap();
    // No passphrase is supplied: a refusal must come before it is needed.
    let run = ecpctl(&["sign", "--key", key.to_str().unwrap(), &expired.to_token()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    for bad in ["garbage!", "AAAA", ""] {
        let run = ecpctl(&["sign", "--key", key.to_str().unwrap(), bad]);
        assert_eq!(run.code, 1, "{bad:?}");
        assert!(
            run.stderr.contains("challenge token"),
            "{bad:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn sign_with_wrong_passphrase_fails_with_code_3() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "right");
    let token = challenge_for("alice").to_token();
    let run = ecpctl_with_input(
        &[
            "sign",
            "--key",
            dir.join("private_key.pem").to_str().unwrap(),
            "--passphrase-file",
            "-",
            &token,
        ],
        b"wrong\n",
    );
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("wrong passphrase"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn sign_refuses_unsafe_key_files() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "pw");
    let key = dir.join("private_key.pem");
    let token = challenge_for("alice").to_token();

    std::os::unix::fs::symlink(&key, work.path("link.pem")).unwrap();
    let run = ecpctl(&[
        "sign",
        "--key",
        &work.arg("link.pem"),
        "--passphrase-file",
        &work.arg("k.pass"),
        &token,
    ]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);

    let copy = work.write("writable.pem", &work.read("k/private_key.pem"), 0o666);
    let run = ecpctl(&[
        "sign",
        "--key",
        copy.to_str().unwrap(),
        "--passphrase-file",
        &work.arg("k.pass"),
        &token,
    ]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("group or others write"),
        "{}",
        run.stderr
    );

    let run = ecpctl(&[
        "sign",
        "--key",
        "/dev/zero",
        "--passphrase-file",
        &work.arg("k.pass"),
        &token,
    ]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);

    let run = ecpctl(&[
        "sign",
        "--key",
        &work.arg("missing.pem"),
        "--passphrase-file",
        &work.arg("k.pass"),
        &token,
    ]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("no such file"), "{}", run.stderr);
}

#[test]
fn cert_check_and_show_report_on_our_certificate() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "pw");
    let cert = dir.join("certificate.pem");
    let run = ecpctl(&["cert", "check", "--user", "alice", cert.to_str().unwrap()]);
    assert_eq!(run.code, 0);
    let run = ecpctl(&["cert", "check", "--user", "alic", cert.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    let shown = ecpctl(&["cert", "show", cert.to_str().unwrap()]).ok();
    let parsed = parse_certificate_pem(&std::fs::read(&cert).unwrap()).unwrap();
    assert!(shown.contains("CN=alice"));
    assert!(shown.contains(&parsed.fingerprint()));
    assert!(shown.contains("valid, 36"), "{shown}");

    let garbage = work.write(
        "garbage.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        0o644,
    );
    let run = ecpctl(&["cert", "show", garbage.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not PEM"), "{}", run.stderr);
}

#[test]
fn help_documents_exit_codes() {
    for args in [
        &["--help"][..],
        &["keygen", "--help"],
        &["sign", "--help"],
        &["cert", "check", "--help"],
    ] {
        let out = ecpctl(args).ok();
        assert!(out.contains("EXIT STATUS"), "{args:?}");
        assert!(out.contains("3  key file problem"), "{args:?}");
    }
}

#[test]
fn key_file_owned_by_another_user_is_refused() {
    if !nix_is_root() {
        eprintln!("skipped: needs root to make a file owned by someone else");
        return;
    }
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "pw");
    // Let the unprivileged caller reach the files.
    for path in [work.path(""), dir.clone()] {
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let key = dir.join("private_key.pem");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&key, Some(12345), Some(12345)).unwrap();
    std::fs::set_permissions(
        work.path("k.pass"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    // The build tree may sit where uid 65534 cannot reach (under /root):
    // run a copy from the work directory.
    let ecpctl_copy = ecp_tests::binary_copy_in(&work.path(""), "ecpctl");
    let token = challenge_for("nobody").to_token();
    let run = ecp_tests::run(
        std::path::Path::new("/usr/bin/setpriv"),
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            ecpctl_copy.to_str().unwrap(),
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--passphrase-file",
            &work.arg("k.pass"),
            &token,
        ],
    );
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("owned by uid 12345"), "{}", run.stderr);
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn man_page_documents_every_subcommand_and_exit_code() {
    let help = ecpctl(&["--help"]).ok();
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/man/ecpctl.1"
    ))
    .unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 14, "{commands:?}");
    for command in commands {
        let escaped = command.replace('-', "\\-");
        assert!(
            page.contains(&format!(".B {escaped}")),
            "ecpctl.1 lacks {command}"
        );
    }
    for code in 0..=11 {
        assert!(
            page.contains(&format!(".TP\n{code}\n")),
            "ecpctl.1 lacks exit code {code}"
        );
    }
}

/// Runs `ecpctl askpass PROMPT` with HOME at `home` and the passphrase
/// from a file: with `terminal_answer`, on a terminal where that is typed
/// once askpass asks; without, with no terminal at all.
fn askpass(
    home: &std::path::Path,
    key: &std::path::Path,
    prompt: &str,
    terminal_answer: Option<&str>,
) -> ecp_tests::Run {
    let ecpctl = ecp_tests::binary("ecpctl");
    let passphrase = home.join("passphrase");
    match terminal_answer {
        None => {
            let out = std::process::Command::new("setsid")
                .arg("--wait")
                .arg(&ecpctl)
                .arg("askpass")
                .arg("--key")
                .arg(key)
                .arg(prompt)
                .env("HOME", home)
                .env("ECP_PASSPHRASE_FILE", &passphrase)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            ecp_tests::Run::from_output("ecpctl askpass", out)
        }
        Some(answer) => ecp_tests::run_on_terminal(
            &format!(
                "{} askpass --key {} '{prompt}'",
                ecpctl.display(),
                key.display()
            ),
            &[("HOME", home), ("ECP_PASSPHRASE_FILE", &passphrase)],
            "Sign it? [yes/no]",
            answer,
        ),
    }
}

#[test]
fn askpass_signs_nothing_unasked_unless_ssh_itself_names_an_approved_destination() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "pw");
    let key = dir.join("private_key.pem");
    let cert = parse_certificate_pem(&work.read("k/certificate.pem")).unwrap();
    let home = work.path("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("passphrase"), "pw\n").unwrap();
    let list = home.join(".config/ecp/approved_hosts");
    let challenge = challenge_for("alice");
    // What a server can send through an ssh older than 8.4 (which passes
    // its text unchanged): a forged "(user@host) " naming the real server.
    let forged = format!(
        "(alice@testhost.example) ecp challenge {}\nSignature: ",
        challenge.to_token()
    );

    // No terminal to ask: nothing signed, nothing added, although the
    // passphrase needs no typing.
    let run = askpass(&home, &key, &forged, None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("not on your approved list"),
        "{}",
        run.stderr
    );
    assert!(!list.exists());

    // Even with that login on the list: askpass was not started by an
    // OpenSSH that writes the prefix itself, so the prefix is not believed.
    std::fs::create_dir_all(list.parent().unwrap()).unwrap();
    std::fs::write(
        &list,
        "alice@testhost.example sshd alice@testhost.example\n",
    )
    .unwrap();
    let run = askpass(&home, &key, &forged, None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    std::fs::remove_file(&list).unwrap();

    // On a terminal it asks, showing what would be approved and that the
    // destination is unknown; "no" signs nothing.
    let run = askpass(&home, &key, &forged, Some("no\n"));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("alice@testhost.example is not on your approved list for service sshd"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Which host ssh is connected to is not known"),
        "{}",
        run.stdout
    );

    // "yes" signs this login only: nothing is remembered without a
    // destination ssh vouches for.
    let run = askpass(&home, &key, &forged, Some("yes\n"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // What is approved is shown once, in the question (it was printed a
    // second time when signing).
    assert_eq!(
        run.stdout.matches("Approving login of alice@").count(),
        1,
        "{}",
        run.stdout
    );
    // No remote address: a login on the server itself, which is not
    // "local" to the person signing on their laptop.
    assert!(
        run.stdout
            .contains("(on testhost.example itself, not from the network)"),
        "{}",
        run.stdout
    );
    let signature = run
        .stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap();
    challenge.verify(cert.public_key(), signature).unwrap();
    assert!(!list.exists());

    // "y" is not "yes".
    let next = challenge_for("alice");
    let prompt = format!("ecp challenge {}\nSignature: ", next.to_token());
    let run = askpass(&home, &key, &prompt, Some("y\n"));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
}

/// Debian 12 and Ubuntu ship polkit's PAM service in /usr/lib/pam.d (no
/// /etc/pam.d/polkit-1): doctor finds it there, follows its `@include
/// common-auth` into the PAM directory as libpam does, and judges the
/// stack pam-auth-update's ecp profile makes. Uses the machine's own
/// polkit-1 (package polkitd).
#[test]
fn doctor_finds_polkit_in_the_vendor_directory_and_judges_it() {
    let vendor = std::path::Path::new("/usr/lib/pam.d");
    assert!(
        vendor.join("polkit-1").is_file(),
        "no /usr/lib/pam.d/polkit-1: scripts/deps.sh installs polkitd"
    );
    let work = Workdir::new();
    let pam_d = work.path("pam.d");
    std::fs::create_dir(&pam_d).unwrap();
    // common-auth as pam-auth-update writes it with the ecp profile on.
    std::fs::write(
        pam_d.join("common-auth"),
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n\
         auth\trequisite\t\t\tpam_deny.so\n\
         auth\trequired\t\t\tpam_permit.so\n\
         auth\trequired\t\t\tpam_ecp.so nouserok\n",
    )
    .unwrap();
    for part in [
        "common-account",
        "common-password",
        "common-session-noninteractive",
    ] {
        std::fs::write(pam_d.join(part), "").unwrap();
    }
    let doctor = |extra: &[&str]| {
        let mut args = vec![
            "--bus",
            "unix:path=/nonexistent/ecp-test-bus",
            "doctor",
            "--key",
            "/nonexistent/key.pem",
            "--pam-dir",
            pam_d.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ecpctl(&args).stdout
    };
    let out = doctor(&["--vendor-pam-dir", "/usr/lib/pam.d"]);
    assert!(
        out.contains("ok    PAM service polkit-1: auth mode=auto (via common-auth)"),
        "{out}"
    );
    assert!(!out.contains("FAIL  /"), "{out}");
    // Without the vendor directory polkit-1 is not a service of this
    // PAM directory at all.
    let out = doctor(&[]);
    assert!(!out.contains("polkit-1"), "{out}");
}
