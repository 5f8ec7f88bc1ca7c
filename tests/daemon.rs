//! ecpd against a real (private) dbus-daemon with the package's policy:
//! the login round, replay, concurrency, expiry, binding, revocation,
//! authorization of non-root callers, per-source limits and waits, and
//! crash recovery.

use std::path::Path;
use std::time::Duration;

use ecp_core::bus::{AdminProxy, AuthProxy, EcpError};
use ecp_core::certificate::build_self_signed_certificate;
use ecp_core::keyfile::generate_signing_key;
use ecp_core::{Challenge, UserName};
use ecp_tests::daemon::{running_as_root, TestDaemon, TestUser};
use ecp_tests::{binary, Workdir};
use p256::ecdsa::SigningKey;

const TEST_CONFIG: &str = "host_name = \"ecp-test-host\"\n";

fn key_and_cert(user: &str) -> (SigningKey, String) {
    let key = generate_signing_key();
    let pem = build_self_signed_certificate(&key, &UserName::parse(user).unwrap(), 30).unwrap();
    (key, pem)
}

fn enroll(daemon: &TestDaemon, user: &str) -> SigningKey {
    let (key, pem) = key_and_cert(user);
    let conn = daemon.connect();
    zbus::block_on(async {
        let admin = AdminProxy::new(&conn).await.unwrap();
        admin.enroll(user, &pem, "test").await.unwrap();
    });
    key
}

fn challenge(daemon: &TestDaemon, user: &str, rhost: &str) -> Result<String, EcpError> {
    let conn = daemon.connect();
    zbus::block_on(async {
        let auth = AuthProxy::new(&conn).await.unwrap();
        auth.challenge(user, "sshd", rhost).await
    })
}

fn verify(daemon: &TestDaemon, user: &str, token: &str, signature: &str) -> Result<(), EcpError> {
    let conn = daemon.connect();
    zbus::block_on(async {
        let auth = AuthProxy::new(&conn).await.unwrap();
        auth.verify(user, token, signature).await
    })
}

fn sign(token: &str, key: &SigningKey) -> String {
    Challenge::from_token(token).unwrap().sign(key)
}

fn login(daemon: &TestDaemon, user: &str, key: &SigningKey) -> Result<(), EcpError> {
    let token = challenge(daemon, user, "192.0.2.1")?;
    verify(daemon, user, &token, &sign(&token, key))
}

#[test]
fn signed_challenge_verifies_once_and_the_replay_fails() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    let key = enroll(&daemon, "alice");
    let token = challenge(&daemon, "alice", "192.0.2.1").unwrap();
    let parsed = Challenge::from_token(&token).unwrap();
    assert_eq!(parsed.host.as_str(), "ecp-test-host");
    assert_eq!(parsed.service.as_str(), "sshd");
    let signature = sign(&token, &key);
    verify(&daemon, "alice", &token, &signature).unwrap();
    assert!(matches!(
        verify(&daemon, "alice", &token, &signature),
        Err(EcpError::ChallengeUnknown(_))
    ));
    assert!(daemon.log().contains("outcome=\"success\""));
}

#[test]
fn thirty_two_concurrent_verifications_of_one_token_succeed_exactly_once() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    let key = enroll(&daemon, "alice");
    let token = challenge(&daemon, "alice", "").unwrap();
    let signature = sign(&token, &key);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let (address, token, signature, barrier) = (
                daemon.address().to_owned(),
                token.clone(),
                signature.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                zbus::block_on(async {
                    let conn = zbus::connection::Builder::address(address.as_str())
                        .build()
                        .await
                        .unwrap();
                    let auth = AuthProxy::new(&conn).await.unwrap();
                    barrier.wait();
                    auth.verify("alice", &token, &signature).await.is_ok()
                })
            })
        })
        .collect();
    let successes = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(successes, 1);
}

#[test]
fn expired_challenge_fails() {
    let daemon = TestDaemon::start("host_name = \"h\"\nchallenge_lifetime_secs = 1\n");
    let key = enroll(&daemon, "alice");
    let token = challenge(&daemon, "alice", "").unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    assert!(matches!(
        verify(&daemon, "alice", &token, &sign(&token, &key)),
        Err(EcpError::ChallengeExpired(_))
    ));
}

