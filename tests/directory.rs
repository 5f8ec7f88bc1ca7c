//! The private directory the LDAP tests run against (issue 12, first
//! step): a throwaway slapd holding users' certificates as SSSD and
//! pam_pkcs11 read them, `userCertificate;binary`.

use ecp_core::certificate::parse_certificate_pem;
use ecp_tests::directory::TestDirectory;
use ecp_tests::{keygen, Workdir};

#[test]
fn a_private_slapd_holds_and_gives_back_users_certificates() {
    let directory = TestDirectory::start();
    assert!(directory.uri.starts_with("ldapi://"));
    let work = Workdir::new();
    let der = |dir: &str| {
        parse_certificate_pem(&work.read(&format!("{dir}/certificate.pem")))
            .unwrap()
            .der()
            .to_vec()
    };
    keygen(&work, "alice", "laptop", "pw");
    keygen(&work, "alice", "desk", "pw");
    let (laptop, desk) = (der("laptop"), der("desk"));
    directory.add_user("alice", &[laptop.clone(), desk.clone()]);
    directory.add_user("bob", &[]);

    let mut held = directory.certificates_of("alice");
    held.sort();
    let mut expected = vec![laptop.clone(), desk.clone()];
    expected.sort();
    assert_eq!(held, expected);
    assert!(directory.certificates_of("bob").is_empty());

    // A revocation in the directory: one value deleted.
    directory.remove_certificate("alice", &laptop);
    assert_eq!(directory.certificates_of("alice"), vec![desk]);
}

/// alice's key pair (passphrase "pw") in `work`/k: (directory, certificate DER).
fn alice_key(work: &Workdir) -> (std::path::PathBuf, Vec<u8>) {
    let dir = keygen(work, "alice", "k", "pw");
    let der = parse_certificate_pem(&work.read("k/certificate.pem"))
        .unwrap()
        .der()
        .to_vec();
    (dir, der)
}

/// `ecpctl test-login alice` against `daemon` with the key in `dir`.
fn alice_test_login(
    daemon: &ecp_tests::daemon::TestDaemon,
    work: &Workdir,
    dir: &std::path::Path,
) -> ecp_tests::Run {
    daemon.ecpctl(&[
        "test-login",
        "alice",
        "--key",
        dir.join("private_key.pem").to_str().unwrap(),
        "--passphrase-file",
        work.path("k.pass").to_str().unwrap(),
    ])
}

/// A daemon reading users' certificates from `directory`.
fn daemon_with(directory: &TestDirectory, extra: &str) -> ecp_tests::daemon::TestDaemon {
    daemon_at(&directory.uri, extra)
}

/// A daemon reading users' certificates from the directory at `uri`.
fn daemon_at(uri: &str, extra: &str) -> ecp_tests::daemon::TestDaemon {
    daemon_at_servers(&[uri], 500, extra)
}

/// A daemon asking the directory servers `uris` in order, `timeout_ms`
/// each.
fn daemon_at_servers(uris: &[&str], timeout_ms: u32, extra: &str) -> ecp_tests::daemon::TestDaemon {
    let uris: Vec<String> = uris.iter().map(|uri| format!("\"{uri}\"")).collect();
    ecp_tests::daemon::TestDaemon::start(&format!(
        "host_name = \"dir-host\"\nchallenges_per_user_per_minute = 0\n\n[directory]\n\
         uri = [{}]\nbase_dn = \"{}\"\ntimeout_ms = {timeout_ms}\n{extra}",
        uris.join(", "),
        ecp_tests::directory::BASE_DN
    ))
}

