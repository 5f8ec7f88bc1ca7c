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

/// A copy of /etc for binding over the real one in a namespace, with the
/// PAM stack in `pam_d` and root's password set to `password`. All of
/// /etc, not /etc/shadow alone: other tests add and remove users
/// meanwhile, and useradd's rename of /etc/shadow or /etc/passwd drops a
/// bind mount made over that file in another namespace.
fn etc_with(work: &Path, pam_d: &Path, password: &str) -> PathBuf {
    let etc = work.join("etc");
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success(), "cp -a {}", from.display());
    };
    // Parallel tests add and remove users meanwhile: a lock or temporary
    // file can vanish under cp, so a failed copy is tried again.
    let mut tries = 0;
    while !Command::new("cp")
        .arg("-a")
        .arg("/etc")
        .arg(&etc)
        .status()
        .unwrap()
        .success()
    {
        tries += 1;
        assert!(tries < 5, "cp -a /etc failed {tries} times");
        std::fs::remove_dir_all(&etc).unwrap();
    }
    std::fs::remove_dir_all(etc.join("pam.d")).unwrap();
    copy(pam_d, &etc.join("pam.d"));
    let hash = ecp_tests::openssl(&["passwd", "-6", password]);
    let shadow = std::fs::read_to_string(etc.join("shadow")).unwrap();
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
    std::fs::write(etc.join("shadow"), text).unwrap();
    etc
}

/// `pamtester login USER authenticate` through real libpam, with the
/// setup's /etc and modules, and PAM items `items` (tty=…, rhost=…). The system bus socket
/// is `bus_socket` bound at /run/dbus/system_bus_socket, or absent.
fn console_login(
    setup: &LoginSetup,
    bus_socket: Option<&Path>,
    user: &str,
    items: &[&str],
    password: &str,
) -> Run {
    console_login_by(setup, bus_socket, "", user, items, password)
}

/// [`console_login`] with pamtester started by `runner` (shell words, as
/// "setpriv --ruid=65534" for a program a user started set-uid).
fn console_login_by(
    setup: &LoginSetup,
    bus_socket: Option<&Path>,
    runner: &str,
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
         mount --bind {etc} /etc\n\
         mount --bind {modules} {security}\n\
         mount -t tmpfs ecp-test-run /run\n\
         mkdir /run/dbus\n\
         {bind_bus}\
         exec {runner} pamtester -v{items} login {user} authenticate\n",
        etc = shell_quote(&setup.etc),
        modules = shell_quote(&setup.modules),
        security = shell_quote(&security_dir()),
    );
    run_command(
        &format!("pamtester{items} login {user}"),
        mount_namespace_shell(&script),
        Some(format!("{password}\n").as_bytes()),
    )
}

