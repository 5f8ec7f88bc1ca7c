//! Asking the person whether to sign: on the agent's terminal in the
//! foreground, else through an askpass program in confirm mode (as
//! `ssh-agent -c` does: SSH_ASKPASS_PROMPT=confirm; yes is exit status 0
//! with an empty or "yes" answer). One question at a time.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a question waits for the person.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

pub enum Asker {
    Terminal,
    Askpass(PathBuf),
    /// No way to ask: every question is a no.
    Nobody,
}

pub struct Questions {
    asker: Asker,
    one_at_a_time: Mutex<()>,
}

impl Questions {
    pub fn new(asker: Asker) -> Questions {
        Questions {
            asker,
            one_at_a_time: Mutex::new(()),
        }
    }

    /// The asker for an agent: the terminal in the foreground (if it has
    /// one), else $SSH_ASKPASS, else ssh's default askpass if installed.
    pub fn for_agent(foreground: bool) -> Questions {
        // SSH_ASKPASS_REQUIRE=force asks through askpass even with a
        // terminal, as it makes ssh do.
        let forced = std::env::var_os("SSH_ASKPASS_REQUIRE").is_some_and(|v| v == "force");
        if foreground && !forced && std::fs::File::open("/dev/tty").is_ok() {
            return Questions::new(Asker::Terminal);
        }
        let program = std::env::var_os("SSH_ASKPASS")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                let default = PathBuf::from("/usr/bin/ssh-askpass");
                default.exists().then_some(default)
            });
        Questions::new(match program {
            Some(program) => Asker::Askpass(program),
            None => Asker::Nobody,
        })
    }

    pub fn can_ask(&self) -> bool {
        !matches!(self.asker, Asker::Nobody)
    }

    /// True only for a clear yes.
    pub fn confirm(&self, question: &str) -> Result<bool, String> {
        let _turn = self
            .one_at_a_time
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &self.asker {
            Asker::Terminal => on_terminal(question),
            Asker::Askpass(program) => through_askpass(program, question),
            Asker::Nobody => Err(
                "there is no way to ask (no terminal, no SSH_ASKPASS): nothing is signed".into(),
            ),
        }
    }
}

fn on_terminal(question: &str) -> Result<bool, String> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: the answer is read against one deadline, whatever
    // mode another program left the terminal in.
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open("/dev/tty")
        .map_err(|e| format!("cannot ask on the terminal: {e}"))?;
    // Typed-ahead (or injected) input is not an answer to this question.
    let _ = nix::sys::termios::tcflush(&tty, nix::sys::termios::FlushArg::TCIFLUSH);
    write!(tty, "\n{question} [yes/no] ").map_err(|e| e.to_string())?;
    tty.flush().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut answer = Vec::new();
    // Nobody at the terminal must not hold every later question.
    while !answer.contains(&b'\n') && answer.len() < 64 {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(tty.as_fd(), PollFlags::POLLIN)];
        let wait = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        if left.is_zero() || poll(&mut fds, wait).map_err(|e| e.to_string())? == 0 {
            let _ = writeln!(
                tty,
                "\n(no answer within {} seconds: not signed)",
                ANSWER_WAIT.as_secs()
            );
            return Ok(false);
        }
        let mut buffer = [0u8; 64];
        match tty.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(String::from_utf8_lossy(&answer)
        .trim()
        .eq_ignore_ascii_case("yes"))
}

fn through_askpass(program: &PathBuf, question: &str) -> Result<bool, String> {
    let mut command = Command::new(program);
    command.arg(question).env("SSH_ASKPASS_PROMPT", "confirm");
    let finished = super::run::run_with_deadline(&mut command, ANSWER_WAIT, 256)?;
    let answer = finished.stdout.trim();
    Ok(finished.success && (answer.is_empty() || answer.eq_ignore_ascii_case("yes")))
}
