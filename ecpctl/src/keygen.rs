//! `ecpctl keygen`.

use std::os::unix::fs::DirBuilderExt;

use ecp_core::certificate::{build_self_signed_certificate, parse_certificate_pem};
use ecp_core::keyfile::{encrypt_key_to_pem, generate_signing_key, KdfParams};
use ecp_core::keyfile_io::{write_file_atomically, FileError};
use ecp_core::when::format_utc;

use crate::cli::KeygenArgs;
use crate::failure::Failure;
use crate::secrets::new_passphrase;

pub const PRIVATE_KEY_FILE: &str = "private_key.pem";
pub const CERTIFICATE_FILE: &str = "certificate.pem";

pub fn run(args: &KeygenArgs) -> Result<(), Failure> {
    let key_path = args.out.join(PRIVATE_KEY_FILE);
    let cert_path = args.out.join(CERTIFICATE_FILE);
    // Check before asking anything, so a refusal costs the user nothing.
    if !args.force {
        for path in [&key_path, &cert_path] {
            if path.symlink_metadata().is_ok() {
                return Err(Failure::File(FileError::AlreadyExists {
                    path: path.clone(),
                }));
            }
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.out)
        .map_err(|source| {
            Failure::File(FileError::Io {
                path: args.out.clone(),
                action: "create directory",
                source,
            })
        })?;

    let passphrase = new_passphrase(args.passphrase_file.as_deref())?;
    let key = generate_signing_key();
    let key_pem = encrypt_key_to_pem(&key, &passphrase, KdfParams::DEFAULT)?;
    let cert_pem = build_self_signed_certificate(&key, &args.user, args.days)?;
    drop(passphrase);

    write_file_atomically(&key_path, key_pem.as_bytes(), 0o600, None, args.force)
        .map_err(Failure::File)?;
    write_file_atomically(&cert_path, cert_pem.as_bytes(), 0o644, None, args.force)
        .map_err(Failure::File)?;

    let cert = parse_certificate_pem(cert_pem.as_bytes())?;
    println!(
        "private key:  {} (encrypted, mode 0600)",
        key_path.display()
    );
    println!("certificate:  {} (mode 0644)", cert_path.display());
    println!("user:         {}", cert.common_name());
    println!("fingerprint:  {}", cert.fingerprint());
    println!("valid until:  {}", format_utc(cert.not_after()));
    println!(
        "next step:    as root, `ecpctl enroll {} --cert {}`",
        args.user,
        cert_path.display()
    );
    Ok(())
}
