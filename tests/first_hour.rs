//! An admin's first hour (issue 22): what the README tells an admin to
//! run does what it says, with the real tools. The Debian profile read by
//! the real pam-auth-update; root's way in at the console with ecpd down,
//! through the stack pam-auth-update wrote and real libpam; doctor's exit
//! status as root; test-login for a named user; ecpctl's words when ecpd
//! is not running.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ecp_tests::daemon::{running_as_root, TestBus, TestDaemon, TestUser};
use ecp_tests::pam::module_path;
use ecp_tests::{binary, mount_namespace_shell, run_command, Run};

fn packaged(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(file)
}

/// Where libpam looks for modules named without a path (Debian, amd64 or
/// whatever this machine is).
fn security_dir() -> PathBuf {
    PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/security",
        std::env::consts::ARCH
    ))
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display())
}

/// Runs pam-auth-update enabling the profile `profile`, on copies of
/// /etc/pam.d, /usr/share/pam-configs, /var/lib/pam and debconf's
/// database in `work`, bound over the real ones in a private mount
/// namespace: the machine's files are never written (and two runs do not
/// wait for each other's debconf lock). Returns the run and the
/// resulting pam.d.
fn pam_auth_update_enabling(work: &Path, profile: &Path) -> (Run, PathBuf) {
    let pam_d = work.join("pam.d");
    let configs = work.join("pam-configs");
    let state = work.join("var-lib-pam");
    let debconf = work.join("debconf");
    let script = format!(
        "set -e\n\
         cp -a /etc/pam.d {pam_d}\n\
         cp -a /usr/share/pam-configs {configs}\n\
         cp -a /var/lib/pam {state}\n\
         cp -a /var/cache/debconf {debconf}\n\
         cp {profile} {configs}/ecp\n\
         mount --bind {pam_d} /etc/pam.d\n\
         mount --bind {configs} /usr/share/pam-configs\n\
         mount --bind {state} /var/lib/pam\n\
         mount --bind {debconf} /var/cache/debconf\n\
         DEBIAN_FRONTEND=noninteractive pam-auth-update --package --force --enable ecp\n",
        pam_d = shell_quote(&pam_d),
        configs = shell_quote(&configs),
        state = shell_quote(&state),
        debconf = shell_quote(&debconf),
        profile = shell_quote(profile),
    );
    let run = run_command(
        "pam-auth-update --enable ecp",
        mount_namespace_shell(&script),
        None,
    );
    (run, pam_d)
}

