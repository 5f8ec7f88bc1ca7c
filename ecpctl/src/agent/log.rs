//! Where the agent says what it did: standard error in the foreground,
//! else syslog (facility auth, as ssh-agent), so a refused relay is on
//! record on the user's machine.

use std::os::unix::net::UnixDatagram;

pub struct AgentLog {
    foreground: bool,
}

const LOG_AUTH: u8 = 4 << 3;

impl AgentLog {
    pub fn new(foreground: bool) -> AgentLog {
        AgentLog { foreground }
    }

    pub fn info(&self, message: &str) {
        self.write(6, message);
    }

    pub fn warning(&self, message: &str) {
        self.write(4, message);
    }

    fn write(&self, severity: u8, message: &str) {
        // The agent's own words, but they quote hosts and comments: no
        // control character reaches a terminal or a log line.
        let clean: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if self.foreground {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "ecpctl agent: {clean}");
            return;
        }
        let line = format!(
            "<{}>ecpctl-agent[{}]: {clean}",
            LOG_AUTH | severity,
            std::process::id()
        );
        if let Ok(socket) = UnixDatagram::unbound() {
            let _ = socket.send_to(line.as_bytes(), "/dev/log");
        }
    }
}
