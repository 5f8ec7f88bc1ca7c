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
    for code in 0..=6 {
        assert!(
            page.contains(&format!(".TP\n{code}\n")),
            "ecpctl.1 lacks exit code {code}"
        );
    }
}

/// Runs `ecpctl askpass` for `token` with HOME at `home` and the passphrase
/// from a file: with `terminal_input`, inside a pseudo-terminal (script(1))
/// that types it; without, with no terminal at all.
fn askpass(
    home: &std::path::Path,
    key: &std::path::Path,
    prompt: &str,
    terminal_input: Option<&str>,
) -> ecp_tests::Run {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let ecpctl = ecp_tests::binary("ecpctl");
    let mut command = match terminal_input {
        None => {
            let mut c = Command::new("setsid");
            c.arg("--wait")
                .arg(&ecpctl)
                .arg("askpass")
                .arg("--key")
                .arg(key)
                .arg(prompt);
            c
        }
        Some(_) => {
            let mut c = Command::new("script");
            c.args(["--quiet", "--return", "--command"])
                .arg(format!(
                    "{} askpass --key {} '{}'",
                    ecpctl.display(),
                    key.display(),
                    prompt
                ))
                .arg("/dev/null");
            c
        }
    };
    let mut child = command
        .env("HOME", home)
        .env("ECP_PASSPHRASE_FILE", home.join("passphrase"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = terminal_input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    // script(1) ends the session when its input ends: the input stays open
    // until the command is done.
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    ecp_tests::Run::from_output("ecpctl askpass", out)
}

#[test]
fn askpass_signs_only_for_approved_logins_and_asks_on_the_terminal_otherwise() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "pw");
    let key = dir.join("private_key.pem");
    let cert = parse_certificate_pem(&work.read("k/certificate.pem")).unwrap();
    let home = work.path("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("passphrase"), "pw\n").unwrap();
    let list = home.join(".config/ecp/approved_hosts");
    // The prompt as ssh hands it over: its destination, then pam_ecp's.
    let through = |destination: &str, challenge: &Challenge| {
        format!(
            "({destination}) ecp challenge {}\nSignature: ",
            challenge.to_token()
        )
    };
    let challenge = challenge_for("alice");
    let prompt = through("alice@testhost.example", &challenge);

    // Not on the list and no terminal to ask: nothing signed, nothing added,
    // although the passphrase needs no typing.
    let run = askpass(&home, &key, &prompt, None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("not on your approved list"),
        "{}",
        run.stderr
    );
    assert!(!list.exists());

    // Asked on the terminal, which shows what is approved; "no" signs nothing.
    let run = askpass(&home, &key, &prompt, Some("no\n"));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "Approve alice@testhost.example for service sshd through alice@testhost.example"
        ),
        "{}",
        run.stdout
    );
    assert!(!list.exists());

    // "yes" signs and remembers the login.
    let run = askpass(&home, &key, &prompt, Some("yes\n"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let signature = run
        .stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap();
    challenge.verify(cert.public_key(), signature).unwrap();
    assert_eq!(
        std::fs::read_to_string(&list).unwrap(),
        "alice@testhost.example sshd alice@testhost.example\n"
    );

    // From now on that login is signed without a question, even with no
    // terminal.
    let next = challenge_for("alice");
    let run = askpass(&home, &key, &through("alice@testhost.example", &next), None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    next.verify(cert.public_key(), run.stdout.trim()).unwrap();

    // The same server's challenge relayed by a host the user was lured to:
    // ssh names the relay, so it is not approved; asked, the terminal says
    // so.
    let relayed = challenge_for("alice");
    let run = askpass(&home, &key, &through("alice@phish.example", &relayed), None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let run = askpass(
        &home,
        &key,
        &through("alice@phish.example", &relayed),
        Some("no\n"),
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(
            "ssh is connected to alice@phish.example, but this challenge is for alice@testhost.example"
        ),
        "{}",
        run.stdout
    );

    // Another server's challenge is not approved either.
    let elsewhere = Challenge::new_random(
        UserName::parse("alice").unwrap(),
        HostName::parse("phish.example").unwrap(),
        ServiceName::parse("sshd").unwrap(),
        ecp_core::when::unix_now() as u64,
        300,
    )
    .unwrap();
    let run = askpass(
        &home,
        &key,
        &through("alice@phish.example", &elsewhere),
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
}
