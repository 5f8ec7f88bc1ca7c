//! pam_ecp.so loaded by real libpam (pam_wrapper + pamtester) against a
//! real ecpd on a private bus. Tests that need a real local account create
//! a throw-away user and so need root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ecp_tests::daemon::{running_as_root, TestBus, TestDaemon, TestUser};
use ecp_tests::pam::{module_path, PamServices};
use ecp_tests::Run;

const PASSPHRASE: &str = "user pass";

/// A daemon, a test user with a key in the default place
/// (~/.config/ecp/private_key.pem), enrolled.
struct Setup {
    daemon: TestDaemon,
    user: TestUser,
    services: PamServices,
    ecpctl: PathBuf,
    pass_file: PathBuf,
}

impl Setup {
    fn new(enroll: bool, days: u32) -> Self {
        Self::with_config(enroll, days, "")
    }

    /// Like `new`, with more ecpd.toml lines.
    fn with_config(enroll: bool, days: u32, extra_config: &str) -> Self {
        let daemon = TestDaemon::start(&format!(
            "host_name = \"pam-test-host\"\nchallenges_per_user_per_minute = 0\n{extra_config}"
        ));
        let days = days.to_string();
        let keyed = daemon.keyed_user(PASSPHRASE, &["--days", &days], enroll.then_some("laptop"));
        let (user, ecpctl, pass_file) = (keyed.user, keyed.ecpctl, keyed.pass_file);
        Self {
            daemon,
            user,
            services: PamServices::new(),
            ecpctl,
            pass_file,
        }
    }

    fn key(&self) -> PathBuf {
        self.user.home.join(".config/ecp/private_key.pem")
    }

    /// Adds service `name` with pam_ecp OPTIONS (bus= is added).
    fn service(&self, name: &str, options: &str) {
        self.services.add(
            name,
            &format!(
                "auth required $MODULE bus={} {options}\naccount required $MODULE bus={}\n",
                self.daemon.address(),
                self.daemon.address()
            ),
        );
    }

    /// A local login (no PAM_RHOST), as sudo or su makes one.
    fn login(&self, service: &str, input: &str) -> Run {
        self.login_from(service, "", input)
    }

    fn login_from(&self, service: &str, rhost: &str, input: &str) -> Run {
        self.services
            .pamtester(service, &self.user.name, &["authenticate"], rhost, input)
    }

    fn sign(&self, token: &str) -> String {
        self.user
            .run(
                &self.ecpctl,
                &[
                    "sign",
                    "--key",
                    self.key().to_str().unwrap(),
                    "--passphrase-file",
                    self.pass_file.to_str().unwrap(),
                    token,
                ],
            )
            .ok()
            .trim()
            .to_owned()
    }
}

fn needs_root() -> bool {
    if running_as_root() {
        return true;
    }
    eprintln!("skipped: needs root to create a test user");
    false
}

#[test]
fn keyfile_login_succeeds_with_the_passphrase_and_fails_without_it() {
    if !needs_root() {
        return;
    }
    let s = Setup::new(true, 30);
    s.service("ecp-keyfile", "mode=keyfile");
    let ok = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stderr.contains("Passphrase for ecp key"),
        "{}",
        ok.stderr
    );
    assert!(ok.stdout.contains("successfully authenticated"));

    let wrong = s.login("ecp-keyfile", "not the passphrase\n");
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("wrong passphrase"),
        "{}",
        wrong.stderr
    );

    let none = s.login("ecp-keyfile", "");
    assert_eq!(none.code, 1);

    // mode=auto uses a key file on this host only where logind vouches
    // for a local session; these tests run in none (as sudo inside ssh
    // does, where PAM_RHOST is empty too): a challenge, not the key file.
    s.service("ecp-auto", "");
    let auto = s.login("ecp-auto", &format!("{PASSPHRASE}\n"));
    assert_eq!(auto.code, 1, "{}", auto.stderr);
    assert!(auto.stderr.contains("ecp challenge"), "{}", auto.stderr);
    assert!(
        !auto.stderr.contains("Passphrase for ecp key"),
        "{}",
        auto.stderr
    );
}

