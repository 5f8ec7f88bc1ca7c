//! Module options from the PAM configuration line. Every option is known;
//! an unknown one is a configuration error and the login fails.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Key file if the user has one and the login is local, else
    /// challenge. A remote login (PAM_RHOST set) always gets a challenge.
    Auto,
    /// Sign locally with the user's encrypted key file (sudo, su, login,
    /// screen lockers).
    Keyfile,
    /// Show the token; the user answers with a signature made elsewhere
    /// (ssh: the key stays on the user's own machine).
    Challenge,
    /// Sign through the ssh agent of the user running the command
    /// (SSH_AUTH_SOCK: for sudo in an ssh session, the ecp agent forwarded
    /// from the user's own machine). Only for the invoking user's own
    /// login, never for one arriving from the network.
    Agent,
}

/// `root_console_rescue`: off, any text console of the machine (virtual
/// terminals, serial lines, hypervisor consoles), or (`=vt`) virtual
/// terminals only, for sites whose serial consoles are reachable from
/// afar (IPMI, console servers, a cloud's serial console).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleRescue {
    Off,
    Any,
    VirtualTerminals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// Key file path template: `%u` is the user name, a leading `~` the
    /// user's home directory.
    pub keyfile: String,
    /// The certificate presented with a key-file signature (a template
    /// like `keyfile`); None: `certificate.pem` beside the key file. Only a
    /// CA-issued certificate is sent.
    pub certfile: Option<String>,
    pub debug: bool,
    pub nouserok: bool,
    /// Lets `mode=keyfile` sign a remote login with a key file on this
    /// server. Off by default: that file proves nothing about the remote
    /// person, so the second factor would become a second password.
    pub allow_remote_keyfile: bool,
    /// Lets root in with the password alone at a text console when ecpd
    /// is not running: the one way back in for an admin once ecp guards
    /// the console too (pam-auth-update, authselect), other than booting
    /// to a rescue shell. Which consoles count.
    pub root_console_rescue: ConsoleRescue,
    /// Bus address; `None` is the real system bus socket.
    pub bus: Option<String>,
    pub timeout: Duration,
    /// The line after the token in challenge mode.
    pub prompt: String,
    /// Besides root, the account ecpd may run as.
    pub daemon_user: String,
    /// How long the agent may take to sign (the person may be asked on
    /// their own machine first).
    pub agent_timeout: Duration,
}

pub const DEFAULT_KEYFILE: &str = ecp_core::user_files::DEFAULT_KEY_FILE_OPTION;
pub const DEFAULT_PROMPT: &str = "Signature: ";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_DAEMON_USER: &str = "_ecpd";
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Auto,
            keyfile: DEFAULT_KEYFILE.into(),
            certfile: None,
            debug: false,
            nouserok: false,
            allow_remote_keyfile: false,
            root_console_rescue: ConsoleRescue::Off,
            bus: None,
            timeout: DEFAULT_TIMEOUT,
            prompt: DEFAULT_PROMPT.into(),
            daemon_user: DEFAULT_DAEMON_USER.into(),
            agent_timeout: DEFAULT_AGENT_TIMEOUT,
        }
    }
}

impl Options {
    /// Parses `debug`, `nouserok`, `allow_remote_keyfile`,
    /// `root_console_rescue`, `mode=`,
    /// `keyfile=`, `certfile=`, `bus=`, `timeout=`, `agent_timeout=`,
    /// `prompt=` and `daemon_user=`.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut options = Self::default();
        for arg in args {
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg, None),
            };
            match (key, value) {
                ("debug", None) => options.debug = true,
                ("nouserok", None) => options.nouserok = true,
                ("allow_remote_keyfile", None) => options.allow_remote_keyfile = true,
                ("root_console_rescue", None) => options.root_console_rescue = ConsoleRescue::Any,
                ("root_console_rescue", Some("vt")) => {
                    options.root_console_rescue = ConsoleRescue::VirtualTerminals
                }
                ("mode", Some("auto")) => options.mode = Mode::Auto,
                ("mode", Some("keyfile")) => options.mode = Mode::Keyfile,
                ("mode", Some("challenge")) => options.mode = Mode::Challenge,
                ("mode", Some("agent")) => options.mode = Mode::Agent,
                ("keyfile", Some(path)) if !path.is_empty() => options.keyfile = path.into(),
                ("certfile", Some(path)) if !path.is_empty() => {
                    options.certfile = Some(path.into())
                }
                ("bus", Some(address)) if !address.is_empty() => options.bus = Some(address.into()),
                ("timeout", Some(secs)) => options.timeout = seconds("timeout", secs)?,
                ("agent_timeout", Some(secs)) => {
                    options.agent_timeout = seconds("agent_timeout", secs)?
                }
                ("prompt", Some(text)) if !text.chars().any(char::is_control) => {
                    options.prompt = text.into()
                }
                ("daemon_user", Some(name)) if ecp_core::UserName::parse(name).is_ok() => {
                    options.daemon_user = name.into()
                }
                _ => return Err(format!("unknown or malformed option {arg:?}")),
            }
        }
        Ok(options)
    }
}

/// 1 to 300 seconds.
fn seconds(option: &str, text: &str) -> Result<Duration, String> {
    text.parse()
        .ok()
        .filter(|s| (1..=300).contains(s))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{option}={text}: expected 1 to 300 seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_options() {
        assert_eq!(Options::parse([]).unwrap(), Options::default());
    }

    #[test]
    fn every_option_is_read() {
        let o = Options::parse([
            "debug",
            "nouserok",
            "allow_remote_keyfile",
            "root_console_rescue",
            "mode=challenge",
            "keyfile=/etc/ecp/keys/%u.pem",
            "certfile=/etc/ecp/keys/%u.crt",
            "bus=unix:path=/tmp/x",
            "timeout=3",
            "prompt=Paste the signature: ",
            "daemon_user=ecpd",
            "agent_timeout=20",
        ])
        .unwrap();
        assert!(o.debug && o.nouserok && o.allow_remote_keyfile);
        assert_eq!(o.root_console_rescue, ConsoleRescue::Any);
        assert_eq!(
            Options::parse(["root_console_rescue=vt"])
                .unwrap()
                .root_console_rescue,
            ConsoleRescue::VirtualTerminals
        );
        assert_eq!(o.mode, Mode::Challenge);
        assert_eq!(o.keyfile, "/etc/ecp/keys/%u.pem");
        assert_eq!(o.certfile.as_deref(), Some("/etc/ecp/keys/%u.crt"));
        assert_eq!(o.bus.as_deref(), Some("unix:path=/tmp/x"));
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(o.prompt, "Paste the signature: ");
        assert_eq!(o.daemon_user, "ecpd");
        assert_eq!(o.agent_timeout, Duration::from_secs(20));
        assert_eq!(Options::parse(["mode=agent"]).unwrap().mode, Mode::Agent);
    }

    #[test]
    fn unknown_or_malformed_options_are_errors() {
        for bad in [
            "debgu",
            "mode=magic",
            "timeout=0",
            "timeout=x",
            "bus=",
            "certfile=",
            "nouserok=1",
            "root_console_rescue=yes",
            "root_console_rescue=",
            "prompt=a\nb",
            "daemon_user=../x",
            "agent_timeout=301",
            "mode=Agent",
        ] {
            assert!(Options::parse([bad]).is_err(), "{bad}");
        }
    }
}
