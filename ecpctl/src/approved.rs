//! The logins `ecpctl askpass` may sign for without asking: a list of
//! `user@host service user@destination` lines in
//! ~/.config/ecp/approved_hosts.
//!
//! Why a list: askpass answers prompts by itself (with ECP_PASSPHRASE_FILE
//! nothing is typed at all), so a host the user was lured to could pass on
//! a live challenge of another server and have it signed unseen. A login
//! that is not on the list is signed only after a "yes" typed on the
//! terminal, next to the user@host, service and origin it is for.
//!
//! The destination is what ssh says it is connected to: OpenSSH (8.4 and
//! later) starts every keyboard-interactive prompt with "(user@host) ", the
//! host as the user gave it. A relay forwards the real server's challenge,
//! whose user@host it cannot change, but ssh still names the relay as the
//! destination: so an entry approves a challenge only as seen through the
//! connection it was approved on. Older ssh passes the server's text as it
//! is, so the prefix is believed only when the program that ran askpass is
//! OpenSSH 8.4 or later; otherwise nothing is signed without a question.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ecp_core::Challenge;

use crate::failure::Failure;

/// A list longer than this is not one a person keeps by hand.
const MAX_LIST_BYTES: u64 = 1 << 20;

/// One approved login target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// `user@host` as the server names them in its challenge.
    account: String,
    service: String,
    /// `user@host` as ssh names its connection.
    destination: String,
}

impl Target {
    pub fn of(challenge: &Challenge, destination: &str) -> Target {
        Target {
            account: format!("{}@{}", challenge.user, challenge.host),
            service: challenge.service.to_string(),
            destination: destination.to_owned(),
        }
    }

    fn line(&self) -> String {
        format!("{} {} {}", self.account, self.service, self.destination)
    }
}

/// What ssh says it is connected to, from the "(user@host) " it puts
/// before a keyboard-interactive prompt.
pub fn ssh_destination(prompt: &str) -> Option<&str> {
    let inner = prompt.strip_prefix('(')?.split_once(") ")?.0;
    let plain = !inner.chars().any(|c| c.is_whitespace() || c.is_control());
    (inner.contains('@') && plain).then_some(inner)
}

/// Whether `destination` (as ssh names it) is exactly the challenge's own
/// user and host (host names compare without case): only then may a "yes"
/// be remembered. Anything else (an address, an alias, the host with a
/// domain) is approved one login at a time: a lure named
/// `vm.evil.example` relaying the challenge of host `vm` must not be
/// remembered for good. A server that wants its FQDN to match sets it as
/// `host_name` in ecpd.toml.
pub fn destination_is_challenge_host(destination: &str, challenge: &Challenge) -> bool {
    let Some((user, host)) = destination.split_once('@') else {
        return false;
    };
    user == challenge.user.as_str() && host.eq_ignore_ascii_case(challenge.host.as_str())
}

/// The version in `ssh -V` output ("OpenSSH_9.2p1 Debian-2, OpenSSL …").
pub(crate) fn openssh_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.trim_start().strip_prefix("OpenSSH_")?;
    let (major, rest) = rest.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Whether the program that started askpass is OpenSSH 8.4 or later: the
/// one case where the "(user@host) " before the prompt is ssh's own and
/// not text the server chose.
pub fn started_by_openssh_8_4_or_later() -> bool {
    let parent = std::os::unix::process::parent_id();
    let Ok(exe) = std::fs::read_link(format!("/proc/{parent}/exe")) else {
        return false;
    };
    if exe.file_name().is_none_or(|n| n != "ssh") {
        return false;
    }
    let Ok(out) = Command::new(&exe).arg("-V").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stderr);
    openssh_version(&text).is_some_and(|v| v >= (8, 4))
}

pub struct ApprovedHosts {
    path: PathBuf,
    targets: BTreeSet<Target>,
}