struct LoginSetup {
    _work: tempfile::TempDir,
    etc: PathBuf,
    modules: PathBuf,
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
        etc: etc_with(work.path(), &pam_d, ROOT_PASSWORD),
        _work: work,
    };
    let ok = |run: &Run| run.code == 0 && run.stdout.contains("successfully authenticated");

    // No system bus at all, ecpd down with it: root at tty1 with the
    // right password gets in, and is told why.
    let rescued = console_login(&setup, None, "root", &["tty=/dev/tty1"], ROOT_PASSWORD);
    assert!(
        ok(&rescued),
        "root at the console was not let in: {}",
        rescued.stderr
    );
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
    // A program a user started (real uid not 0) never gets the rescue,
    // even when it says tty1.
    let set_uid = console_login_by(
        &setup,
        None,
        "setpriv --ruid=65534",
        "root",
        &["tty=/dev/tty1"],
        ROOT_PASSWORD,
    );
    assert!(!ok(&set_uid) && !set_uid.stderr.contains(RESCUED));

    // The name held by a process that is not ecpd's (a loosened bus
    // policy): ecpd is not "not running", so no rescue.
    let homes = tempfile::tempdir().unwrap();
    std::fs::set_permissions(homes.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let impostor = TestUser::create(homes.path());
    let held_bus = TestBus::letting_own(&impostor.name);
    let held = TestDaemon::start_on(held_bus, "", Some((impostor.uid, impostor.gid)));
    let held_socket = held.bus.dir().join("system_bus_socket");
    let untrusted = console_login(
        &setup,
        Some(&held_socket),
        "root",
        &["tty=/dev/tty1"],
        ROOT_PASSWORD,
    );
    assert!(!ok(&untrusted) && !untrusted.stderr.contains(RESCUED));
    drop(held);

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

    // ecpd hung (stopped, still owning its name): not "not running";
    // root waits out the module's timeout and is refused.
    let pid = daemon.pid().to_string();
    let stop = |signal: &str| {
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    };
    stop("-STOP");
    let hung = console_login(
        &setup,
        Some(&daemon_socket),
        "root",
        &["tty=/dev/tty1"],
        ROOT_PASSWORD,
    );
    stop("-CONT");
    assert!(
        !ok(&hung) && !hung.stderr.contains(RESCUED),
        "{}",
        hung.stderr
    );
}

