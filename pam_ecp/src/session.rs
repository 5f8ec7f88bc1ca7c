//! Whether the calling process sits in a local session, on logind's word.
//!
//! A user can set or clear any environment variable (SSH_CONNECTION,
//! SSH_TTY) and PAM_RHOST is empty for sudo inside an ssh session, so
//! neither tells a console from an ssh login. The session scope a process
//! lives in is set by pam_systemd at login and cannot be left by the
//! user (scopes are not delegated), and logind's record of it
//! (/run/systemd/sessions/ID, written by root) says whether it is remote.

use std::os::unix::fs::MetadataExt;

/// logind's answer for the calling process: `Some(true)` for a local
/// session, `Some(false)` for a remote one, `None` when there is no
/// session to ask about (no logind, or a process outside any session).
pub fn logind_says_local() -> Option<bool> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let (uid, id) = session_of_cgroups(&cgroups)?;
    let record = std::path::Path::new("/run/systemd/sessions").join(&id);
    let meta = std::fs::symlink_metadata(&record).ok()?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&record).ok()?;
    // The record must be the session of the user whose slice it is in.
    if field(&text, "UID")? != uid.to_string() {
        return None;
    }
    local_in_record(&text)
}

/// Whether a logind session record is of a local session: REMOTE=0, at a
/// seat, with no remote host and not made by sshd. pam_systemd writes
/// REMOTE=0 for an ssh login that arrives from localhost (a tunnel, a
/// proxy, a port forward), so REMOTE alone does not tell.
fn local_in_record(text: &str) -> Option<bool> {
    let remote = remote_in_record(text)?;
    let seat = field(text, "SEAT").is_some_and(|s| !s.is_empty());
    let remote_host = field(text, "REMOTE_HOST").is_some_and(|h| !h.is_empty());
    let sshd = field(text, "SERVICE").is_some_and(|s| s.starts_with("sshd"));
    Some(!remote && seat && !remote_host && !sshd)
}

/// The (uid, logind session id) of a process in a session scope, from
/// /proc/self/cgroup text: exactly `/user.slice/user-UID.slice/
/// session-ID.scope` (cgroup v2, or v1's name=systemd hierarchy), where
/// systemd places sessions. A scope of that name deeper down is one the
/// user made in the part of the tree delegated to them (user@UID.service),
/// not a session.
fn session_of_cgroups(text: &str) -> Option<(u32, String)> {
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (hierarchy, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let unified = hierarchy == "0" && controllers.is_empty();
        if !unified && controllers != "name=systemd" {
            return None;
        }
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let [user_slice, slice, scope] = parts.as_slice() else {
            return None;
        };
        if *user_slice != "user.slice" {
            return None;
        }
        let uid = slice
            .strip_prefix("user-")?
            .strip_suffix(".slice")?
            .parse()
            .ok()?;
        let id = scope.strip_prefix("session-")?.strip_suffix(".scope")?;
        let plain =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        plain.then(|| (uid, id.to_owned()))
    })
}

/// The value of `KEY=` in a logind record.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// The REMOTE= line of a logind session record.
fn remote_in_record(text: &str) -> Option<bool> {
    match field(text, "REMOTE")? {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_read_from_the_scope_systemd_put_the_process_in() {
        assert_eq!(
            session_of_cgroups("0::/user.slice/user-1000.slice/session-3.scope\n"),
            Some((1000, "3".to_owned()))
        );
        assert_eq!(
            session_of_cgroups(
                "12:memory:/user.slice\n1:name=systemd:/user.slice/user-1000.slice/session-c2.scope\n"
            ),
            Some((1000, "c2".to_owned()))
        );
        // The user's own manager is no session: not known to be local.
        assert_eq!(
            session_of_cgroups(
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n"
            ),
            None
        );
        // A scope named like a session in the tree delegated to the user
        // (systemd-run --user --scope --unit=session-2) is not one.
        assert_eq!(
            session_of_cgroups(
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/session-2.scope\n"
            ),
            None
        );
        assert_eq!(
            session_of_cgroups("12:memory:/user.slice/user-1000.slice/session-2.scope\n"),
            None,
            "only the unified or name=systemd hierarchy places sessions"
        );
        assert_eq!(session_of_cgroups("0::/\n"), None);
        assert_eq!(session_of_cgroups("0::/session-../x.scope\n"), None);
        assert_eq!(session_of_cgroups("0::/a/session-../../x.scope\n"), None);
    }

    #[test]
    fn the_record_says_remote_or_local() {
        let record = "# This is private data. Do not parse.\nUID=1000\nUSER=alice\nREMOTE=1\nREMOTE_HOST=198.51.100.7\n";
        assert_eq!(remote_in_record(record), Some(true));
        assert_eq!(field(record, "UID"), Some("1000"));
        assert_eq!(remote_in_record("UID=1000\nREMOTE=0\n"), Some(false));
        assert_eq!(remote_in_record("UID=1000\n"), None);
        assert_eq!(remote_in_record("REMOTE=yes\n"), None);
        assert_eq!(remote_in_record("REMOTE_HOST=x\n"), None);

        // Local only at a seat, with no remote host, not made by sshd.
        let console = "UID=1000\nREMOTE=0\nSEAT=seat0\nVTNR=2\nSERVICE=login\n";
        assert_eq!(local_in_record(console), Some(true));
        for remote_looking in [
            "UID=1000\nREMOTE=0\nSERVICE=sshd\nSEAT=seat0\n",
            "UID=1000\nREMOTE=0\nREMOTE_HOST=::1\nSEAT=seat0\n",
            "UID=1000\nREMOTE=0\nSERVICE=login\n",
            "UID=1000\nREMOTE=1\nSEAT=seat0\n",
        ] {
            assert_eq!(
                local_in_record(remote_looking),
                Some(false),
                "{remote_looking}"
            );
        }
        assert_eq!(local_in_record("UID=1000\nSEAT=seat0\n"), None);
    }
}
