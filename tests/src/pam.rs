//! Driving the built pam_ecp.so through real libpam: pam_wrapper lets a
//! test use its own PAM service directory, and pamtester (or the small
//! Python ctypes driver) is the application.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, Run};

/// The built module.
pub fn module_path() -> PathBuf {
    binary("libpam_ecp.so")
}

/// A PAM service directory for pam_wrapper, removed on drop.
pub struct PamServices {
    dir: tempfile::TempDir,
}

impl PamServices {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ecp-pam-")
            .tempdir()
            .unwrap();
        Self { dir }
    }

    /// Writes service `name`; `$MODULE` in `lines` becomes the module path.
    pub fn add(&self, name: &str, lines: &str) {
        let text = lines.replace("$MODULE", module_path().to_str().unwrap());
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("LD_PRELOAD", "libpam_wrapper.so")
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", self.dir.path());
        cmd
    }

    /// `pamtester SERVICE USER OPS…` with `input` on standard input.
    pub fn pamtester(
        &self,
        service: &str,
        user: &str,
        ops: &[&str],
        rhost: &str,
        input: &str,
    ) -> Run {
        let rhost_item = format!("rhost={rhost}");
        let items: &[&str] = if rhost.is_empty() {
            &[]
        } else {
            &[&rhost_item]
        };
        self.pamtester_with_items(service, user, ops, items, input)
    }

    /// [`PamServices::pamtester`] with PAM items (`tty=/dev/tty1`, …).
    pub fn pamtester_with_items(
        &self,
        service: &str,
        user: &str,
        ops: &[&str],
        items: &[&str],
        input: &str,
    ) -> Run {
        let mut cmd = self.command("pamtester");
        cmd.arg("-v");
        for item in items {
            cmd.args(["-I", item]);
        }
        cmd.arg(service).arg(user).args(ops);
        crate::run_command(
            &format!("pamtester {service} {user} {ops:?}"),
            cmd,
            Some(input.as_bytes()),
        )
    }

    /// pamtester in challenge mode: waits for the `ecp challenge TOKEN`
    /// prompt, answers with `answer(token)`, and returns the run and token.
    pub fn pamtester_challenge(
        &self,
        service: &str,
        user: &str,
        answer: impl FnOnce(&str) -> String,
    ) -> (Run, String) {
        let mut child = self
            .command("pamtester")
            .args(["-v", service, user, "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pamtester");
        // misc_conv writes prompts to standard error.
        let mut stderr = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        let deadline = Instant::now() + Duration::from_secs(30);
        let token = loop {
            assert!(Instant::now() < deadline, "no challenge prompt");
            if stderr.read(&mut byte).unwrap() == 0 {
                break None;
            }
            seen.push(byte[0]);
            let text = String::from_utf8_lossy(&seen);
            if text.ends_with("Signature: ") {
                let token = text
                    .split("ecp challenge ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned);
                break token;
            }
        };
        let token = token.unwrap_or_default();
        let reply = if token.is_empty() {
            String::new()
        } else {
            answer(&token)
        };
        let mut stdin = child.stdin.take().unwrap();
        let _ = writeln!(stdin, "{reply}");
        drop(stdin);
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        let out = child.wait_with_output().unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: format!("{}{rest}", String::from_utf8_lossy(&seen)),
        };
        eprintln!(
            "$ pamtester {service} {user} (challenge)\n  exit {}\n  stdout: {}\n  stderr: {}",
            run.code, run.stdout, run.stderr
        );
        (run, token)
    }
}

impl Default for PamServices {
    fn default() -> Self {
        Self::new()
    }
}
