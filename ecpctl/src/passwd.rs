//! `ecpctl passwd`.

use std::os::unix::fs::MetadataExt;

use ecp_core::keyfile::{decrypt_key_pem, encrypt_key_to_pem, KdfParams};
use ecp_core::keyfile_io::{read_key_file, write_file_atomically, FileError, Ownership};

use crate::cli::PasswdArgs;
use crate::failure::Failure;
use crate::keys::{expected_owner, key_path_or_default};
use crate::secrets::{existing_passphrase, new_passphrase};

pub fn run(args: &PasswdArgs) -> Result<(), Failure> {
    let stdin = std::path::Path::new("-");
    if args.old_passphrase_file.as_deref() == Some(stdin)
        && args.new_passphrase_file.as_deref() == Some(stdin)
    {
        return Err(Failure::Usage(
            "only one of --old-passphrase-file and --new-passphrase-file can be \"-\"".into(),
        ));
    }
    let path = key_path_or_default(args.key.as_deref())?;
    let pem = read_key_file(&path, expected_owner()).map_err(Failure::KeyFileAccess)?;
    let meta = std::fs::symlink_metadata(&path).map_err(|source| {
        Failure::KeyFileAccess(FileError::Io {
            path: path.clone(),
            action: "stat",
            source,
        })
    })?;

    let old = existing_passphrase(args.old_passphrase_file.as_deref(), &path)?;
    let key = decrypt_key_pem(&pem, &old)?;
    drop(old);
    let new = new_passphrase(args.new_passphrase_file.as_deref())?;
    let new_pem = encrypt_key_to_pem(&key, &new, KdfParams::DEFAULT)?;

    // Only root can give a file to someone else; for anyone else the new
    // file is theirs already, as the old one had to be.
    let owner = nix::unistd::geteuid().is_root().then(|| Ownership {
        uid: meta.uid(),
        gid: meta.gid(),
    });
    write_file_atomically(&path, new_pem.as_bytes(), meta.mode() & 0o7777, owner, true)
        .map_err(Failure::File)?;
    eprintln!(
        "{}: passphrase changed; re-encrypted with scrypt N=2^{} r={} p={} and AES-256-CBC",
        path.display(),
        KdfParams::DEFAULT.log_n,
        KdfParams::DEFAULT.r,
        KdfParams::DEFAULT.p
    );
    Ok(())
}
