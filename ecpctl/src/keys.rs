//! Finding and unlocking the user's key file.

use std::path::{Path, PathBuf};

use ecp_core::keyfile::decrypt_key_pem;
use ecp_core::keyfile_io::{read_key_file, ExpectedOwner};
use ecp_core::user_files::{default_key_path, read_key_file_as};
use nix::unistd::User;
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

/// A key ready to sign: decrypted from its file, or logged in on a token.
pub enum UnlockedKey {
    File(SigningKey),
    Token(Box<crate::token::TokenKey>),
    Agent(Box<crate::agent_key::AgentKey>),
}

impl UnlockedKey {
    /// base64 of the DER ECDSA signature over `message`, as ecpd reads it.
    pub fn sign(&self, message: &[u8]) -> Result<String, Failure> {
        use p256::ecdsa::signature::Signer as _;
        let signature = match self {
            UnlockedKey::File(key) => key.sign(message),
            UnlockedKey::Token(token) => token.sign_message(message)?,
            UnlockedKey::Agent(agent) => agent.sign_message(message)?,
        };
        Ok(ecp_core::challenge::signature_text(&signature))
    }
}

/// The key the arguments name: the token with --pkcs11 (then --key must
/// not be given), else the key file (default path if none).
pub fn unlock(
    key: Option<&Path>,
    passphrase_file: Option<&Path>,
    token: &crate::cli::TokenArgs,
) -> Result<UnlockedKey, Failure> {
    if token.agent {
        if key.is_some() || passphrase_file.is_some() {
            return Err(Failure::Usage(
                "--agent signs with a key in an agent: leave out --key and --passphrase-file"
                    .into(),
            ));
        }
        let hint = certificate_key(None)?;
        return unlock_in_agent(hint.as_ref().map(std::slice::from_ref));
    }
    match &token.pkcs11 {
        Some(_) if key.is_some() || passphrase_file.is_some() => Err(Failure::Usage(
            "--pkcs11 names the key: leave out --key and --passphrase-file".into(),
        )),
        Some(uri) => {
            let options = crate::token::TokenOptions {
                module: token.pkcs11_module.clone(),
                pin_file: token.pin_file.clone(),
            };
            Ok(UnlockedKey::Token(Box::new(crate::token::TokenKey::open(
                uri, &options,
            )?)))
        }
        None if token.pkcs11_module.is_some() || token.pin_file.is_some() => Err(Failure::Usage(
            "--pkcs11-module and --pin-file go with --pkcs11 URI".into(),
        )),
        None => {
            let path = key_path_or_default(key)?;
            Ok(UnlockedKey::File(unlock_key(&path, passphrase_file)?))
        }
    }
}

/// The agent key among `wanted` (None: the agent's only P-256 key).
pub fn unlock_in_agent(
    wanted: Option<&[p256::ecdsa::VerifyingKey]>,
) -> Result<UnlockedKey, Failure> {
    use crate::agent_key::{AgentKey, Wanted};
    let wanted = match wanted {
        Some(keys) => Wanted::OneOf(keys),
        None => Wanted::Named(None),
    };
    Ok(UnlockedKey::Agent(Box::new(AgentKey::open(wanted)?)))
}

/// The public key of `cert`, else of ~/.config/ecp/certificate.pem if
/// there is one: which agent key `--agent` means.
pub fn certificate_key(cert: Option<&Path>) -> Result<Option<p256::ecdsa::VerifyingKey>, Failure> {
    let path = match cert {
        Some(path) => path.to_path_buf(),
        None => {
            let default = default_key_path(&home_dir()?)
                .with_file_name(ecp_core::user_files::CERTIFICATE_FILE);
            if !default.exists() {
                return Ok(None);
            }
            default
        }
    };
    let pem = ecp_core::keyfile_io::read_owned_file(
        &path,
        ExpectedOwner::Anyone,
        ecp_core::certificate::MAX_CERTIFICATE_LEN,
    )
    .map_err(Failure::File)?;
    Ok(Some(
        *ecp_core::certificate::parse_user_certificate_pem(&pem)?.public_key(),
    ))
}

/// The certificate to present with a signature by the key the arguments
/// name: for a token only the one given (`cert`); for a key file, as
/// [`presented_certificate`] finds it.
pub fn presented_for(
    key: Option<&Path>,
    cert: Option<&Path>,
    token: &crate::cli::TokenArgs,
) -> Result<Option<Vec<u8>>, Failure> {
    if token.pkcs11.is_some() || token.agent {
        return match cert {
            Some(cert) => presented_certificate(Path::new(""), Some(cert)),
            None => Ok(None),
        };
    }
    presented_certificate(&key_path_or_default(key)?, cert)
}

/// Reads the key file safely, gets its passphrase, and decrypts it.
pub fn unlock_key(path: &Path, passphrase_file: Option<&Path>) -> Result<SigningKey, Failure> {
    let pem = read_key_file(path, expected_owner()).map_err(Failure::KeyFileAccess)?;
    let passphrase = existing_passphrase(passphrase_file, path)?;
    Ok(decrypt_key_pem(&pem, &passphrase)?)
}

/// The account whose own key file root means by naming `user` without
/// `--key`: someone other than root, and other than whoever runs this.
/// None when the caller is not root (the daemon lets a user test only
/// themselves) or names root.
pub fn other_users_account(user: &ecp_core::UserName) -> Result<Option<User>, Failure> {
    if !nix::unistd::getuid().is_root() || user.as_str() == "root" {
        return Ok(None);
    }
    match User::from_name(user.as_str()) {
        Ok(Some(account)) if !account.uid.is_root() => Ok(Some(account)),
        Ok(Some(_)) => Ok(None),
        Ok(None) => Err(Failure::Usage(format!(
            "no account named {user} on this system; give its key with --key"
        ))),
        Err(e) => Err(Failure::Usage(format!("cannot look up {user}: {e}"))),
    }
}

/// [`unlock_key`] for `owner`'s key file, read the way pam_ecp reads it
/// (`read_key_file_as`: the owner's file-system identity, owned by them
/// or root); the passphrase comes from root's side (the terminal or a
/// file).
pub fn unlock_key_of(
    path: &Path,
    passphrase_file: Option<&Path>,
    owner: &User,
) -> Result<SigningKey, Failure> {
    let pem = read_key_file_as(owner, path).map_err(Failure::KeyFileAccess)?;
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
