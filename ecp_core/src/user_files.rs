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
