//! Finding and reading the user's key file from inside a process that may
//! run as root (sudo, su, sshd): with the user's file-system identity, so
//! the kernel applies the user's permissions to every path component, and
//! with ecp_core's checks (no symlink, regular file, owned by the user or
//! root, not writable by others, size-bounded).

use std::path::PathBuf;

use ecp_core::user_files::{as_user, read_certificate_as};
use nix::unistd::User;

/// Expands `%u` to the user name and a leading `~` to the home directory.
/// The user name has passed `UserName` validation, so it holds no `/`.
pub fn expand_path(template: &str, user: &str, home: &std::path::Path) -> PathBuf {
    let with_user = template.replace("%u", user);
    match with_user.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if with_user == "~" => home.to_path_buf(),
        None => PathBuf::from(with_user),
    }
}

/// Whether something exists at `path`, as the user sees it.
pub fn exists_for(account: &User, path: &std::path::Path) -> bool {
    as_user(account, || path.symlink_metadata().is_ok())
}

/// Reads the certificate at `path` for `account`, as the user would: its
/// DER, if it is there and a CA issued it (a self-signed one is enrolled
/// on the host or useless, so it is not sent). Anything else is None.
pub fn ca_issued_certificate_for(account: &User, path: &std::path::Path) -> Option<Vec<u8>> {
    let pem = read_certificate_as(account, path).ok()?;
    let cert = ecp_core::certificate::parse_user_certificate_pem(&pem).ok()?;
    (!cert.is_self_issued()).then(|| cert.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn paths_expand_user_and_home() {
        let home = Path::new("/home/alice");
        assert_eq!(
            expand_path(crate::options::DEFAULT_KEYFILE, "alice", home),
            Path::new("/home/alice/.config/ecp/private_key.pem")
        );
        assert_eq!(
            expand_path("/etc/ecp/keys/%u.pem", "alice", home),
            Path::new("/etc/ecp/keys/alice.pem")
        );
        assert_eq!(
            expand_path("/srv/%u/~/k", "bob", home),
            Path::new("/srv/bob/~/k")
        );
    }
}
