//! Log lines to syslog with facility authpriv, as PAM modules do. Written
//! to /dev/log directly (the datagram protocol glibc's syslog(3) uses) so
//! that no global openlog() state of the host process is touched.

use std::os::unix::net::UnixDatagram;

const AUTHPRIV: u8 = 10;

#[derive(Debug, Clone, Copy)]
pub enum Severity {
    Alert = 1,
    Error = 3,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

/// Where a module call's log lines go, tagged with service and rhost.
pub struct Log {
    tag: String,
    debug: bool,
    /// Every line written, for the flow tests to read.
    #[cfg(test)]
    pub lines: std::cell::RefCell<Vec<String>>,
}

impl Log {
    pub fn new(service: &str, debug: bool) -> Self {
        // Service names are validated before they get here, but be safe:
        // nothing but printable ASCII reaches the log.
        let service: String = service
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        Self {
            tag: format!("pam_ecp({service}:auth)"),
            debug,
            #[cfg(test)]
            lines: Default::default(),
        }
    }

    pub fn write(&self, severity: Severity, message: &str) {
        if matches!(severity, Severity::Debug) && !self.debug {
            return;
        }
        let clean: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        #[cfg(test)]
        self.lines.borrow_mut().push(clean.clone());
        let line = format!(
            "<{}>{}[{}]: {}",
            AUTHPRIV * 8 + severity as u8,
            self.tag,
            std::process::id(),
            clean
        );
        // Logging must never fail a login or block it.
        if let Ok(socket) = UnixDatagram::unbound() {
            let _ = socket.set_nonblocking(true);
            let _ = socket.send_to(line.as_bytes(), "/dev/log");
        }
    }

    /// For what an admin must see at once (a login let through with the
    /// password alone).
    pub fn alert(&self, message: &str) {
        self.write(Severity::Alert, message);
    }
    pub fn error(&self, message: &str) {
        self.write(Severity::Error, message);
    }
    pub fn warning(&self, message: &str) {
        self.write(Severity::Warning, message);
    }
    pub fn info(&self, message: &str) {
        self.write(Severity::Info, message);
    }
    pub fn debug(&self, message: &str) {
        self.write(Severity::Debug, message);
    }
}
