//! Running a helper program (askpass, ssh -G) with a deadline: a program
//! that hangs must not hold the agent.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a program said and how it ended.
pub struct Finished {
    pub success: bool,
    pub stdout: String,
}

/// Runs `command` (stdin empty, stderr dropped), reading at most
/// `max_output` bytes of its standard output; kills it after `wait`.
pub fn run_with_deadline(
    command: &mut Command,
    wait: Duration,
    max_output: u64,
) -> Result<Finished, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.take(max_output).read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let deadline = Instant::now() + wait;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{:?} gave no answer within {} seconds",
                    command.get_program(),
                    wait.as_secs()
                ));
            }
        }
    };
    Ok(Finished {
        success: status.success(),
        stdout: reader.join().unwrap_or_default(),
    })
}
