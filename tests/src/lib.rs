//! Test harness: runs the real binaries (built on first use) and the real
//! `openssl` command line in throw-away directories.

#![forbid(unsafe_code)]

pub mod ca;
pub mod daemon;
pub mod directory;
pub mod pam;
pub mod sshd;
pub mod token;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use ecp_core::{Challenge, HostName, ServiceName, UserName};

/// The cargo target directory the tests were built into.
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // Tests live in target/<profile>/deps/, binaries such as the benchmark
    // in target/<profile>/.
    let dir = exe.parent().expect("executable has a directory");
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.parent().expect("target/<profile>").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary, building the workspace binaries once per test
/// process so a plain `cargo test` never runs stale ones.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build", "--quiet", "-p", "ecpctl", "-p", "ecpd", "-p", "pam_ecp",
        ]);
        if target_profile_dir().file_name() == Some(OsStr::new("release")) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the workspace binaries failed"
        );
    });
    let path = target_profile_dir().join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A copy of workspace binary `name` in `dir`, made once: the build tree may
/// sit where a test user cannot reach it (under /root).
pub fn binary_copy_in(dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    if !copy.exists() {
        std::fs::copy(binary(name), &copy).unwrap();
    }
    copy
}

/// Output of a finished command, with the parts tests look at.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Collects a finished process's output, and echoes it (shown when a
    /// test fails) under the heading `what`.
    pub fn from_output(what: &str, out: Output) -> Self {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ {what}\n  exit {}\n  stdout: {}\n  stderr: {}",
            run.code,
            run.stdout.trim_end(),
            run.stderr.trim_end()
        );
        run
    }

    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "command failed: {}", self.stderr);
        self.stdout
    }
}

/// Runs `shell_command` inside a pseudo-terminal (script(1)) with `env`
/// added, and types `answer` there once `question` has appeared on it: a
/// person at a terminal, for programs that discard what was typed before
/// they asked. Fails the test if the question does not come within 60 s.
pub fn run_on_terminal(
    shell_command: &str,
    env: &[(&str, &Path)],
    question: &str,
    answer: &str,
) -> Run {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let mut command = Command::new("script");
    command
        .args([
            "--quiet",
            "--return",
            "--command",
            shell_command,
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("script(1)");
    let mut stdout = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        if text.contains(question) {
            stdin.write_all(answer.as_bytes()).unwrap();
            break;
        }
        if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The end of input, after the answer, lets script(1) finish as soon as
    // the command does.
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&seen.lock().unwrap()).into_owned(),
        stderr,
    };
    eprintln!(
        "$ script {shell_command}\n  exit {}\n  terminal: {}\n  stderr: {}",
        run.code,
        run.stdout.trim_end(),
        run.stderr.trim_end()
    );
    run
}

/// Runs a program with arguments, stdin from `input` (or /dev/null), in a new
/// session without a controlling terminal so that nothing can prompt on the
/// developer's tty.
pub fn run_with_input(program: &Path, args: &[&str], input: Option<&[u8]>) -> Run {
    let what = format!("{} {}", program.display(), args.join(" "));
    let mut cmd = Command::new("setsid");
    cmd.arg("--wait").arg(program).args(args);
    run_command(&what, cmd, input)
}

/// Runs `cmd` to its end with `input` on its standard input (or
/// /dev/null), its output captured and logged as `what`.
pub fn run_command(what: &str, mut cmd: Command, input: Option<&[u8]>) -> Run {
    use std::io::Write;
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let Some(bytes) = input {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run::from_output(what, out)
}

/// `sh -c script` in a private mount namespace (`unshare --mount
/// --propagation private`, util-linux): its mounts over /etc, /dev or a
/// store never reach the machine.
pub fn mount_namespace_shell(script: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
    ]);
    cmd
}

/// Runs `script` in a private mount namespace ([`mount_namespace_shell`])
/// to its end, `input` on its standard input.
pub fn run_in_mount_namespace(what: &str, script: &str, input: &str) -> Run {
    run_command(what, mount_namespace_shell(script), Some(input.as_bytes()))
}

pub fn run(program: &Path, args: &[&str]) -> Run {
    run_with_input(program, args, None)
}

/// Runs ecpctl.
pub fn ecpctl(args: &[&str]) -> Run {
    run(&binary("ecpctl"), args)
}

/// Runs ecpctl with standard input.
pub fn ecpctl_with_input(args: &[&str], input: &[u8]) -> Run {
    run_with_input(&binary("ecpctl"), args, Some(input))
}

/// Runs `openssl` and insists it succeeds.
pub fn openssl(args: &[&str]) -> String {
    openssl_run(args).ok()
}

/// Runs `openssl`, success or not.
pub fn openssl_run(args: &[&str]) -> Run {
    run(Path::new("/usr/bin/openssl"), args)
}

/// A temporary working directory; removed on drop.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ecp-test-")
            .tempdir()
            .expect("temp dir");
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `path(name)` as a string, for command lines.
    pub fn arg(&self, name: &str) -> String {
        self.path(name)
            .to_str()
            .expect("utf-8 temp path")
            .to_owned()
    }

    pub fn write(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    pub fn mode(&self, name: &str) -> u32 {
        std::fs::metadata(self.path(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
}

impl Default for Workdir {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh challenge for `user`, valid for five minutes.
pub fn challenge_for(user: &str) -> Challenge {
    let now = ecp_core::when::unix_now() as u64;
    Challenge::new_random(
        UserName::parse(user).unwrap(),
        HostName::parse("testhost.example").unwrap(),
        ServiceName::parse("sshd").unwrap(),
        now,
        300,
    )
    .unwrap()
}

/// Makes a key pair with `ecpctl keygen` in `work/<dir>`; returns the
/// directory. The passphrase is `passphrase`, also written to
/// `work/<dir with / as _>.pass`.
pub fn keygen(work: &Workdir, user: &str, dir: &str, passphrase: &str) -> PathBuf {
    let pass_file = format!("{}.pass", dir.replace('/', "_"));
    let pw = work.write(&pass_file, passphrase.as_bytes(), 0o600);
    ecpctl(&[
        "keygen",
        "--user",
        user,
        "--out",
        &work.arg(dir),
        "--passphrase-file",
        pw.to_str().unwrap(),
    ])
    .ok();
    work.path(dir)
}
