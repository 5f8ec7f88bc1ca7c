//! Certificates issued by an organisation CA that OpenSSL runs, judged by
//! `ecp_core::trust` as ecpd judges them: each rule of the decision, with
//! P-256, P-384 and RSA CAs and an intermediate CA as the anchor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ecp_core::trust::{parse_ca_file, parse_crl_file, CrlPolicy, TrustError, TrustStore};
use ecp_core::UserName;
use ecp_tests::ca::{openssl_user_request, CaKeyKind, TestCa};
use ecp_tests::daemon::TestDaemon;
use ecp_tests::{openssl, Workdir};

const SKEW: Duration = Duration::from_secs(300);
const STRICT: CrlPolicy = CrlPolicy {
    require_crl: true,
    grace_secs: 0,
};

fn now() -> i64 {
    ecp_core::when::unix_now()
}

fn alice() -> UserName {
    UserName::parse("alice").unwrap()
}

/// The DER of the PEM certificate at `path`.
fn der_of(path: &Path) -> Vec<u8> {
    let (_, der) = pkcs8::der::pem::decode_vec(&std::fs::read(path).unwrap()).unwrap();
    der
}

/// A store trusting `cas`, with the CRL texts in `crls`, and the CRLs of
/// no CA in it.
fn store_and_unused(
    cas: &[&TestCa],
    crls: &[String],
) -> Result<(TrustStore, Vec<ecp_core::trust::Crl>), TrustError> {
    let ca_pem: String = cas.iter().map(|ca| ca.certificate_pem()).collect();
    let crls = if crls.is_empty() {
        Vec::new()
    } else {
        parse_crl_file(crls.concat().as_bytes())?
    };
    TrustStore::new(parse_ca_file(ca_pem.as_bytes())?, crls)
}

/// A store trusting `cas`, with the CRL texts in `crls`.
fn store(cas: &[&TestCa], crls: &[String]) -> Result<TrustStore, TrustError> {
    store_and_unused(cas, crls).map(|(store, _)| store)
}

/// A certificate for CN=`name` issued by `ca`, valid for 30 days.
fn user_certificate(work: &Workdir, ca: &TestCa, name: &str) -> std::path::PathBuf {
    let request = openssl_user_request(&work.path(""), name);
    let out = work.path(&format!("{name}-by-{}.pem", ca.name.replace(' ', "_")));
    ca.sign_user(&request, &out, 30);
    out
}

#[test]
fn certificates_of_p256_p384_rsa_and_intermediate_cas_are_accepted_for_their_user_only() {
    let work = Workdir::new();
    let root = TestCa::root(&work.path(""), "Root RSA", CaKeyKind::Rsa(2048));
    let cas = [
        TestCa::root(&work.path(""), "CA P-256", CaKeyKind::P256),
        TestCa::root(&work.path(""), "CA P-384", CaKeyKind::P384),
        TestCa::root(&work.path(""), "CA RSA 3072", CaKeyKind::Rsa(3072)),
        root.intermediate("Intermediate P-256", CaKeyKind::P256),
    ];
    for ca in &cas {
        let cert = user_certificate(&work, ca, "alice");
        // OpenSSL agrees the chain holds.
        let chain = if ca.name.starts_with("Intermediate") {
            format!("{}{}", root.certificate_pem(), ca.certificate_pem())
        } else {
            ca.certificate_pem()
        };
        let bundle = work.write(
            &format!("{}-chain.pem", ca.name.replace(' ', "_")),
            chain.as_bytes(),
            0o644,
        );
        openssl(&[
            "verify",
            "-CAfile",
            bundle.to_str().unwrap(),
            cert.to_str().unwrap(),
        ]);

        let trust = store(&[ca], &[ca.crl(24)]).unwrap();
        let accepted = trust
            .check_presented(&der_of(&cert), &alice(), now(), SKEW, STRICT)
            .unwrap_or_else(|e| panic!("{}: {e}", ca.name));
        assert!(accepted.issuer.contains(&ca.name), "{}", accepted.issuer);
        assert_eq!(accepted.certificate.common_name(), "alice");
        // CN is alice, not bob.
        let refused = trust
            .check_presented(
                &der_of(&cert),
                &UserName::parse("bob").unwrap(),
                now(),
                SKEW,
                STRICT,
            )
            .unwrap_err();
        assert!(
            refused.to_string().contains("not for user \"bob\""),
            "{refused}"
        );
    }
}