#[test]
fn mode_agent_signs_only_for_the_invoking_user_and_never_for_a_network_login() {
    if !needs_root() {
        return;
    }
    let s = Setup::new(true, 30);
    s.service("ecp-agent", "mode=agent");
    // root (pamtester's real uid, no PAM_RUSER) authenticating another
    // account, as su to someone else does: that account's agent is not
    // root's, and root's key does not sign for it.
    let su_like = s.login("ecp-agent", "");
    assert_eq!(su_like.code, 1, "{}", su_like.stderr);
    assert!(
        su_like
            .stderr
            .contains("the agent signs only for the person running the command"),
        "{}",
        su_like.stderr
    );
    // A login from the network never uses this process's agent.
    let remote = s.login_from("ecp-agent", "198.51.100.4", "");
    assert_eq!(remote.code, 1, "{}", remote.stderr);
    assert!(
        !remote.stderr.contains("ecp challenge"),
        "{}",
        remote.stderr
    );
}

#[test]
fn unsafe_key_files_are_refused_with_a_clear_error() {
    if !needs_root() {
        return;
    }
    let s = Setup::new(true, 30);
    s.service("ecp-keyfile", "mode=keyfile");
    let key = s.key();
    let real = s.user.home.join("real.pem");
    std::fs::rename(&key, &real).unwrap();

    // A symlink to a good key file.
    std::os::unix::fs::symlink(&real, &key).unwrap();
    let run = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    std::fs::remove_file(&key).unwrap();

    // World-writable.
    std::fs::copy(&real, &key).unwrap();
    std::os::unix::fs::chown(&key, Some(s.user.uid), Some(s.user.gid)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("group or others write"),
        "{}",
        run.stderr
    );

    // Owned by someone else.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&key, Some(54321), Some(54321)).unwrap();
    let run = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("owned by uid 54321"), "{}", run.stderr);

    // A file the user cannot read is not read for them by root.
    std::os::unix::fs::chown(&key, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("permission denied"), "{}", run.stderr);

    // Back to a proper file: it works again.
    std::fs::remove_file(&key).unwrap();
    std::fs::rename(&real, &key).unwrap();
    let run = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn challenge_mode_accepts_ecpctl_sign_and_refuses_the_replay() {
    if !needs_root() {
        return;
    }
    let s = Setup::new(true, 30);
    s.service("ecp-remote", "mode=challenge");
    let mut first_signature = String::new();
    let (run, token) = s
        .services
        .pamtester_challenge("ecp-remote", &s.user.name, |token| {
            first_signature = s.sign(token);
            first_signature.clone()
        });
    assert_eq!(run.code, 0, "{}", run.stderr);
    let challenge = ecp_core::Challenge::from_token(&token).unwrap();
    assert_eq!(challenge.host.as_str(), "pam-test-host");
    assert_eq!(challenge.service.as_str(), "ecp-remote");

    // The old signature offered for a new challenge, then for the old one.
    let (run, _) = s
        .services
        .pamtester_challenge("ecp-remote", &s.user.name, |_| first_signature.clone());
    assert_eq!(run.code, 1);
    let conn = s.daemon.connect();
    let replay = zbus::block_on(async {
        let auth = ecp_core::bus::AuthProxy::new(&conn).await.unwrap();
        auth.verify(&s.user.name, &token, &first_signature).await
    });
    assert!(
        matches!(replay, Err(ecp_core::bus::EcpError::ChallengeUnknown(_))),
        "{replay:?}"
    );
}

#[test]
fn unenrolled_user_is_refused_unless_nouserok() {
    if !needs_root() {
        return;
    }
    let s = Setup::new(false, 30);
    let bus = s.daemon.address();
    s.services.add(
        "strict",
        &format!("auth required $MODULE bus={bus} mode=keyfile\nauth required pam_permit.so\n"),
    );
    s.services.add(
        "lenient",
        &format!(
            "auth required $MODULE bus={bus} mode=keyfile nouserok\nauth required pam_permit.so\n"
        ),
    );
    let strict = s.login("strict", &format!("{PASSPHRASE}\n"));
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    let lenient = s.login("lenient", "");
    assert_eq!(lenient.code, 0, "{}", lenient.stderr);
    // nouserok asks nothing of a user it lets through.
    assert!(!lenient.stderr.contains("Passphrase"), "{}", lenient.stderr);

    // Once enrolled, nouserok no longer lets a wrong passphrase through.
    s.daemon
        .ecpctl(&[
            "enroll",
            &s.user.name,
            "--cert",
            s.user
                .home
                .join(".config/ecp/certificate.pem")
                .to_str()
                .unwrap(),
        ])
        .ok();
    let wrong = s.login("lenient", "wrong\n");
    assert_eq!(wrong.code, 1);
    let right = s.login("lenient", &format!("{PASSPHRASE}\n"));
    assert_eq!(right.code, 0, "{}", right.stderr);
}

