//! Finding and unlocking the user's key file.

use std::path::{Path, PathBuf};

use ecp_core::keyfile::decrypt_key_pem;
use ecp_core::keyfile_io::{read_key_file, ExpectedOwner};
use ecp_core::user_files::default_key_path;
use p256::ecdsa::SigningKey;

use crate::failure::Failure;
use crate::secrets::existing_passphrase;

/// `--key`, or `~/.config/ecp/private_key.pem` of the invoking user.
pub fn key_path_or_default(key: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(path) = key {
        return Ok(path.to_path_buf());
    }
    Ok(default_key_path(&home_dir()?))
}

pub fn home_dir() -> Result<PathBuf, Failure> {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => Ok(user.dir),
        _ => Err(Failure::Usage(format!(
            "cannot find the home directory of uid {uid}; give --key"
        ))),
    }
}

/// Whose key files we trust: our own (or root's); root trusts any owner.
pub fn expected_owner() -> ExpectedOwner {
    let uid = nix::unistd::getuid().as_raw();
    if uid == 0 {
        ExpectedOwner::Anyone
    } else {
        ExpectedOwner::Uid(uid)
    }
}

/// Reads the key file safely, gets its passphrase, and decrypts it.
pub fn unlock_key(path: &Path, passphrase_file: Option<&Path>) -> Result<SigningKey, Failure> {
    let pem = read_key_file(path, expected_owner()).map_err(Failure::KeyFileAccess)?;
    let passphrase = existing_passphrase(passphrase_file, path)?;
    Ok(decrypt_key_pem(&pem, &passphrase)?)
}

/// The certificate to present beside a signature made with `key_path`:
/// `cert` if given (it must be readable and a user certificate), else
/// `certificate.pem` beside the key if that is there. Only a CA-issued
/// certificate is presented: a self-signed one is enrolled on the host
/// (or useless there), so the bare signature is answered.
pub fn presented_certificate(
    key_path: &Path,
    cert: Option<&Path>,
) -> Result<Option<Vec<u8>>, Failure> {
    let path = match cert {
        Some(path) => path.to_path_buf(),
        None => {
            let beside = key_path.with_file_name(ecp_core::user_files::CERTIFICATE_FILE);
            if !beside.exists() {
                return Ok(None);
            }
            beside
        }
    };
    let pem = ecp_core::keyfile_io::read_owned_file(
        &path,
        ExpectedOwner::Anyone,
        ecp_core::certificate::MAX_CERTIFICATE_LEN,
    )
    .map_err(Failure::File)?;
    let parsed = ecp_core::certificate::parse_user_certificate_pem(&pem)?;
    Ok((!parsed.is_self_issued()).then(|| parsed.der().to_vec()))
}