#[test]
fn challenge_for_alice_does_not_log_in_bob() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    let alice = enroll(&daemon, "alice");
    let bob = enroll(&daemon, "bob");
    let token = challenge(&daemon, "alice", "").unwrap();
    // Alice's signature offered for bob, and bob's own signature over
    // alice's challenge: both refused.
    assert!(matches!(
        verify(&daemon, "bob", &token, &sign(&token, &alice)),
        Err(EcpError::AuthenticationFailed(_))
    ));
    let token = challenge(&daemon, "alice", "").unwrap();
    assert!(verify(&daemon, "bob", &token, &sign(&token, &bob)).is_err());
    // Bob's key does not log in alice either.
    let token = challenge(&daemon, "alice", "").unwrap();
    assert!(matches!(
        verify(&daemon, "alice", &token, &sign(&token, &bob)),
        Err(EcpError::AuthenticationFailed(_))
    ));
}

#[test]
fn revoked_certificate_no_longer_logs_in() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    let key = enroll(&daemon, "alice");
    login(&daemon, "alice", &key).unwrap();
    let list = daemon.ecpctl(&["list", "alice", "--json"]).ok();
    let fingerprint = daemon.first_fingerprint("alice");
    assert!(list.contains("\"last_used\": 1"), "{list}");
    let out = daemon.ecpctl(&["revoke", "alice", &fingerprint]).ok();
    assert!(out.contains("revoked 1"), "{out}");
    assert!(matches!(
        login(&daemon, "alice", &key),
        Err(EcpError::NotEnrolled(_))
    ));
    // Revoking again changes nothing and says so (scripts may repeat it
    // on every host); a fingerprint alice never had is not found.
    let again = daemon.ecpctl(&["revoke", "alice", &fingerprint]).ok();
    assert!(again.contains("revoked already"), "{again}");
    let unknown = daemon.ecpctl(&["revoke", "alice", &"ab".repeat(32)]);
    assert_eq!(unknown.code, 6);
    // It is no longer listed.
    let cert = daemon.ecpctl(&["list", "alice", "--json"]).ok();
    assert!(!cert.contains(&fingerprint), "{cert}");
}

#[test]
fn certificate_past_its_validity_no_longer_logs_in() {
    let daemon = TestDaemon::start("host_name = \"h\"\nclock_skew_secs = 0\n");
    let work = Workdir::new();
    // A certificate valid for three more seconds, made by Python's
    // cryptography (ecp's own builder does whole days only).
    let script = r#"
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
d = sys.argv[1]
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(seconds=3))
        .sign(key, hashes.SHA256()))
open(d + "/c.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(d + "/k.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;
    ecp_tests::run(
        Path::new("/usr/bin/python3"),
        &["-c", script, &work.arg("")],
    )
    .ok();
    let key = <SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(
        &String::from_utf8(work.read("k.pem")).unwrap(),
    )
    .unwrap();
    daemon
        .ecpctl(&[
            "enroll",
            "alice",
            "--cert",
            &work.arg("c.pem"),
            "--label",
            "short",
        ])
        .ok();
    login(&daemon, "alice", &key).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let err = login(&daemon, "alice", &key).unwrap_err();
    assert!(
        matches!(&err, EcpError::AuthenticationFailed(m) if m.contains("currently valid")),
        "{err:?}"
    );
}

#[test]
fn enrollment_refuses_bad_certificates_and_changes_nothing() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    let (_, pem) = key_and_cert("alice");
    let conn = daemon.connect();
    zbus::block_on(async {
        let admin = AdminProxy::new(&conn).await.unwrap();
        for (user, cert, label) in [
            ("bob", pem.as_str(), ""),
            (
                "alice",
                "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
                "",
            ),
            ("../etc", pem.as_str(), ""),
            ("alice", pem.as_str(), "bad\nlabel"),
        ] {
            let err = admin.enroll(user, cert, label).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    EcpError::CertificateRejected(_) | EcpError::InvalidArgument(_)
                ),
                "{user} {label:?}: {err:?}"
            );
        }
        let huge = "A".repeat(1 << 20);
        assert!(admin.enroll("alice", &huge, "").await.is_err());
        assert!(admin.list("").await.unwrap().is_empty());
        admin.enroll("alice", &pem, "laptop").await.unwrap();
        assert!(matches!(
            admin.enroll("alice", &pem, "again").await,
            Err(EcpError::AlreadyEnrolled(_))
        ));
        assert_eq!(admin.list("alice").await.unwrap().len(), 1);
    });
}

