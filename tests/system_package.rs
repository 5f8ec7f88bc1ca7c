//! The Debian package on the machine, as an admin would use it: build the
//! .deb, install it with dpkg, run the system bus with the installed policy
//! and ecpd as its unit's ExecStart would, enroll a user, log in through a
//! PAM service of our own with the installed module, then purge and check
//! what is left.
//!
//! This changes the machine (it installs a package), so it runs only when
//! asked: in CI (CI=true, machines are disposable) or with
//! ECP_SYSTEM_TEST=1. It needs root and cargo-deb.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ecp_tests::daemon::{running_as_root, TestUser};
use ecp_tests::pam::PamServices;
use ecp_tests::Run;

const SYSTEM_SOCKET: &str = "/run/dbus/system_bus_socket";
const MODULE: &str = "/usr/lib/x86_64-linux-gnu/security/pam_ecp.so";

fn wanted() -> bool {
    let on = |v: &str| {
        std::env::var(v)
            .map(|x| x == "1" || x == "true")
            .unwrap_or(false)
    };
    on("CI") || on("ECP_SYSTEM_TEST")
}

fn sh(program: &str, args: &[&str]) -> Run {
    ecp_tests::run(Path::new(program), args)
}

struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A process the test started indirectly (D-Bus activation), killed when
/// the test ends however it ends.
struct KilledPid(u32);

impl Drop for KilledPid {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

/// Waits until ecpd owns its name on the system bus. Asked of the bus
/// daemon with a short timeout per call, so that one slow answer on a
/// machine busy compiling cannot use up the wait; the wait itself is long
/// (two minutes) and ends at once if ecpd exits.
fn wait_for_bus_name(ecpd: &mut Killed) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(child) = ecpd.0.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ecpd exited before it owned its bus name: {status}");
            }
        }
        let owned = sh(
            "/usr/bin/dbus-send",
            &[
                "--system",
                "--print-reply",
                "--reply-timeout=2000",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.ecp.Ecpd1",
            ],
        );
        if owned.code == 0 && owned.stdout.contains("boolean true") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ecpd did not come up on the system bus: {}",
            owned.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts the system bus if none runs; returns its pid if we started it.
fn ensure_system_bus() -> Option<u32> {
    if std::os::unix::net::UnixStream::connect(SYSTEM_SOCKET).is_ok() {
        return None;
    }
    std::fs::create_dir_all("/run/dbus").unwrap();
    let _ = std::fs::remove_file("/run/dbus/pid");
    let _ = std::fs::remove_file(SYSTEM_SOCKET);
    let run = sh(
        "/usr/bin/dbus-daemon",
        &["--system", "--fork", "--print-pid"],
    );
    assert_eq!(run.code, 0, "dbus-daemon --system: {}", run.stderr);
    Some(run.stdout.trim().parse().unwrap())
}

fn installed_paths() -> Vec<&'static str> {
    vec![
        "/usr/sbin/ecpd",
        "/usr/bin/ecpctl",
        "/usr/bin/ecpctl-askpass",
        MODULE,
        "/etc/ecp/ecpd.toml",
        "/usr/share/dbus-1/system.d/org.ecp.Ecpd1.conf",
        "/usr/share/dbus-1/system-services/org.ecp.Ecpd1.service",
        "/lib/systemd/system/ecpd.service",
        "/usr/share/pam-configs/ecp",
        "/usr/share/man/man8/pam_ecp.8.gz",
        "/usr/share/man/man8/ecpd.8.gz",
        "/usr/share/man/man1/ecpctl.1.gz",
        "/usr/share/man/man5/ecpd.toml.5.gz",
        "/usr/share/bash-completion/completions/ecpctl",
        "/usr/share/zsh/vendor-completions/_ecpctl",
        "/usr/share/fish/vendor_completions.d/ecpctl.fish",
        "/usr/share/doc/ecp/examples/sudo.example",
        "/usr/share/doc/ecp/SECURITY.md",
        "/usr/share/doc/ecp/docs/FORMAT.md",
    ]
}

