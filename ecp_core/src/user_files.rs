//! Where a user's ecp files live: one directory under the home directory,
//! the same for the module, the CLI and the docs.

use std::path::{Path, PathBuf};

/// The user's ecp directory, relative to the home directory.
pub const USER_DIR: &str = ".config/ecp";
/// The encrypted private key (PKCS#8, mode 0600).
pub const PRIVATE_KEY_FILE: &str = "private_key.pem";
/// The certificate that goes with it (mode 0644).
pub const CERTIFICATE_FILE: &str = "certificate.pem";
/// The logins `ecpctl askpass` signs for without asking.
pub const APPROVED_HOSTS_FILE: &str = "approved_hosts";
/// The default key file as a PAM `keyfile=` option writes it.
pub const DEFAULT_KEY_FILE_OPTION: &str = "~/.config/ecp/private_key.pem";

/// `home`/.config/ecp.
pub fn user_dir(home: &Path) -> PathBuf {
    home.join(USER_DIR)
}

/// `home`/.config/ecp/private_key.pem.
pub fn default_key_path(home: &Path) -> PathBuf {
    user_dir(home).join(PRIVATE_KEY_FILE)
}

/// `home`/.config/ecp/approved_hosts.
pub fn approved_hosts_path(home: &Path) -> PathBuf {
    user_dir(home).join(APPROVED_HOSTS_FILE)
}

/// Runs `f` with the file-system uid and gid of `account` when the process
/// is root and the account is not, and restores them afterwards, also
/// when `f` panics: every path component is then checked with the user's
/// uid and primary gid (the process's supplementary groups still count,
/// which is why readers also insist on the user or root owning the file).
/// fsuid is per thread on Linux, so other threads are unaffected.
pub fn as_user<T>(account: &nix::unistd::User, f: impl FnOnce() -> T) -> T {
    use nix::unistd::{setfsgid, setfsuid, Gid, Uid};
    /// Puts root's file-system ids back when dropped.
    struct Restore(Uid, Gid);
    impl Drop for Restore {
        fn drop(&mut self) {
            setfsuid(self.0);
            setfsgid(self.1);
        }
    }
    let switch = nix::unistd::geteuid().is_root() && !account.uid.is_root();
    if !switch {
        return f();
    }
    let old_gid = setfsgid(account.gid);
    let old_uid = setfsuid(account.uid);
    let _restore = Restore(old_uid, old_gid);
    f()
}

/// Reads `account`'s key file at `path` as that user would (see
/// [`as_user`]), owned by the user or root, with every check of
/// [`read_key_file`](crate::keyfile_io::read_key_file): what pam_ecp does
/// inside sudo or login, and ecpctl for root naming another user.
pub fn read_key_file_as(
    account: &nix::unistd::User,
    path: &Path,
) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::keyfile_io::FileError> {
    use crate::keyfile_io::{read_key_file, ExpectedOwner};
    as_user(account, || {
        read_key_file(path, ExpectedOwner::Uid(account.uid.as_raw()))
    })
}

/// Reads `account`'s certificate at `path` as that user would, owned by
/// the user or root, bounded like any certificate (no symlink, no FIFO).
pub fn read_certificate_as(
    account: &nix::unistd::User,
    path: &Path,
) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::keyfile_io::FileError> {
    use crate::keyfile_io::{read_owned_file, ExpectedOwner};
    as_user(account, || {
        read_owned_file(
            path,
            ExpectedOwner::Uid(account.uid.as_raw()),
            crate::certificate::MAX_CERTIFICATE_LEN,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_form_names_the_same_file() {
        let home = Path::new("/home/alice");
        let option = DEFAULT_KEY_FILE_OPTION.replacen('~', "/home/alice", 1);
        assert_eq!(default_key_path(home), Path::new(&option));
    }
}