#[test]
fn every_proxy_method_reaches_the_daemon() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    let (key, pem) = key_and_cert("carol");
    let conn = daemon.connect();
    zbus::block_on(async {
        let admin = AdminProxy::new(&conn).await.unwrap();
        let auth = AuthProxy::new(&conn).await.unwrap();
        let fingerprint = admin.enroll("carol", &pem, "one").await.unwrap();
        let token = auth.challenge("carol", "login", "").await.unwrap();
        auth.verify(
            "carol",
            &token,
            &Challenge::from_token(&token).unwrap().sign(&key),
        )
        .await
        .unwrap();
        let entries = admin.list("carol").await.unwrap();
        assert_eq!(entries[0].fingerprint, fingerprint);
        assert!(entries[0].last_used > 0);
        admin.unlock("carol").await.unwrap();
        let status = admin.status().await.unwrap();
        assert_eq!((status.users, status.certificates), (1, 1));
        assert_eq!(status.host, "ecp-test-host");
        assert_eq!(admin.cleanup().await.unwrap(), 0);
        let revoked = admin
            .revoke("carol", &fingerprint.to_uppercase(), false)
            .await
            .unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(
            (revoked[0].fingerprint.as_str(), revoked[0].reason.as_str()),
            (fingerprint.as_str(), "revoked")
        );
        // Revocation is of the key: the same certificate cannot return.
        assert!(matches!(
            admin.enroll("carol", &pem, "two").await,
            Err(EcpError::CertificateRejected(m)) if m.contains("revoked")
        ));
        let (_, other) = key_and_cert("carol");
        admin.enroll("carol", &other, "two").await.unwrap();
        assert_eq!(admin.revoke_all("carol").await.unwrap().len(), 1);
        assert!(matches!(
            auth.challenge("car/ol", "login", "").await,
            Err(EcpError::InvalidArgument(_))
        ));
    });
}

#[test]
fn unknown_user_gets_a_challenge_like_anyone_else() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    enroll(&daemon, "alice");
    let known = Challenge::from_token(&challenge(&daemon, "alice", "").unwrap()).unwrap();
    let unknown = Challenge::from_token(&challenge(&daemon, "nosuchuser", "").unwrap()).unwrap();
    assert_eq!(known.host, unknown.host);
    assert!(known.expires_at.abs_diff(unknown.expires_at) <= 1);
    // Root learns "not enrolled" (for the module's nouserok).
    let token = challenge(&daemon, "nosuchuser", "").unwrap();
    assert!(matches!(
        verify(
            &daemon,
            "nosuchuser",
            &token,
            &sign(&token, &generate_signing_key())
        ),
        Err(EcpError::NotEnrolled(_))
    ));
}

#[test]
fn challenges_are_limited_per_user_and_source_and_refusals_count_nothing() {
    let daemon = TestDaemon::start(
        "host_name = \"h\"\nchallenges_per_source_per_minute = 3\nchallenges_per_user_per_minute = 2\n",
    );
    let source = "198.51.100.7";
    for _ in 0..2 {
        challenge(&daemon, "alice", source).unwrap();
    }
    for _ in 0..5 {
        assert!(matches!(
            challenge(&daemon, "alice", source),
            Err(EcpError::RateLimited(_))
        ));
    }
    // The refusals did not count against the source's allowance of 3.
    challenge(&daemon, "bob", source).unwrap();
    assert!(matches!(
        challenge(&daemon, "carol", source),
        Err(EcpError::RateLimited(_))
    ));
    // Alice from anywhere else, and locally, is unaffected.
    challenge(&daemon, "alice", "198.51.100.8").unwrap();
    challenge(&daemon, "alice", "").unwrap();
    let status = daemon.ecpctl(&["status", "--json"]).ok();
    assert!(status.contains("\"recent_challenges\": 5"), "{status}");
}

