//! ecp-bench: ecp's figures beside the limits that bound them, measured in
//! one run on one machine, with the ratios between them.
//!
//!   cargo run --release -p ecp_bench [-- --out FILE.json] [--quick]
//!
//! Limits: P-256 verification per second on one core by the backend ecpd
//! uses (ring, through ecp_core::verify) beside `openssl speed ecdsap256`
//! and the p256 crate, interleaved; a client's signature; a bare D-Bus
//! round trip (org.freedesktop.DBus.Peer.Ping to ecpd's connection) on the
//! same private bus. ecp: Challenge+Verify pairs per second and their
//! latency at 1, 4 and 16 clients beside the verify-and-sign-bound
//! ceiling (one core doing a pair's verification and signature), with
//! ecpd's CPU time per pair, and the 1-client pair beside its floor; pair
//! latency during a flood from 10^4 sources; how fast ecpd issues and
//! refuses challenges; key file decryption; a whole PAM login against
//! pam_permit; ecpd's memory and store size over 10^6 challenges; login
//! latency with certificates from a directory of 10^4 users (cache hit,
//! miss, directory frozen). Targets
//! are checked and printed as PASS or MISS.

#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ecp_core::bus::{AdminProxy, AuthProxy, EcpError};
use ecp_core::certificate::build_self_signed_certificate;
use ecp_core::keyfile::{
    decrypt_key_pem, encrypt_key_to_pem, generate_signing_key, KdfParams, Passphrase,
};
use ecp_core::{Challenge, UserName};
use ecp_tests::daemon::{dir_bytes, rss_kib, TestDaemon};
use ecp_tests::pam::PamServices;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Value};

mod directory;

