//! A catalogue of hostile inputs sent to the real daemon over the bus, each
//! with the exact outcome expected. Afterwards nothing is stored and the
//! daemon still answers.

use ecp_core::bus::{AdminProxy, AuthProxy, EcpError};
use ecp_core::certificate::build_self_signed_certificate;
use ecp_core::keyfile::generate_signing_key;
use ecp_core::{Challenge, HostName, ServiceName, UserName};
use ecp_tests::daemon::TestDaemon;
use ecp_tests::{openssl, Workdir};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    InvalidArgument,
    AuthenticationFailed,
    ChallengeUnknown,
    CertificateRejected,
    /// Refused before it leaves the client: D-Bus strings are UTF-8 without NUL.
    NotSendable,
}

fn kind(result: &Result<impl std::fmt::Debug, EcpError>) -> Option<Expect> {
    match result {
        Ok(_) => None,
        Err(EcpError::InvalidArgument(_)) => Some(Expect::InvalidArgument),
        Err(EcpError::AuthenticationFailed(_)) => Some(Expect::AuthenticationFailed),
        Err(EcpError::ChallengeUnknown(_)) => Some(Expect::ChallengeUnknown),
        Err(EcpError::CertificateRejected(_)) => Some(Expect::CertificateRejected),
        Err(EcpError::ZBus(_)) => Some(Expect::NotSendable),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

fn big(n: usize) -> String {
    "a".repeat(n)
}

#[test]
fn hostile_arguments_get_exact_errors_and_store_nothing() {
    let daemon = TestDaemon::start(
        "host_name = \"h\"\nchallenges_per_user_per_minute = 0\nfailures_before_penalty = 0\n",
    );
    let work = Workdir::new();
    let conn = daemon.connect();
    let mib = 1 << 20;

    // A token for another host, with a nonce the daemon never issued.
    let foreign = Challenge::new_random(
        UserName::parse("alice").unwrap(),
        HostName::parse("other-host").unwrap(),
        ServiceName::parse("sshd").unwrap(),
        ecp_core::when::unix_now() as u64,
        300,
    )
    .unwrap();
    let foreign_token = foreign.to_token();
    let foreign_signature = foreign.sign(&generate_signing_key());

    let challenges: Vec<(&str, String, String, String, Expect)> = vec![
        (
            "empty user",
            "".into(),
            "sshd".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "huge user",
            big(mib),
            "sshd".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "user with slash",
            "a/b".into(),
            "sshd".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "user ..",
            "..".into(),
            "sshd".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "user with space",
            "al ice".into(),
            "sshd".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "user with newline",
            "alice\n".into(),
            "sshd".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "non-ASCII user",
            "élodie".into(),
            "sshd".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "empty service",
            "alice".into(),
            "".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "service path",
            "alice".into(),
            "../sshd".into(),
            "".into(),
            Expect::InvalidArgument,
        ),
        (
            "huge rhost",
            "alice".into(),
            "sshd".into(),
            big(mib),
            Expect::InvalidArgument,
        ),
        (
            "rhost with newline",
            "alice".into(),
            "sshd".into(),
            "1.2.3.4\nuser=root".into(),
            Expect::InvalidArgument,
        ),
    ];
    let verifications: Vec<(&str, String, String, String, Expect)> = vec![
        (
            "empty token",
            "alice".into(),
            "".into(),
            "MEUC".into(),
            Expect::AuthenticationFailed,
        ),
        (
            "garbage token",
            "alice".into(),
            "!!!".into(),
            "MEUC".into(),
            Expect::AuthenticationFailed,
        ),
        (
            "huge token",
            "alice".into(),
            big(mib),
            "MEUC".into(),
            Expect::InvalidArgument,
        ),
        (
            "huge signature",
            "alice".into(),
            foreign_token.clone(),
            big(mib),
            Expect::InvalidArgument,
        ),
        (
            "token for another host",
            "alice".into(),
            foreign_token.clone(),
            foreign_signature.clone(),
            Expect::ChallengeUnknown,
        ),
        (
            "odd user",
            "../root".into(),
            foreign_token.clone(),
            foreign_signature,
            Expect::InvalidArgument,
        ),
    ];

    // Certificates: foreign algorithms, two CNs, signed by someone else,
    // trailing garbage, huge, not PEM.
    let mut certificates: Vec<(&str, String, Expect)> = Vec::new();
    for (name, opts) in [
        (
            "P-384 certificate",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
        ),
        (
            "RSA certificate",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
        ("Ed25519 certificate", &["-algorithm", "ED25519"][..]),
    ] {
        let key = work.arg(&format!("{name}.key"));
        let mut args = vec!["genpkey", "-out", &key];
        args.extend_from_slice(opts);
        openssl(&args);
        let cert = work.arg(&format!("{name}.crt"));
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-subj",
            "/CN=alice",
            "-days",
            "3",
            "-out",
            &cert,
        ]);
        certificates.push((
            name,
            String::from_utf8(work.read(&format!("{name}.crt"))).unwrap(),
            Expect::CertificateRejected,
        ));
    }
    ecp_tests::ca::genpkey(ecp_tests::ca::CaKeyKind::P256, &work.path("p256.key"));
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &work.arg("p256.key"),
        "-subj",
        "/CN=alice/CN=root",
        "-days",
        "3",
        "-out",
        &work.arg("two.crt"),
    ]);
    certificates.push((
        "two CNs",
        String::from_utf8(work.read("two.crt")).unwrap(),
        Expect::CertificateRejected,
    ));
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &work.arg("ca.key"),
    ]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &work.arg("ca.key"),
        "-subj",
        "/CN=ca",
        "-days",
        "3",
        "-out",
        &work.arg("ca.crt"),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        &work.arg("p256.key"),
        "-subj",
        "/CN=alice",
        "-out",
        &work.arg("csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &work.arg("csr"),
        "-CA",
        &work.arg("ca.crt"),
        "-CAkey",
        &work.arg("ca.key"),
        "-days",
        "3",
        "-out",
        &work.arg("issued.crt"),
    ]);
    certificates.push((
        "signed by someone else",
        String::from_utf8(work.read("issued.crt")).unwrap(),
        Expect::CertificateRejected,
    ));
    // A CN with a NUL in it ("alice\0.evil"), made by Python's cryptography.
    let nul_cn = r#"
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice\x00.evil")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=3)).sign(key, hashes.SHA256()))
sys.stdout.write(cert.public_bytes(serialization.Encoding.PEM).decode())
"#;
    let nul_pem = ecp_tests::run(std::path::Path::new("/usr/bin/python3"), &["-c", nul_cn]).ok();
    certificates.push(("CN with a NUL", nul_pem, Expect::CertificateRejected));
    let good = build_self_signed_certificate(
        &generate_signing_key(),
        &UserName::parse("alice").unwrap(),
        3,
    )
    .unwrap();
    certificates.push((
        "trailing garbage",
        format!("{good}trailing garbage\n"),
        Expect::CertificateRejected,
    ));
    certificates.push((
        "two certificates",
        format!("{good}{good}"),
        Expect::CertificateRejected,
    ));
    certificates.push(("huge", big(mib), Expect::CertificateRejected));
    certificates.push(("not PEM", "hello".into(), Expect::CertificateRejected));
    certificates.push(("empty", String::new(), Expect::CertificateRejected));

    zbus::block_on(async {
        let auth = AuthProxy::new(&conn).await.unwrap();
        let admin = AdminProxy::new(&conn).await.unwrap();
        for (name, user, service, rhost, expect) in &challenges {
            let got = auth.challenge(user, service, rhost).await;
            assert_eq!(kind(&got), Some(*expect), "challenge, {name}: {got:?}");
        }
        for (name, user, token, signature, expect) in &verifications {
            let got = auth.verify(user, token, signature).await;
            assert_eq!(kind(&got), Some(*expect), "verify, {name}: {got:?}");
        }
        for (name, pem, expect) in &certificates {
            let got = admin.enroll("alice", pem, "").await;
            assert_eq!(kind(&got), Some(*expect), "enroll, {name}: {got:?}");
        }
        let labels = [("newline label", "a\nb"), ("huge label", &big(1000)[..])];
        for (name, label) in labels {
            let got = admin.enroll("alice", &good, label).await;
            assert_eq!(
                kind(&got),
                Some(Expect::InvalidArgument),
                "enroll, {name}: {got:?}"
            );
        }
        let bad_fingerprint = admin.revoke("alice", "not-a-fingerprint", false).await;
        assert_eq!(kind(&bad_fingerprint), Some(Expect::InvalidArgument));

        // D-Bus strings may not hold NUL: the bus drops a connection that
        // sends one, before the daemon sees anything. Each on its own
        // connection, since that one is gone afterwards.
        for (name, user) in [("user with NUL", "ali\0ce"), ("NUL only", "\0")] {
            let conn = zbus::connection::Builder::address(daemon.address())
                .build()
                .await
                .unwrap();
            let auth = AuthProxy::new(&conn).await.unwrap();
            let got = auth.challenge(user, "sshd", "").await;
            assert_eq!(
                kind(&got),
                Some(Expect::NotSendable),
                "challenge, {name}: {got:?}"
            );
            let conn = zbus::connection::Builder::address(daemon.address())
                .build()
                .await
                .unwrap();
            let auth = AuthProxy::new(&conn).await.unwrap();
            let got = auth.verify(user, &foreign_token, "MEUC").await;
            assert_eq!(
                kind(&got),
                Some(Expect::NotSendable),
                "verify, {name}: {got:?}"
            );
        }

        // Nothing was stored, and the daemon still answers.
        let status = admin.status().await.unwrap();
        assert_eq!(
            (status.users, status.certificates, status.recent_challenges),
            (0, 0, 0),
            "{status:?}"
        );
    });
    let log = daemon.log();
    assert!(!log.contains("panicked"), "{log}");
}