#[test]
fn failures_from_one_source_make_only_that_source_wait_until_unlocked() {
    let daemon = TestDaemon::start(
        "host_name = \"h\"\nfailures_before_penalty = 3\npenalty_initial_secs = 600\npenalty_max_secs = 900\n",
    );
    let key = enroll(&daemon, "alice");
    let stranger = generate_signing_key();
    let attacker = "203.0.113.66";
    let answer = |rhost: &str, key: &SigningKey| {
        let token = challenge(&daemon, "alice", rhost)?;
        verify(&daemon, "alice", &token, &sign(&token, key))
    };
    for _ in 0..4 {
        assert!(matches!(
            answer(attacker, &stranger),
            Err(EcpError::AuthenticationFailed(_))
        ));
    }
    // That source now waits, even with the right key...
    assert!(matches!(answer(attacker, &key), Err(EcpError::Locked(_))));
    assert!(daemon.log().contains("event=\"penalty\""));
    // ...and no one else does: not the console, not another address.
    answer("", &key).unwrap();
    answer("198.51.100.20", &key).unwrap();
    let status = daemon.ecpctl(&["status", "--json"]).ok();
    assert!(status.contains("\"penalised_sources\": 1"), "{status}");
    daemon.ecpctl(&["unlock", "alice"]).ok();
    answer(attacker, &key).unwrap();
}

#[test]
fn after_kill_9_enrollments_survive_and_earlier_tokens_never_validate() {
    let mut daemon = TestDaemon::start(TEST_CONFIG);
    let mut keys = Vec::new();
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        keys.push((user, enroll(&daemon, user)));
    }
    let (user, key) = &keys[0];
    let token = challenge(&daemon, user, "").unwrap();
    let signature = sign(&token, key);
    daemon.kill_hard();
    daemon.restart();
    let all = daemon.ecpctl(&["list", "--json"]).ok();
    for (user, _) in &keys {
        assert!(
            all.contains(&format!("\"user\": \"{user}\"")),
            "{user} lost: {all}"
        );
    }
    assert!(matches!(
        verify(&daemon, user, &token, &signature),
        Err(EcpError::ChallengeUnknown(_))
    ));
    // And the daemon works normally after the crash.
    login(&daemon, user, key).unwrap();
}

