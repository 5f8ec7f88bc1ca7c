//! A private, system-bus-like dbus-daemon and an ecpd on a temporary sled
//! store, as the README's tests use them. Both are stopped on drop.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecp_core::bus::AdminProxy;

use crate::{binary, run, Run};

/// The policy the package installs, included by the test bus.
pub fn policy_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/dbus/org.ecp.Ecpd1.conf")
}

/// A bus policy file (XML) granting `user` the `rules` (`<allow …/>`
/// elements), for [`TestBus::start_with_policy`].
pub fn policy_for(user: &str, rules: &str) -> String {
    format!(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\" \
         \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\
         <busconfig><policy user=\"{user}\">{rules}</policy></busconfig>"
    )
}

/// A dbus-daemon with the system bus's default-deny policy plus ecp's own
/// policy file, listening on a socket in a temporary directory.
pub struct TestBus {
    dir: tempfile::TempDir,
    child: Child,
    pub address: String,
}

impl TestBus {
    pub fn start() -> Self {
        Self::start_with_policy(None)
    }

    /// Like [`TestBus::start`], with one more policy file (XML text).
    pub fn start_with_policy(extra_policy: Option<&str>) -> Self {
        Self::start_with(extra_policy, None)
    }

    /// Like [`TestBus::start_with_policy`], activating services from
    /// `service_dir` (D-Bus `.service` files) when a name is asked for.
    pub fn start_with(extra_policy: Option<&str>, service_dir: Option<&Path>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ecp-bus-")
            .tempdir()
            .unwrap();
        // Test users (non-root callers) must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let system_d = dir.path().join("system.d");
        std::fs::create_dir(&system_d).unwrap();
        std::fs::copy(policy_file(), system_d.join("org.ecp.Ecpd1.conf")).unwrap();
        if let Some(extra) = extra_policy {
            std::fs::write(system_d.join("test-extra.conf"), extra).unwrap();
        }
        let socket = dir.path().join("system_bus_socket");
        let config = include_str!("../bus.conf.in")
            .replace("@SOCKET@", &socket.display().to_string())
            .replace("@SYSTEM_D@", &system_d.display().to_string())
            .replace(
                "@SERVICEDIRS@",
                &service_dir
                    .map(|d| format!("<servicedir>{}</servicedir>", d.display()))
                    .unwrap_or_default(),
            );
        let config_path = dir.path().join("bus.conf");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config_path.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon (package dbus-daemon)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:path="),
            "dbus-daemon said {address:?}"
        );
        Self {
            dir,
            child,
            address,
        }
    }

    /// A bus whose policy also lets `user` own ecpd's name, as a
    /// mistaken or hostile policy might: for impostor tests.
    pub fn letting_own(user: &str) -> Self {
        Self::start_with_policy(Some(&policy_for(user, "<allow own=\"org.ecp.Ecpd1\"/>")))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the bus daemon, as a crash of dbus-daemon would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ecpd on a temporary store, connected to a [`TestBus`].
pub struct TestDaemon {
    pub bus: TestBus,
    pub db: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// (uid, gid) the daemon runs as; `None` = the test's own.
    run_as: Option<(u32, u32)>,
}

impl TestDaemon {
    /// Starts a bus and ecpd with `config` (ecpd.toml text).
    pub fn start(config: &str) -> Self {
        Self::start_on(TestBus::start(), config, None)
    }

    /// Starts ecpd on `bus`, as `run_as` (uid, gid) if given.
    pub fn start_on(bus: TestBus, config: &str, run_as: Option<(u32, u32)>) -> Self {
        let db = bus.dir().join("db");
        if let Some((uid, gid)) = run_as {
            std::fs::create_dir(&db).unwrap();
            std::os::unix::fs::chown(&db, Some(uid), Some(gid)).unwrap();
        }
        let config_path = bus.dir().join("ecpd.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = bus.dir().join("ecpd.log");
        let mut daemon = Self {
            bus,
            db,
            config: config_path,
            log,
            child: None,
            run_as,
        };
        daemon.launch();
        daemon
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = match self.run_as {
            None => Command::new(binary("ecpd")),
            Some((uid, gid)) => {
                let copy = crate::binary_copy_in(self.bus.dir(), "ecpd");
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--"])
                    .arg(copy);
                c
            }
        };
        let child = command
            .arg("--bus")
            .arg(&self.bus.address)
            .arg("--db")
            .arg(&self.db)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start ecpd");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ecpd exited ({status}) at start:\n{}", self.log());
            }
            let ready = zbus::block_on(async {
                let conn = zbus::connection::Builder::address(self.bus.address.as_str())
                    .build()
                    .await
                    .ok()?;
                let proxy = AdminProxy::new(&conn).await.ok()?;
                proxy.status().await.ok()
            });
            if ready.is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ecpd did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("ecpd is running").id()
    }

    /// Everything ecpd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Waits up to `timeout` for ecpd to exit by itself; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Starts ecpd again on the same store.
    pub fn restart(&mut self) {
        self.kill_hard();
        self.launch();
    }

    pub fn address(&self) -> &str {
        &self.bus.address
    }

    /// A client connection to the test bus (as the test process's uid).
    pub fn connect(&self) -> zbus::Connection {
        zbus::block_on(async {
            zbus::connection::Builder::address(self.bus.address.as_str())
                .build()
                .await
                .unwrap()
        })
    }

    /// A throw-away user with a key made as that user in the default place
    /// (`~/.config/ecp`), protected by `passphrase`; its certificate is
    /// enrolled under `label` unless that is `None`.
    pub fn keyed_user(
        &self,
        passphrase: &str,
        keygen_extra: &[&str],
        label: Option<&str>,
    ) -> KeyedUser {
        let user = TestUser::create(self.bus.dir());
        let ecpctl = crate::binary_copy_in(self.bus.dir(), "ecpctl");
        let pass_file = user.home.join("pass");
        user.write_owned(&pass_file, &format!("{passphrase}\n"));
        let keydir = user.home.join(".config/ecp");
        user.keygen(&ecpctl, &keydir, &pass_file, keygen_extra);
        if let Some(label) = label {
            let cert = keydir.join("certificate.pem");
            self.ecpctl(&[
                "enroll",
                &user.name,
                "--cert",
                cert.to_str().unwrap(),
                "--label",
                label,
            ])
            .ok();
        }
        KeyedUser {
            user,
            ecpctl,
            pass_file,
        }
    }

    /// The fingerprint of `user`'s first enrolled certificate, as
    /// `ecpctl list --json` shows it.
    pub fn first_fingerprint(&self, user: &str) -> String {
        let listed = self.ecpctl(&["list", user, "--json"]).ok();
        listed
            .split("\"fingerprint\": \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no certificate listed for {user}: {listed}"))
            .to_owned()
    }

    /// Runs `ecpctl --bus <test bus> ARGS`.
    pub fn ecpctl(&self, args: &[&str]) -> Run {
        let mut all = vec!["--bus", self.address()];
        all.extend_from_slice(args);
        run(&binary("ecpctl"), &all)
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A throw-away Unix account, removed on drop. Needs root.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl TestUser {
    /// Creates `ecpt<random>` with a home under `parent` (which must be
    /// traversable by others).
    pub fn create(parent: &Path) -> Self {
        let mut suffix = [0u8; 4];
        getrandom_fill(&mut suffix);
        let name = format!(
            "ecpt{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let home = parent.join(&name);
        let status = Command::new("useradd")
            .args([
                "--create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                "--home-dir",
            ])
            .arg(&home)
            .arg(&name)
            .status()
            .expect("useradd");
        assert!(status.success(), "useradd {name} failed");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        Self {
            name,
            uid,
            gid,
            home,
        }
    }

    /// Gives the user a password and a real shell (for sshd and sudo).
    pub fn enable_login(&self, password: &str) {
        use std::io::Write;
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        writeln!(child.stdin.take().unwrap(), "{}:{password}", self.name).unwrap();
        assert!(child.wait().unwrap().success(), "chpasswd failed");
        let status = Command::new("usermod")
            .args(["--shell", "/bin/sh", &self.name])
            .status()
            .unwrap();
        assert!(status.success(), "usermod failed");
    }

    /// Writes `contents` to `path`, owned by this user.
    pub fn write_owned(&self, path: &Path, contents: &str) {
        std::fs::write(path, contents).unwrap();
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Runs `ecpctl keygen` as this user into `out`, with the passphrase in
    /// `pass_file` and any `extra` arguments; insists it succeeds.
    pub fn keygen(&self, ecpctl: &Path, out: &Path, pass_file: &Path, extra: &[&str]) {
        let mut args = vec![
            "keygen",
            "--user",
            self.name.as_str(),
            "--out",
            out.to_str().unwrap(),
            "--passphrase-file",
            pass_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(ecpctl, &args).ok();
    }

    /// Runs `program ARGS` as this user (real and effective ids).
    pub fn run(&self, program: &Path, args: &[&str]) -> Run {
        let reuid = format!("--reuid={}", self.uid);
        let regid = format!("--regid={}", self.gid);
        let mut all = vec![
            reuid.as_str(),
            regid.as_str(),
            "--init-groups",
            "--",
            program.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        crate::run(Path::new("/usr/bin/setpriv"), &all)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .arg("--remove")
            .arg(&self.name)
            .stderr(Stdio::null())
            .status();
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// What [`TestDaemon::keyed_user`] made.
pub struct KeyedUser {
    pub user: TestUser,
    /// A copy of ecpctl the user can run.
    pub ecpctl: PathBuf,
    pub pass_file: PathBuf,
}

/// Whether the tests run as root (needed to create users and drop to them).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Resident memory of a process, in KiB (0 if it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Bytes of all files under `path`.
pub fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
