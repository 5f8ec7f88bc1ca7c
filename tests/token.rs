//! Keys on a PKCS#11 token (issue 13): SoftHSM2 with a throwaway store
//! stands for a smart card, YubiKey or TPM. The private key is made on
//! the token and never written anywhere; ecpctl signs with it and ecpd
//! changes nothing.

use ecp_tests::daemon::TestDaemon;
use ecp_tests::token::TestToken;
use ecp_tests::Workdir;

/// A key for `user` made on `token` by ecpctl, its certificate in
/// `work`/DIR; returns the certificate path.
fn keygen_on(token: &TestToken, work: &Workdir, user: &str, dir: &str) -> std::path::PathBuf {
    let out = work.path(dir);
    let run = token.ecpctl(&[
        "keygen",
        "--pkcs11",
        &token.uri(user),
        "--pin-file",
        token.pin_file().to_str().unwrap(),
        "--user",
        user,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    out.join("certificate.pem")
}

#[test]
fn a_key_made_on_the_token_logs_in_and_never_leaves_it() {
    let token = TestToken::new("ecp");
    let work = Workdir::new();
    let cert = keygen_on(&token, &work, "alice", "alice");
    // Only the certificate is on disk.
    assert!(!work.path("alice/private_key.pem").exists());
    ecp_tests::ecpctl(&["cert", "check", "--user", "alice", cert.to_str().unwrap()]).ok();
    // The token keeps it sensitive and unextractable.
    let objects = token
        .pkcs11_tool(&["--list-objects", "--type", "privkey"])
        .ok();
    assert!(objects.contains("label:      alice"), "{objects}");
    assert!(objects.contains("never extractable"), "{objects}");

    let daemon = TestDaemon::start("host_name = \"token-host\"\n");
    daemon
        .ecpctl(&["enroll", "alice", "--cert", cert.to_str().unwrap()])
        .ok();
    let pin = token.pin_file();
    let login = |pin: &std::path::Path| {
        token.ecpctl(&[
            "--bus",
            daemon.address(),
            "test-login",
            "alice",
            "--pkcs11",
            &token.uri("alice"),
            "--pin-file",
            pin.to_str().unwrap(),
        ])
    };
    let run = login(&pin);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("accepted by ecpd"), "{}", run.stdout);

    // `ecpctl sign` with the token answers a challenge ecpd accepts, and
    // the signature is the DER ecpd reads (turned from the token's r||s).
    let conn = daemon.connect();
    let (token_text, auth) = zbus::block_on(async {
        let auth = ecp_core::bus::AuthProxy::new(&conn).await.unwrap();
        (auth.challenge("alice", "sshd", "").await.unwrap(), auth)
    });
    let signature = token
        .ecpctl(&[
            "sign",
            "--pkcs11",
            &token.uri("alice"),
            "--pin-file",
            pin.to_str().unwrap(),
            &token_text,
        ])
        .ok();
    zbus::block_on(auth.verify("alice", &token_text, signature.trim())).unwrap();
}

#[test]
fn token_failures_are_clear_and_have_their_own_exit_codes() {
    let token = TestToken::new("ecp");
    let work = Workdir::new();
    let cert = keygen_on(&token, &work, "alice", "alice");
    let daemon = TestDaemon::start("host_name = \"token-host\"\n");
    let test_login = |uri: &str, extra: &[&str]| {
        let mut args = vec![
            "--bus",
            daemon.address(),
            "test-login",
            "alice",
            "--pkcs11",
            uri,
        ];
        args.extend_from_slice(extra);
        token.ecpctl(&args)
    };
    let wrong = token.wrong_pin_file();
    let pin = token.pin_file();
    let cases: [(&str, Vec<&str>, i32, &str); 4] = [
        (
            "wrong PIN",
            vec!["--pin-file", wrong.to_str().unwrap()],
            8,
            "wrong PIN",
        ),
        (
            "missing object",
            vec!["--pin-file", pin.to_str().unwrap()],
            9,
            "no EC private key labelled \"nobody\"",
        ),
        (
            "token removed (module path missing)",
            vec![
                "--pin-file",
                pin.to_str().unwrap(),
                "--pkcs11-module",
                "/nonexistent/libgone.so",
            ],
            7,
            "does not exist",
        ),
        (
            "no such token",
            vec!["--pin-file", pin.to_str().unwrap()],
            7,
            "no token matching",
        ),
    ];
    for (what, extra, code, message) in cases {
        let uri = match what {
            "missing object" => token.uri("nobody"),
            "no such token" => "pkcs11:token=elsewhere;object=alice".to_owned(),
            _ => token.uri("alice"),
        };
        let run = test_login(&uri, &extra);
        assert_eq!(run.code, code, "{what}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{what}: {}", run.stderr);
    }
    // A PIN in the URI itself is refused (it would show in ps).
    let run = test_login(&format!("{}?pin-value=123456", token.uri("alice")), &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);

    // As root, every step on the way to the module must be root's alone
    // to change: a symbolic link to the real module, or a copy, in a
    // directory under /tmp (writable by all) is not loaded.
    if ecp_tests::daemon::running_as_root() {
        daemon
            .ecpctl(&["enroll", "alice", "--cert", cert.to_str().unwrap()])
            .ok();
        let link = token.path().join("libsofthsm2-link.so");
        std::os::unix::fs::symlink(ecp_tests::token::SOFTHSM_MODULE, &link).unwrap();
        let copy = token.path().join("libsofthsm2-copy.so");
        std::fs::copy(ecp_tests::token::SOFTHSM_MODULE, &copy).unwrap();
        for (module, message) in [
            (&link, "is not root's alone to change"),
            (&copy, "is not root's alone to change"),
        ] {
            let run = test_login(
                &token.uri("alice"),
                &[
                    "--pin-file",
                    pin.to_str().unwrap(),
                    "--pkcs11-module",
                    module.to_str().unwrap(),
                ],
            );
            assert_eq!(run.code, 7, "{}", run.stderr);
            assert!(run.stderr.contains(message), "{}", run.stderr);
        }
        // The real module, by its real path, loads (through the checked
        // descriptor) and signs.
        let run = test_login(
            &token.uri("alice"),
            &[
                "--pin-file",
                pin.to_str().unwrap(),
                "--pkcs11-module",
                ecp_tests::token::SOFTHSM_MODULE,
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
}

#[test]
fn an_existing_token_key_gives_a_request_and_renews_an_enrolled_one() {
    let token = TestToken::new("ecp");
    let work = Workdir::new();
    // A key made outside ecp (OpenSC), used with --existing; --csr gives a
    // request OpenSC's key signed, which OpenSSL verifies.
    token
        .pkcs11_tool(&[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "carol",
            "--id",
            "c0",
        ])
        .ok();
    let run = token.ecpctl(&[
        "keygen",
        "--pkcs11",
        &token.uri("carol"),
        "--existing",
        "--csr",
        "--pin-file",
        token.pin_file().to_str().unwrap(),
        "--user",
        "carol",
        "--out",
        work.path("carol").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = work.path("carol/certificate_request.pem");
    ecp_tests::openssl(&["req", "-in", request.to_str().unwrap(), "-verify", "-noout"]);

    // Renewal with the current key on the token: the successor is a second
    // token key, enrolled on the proof the first one makes.
    let first = keygen_on(&token, &work, "alice", "alice");
    let daemon = TestDaemon::start("host_name = \"token-host\"\nrenew_min_age_secs = 0\n");
    daemon
        .ecpctl(&["enroll", "alice", "--cert", first.to_str().unwrap()])
        .ok();
    let token_b = TestToken::new("ecp-b");
    let second = keygen_on(&token_b, &work, "alice", "alice-next");
    let run = token.ecpctl(&[
        "--bus",
        daemon.address(),
        "renew",
        "alice",
        "--pkcs11",
        &token.uri("alice"),
        "--pin-file",
        token.pin_file().to_str().unwrap(),
        "--cert",
        second.to_str().unwrap(),
        "--retire-old",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = daemon.ecpctl(&["list", "alice"]).ok();
    assert!(listed.contains("renewed-"), "{listed}");
    let fingerprint = ecp_core::certificate::parse_certificate_pem(&std::fs::read(&first).unwrap())
        .unwrap()
        .fingerprint();
    // Retired: no longer a row of its own, only named as what the
    // successor was renewed from.
    assert!(
        listed
            .lines()
            .all(|l| l.split_whitespace().nth(2) != Some(fingerprint.as_str())),
        "{listed}"
    );
    assert!(listed.contains(&fingerprint), "{listed}");
}