#[test]
fn pam_auth_update_reads_the_profile_without_a_warning_and_puts_ecp_after_the_password() {
    if !running_as_root() || !Path::new("/usr/sbin/pam-auth-update").exists() {
        eprintln!("skipped: needs root (mount namespace) and pam-auth-update (libpam-runtime)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (run, pam_d) = pam_auth_update_enabling(work.path(), &packaged("pam-configs/ecp"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    // pam-auth-update has no comment syntax: a '#' line made Perl warn
    // ("Use of uninitialized value…") on every run.
    assert_eq!(run.stderr.trim(), "", "pam-auth-update warned");
    let common_auth = std::fs::read_to_string(pam_d.join("common-auth")).unwrap();
    let lines: Vec<&str> = common_auth
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    let unix = lines.iter().position(|l| l.contains("pam_unix.so"));
    let deny = lines.iter().position(|l| l.contains("pam_deny.so"));
    let ecp = lines.iter().position(|l| {
        l.split_whitespace().collect::<Vec<_>>()
            == [
                "auth",
                "required",
                "pam_ecp.so",
                "nouserok",
                "root_console_rescue",
            ]
    });
    assert!(
        matches!((unix, deny, ecp), (Some(u), Some(d), Some(e)) if u < d && d < e),
        "pam_ecp is not after the password's pam_deny:\n{common_auth}"
    );
}

/// A copy of the machine's PAM module directory with the built pam_ecp.so
/// in it, for binding over the real one.
fn modules_with_ecp(work: &Path) -> PathBuf {
    let modules = work.join("security");
    let status = Command::new("cp")
        .arg("-a")
        .arg(security_dir())
        .arg(&modules)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(module_path(), modules.join("pam_ecp.so")).unwrap();
    modules
}

/// /etc/shadow with root's password set to `password` (for binding over
/// the real one in a namespace).
fn shadow_with_root_password(work: &Path, password: &str) -> PathBuf {
    let hash = ecp_tests::openssl(&["passwd", "-6", password]);
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    let text: String = shadow
        .lines()
        .map(|line| match line.split_once(':') {
            Some(("root", rest)) => {
                let rest = rest.split_once(':').map_or("", |(_, r)| r);
                format!("root:{}:{rest}\n", hash.trim())
            }
            _ => format!("{line}\n"),
        })
        .collect();
    let path = work.join("shadow");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    path
}

/// `pamtester login USER authenticate` through real libpam, with the
/// stack in `pam_d`, the modules in `modules`, root's password from
/// `shadow`, and PAM items `items` (tty=…, rhost=…). The system bus socket
/// is `bus_socket` bound at /run/dbus/system_bus_socket, or absent.
fn console_login(
    setup: &LoginSetup,
    bus_socket: Option<&Path>,
    user: &str,
    items: &[&str],
    password: &str,
) -> Run {
    let bind_bus = match bus_socket {
        Some(socket) => format!(
            "touch /run/dbus/system_bus_socket\nmount --bind {} /run/dbus/system_bus_socket\n",
            shell_quote(socket)
        ),
        None => String::new(),
    };
    let items: String = items.iter().map(|i| format!(" -I '{i}'")).collect();
    let script = format!(
        "set -e\n\
         mount --bind {pam_d} /etc/pam.d\n\
         mount --bind {modules} {security}\n\
         mount --bind {shadow} /etc/shadow\n\
         mount -t tmpfs ecp-test-run /run\n\
         mkdir /run/dbus\n\
         {bind_bus}\
         exec pamtester -v{items} login {user} authenticate\n",
        pam_d = shell_quote(&setup.pam_d),
        modules = shell_quote(&setup.modules),
        security = shell_quote(&security_dir()),
        shadow = shell_quote(&setup.shadow),
    );
    run_command(
        &format!("pamtester{items} login {user}"),
        mount_namespace_shell(&script),
        Some(format!("{password}\n").as_bytes()),
    )
}

struct LoginSetup {
    _work: tempfile::TempDir,
    pam_d: PathBuf,
    modules: PathBuf,
    shadow: PathBuf,
}

const ROOT_PASSWORD: &str = "Root-pw-for-ecp-tests-7";
const RESCUED: &str = "root logs in on the console with the password alone";

#[test]
fn with_ecpd_down_only_root_at_a_console_gets_in_and_only_with_the_password() {
    if !running_as_root() || !Path::new("/usr/sbin/pam-auth-update").exists() {
        eprintln!("skipped: needs root (mount namespace, /etc/shadow) and pam-auth-update");
        return;
    }
    // Made before /etc/shadow is copied, so that the copy has its password.
    let user = TestUser::create(Path::new("/tmp"));
    user.enable_login("User-pw-1");
    // The stack an admin gets from "pam-auth-update --enable ecp".
    let work = tempfile::tempdir().unwrap();
    let (run, pam_d) = pam_auth_update_enabling(work.path(), &packaged("pam-configs/ecp"));
    assert_eq!(run.code, 0);
    let setup = LoginSetup {
        modules: modules_with_ecp(work.path()),
        shadow: shadow_with_root_password(work.path(), ROOT_PASSWORD),
        pam_d,
        _work: work,
    };
    let ok = |run: &Run| run.code == 0 && run.stdout.contains("successfully authenticated");

    // No system bus at all, ecpd down with it: root at tty1 with the
    // right password gets in, and is told why.
    let rescued = console_login(&setup, None, "root", &["tty=/dev/tty1"], ROOT_PASSWORD);
    assert!(ok(&rescued), "root at the console was not let in");
    assert!(rescued.stderr.contains(RESCUED), "{}", rescued.stderr);
    // A serial console counts too; the wrong password never does.
    let serial = console_login(&setup, None, "root", &["tty=ttyS0"], ROOT_PASSWORD);
    assert!(ok(&serial));
    let wrong = console_login(&setup, None, "root", &["tty=/dev/tty1"], "not-the-password");
    assert!(!ok(&wrong) && !wrong.stderr.contains(RESCUED));
    // Everything else fails closed: root from the network, root on a
    // pseudo-terminal, another user at the console.
    let remote = console_login(
        &setup,
        None,
        "root",
        &["tty=ssh", "rhost=203.0.113.9"],
        ROOT_PASSWORD,
    );
    assert!(!ok(&remote) && !remote.stderr.contains(RESCUED));
    let pts = console_login(&setup, None, "root", &["tty=/dev/pts/0"], ROOT_PASSWORD);
    assert!(!ok(&pts) && !pts.stderr.contains(RESCUED));
    let other = console_login(&setup, None, &user.name, &["tty=/dev/tty1"], "User-pw-1");
    assert!(!ok(&other) && !other.stderr.contains(RESCUED));

    // The bus is up but ecpd is not running (and cannot be started).
    let bus = TestBus::start();
    let bus_socket = bus.dir().join("system_bus_socket");
    let up = console_login(
        &setup,
        Some(&bus_socket),
        "root",
        &["tty=/dev/tty1"],
        ROOT_PASSWORD,
    );
    assert!(
        ok(&up),
        "root was not let in with the bus up and ecpd absent"
    );
    drop(bus);

    // ecpd running: root at the console needs the key like anyone.
    let daemon = TestDaemon::start("");
    let keydir = tempfile::tempdir().unwrap();
    let pass = keydir.path().join("pass");
    std::fs::write(&pass, "root key pass\n").unwrap();
    ecp_tests::run(
        &binary("ecpctl"),
        &[
            "keygen",
            "--user",
            "root",
            "--out",
            keydir.path().join("k").to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    )
    .ok();
    daemon
        .ecpctl(&[
            "enroll",
            "root",
            "--cert",
            keydir.path().join("k/certificate.pem").to_str().unwrap(),
        ])
        .ok();
    let daemon_socket = daemon.bus.dir().join("system_bus_socket");
    let asked = console_login(
        &setup,
        Some(&daemon_socket),
        "root",
        &["tty=/dev/tty1"],
        ROOT_PASSWORD,
    );
    assert!(
        !ok(&asked),
        "root passed without a signature while ecpd ran"
    );
    assert!(!asked.stderr.contains(RESCUED), "{}", asked.stderr);
    assert!(asked.stderr.contains("ecp challenge "), "{}", asked.stderr);
    // The same stack lets the unenrolled user in (nouserok) while ecpd
    // runs: their refusal above was ecp failing closed, not the password.
    let unenrolled = console_login(
        &setup,
        Some(&daemon_socket),
        &user.name,
        &["tty=/dev/tty1"],
        "User-pw-1",
    );
    assert!(ok(&unenrolled), "{}", unenrolled.stderr);
}