#[test]
fn ecpctl_says_why_ecpd_cannot_be_reached_and_what_to_run() {
    // D-Bus tries to start ecpd and fails: what a host without systemd
    // showed as "Launch helper exited … 1" or "zbus FDO error".
    let services = tempfile::tempdir().unwrap();
    std::fs::write(
        services.path().join("org.ecp.Ecpd1.service"),
        "[D-BUS Service]\nName=org.ecp.Ecpd1\nExec=/bin/false\n",
    )
    .unwrap();
    let failing = TestBus::start_with(None, Some(services.path()));
    let ecpctl = |bus: &str, args: &[&str]| {
        let mut all = vec!["--bus", bus];
        all.extend_from_slice(args);
        ecp_tests::run(&binary("ecpctl"), &all)
    };
    let status = ecpctl(&failing.address, &["status"]);
    assert_eq!(status.code, 5, "{}", status.stderr);
    assert!(
        status
            .stderr
            .contains("ecpd is not running, and D-Bus could not start it")
            && if Path::new("/run/systemd/system").is_dir() {
                status.stderr.contains("systemctl start ecpd")
            } else {
                status.stderr.contains("without systemd")
                    && status.stderr.contains("runuser -u _ecpd -- /usr/sbin/ecpd")
            },
        "{}",
        status.stderr
    );
    let empty_pam_dir = tempfile::tempdir().unwrap();
    let doctor = ecpctl(
        &failing.address,
        &[
            "doctor",
            "--pam-dir",
            empty_pam_dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(doctor.code, 1);
    assert!(
        doctor.stdout.contains(
            "FAIL  ecpd cannot be reached: ecpd is not running, and D-Bus could not start it"
        ),
        "{}",
        doctor.stdout
    );
    assert!(!doctor.stdout.contains("FDO error"), "{}", doctor.stdout);

    // Nothing would start it.
    let bare = TestBus::start();
    let status = ecpctl(&bare.address, &["status"]);
    assert_eq!(status.code, 5);
    assert!(
        status
            .stderr
            .contains("ecpd is not running, and D-Bus has no activation file"),
        "{}",
        status.stderr
    );

    // No bus at all.
    let gone = format!("unix:path={}", services.path().join("no-socket").display());
    let status = ecpctl(&gone, &["list"]);
    assert_eq!(status.code, 5);
    assert!(
        status
            .stderr
            .contains("is not running or refuses the connection")
            && status.stderr.contains("start D-Bus first"),
        "{}",
        status.stderr
    );
}

/// `ecpctl --bus BUS doctor ARGS` as root in a private mount namespace
/// where pam_ecp.so is installed in the machine's module directory (the
/// test does not install it for real), with HOME in `home`.
fn doctor_with_module_installed(modules: &Path, home: &Path, bus: &str, args: &[&str]) -> Run {
    let quoted: String = args.iter().map(|a| format!(" '{a}'")).collect();
    let script = format!(
        "set -e\nmount --bind {modules} {security}\nexport HOME={home}\nexec {ecpctl} --bus '{bus}' doctor{quoted}\n",
        modules = shell_quote(modules),
        security = shell_quote(&security_dir()),
        home = shell_quote(home),
        ecpctl = shell_quote(&binary("ecpctl")),
    );
    run_command(
        &format!("ecpctl doctor{quoted}"),
        mount_namespace_shell(&script),
        None,
    )
}

#[test]
fn doctor_as_root_gates_on_the_host_and_checks_a_named_user_as_that_user() {
    if !running_as_root() {
        eprintln!("skipped: needs root (mount namespace, test users)");
        return;
    }
    let daemon = TestDaemon::start("");
    let keyed = daemon.keyed_user("doctor pass", &[], Some("laptop"));
    let work = tempfile::tempdir().unwrap();
    let modules = modules_with_ecp(work.path());
    let root_home = work.path().join("root-home");
    std::fs::create_dir(&root_home).unwrap();
    let pam_d = work.path().join("pam.d");
    std::fs::create_dir(&pam_d).unwrap();
    std::fs::write(
        pam_d.join("common-auth"),
        "auth [success=1 default=ignore] pam_unix.so nullok\n\
         auth requisite pam_deny.so\n\
         auth required pam_permit.so\n",
    )
    .unwrap();
    std::fs::write(
        pam_d.join("sudo"),
        "auth requisite pam_unix.so\nauth required pam_ecp.so mode=keyfile\n",
    )
    .unwrap();
    let pam_arg = ["--pam-dir", pam_d.to_str().unwrap()];

    // Root has no key file and no certificate; the host is fine: exit 0.
    let host = doctor_with_module_installed(&modules, &root_home, daemon.address(), &pam_arg);
    assert_eq!(host.code, 0, "{}", host.stdout);
    assert!(
        host.stdout.contains("checked this host only"),
        "{}",
        host.stdout
    );
    assert!(!host.stdout.contains("FAIL"), "{}", host.stdout);

    // --user: that user's key file, found in their home and read as them,
    // and their enrollment.
    let user = &keyed.user.name;
    let named = doctor_with_module_installed(
        &modules,
        &root_home,
        daemon.address(),
        &[pam_arg[0], pam_arg[1], "--user", user],
    );
    assert_eq!(named.code, 0, "{}", named.stdout);
    let key = keyed.user.home.join(".config/ecp/private_key.pem");
    assert!(
        named.stdout.contains(&format!(
            "key file {} is present, private and encrypted",
            key.display()
        )) && named
            .stdout
            .contains(&format!("certificate \"laptop\" of {user} enrolled")),
        "{}",
        named.stdout
    );

    // A user with no key file here (it is on their laptop) is a warning;
    // one with nothing enrolled is a failure.
    let bare = TestUser::create(daemon.bus.dir());
    let unenrolled = doctor_with_module_installed(
        &modules,
        &root_home,
        daemon.address(),
        &[pam_arg[0], pam_arg[1], "--user", &bare.name],
    );
    assert_eq!(unenrolled.code, 1, "{}", unenrolled.stdout);
    assert!(
        unenrolled
            .stdout
            .contains(&format!("warn  no key file for {} at ", bare.name))
            && unenrolled
                .stdout
                .contains(&format!("FAIL  no certificate enrolled for {}", bare.name)),
        "{}",
        unenrolled.stdout
    );

    // The README's lines appended after "@include common-auth" instead of
    // in its place: the password is asked twice, and doctor says so.
    std::fs::write(
        pam_d.join("sudo"),
        "@include common-auth\nauth requisite pam_unix.so\nauth required pam_ecp.so mode=keyfile\n",
    )
    .unwrap();
    let appended = doctor_with_module_installed(&modules, &root_home, daemon.address(), &pam_arg);
    assert_eq!(appended.code, 1, "{}", appended.stdout);
    assert!(
        appended.stdout.contains("the password is asked twice"),
        "{}",
        appended.stdout
    );
}

#[test]
fn root_test_login_for_a_user_signs_with_that_users_key_read_as_that_user() {
    if !running_as_root() {
        eprintln!("skipped: needs root (test users)");
        return;
    }
    let daemon = TestDaemon::start("challenges_per_user_per_minute = 0\n");
    let keyed = daemon.keyed_user("user pass", &[], Some("laptop"));
    let user = &keyed.user.name;
    // As the README has it, right after enrolling: root names the user.
    let test_login = || {
        daemon.ecpctl(&[
            "test-login",
            user,
            "--passphrase-file",
            keyed.pass_file.to_str().unwrap(),
        ])
    };
    let login = test_login();
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stdout.contains(&format!("login for {user} accepted")));
    let key = keyed.user.home.join(".config/ecp/private_key.pem");
    assert!(
        login
            .stderr
            .contains(&format!("using {user}'s key file {}", key.display())),
        "{}",
        login.stderr
    );

    // Read with the user's identity: a key in a directory the user cannot
    // enter (root's, 0700) is refused although root could read it.
    let keydir = keyed.user.home.join(".config/ecp");
    let status = Command::new("chown")
        .args(["-R", "root:root"])
        .arg(&keydir)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&keydir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let refused = test_login();
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("permission denied"),
        "{}",
        refused.stderr
    );
}