struct Stats {
    count: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Stats {
    fn from(mut latencies: Vec<Duration>, wall: Duration) -> Self {
        latencies.sort();
        let at = |q: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies[i].as_secs_f64() * 1e3
        };
        Self {
            count: latencies.len(),
            per_sec: latencies.len() as f64 / wall.as_secs_f64(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }

    fn json(&self) -> Value {
        json!({"count": self.count, "per_sec": round(self.per_sec), "p50_ms": round(self.p50_ms),
               "p99_ms": round(self.p99_ms), "max_ms": round(self.max_ms)})
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn connect(address: &str) -> zbus::Connection {
    zbus::block_on(async {
        zbus::connection::Builder::address(address)
            .build()
            .await
            .unwrap()
    })
}

/// Runs `clients` threads for `duration`, each calling `op` in a loop on its
/// own connection; returns the latency of every call.
fn run_clients<F>(address: &str, clients: usize, duration: Duration, op: F) -> Stats
where
    F: Fn(usize, &Client) -> bool + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (op, barrier, address) = (op.clone(), barrier.clone(), address.to_owned());
            std::thread::spawn(move || {
                let conn = connect(&address);
                let client = Client::new(&conn);
                barrier.wait();
                let end = Instant::now() + duration;
                let mut latencies = Vec::new();
                while Instant::now() < end {
                    let start = Instant::now();
                    assert!(op(i, &client), "a benchmarked call failed");
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    Stats::from(latencies, start.elapsed())
}

/// A client's proxies, made once per connection so that the loop measures
/// calls, not proxy set-up.
struct Client {
    peer: zbus::fdo::PeerProxy<'static>,
    auth: AuthProxy<'static>,
}

impl Client {
    fn new(conn: &zbus::Connection) -> Self {
        zbus::block_on(async {
            let peer = zbus::fdo::PeerProxy::builder(conn)
                .destination(ecp_core::bus::BUS_NAME)
                .path(ecp_core::bus::OBJECT_PATH)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
                .unwrap();
            let auth = AuthProxy::builder(conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
                .unwrap();
            Self { peer, auth }
        })
    }

    fn ping(&self) -> bool {
        zbus::block_on(self.peer.ping()).is_ok()
    }

    /// One login round: Challenge, sign (client side), Verify.
    fn pair(&self, user: &str, key: &SigningKey, rhost: &str) -> Result<(), EcpError> {
        zbus::block_on(async {
            let token = self.auth.challenge(user, "sshd", rhost).await?;
            let signature = Challenge::from_token(&token).unwrap().sign(key);
            self.auth.verify(user, &token, &signature).await
        })
    }

    /// As `pair`, presenting a CA-issued certificate with the signature.
    fn pair_presented(
        &self,
        user: &str,
        key: &SigningKey,
        certificate: &[u8],
    ) -> Result<(), EcpError> {
        zbus::block_on(async {
            let token = self.auth.challenge(user, "sshd", "").await?;
            let signature = Challenge::from_token(&token).unwrap().sign(key);
            self.auth
                .verify_presented(user, &token, &signature, certificate)
                .await
        })
    }
}

/// An organisation CA (OpenSSL, P-256) in `dir` and a user `name` it
/// certified: (ca.pem path, crl.pem path, the user's key, certificate DER).
fn organisation_ca(
    dir: &Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, SigningKey, Vec<u8>) {
    use p256::pkcs8::DecodePrivateKey as _;
    let ca = ecp_tests::ca::TestCa::root(dir, "Bench CA", ecp_tests::ca::CaKeyKind::P256);
    let crl = dir.join("bench-crl.pem");
    std::fs::write(&crl, ca.crl(24)).unwrap();
    let request = ecp_tests::ca::openssl_user_request(dir, name);
    let cert = dir.join(format!("{name}.pem"));
    ca.sign_user(&request, &cert, 30);
    let key_pem = std::fs::read_to_string(dir.join(format!("{name}.key"))).unwrap();
    let key = SigningKey::from_pkcs8_pem(&key_pem).unwrap();
    let (_, der) = pkcs8::der::pem::decode_vec(&std::fs::read(&cert).unwrap()).unwrap();
    (ca.path("ca.pem"), crl, key, der)
}

fn enroll_users(daemon: &TestDaemon, count: usize) -> Arc<Vec<(String, SigningKey)>> {
    let conn = daemon.connect();
    let users: Vec<(String, SigningKey)> = (0..count)
        .map(|i| {
            let name = format!("bench{i}");
            let key = generate_signing_key();
            let pem =
                build_self_signed_certificate(&key, &UserName::parse(&name).unwrap(), 30).unwrap();
            zbus::block_on(async {
                AdminProxy::new(&conn)
                    .await
                    .unwrap()
                    .enroll(&name, &pem, "bench")
                    .await
                    .unwrap();
            });
            (name, key)
        })
        .collect();
    Arc::new(users)
}

/// What ecpd verifies per login: the signed bytes of a challenge are about
/// this long (the domain prefix, the payload with user, host, service).
const SIGNED_MESSAGE: &[u8] = b"ecp-login-challenge-v2\0 a payload of a realistic length: version, nonce id, tag, expiry, uid, user, host, service";

/// Verifications per second on one core with `verify`.
fn verify_rate(duration: Duration, verify: fn(&VerifyingKey, &[u8], &Signature) -> bool) -> f64 {
    let key = generate_signing_key();
    let signature: Signature = key.sign(SIGNED_MESSAGE);
    let public = *key.verifying_key();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        assert!(verify(&public, SIGNED_MESSAGE, &signature));
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The backend ecpd uses.
fn ecp_verify(key: &VerifyingKey, message: &[u8], signature: &Signature) -> bool {
    ecp_core::verify::p256_sha256(key, message, signature).is_ok()
}

/// The p256 crate's own verifier, which ecpd used before.
fn p256_crate_verify(key: &VerifyingKey, message: &[u8], signature: &Signature) -> bool {
    key.verify(message, signature).is_ok()
}

/// `openssl speed -elapsed -seconds S ecdsap256`: its verify/s column
/// (one process, one core, wall-clock time as the other figures).
fn openssl_verify_rate(seconds: u64) -> f64 {
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-elapsed",
            "-seconds",
            &seconds.to_string(),
            "ecdsap256",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("openssl speed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("ecdsa (nistp256)"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no P-256 verify figure in openssl speed's output: {text}"))
}

/// CPU time (user + system, all threads) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The fields after the command name, which may itself hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no field {} in /proc/{pid}/stat: {stat}", i + 3))
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// USER_HZ, asked of getconf once.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn p256_sign_rate(duration: Duration) -> f64 {
    let key = generate_signing_key();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        let _: Signature = key.sign(SIGNED_MESSAGE);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The source of the `i`-th flood request: IPv4 /32s and IPv6 /64s, each
/// a source of its own to ecpd.
fn flood_source(i: u64) -> String {
    if i.is_multiple_of(2) {
        format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
    } else {
        format!("2001:db8:{:x}:{:x}::1", (i >> 16) & 0xffff, i & 0xffff)
    }
}

/// Sends challenges from `threads` connections, request `i` of `requests`
/// from `source(i)` for user `victim<i % users>`, until `stop` is set or
/// the range is done; returns (sent, issued).
fn flood(
    address: &str,
    threads: u64,
    requests: std::ops::Range<u64>,
    users: u64,
    source: fn(u64) -> String,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(u64, u64)>> {
    (0..threads)
        .map(|t| {
            let (stop, address) = (stop.clone(), address.to_owned());
            std::thread::spawn(move || {
                let conn = connect(&address);
                zbus::block_on(async {
                    let auth = AuthProxy::new(&conn).await.unwrap();
                    let (mut sent, mut issued) = (0u64, 0u64);
                    let mut i = requests.start + t;
                    while i < requests.end && !stop.load(Ordering::Relaxed) {
                        let user = format!("victim{}", i % users);
                        match auth.challenge(&user, "sshd", &source(i)).await {
                            Ok(_) => issued += 1,
                            Err(EcpError::RateLimited(_)) => {}
                            Err(e) => panic!("flood request refused unexpectedly: {e:?}"),
                        }
                        sent += 1;
                        i += threads;
                    }
                    (sent, issued)
                })
            })
        })
        .collect()
}

fn join_flood(handles: Vec<std::thread::JoinHandle<(u64, u64)>>) -> (u64, u64) {
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
}

/// Runs the PAM driver: `count` logins in one process; returns seconds.
fn pam_logins(
    services: &PamServices,
    service: &str,
    user: &str,
    answer: &str,
    count: usize,
) -> f64 {
    pam_logins_with_agent(services, service, user, answer, count, None)
}

/// As `pam_logins`, with SSH_AUTH_SOCK set to `agent` (mode=agent).
fn pam_logins_with_agent(
    services: &PamServices,
    service: &str,
    user: &str,
    answer: &str,
    count: usize,
    agent: Option<&Path>,
) -> f64 {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/pam_driver.py");
    let mut command = std::process::Command::new("/usr/bin/python3");
    if let Some(agent) = agent {
        command.env("SSH_AUTH_SOCK", agent);
    }
    let out = command
        .arg(driver)
        .args([service, user, answer, &count.to_string()])
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", services.dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| {
                panic!(
                    "pam driver said: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_owned()
    };
    assert_eq!(
        field("successes"),
        count.to_string(),
        "logins failed: {stdout}"
    );
    field("seconds").parse().unwrap()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_owned))
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({"cpu": cpu, "cores": cores, "kernel": kernel.trim()})
}

/// The store's size once sled has written what it had pending (it
/// flushes in the background every half second): the same reading twice,
/// a second apart, or the last one after ten seconds.
fn settled_dir_bytes(path: &Path) -> u64 {
    let mut last = dir_bytes(path);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        let now = dir_bytes(path);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn check(results: &mut Vec<Value>, name: &str, ok: bool, detail: String) {
    println!("  {:<4} {name}: {detail}", if ok { "PASS" } else { "MISS" });
    results.push(json!({"target": name, "pass": ok, "detail": detail}));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out_path = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "target/bench/results.json".into());
    let span = Duration::from_millis(if quick { 700 } else { 3000 });
    let mut report = serde_json::Map::new();
    report.insert("machine".into(), machine());
    report.insert("command".into(), json!("cargo run --release -p ecp_bench"));

    println!(
        "ecp-bench on {} core(s): {}",
        report["machine"]["cores"], report["machine"]["cpu"]
    );
    println!();

    // 1. Limits. The verifiers take turns, so that a slow moment of a
    //    shared machine does not fall on one of them only.
    let rounds = if quick { 1 } else { 3 };
    let (mut ours, mut openssl, mut crate_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(verify_rate(Duration::from_secs(1), ecp_verify));
        openssl.push(openssl_verify_rate(1));
        crate_rates.push(verify_rate(Duration::from_secs(1), p256_crate_verify));
    }
    let verify_rate = median(ours);
    let openssl_rate = median(openssl);
    let crate_rate = median(crate_rates);
    let openssl_ratio = openssl_rate / verify_rate;
    let sign_rate = p256_sign_rate(span);
    // The rate at which one core could do a pair's cryptography (ecpd's
    // check and the client's signature, one after the other). Not the
    // machine's bound: on 2 cores ecpd verifies on its one thread while
    // clients sign on the other, and what else a pair costs is D-Bus
    // (ecpd's CPU per pair is printed beside it).
    let ceiling = 1.0 / (1.0 / verify_rate + 1.0 / sign_rate);
    println!("P-256 verify, 1 core (median of {rounds} interleaved 1 s rounds):");
    println!("  ecp (ring, what ecpd uses)            {verify_rate:>10.0} /s");
    println!("  openssl speed ecdsap256               {openssl_rate:>10.0} /s  (OpenSSL / ecp = {openssl_ratio:.2})");
    println!(
        "  p256 crate (before issue 21)          {crate_rate:>10.0} /s  (ecp / p256 = {:.2})",
        verify_rate / crate_rate
    );
    println!("P-256 sign (p256, the client's)         {sign_rate:>10.0} /s");
    println!("verify-and-sign-bound ceiling (1 core)  {ceiling:>10.0} pairs/s");
    report.insert("verify_per_sec".into(), json!(round(verify_rate)));
    report.insert("openssl_verify_per_sec".into(), json!(round(openssl_rate)));
    report.insert(
        "openssl_to_ecp_verify_ratio".into(),
        json!(round(openssl_ratio)),
    );
    report.insert("p256_crate_verify_per_sec".into(), json!(round(crate_rate)));
    report.insert("sign_per_sec".into(), json!(round(sign_rate)));
    report.insert(
        "verify_and_sign_ceiling_pairs_per_sec".into(),
        json!(round(ceiling)),
    );

    let ca_dir = tempfile::tempdir().unwrap();
    let (ca_file, crl_file, ca_user_key, ca_user_cert) = organisation_ca(ca_dir.path(), "causer");
    let daemon = TestDaemon::start(&format!(
        "host_name = \"bench\"\nchallenges_per_user_per_minute = 0\nchallenges_per_source_per_minute = 0\n\
         failures_before_penalty = 0\nca_file = \"{}\"\ncrl_file = \"{}\"\n",
        ca_file.display(),
        crl_file.display()
    ));
    let address = daemon.address().to_owned();
    let users = enroll_users(&daemon, 16);
    let rss_idle = rss_kib(daemon.pid());

    let mut pings = serde_json::Map::new();
    let mut pairs = serde_json::Map::new();
    let mut targets = Vec::new();
    println!();
    println!(
        "{:<8} {:>12} {:>12} {:>9} {:>9} {:>9} {:>14} {:>13} {:>11}",
        "clients",
        "ping/s",
        "pairs/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "pairs/(ping/2)",
        "pairs/ceiling",
        "ecpd CPU µs"
    );
    let mut ceiling_ratio_at_16 = 0.0;
    let mut tail_at_16 = (0.0, 0.0);
    let mut one_client = (0.0, 0.0);
    let mut ratio_checks = Vec::new();
    for clients in [1usize, 4, 16] {
        let ping_stats = run_clients(&address, clients, span, |_, client| client.ping());
        let users = users.clone();
        let cpu_before = cpu_seconds(daemon.pid());
        let pair_stats = run_clients(&address, clients, span, move |i, client| {
            let (user, key) = &users[i];
            client.pair(user, key, "").is_ok()
        });
        let ecpd_cpu_us = (cpu_seconds(daemon.pid()) - cpu_before) * 1e6 / pair_stats.count as f64;
        let round_trip_ratio = pair_stats.per_sec / (ping_stats.per_sec / 2.0);
        let ceiling_ratio = pair_stats.per_sec / ceiling;
        println!(
            "{clients:<8} {:>12.0} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>14.2} {:>13.2} {:>11.0}",
            ping_stats.per_sec,
            pair_stats.per_sec,
            pair_stats.p50_ms,
            pair_stats.p99_ms,
            pair_stats.max_ms,
            round_trip_ratio,
            ceiling_ratio,
            ecpd_cpu_us
        );
        pings.insert(clients.to_string(), ping_stats.json());
        let mut pj = pair_stats.json();
        pj["ratio_to_round_trip_pairs"] = json!(round(round_trip_ratio));
        pj["ratio_to_verify_and_sign_ceiling"] = json!(round(ceiling_ratio));
        pj["ecpd_cpu_us_per_pair"] = json!(round(ecpd_cpu_us));
        pairs.insert(clients.to_string(), pj);
        if clients == 16 {
            ceiling_ratio_at_16 = ceiling_ratio;
            // Little's law: 16 pairs always outstanding wait 16 / rate on
            // average, whatever ecpd does; the tail beyond that is ecpd's.
            tail_at_16 = (pair_stats.p99_ms, 16e3 / pair_stats.per_sec);
        }
        if clients == 1 {
            one_client = (ping_stats.p50_ms, pair_stats.p50_ms);
        }
        ratio_checks.push((clients, round_trip_ratio));
    }
    report.insert("ping".into(), Value::Object(pings));
    println!(
        "(ecpd CPU µs: its user+system time per pair, all threads; one verification of it is {:.0} µs)",
        1e6 / verify_rate
    );

    // 2a. The 1-client pair beside what it cannot go below: two bare round
    //     trips, one verification, one signature on the client.
    let (ping_p50, pair_p50) = one_client;
    let floor_ms = 2.0 * ping_p50 + 1e3 / verify_rate + 1e3 / sign_rate;
    let pair_overhead_ms = pair_p50 - floor_ms;
    println!();
    println!(
        "1-client pair p50 {pair_p50:.3} ms; floor {floor_ms:.3} ms (2 x ping {ping_p50:.3} + verify {:.3} + sign {:.3}); overhead {pair_overhead_ms:.3} ms",
        1e3 / verify_rate,
        1e3 / sign_rate
    );
    // 2b. A pair whose key an organisation CA certified (nothing enrolled):
    //     the CA signature and CRL lookup on top of the enrolled pair.
    let ca_pairs = run_clients(&address, 1, span, move |_, client| {
        client
            .pair_presented("causer", &ca_user_key, &ca_user_cert)
            .is_ok()
    });
    println!(
        "1-client pair with a CA-issued certificate: p50 {:.3} ms, p99 {:.3} ms ({:.0}/s) vs enrolled p50 {pair_p50:.3} ms",
        ca_pairs.p50_ms, ca_pairs.p99_ms, ca_pairs.per_sec
    );
    report.insert("ca_issued_pairs".into(), ca_pairs.json());

    // 2c. Users' certificates from the directory: hit, miss, frozen.
    let dir_figures = directory::run(span, &mut report);
    report.insert(
        "pair_floor".into(),
        json!({"pair_p50_ms": round(pair_p50), "floor_ms": round(floor_ms), "ping_p50_ms": round(ping_p50),
               "verify_ms": round(1e3 / verify_rate), "sign_ms": round(1e3 / sign_rate),
               "overhead_ms": round(pair_overhead_ms)}),
    );

    // 2b. Timing of refusals: unknown user, an account with no
    //     certificate, and an enrolled user with a bad signature, measured
    //     at the caller around the Verify call, interleaved to cancel drift.
    let timing_client = Client::new(&daemon.connect());
    let stranger = generate_signing_key();
    let cases = [
        ("unknown user", "nosuchuser9"),
        ("unenrolled account", "daemon"),
        ("bad signature", "bench0"),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..if quick { 100 } else { 400 } {
        for (i, (_, user)) in cases.iter().enumerate() {
            let token = zbus::block_on(timing_client.auth.challenge(user, "sshd", "")).unwrap();
            let signature = Challenge::from_token(&token).unwrap().sign(&stranger);
            let start = Instant::now();
            assert!(zbus::block_on(timing_client.auth.verify(user, &token, &signature)).is_err());
            samples[i].push(start.elapsed());
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort();
            s[s.len() / 2].as_secs_f64() * 1e3
        })
        .collect();
    let (lo, hi) = medians
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
    let spread = (hi - lo) / lo;
    println!();
    println!("refusal time at the caller (median of interleaved Verify calls):");
    let mut timing = serde_json::Map::new();
    for ((name, _), median) in cases.iter().zip(&medians) {
        println!("  {name:<20} {median:.3} ms");
        timing.insert((*name).into(), json!(round(*median)));
    }
    println!("  spread between medians: {:.1}%", spread * 100.0);
    timing.insert("spread".into(), json!(round(spread)));
    report.insert("refusal_timing_ms".into(), Value::Object(timing));
    report.insert("pairs".into(), Value::Object(pairs));

    // 3. A flood from 10^4 sources (IPv4 /32s and IPv6 /64s), made-up
    //    user names, default per-source limits, while one client logs in
    //    locally and one from another address.
    let flood_daemon = TestDaemon::start(
        "host_name = \"bench\"\nchallenges_per_user_per_minute = 0\nfailures_before_penalty = 0\n",
    );
    let flood_address = flood_daemon.address().to_owned();
    let flood_users = enroll_users(&flood_daemon, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let sources: u64 = 10_000;
    let flooders = flood(
        &flood_address,
        3,
        0..u64::MAX,
        1_000_000,
        |i| flood_source(i % 10_000),
        stop.clone(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let local_users = flood_users.clone();
    let legit = run_clients(&flood_address, 1, span, move |_, client| {
        let (user, key) = &local_users[0];
        client
            .pair(user, key, "")
            .map_err(|e| eprintln!("legitimate local pair refused: {e:?}"))
            .is_ok()
    });
    // A remote source may ask 30 challenges a minute (the default): the
    // remote client logs in 25 times, within its own allowance.
    let remote_client = Client::new(&connect(&flood_address));
    let remote_start = Instant::now();
    let remote_latencies: Vec<Duration> = (0..25)
        .map(|_| {
            let (user, key) = &flood_users[0];
            let start = Instant::now();
            remote_client
                .pair(user, key, "192.0.2.77")
                .expect("a legitimate remote login was refused during the flood");
            start.elapsed()
        })
        .collect();
    let legit_remote = Stats::from(remote_latencies, remote_start.elapsed());
    stop.store(true, Ordering::Relaxed);
    let (flood_sent, flood_issued) = join_flood(flooders);
    let rss_flood = rss_kib(flood_daemon.pid());
    println!();
    println!(
        "during a flood of {flood_sent} challenges from {sources} sources ({flood_issued} issued, {} refused by the per-source limit):",
        flood_sent - flood_issued
    );
    println!(
        "  legitimate local pairs  {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        legit.per_sec, legit.p50_ms, legit.p99_ms, legit.max_ms
    );
    println!(
        "  legitimate remote pairs {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        legit_remote.per_sec, legit_remote.p50_ms, legit_remote.p99_ms, legit_remote.max_ms
    );
    report.insert(
        "flood".into(),
        json!({"sources": sources, "flood_requests": flood_sent, "issued": flood_issued,
               "legitimate_local_pairs": legit.json(), "legitimate_remote_pairs": legit_remote.json()}),
    );
    drop(flood_daemon);

    // 3b. How fast ecpd issues challenges (no limit) and refuses them (one
    //     source over its quota), 4 connections each.
    let rate_daemon = TestDaemon::start(
        "host_name = \"bench\"\nchallenges_per_user_per_minute = 0\nchallenges_per_source_per_minute = 0\n",
    );
    let rate_address = rate_daemon.address().to_owned();
    let timed = |limit: u64, source: fn(u64) -> String| {
        let start = Instant::now();
        let (sent, issued) = join_flood(flood(
            &rate_address,
            4,
            0..limit,
            1_000,
            source,
            Arc::new(AtomicBool::new(false)),
        ));
        (sent as f64 / start.elapsed().as_secs_f64(), issued)
    };
    let rate_requests = if quick { 20_000 } else { 100_000 };
    let (issue_rate, _) = timed(rate_requests, flood_source);
    drop(rate_daemon);
    let refuse_daemon =
        TestDaemon::start("host_name = \"bench\"\nchallenges_per_user_per_minute = 0\n");
    let rate_address = refuse_daemon.address().to_owned();
    let refuse = |limit: u64| {
        let start = Instant::now();
        let (sent, issued) = join_flood(flood(
            &rate_address,
            4,
            0..limit,
            1_000,
            |_| "203.0.113.66".to_owned(),
            Arc::new(AtomicBool::new(false)),
        ));
        (sent as f64 / start.elapsed().as_secs_f64(), issued)
    };
    let (refuse_rate, refuse_issued) = refuse(rate_requests);
    println!(
        "challenges issued {issue_rate:.0}/s (no limit); refused {refuse_rate:.0}/s (one source over its quota, {refuse_issued} issued)"
    );
    report.insert(
        "challenge_rates".into(),
        json!({"issued_per_sec": round(issue_rate), "refused_per_sec": round(refuse_rate), "requests": rate_requests}),
    );
    drop(refuse_daemon);

    // 4. Key file decryption at the default cost.
    let pass = || Passphrase::new(b"bench passphrase".to_vec()).unwrap();
    let key = generate_signing_key();
    let default_pem = encrypt_key_to_pem(&key, &pass(), KdfParams::DEFAULT).unwrap();
    let mut times: Vec<f64> = (0..if quick { 3 } else { 7 })
        .map(|_| {
            let t = Instant::now();
            decrypt_key_pem(default_pem.as_bytes(), &pass()).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let decrypt_ms = times[times.len() / 2];
    let cheap_pem = encrypt_key_to_pem(&key, &pass(), KdfParams::INSECURE_FAST_FOR_TESTS).unwrap();
    let t = Instant::now();
    for _ in 0..20 {
        decrypt_key_pem(cheap_pem.as_bytes(), &pass()).unwrap();
    }
    let cheap_decrypt_ms = t.elapsed().as_secs_f64() * 1e3 / 20.0;
    println!();
    println!("key file decryption, default KDF (scrypt 2^14, 8, 4): {decrypt_ms:.1} ms (median)");
    report.insert("key_decrypt_default_ms".into(), json!(round(decrypt_ms)));

    // 5. A whole PAM login (keyfile mode, cheap KDF) against pam_permit.
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let me = me.trim().to_owned();
    let work = tempfile::tempdir().unwrap();
    let key_path = work.path().join("cheap.pem");
    std::fs::write(&key_path, cheap_pem.as_bytes()).unwrap();
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cert = build_self_signed_certificate(&key, &UserName::parse(&me).unwrap(), 30).unwrap();
    zbus::block_on(async {
        let conn = zbus::connection::Builder::address(address.as_str())
            .build()
            .await
            .unwrap();
        AdminProxy::new(&conn)
            .await
            .unwrap()
            .enroll(&me, &cert, "pam-bench")
            .await
            .unwrap();
    });
    let services = PamServices::new();
    services.add(
        "bench-ecp",
        &format!(
            "auth required $MODULE mode=keyfile keyfile={} bus={address} daemon_user={me}\n",
            key_path.display()
        ),
    );
    services.add("bench-permit", "auth required pam_permit.so\n");
    let logins = if quick { 20 } else { 200 };
    let ecp_secs = pam_logins(&services, "bench-ecp", &me, "bench passphrase", logins);
    let permit_secs = pam_logins(&services, "bench-permit", &me, "x", logins);
    let per_login_ms = (ecp_secs - permit_secs) * 1e3 / logins as f64;
    let overhead_ms = per_login_ms - cheap_decrypt_ms;
    println!(
        "PAM login, keyfile mode, cheap KDF: {:.2} ms vs pam_permit {:.2} ms: +{per_login_ms:.2} ms, of which KDF {cheap_decrypt_ms:.2} ms, rest {overhead_ms:.2} ms",
        ecp_secs * 1e3 / logins as f64,
        permit_secs * 1e3 / logins as f64
    );
    report.insert(
        "pam_login".into(),
        json!({"logins": logins, "ecp_ms": round(ecp_secs * 1e3 / logins as f64), "permit_ms": round(permit_secs * 1e3 / logins as f64),
               "added_ms": round(per_login_ms), "cheap_kdf_ms": round(cheap_decrypt_ms), "added_besides_kdf_ms": round(overhead_ms)}),
    );

    // 5b. The same login through mode=agent, the key in a local agent
    //     (OpenSSH's ssh-agent: nothing asks a person), as sudo inside an
    //     ssh session signs: no KDF, an identities and a sign request,
    //     and the SigningKeys call, on top of the pair.
    let agent_socket = work.path().join("agent.sock");
    let mut ssh_agent = std::process::Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&agent_socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !agent_socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let plain_key = work.path().join("plain.pem");
    {
        use p256::pkcs8::EncodePrivateKey;
        let pem = key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        std::fs::write(&plain_key, pem.as_bytes()).unwrap();
        std::fs::set_permissions(
            &plain_key,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }
    let added = std::process::Command::new("ssh-add")
        .arg("-q")
        .arg(&plain_key)
        .env("SSH_AUTH_SOCK", &agent_socket)
        .status()
        .unwrap();
    assert!(added.success(), "ssh-add");
    services.add(
        "bench-agent",
        &format!("auth required $MODULE mode=agent bus={address} daemon_user={me}\n"),
    );
    let agent_secs = pam_logins_with_agent(
        &services,
        "bench-agent",
        &me,
        "x",
        logins,
        Some(&agent_socket),
    );
    let _ = ssh_agent.kill();
    let _ = ssh_agent.wait();
    let agent_login_ms = (agent_secs - permit_secs) * 1e3 / logins as f64;
    // The bare pair as a PAM login: the key-file login above without its
    // KDF (the module's bus connection, Challenge, a local signature,
    // Verify). What the agent path adds is SigningKeys, the agent's
    // connection, its key list and its signature.
    let agent_overhead_ms = agent_login_ms - overhead_ms;
    println!(
        "PAM login, agent mode (local ssh-agent): +{agent_login_ms:.2} ms over pam_permit; the bare pair through PAM (key-file login without its KDF) {overhead_ms:.2} ms; the agent path adds {agent_overhead_ms:.2} ms"
    );
    report.insert(
        "pam_agent_login".into(),
        json!({"logins": logins, "added_ms": round(agent_login_ms), "bare_pair_login_ms": round(overhead_ms),
               "agent_path_ms": round(agent_overhead_ms)}),
    );

    // 6. Memory and store size over 10^6 challenges, default limits, each
    //    from a new source for a new user name, so that every throttling
    //    table fills up and must evict.
    let store_daemon = TestDaemon::start("host_name = \"bench\"\n");
    let store_address = store_daemon.address().to_owned();
    let total: u64 = if quick { 100_000 } else { 1_000_000 };
    let store_start = settled_dir_bytes(&store_daemon.db);
    let mut checkpoints = Vec::new();
    let mut done = 0;
    let started = Instant::now();
    println!();
    println!("{:>10} {:>10} {:>12}", "challenges", "RSS MiB", "store MiB");
    for step in 1..=10u64 {
        // The request numbers continue across steps: new sources, new names.
        let handles = flood(
            &store_address,
            8,
            done..total * step / 10,
            u64::MAX,
            flood_source,
            Arc::new(AtomicBool::new(false)),
        );
        let (sent, _) = join_flood(handles);
        done += sent;
        let rss = rss_kib(store_daemon.pid());
        let store = dir_bytes(&store_daemon.db);
        println!(
            "{done:>10} {:>10.1} {:>12.2}",
            rss as f64 / 1024.0,
            store as f64 / 1048576.0
        );
        checkpoints.push(json!({"challenges": done, "rss_kib": rss, "store_bytes": store}));
    }
    let store_rate = done as f64 / started.elapsed().as_secs_f64();
    let rss_store = rss_kib(store_daemon.pid());
    let store_end = settled_dir_bytes(&store_daemon.db);
    let rss_half = checkpoints[4]["rss_kib"].as_u64().unwrap_or(0);
    println!(
        "ecpd RSS: idle {:.1} MiB, after the flood {:.1} MiB, after {done} challenges {:.1} MiB ({store_rate:.0}/s); store {:.2} MiB before, {:.2} MiB after",
        rss_idle as f64 / 1024.0,
        rss_flood as f64 / 1024.0,
        rss_store as f64 / 1024.0,
        store_start as f64 / 1048576.0,
        store_end as f64 / 1048576.0
    );
    report.insert(
        "memory".into(),
        json!({"rss_idle_kib": rss_idle, "rss_after_flood_kib": rss_flood, "rss_after_challenges_kib": rss_store}),
    );
    report.insert(
        "store".into(),
        json!({"challenges": done, "bytes_before": store_start, "bytes_after": store_end,
               "per_sec": round(store_rate), "checkpoints": checkpoints}),
    );

    // Targets.
    println!();
    println!("targets:");
    for (clients, ratio) in ratio_checks {
        check(
            &mut targets,
            &format!("pairs/s >= 50% of ping/s / 2 at {clients} client(s)"),
            ratio >= 0.5,
            format!("{:.0}%", ratio * 100.0),
        );
    }
    check(
        &mut targets,
        "P-256 verification within 2x of OpenSSL's, same machine, same run (goal 1.3x)",
        openssl_ratio <= 2.0,
        format!("OpenSSL / ecp = {openssl_ratio:.2}"),
    );
    // An absolute p99 at 16 clients is no target: with 16 pairs always
    // outstanding the mean wait is 16 / rate (Little's law). The tail is
    // judged against that mean instead, below.
    check(
        &mut targets,
        "16-client pairs/s >= 70% of the verify-and-sign-bound ceiling",
        ceiling_ratio_at_16 >= 0.7,
        format!("{:.0}%", ceiling_ratio_at_16 * 100.0),
    );
    let (p99_at_16, littles_mean_at_16) = tail_at_16;
    check(
        &mut targets,
        "16-client pair p99 <= 3x the Little's-law mean (16 / pairs/s)",
        p99_at_16 <= 3.0 * littles_mean_at_16,
        format!("p99 {p99_at_16:.2} ms, mean {littles_mean_at_16:.2} ms"),
    );
    check(
        &mut targets,
        "PAM login overhead besides the KDF < 10 ms",
        overhead_ms < 10.0,
        format!("{overhead_ms:.2} ms"),
    );
    check(
        &mut targets,
        "mode=agent adds < 1 ms to the bare pair through PAM (no KDF per login)",
        agent_overhead_ms < 1.0,
        format!("{agent_overhead_ms:.2} ms"),
    );
    check(
        &mut targets,
        "1-client pair overhead over its floor <= 0.1 ms",
        pair_overhead_ms <= 0.1,
        format!("{pair_overhead_ms:.3} ms"),
    );
    check(
        &mut targets,
        "directory cache hit adds < 0.1 ms to a pair",
        dir_figures.hit_overhead_ms < 0.1,
        format!("{:.3} ms", dir_figures.hit_overhead_ms),
    );
    check(
        &mut targets,
        "directory cache miss adds < 2 ms to a pair",
        dir_figures.miss_overhead_ms < 2.0,
        format!("{:.3} ms", dir_figures.miss_overhead_ms),
    );
    check(
        &mut targets,
        "frozen directory: the pair completes within timeout_ms + 10 ms",
        dir_figures.fallback_excess_ms < 10.0,
        format!(
            "{:+.3} ms beyond timeout_ms = {}",
            dir_figures.fallback_excess_ms, dir_figures.timeout_ms
        ),
    );
    check(
        &mut targets,
        "RSS < 30 MiB after the 10^4-source flood",
        rss_flood < 30 * 1024,
        format!("{:.1} MiB", rss_flood as f64 / 1024.0),
    );
    check(
        &mut targets,
        &format!("RSS < 30 MiB after {done} challenges"),
        rss_store < 30 * 1024,
        format!("{:.1} MiB", rss_store as f64 / 1024.0),
    );
    check(
        &mut targets,
        "RSS flat once warm (end within 10% of halfway)",
        (rss_store as f64) <= rss_half as f64 * 1.1,
        format!(
            "{:.1} MiB halfway, {:.1} MiB at the end",
            rss_half as f64 / 1024.0,
            rss_store as f64 / 1024.0
        ),
    );
    check(
        &mut targets,
        &format!("store < 10 MiB after {done} challenges"),
        store_end < 10 * 1048576,
        format!("{:.2} MiB", store_end as f64 / 1048576.0),
    );
    check(
        &mut targets,
        "no store write per challenge (store size unchanged)",
        store_end == store_start,
        format!("{store_start} -> {store_end} bytes"),
    );
    report.insert("targets".into(), Value::Array(targets));

    if let Some(parent) = Path::new(&out_path).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(
        &out_path,
        serde_json::to_string_pretty(&Value::Object(report)).unwrap(),
    )
    .unwrap();
    println!();
    println!("figures written to {out_path}");
}
