//! `ecpctl keygen`, and the key-pair writing `ecpctl enroll` shares.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use ecp_core::certificate::{build_self_signed_certificate, parse_certificate_pem};
use ecp_core::keyfile::{encrypt_key_to_pem, generate_signing_key, KdfParams};
use ecp_core::keyfile_io::{write_file_atomically, FileError};
use ecp_core::when::format_utc;
use ecp_core::{Passphrase, UserName};

use crate::cli::KeygenArgs;
use crate::failure::Failure;
use crate::secrets::new_passphrase;

pub use ecp_core::user_files::{CERTIFICATE_FILE, PRIVATE_KEY_FILE};

pub fn run(args: &KeygenArgs) -> Result<(), Failure> {
    if let Some(uri) = &args.pkcs11 {
        return keygen_on_token(args, uri);
    }
    if args.agent {
        return keygen_in_agent(args);
    }
    // Check before asking anything, so a refusal costs the user nothing.
    prepare_output(&args.out, args.force)?;
    let passphrase = new_passphrase(args.passphrase_file.as_deref())?;
    if args.csr {
        return write_key_and_request(&args.user, &args.out, passphrase, args.force);
    }
    let cert_pem = write_key_pair(&args.user, &args.out, args.days, passphrase, args.force)?;
    print_written(&args.out);
    let cert = parse_certificate_pem(cert_pem.as_bytes())?;
    println!("user:         {}", cert.common_name());
    println!("fingerprint:  {}", cert.fingerprint());
    println!("valid until:  {}", format_utc(cert.not_after()));
    println!(
        "next step:    as root, `ecpctl enroll {} --cert {}`",
        args.user,
        args.out.join(CERTIFICATE_FILE).display()
    );
    Ok(())
}

/// Generates a key pair for `user`, writes `out/private_key.pem` (0600,
/// encrypted) and `out/certificate_request.pem` for a CA to sign.
fn write_key_and_request(
    user: &UserName,
    out: &Path,
    passphrase: Passphrase,
    force: bool,
) -> Result<(), Failure> {
    let key_path = out.join(PRIVATE_KEY_FILE);
    let request_path = out.join(REQUEST_FILE);
    let key = generate_signing_key();
    let key_pem = encrypt_key_to_pem(&key, &passphrase, KdfParams::DEFAULT)?;
    drop(passphrase);
    let request = ecp_core::issue::build_certificate_request(&key, user)
        .map_err(|e| Failure::CheckFailed(e.to_string()))?;
    write_file_atomically(&key_path, key_pem.as_bytes(), 0o600, None, force)
        .map_err(Failure::File)?;
    write_file_atomically(&request_path, request.as_bytes(), 0o644, None, force)
        .map_err(Failure::File)?;
    println!(
        "private key:  {} (encrypted, mode 0600)",
        key_path.display()
    );
    println!("request:      {} (mode 0644)", request_path.display());
    println!(
        "next step:    have your CA sign it (`ecpctl ca sign` or openssl, see README) and put the certificate in {}",
        out.join(CERTIFICATE_FILE).display()
    );
    Ok(())
}

/// `keygen --pkcs11`: the key pair on the token (made now, or the one
/// there with --existing); only the certificate or request is written.
fn keygen_on_token(args: &KeygenArgs, uri: &str) -> Result<(), Failure> {
    let file = output_file(args)?;
    let options = crate::token::TokenOptions {
        module: args.pkcs11_module.clone(),
        pin_file: args.pin_file.clone(),
    };
    let key = if args.existing {
        crate::token::TokenKey::open(uri, &options)?
    } else {
        crate::token::TokenKey::generate(uri, &options)?
    };
    println!("key:          on token {} ({uri})", key.token_label);
    write_signed_by(args, &key, &file, &format!("sign with `--pkcs11 '{uri}'`"))
}

/// `keygen --agent`: the key an ssh agent holds; only the certificate or
/// request is written.
fn keygen_in_agent(args: &KeygenArgs) -> Result<(), Failure> {
    use crate::agent_key::{AgentKey, Wanted};
    let file = output_file(args)?;
    let key = AgentKey::open(Wanted::Named(args.agent_key.as_deref()))?;
    println!("key:          in the agent: {}", key.description());
    write_signed_by(args, &key, &file, "sign with `--agent`")?;
    // A plain ssh-agent signs whatever a server it is forwarded to asks.
    println!(
        "note:         before forwarding this agent (ssh -A), put `ecpctl agent --upstream` in front of it (it refuses relayed challenges) or add the key with `ssh-add -c`"
    );
    Ok(())
}