#[test]
fn debian_package_installs_works_and_purges_cleanly() {
    if !wanted() {
        eprintln!("skipped: installs a package on this machine; set ECP_SYSTEM_TEST=1 (CI does)");
        return;
    }
    assert!(running_as_root(), "the system test needs root");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();

    // Build and install.
    let make = Command::new("make")
        .arg("package")
        .current_dir(root)
        .status()
        .unwrap();
    assert!(make.success(), "make package failed");
    let deb = std::fs::read_dir(root.join("target/debian"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb in target/debian");
    let install = sh("/usr/bin/dpkg", &["-i", deb.to_str().unwrap()]);
    assert_eq!(install.code, 0, "{}", install.stderr);
    assert!(
        install.stderr.contains("not enabled in any PAM stack"),
        "{}",
        install.stderr
    );

    for path in installed_paths() {
        assert!(Path::new(path).exists(), "{path} not installed");
    }
    assert_eq!(std::fs::metadata(MODULE).unwrap().mode() & 0o777, 0o644);
    let ecpd_user = sh("/usr/bin/id", &["-u", "_ecpd"]);
    assert_eq!(ecpd_user.code, 0, "no _ecpd account");
    let ecpd_uid: u32 = ecpd_user.stdout.trim().parse().unwrap();
    let state = std::fs::metadata("/var/lib/ecpd").unwrap();
    assert_eq!((state.uid(), state.mode() & 0o777), (ecpd_uid, 0o700));
    // The daemon starts at boot: the unit is enabled (deb-systemd-helper
    // writes the link even where systemd is not running).
    const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/ecpd.service";
    if Path::new("/usr/bin/deb-systemd-helper").exists() {
        assert!(Path::new(WANTS).is_symlink(), "ecpd.service is not enabled");
    }
    // The module is in no PAM stack until an admin puts it there.
    let grep = sh("/usr/bin/grep", &["-rl", "pam_ecp", "/etc/pam.d"]);
    assert!(
        grep.stdout.trim().is_empty(),
        "installing enabled the module: {}",
        grep.stdout
    );
    // The unit is well-formed.
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let verify = sh(
            "/usr/bin/systemd-analyze",
            &["verify", "/lib/systemd/system/ecpd.service"],
        );
        assert!(
            !verify.stderr.contains("ecpd.service:"),
            "{}",
            verify.stderr
        );
    }
    let check = sh(
        "/usr/sbin/ecpd",
        &["--check-config", "--config", "/etc/ecp/ecpd.toml"],
    );
    assert_eq!(check.code, 0, "{}", check.stderr);

    // The system bus with the installed policy and activation file. Here
    // (CI) no systemd runs: the first call starts ecpd through D-Bus's
    // launch helper as the activation file says, as a container or an
    // init-less host gets it.
    let started_bus = ensure_system_bus();
    if started_bus.is_none() {
        // Running since before the install: it must read the new files.
        sh(
            "/usr/bin/dbus-send",
            &[
                "--system",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.ReloadConfig",
            ],
        )
        .ok();
    }
    let status = sh("/usr/bin/ecpctl", &["status"]);
    assert_eq!(
        status.code, 0,
        "activation did not start ecpd: {}",
        status.stderr
    );
    let mut ecpd = Killed(None);
    wait_for_bus_name(&mut ecpd);
    let pid = sh(
        "/usr/bin/dbus-send",
        &[
            "--system",
            "--print-reply=literal",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetConnectionUnixProcessID",
            "string:org.ecp.Ecpd1",
        ],
    )
    .ok();
    let pid: u32 = pid
        .split_whitespace()
        .last()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid for org.ecp.Ecpd1: {pid}"));
    let activated = KilledPid(pid);
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = proc_status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == ecpd_uid.to_string()),
        "ecpd does not run as _ecpd: {uid_line}"
    );

    // Enroll a user the way the README says, and log in through PAM with
    // the installed module under its default options.
    let homes = tempfile::tempdir().unwrap();
    std::fs::set_permissions(homes.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = TestUser::create(homes.path());
    let pass = homes.path().join("pass");
    std::fs::write(&pass, "system test passphrase\n").unwrap();
    let enroll = sh(
        "/usr/bin/ecpctl",
        &[
            "enroll",
            &user.name,
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--label",
            "system-test",
        ],
    );
    assert_eq!(enroll.code, 0, "{}", enroll.stderr);
    let key = user.home.join(".config/ecp/private_key.pem");
    assert_eq!(std::fs::metadata(&key).unwrap().uid(), user.uid);

    let services = PamServices::new();
    services.add(
        "ecp-system",
        // mode=keyfile: no logind session here vouches for a local login,
        // so mode=auto would ask for a challenge instead.
        "auth required pam_ecp.so mode=keyfile\naccount required pam_ecp.so\n",
    );
    let login = services.pamtester(
        "ecp-system",
        &user.name,
        &["authenticate", "acct_mgmt"],
        "",
        "system test passphrase\n",
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let wrong = services.pamtester("ecp-system", &user.name, &["authenticate"], "", "wrong\n");
    assert_eq!(wrong.code, 1);

    let doctor = sh(
        "/usr/bin/ecpctl",
        &[
            "doctor",
            "--user",
            &user.name,
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.stdout, doctor.stderr);
    assert!(
        doctor
            .stdout
            .contains(&format!("PAM module installed: {MODULE}")),
        "{}",
        doctor.stdout
    );

    // A stack made by hand still naming the module: removal is refused
    // and the package stays installed.
    const HANDMADE: &str = "/etc/pam.d/ecp-system-test";
    std::fs::write(HANDMADE, "auth required pam_ecp.so mode=challenge\n").unwrap();
    let refused = sh("/usr/bin/dpkg", &["--remove", "ecp"]);
    let _ = std::fs::remove_file(HANDMADE);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains(HANDMADE), "{}", refused.stderr);
    // dpkg keeps the package (its selection becomes "deinstall").
    let still = sh("/usr/bin/dpkg-query", &["-W", "-f=${Status}", "ecp"]);
    assert!(still.stdout.ends_with(" ok installed"), "{}", still.stdout);
    assert!(
        Path::new(MODULE).exists(),
        "the module went despite the refusal"
    );

    // Purge: nothing left but the _ecpd account, which Debian policy keeps.
    drop(ecpd.0.take());
    drop(activated);
    let purge = sh("/usr/bin/dpkg", &["--purge", "ecp"]);
    assert_eq!(purge.code, 0, "{}", purge.stderr);
    for path in installed_paths()
        .into_iter()
        .chain(["/var/lib/ecpd", "/etc/ecp"])
    {
        assert!(!Path::new(path).exists(), "{path} left behind after purge");
    }
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants/ecpd.service");
    assert!(!wants.is_symlink(), "the unit is still enabled after purge");
    assert_eq!(
        sh("/usr/bin/id", &["-u", "_ecpd"]).code,
        0,
        "the _ecpd account should be kept"
    );
    let status = sh("/usr/bin/dpkg-query", &["-W", "-f=${Status}", "ecp"]);
    assert!(
        status.code != 0 || status.stdout.contains("not-installed"),
        "{}",
        status.stdout
    );

    if let Some(pid) = started_bus {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
}

/// The account file both packages install: systemd-sysusers makes the
/// daemon's account from it (here in a scratch root, not the machine's).
#[test]
fn the_sysusers_file_declares_the_daemon_account() {
    let Ok(sysusers) = which("systemd-sysusers") else {
        eprintln!("skipped: no systemd-sysusers");
        return;
    };
    let root_dir = tempfile::tempdir().unwrap();
    let etc = root_dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    for file in ["passwd", "group", "shadow", "gshadow"] {
        std::fs::write(etc.join(file), "").unwrap();
    }
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/sysusers.d/ecp.conf");
    let status = Command::new(sysusers)
        .arg("--root")
        .arg(root_dir.path())
        .arg(&conf)
        .status()
        .unwrap();
    assert!(status.success());
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("_ecpd:"))
        .unwrap_or_else(|| panic!("no _ecpd in {passwd}"));
    let fields: Vec<&str> = line.split(':').collect();
    assert_eq!(fields[5], "/var/lib/ecpd", "{line}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{line}");
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system account: {line}");
    assert!(std::fs::read_to_string(etc.join("group"))
        .unwrap()
        .contains("_ecpd:"));
}

/// The full path of `program` on PATH.
fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn make_install_stages_every_file_under_destdir() {
    if !wanted() {
        eprintln!("skipped: builds a release; set ECP_SYSTEM_TEST=1 (CI does)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let stage = tempfile::tempdir().unwrap();
    let status = Command::new("make")
        .arg("install")
        .arg(format!("DESTDIR={}", stage.path().display()))
        .args(["PREFIX=/usr/local", "PAMDIR=/usr/lib/security"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "make install failed");
    for path in [
        "usr/local/bin/ecpctl",
        "usr/local/bin/ecpctl-askpass",
        "usr/local/sbin/ecpd",
        "usr/lib/security/pam_ecp.so",
        "etc/ecp/ecpd.toml",
        "usr/local/share/dbus-1/system.d/org.ecp.Ecpd1.conf",
        "usr/local/share/dbus-1/system-services/org.ecp.Ecpd1.service",
        "lib/systemd/system/ecpd.service",
        "usr/lib/sysusers.d/ecp.conf",
        "usr/local/share/man/man8/pam_ecp.8",
        "usr/local/share/man/man5/ecpd.toml.5",
        "usr/local/share/bash-completion/completions/ecpctl",
    ] {
        assert!(stage.path().join(path).exists(), "{path} not staged");
    }
    let unit =
        std::fs::read_to_string(stage.path().join("lib/systemd/system/ecpd.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/sbin/ecpd "), "{unit}");
}

/// `make rpm`: the RPM for the RHEL family, built here from the release
/// binaries the .deb uses. Every file in its Fedora place, the state
/// directory owned by the daemon's account, the scriptlets that create the
/// account, load the SELinux module and relabel, and rpmlint without
/// errors (its filter file says why each remaining warning is one).
#[test]
fn make_rpm_builds_a_lint_clean_package_with_every_file_in_place() {
    if !wanted() {
        eprintln!("skipped: builds a release; set ECP_SYSTEM_TEST=1 (CI does)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = Command::new("make")
        .arg("rpm")
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "make rpm failed");
    let version = env!("CARGO_PKG_VERSION");
    let rpm = root.join(format!("target/rpm/ecp-{version}-1.x86_64.rpm"));
    let srpm = root.join(format!("target/rpm/ecp-{version}-1.src.rpm"));
    assert!(
        rpm.exists() && srpm.exists(),
        "{} or its source RPM missing",
        rpm.display()
    );
    let rpm_arg = rpm.to_str().unwrap();

    let listing = sh("/usr/bin/rpm", &["-qplv", rpm_arg]).ok();
    let entry = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")) || l.contains(&format!(" {path} -> ")))
            .unwrap_or_else(|| panic!("{path} not in the RPM:\n{listing}"))
            .to_owned()
    };
    for path in [
        "/usr/bin/ecpctl",
        "/usr/bin/ecpctl-askpass",
        "/usr/sbin/ecpd",
        "/usr/lib64/security/pam_ecp.so",
        "/etc/ecp/ecpd.toml",
        "/usr/lib/systemd/system/ecpd.service",
        "/usr/lib/sysusers.d/ecp.conf",
        "/usr/share/dbus-1/system.d/org.ecp.Ecpd1.conf",
        "/usr/share/dbus-1/system-services/org.ecp.Ecpd1.service",
        "/usr/share/man/man1/ecpctl.1",
        "/usr/share/man/man5/ecpd.toml.5",
        "/usr/share/man/man8/ecpd.8",
        "/usr/share/man/man8/pam_ecp.8",
        "/usr/share/bash-completion/completions/ecpctl",
        "/usr/share/selinux/packages/targeted/ecp.pp.bz2",
        "/usr/share/selinux/devel/include/distributed/ecp.if",
        "/etc/authselect/custom/ecp/system-auth",
        "/etc/authselect/custom/ecp/password-auth",
        "/etc/authselect/custom/ecp/README",
        "/etc/authselect/custom/ecp/REQUIREMENTS",
        "/usr/share/licenses/ecp/LICENSE",
        "/usr/share/doc/ecp/README.md",
        "/usr/share/doc/ecp/docs/FORMAT.md",
        "/usr/share/doc/ecp/examples/sshd.example",
    ] {
        entry(path);
    }
    let state = entry("/var/lib/ecpd");
    assert!(
        state.starts_with("drwx------") && state.contains(" _ecpd ") && state.contains("_ecpd "),
        "{state}"
    );
    for shared in [
        "nsswitch.conf",
        "postlogin",
        "smartcard-auth",
        "fingerprint-auth",
    ] {
        assert!(entry(&format!("/etc/authselect/custom/ecp/{shared}"))
            .contains(&format!("-> /usr/share/authselect/default/sssd/{shared}")));
    }

    let config = sh("/usr/bin/rpm", &["-qpc", rpm_arg]).ok();
    for path in [
        "/etc/ecp/ecpd.toml",
        "/etc/authselect/custom/ecp/system-auth",
        "/etc/authselect/custom/ecp/password-auth",
        "/etc/authselect/custom/ecp/switchable-auth",
    ] {
        assert!(
            config.lines().any(|l| l == path),
            "{path} is not %config: {config}"
        );
    }

    let scripts = sh("/usr/bin/rpm", &["-qp", "--scripts", rpm_arg]).ok();
    for needle in [
        "systemd-sysusers --replace=/usr/lib/sysusers.d/ecp.conf -",
        "semodule -n -s targeted -X 200 -i /usr/share/selinux/packages/targeted/ecp.pp.bz2",
        "restorecon -R /usr/sbin/ecpd /etc/ecp /var/lib/ecpd",
        "systemctl --no-reload preset ecpd.service",
        "-r ecp",
    ] {
        assert!(
            scripts.contains(needle),
            "no {needle:?} in the scriptlets:\n{scripts}"
        );
    }
    // %pre makes the account from the very line the package installs.
    let sysusers = std::fs::read_to_string(root.join("packaging/sysusers.d/ecp.conf")).unwrap();
    let declared = sysusers
        .lines()
        .find(|l| l.starts_with('u'))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let pre = scripts
        .lines()
        .find(|l| l.contains("echo 'u _ecpd"))
        .expect("the account line in %pre");
    let piped = pre
        .split('\'')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(piped, declared);

    let sources = sh("/usr/bin/rpm", &["-qpl", srpm.to_str().unwrap()]).ok();
    assert!(
        sources.contains("ecp.spec") && sources.contains(&format!("ecp-{version}.tar.gz")),
        "{sources}"
    );

    removal_leaves_the_ecp_authselect_profile_first(rpm_arg);

    let lint = ecp_tests::run(
        Path::new("/usr/bin/rpmlint"),
        &[
            "-r",
            root.join("packaging/rpm/ecp.rpmlintrc").to_str().unwrap(),
            rpm_arg,
            srpm.to_str().unwrap(),
            root.join("packaging/rpm/ecp.spec").to_str().unwrap(),
        ],
    );
    assert!(
        lint.stdout.contains(" 0 errors,"),
        "rpmlint reports errors:\n{}",
        lint.stdout
    );
}

/// The RPM's %preun, run by /bin/sh as rpm runs it, with authselect and
/// systemctl replaced by recording stand-ins (authselect is not packaged
/// for Debian): erasing ecp while custom/ecp is selected first selects
/// sssd with the same other features; an upgrade does nothing; when
/// authselect cannot switch, the erase is refused (exit 1) rather than
/// leaving stacks that name a missing module.
fn removal_leaves_the_ecp_authselect_profile_first(rpm: &str) {
    let preun = sh("/usr/bin/rpm", &["-qp", "--qf", "%{PREUN}", rpm]).ok();
    assert!(preun.contains("authselect current --raw"), "{preun}");
    let dir = tempfile::tempdir().unwrap();
    let stub = dir.path().join("authselect");
    let log = dir.path().join("calls");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\n\
             case \"$1\" in\n\
             current) echo \"$CURRENT\";;\n\
             select) echo \"$@\" >> {log}; exit \"$SELECT_RC\";;\n\
             esac\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pam_d = dir.path().join("pam.d");
    std::fs::create_dir(&pam_d).unwrap();
    std::fs::write(pam_d.join("sudo"), "@include common-auth\n").unwrap();
    std::fs::write(
        pam_d.join("login"),
        "# auth required pam_ecp.so (tried once)\n",
    )
    .unwrap();
    let script = dir.path().join("preun.sh");
    std::fs::write(
        &script,
        preun
            .replace("/usr/bin/authselect", stub.to_str().unwrap())
            .replace("/usr/bin/systemctl", "/nonexistent/systemctl")
            .replace("/etc/pam.d/", &format!("{}/", pam_d.display())),
    )
    .unwrap();
    let run = |arg: &str, current: &str, select_rc: &str| {
        let _ = std::fs::remove_file(&log);
        let out = Command::new("/bin/sh")
            .arg(&script)
            .arg(arg)
            .env("CURRENT", current)
            .env("SELECT_RC", select_rc)
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        (
            out.status.code(),
            calls,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, calls, said) = run(
        "0",
        "custom/ecp with-ecp with-faillock without-ecp-nouserok with-mkhomedir without-ecp-console-rescue",
        "0",
    );
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        calls.trim(),
        "select sssd with-faillock with-mkhomedir --force"
    );
    assert!(said.contains("switched from custom/ecp to sssd"), "{said}");
    // Another profile, or an upgrade: authselect is left alone.
    assert_eq!(run("0", "sssd with-faillock", "0").1, "");
    assert_eq!(run("1", "custom/ecp with-ecp", "0").1, "");
    // authselect refuses: so does the erase.
    let (code, _, said) = run("0", "custom/ecp with-ecp", "1");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("not removing ecp"), "{said}");
    // A hand-made stack still using the module (a comment does not count):
    // the erase is refused and the file named; an upgrade goes on.
    std::fs::write(
        pam_d.join("sshd"),
        "auth required pam_ecp.so mode=challenge\n",
    )
    .unwrap();
    let (code, _, said) = run("0", "sssd", "0");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!("{}/sshd", pam_d.display())),
        "{said}"
    );
    assert!(!said.contains("/login"), "{said}");
    assert_eq!(run("1", "sssd", "0").0, Some(0));

    // An upgrade writes the updated profile into /etc/pam.d.
    let posttrans = sh("/usr/bin/rpm", &["-qp", "--qf", "%{POSTTRANS}", rpm]).ok();
    assert!(
        posttrans.contains("authselect apply-changes"),
        "{posttrans}"
    );
}
