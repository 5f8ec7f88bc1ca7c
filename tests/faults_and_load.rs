//! What ecpd survives: a storm of replays, crashes in the middle of work,
//! and a store it cannot write.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecp_core::bus::{AdminProxy, AuthProxy};
use ecp_core::certificate::build_self_signed_certificate;
use ecp_core::keyfile::generate_signing_key;
use ecp_core::{Challenge, UserName};
use ecp_tests::daemon::TestDaemon;
use ecp_tests::pam::PamServices;

fn enroll(
    address: &str,
    user: &str,
) -> Result<(p256::ecdsa::SigningKey, String), ecp_core::bus::EcpError> {
    let key = generate_signing_key();
    let pem = build_self_signed_certificate(&key, &UserName::parse(user).unwrap(), 30).unwrap();
    let fingerprint = zbus::block_on(async {
        // A call in flight when the daemon is killed must not wait for
        // ever: the crash test goes on calling through restarts.
        let conn = zbus::connection::Builder::address(address)
            .method_timeout(Duration::from_secs(10))
            .build()
            .await?;
        AdminProxy::new(&conn)
            .await?
            .enroll(user, &pem, "fault")
            .await
    })?;
    Ok((key, fingerprint))
}

#[test]
fn a_hundred_thousand_attempts_from_32_clients_succeed_exactly_once_per_token() {
    let daemon = TestDaemon::start(
        "host_name = \"h\"\nchallenges_per_user_per_minute = 0\nfailures_before_penalty = 0\n",
    );
    let (key, _) = enroll(daemon.address(), "alice").unwrap();
    const TOKENS: usize = 1000;
    const CLIENTS: usize = 32;
    const PER_CLIENT: usize = 100_000 / CLIENTS;
    let conn = daemon.connect();
    let signed: Arc<Vec<(String, String)>> = Arc::new(zbus::block_on(async {
        let auth = AuthProxy::new(&conn).await.unwrap();
        let mut out = Vec::new();
        for _ in 0..TOKENS {
            let token = auth.challenge("alice", "sshd", "").await.unwrap();
            let signature = Challenge::from_token(&token).unwrap().sign(&key);
            out.push((token, signature));
        }
        out
    }));
    let successes: Arc<Vec<AtomicU32>> = Arc::new((0..TOKENS).map(|_| AtomicU32::new(0)).collect());
    let barrier = Arc::new(std::sync::Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (signed, successes, barrier) = (signed.clone(), successes.clone(), barrier.clone());
            let address = daemon.address().to_owned();
            std::thread::spawn(move || {
                zbus::block_on(async {
                    let conn = zbus::connection::Builder::address(address.as_str())
                        .build()
                        .await
                        .unwrap();
                    let auth = AuthProxy::new(&conn).await.unwrap();
                    barrier.wait();
                    // Every client walks the tokens in the same order, so
                    // each token is tried by all 32 at about the same time.
                    for k in 0..PER_CLIENT {
                        let (token, signature) = &signed[k % TOKENS];
                        if auth.verify("alice", token, signature).await.is_ok() {
                            successes[k % TOKENS].fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let counts: Vec<u32> = successes.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert!(
        counts.iter().all(|&c| c == 1),
        "tokens with other than one success: {:?}",
        counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 1)
            .take(10)
            .collect::<Vec<_>>()
    );
}

#[test]
fn twenty_crashes_lose_no_acknowledged_enrollment_and_revive_no_token() {
    let mut daemon = TestDaemon::start(
        "host_name = \"h\"\nchallenges_per_user_per_minute = 0\nfailures_before_penalty = 0\n",
    );
    let address = daemon.address().to_owned();
    let (login_key, _) = enroll(&address, "steady").unwrap();
    let services = PamServices::new();
    let work = ecp_tests::Workdir::new();
    work.write("pass", b"pw\n", 0o600);
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let me = me.trim().to_owned();
    ecp_tests::ecpctl(&[
        "keygen",
        "--user",
        &me,
        "--out",
        &work.arg("k"),
        "--passphrase-file",
        &work.arg("pass"),
    ])
    .ok();
    daemon
        .ecpctl(&["enroll", &me, "--cert", &work.arg("k/certificate.pem")])
        .ok();
    services.add(
        "ecp-crash",
        &format!("auth required $MODULE mode=keyfile keyfile={} bus={address} daemon_user={me} timeout=3\n", work.arg("k/private_key.pem")),
    );

    // Background load: enrollments (remember the acknowledged ones) and
    // logins, both carrying on through the crashes.
    let stop = Arc::new(AtomicBool::new(false));
    let enroller = {
        let (stop, address) = (stop.clone(), address.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let user = format!("crash{n}");
                if let Ok((_, fingerprint)) = enroll(&address, &user) {
                    acknowledged.push((user, fingerprint));
                    n += 1;
                }
            }
            acknowledged
        })
    };
    let logger = {
        let (stop, address, key) = (stop.clone(), address.clone(), login_key.clone());
        std::thread::spawn(move || {
            let mut ok = 0;
            while !stop.load(Ordering::Relaxed) {
                let result = zbus::block_on(async {
                    let conn = zbus::connection::Builder::address(address.as_str())
                        .method_timeout(Duration::from_secs(10))
                        .build()
                        .await?;
                    let auth = AuthProxy::new(&conn).await?;
                    let token = auth.challenge("steady", "sshd", "").await?;
                    let signature = Challenge::from_token(&token).unwrap().sign(&key);
                    auth.verify("steady", &token, &signature).await
                });
                if result.is_ok() {
                    ok += 1;
                }
            }
            ok
        })
    };

    let mut stale = Vec::new();
    for cycle in 0..20 {
        std::thread::sleep(Duration::from_millis(150 + (cycle * 37 % 200)));
        // A signed challenge issued just before the crash.
        let conn = daemon.connect();
        let token = zbus::block_on(async {
            AuthProxy::new(&conn)
                .await
                .unwrap()
                .challenge("steady", "sshd", "")
                .await
                .unwrap()
        });
        drop(conn);
        stale.push((
            token.clone(),
            Challenge::from_token(&token).unwrap().sign(&login_key),
        ));
        daemon.kill_hard();
        if cycle % 5 == 0 {
            // While it is down the module fails closed, promptly.
            let started = Instant::now();
            let run = services.pamtester("ecp-crash", &me, &["authenticate"], "", "pw\n");
            assert_eq!(run.code, 1, "cycle {cycle}: {}", run.stderr);
            assert!(started.elapsed() < Duration::from_secs(15));
        }
        daemon.restart();
    }
    stop.store(true, Ordering::Relaxed);
    let acknowledged = enroller.join().unwrap();
    let logins = logger.join().unwrap();
    assert!(
        acknowledged.len() > 20,
        "too little load: {} enrollments",
        acknowledged.len()
    );
    assert!(logins > 0);

    // After the last restart: every acknowledged enrollment is there, no
    // pre-crash token validates, and the module works with no manual step.
    let conn = daemon.connect();
    zbus::block_on(async {
        let admin = AdminProxy::new(&conn).await.unwrap();
        let all = admin.list("").await.unwrap();
        for (user, fingerprint) in &acknowledged {
            assert!(
                all.iter()
                    .any(|e| &e.user == user && &e.fingerprint == fingerprint),
                "{user} lost after a crash"
            );
        }
        let auth = AuthProxy::new(&conn).await.unwrap();
        for (token, signature) in &stale {
            assert!(
                auth.verify("steady", token, signature).await.is_err(),
                "a pre-crash token validated"
            );
        }
    });
    let run = services.pamtester("ecp-crash", &me, &["authenticate"], "", "pw\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_store_that_cannot_be_written_stops_the_daemon_with_a_clear_error() {
    if !ecp_tests::daemon::running_as_root() {
        eprintln!("skipped: needs root for a read-only mount");
        return;
    }
    let work = ecp_tests::Workdir::new();
    let db = work.path("db");
    std::fs::create_dir(&db).unwrap();
    let bus = ecp_tests::daemon::TestBus::start();
    let script = format!(
        "mount --bind '{db}' '{db}' && mount -o remount,bind,ro '{db}' && exec '{ecpd}' --bus '{bus}' --db '{db}' --config /dev/null",
        db = db.display(),
        ecpd = ecp_tests::binary("ecpd").display(),
        bus = bus.address
    );
    let run = ecp_tests::run_in_mount_namespace("ecpd on a read-only store", &script, "");
    let stderr = &run.stderr;
    assert_eq!(run.code, 1, "{stderr}");
    assert!(stderr.contains("cannot open the store"), "{stderr}");
    assert!(stderr.to_lowercase().contains("read-only"), "{stderr}");
    // It never owned the name, so no client is answered by it.
    let run = ecp_tests::run(
        &ecp_tests::binary("ecpctl"),
        &["--bus", &bus.address, "status"],
    );
    assert_eq!(run.code, 5);
}

/// One login for `user` from `rhost` ("" for local), through the bus.
fn login_over(
    conn: &zbus::Connection,
    user: &str,
    rhost: &str,
    key: &p256::ecdsa::SigningKey,
) -> Result<(), ecp_core::bus::EcpError> {
    zbus::block_on(async {
        let auth = AuthProxy::new(conn).await.unwrap();
        let token = auth.challenge(user, "sshd", rhost).await?;
        let signature = Challenge::from_token(&token).unwrap().sign(key);
        auth.verify(user, &token, &signature).await
    })
}

#[test]
fn a_flood_from_twenty_thousand_addresses_refuses_no_legitimate_login() {
    // Defaults, but a 2-second challenge lifetime so that the flood runs
    // well past it, and room for alice's frequent logins from one source.
    let daemon = TestDaemon::start(
        "host_name = \"h\"\nchallenge_lifetime_secs = 2\nchallenges_per_user_per_minute = 100\n",
    );
    let (key, _) = enroll(daemon.address(), "alice").unwrap();
    let conn = daemon.connect();
    login_over(&conn, "alice", "", &key).unwrap();
    let store_before = ecp_tests::daemon::dir_bytes(&daemon.db);
    // Two flooders from 10,000+ addresses of one IPv6 /64, two from
    // 10,000+ distinct IPv4 addresses; made-up user names throughout.
    const PER_FLOODER: u32 = 6_000;
    let flooders: Vec<_> = (0..4u32)
        .map(|t| {
            let address = daemon.address().to_owned();
            std::thread::spawn(move || {
                zbus::block_on(async {
                    let conn = zbus::connection::Builder::address(address.as_str())
                        .build()
                        .await
                        .unwrap();
                    let auth = AuthProxy::new(&conn).await.unwrap();
                    let (mut issued, mut refused) = (0u32, 0u32);
                    for i in 0..PER_FLOODER {
                        let rhost = if t < 2 {
                            format!("2001:db8:0:1:{t}:{:x}:{:x}:1", i >> 8, i & 0xff)
                        } else {
                            format!("10.{t}.{}.{}", i >> 8, i & 0xff)
                        };
                        let user = format!("u{:08x}", (i ^ (t << 20)).wrapping_mul(2_654_435_761));
                        match auth.challenge(&user, "sshd", &rhost).await {
                            Ok(_) => issued += 1,
                            Err(ecp_core::bus::EcpError::RateLimited(_)) => refused += 1,
                            Err(other) => panic!("{other:?}"),
                        }
                    }
                    (issued, refused)
                })
            })
        })
        .collect();
    let started = Instant::now();
    let mut logins = 0;
    while !flooders.iter().all(|f| f.is_finished()) {
        for rhost in ["198.51.100.200", "2001:db8:0:2::7", ""] {
            login_over(&conn, "alice", rhost, &key).unwrap_or_else(|e| {
                panic!("legitimate login from {rhost:?} refused under flood: {e:?}")
            });
            logins += 1;
        }
        std::thread::sleep(Duration::from_millis(2000));
    }
    let elapsed = started.elapsed();
    let results: Vec<(u32, u32)> = flooders.into_iter().map(|h| h.join().unwrap()).collect();
    // The /64 is one source: all but its allowance was refused; each IPv4
    // address got its own small allowance and used it.
    let (v6_issued, v4_issued) = (results[0].0 + results[1].0, results[2].0 + results[3].0);
    assert!(v6_issued < 200, "the /64 got {v6_issued} challenges");
    assert!(v4_issued > 10_000, "{results:?}");
    assert!(
        elapsed > Duration::from_secs(2),
        "the flood ended within one challenge lifetime ({elapsed:?})"
    );
    assert!(logins >= 3, "{logins}");
    for rhost in ["198.51.100.200", "2001:db8:0:3::1", "10.2.0.1", ""] {
        login_over(&conn, "alice", rhost, &key).unwrap();
    }

    // Stated bounds: the flood wrote nothing to the store (< 1 MiB of
    // sled's own churn from the logins' last-used times), and ecpd's RSS
    // stays under 48 MiB (a debug build).
    let store = ecp_tests::daemon::dir_bytes(&daemon.db);
    assert!(
        store < store_before + (1 << 20),
        "store grew from {store_before} to {store} bytes"
    );
    let rss_kib = ecp_tests::daemon::rss_kib(daemon.pid());
    assert!(rss_kib > 0 && rss_kib < 48 * 1024, "ecpd RSS {rss_kib} KiB");
    eprintln!("flood: {results:?} (issued, refused) per flooder in {elapsed:?}, {logins} legitimate logins, store {store_before} -> {store} bytes, RSS {rss_kib} KiB");
}

#[test]
fn a_full_store_refuses_enrollment_with_a_clear_error_and_logins_go_on() {
    if !ecp_tests::daemon::running_as_root() {
        eprintln!("skipped: needs root for a small tmpfs");
        return;
    }
    let work = ecp_tests::Workdir::new();
    let db = work.path("db");
    std::fs::create_dir(&db).unwrap();
    let bus = ecp_tests::daemon::TestBus::start();
    let log = work.path("ecpd.log");
    let script = format!(
        "mount -t tmpfs -o size=2m ecp-full-test '{db}' && exec '{ecpd}' --bus '{bus}' --db '{db}' --config /dev/null 2>'{log}'",
        db = db.display(),
        ecpd = ecp_tests::binary("ecpd").display(),
        bus = bus.address,
        log = log.display()
    );
    let mut daemon = ecp_tests::mount_namespace_shell(&script)
        .spawn()
        .expect("unshare (util-linux)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ecp_tests::run(
        &ecp_tests::binary("ecpctl"),
        &["--bus", &bus.address, "status"],
    )
    .code
        != 0
    {
        assert!(Instant::now() < deadline, "ecpd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    enroll(&bus.address, "alice").unwrap();
    // Challenges write nothing any more: only enrollments fill a store.
    let mut failure = None;
    for i in 0..20_000 {
        match enroll(&bus.address, &format!("u{i}")) {
            Ok(_) => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("a 2 MiB store never filled up");
    assert!(
        matches!(&failure, ecp_core::bus::EcpError::StoreFailure(m) if m.contains("No space left")),
        "{failure:?}"
    );
    // Still alive and answering (sled may report the full disk on every
    // later call: then the answer says so, and nothing is accepted).
    let status = ecp_tests::run(
        &ecp_tests::binary("ecpctl"),
        &["--bus", &bus.address, "status"],
    );
    assert!(
        status.code == 0 || (status.code == 6 && status.stderr.contains("No space left")),
        "{}",
        status.stderr
    );
    assert!(daemon.try_wait().unwrap().is_none(), "ecpd exited");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("event=\"store\""));
    let _ = daemon.kill();
    let _ = daemon.wait();
}