/// Where the certificate (or request) of a key kept elsewhere goes; the
/// directory is made, an existing file refused without --force.
fn output_file(args: &KeygenArgs) -> Result<std::path::PathBuf, Failure> {
    let file = args.out.join(if args.csr {
        REQUEST_FILE
    } else {
        CERTIFICATE_FILE
    });
    if !args.force && file.symlink_metadata().is_ok() {
        return Err(Failure::File(FileError::AlreadyExists { path: file }));
    }
    create_output_dir(&args.out)?;
    Ok(file)
}

/// Has `key` sign the certificate (or request) and writes it to `file`.
fn write_signed_by(
    args: &KeygenArgs,
    key: &impl ecp_core::certificate::P256Signer,
    file: &Path,
    how_to_sign: &str,
) -> Result<(), Failure> {
    let text = if args.csr {
        ecp_core::issue::build_certificate_request(key, &args.user)
            .map_err(|e| Failure::CheckFailed(e.to_string()))?
    } else {
        build_self_signed_certificate(key, &args.user, args.days)?
    };
    write_file_atomically(file, text.as_bytes(), 0o644, None, args.force).map_err(Failure::File)?;
    if args.csr {
        println!("request:      {} (mode 0644)", file.display());
        println!(
            "next step:    have your CA sign it and put the certificate in {}",
            args.out.join(CERTIFICATE_FILE).display()
        );
    } else {
        let cert = parse_certificate_pem(text.as_bytes())?;
        println!("certificate:  {} (mode 0644)", file.display());
        println!("fingerprint:  {}", cert.fingerprint());
        println!("valid until:  {}", format_utc(cert.not_after()));
        println!(
            "next step:    as root, `ecpctl enroll {} --cert {}`; {how_to_sign}",
            args.user,
            file.display()
        );
    }
    Ok(())
}

/// The certificate request `keygen --csr` writes beside the key.
pub const REQUEST_FILE: &str = "certificate_request.pem";

/// Says where `keygen` put the key pair.
pub fn print_written(out: &Path) {
    println!(
        "private key:  {} (encrypted, mode 0600)",
        out.join(PRIVATE_KEY_FILE).display()
    );
    println!(
        "certificate:  {} (mode 0644)",
        out.join(CERTIFICATE_FILE).display()
    );
}

/// Refuses existing key files (unless `force`) and creates `out` (0700).
pub fn prepare_output(out: &Path, force: bool) -> Result<(), Failure> {
    if !force {
        for name in [PRIVATE_KEY_FILE, CERTIFICATE_FILE] {
            let path = out.join(name);
            if path.symlink_metadata().is_ok() {
                return Err(Failure::File(FileError::AlreadyExists { path }));
            }
        }
    }
    create_output_dir(out)
}

/// Creates `out` (0700) if it is not there.
fn create_output_dir(out: &Path) -> Result<(), Failure> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .map_err(|source| {
            Failure::File(FileError::Io {
                path: out.to_path_buf(),
                action: "create directory",
                source,
            })
        })
}

/// Generates a key pair for `user`, writes `out/private_key.pem` (0600,
/// encrypted) and `out/certificate.pem` (0644); returns the certificate PEM.
pub fn write_key_pair(
    user: &UserName,
    out: &Path,
    days: u32,
    passphrase: Passphrase,
    force: bool,
) -> Result<String, Failure> {
    let key = generate_signing_key();
    let cert_pem = build_self_signed_certificate(&key, user, days)?;
    let files = (out.join(PRIVATE_KEY_FILE), out.join(CERTIFICATE_FILE));
    write_given_key_pair(&key, &cert_pem, &files, passphrase, force)?;
    Ok(cert_pem)
}

/// Writes `key` (encrypted with `passphrase`) and its certificate to
/// `files` (key, certificate), as [`write_key_pair`] does.
pub fn write_given_key_pair(
    key: &p256::ecdsa::SigningKey,
    cert_pem: &str,
    files: &(std::path::PathBuf, std::path::PathBuf),
    passphrase: Passphrase,
    force: bool,
) -> Result<(), Failure> {
    let (key_path, cert_path) = files;
    let key_pem = encrypt_key_to_pem(key, &passphrase, KdfParams::DEFAULT)?;
    drop(passphrase);

    write_file_atomically(key_path, key_pem.as_bytes(), 0o600, None, force)
        .map_err(Failure::File)?;
    write_file_atomically(cert_path, cert_pem.as_bytes(), 0o644, None, force)
        .map_err(Failure::File)?;
    Ok(())
}