impl ApprovedHosts {
    /// Reads the list; a missing file is an empty list. A list that someone
    /// else could have written is refused, since it decides what is signed.
    pub fn load(path: &Path) -> Result<ApprovedHosts, Failure> {
        let unreadable = |e: &dyn std::fmt::Display| {
            Failure::Terminal(format!("cannot read {}: {e}", path.display()))
        };
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ApprovedHosts {
                    path: path.to_path_buf(),
                    targets: BTreeSet::new(),
                })
            }
            Err(e) => return Err(unreadable(&e)),
        };
        let meta = file.metadata().map_err(|e| unreadable(&e))?;
        let uid = nix::unistd::getuid().as_raw();
        if meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(Failure::Terminal(format!(
                "{} must belong to you (uid {uid}) and be writable by you alone \
                 (it is uid {}, mode {:o}): fix it with chmod go-w",
                path.display(),
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
        if meta.len() > MAX_LIST_BYTES {
            return Err(unreadable(&"the file is larger than 1 MiB"));
        }
        let mut targets = BTreeSet::new();
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| unreadable(&e))?;
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [account, service, destination]
                    if account.contains('@') && destination.contains('@') =>
                {
                    targets.insert(Target {
                        account: (*account).to_owned(),
                        service: (*service).to_owned(),
                        destination: (*destination).to_owned(),
                    });
                }
                _ => {
                    return Err(Failure::Terminal(format!(
                        "{}:{}: expected \"user@host service user@destination\", found \"{line}\"",
                        path.display(),
                        index + 1
                    )))
                }
            }
        }
        Ok(ApprovedHosts {
            path: path.to_path_buf(),
            targets,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, target: &Target) -> bool {
        self.targets.contains(target)
    }

    /// Appends `target` (file 0600, directory 0700 if new).
    pub fn add(&mut self, target: Target) -> Result<(), Failure> {
        let unwritable = |e: std::io::Error| {
            Failure::Terminal(format!("cannot add to {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(unwritable)?;
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&self.path)
            .map_err(unwritable)?;
        writeln!(file, "{}", target.line()).map_err(unwritable)?;
        self.targets.insert(target);
        Ok(())
    }
}

/// Asks on the controlling terminal; true only for a typed "yes". Input
/// typed (or injected) before the question is discarded first. No
/// terminal means no approval.
pub fn confirm_on_terminal(question: &str, list: &Path) -> Result<bool, Failure> {
    let no_terminal = |e: &dyn std::fmt::Display| {
        Failure::NotApproved(format!(
            "not on your approved list and there is no terminal to ask ({e}); \
             to approve it, answer \"yes\" when asked on a terminal, or add the \
             line \"user@host service user@destination\" to {}",
            list.display()
        ))
    };
    let mut tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| no_terminal(&e))?;
    nix::sys::termios::tcflush(&tty, nix::sys::termios::FlushArg::TCIFLUSH)
        .map_err(|e| no_terminal(&e))?;
    write!(tty, "{question} [yes/no] ").map_err(|e| no_terminal(&e))?;
    tty.flush().map_err(|e| no_terminal(&e))?;
    let mut answer = String::new();
    BufReader::new(tty)
        .read_line(&mut answer)
        .map_err(|e| no_terminal(&e))?;
    Ok(answer.trim().eq_ignore_ascii_case("yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecp_core::{HostName, RemoteHost, ServiceName, UserName};
    use std::os::unix::fs::PermissionsExt;

    fn challenge(user: &str, host: &str, service: &str) -> Challenge {
        Challenge::unsealed(
            UserName::parse(user).unwrap(),
            HostName::parse(host).unwrap(),
            ServiceName::parse(service).unwrap(),
            RemoteHost::parse("203.0.113.9").unwrap(),
            0,
            1000,
            300,
        )
        .unwrap()
    }

    fn target(user: &str, host: &str, service: &str, destination: &str) -> Target {
        Target::of(&challenge(user, host, service), destination)
    }

    #[test]
    fn a_login_is_approved_for_its_user_host_service_and_destination_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecp/approved_hosts");
        let mut list = ApprovedHosts::load(&path).unwrap();
        let login = target("alice", "server", "sshd", "alice@server.example");
        assert!(!list.contains(&login));
        list.add(login.clone()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "alice@server sshd alice@server.example\n"
        );

        let again = ApprovedHosts::load(&path).unwrap();
        assert!(again.contains(&login));
        for other in [
            target("alice", "other", "sshd", "alice@server.example"),
            target("alice", "server", "sudo", "alice@server.example"),
            target("bob", "server", "sshd", "alice@server.example"),
            // The same challenge through another connection: a relay.
            target("alice", "server", "sshd", "alice@phish.example"),
        ] {
            assert!(!again.contains(&other), "{other:?}");
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_list_others_can_write_or_that_is_malformed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approved_hosts");
        std::fs::write(&path, "# mine\nalice@server sshd alice@server\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(ApprovedHosts::load(&path).unwrap().contains(&target(
            "alice",
            "server",
            "sshd",
            "alice@server"
        )));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = ApprovedHosts::load(&path).err().unwrap().to_string();
        assert!(err.contains("writable by you alone"), "{err}");

        std::fs::write(&path, "alice@server sshd alice@server\nalice@server sshd\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = ApprovedHosts::load(&path).err().unwrap().to_string();
        assert!(err.contains("approved_hosts:2: expected"), "{err}");
    }
}

#[cfg(test)]
mod destination_tests {
    use super::*;
    use ecp_core::{HostName, RemoteHost, ServiceName, UserName};

    #[test]
    fn only_openssh_8_4_and_later_names_its_destination() {
        assert_eq!(
            openssh_version("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024\n"),
            Some((9, 2))
        );
        assert_eq!(openssh_version("OpenSSH_8.4p1, OpenSSL"), Some((8, 4)));
        assert!(openssh_version("OpenSSH_8.2p1 Ubuntu-4ubuntu0.11").unwrap() < (8, 4));
        assert_eq!(openssh_version("Dropbear v2022.83"), None);
        // This test's parent is cargo's test harness, not ssh.
        assert!(!started_by_openssh_8_4_or_later());
    }

    #[test]
    fn a_yes_is_remembered_only_for_the_challenge_host_itself() {
        let challenge = Challenge::unsealed(
            UserName::parse("alice").unwrap(),
            HostName::parse("web1").unwrap(),
            ServiceName::parse("sshd").unwrap(),
            RemoteHost::local(),
            0,
            1000,
            300,
        )
        .unwrap();
        for (destination, same) in [
            ("alice@web1", true),
            // A domain added is not the name in the challenge: a lure
            // called web1.evil.example must not be remembered.
            ("alice@web1.example.com", false),
            ("alice@web1.evil.example", false),
            ("alice@WEB1", true),
            ("alice@web10", false),
            ("alice@10.0.0.5", false),
            ("bob@web1", false),
            ("alice@web1evil.example", false),
        ] {
            assert_eq!(
                destination_is_challenge_host(destination, &challenge),
                same,
                "{destination}"
            );
        }
    }

    #[test]
    fn ssh_names_its_destination_before_keyboard_interactive_prompts() {
        assert_eq!(
            ssh_destination("(alice@server.example) ecp challenge T0K\nSignature: "),
            Some("alice@server.example")
        );
        assert_eq!(ssh_destination("ecp challenge T0K\nSignature: "), None);
        assert_eq!(ssh_destination("(not a destination) ecp challenge T"), None);
        assert_eq!(ssh_destination("(alice@h)ecp challenge T"), None);
        assert_eq!(ssh_destination("(alice@h\u{1b}[2J) ecp challenge T"), None);
    }
}