#[test]
fn each_rule_of_the_decision_refuses_with_its_reason() {
    let work = Workdir::new();
    let ca = TestCa::root(&work.path(""), "Org CA", CaKeyKind::P256);
    let other = TestCa::root(&work.path(""), "Other CA", CaKeyKind::P256);
    let good = user_certificate(&work, &ca, "alice");
    let trust = store(&[&ca], &[ca.crl(24)]).unwrap();
    let decide = |trust: &TrustStore, cert: &Path, at: i64, policy: CrlPolicy| {
        trust.check_presented(&der_of(cert), &alice(), at, SKEW, policy)
    };
    assert!(decide(&trust, &good, now(), STRICT).is_ok());

    // A renewed CA key under the same name: both certificates in ca_file,
    // and a certificate from the new key is accepted.
    let renewed = TestCa::root(&work.path("renewed"), "Org CA", CaKeyKind::P256);
    let from_renewed = work.path("alice-by-renewed.pem");
    renewed.sign_user(
        &openssl_user_request(&work.path(""), "alice"),
        &from_renewed,
        30,
    );
    let both = store(&[&ca, &renewed], &[ca.crl(24), renewed.crl(24)]).unwrap();
    assert!(decide(&both, &from_renewed, now(), STRICT).is_ok());
    assert!(decide(&both, &good, now(), STRICT).is_ok());

    // Another CA's certificate.
    let foreign = user_certificate(&work, &other, "alice");
    assert!(matches!(
        decide(&trust, &foreign, now(), STRICT),
        Err(TrustError::UnknownIssuer { .. })
    ));

    // The CA is past its own validity (the certificate is checked later
    // than the CA's notAfter, user certificate or not).
    let past_ca = trust.cas()[0].not_after + 3600;
    assert!(matches!(
        decide(
            &trust,
            &good,
            past_ca,
            CrlPolicy {
                require_crl: false,
                grace_secs: 0
            }
        ),
        Err(TrustError::CaNotValidNow { .. })
    ));

    // A user certificate that is itself a CA.
    let request = openssl_user_request(&work.path(""), "alice");
    let ca_user = work.path("alice-ca.pem");
    ca.sign_user_with(
        &request,
        &ca_user,
        30,
        "basicConstraints=critical,CA:TRUE\n",
    );
    assert!(matches!(
        decide(&trust, &ca_user, now(), STRICT),
        Err(TrustError::UserCertificateIsCa { .. })
    ));

    // An expired user certificate (one day long, judged three days on).
    let short = work.path("alice-short.pem");
    ca.sign_user(&openssl_user_request(&work.path(""), "alice"), &short, 1);
    assert!(matches!(
        decide(
            &trust,
            &short,
            now() + 3 * 86_400,
            CrlPolicy {
                require_crl: false,
                grace_secs: 0
            }
        ),
        Err(TrustError::Certificate(
            ecp_core::CertificateError::Expired { .. }
        ))
    ));

    // Revoked: the next CRL names its serial.
    ca.revoke(&good);
    let revoked = store(&[&ca], &[ca.crl(24)]).unwrap();
    let refused = decide(&revoked, &good, now(), STRICT).unwrap_err();
    assert!(matches!(refused, TrustError::Revoked { .. }), "{refused}");
    assert!(refused.to_string().contains("Org CA"), "{refused}");

    // No CRL: refused when one is required, accepted when not.
    let fresh = user_certificate(&work, &ca, "alice");
    let no_crl = store(&[&ca], &[]).unwrap();
    assert!(matches!(
        decide(&no_crl, &fresh, now(), STRICT),
        Err(TrustError::NoCrl { .. })
    ));
    assert!(decide(
        &no_crl,
        &fresh,
        now(),
        CrlPolicy {
            require_crl: false,
            grace_secs: 0
        }
    )
    .is_ok());

    // A CRL past its nextUpdate: refused, unless within the grace.
    let next_update = revoked
        .crls()
        .find_map(|(_, crl)| crl?.next_update)
        .unwrap();
    assert!(matches!(
        decide(&revoked, &fresh, next_update + 1, STRICT),
        Err(TrustError::CrlOutOfDate { .. })
    ));
    assert!(decide(
        &revoked,
        &fresh,
        next_update + 1,
        CrlPolicy {
            require_crl: true,
            grace_secs: 3600
        }
    )
    .is_ok());
}

