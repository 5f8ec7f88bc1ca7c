//! Real sshd and sudo for the tests: an sshd under pam_wrapper on a free
//! port, ssh with an askpass script, and sudo in a private mount
//! namespace with a test /etc/pam.d and /etc/sudoers bound over the real
//! ones. Nothing in the machine's /etc changes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{TestDaemon, TestUser};
use crate::pam::{module_path, PamServices};
use crate::{binary, Run};

pub const PASSWORD: &str = "Pw-for-ecp-tests-1";
pub const PASSPHRASE: &str = "key passphrase";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Sshd {
    pub child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A new ed25519 host key in `dir`/host_key; its path.
pub fn make_host_key(dir: &Path) -> PathBuf {
    let host_key = dir.join("host_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host_key)
        .status()
        .unwrap();
    assert!(status.success());
    host_key
}

/// Starts sshd on 127.0.0.1:`port` under pam_wrapper with PAM service
/// `sshd-ecp` (the name of the symlink it is started through).
pub fn start_sshd(dir: &Path, services: &PamServices, port: u16) -> Sshd {
    start_sshd_seeing(dir, services, port, None)
}

/// As `start_sshd`; with `etc`, in a private mount namespace where
/// `etc`'s (pam.d, sudoers) are bound over /etc/pam.d and /etc/sudoers,
/// so that sudo inside its sessions reads the test's configuration.
pub fn start_sshd_seeing(
    dir: &Path,
    services: &PamServices,
    port: u16,
    etc: Option<(&Path, &Path)>,
) -> Sshd {
    std::fs::create_dir_all("/run/sshd").unwrap();
    let link = dir.join("sshd-ecp");
    std::os::unix::fs::symlink("/usr/sbin/sshd", &link).unwrap();
    let host_key = make_host_key(dir);
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nUsePAM yes\n\
             KbdInteractiveAuthentication yes\nPasswordAuthentication no\nPubkeyAuthentication no\n\
             AuthenticationMethods keyboard-interactive\nUseDNS no\nStrictModes no\n",
            host_key.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let mut command = match etc {
        None => {
            let mut command = Command::new(&link);
            command.args(["-D", "-e", "-f"]).arg(&config);
            command
        }
        Some((pam_d, sudoers)) => {
            let mut command = Command::new("unshare");
            command.args(["--mount", "--propagation", "private", "--", "sh", "-c"]).arg(format!(
                "mount --bind '{}' /etc/pam.d && mount --bind '{}' /etc/sudoers && exec '{}' -D -e -f '{}'",
                pam_d.display(),
                sudoers.display(),
                link.display(),
                config.display()
            ));
            command
        }
    };
    let child = command
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", services.dir())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .expect("start sshd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not start: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child }
}

/// The ssh command line for `user` on 127.0.0.1:`port`, keyboard-
/// interactive only; `alias` is the name ssh knows the host by
/// (HostKeyAlias), which it also puts before each prompt.
pub fn ssh_args(user: &str, port: u16, alias: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "ssh",
        "-p",
        &port.to_string(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "PreferredAuthentications=keyboard-interactive",
        "-o",
        "NumberOfPasswordPrompts=1",
        "-o",
        "LogLevel=ERROR",
        "-F",
        "/dev/null",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(alias) = alias {
        args.extend(["-o".to_owned(), format!("HostKeyAlias={alias}")]);
    }
    args.push(format!("{user}@127.0.0.1"));
    args.push("echo logged-in-as-$(id -un)".to_owned());
    args
}

/// PAM services holding `sshd-ecp`: the password, then pam_ecp in
/// challenge mode against `daemon`.
pub fn sshd_ecp_services(daemon: &TestDaemon) -> PamServices {
    let services = PamServices::new();
    services.add(
        "sshd-ecp",
        &format!(
            "auth requisite pam_unix.so\nauth required $MODULE mode=challenge bus={}\n\
             account required pam_unix.so\nsession required pam_permit.so\n",
            daemon.address()
        ),
    );
    services
}

/// A real sshd on a free port whose PAM service `sshd-ecp` is the password,
/// then pam_ecp in challenge mode against `daemon`.
pub fn sshd_with_ecp(daemon: &TestDaemon, dir: &Path) -> (PamServices, Sshd, u16) {
    let services = sshd_ecp_services(daemon);
    let port = free_port();
    let sshd = start_sshd(dir, &services, port);
    (services, sshd, port)
}

/// An SSH_ASKPASS script at `path`: `ecpctl askpass --key KEY` for ecp
/// challenges, `password` for anything else.
pub fn askpass_script(path: &Path, key: &Path, password: &str) {
    askpass_script_with(path, &format!("--key {}", key.display()), "", password);
}

/// As `askpass_script`, signing with `ecpctl askpass SIGNER_ARGS` after
/// the shell lines `setup`.
pub fn askpass_script_with(path: &Path, signer_args: &str, setup: &str, password: &str) {
    write_script(
        path,
        &format!(
            "#!/bin/sh\n{setup}case \"$*\" in\n  *'ecp challenge'*) exec {} askpass {signer_args} \"$@\" ;;\n  *) echo '{password}' ;;\nesac\n",
            binary("ecpctl").display(),
        ),
    );
}

/// ssh as `user` with `askpass` answering every prompt and no terminal;
/// HOME (where askpass keeps its approved list) is `dir`/home.
pub fn ssh(dir: &Path, askpass: &Path, user: &str, port: u16) -> Run {
    ssh_as(dir, askpass, user, port, None)
}

pub fn ssh_as(dir: &Path, askpass: &Path, user: &str, port: u16, alias: Option<&str>) -> Run {
    let out = Command::new("setsid")
        .arg("-w")
        .args(ssh_args(user, port, alias))
        .env("SSH_ASKPASS", askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("ECP_PASSPHRASE_FILE", dir.join("passphrase"))
        .env("HOME", dir.join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from_output(&format!("ssh {user}"), out)
}

/// As `ssh_as`, on a terminal where the person answers askpass's question
/// with `answer`.
pub fn ssh_on_terminal(
    dir: &Path,
    askpass: &Path,
    user: &str,
    port: u16,
    alias: Option<&str>,
    answer: &str,
) -> Run {
    let command = ssh_args(user, port, alias)
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let force = Path::new("force");
    crate::run_on_terminal(
        &command,
        &[
            ("SSH_ASKPASS", askpass),
            ("SSH_ASKPASS_REQUIRE", force),
            ("ECP_PASSPHRASE_FILE", &dir.join("passphrase")),
            ("HOME", &dir.join("home")),
        ],
        "Sign it? [yes/no]",
        answer,
    )
}

/// A user with a password and a shell, a key made and enrolled.
pub fn enrolled_user(daemon: &TestDaemon, work: &Path) -> (TestUser, PathBuf) {
    let user = TestUser::create(daemon.bus.dir());
    user.enable_login(PASSWORD);
    std::fs::write(work.join("passphrase"), format!("{PASSPHRASE}\n")).unwrap();
    let keydir = work.join("clientkey");
    crate::ecpctl(&[
        "keygen",
        "--user",
        &user.name,
        "--out",
        keydir.to_str().unwrap(),
        "--passphrase-file",
        work.join("passphrase").to_str().unwrap(),
    ])
    .ok();
    daemon
        .ecpctl(&[
            "enroll",
            &user.name,
            "--cert",
            keydir.join("certificate.pem").to_str().unwrap(),
        ])
        .ok();
    (user, keydir.join("private_key.pem"))
}

pub fn user_with_own_key(daemon: &TestDaemon) -> (TestUser, PathBuf, PathBuf) {
    let user = TestUser::create(daemon.bus.dir());
    user.enable_login(PASSWORD);
    let ecpctl = crate::binary_copy_in(daemon.bus.dir(), "ecpctl");
    let pass = user.home.join("pass");
    user.write_owned(&pass, &format!("{PASSPHRASE}\n"));
    let keydir = user.home.join(".config/ecp");
    user.keygen(&ecpctl, &keydir, &pass, &[]);
    (user, keydir, pass)
}

/// A sudo PAM service using pam_ecp in keyfile mode against `daemon`, in a
/// copy of /etc/pam.d, and a sudoers letting `user` run anything:
/// (their directory, pam.d, sudoers).
pub fn sudo_setup(daemon: &TestDaemon, user: &TestUser) -> (tempfile::TempDir, PathBuf, PathBuf) {
    sudo_setup_with(daemon, user, "mode=keyfile", "")
}

/// As `sudo_setup`, pam_ecp with `options`, and `defaults` (whole
/// sudoers lines) added.
pub fn sudo_setup_with(
    daemon: &TestDaemon,
    user: &TestUser,
    options: &str,
    defaults: &str,
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let pam_d = work.path().join("pam.d");
    let status = Command::new("cp")
        .arg("-a")
        .arg("/etc/pam.d")
        .arg(&pam_d)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        pam_d.join("sudo-ecp"),
        format!(
            "auth requisite pam_unix.so\nauth required {} {options} bus={}\n\
             account required pam_unix.so\nsession required pam_permit.so\n",
            module_path().display(),
            daemon.address()
        ),
    )
    .unwrap();
    let sudoers = work.path().join("sudoers");
    std::fs::write(
        &sudoers,
        format!(
            "Defaults pam_service=sudo-ecp\nDefaults !lecture\nDefaults passwd_tries=1\n{defaults}\
             root ALL=(ALL:ALL) ALL\n{} ALL=(ALL:ALL) ALL\n",
            user.name
        ),
    )
    .unwrap();
    std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
    let check = Command::new("visudo")
        .arg("-cf")
        .arg(&sudoers)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    (work, pam_d, sudoers)
}

/// The client side in `dir`: the passphrase file, an approved-hosts list
/// (under `dir`/home) that lets askpass sign `user`@`host`'s sshd-ecp
/// challenges, and the askpass script using the key in `keydir`.
pub fn approving_askpass(dir: &Path, user: &str, host: &str, keydir: &Path) -> PathBuf {
    std::fs::write(dir.join("passphrase"), format!("{PASSPHRASE}\n")).unwrap();
    approve(dir, user, host);
    let askpass = dir.join("askpass");
    askpass_script(&askpass, &keydir.join("private_key.pem"), PASSWORD);
    askpass
}

/// An approved-hosts list (under `dir`/home) that lets askpass sign
/// `user`@`host`'s sshd-ecp challenges.
pub fn approve(dir: &Path, user: &str, host: &str) {
    let approved = dir.join("home/.config/ecp/approved_hosts");
    std::fs::create_dir_all(approved.parent().unwrap()).unwrap();
    std::fs::write(&approved, format!("{user}@{host} sshd-ecp {user}@{host}\n")).unwrap();
}

pub fn sudo_as(user: &TestUser, pam_d: &Path, sudoers: &Path, input: &str) -> Run {
    let script = format!(
        "mount --bind '{}' /etc/pam.d && mount --bind '{}' /etc/sudoers && \
         exec setpriv --reuid={} --regid={} --init-groups sudo -S -k true",
        pam_d.display(),
        sudoers.display(),
        user.uid,
        user.gid
    );
    crate::run_in_mount_namespace(&format!("sudo as {}", user.name), &script, input)
}