#[test]
fn daemon_absent_or_hung_fails_closed() {
    let services = PamServices::new();
    let bus = TestBus::start();
    services.add(
        "no-daemon",
        &format!("auth required $MODULE mode=challenge bus={}\n", bus.address),
    );
    services.add(
        "no-bus",
        "auth required $MODULE mode=challenge bus=unix:path=/nonexistent/socket\n",
    );
    services.add(
        "no-daemon-permit",
        &format!(
            "auth required $MODULE mode=challenge bus={}\nauth optional pam_permit.so\n",
            bus.address
        ),
    );
    for service in ["no-daemon", "no-bus", "no-daemon-permit"] {
        let run = services.pamtester(service, "root", &["authenticate"], "", "whatever\n");
        assert_eq!(run.code, 1, "{service}: {}", run.stderr);
        assert!(
            !run.stderr.contains("ecp challenge"),
            "{service} prompted without a daemon"
        );
    }

    // A daemon that hangs (SIGSTOP): the module gives up after its timeout.
    let daemon = TestDaemon::start("host_name = \"h\"\n");
    services.add(
        "hung",
        &format!(
            "auth required $MODULE mode=challenge timeout=2 bus={}\n",
            daemon.address()
        ),
    );
    let pid = daemon_pid(&daemon);
    nix_kill(pid, "STOP");
    let started = Instant::now();
    let run = services.pamtester("hung", "root", &["authenticate"], "", "x\n");
    let took = started.elapsed();
    nix_kill(pid, "CONT");
    assert_eq!(run.code, 1);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "gave up before the timeout: {took:?}"
    );
}

fn daemon_pid(daemon: &TestDaemon) -> u32 {
    // The daemon's pid, as the bus knows it.
    let conn = daemon.connect();
    zbus::block_on(async {
        let bus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let name = zbus::names::BusName::try_from(ecp_core::bus::BUS_NAME).unwrap();
        bus.get_connection_unix_process_id(name).await.unwrap()
    })
}

fn nix_kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn unknown_option_fails_the_login() {
    let services = PamServices::new();
    services.add(
        "typo",
        "auth required $MODULE nouserk\nauth optional pam_permit.so\n",
    );
    let run = services.pamtester("typo", "root", &["authenticate"], "", "");
    assert_eq!(run.code, 1, "{}", run.stderr);
}

#[test]
fn account_check_warns_of_a_certificate_expiring_soon() {
    if !needs_root() {
        return;
    }
    let s = Setup::new(true, 5);
    s.service("ecp-acct", "");
    let run = s
        .services
        .pamtester("ecp-acct", &s.user.name, &["acct_mgmt"], "", "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("expires on"), "{all}");
    assert!(all.contains("ecpctl renew"), "{all}");
    assert!(all.contains("laptop"), "{all}");

    // PAM_SILENT (sudo-rs passes it for plain commands): no message, same
    // answer.
    let run = s
        .services
        .pamtester("ecp-acct", &s.user.name, &["acct_mgmt(PAM_SILENT)"], "", "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(!all.contains("expires on"), "{all}");

    let fresh = Setup::new(true, 300);
    fresh.service("ecp-acct", "");
    let run = fresh
        .services
        .pamtester("ecp-acct", &fresh.user.name, &["acct_mgmt"], "", "");
    assert_eq!(run.code, 0);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("expires on"));
}

#[test]
fn only_the_pam_entry_points_are_exported() {
    let out = ecp_tests::run(
        Path::new("/usr/bin/nm"),
        &["-D", "--defined-only", module_path().to_str().unwrap()],
    )
    .ok();
    let mut symbols: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    symbols.sort();
    assert_eq!(
        symbols,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred"
        ]
    );
}

#[test]
fn the_module_is_built_without_tokio() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "-p", "pam_ecp", "-e", "features", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("zbus"), "{tree}");
    assert!(
        !tree.to_lowercase().contains("tokio"),
        "tokio reached the module:\n{tree}"
    );
}