#[test]
fn bad_ca_and_crl_files_are_refused_with_the_reason() {
    let work = Workdir::new();
    let ca = TestCa::root(&work.path(""), "Org CA", CaKeyKind::P256);
    // A "CA" whose certificate says CA:FALSE.
    let not_ca = TestCa::root_with(
        &work.path(""),
        "Not A CA",
        CaKeyKind::P256,
        "basicConstraints=critical,CA:FALSE",
    );
    let err = parse_ca_file(not_ca.certificate_pem().as_bytes()).unwrap_err();
    assert!(matches!(err, TrustError::NotCa { .. }), "{err}");
    // RSA below 2048 bits.
    let weak = TestCa::root(&work.path(""), "Weak RSA", CaKeyKind::Rsa(1024));
    let err = parse_ca_file(weak.certificate_pem().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("1024 bits"), "{err}");
    // A CRL signed by another key under the same name.
    let impostor = TestCa::root(&work.path("impostor"), "Org CA", CaKeyKind::P256);
    let err = store(&[&ca], &[impostor.crl(24)]).unwrap_err();
    assert!(matches!(err, TrustError::BadCrlSignature { .. }), "{err}");
    // A CRL of a CA that is not trusted is set aside (a root's list beside
    // an intermediate anchor), not an error.
    let other = TestCa::root(&work.path(""), "Other CA", CaKeyKind::P256);
    let (_, unused) = store_and_unused(&[&ca], &[other.crl(24)]).unwrap();
    assert_eq!(unused.len(), 1);
    // A partitioned CRL (issuingDistributionPoint: users only) could leave
    // revocations out if read as the whole list: refused.
    let partial = ca.crl_with_extensions(
        24,
        "[crl_ext]\nissuingDistributionPoint=critical,@idp\n\
         [idp]\nfullname=URI:http://example.invalid/users.crl\nonlyuser=TRUE\n",
    );
    let err = parse_crl_file(partial.as_bytes()).unwrap_err();
    assert!(matches!(err, TrustError::IncompleteCrl { .. }), "{err}");
    // A CRL number is fine, and orders CRLs.
    let numbered = ca.crl_with_extensions(24, "[crl_ext]\nauthorityKeyIdentifier=keyid\n");
    assert_eq!(parse_crl_file(numbered.as_bytes()).unwrap().len(), 1);
    // Garbage.
    assert!(parse_crl_file(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n").is_err());
    assert!(parse_crl_file(b"hello").is_err());
    // A DER CRL reads like the PEM one.
    let der = work.path("crl.der");
    let _ = ca.crl(24);
    openssl(&[
        "crl",
        "-in",
        ca.path("crl.pem").to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    assert_eq!(
        parse_crl_file(&std::fs::read(&der).unwrap()).unwrap().len(),
        1
    );
}

/// A key for CN=`name` made by openssl, encrypted as OpenSSL writes it
/// (PBES2, AES-256-CBC, passphrase "pw"), and its certificate from `ca`;
/// returns (key, certificate, passphrase file).
fn openssl_user(work: &Workdir, ca: &TestCa, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let request = openssl_user_request(&work.path(""), name);
    let cert = work.path(&format!("{name}.pem"));
    ca.sign_user(&request, &cert, 30);
    let key = work.path(&format!("{name}-encrypted.key"));
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        work.path(&format!("{name}.key")).to_str().unwrap(),
        "-passout",
        "pass:pw",
        "-out",
        key.to_str().unwrap(),
    ]);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let pass = work.write(&format!("{name}.pass"), b"pw\n", 0o600);
    (key, cert, pass)
}

/// `ecpctl test-login alice` against `daemon` with `key`, presenting `cert`.
fn test_login(daemon: &TestDaemon, key: &Path, cert: &Path, pass: &Path) -> ecp_tests::Run {
    daemon.ecpctl(&[
        "test-login",
        "alice",
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ])
}

/// Waits (up to 20 s) until the daemon's log says `text`.
fn wait_for_log(daemon: &TestDaemon, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !daemon.log().contains(text) {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Replaces `path` as an admin's script would: a new file renamed over it.
fn replace_file(path: &Path, contents: &str) {
    let next = path.with_extension("new");
    std::fs::write(&next, contents).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[test]
fn a_ca_issued_certificate_logs_in_unenrolled_and_a_new_crl_revokes_it_without_restart() {
    let work = Workdir::new();
    let ca = TestCa::root(&work.path(""), "Org CA", CaKeyKind::P384);
    let ca_file = work.write("ca.pem", ca.certificate_pem().as_bytes(), 0o644);
    let crl_file = work.write("crl.pem", ca.crl(24).as_bytes(), 0o644);
    let mut daemon = TestDaemon::start(&format!(
        "host_name = \"ca-test-host\"\nca_file = \"{}\"\ncrl_file = \"{}\"\n",
        ca_file.display(),
        crl_file.display()
    ));
    let (key, cert, pass) = openssl_user(&work, &ca, "alice");

    // Nothing is enrolled for alice on this host, yet she logs in.
    assert!(daemon
        .ecpctl(&["list", "alice", "--json"])
        .ok()
        .contains("[]"));
    let run = test_login(&daemon, &key, &cert, &pass);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("with its CA-issued certificate"),
        "{}",
        run.stdout
    );

    // `ecpctl status` shows the CA and its CRL.
    let status = daemon.ecpctl(&["status"]).ok();
    assert!(
        status.contains("trusted CA:             O=ecp tests, CN=Org CA"),
        "{status}"
    );
    assert!(
        status.contains("CRL:                  this update"),
        "{status}"
    );

    // Another CA's certificate for the same key name: refused like a bad
    // signature; the journal has the reason.
    let other = TestCa::root(&work.path("other"), "Other CA", CaKeyKind::P256);
    let foreign = work.path("foreign.pem");
    other.sign_user(&work.path("alice.csr"), &foreign, 30);
    let run = test_login(&daemon, &key, &foreign, &pass);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("login failed"), "{}", run.stderr);
    assert!(
        daemon.log().contains("Other CA, which is not a trusted CA"),
        "{}",
        daemon.log()
    );

    std::fs::copy(&crl_file, work.path("crl-before.pem")).unwrap();
    // The admin revokes the certificate and replaces the CRL: the running
    // daemon notices the new file and refuses her from then on.
    ca.revoke(&cert);
    replace_file(&crl_file, &ca.crl(24));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let run = test_login(&daemon, &key, &cert, &pass);
        if run.code != 0 {
            assert!(run.stderr.contains("login failed"), "{}", run.stderr);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new CRL was not picked up"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(daemon.log().contains("is revoked"), "{}", daemon.log());

    // The CRL from before the revocation, replayed: refused as a
    // rollback, and the revocation holds.
    replace_file(
        &crl_file,
        &std::fs::read_to_string(work.path("crl-before.pem")).unwrap(),
    );
    nix_kill_hup(daemon.pid());
    wait_for_log(&daemon, "older than the one already in force");
    assert_eq!(test_login(&daemon, &key, &cert, &pass).code, 1);

    // Not even after a restart: the newest CRL seen is recorded in the
    // store, so the replayed one loads as no CRL at all.
    daemon.restart();
    let status = daemon.ecpctl(&["status"]).ok();
    assert!(
        status.contains("CRL:                  none loaded"),
        "{status}"
    );
    assert!(
        status.contains("older than the one already in force"),
        "{status}"
    );
    let run = test_login(&daemon, &key, &cert, &pass);
    assert_eq!(run.code, 1, "{}", run.stderr);
    replace_file(&crl_file, &ca.crl(24));
    nix_kill_hup(daemon.pid());

    // A CRL file that does not parse is reported and changes nothing: the
    // revocation still holds (SIGHUP makes it read at once).
    replace_file(
        &crl_file,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    nix_kill_hup(daemon.pid());
    wait_for_log(&daemon, "keeping the CAs and CRLs loaded before");
    assert_eq!(test_login(&daemon, &key, &cert, &pass).code, 1);
    let status = daemon.ecpctl(&["status"]).ok();
    assert!(status.contains("CA/CRL files problem:"), "{status}");
}

#[test]
fn with_a_trusted_ca_every_account_needs_a_signature_and_nouserok_waves_no_one_through() {
    let work = Workdir::new();
    let ca = TestCa::root(&work.path(""), "Org CA", CaKeyKind::P256);
    let ca_file = work.write("ca.pem", ca.certificate_pem().as_bytes(), 0o644);
    let plain = TestDaemon::start("host_name = \"h\"\n");
    let trusting = TestDaemon::start(&format!(
        "host_name = \"h\"\nca_file = \"{}\"\nrequire_crl = false\n",
        ca_file.display()
    ));
    let needs = |daemon: &TestDaemon, user: &str| {
        let conn = daemon.connect();
        zbus::block_on(async {
            ecp_core::bus::AuthProxy::new(&conn)
                .await
                .unwrap()
                .needs_signature(user)
                .await
                .unwrap()
        })
    };
    assert!(!needs(&plain, "alice"));
    assert!(needs(&trusting, "alice"));
    // And a bare garbage answer for an unenrolled user is a failure, not
    // "not enrolled" (which nouserok would turn into a pass).
    let conn = trusting.connect();
    let refused = zbus::block_on(async {
        let auth = ecp_core::bus::AuthProxy::new(&conn).await.unwrap();
        let token = auth.challenge("alice", "sshd", "").await.unwrap();
        auth.verify("alice", &token, "MEUCIQgarbage")
            .await
            .unwrap_err()
    });
    assert!(
        matches!(refused, ecp_core::bus::EcpError::AuthenticationFailed(_)),
        "{refused:?}"
    );
}

fn nix_kill_hup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ecpctl_cert_check_says_what_ecpd_would_decide_about_a_presented_certificate() {
    let work = Workdir::new();
    let ca = TestCa::root(&work.path(""), "Org CA", CaKeyKind::P256);
    let ca_file = work.write("ca.pem", ca.certificate_pem().as_bytes(), 0o644);
    let cert = user_certificate(&work, &ca, "alice");
    let crl = work.write("crl.pem", ca.crl(24).as_bytes(), 0o644);
    let check = |extra: &[&str]| {
        let mut args = vec![
            "cert",
            "check",
            "--user",
            "alice",
            "--ca-file",
            ca_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(cert.to_str().unwrap());
        ecp_tests::ecpctl(&args)
    };
    let ok = check(&["--crl-file", crl.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stdout
            .contains("would be accepted for user alice at login: issued by"),
        "{}",
        ok.stdout
    );

    // No CRL: refused as ecpd refuses it by default, unless not required.
    let no_crl = check(&[]);
    assert_eq!(no_crl.code, 1);
    assert!(
        no_crl.stderr.contains("there is no CRL"),
        "{}",
        no_crl.stderr
    );
    assert_eq!(check(&["--no-require-crl"]).code, 0);

    // Revoked.
    ca.revoke(&cert);
    std::fs::write(&crl, ca.crl(24)).unwrap();
    let revoked = check(&["--crl-file", crl.to_str().unwrap()]);
    assert_eq!(revoked.code, 1);
    assert!(revoked.stderr.contains("is revoked"), "{}", revoked.stderr);

    // Without --ca-file it is judged for enrollment: not self-signed.
    let enroll = ecp_tests::ecpctl(&["cert", "check", "--user", "alice", cert.to_str().unwrap()]);
    assert_eq!(enroll.code, 1);
    assert!(enroll.stderr.contains("self-signed"), "{}", enroll.stderr);

    // `cert show` names the issuer.
    let shown = ecp_tests::ecpctl(&["cert", "show", cert.to_str().unwrap()]).ok();
    assert!(
        shown.contains("issuer:       O=ecp tests, CN=Org CA"),
        "{shown}"
    );
}

/// `ecpctl ca sign` with the CA files, `extra` arguments and `request`.
fn ca_sign(ca_cert: &Path, ca_key: &Path, extra: &[&str], request: &Path) -> ecp_tests::Run {
    let mut args = vec![
        "ca",
        "sign",
        "--ca-cert",
        ca_cert.to_str().unwrap(),
        "--ca-key",
        ca_key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(request.to_str().unwrap());
    ecp_tests::ecpctl(&args)
}

#[test]
fn keygen_csr_and_ca_sign_make_certificates_openssl_and_ecpd_accept() {
    let work = Workdir::new();
    let pass = work.write("pw.pass", b"pw\n", 0o600);
    let run = ecp_tests::ecpctl(&[
        "keygen",
        "--user",
        "alice",
        "--out",
        work.path("k").to_str().unwrap(),
        "--csr",
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = work.path("k/certificate_request.pem");
    assert!(!work.path("k/certificate.pem").exists());
    // OpenSSL reads the request and its signature.
    openssl(&["req", "-in", request.to_str().unwrap(), "-verify", "-noout"]);

    for (name, kind) in [
        ("CA P-256", CaKeyKind::P256),
        ("CA P-384", CaKeyKind::P384),
        ("CA RSA", CaKeyKind::Rsa(2048)),
    ] {
        let ca = TestCa::root(&work.path(""), name, kind);
        let out = work.path(&format!("{}.pem", name.replace(' ', "_")));
        let signed = ca_sign(
            &ca.path("ca.pem"),
            &ca.path("ca.key"),
            &["--days", "30", "--out", out.to_str().unwrap()],
            &request,
        );
        assert_eq!(signed.code, 0, "{name}: {}", signed.stderr);
        openssl(&[
            "verify",
            "-x509_strict",
            "-CAfile",
            ca.path("ca.pem").to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        let trust = store(&[&ca], &[ca.crl(24)]).unwrap();
        let accepted = trust
            .check_presented(&der_of(&out), &alice(), now(), SKEW, STRICT)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(accepted.certificate.common_name(), "alice");
    }

    // An encrypted CA key, with its passphrase from a file.
    let ca = TestCa::root(&work.path(""), "CA encrypted", CaKeyKind::P256);
    let encrypted = work.path("ca-encrypted.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        ca.path("ca.key").to_str().unwrap(),
        "-passout",
        "pass:capw",
        "-out",
        encrypted.to_str().unwrap(),
    ]);
    std::fs::set_permissions(
        &encrypted,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let ca_pass = work.write("ca.pass", b"capw\n", 0o600);
    let signed = ca_sign(
        &ca.path("ca.pem"),
        &encrypted,
        &["--passphrase-file", ca_pass.to_str().unwrap()],
        &request,
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    assert!(
        signed.stdout.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        signed.stdout
    );

    // Refused: a request whose CN is no user name, a request with an RSA
    // key, and a CA key that is not the certificate's.
    let other = TestCa::root(&work.path(""), "Other CA", CaKeyKind::P256);
    let sign_with =
        |ca_cert: &Path, ca_key: &Path, request: &Path| ca_sign(ca_cert, ca_key, &[], request);

    let bad_name = openssl_user_request(&work.path(""), "bad name");
    let refused = sign_with(&ca.path("ca.pem"), &ca.path("ca.key"), &bad_name);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("valid user name"),
        "{}",
        refused.stderr
    );
    let rsa_key = work.path("rsa-user.key");
    ecp_tests::ca::genpkey(CaKeyKind::Rsa(2048), &rsa_key);
    let rsa_request = work.path("rsa-user.csr");
    openssl(&[
        "req",
        "-new",
        "-key",
        rsa_key.to_str().unwrap(),
        "-subj",
        "/CN=alice",
        "-out",
        rsa_request.to_str().unwrap(),
    ]);
    let refused = sign_with(&ca.path("ca.pem"), &ca.path("ca.key"), &rsa_request);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("an RSA key"), "{}", refused.stderr);
    let mismatch = sign_with(&ca.path("ca.pem"), &other.path("ca.key"), &request);
    assert_eq!(mismatch.code, 1);
    // --user guards against signing the wrong request; root needs
    // --allow-root.
    let wrong_user = ca_sign(
        &ca.path("ca.pem"),
        &ca.path("ca.key"),
        &["--user", "bob"],
        &request,
    );
    assert_eq!(wrong_user.code, 1);
    assert!(
        wrong_user.stderr.contains("is for alice, not for bob"),
        "{}",
        wrong_user.stderr
    );
    let root_request = openssl_user_request(&work.path(""), "root");
    let for_root = sign_with(&ca.path("ca.pem"), &ca.path("ca.key"), &root_request);
    assert_eq!(for_root.code, 1);
    assert!(
        for_root.stderr.contains("--allow-root"),
        "{}",
        for_root.stderr
    );
    let allowed = ca_sign(
        &ca.path("ca.pem"),
        &ca.path("ca.key"),
        &["--allow-root"],
        &root_request,
    );
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    assert!(
        mismatch
            .stderr
            .contains("does not belong to the CA certificate"),
        "{}",
        mismatch.stderr
    );
}

#[test]
fn a_renewed_ca_certificate_is_preferred_and_a_vanished_crl_forgets_no_revocation() {
    let work = Workdir::new();
    let ca = TestCa::root(&work.path(""), "Org CA", CaKeyKind::P256);
    // An expired certificate of the same CA key and name, made by
    // Python's cryptography (OpenSSL's req cannot backdate), put first.
    let script = r#"
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
now = datetime.datetime.now(datetime.timezone.utc)
name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecp tests"),
                  x509.NameAttribute(NameOID.COMMON_NAME, "Org CA")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=int(sys.argv[2])))
        .not_valid_after(now + datetime.timedelta(days=int(sys.argv[3])))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
        .sign(key, hashes.SHA256()))
sys.stdout.write(cert.public_bytes(serialization.Encoding.PEM).decode())
"#;
    let ca_certificate = |from_days: &str, to_days: &str| {
        ecp_tests::run(
            Path::new("/usr/bin/python3"),
            &[
                "-c",
                script,
                ca.path("ca.key").to_str().unwrap(),
                from_days,
                to_days,
            ],
        )
        .ok()
    };
    let expired = ca_certificate("-400", "-35");
    let bundle = format!("{expired}{}", ca.certificate_pem());
    let ca_file = work.write("ca.pem", bundle.as_bytes(), 0o644);
    let crl_file = work.write("crl.pem", ca.crl(24).as_bytes(), 0o644);
    let daemon = TestDaemon::start(&format!(
        "host_name = \"ca-test-host\"\nca_file = \"{}\"\ncrl_file = \"{}\"\nrequire_crl = false\n",
        ca_file.display(),
        crl_file.display()
    ));
    let (key, cert, pass) = openssl_user(&work, &ca, "alice");
    // The certificate valid now issues, wherever it stands in the file.
    let run = test_login(&daemon, &key, &cert, &pass);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());

    // Revoked in the CRL: refused.
    ca.revoke(&cert);
    replace_file(&crl_file, &ca.crl(24));
    nix_kill_hup(daemon.pid());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while test_login(&daemon, &key, &cert, &pass).code == 0 {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    // The CRL file replaced by one without this CA's list (another CA's):
    // with require_crl off, the CA would count as having none, and its
    // revocations would be forgotten. This host has held its CRL: refused.
    let other = TestCa::root(&work.path("other"), "Other CA", CaKeyKind::P256);
    replace_file(&crl_file, &other.crl(24));
    nix_kill_hup(daemon.pid());
    wait_for_log(&daemon, "no CRL");
    let run = test_login(&daemon, &key, &cert, &pass);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        daemon.log().contains("has held a CRL of"),
        "{}",
        daemon.log()
    );

    // The CA certificate renewed (same key and name, a new fingerprint)
    // and only it in the bundle: what was remembered of the CA's CRLs
    // carries over, so the missing list still refuses.
    let loads = daemon.log().matches("no CRL").count();
    replace_file(&ca_file, &ca_certificate("-1", "60"));
    nix_kill_hup(daemon.pid());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while daemon.log().matches("no CRL").count() == loads {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = test_login(&daemon, &key, &cert, &pass);
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, daemon.log());
}