#[test]
fn tls_to_the_directory_verifies_the_server_and_refuses_one_that_does_not() {
    let directory = TestDirectory::start_tls();
    let (plain, tls) = directory.tls_ports.unwrap();
    let work = Workdir::new();
    let (dir, der) = alice_key(&work);
    directory.add_user("alice", &[der]);
    let ca = directory.tls_file("ca.pem");
    let other_ca = directory.tls_file("other-ca.pem");
    let with_ca = |ca: &std::path::Path| format!("tls_ca_file = \"{}\"\n", ca.display());

    // ldaps://, and ldap:// with StartTLS (the default for ldap://), to a
    // server whose certificate the test CA issued for its name.
    for uri in [
        format!("ldaps://localhost:{tls}"),
        format!("ldap://localhost:{plain}"),
    ] {
        let daemon = daemon_at(&uri, &with_ca(&ca));
        let run = alice_test_login(&daemon, &work, &dir);
        assert_eq!(run.code, 0, "{uri}: {}\n{}", run.stderr, daemon.log());
    }

    // A server certificate from a CA not in tls_ca_file, or not for the
    // name in the URI: no connection, so no answer, and the login fails
    // closed with the reason in the log.
    for (uri, ca) in [
        (format!("ldaps://localhost:{tls}"), &other_ca),
        (format!("ldap://localhost:{plain}"), &other_ca),
        (format!("ldaps://127.0.0.1:{tls}"), &ca),
    ] {
        let daemon = daemon_at(&uri, &with_ca(ca));
        let run = alice_test_login(&daemon, &work, &dir);
        assert_ne!(run.code, 0, "{uri} with {}", ca.display());
        assert!(
            daemon.log().contains("TLS certificate was refused"),
            "{uri}: {}",
            daemon.log()
        );
    }

    // Plain ldap:// only when tls = "none" says so; without it ecpd asks
    // for StartTLS, and a tls_ca_file ecpd cannot read stops it at start.
    let daemon = daemon_at(&format!("ldap://127.0.0.1:{plain}"), "tls = \"none\"\n");
    assert_eq!(alice_test_login(&daemon, &work, &dir).code, 0);
    let config = work.write(
        "bad-ca.toml",
        format!(
            "[directory]\nuri = [\"ldaps://localhost:{tls}\"]\nbase_dn = \"dc=example,dc=org\"\n\
             tls_ca_file = \"{}\"\n",
            work.path("k/private_key.pem").display()
        )
        .as_bytes(),
        0o644,
    );
    let check = ecp_tests::run_with_input(
        &ecp_tests::binary("ecpd"),
        &["--check-config", "--config", config.to_str().unwrap()],
        None,
    );
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check.stderr.contains("no PEM certificate"),
        "{}",
        check.stderr
    );
}