#[test]
fn a_hundred_logins_in_one_process_leave_no_thread_behind() {
    let daemon = TestDaemon::start(
        "host_name = \"h\"\nchallenges_per_user_per_minute = 0\nfailures_before_penalty = 0\n",
    );
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let me = me.trim();
    let work = ecp_tests::Workdir::new();
    work.write("pass", b"pw\n", 0o600);
    ecp_tests::ecpctl(&[
        "keygen",
        "--user",
        me,
        "--out",
        &work.arg("k"),
        "--passphrase-file",
        &work.arg("pass"),
    ])
    .ok();
    daemon
        .ecpctl(&["enroll", me, "--cert", &work.arg("k/certificate.pem")])
        .ok();
    let services = PamServices::new();
    services.add(
        "ecp-loop",
        &format!(
            "auth required $MODULE mode=keyfile keyfile={} bus={}\n",
            work.arg("k/private_key.pem"),
            daemon.address()
        ),
    );
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("pam_driver.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(&driver)
        .args(["ecp-loop", me, "pw", "100"])
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", services.dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> u32 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(field("successes"), 100, "{stdout}");
    assert_eq!(field("threads_after"), field("threads_before"), "{stdout}");
}

/// Runs pamtester inside a private mount namespace whose /dev/log is the
/// datagram socket `log_socket` (the machine's /dev is untouched).
fn pamtester_logging_to(
    services: &PamServices,
    log_socket: &Path,
    service: &str,
    user: &str,
    input: &str,
) -> Run {
    let script = format!(
        r#"set -e
old=$(mktemp -d)
mount --rbind /dev "$old"
mount -t tmpfs ecp-test-dev /dev
for n in null zero urandom random tty; do touch /dev/$n; mount --bind "$old/$n" /dev/$n; done
touch /dev/log
mount --bind '{log}' /dev/log
exec env LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR='{dir}' \
    pamtester -I rhost=198.51.100.4 {service} {user} authenticate"#,
        log = log_socket.display(),
        dir = services.dir().display()
    );
    ecp_tests::run_in_mount_namespace(
        &format!("pamtester {service} {user} (syslog)"),
        &script,
        input,
    )
}

#[test]
fn logs_go_to_syslog_authpriv_with_service_and_rhost_and_no_secret() {
    if !needs_root() {
        return;
    }
    let daemon = TestDaemon::start("host_name = \"h\"\n");
    let work = ecp_tests::Workdir::new();
    work.write("pass", b"right passphrase\n", 0o600);
    ecp_tests::ecpctl(&[
        "keygen",
        "--user",
        "root",
        "--out",
        &work.arg("k"),
        "--passphrase-file",
        &work.arg("pass"),
    ])
    .ok();
    daemon
        .ecpctl(&["enroll", "root", "--cert", &work.arg("k/certificate.pem")])
        .ok();
    let services = PamServices::new();
    services.add(
        "ecp-log",
        &format!(
            "auth required $MODULE mode=keyfile allow_remote_keyfile keyfile={} bus={} debug\n",
            work.arg("k/private_key.pem"),
            daemon.address()
        ),
    );
    let socket_path = work.path("log.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let wrong = pamtester_logging_to(
        &services,
        &socket_path,
        "ecp-log",
        "root",
        "SECRET-WRONG-PASSPHRASE\n",
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    let ok = pamtester_logging_to(
        &services,
        &socket_path,
        "ecp-log",
        "root",
        "right passphrase\n",
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);

    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = lines.join("\n");
    // Facility authpriv (10): priorities 80..87.
    for line in &lines {
        let pri: u32 = line[1..line.find('>').unwrap()].parse().unwrap();
        assert_eq!(pri / 8, 10, "{line}");
        assert!(line.contains("pam_ecp(ecp-log:auth)"), "{line}");
    }
    assert!(all.contains("wrong passphrase"), "{all}");
    assert!(all.contains("rhost=198.51.100.4 outcome=success"), "{all}");
    assert!(
        !all.contains("SECRET-WRONG-PASSPHRASE"),
        "a passphrase reached the log"
    );
    assert!(
        !all.contains("right passphrase"),
        "a passphrase reached the log"
    );
}

#[test]
fn a_daemon_running_under_an_unexpected_account_is_not_trusted() {
    if !needs_root() {
        return;
    }
    let homes = tempfile::tempdir().unwrap();
    std::fs::set_permissions(homes.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let impostor = TestUser::create(homes.path());
    // The bus lets this account own the name (as a mistaken or hostile
    // policy might); the module must still refuse to trust it.
    let bus = TestBus::letting_own(&impostor.name);
    let daemon = TestDaemon::start_on(
        bus,
        "host_name = \"h\"\n",
        Some((impostor.uid, impostor.gid)),
    );
    let work = ecp_tests::Workdir::new();
    work.write("pass", b"pw\n", 0o600);
    ecp_tests::ecpctl(&[
        "keygen",
        "--user",
        "root",
        "--out",
        &work.arg("k"),
        "--passphrase-file",
        &work.arg("pass"),
    ])
    .ok();
    daemon
        .ecpctl(&["enroll", "root", "--cert", &work.arg("k/certificate.pem")])
        .ok();

    let services = PamServices::new();
    let key = work.arg("k/private_key.pem");
    services.add(
        "default-trust",
        &format!(
            "auth required $MODULE mode=keyfile keyfile={key} bus={}\n",
            daemon.address()
        ),
    );
    services.add(
        "named-trust",
        &format!(
            "auth required $MODULE mode=keyfile keyfile={key} bus={} daemon_user={}\n",
            daemon.address(),
            impostor.name
        ),
    );
    let refused = services.pamtester("default-trust", "root", &["authenticate"], "", "pw\n");
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("Passphrase"),
        "asked for a passphrase on behalf of an untrusted daemon"
    );
    // Trusted by name, the same daemon works: the refusal was the uid check.
    let accepted = services.pamtester("named-trust", "root", &["authenticate"], "", "pw\n");
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
}

#[test]
fn a_remote_login_never_reads_a_key_file_on_the_server() {
    if !needs_root() {
        return;
    }
    let s = Setup::new(true, 30);
    s.service("ecp-auto", "");
    s.service("ecp-keyfile-mode", "mode=keyfile");
    s.service("ecp-keyfile-allowed", "mode=keyfile allow_remote_keyfile");
    let passphrase = format!("{PASSPHRASE}\n");
    // Locally (no logind session here to say otherwise), mode=keyfile
    // signs with the key file.
    let local = s.login("ecp-keyfile-mode", &passphrase);
    assert_eq!(local.code, 0, "{}", local.stderr);
    // From a remote host it asks for a signature made elsewhere: the
    // passphrase is no answer.
    let remote = s.login_from("ecp-auto", "198.51.100.4", &passphrase);
    assert_eq!(remote.code, 1, "{}", remote.stderr);
    assert!(
        remote.stderr.contains("ecp challenge "),
        "{}",
        remote.stderr
    );
    assert!(!remote.stderr.contains("Passphrase"), "{}", remote.stderr);
    // mode=keyfile refuses a remote login outright, unless allowed.
    let refused = s.login_from("ecp-keyfile-mode", "198.51.100.4", &passphrase);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(!refused.stderr.contains("Passphrase"), "{}", refused.stderr);
    let allowed = s.login_from("ecp-keyfile-allowed", "198.51.100.4", &passphrase);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
}

#[test]
fn a_case_variant_of_the_user_name_is_refused_before_the_daemon_is_asked() {
    if !needs_root() {
        return;
    }
    let s = Setup::new(false, 30);
    let bus = s.daemon.address();
    // With nouserok an unenrolled name is let through: a variant must not be.
    s.services.add(
        "lenient",
        &format!("auth required $MODULE bus={bus} nouserok\nauth required pam_permit.so\n"),
    );
    let variant = s.user.name.to_uppercase();
    let run = s
        .services
        .pamtester("lenient", &variant, &["authenticate"], "", "");
    assert_ne!(run.code, 0, "{}", run.stderr);
    let real = s.login("lenient", "");
    assert_eq!(real.code, 0, "{}", real.stderr);
    // The daemon heard of the real name only.
    assert!(!s.daemon.log().contains(&variant), "{}", s.daemon.log());
}

#[test]
fn wrong_passphrases_at_the_key_file_prompt_are_counted_by_the_daemon() {
    if !needs_root() {
        return;
    }
    let s = Setup::with_config(
        true,
        30,
        "failures_before_penalty = 2\npenalty_initial_secs = 600\n",
    );
    s.service("ecp-keyfile", "mode=keyfile");
    for _ in 0..3 {
        let wrong = s.login("ecp-keyfile", "not the passphrase\n");
        assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    }
    // The third failure earned the console a wait: the right passphrase
    // is refused until an admin clears it.
    let waiting = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(waiting.code, 1, "{}", waiting.stderr);
    assert!(
        waiting.stderr.contains("too many failed attempts"),
        "{}",
        waiting.stderr
    );
    assert!(
        s.daemon.log().contains("no signature given"),
        "{}",
        s.daemon.log()
    );
    s.daemon.ecpctl(&["unlock", &s.user.name]).ok();
    let right = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(right.code, 0, "{}", right.stderr);
}

#[test]
fn the_first_login_after_boot_starts_ecpd_by_d_bus_activation() {
    if !needs_root() {
        return;
    }
    // The bus knows how to start ecpd, as the package's activation file
    // tells the system bus; the script it runs is written once the bus's
    // directory (store, config) exists.
    let services = tempfile::Builder::new()
        .prefix("ecp-activation-")
        .tempdir()
        .unwrap();
    let run_script = services.path().join("run.sh");
    let starter = services.path().join("start-ecpd");
    std::fs::write(
        &starter,
        format!("#!/bin/sh\nexec /bin/sh '{}'\n", run_script.display()),
    )
    .unwrap();
    std::fs::set_permissions(&starter, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        services.path().join("org.ecp.Ecpd1.service"),
        format!(
            "[D-BUS Service]\nName=org.ecp.Ecpd1\nExec={}\n",
            starter.display()
        ),
    )
    .unwrap();
    let bus = TestBus::start_with(None, Some(services.path()));
    let mut daemon = TestDaemon::start_on(bus, "host_name = \"booted\"\n", None);
    let log = daemon.bus.dir().join("activated.log");
    std::fs::write(
        &run_script,
        format!(
            "exec '{}' --bus \"$DBUS_STARTER_ADDRESS\" --db '{}' --config '{}' 2>>'{}'\n",
            ecp_tests::binary("ecpd").display(),
            daemon.db.display(),
            daemon.bus.dir().join("ecpd.toml").display(),
            log.display()
        ),
    )
    .unwrap();

    let user = daemon.keyed_user(PASSPHRASE, &[], Some("boot")).user;
    // "Reboot": ecpd is not running; its store is where it was.
    daemon.kill_hard();

    let services_dir = PamServices::new();
    services_dir.add(
        "ecp-boot",
        &format!(
            "auth required $MODULE mode=keyfile bus={}\n",
            daemon.address()
        ),
    );
    let run = services_dir.pamtester(
        "ecp-boot",
        &user.name,
        &["authenticate"],
        "",
        &format!("{PASSPHRASE}\n"),
    );
    let activated = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(run.code, 0, "{}\nactivated ecpd:\n{activated}", run.stderr);
    assert!(activated.contains("outcome=\"serving\""), "{activated}");
    // The activated daemon goes when its bus does.
    let db = daemon.db.display().to_string();
    drop(daemon);
    let _ = std::process::Command::new("pkill")
        .args(["-f", &db])
        .status();
}

#[test]
fn a_ca_issued_certificate_beside_the_key_logs_in_with_nothing_enrolled() {
    if !needs_root() {
        return;
    }
    let work = ecp_tests::Workdir::new();
    let ca = ecp_tests::ca::TestCa::root(
        &work.path(""),
        "Org CA",
        ecp_tests::ca::CaKeyKind::Rsa(2048),
    );
    let ca_file = work.write("ca.pem", ca.certificate_pem().as_bytes(), 0o644);
    let crl_file = work.write("crl.pem", ca.crl(24).as_bytes(), 0o644);
    let s = Setup::with_config(
        false,
        30,
        &format!(
            "ca_file = \"{}\"\ncrl_file = \"{}\"\n",
            ca_file.display(),
            crl_file.display()
        ),
    );
    s.service("ecp-keyfile", "mode=keyfile");
    s.service("ecp-keyfile-nouserok", "mode=keyfile nouserok");

    // The self-signed certificate keygen wrote is not enrolled: refused,
    // and with a trusted CA nouserok does not wave the user through.
    let refused = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let refused = s.login("ecp-keyfile-nouserok", &format!("{PASSPHRASE}\n"));
    assert_eq!(refused.code, 1, "{}", refused.stderr);

    // The CA signs a request made from the user's own (encrypted) key;
    // the certificate goes beside the key, where the module finds it.
    let request = work.path("user.csr");
    ecp_tests::openssl(&[
        "req",
        "-new",
        "-key",
        s.key().to_str().unwrap(),
        "-passin",
        &format!("file:{}", s.pass_file.display()),
        "-subj",
        &format!("/CN={}", s.user.name),
        "-out",
        request.to_str().unwrap(),
    ]);
    let issued = work.path("issued.pem");
    ca.sign_user(&request, &issued, 30);
    s.user.write_owned(
        &s.user.home.join(".config/ecp/certificate.pem"),
        &std::fs::read_to_string(&issued).unwrap(),
    );
    let ok = s.login("ecp-keyfile", &format!("{PASSPHRASE}\n"));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        s.daemon
            .log()
            .contains("signed with a CA-issued certificate"),
        "{}",
        s.daemon.log()
    );
    // Still nothing enrolled on this host.
    assert!(s
        .daemon
        .ecpctl(&["list", &s.user.name, "--json"])
        .ok()
        .contains("[]"));

    // Revoked: refused again.
    ca.revoke(&issued);
    std::fs::write(&crl_file, ca.crl(24)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.login("ecp-keyfile", &format!("{PASSPHRASE}\n")).code == 0 {
        assert!(Instant::now() < deadline, "the new CRL was not picked up");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_directory_certificate_logs_in_through_libpam_and_a_lost_directory_fails_closed() {
    if !needs_root() {
        return;
    }
    use ecp_tests::directory::{TestDirectory, BASE_DN};
    let directory = TestDirectory::start();
    // No answer is ever old enough to serve offline: the moment the
    // directory is gone, the cache no longer counts (max_offline_secs
    // passed, without a test that sleeps).
    let s = Setup::with_config(
        false,
        30,
        &format!(
            "[directory]\nuri = [\"{}\"]\nbase_dn = \"{BASE_DN}\"\ntimeout_ms = 500\n\
             cache_ttl_secs = 0\nmax_offline_secs = 0\n",
            directory.uri
        ),
    );
    let certificate = std::fs::read(s.user.home.join(".config/ecp/certificate.pem")).unwrap();
    let der = ecp_core::certificate::parse_certificate_pem(&certificate)
        .unwrap()
        .der()
        .to_vec();
    directory.add_user(&s.user.name, &[der]);
    let bus = s.daemon.address().to_owned();
    s.services.add(
        "ecp-keyfile",
        &format!("auth required $MODULE bus={bus} mode=keyfile\n"),
    );
    s.services.add(
        "ecp-nouserok",
        &format!(
            "auth required $MODULE bus={bus} mode=keyfile nouserok\nauth required pam_permit.so\n"
        ),
    );

    // Nothing enrolled on this host: the directory's certificate is the one.
    for service in ["ecp-keyfile", "ecp-nouserok"] {
        let ok = s.login(service, &format!("{PASSPHRASE}\n"));
        assert_eq!(ok.code, 0, "{service}: {}\n{}", ok.stderr, s.daemon.log());
    }
    assert!(s
        .daemon
        .log()
        .contains("signed with a certificate from the directory"));

    // The directory gone and the cached answer past max_offline_secs: the
    // login fails as unavailable, and nouserok does not wave it through.
    drop(directory);
    for service in ["ecp-keyfile", "ecp-nouserok"] {
        let refused = s.login(service, &format!("{PASSPHRASE}\n"));
        assert_eq!(refused.code, 1, "{service}: {}", refused.stdout);
        assert!(
            refused
                .stderr
                .contains("Authentication service cannot retrieve authentication info"),
            "{service}: {}",
            refused.stderr
        );
    }
    assert!(
        s.daemon.log().contains("the login fails closed"),
        "{}",
        s.daemon.log()
    );
}

#[test]
fn a_user_renews_its_own_certificate_and_the_successor_logs_in_through_libpam() {
    if !needs_root() {
        return;
    }
    let s = Setup::with_config(true, 30, "renew_min_age_secs = 0\n");
    let next_dir = s.user.home.join(".config/ecp-next");
    s.service(
        "ecp-next",
        "mode=keyfile keyfile=~/.config/ecp-next/private_key.pem",
    );
    s.service("ecp-old", "mode=keyfile");
    let key = s.key();
    let (key, pass) = (key.to_str().unwrap(), s.pass_file.to_str().unwrap());
    let renew = |extra: &[&str]| {
        let mut args = vec![
            "--bus",
            s.daemon.address(),
            "renew",
            "--key",
            key,
            "--passphrase-file",
            pass,
        ];
        args.extend_from_slice(extra);
        s.user.run(&s.ecpctl, &args)
    };

    // As the user, for itself: a new key pair, enrolled beside the old.
    let next = next_dir.to_str().unwrap();
    let run = renew(&["--key-out", next, "--new-passphrase-file", pass]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("enrolled:"), "{}", run.stdout);
    let listed = s.daemon.ecpctl(&["list", &s.user.name]).ok();
    assert!(listed.contains("renewed-"), "{listed}");
    for service in ["ecp-next", "ecp-old"] {
        let ok = s.login(service, &format!("{PASSPHRASE}\n"));
        assert_eq!(ok.code, 0, "{service}: {}", ok.stderr);
    }

    // A successor valid for longer than keygen makes one (OpenSSL, 9000
    // days): refused with the reason, whoever made it.
    let long_key = s.user.home.join("long.key");
    let long_cert = s.user.home.join("long.pem");
    ecp_tests::openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        long_key.to_str().unwrap(),
        "-out",
        long_cert.to_str().unwrap(),
        "-days",
        "9000",
        "-subj",
        &format!("/CN={}", s.user.name),
    ]);
    let run = renew(&["--cert", long_cert.to_str().unwrap()]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(run.stderr.contains("at most 3660 days"), "{}", run.stderr);

    // For another account: refused as non-root (exit 6), nothing written.
    let other_dir = s.user.home.join("other");
    let run = renew(&[
        "root",
        "--key-out",
        other_dir.to_str().unwrap(),
        "--new-passphrase-file",
        pass,
    ]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(run.stderr.contains("only for itself"), "{}", run.stderr);
    assert!(!other_dir.join("private_key.pem").exists());

    // With --retire-old, from the new key: the old one stops working.
    let third = s.user.home.join(".config/ecp-third");
    let run = s.user.run(
        &s.ecpctl,
        &[
            "--bus",
            s.daemon.address(),
            "renew",
            "--key",
            next_dir.join("private_key.pem").to_str().unwrap(),
            "--passphrase-file",
            pass,
            "--key-out",
            third.to_str().unwrap(),
            "--new-passphrase-file",
            pass,
            "--retire-old",
            "--label",
            "third",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("retired:"), "{}", run.stdout);
    let refused = s.login("ecp-next", &format!("{PASSPHRASE}\n"));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(s.daemon.log().contains("event=\"renew\""));
}

#[test]
fn a_stolen_key_and_everything_renewed_from_it_stop_at_its_revocation() {
    if !needs_root() {
        return;
    }
    // The thief holds the key file, its passphrase and the password, and
    // renews as the user: first a new certificate for the stolen key
    // itself, then from that to a key of its own.
    let s = Setup::with_config(true, 30, "renew_min_age_secs = 0\n");
    let thief_dir = s.user.home.join(".config/ecp-thief");
    s.service(
        "ecp-thief",
        "mode=keyfile keyfile=~/.config/ecp-thief/private_key.pem",
    );
    s.service("ecp-stolen", "mode=keyfile");
    let (key, pass) = (s.key(), s.pass_file.clone());
    let same_key_cert = |days: &str| {
        let out = s.user.home.join(format!("samekey-{days}.pem"));
        ecp_tests::openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-passin",
            &format!("file:{}", pass.display()),
            "-days",
            days,
            "-subj",
            &format!("/CN={}", s.user.name),
            "-out",
            out.to_str().unwrap(),
        ]);
        out
    };
    let renew = |signer: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "--bus",
            s.daemon.address(),
            "renew",
            "--key",
            signer.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        s.user.run(&s.ecpctl, &args)
    };
    let stolen_fingerprint = s.daemon.first_fingerprint(&s.user.name);

    // Ten years from a 30-day certificate: refused, with the reason.
    let run = renew(&key, &["--cert", same_key_cert("3650").to_str().unwrap()]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(run.stderr.contains("at most as long"), "{}", run.stderr);
    // Thirty days for the same key: enrolled, renewed from the stolen one.
    let run = renew(&key, &["--cert", same_key_cert("30").to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = s.daemon.ecpctl(&["list", &s.user.name]).ok();
    assert!(listed.contains("RENEWED FROM"), "{listed}");
    assert!(listed.contains(&stolen_fingerprint), "{listed}");
    // From the same-key certificate to a key of the thief's own (the
    // default --days is the current certificate's 30).
    let run = renew(
        &key,
        &[
            "--key-out",
            thief_dir.to_str().unwrap(),
            "--new-passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for service in ["ecp-thief", "ecp-stolen"] {
        let ok = s.login(service, &format!("{PASSPHRASE}\n"));
        assert_eq!(ok.code, 0, "{service}: {}", ok.stderr);
    }

    // The admin follows the README: revoke the stolen certificate. Every
    // certificate that came from it goes too, each printed with why.
    let out = s
        .daemon
        .ecpctl(&["revoke", &s.user.name, &stolen_fingerprint])
        .ok();
    assert_eq!(out.matches("revoked ").count(), 4, "{out}");
    assert!(out.contains("renewed from"), "{out}");
    assert!(out.contains("revoked 3 certificate(s)"), "{out}");
    for service in ["ecp-thief", "ecp-stolen"] {
        let refused = s.login(service, &format!("{PASSPHRASE}\n"));
        assert_eq!(refused.code, 1, "{service}: {}", refused.stderr);
    }
    assert!(s
        .daemon
        .ecpctl(&["list", &s.user.name])
        .ok()
        .contains("no certificates"));
}