/// The Debian prerm, run by /bin/sh as dpkg runs it, on a scratch PAM
/// directory and with a stand-in pam-auth-update that records its call
/// and takes pam_ecp out of common-auth as the real one does: removal is
/// refused, before anything changes, while a hand-made stack still uses
/// pam_ecp (a comment or a dpkg leftover does not count); and refused
/// after it when pam-auth-update left the lines in place (it does so for
/// a common-auth with local changes); an upgrade goes on.
#[test]
fn the_debian_package_refuses_removal_while_a_hand_made_stack_uses_the_module() {
    let work = tempfile::tempdir().unwrap();
    let pam_d = work.path().join("pam.d");
    std::fs::create_dir(&pam_d).unwrap();
    std::fs::write(
        pam_d.join("common-auth"),
        "auth [success=1 default=ignore] pam_unix.so nullok\n\
         auth requisite pam_deny.so\nauth required pam_permit.so\n\
         auth required pam_ecp.so nouserok root_console_rescue\n",
    )
    .unwrap();
    std::fs::write(pam_d.join("login"), "# auth required pam_ecp.so (tried)\n").unwrap();
    std::fs::write(pam_d.join("sudo"), "@include common-auth\n").unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = work.path().join("calls");
    // $KEEP set: leave common-auth alone, as pam-auth-update does with a
    // locally changed file.
    std::fs::write(
        bin.join("pam-auth-update"),
        format!(
            "#!/bin/sh\necho \"$@\" >> {calls}\n\
             [ -n \"$KEEP\" ] || sed -i '/pam_ecp/d' {common}\n",
            calls = calls.display(),
            common = pam_d.join("common-auth").display()
        ),
    )
    .unwrap();
    let common_auth = std::fs::read_to_string(pam_d.join("common-auth")).unwrap();
    std::fs::write(
        pam_d.join("sshd.dpkg-old"),
        "auth required pam_ecp.so mode=challenge\n",
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("pam-auth-update"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let prerm = std::fs::read_to_string(packaged("debian/prerm"))
        .unwrap()
        .replace("/etc/pam.d/", &format!("{}/", pam_d.display()))
        .replace("/run/systemd/system", "/nonexistent/systemd");
    let script = work.path().join("prerm");
    std::fs::write(&script, prerm).unwrap();
    let run_keeping = |arg: &str, keep: &str| {
        let _ = std::fs::remove_file(&calls);
        std::fs::write(pam_d.join("common-auth"), &common_auth).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(&script)
            .arg(arg)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("KEEP", keep);
        let run = run_command(&format!("prerm {arg}"), cmd, None);
        let called = std::fs::read_to_string(&calls).unwrap_or_default();
        (run, called)
    };
    let run = |arg: &str| run_keeping(arg, "");

    // Only pam-auth-update's files name the module: removed from them.
    let (ok, called) = run("remove");
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(called.trim(), "--package --remove ecp");
    // common-auth with local changes: pam-auth-update leaves it (and the
    // module line in it); the removal is refused, naming it.
    let (kept, called) = run_keeping("remove", "1");
    assert_eq!(kept.code, 1, "{}", kept.stderr);
    assert_eq!(called.trim(), "--package --remove ecp");
    assert!(
        kept.stderr.contains(&format!(
            "did not take pam_ecp.so out of {}/common-auth",
            pam_d.display()
        )),
        "{}",
        kept.stderr
    );

    // A hand-edited sshd stack: refused, named, nothing touched.
    std::fs::write(
        pam_d.join("sshd"),
        "auth requisite pam_unix.so\nauth required pam_ecp.so mode=challenge\n",
    )
    .unwrap();
    let (refused, called) = run("remove");
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains(&format!("{}/sshd", pam_d.display())),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("/login"), "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("pam.d/common-auth"),
        "{}",
        refused.stderr
    );
    assert_eq!(called, "", "pam-auth-update ran before the refusal");
    // An upgrade keeps the module: nothing to refuse.
    let (upgrade, called) = run("upgrade");
    assert_eq!(upgrade.code, 0);
    assert_eq!(called, "");
}

/// Every pam_ecp option the module reads is in the README's table and in
/// pam_ecp(8), and mode=auto is described in the same words in both (an
/// admin had found certfile= and allow_remote_keyfile missing, and two
/// different accounts of mode=auto).
#[test]
fn the_option_tables_list_every_option_and_say_the_same_of_mode_auto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = std::fs::read_to_string(root.join("pam_ecp/src/options.rs")).unwrap();
    let options: Vec<&str> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(\""))
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name))
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    for expected in [
        "certfile",
        "allow_remote_keyfile",
        "root_console_rescue",
        "mode",
    ] {
        assert!(options.contains(&expected), "{options:?}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = readme
        .split("### pam_ecp options")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("README has a pam_ecp options table");
    let man = std::fs::read_to_string(packaged("man/pam_ecp.8")).unwrap();
    for option in &options {
        assert!(
            table.contains(&format!("| `{option}")),
            "README's option table lacks {option}"
        );
        assert!(
            [".B ", ".BR ", ".BI "]
                .iter()
                .any(|macro_| man.contains(&format!("\n{macro_}{option}"))),
            "pam_ecp.8 lacks {option}"
        );
    }
    // The same account of mode=auto, once roff and markdown are taken off.
    let plain = |text: &str| -> String {
        text.lines()
            .map(|l| {
                l.trim_start_matches(".BR ")
                    .trim_start_matches(".B ")
                    .trim_start_matches(".IP")
                    .replace(['`', '\\'], "")
            })
            .collect::<Vec<_>>()
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let auto = "the invoking user's agent first, when SSH_AUTH_SOCK is set and the login is not \
                from the network (used only if it holds a key ecpd lets sign); without an agent, \
                the key file, only where logind vouches for the session as local and the file \
                exists; otherwise a challenge to paste. A login from the network (PAM_RHOST set) \
                always gets a challenge.";
    assert!(plain(table).contains(auto), "README's mode=auto differs");
    assert!(plain(&man).contains(auto), "pam_ecp.8's mode=auto differs");
}

/// systemd's Manager on a test bus: LoadUnit answers with the unit's path.
struct FakeManager;

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl FakeManager {
    fn load_unit(&self, name: &str) -> zbus::fdo::Result<zbus::OwnedObjectPath> {
        assert_eq!(name, "ecpd.service");
        Ok(zbus::OwnedObjectPath::try_from(FAKE_UNIT_PATH).unwrap())
    }
}

const FAKE_UNIT_PATH: &str = "/org/freedesktop/systemd1/unit/ecpd_2eservice";

/// ecpd.service as systemd would describe it.
struct FakeUnit {
    load: &'static str,
    active: &'static str,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl FakeUnit {
    #[zbus(property)]
    fn load_state(&self) -> String {
        self.load.into()
    }
    #[zbus(property)]
    fn active_state(&self) -> String {
        self.active.into()
    }
}

/// What pam_ecp with root_console_rescue does for root at tty1 when ecpd
/// is activatable but never comes up (its activation runs a sleep, as a
/// unit whose start job fails looks to dbus-daemon, which is not told),
/// with systemd on the bus (owned by root, as this test runs) describing
/// ecpd.service as `unit` (load, active), or no systemd at all.
fn rescue_with_systemd_saying(unit: Option<(&'static str, &'static str)>) -> Run {
    let services = tempfile::tempdir().unwrap();
    std::fs::write(
        services.path().join("org.ecp.Ecpd1.service"),
        "[D-BUS Service]\nName=org.ecp.Ecpd1\nExec=/bin/sleep 20\n",
    )
    .unwrap();
    let bus = TestBus::start_with(
        Some(&ecp_tests::daemon::policy_for(
            "root",
            "<allow own=\"org.freedesktop.systemd1\"/>\
             <allow send_destination=\"org.freedesktop.systemd1\"/>",
        )),
        Some(services.path()),
    );
    let _systemd = unit.map(|(load, active)| {
        zbus::block_on(async {
            zbus::connection::Builder::address(bus.address.as_str())
                .name("org.freedesktop.systemd1")
                .serve_at("/org/freedesktop/systemd1", FakeManager)
                .serve_at(FAKE_UNIT_PATH, FakeUnit { load, active })
                .build()
                .await
                .unwrap()
        })
    });
    let pam = ecp_tests::pam::PamServices::new();
    pam.add(
        "console",
        &format!(
            "auth required $MODULE bus={} timeout=2 root_console_rescue\n\
             auth required pam_permit.so\n",
            bus.address
        ),
    );
    pam.pamtester_with_items("console", "root", &["authenticate"], &["tty=/dev/tty1"], "")
}

#[test]
fn a_start_that_never_answers_is_rescued_only_when_systemd_says_the_unit_failed() {
    if !running_as_root() {
        eprintln!("skipped: the rescue is for root, and the fake systemd must be owned by root");
        return;
    }
    let rescued = |run: &Run| run.code == 0 && run.stderr.contains(RESCUED);
    // No systemd: a start that times out is no proof that ecpd is down.
    let no_systemd = rescue_with_systemd_saying(None);
    assert!(!rescued(&no_systemd), "{}", no_systemd.stderr);
    assert_ne!(no_systemd.code, 0);
    // systemd gave up on the unit, or will not start it at all.
    let failed = rescue_with_systemd_saying(Some(("loaded", "failed")));
    assert!(rescued(&failed), "{}", failed.stderr);
    let masked = rescue_with_systemd_saying(Some(("masked", "inactive")));
    assert!(rescued(&masked), "{}", masked.stderr);
    // Starting, or running: not down.
    for active in ["activating", "active"] {
        let starting = rescue_with_systemd_saying(Some(("loaded", active)));
        assert!(!rescued(&starting), "{active}: {}", starting.stderr);
        assert_ne!(starting.code, 0);
    }
}