#[test]
fn non_root_caller_may_authenticate_only_itself_and_not_administer() {
    if !running_as_root() {
        eprintln!("skipped: needs root to create a test user");
        return;
    }
    let daemon = TestDaemon::start(TEST_CONFIG);
    let user = TestUser::create(daemon.bus.dir());
    enroll(&daemon, "alice");
    let ecpctl = ecp_tests::binary_copy_in(daemon.bus.dir(), "ecpctl");
    let bus = daemon.address().to_owned();

    // The user makes a key (as themselves) and root enrolls the certificate.
    let keydir = user.home.join("keys");
    let pass = user.home.join("pass");
    user.write_owned(&pass, "user pass\n");
    user.keygen(&ecpctl, &keydir, &pass, &[]);
    let key = keydir.join("private_key.pem");
    let cert = keydir.join("certificate.pem");

    // Not yet enrolled: the non-root caller sees only "authentication failed".
    let unenrolled = user.run(
        &ecpctl,
        &[
            "--bus",
            &bus,
            "test-login",
            &user.name,
            "--key",
            key.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert_eq!(unenrolled.code, 1);

    // Enrolling is root's: the user is refused by the daemon itself.
    let refused = user.run(
        &ecpctl,
        &[
            "--bus",
            &bus,
            "enroll",
            &user.name,
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("only root may enroll"),
        "{}",
        refused.stderr
    );

    daemon
        .ecpctl(&["enroll", &user.name, "--cert", cert.to_str().unwrap()])
        .ok();
    let ok = user.run(
        &ecpctl,
        &[
            "--bus",
            &bus,
            "test-login",
            &user.name,
            "--key",
            key.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);

    // Not for someone else, and no root-only commands.
    let other_user = user.run(
        &ecpctl,
        &[
            "--bus",
            &bus,
            "test-login",
            "alice",
            "--key",
            key.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert_eq!(other_user.code, 6, "{}", other_user.stderr);
    assert!(
        other_user.stderr.contains("only for itself"),
        "{}",
        other_user.stderr
    );
    for args in [
        &["list", "alice"][..],
        &["cleanup"],
        &["unlock", "alice"],
        &["revoke", "alice", "--all"],
    ] {
        let mut all = vec!["--bus", bus.as_str()];
        all.extend_from_slice(args);
        let run = user.run(&ecpctl, &all);
        assert_eq!(run.code, 6, "{args:?}: {}", run.stderr);
    }
    // Their own list works.
    let own = user.run(&ecpctl, &["--bus", &bus, "list"]);
    assert_eq!(own.code, 0, "{}", own.stderr);
    assert!(own.stdout.contains(&user.name));

    // A bad signature looks exactly like "not enrolled" to a non-root
    // caller: same exit code, same message.
    let other_dir = user.home.join("other");
    user.keygen(&ecpctl, &other_dir, &pass, &[]);
    let bad_sig = user.run(
        &ecpctl,
        &[
            "--bus",
            &bus,
            "test-login",
            &user.name,
            "--key",
            other_dir.join("private_key.pem").to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert_eq!(bad_sig.code, 1);
    assert_eq!(
        bad_sig.stderr.lines().last(),
        unenrolled.stderr.lines().last()
    );
    assert!(
        bad_sig.stderr.contains("authentication failed"),
        "{}",
        bad_sig.stderr
    );
    assert!(
        daemon.log().contains("signature does not match"),
        "journal lacks the real reason"
    );
}

#[test]
fn root_enrolls_another_user_with_files_owned_by_that_user() {
    if !running_as_root() {
        eprintln!("skipped: needs root to create a test user");
        return;
    }
    let daemon = TestDaemon::start(TEST_CONFIG);
    let user = TestUser::create(daemon.bus.dir());
    let work = Workdir::new();
    let pass = work.write("pass", b"pw\n", 0o600);
    let out = daemon
        .ecpctl(&[
            "enroll",
            &user.name,
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--label",
            "issued",
        ])
        .ok();
    assert!(out.contains("enrolled"), "{out}");
    let dir = user.home.join(".config/ecp");
    use std::os::unix::fs::MetadataExt;
    for (name, mode) in [("private_key.pem", 0o600), ("certificate.pem", 0o644)] {
        let meta = std::fs::metadata(dir.join(name)).unwrap();
        assert_eq!(meta.uid(), user.uid, "{name}");
        assert_eq!(meta.mode() & 0o777, mode, "{name}");
    }
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), user.uid);
    let login = daemon.ecpctl(&[
        "test-login",
        &user.name,
        "--key",
        dir.join("private_key.pem").to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert_eq!(login.code, 0, "{}", login.stderr);
}

#[test]
fn ecpctl_reports_an_absent_daemon_with_exit_code_5() {
    let bus = ecp_tests::daemon::TestBus::start();
    let run = ecp_tests::run(&binary("ecpctl"), &["--bus", &bus.address, "status"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    let run = ecp_tests::run(
        &binary("ecpctl"),
        &["--bus", "unix:path=/nonexistent/socket", "status"],
    );
    assert_eq!(run.code, 5, "{}", run.stderr);
}

#[test]
fn cleanup_runs_on_request_for_root_only() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    let key = enroll(&daemon, "alice");
    login(&daemon, "alice", &key).unwrap();
    // The used nonce is live for another five minutes: nothing to forget.
    let out = daemon.ecpctl(&["cleanup"]).ok();
    assert!(out.contains("forgot 0"), "{out}");
}

#[test]
fn doctor_names_each_problem_and_exits_1() {
    let daemon = TestDaemon::start(TEST_CONFIG);
    let work = Workdir::new();
    let pam_d = work.path("pam.d");
    std::fs::create_dir(&pam_d).unwrap();
    std::fs::write(
        pam_d.join("common-auth"),
        "auth required pam_unix.so\nauth required pam_ecp.so mode=keyfile\n",
    )
    .unwrap();
    std::fs::write(pam_d.join("sudo"), "@include common-auth\n").unwrap();
    std::fs::write(
        pam_d.join("sshd"),
        "auth required pam_ecp.so mode=challenge nouserok\n",
    )
    .unwrap();
    let doctor = |key: &str| {
        daemon.ecpctl(&[
            "doctor",
            "--user",
            "alice",
            "--key",
            &work.arg(key),
            "--pam-dir",
            pam_d.to_str().unwrap(),
        ])
    };
    let run = doctor("missing.pem");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("ok    ecpd 0.1.0 is running on ecp-test-host"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("PAM service sshd: auth mode=challenge"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("PAM service sudo: auth mode=keyfile (via common-auth)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("FAIL  key file"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("FAIL  no certificate enrolled for alice"),
        "{}",
        run.stdout
    );
    // The PAM stacks: each problem named by file and line, once even
    // where two services share the file.
    let dir = pam_d.display();
    let reached = format!("FAIL  {dir}/common-auth:2: pam_ecp is reached after a failed password (pam_unix.so at {dir}/common-auth:1 (\"required\") answering auth_err)");
    assert_eq!(run.stdout.matches(&reached).count(), 1, "{}", run.stdout);
    let alone = format!("FAIL  {dir}/sshd:1: no password module before pam_ecp");
    assert!(run.stdout.contains(&alone), "{}", run.stdout);
    assert!(!run.stdout.contains("nouserok"), "{}", run.stdout);

    // Key and enrollment in order: those two lines turn ok.
    ecp_tests::keygen(&work, "alice", "k", "pw");
    daemon
        .ecpctl(&[
            "enroll",
            "alice",
            "--cert",
            &work.arg("k/certificate.pem"),
            "--label",
            "desk",
        ])
        .ok();
    let run = doctor("k/private_key.pem");
    assert!(run.stdout.contains("ok    key file"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("ok    certificate \"desk\" of alice enrolled"),
        "{}",
        run.stdout
    );
    // Someone is enrolled now: nouserok has done its job.
    let nouserok =
        format!("FAIL  {dir}/sshd:1: \"nouserok\" is still set while users are enrolled");
    assert!(run.stdout.contains(&nouserok), "{}", run.stdout);

    // Debian's common-auth as pam-auth-update writes it with ecp's
    // profile is gated: no PAM line fails, and with all else in order
    // the exit status is 0.
    std::fs::write(
        pam_d.join("common-auth"),
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n\
         auth\trequisite\t\t\tpam_deny.so\n\
         auth\trequired\t\t\tpam_permit.so\n\
         auth\trequired\t\t\tpam_ecp.so\n",
    )
    .unwrap();
    std::fs::write(
        pam_d.join("sshd"),
        "auth requisite pam_unix.so\nauth required pam_ecp.so mode=challenge\n",
    )
    .unwrap();
    let run = doctor("k/private_key.pem");
    assert!(
        !run.stdout.contains(&format!("FAIL  {dir}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("ok    PAM service sudo: auth mode=auto (via common-auth)"),
        "{}",
        run.stdout
    );

    // No daemon: said plainly.
    drop(daemon);
    let bus = ecp_tests::daemon::TestBus::start();
    let run = ecp_tests::run(
        &binary("ecpctl"),
        &[
            "--bus",
            &bus.address,
            "doctor",
            "--key",
            &work.arg("k/private_key.pem"),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("FAIL  ecpd cannot be reached: ecpd is not running"),
        "{}",
        run.stdout
    );
}

#[test]
fn ecpd_exits_with_an_error_when_its_bus_goes_away() {
    let mut daemon = TestDaemon::start(TEST_CONFIG);
    daemon.bus.kill();
    // It checks its bus every 5 seconds.
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .expect("ecpd kept running without its bus");
    assert_eq!(status.code(), Some(1), "{}", daemon.log());
    assert!(
        daemon.log().contains("lost the bus connection"),
        "{}",
        daemon.log()
    );
}