#[test]
fn a_directory_certificate_logs_in_unenrolled_until_the_directory_removes_it() {
    let directory = TestDirectory::start();
    let work = Workdir::new();
    let (dir, der) = alice_key(&work);
    directory.add_user("alice", std::slice::from_ref(&der));
    let daemon = daemon_with(&directory, "cache_ttl_secs = 3600\n");
    let test_login = || alice_test_login(&daemon, &work, &dir);
    let run = test_login();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(daemon
        .ecpctl(&["list", "alice", "--json"])
        .ok()
        .contains("[]"));
    assert!(
        daemon
            .log()
            .contains("signed with a certificate from the directory"),
        "{}",
        daemon.log()
    );

    // Removed in the directory: the cached answer still holds for the TTL;
    // `ecpctl cache flush` makes the next login ask, and it is refused.
    directory.remove_certificate("alice", &der);
    assert_eq!(test_login().code, 0);
    let flushed = daemon.ecpctl(&["cache", "flush", "alice"]).ok();
    assert!(flushed.contains("dropped 1"), "{flushed}");
    let run = test_login();
    assert_eq!(run.code, 1, "{}", run.stderr);

    // With a short TTL, the removal arrives by itself: the next lookup
    // after cache_ttl_secs gets the empty answer (polled, not slept).
    directory.modify(&ecpctl_ldif_add(&work), false);
    let daemon = daemon_with(&directory, "cache_ttl_secs = 1\n");
    let test_login = || alice_test_login(&daemon, &work, &dir);
    assert_eq!(test_login().code, 0);
    directory.remove_certificate("alice", &der);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while test_login().code == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the removal never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The LDIF (from `ecpctl cert ldif`) that adds alice's certificate in
/// `work`/k to her entry.
fn ecpctl_ldif_add(work: &Workdir) -> String {
    ecp_tests::ecpctl(&[
        "cert",
        "ldif",
        "--user",
        "alice",
        "--dn",
        &TestDirectory::user_dn("alice"),
        work.path("k/certificate.pem").to_str().unwrap(),
    ])
    .ok()
}

#[test]
fn a_frozen_or_stopped_directory_is_answered_from_the_cache_within_the_timeout() {
    let directory = TestDirectory::start();
    let work = Workdir::new();
    let (dir, der) = alice_key(&work);
    directory.add_user("alice", &[der]);
    // Every login asks the directory (TTL 0).
    let daemon = daemon_with(&directory, "cache_ttl_secs = 0\nmax_offline_secs = 3600\n");
    let test_login = || alice_test_login(&daemon, &work, &dir);
    assert_eq!(test_login().code, 0);

    // Hung (SIGSTOP): the lookup gives up after timeout_ms and the cached
    // answer is used; the login does not wait for the bus's own timeout.
    directory.freeze();
    let started = std::time::Instant::now();
    let run = test_login();
    let took = started.elapsed();
    directory.thaw();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(
        daemon.log().contains("using the cached answer"),
        "{}",
        daemon.log()
    );

    // ecpctl status and doctor (as root) try the server and show the cache.
    let status = daemon.ecpctl(&["status"]).ok();
    assert!(status.contains("reachable:            yes"), "{status}");
    assert!(
        status.contains("cached users:         1, oldest fetched"),
        "{status}"
    );
    assert!(status.contains("last failed lookup:"), "{status}");

    // A user the directory never answered for, with the directory down:
    // Unavailable, never "not enrolled".
    drop(directory);
    let run = test_login();
    assert_eq!(run.code, 0, "stopped slapd, cached answer: {}", run.stderr);
    let status = daemon.ecpctl(&["status"]).ok();
    assert!(status.contains("reachable:            NO: "), "{status}");
    let doctor = daemon.ecpctl(&["doctor"]);
    assert_eq!(doctor.code, 1);
    assert!(
        doctor
            .stdout
            .contains("FAIL  directory unreachable: no directory server answered: ldapi://")
            && doctor.stdout.contains("1 cached users keep logging in"),
        "{}",
        doctor.stdout
    );
    let conn = daemon.connect();
    let refused = zbus::block_on(async {
        let auth = ecp_core::bus::AuthProxy::new(&conn).await.unwrap();
        let token = auth.challenge("bob", "sshd", "").await.unwrap();
        auth.verify("bob", &token, "MEUCIQgarbage")
            .await
            .unwrap_err()
    });
    assert!(
        matches!(refused, ecp_core::bus::EcpError::DirectoryUnavailable(_)),
        "{refused:?}"
    );
}

#[test]
fn ecpctl_cert_ldif_adds_a_certificate_that_ecpd_then_accepts() {
    let directory = TestDirectory::start();
    let work = Workdir::new();
    let (dir, der) = alice_key(&work);
    directory.add_user("alice", &[]);
    let dn = TestDirectory::user_dn("alice");
    let cert = work.path("k/certificate.pem");
    let ldif = ecpctl_ldif_add(&work);
    assert!(
        ldif.starts_with(&format!("dn: {dn}\nchangetype: modify\n")),
        "{ldif}"
    );
    directory.modify(&ldif, false);
    assert_eq!(directory.certificates_of("alice"), vec![der]);
    let daemon = daemon_with(&directory, "cache_ttl_secs = 60\n");
    let run = alice_test_login(&daemon, &work, &dir);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Not alice's certificate, or not a DN: refused, nothing printed.
    let wrong = ecp_tests::ecpctl(&[
        "cert",
        "ldif",
        "--user",
        "bob",
        "--dn",
        &dn,
        cert.to_str().unwrap(),
    ]);
    assert_eq!(wrong.code, 1);
    assert!(wrong.stdout.is_empty());
    let bad_dn = ecp_tests::ecpctl(&[
        "cert",
        "ldif",
        "--user",
        "alice",
        "--dn",
        "uid=alice\nchangetype: delete",
        cert.to_str().unwrap(),
    ]);
    assert_eq!(bad_dn.code, 2);
}

/// Verify with a fresh token for `user` and a signature that cannot be
/// right: the daemon's answer.
fn garbage_verify(
    daemon: &ecp_tests::daemon::TestDaemon,
    user: &str,
) -> Result<(), ecp_core::bus::EcpError> {
    let conn = daemon.connect();
    zbus::block_on(async {
        let auth = ecp_core::bus::AuthProxy::new(&conn).await.unwrap();
        let token = auth.challenge(user, "sshd", "").await?;
        auth.verify(user, &token, "MEUCIQgarbage").await
    })
}

#[test]
fn hostile_directory_entries_and_odd_names_are_refused_without_harm() {
    use ecp_core::bus::EcpError;
    let directory = TestDirectory::start();
    let work = Workdir::new();
    let (dir, der) = alice_key(&work);
    directory.add_user_with("alice", "userPKCS12", &[der]);
    // Hundreds of values; one oversized value beside garbage DER (a
    // SEQUENCE claiming 4 GiB, and random bytes).
    let many: Vec<Vec<u8>> = (0..300u32)
        .map(|i| [b"not a certificate ".as_slice(), &i.to_be_bytes()].concat())
        .collect();
    // slapd checks userCertificate's syntax; the hostile values go in an
    // attribute of binary syntax (as directories that check nothing hold
    // them), which the daemon is told to read.
    directory.add_user_with("mallory", "userPKCS12", &many);
    directory.add_user_with(
        "oscar",
        "userPKCS12",
        &[
            vec![0x30; 100 << 10],
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01],
            b"\x01\x02garbage".to_vec(),
        ],
    );
    // An entry far larger than any ecpd would use: 100 values of 100 KiB.
    let heavy: Vec<Vec<u8>> = (0..100u8)
        .map(|i| {
            let mut value = vec![0x30; 100 << 10];
            value[1] = i;
            value
        })
        .collect();
    directory.add_user_with("trudy", "userPKCS12", &heavy);
    let daemon = daemon_with(
        &directory,
        "cache_ttl_secs = 0\nmax_offline_secs = 3600\ncertificate_attribute = \"userPKCS12\"\n",
    );

    // Too many values: the whole answer is refused (and nothing cached);
    // oversized and malformed values give no key. Neither logs anyone in.
    assert!(matches!(
        garbage_verify(&daemon, "mallory"),
        Err(EcpError::DirectoryUnavailable(_))
    ));
    assert!(daemon
        .log()
        .contains("300 certificate values; at most 16 are read"));
    // The 10 MB entry is cut off while it is read: refused, and ecpd's
    // peak memory barely moves (it used to hold the whole answer).
    let peak_before = peak_memory_kib(daemon.pid());
    let trudy = garbage_verify(&daemon, "trudy");
    let grown = peak_memory_kib(daemon.pid()) - peak_before;
    assert!(grown < 8 * 1024, "ecpd's peak memory grew by {grown} KiB");
    assert!(
        matches!(&trudy, Err(EcpError::DirectoryUnavailable(m)) if m.contains("larger than 512 KiB")),
        "{trudy:?}"
    );
    let oscar = garbage_verify(&daemon, "oscar");
    assert!(
        // Never "not enrolled": nouserok would wave oscar through.
        matches!(oscar, Err(EcpError::AuthenticationFailed(_))),
        "{oscar:?}\n{}",
        daemon.log()
    );

    // User names that would be LDAP filter syntax never reach the
    // directory: they are not user names.
    for name in ["*", "alice)(uid=*", "al*ce", "alice\\2a", "(|(uid=*))"] {
        assert!(
            matches!(
                garbage_verify(&daemon, name),
                Err(EcpError::InvalidArgument(_))
            ),
            "{name}"
        );
    }

    // The daemon is unharmed: alice logs in. mallory's refused answer is
    // not kept, and of oscar's only the small values (still counted, so
    // that nouserok never takes a broken entry for "no certificate").
    let run = alice_test_login(&daemon, &work, &dir);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let status = daemon.ecpctl(&["status"]).ok();
    assert!(status.contains("cached users:         2,"), "{status}");
    let store_bytes: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("store size:"))
        .and_then(|v| v.trim().strip_suffix(" bytes"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(store_bytes < 64 * 1024, "{status}");
}

/// The peak resident memory of process `pid` (VmHWM), in KiB.
fn peak_memory_kib(pid: u32) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix(" kB"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_search_result_is_a_verdict_and_one_deadline_covers_every_server() {
    let directory = TestDirectory::start();
    let work = Workdir::new();
    let (dir, der) = alice_key(&work);
    directory.add_user("alice", &[der]);
    let daemon = daemon_with(&directory, "cache_ttl_secs = 0\nmax_offline_secs = 3600\n");
    let test_login = || alice_test_login(&daemon, &work, &dir);
    assert_eq!(test_login().code, 0);

    // Two more entries match alice's filter: slapd answers the search
    // with sizeLimitExceeded. That is the server's verdict on the entry,
    // not an outage: the cached answer must not log her in.
    let mut ldif = String::new();
    for (n, uid) in [(1, 90001), (2, 90002)] {
        ldif.push_str(&format!(
            "dn: cn=alice-{n},ou=people,{}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             uid: alice\ncn: alice-{n}\nsn: alice\nuidNumber: {uid}\ngidNumber: {uid}\n\
             homeDirectory: /home/alice-{n}\n\n",
            ecp_tests::directory::BASE_DN
        ));
    }
    directory.modify(&ldif, true);
    let run = test_login();
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("could not decide"), "{}", run.stderr);
    assert!(
        daemon.log().contains("Size limit exceeded") || daemon.log().contains("rc=4"),
        "{}",
        daemon.log()
    );

    // Five servers, all frozen: one deadline for the whole lookup, so a
    // cached user's login is answered well within the module's 10 s; the
    // next login goes to the cache without asking at all.
    let fresh = TestDirectory::start();
    let work = Workdir::new();
    let (dir, der) = alice_key(&work);
    fresh.add_user("alice", &[der]);
    let daemon = daemon_at_servers(
        &[fresh.uri.as_str(); 5],
        2000,
        "cache_ttl_secs = 0\nmax_offline_secs = 3600\n",
    );
    let test_login = || alice_test_login(&daemon, &work, &dir);
    assert_eq!(test_login().code, 0);
    fresh.freeze();
    let started = std::time::Instant::now();
    let first = test_login();
    let took = started.elapsed();
    let second = test_login();
    fresh.thaw();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(took < std::time::Duration::from_secs(9), "{took:?}");
    let log = daemon.log();
    assert!(log.contains("one deadline for the whole lookup"), "{log}");
    assert_eq!(
        log.matches("using the cached answer").count(),
        1,
        "the second login asked the frozen directory again: {log}"
    );
}
