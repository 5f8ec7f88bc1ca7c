//! The ecp agent and ssh-agent keys, with the real programs: `ecpctl
//! agent` served to ssh-add, ssh-keygen, ssh -A, sshd and sudo; and
//! OpenSSH's own ssh-agent holding a P-256 key used as an ecp key.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ecp_tests::daemon::{running_as_root, TestDaemon};
use ecp_tests::pam::PamServices;
use ecp_tests::sshd::*;
use ecp_tests::{binary, Run};

/// `ecpctl agent -D` with `key`, its log (standard error) in `dir`, its
/// questions answered by `dir`/confirm (which records each in
/// `dir`/questions and answers what `dir`/answer says).
struct Agent {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    questions: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(dir: &Path, key: &Path, passphrase: &Path, known_hosts: &Path) -> Agent {
        Agent::start_with(dir, key, passphrase, known_hosts, None)
    }

    /// As `start`; with `upstream`, --upstream to the agent at that socket.
    fn start_with(
        dir: &Path,
        key: &Path,
        passphrase: &Path,
        known_hosts: &Path,
        upstream: Option<&Path>,
    ) -> Agent {
        let confirm = dir.join("confirm");
        let questions = dir.join("questions");
        let answer = dir.join("answer");
        std::fs::write(&answer, "yes\n").unwrap();
        write_script(
            &confirm,
            &format!(
                "#!/bin/sh\nprintf '%s\\n---\\n' \"$1\" >> '{}'\n[ \"$SSH_ASKPASS_PROMPT\" = confirm ] || exit 1\ngrep -qx yes '{}'\n",
                questions.display(),
                answer.display()
            ),
        );
        let log = dir.join("agent.log");
        let mut command = Command::new(binary("ecpctl"));
        command.args(["agent", "-D"]);
        if let Some(upstream) = upstream {
            command.arg("--upstream").env("SSH_AUTH_SOCK", upstream);
        }
        let mut child = command
            .arg("--key")
            .arg(key)
            .arg("--passphrase-file")
            .arg(passphrase)
            .arg("--known-hosts")
            .arg(known_hosts)
            .arg("--socket")
            .arg(dir.join("agent.sock"))
            .env("SSH_ASKPASS", &confirm)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("HOME", dir.join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("ecpctl agent");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let socket = first
            .strip_prefix("ECP_AUTH_SOCK=")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();
        assert!(lines.next().unwrap().unwrap().starts_with("ECP_AGENT_PID="));
        Agent {
            child,
            socket: PathBuf::from(socket),
            log,
            questions,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn questions(&self) -> String {
        std::fs::read_to_string(&self.questions).unwrap_or_default()
    }
}

/// A key made by keygen in `dir`/key with passphrase file `dir`/passphrase.
fn client_key(dir: &Path, user: &str) -> (PathBuf, PathBuf) {
    let passphrase = dir.join("passphrase");
    std::fs::write(&passphrase, format!("{PASSPHRASE}\n")).unwrap();
    ecp_tests::ecpctl(&[
        "keygen",
        "--user",
        user,
        "--out",
        dir.join("key").to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ])
    .ok();
    (dir.join("key/private_key.pem"), passphrase)
}

#[test]
fn the_agent_lists_its_keys_and_signs_nothing_but_ecp_challenges() {
    let dir = tempfile::tempdir().unwrap();
    let (key, passphrase) = client_key(dir.path(), "alice");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let agent = Agent::start(dir.path(), &key, &passphrase, &known_hosts);
    let mode = std::fs::metadata(&agent.socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let listed = ssh_add(&agent.socket, "-L");
    assert!(listed.status.success());
    let public = String::from_utf8(listed.stdout).unwrap();
    assert!(public.starts_with("ecdsa-sha2-nistp256 "), "{public}");
    let fingerprints = ssh_add(&agent.socket, "-l");
    assert!(String::from_utf8_lossy(&fingerprints.stdout).contains("(ECDSA)"));

    // ssh-keygen -Y sign asks the agent to sign a file: refused.
    let pubkey = dir.path().join("key.pub");
    std::fs::write(&pubkey, &public).unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, "not an ecp challenge\n").unwrap();
    let signed = sign_file(&agent.socket, &pubkey, &data);
    assert!(!signed.status.success());
    assert!(
        String::from_utf8_lossy(&signed.stderr).contains("agent refused"),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    assert!(!data.with_extension("sig").exists());
    assert!(
        agent.log().contains("this agent signs only ecp challenges"),
        "{}",
        agent.log()
    );
    assert!(agent.questions().is_empty(), "nothing was asked");
}

#[test]
fn the_background_agent_prints_its_variables_and_kill_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (key, passphrase) = client_key(dir.path(), "alice");
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let started = Command::new(binary("ecpctl"))
        .args(["agent", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let started = Run::from_output("ecpctl agent", started);
    assert_eq!(started.code, 0, "{}", started.stderr);
    let value = |name: &str| {
        started
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no {name} in {}", started.stdout))
            .to_owned()
    };
    let socket = PathBuf::from(value("ECP_AUTH_SOCK"));
    let pid = value("ECP_AGENT_PID");
    assert!(socket.starts_with(&runtime), "{}", socket.display());
    let dir_mode = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&dir_mode.permissions()) & 0o777,
        0o700
    );
    // The keys came through the pipe: the agent answers with them.
    let listed = ssh_add(&socket, "-l");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("(ECDSA)"));

    let killed = Command::new(binary("ecpctl"))
        .args(["agent", "-k"])
        .env("ECP_AGENT_PID", &pid)
        .output()
        .unwrap();
    let killed = Run::from_output("ecpctl agent -k", killed);
    assert_eq!(killed.code, 0, "{}", killed.stderr);
    assert!(killed.stdout.contains("unset ECP_AUTH_SOCK;"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while socket.parent().unwrap().exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !socket.parent().unwrap().exists(),
        "socket directory removed"
    );
    // A pid that is not an ecp agent is not signalled.
    let refused = Command::new(binary("ecpctl"))
        .args(["agent", "-k"])
        .env("ECP_AGENT_PID", std::process::id().to_string())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(11));
}

#[test]
fn an_unprivileged_user_starts_and_stops_their_own_agent() {
    if !running_as_root() {
        eprintln!("skipped: needs root to make a user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let user = ecp_tests::daemon::TestUser::create(dir.path());
    let ecpctl = ecp_tests::binary_copy_in(dir.path(), "ecpctl");
    let pass = user.home.join("pass");
    user.write_owned(&pass, &format!("{PASSPHRASE}\n"));
    let keys = user.home.join("keys");
    user.keygen(&ecpctl, &keys, &pass, &[]);
    let runtime = user.home.join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::os::unix::fs::chown(&runtime, Some(user.uid), Some(user.gid)).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let env = Path::new("/usr/bin/env");
    let started = user.run(
        env,
        &[
            &format!("XDG_RUNTIME_DIR={}", runtime.display()),
            &format!("HOME={}", user.home.display()),
            ecpctl.to_str().unwrap(),
            "agent",
            "--key",
            keys.join("private_key.pem").to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert_eq!(started.code, 0, "{}", started.stderr);
    let pid = started
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ECP_AGENT_PID="))
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    // The agent is not dumpable: its own user cannot read its memory, and
    // -k must know it without /proc/PID/exe.
    let killed = user.run(
        env,
        &[
            &format!("ECP_AGENT_PID={pid}"),
            ecpctl.to_str().unwrap(),
            "agent",
            "-k",
        ],
    );
    assert_eq!(killed.code, 0, "{}", killed.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "stopped"
    );
    assert_eq!(
        std::fs::read_dir(&runtime).unwrap().count(),
        0,
        "socket directory removed"
    );
}

/// `ssh-keygen -Y sign` of `data` with the agent at `socket`'s key
/// `public`: what any program may ask an agent to sign.
fn sign_file(socket: &Path, public: &Path, data: &Path) -> std::process::Output {
    Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "file", "-f"])
        .arg(public)
        .arg(data)
        .env("SSH_AUTH_SOCK", socket)
        .output()
        .unwrap()
}

/// `ssh-add FLAG` against the agent at `socket`.
fn ssh_add(socket: &Path, flag: &str) -> std::process::Output {
    Command::new("ssh-add")
        .arg(flag)
        .env("SSH_AUTH_SOCK", socket)
        .output()
        .unwrap()
}

/// OpenSSH's ssh-agent on `socket`, running until dropped.
struct SshAgent(Child);

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ssh_agent(socket: &Path) -> SshAgent {
    let child = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(socket)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    SshAgent(child)
}

/// A new key of `kind` (ssh-keygen -t) added to the agent at `socket`;
/// the path of its public half.
fn add_ssh_key(dir: &Path, socket: &Path, kind: &[&str], comment: &str) -> PathBuf {
    let id = dir.join(format!("id_{comment}"));
    let made = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", comment, "-t"])
        .args(kind)
        .arg("-f")
        .arg(&id)
        .status()
        .unwrap();
    assert!(made.success());
    let added = Command::new("ssh-add")
        .arg("-q")
        .arg(&id)
        .env("SSH_AUTH_SOCK", socket)
        .status()
        .unwrap();
    assert!(added.success());
    std::fs::remove_file(&id).unwrap(); // only the agent holds it now
    id.with_extension("pub")
}

#[test]
fn with_upstream_ordinary_requests_go_to_the_users_ssh_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (key, passphrase) = client_key(dir.path(), "alice");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let upstream_socket = dir.path().join("upstream.sock");
    let _upstream = ssh_agent(&upstream_socket);
    let ed25519 = add_ssh_key(dir.path(), &upstream_socket, &["ed25519"], "ordinary");
    let agent = Agent::start_with(
        dir.path(),
        &key,
        &passphrase,
        &known_hosts,
        Some(&upstream_socket),
    );

    let listed = ssh_add(&agent.socket, "-l");
    let listed = format!(
        "{}{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        listed.contains("(ECDSA)") && listed.contains("ordinary (ED25519)"),
        "{listed}\nagent: {}",
        agent.log()
    );

    // An ordinary signature with the upstream key passes through.
    let data = dir.path().join("data");
    std::fs::write(&data, "a file\n").unwrap();
    let signed = sign_file(&agent.socket, &ed25519, &data);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    assert!(data.with_extension("sig").exists());
    // The ecp key still signs nothing but ecp challenges.
    let ecp_public = dir.path().join("ecp.pub");
    let ecp_line = ssh_add(&agent.socket, "-L");
    let ecp_line = String::from_utf8_lossy(&ecp_line.stdout)
        .lines()
        .find(|l| l.starts_with("ecdsa-sha2-nistp256"))
        .unwrap()
        .to_owned();
    std::fs::write(&ecp_public, ecp_line).unwrap();
    std::fs::remove_file(data.with_extension("sig")).unwrap();
    let refused = sign_file(&agent.socket, &ecp_public, &data);
    assert!(!refused.status.success());

    // An ecp challenge for a P-256 key held upstream is decided here and
    // signed there.
    add_ssh_key(
        dir.path(),
        &upstream_socket,
        &["ecdsa", "-b", "256"],
        "upstream-ecp",
    );
    let cert_dir = dir.path().join("upstream-cert");
    let made = Command::new(binary("ecpctl"))
        .args([
            "keygen",
            "--agent",
            "--agent-key",
            "upstream-ecp",
            "--user",
            "alice",
            "--out",
        ])
        .arg(&cert_dir)
        .env("SSH_AUTH_SOCK", &upstream_socket)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let token = ecp_core::Challenge::new_random(
        ecp_core::UserName::parse("alice").unwrap(),
        ecp_core::HostName::parse("web1").unwrap(),
        ecp_core::ServiceName::parse("sudo").unwrap(),
        ecp_core::when::unix_now() as u64,
        300,
    )
    .unwrap()
    .to_token();
    let signed = Command::new(binary("ecpctl"))
        .args(["sign", "--agent", "--cert"])
        .arg(cert_dir.join("certificate.pem"))
        .arg(&token)
        .env("ECP_AUTH_SOCK", &agent.socket)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    assert!(
        agent.log().contains("signed the login of alice@web1"),
        "{}",
        agent.log()
    );
}

/// The ssh command line: keyboard-interactive only, the host known as
/// `alias` in `known_hosts`, the agent forwarded, running `command`.
fn ssh_forwarding(
    user: &str,
    port: u16,
    alias: &str,
    known_hosts: &Path,
    command: &str,
) -> Vec<String> {
    [
        "ssh",
        "-A",
        "-p",
        &port.to_string(),
        "-o",
        &format!("HostKeyAlias={alias}"),
        "-o",
        &format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "PreferredAuthentications=keyboard-interactive",
        "-o",
        "NumberOfPasswordPrompts=1",
        "-o",
        "LogLevel=ERROR",
        "-F",
        "/dev/null",
        &format!("{user}@127.0.0.1"),
        command,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run_ssh(args: &[String], env: &[(&str, &Path)]) -> Run {
    let mut command = Command::new("setsid");
    command.arg("-w").args(args).stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    Run::from_output("ssh", command.output().unwrap())
}

/// `name KEY` for the host key in `dir`/host_key.pub, hashed as ssh's
/// HashKnownHosts writes it.
fn known_hosts_line(dir: &Path, name: &str) -> String {
    let public = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let mut fields = public.split_whitespace();
    let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
    format!("{name} {kind} {key}\n")
}

fn hash_known_hosts(path: &Path) {
    let status = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-H")
        .arg("-f")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
}

#[test]
fn sudo_over_ssh_is_signed_through_the_forwarded_agent_and_a_relay_is_refused() {
    if !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let daemon =
        TestDaemon::start("host_name = \"agent-host\"\nchallenges_per_user_per_minute = 0\n");
    let client = tempfile::tempdir().unwrap();
    let (user, key) = enrolled_user(&daemon, client.path());
    std::fs::create_dir_all(client.path().join("home")).unwrap();

    // The server: sshd (password, then a challenge) whose sessions see a
    // sudo whose PAM stack is the password, then pam_ecp mode=agent.
    // sudo clears its environment before PAM runs: the agent's socket
    // must be kept, as for every agent-based sudo module.
    let (_etc, pam_d, sudoers) = sudo_setup_with(
        &daemon,
        &user,
        "mode=agent",
        "Defaults env_keep += \"SSH_AUTH_SOCK\"\n",
    );
    let server = tempfile::tempdir().unwrap();
    let services = sshd_ecp_services(&daemon);
    let port = free_port();
    let _sshd = start_sshd_seeing(server.path(), &services, port, Some((&pam_d, &sudoers)));

    // A second server, the compromised one: password only.
    let relay = tempfile::tempdir().unwrap();
    let relay_services = PamServices::new();
    relay_services.add(
        "sshd-ecp",
        "auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\n",
    );
    let relay_port = free_port();
    let _relay_sshd = start_sshd(relay.path(), &relay_services, relay_port);

    // The user's known_hosts, hashed as Debian's ssh writes it.
    let known_hosts = client.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        known_hosts_line(server.path(), "agent-host")
            + &known_hosts_line(relay.path(), "relay-host"),
    )
    .unwrap();
    hash_known_hosts(&known_hosts);

    let agent = Agent::start(
        client.path(),
        &key,
        &client.path().join("passphrase"),
        &known_hosts,
    );
    approve(client.path(), &user.name, "agent-host");
    let askpass = client.path().join("askpass");
    askpass_script_with(&askpass, "", "", PASSWORD);
    let env = [
        ("SSH_AUTH_SOCK", agent.socket.as_path()),
        ("ECP_AUTH_SOCK", agent.socket.as_path()),
        ("SSH_ASKPASS", askpass.as_path()),
        ("SSH_ASKPASS_REQUIRE", Path::new("force")),
        ("HOME", &client.path().join("home")),
    ];
    let sudo = format!("echo '{PASSWORD}' | sudo -S -k true && echo sudo-ok");

    // The ssh login is signed by the agent through askpass, the sudo in
    // the session through the forwarded agent: nothing typed but the
    // password, one question on the user's machine.
    let first = run_ssh(
        &ssh_forwarding(&user.name, port, "agent-host", &known_hosts, &sudo),
        &env,
    );
    assert_eq!(first.code, 0, "{}\nagent: {}", first.stderr, agent.log());
    assert!(first.stdout.contains("sudo-ok"), "{}", first.stdout);
    let questions = agent.questions();
    assert_eq!(questions.matches("---").count(), 1, "{questions}");
    assert!(
        questions.contains(&format!("{}@agent-host", user.name))
            && questions.contains("sudo-ecp")
            && questions.contains("forwarded connection to agent-host"),
        "{questions}"
    );
    let approved =
        std::fs::read_to_string(client.path().join("home/.config/ecp/approved_hosts")).unwrap();
    assert!(
        approved.contains(&format!("{}@agent-host sudo-ecp agent@SHA256:", user.name)),
        "{approved}"
    );

    // Remembered: the next sudo is signed without a question.
    let second = run_ssh(
        &ssh_forwarding(&user.name, port, "agent-host", &known_hosts, &sudo),
        &env,
    );
    assert_eq!(second.code, 0, "{}\nagent: {}", second.stderr, agent.log());
    assert!(second.stdout.contains("sudo-ok"));
    assert_eq!(agent.questions().matches("---").count(), 1);

    // The relay: the other server hands the user a live challenge of
    // agent-host and has it signed through the forwarded agent. Refused
    // without a question, and logged.
    let token = zbus::block_on(async {
        let conn = daemon.connect();
        ecp_core::bus::AuthProxy::new(&conn)
            .await
            .unwrap()
            .challenge(&user.name, "sudo-ecp", "")
            .await
            .unwrap()
    });
    let ecpctl = ecp_tests::binary_copy_in(daemon.bus.dir(), "ecpctl");
    let relayed = run_ssh(
        &ssh_forwarding(
            &user.name,
            relay_port,
            "relay-host",
            &known_hosts,
            &format!("{} sign --agent {token}; echo exit=$?", ecpctl.display()),
        ),
        &env,
    );
    assert!(
        relayed.stdout.contains("exit=11"),
        "{}\n{}",
        relayed.stdout,
        relayed.stderr
    );
    assert!(
        relayed.stderr.contains("agent refused to sign"),
        "{}",
        relayed.stderr
    );
    assert_eq!(agent.questions().matches("---").count(), 1, "no question");
    assert!(agent.log().contains("relay refused"), "{}", agent.log());

    // With the agent gone, sudo fails and says why.
    drop(agent);
    let keyfile_askpass = client.path().join("askpass-keyfile");
    askpass_script(&keyfile_askpass, &key, PASSWORD);
    let gone = run_ssh(
        &ssh_forwarding(&user.name, port, "agent-host", &known_hosts, &sudo),
        &[
            ("SSH_AUTH_SOCK", &client.path().join("agent.sock")),
            ("SSH_ASKPASS", keyfile_askpass.as_path()),
            ("SSH_ASKPASS_REQUIRE", Path::new("force")),
            ("ECP_PASSPHRASE_FILE", &client.path().join("passphrase")),
            ("HOME", &client.path().join("home")),
        ],
    );
    assert!(!gone.stdout.contains("sudo-ok"), "{}", gone.stdout);
    assert!(gone.stderr.contains("ecp: "), "{}", gone.stderr);
}

#[test]
fn a_p256_key_in_openssh_agent_is_an_ecp_key() {
    if !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let daemon = TestDaemon::start(
        "host_name = \"sa-host\"\nchallenges_per_user_per_minute = 0\nrenew_min_age_secs = 0\n",
    );
    let client = tempfile::tempdir().unwrap();
    let user = ecp_tests::daemon::TestUser::create(daemon.bus.dir());
    user.enable_login(PASSWORD);
    let socket = client.path().join("ssh-agent.sock");
    let _ssh_agent = ssh_agent(&socket);
    let public = add_ssh_key(
        client.path(),
        &socket,
        &["ecdsa", "-b", "256"],
        "laptop-key",
    );

    let with_agent = |args: &[&str]| {
        let out = Command::new(binary("ecpctl"))
            .args(["--bus", daemon.address()])
            .args(args)
            .env("SSH_AUTH_SOCK", &socket)
            .env_remove("ECP_AUTH_SOCK")
            .output()
            .unwrap();
        Run::from_output(&format!("ecpctl {args:?}"), out)
    };
    let out = client.path().join("cert");
    let keygen = with_agent(&[
        "keygen",
        "--agent",
        "--agent-key",
        "laptop-key",
        "--user",
        &user.name,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(keygen.code, 0, "{}", keygen.stderr);
    assert!(!out.join("private_key.pem").exists(), "no key is written");
    // OpenSSL reads the certificate and its key is the agent's.
    let openssl_key = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(out.join("certificate.pem"))
        .output()
        .unwrap();
    let ssh_key = Command::new("ssh-keygen")
        .args(["-e", "-m", "PKCS8", "-f"])
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(openssl_key.stdout, ssh_key.stdout);

    daemon
        .ecpctl(&[
            "enroll",
            &user.name,
            "--cert",
            out.join("certificate.pem").to_str().unwrap(),
        ])
        .ok();
    let login = with_agent(&["test-login", &user.name, "--agent"]);
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stdout.contains("accepted"), "{}", login.stdout);

    // A whole ssh login, the challenge signed by OpenSSH's agent through
    // askpass --agent.
    let server = tempfile::tempdir().unwrap();
    let (_services, _sshd, port) = sshd_with_ecp(&daemon, server.path());
    approve(client.path(), &user.name, "sa-host");
    let askpass = client.path().join("askpass");
    askpass_script_with(&askpass, "--agent", "", PASSWORD);
    let run = Command::new("setsid")
        .arg("-w")
        .args(ssh_args(&user.name, port, Some("sa-host")))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("SSH_AUTH_SOCK", &socket)
        .env("HOME", client.path().join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run::from_output("ssh", run);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("logged-in-as-{}", user.name)));

    // The agent key vouches for its successor: a new key file.
    let next = client.path().join("next");
    std::fs::write(client.path().join("new-pass"), "new key passphrase\n").unwrap();
    let renewed = with_agent(&[
        "renew",
        &user.name,
        "--agent",
        "--key-out",
        next.to_str().unwrap(),
        "--new-passphrase-file",
        client.path().join("new-pass").to_str().unwrap(),
    ]);
    assert_eq!(renewed.code, 0, "{}", renewed.stderr);
    assert!(next.join("private_key.pem").exists());

    // Without the key in the agent, --agent fails with its own exit code.
    let removed = ssh_add(&socket, "-D");
    assert!(removed.status.success());
    let refused = with_agent(&["test-login", &user.name, "--agent"]);
    assert_eq!(refused.code, 11, "{}", refused.stderr);
}
