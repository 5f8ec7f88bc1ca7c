//! `ecpctl ca sign`: an organisation CA kept in files signs a user's
//! certificate request.

use ecp_core::issue::{
    check_certificate_request, issue_user_certificate, CaSigningKey, IssueError,
};
use ecp_core::keyfile_io::{read_owned_file, write_file_atomically, ExpectedOwner};

use crate::cli::CaSignArgs;
use crate::failure::Failure;
use crate::secrets::{ask_passphrase, passphrase_from_file};

/// Requests and certificates are small; a CA key file too.
const MAX_INPUT_LEN: usize = 64 * 1024;

fn refused(e: IssueError) -> Failure {
    Failure::CheckFailed(e.to_string())
}

pub fn sign(args: &CaSignArgs) -> Result<(), Failure> {
    let read = |path: &std::path::Path, owner| {
        read_owned_file(path, owner, MAX_INPUT_LEN).map_err(Failure::File)
    };
    // The request is checked before the CA key is touched.
    let request =
        check_certificate_request(&read(&args.request, ExpectedOwner::Anyone)?).map_err(refused)?;
    if let Some(user) = &args.user {
        if *user != request.user {
            return Err(Failure::CheckFailed(format!(
                "the request is for {}, not for {user}",
                request.user
            )));
        }
    }
    if request.user.as_str() == "root" && !args.allow_root {
        return Err(Failure::CheckFailed(
            "the request is for root: give --allow-root if that is meant".into(),
        ));
    }
    eprintln!("signing a certificate for {}", request.user);
    let ca_cert = read(&args.ca_cert, ExpectedOwner::Anyone)?;
    // A CA key is as private as a user's: same owner and mode rules.
    let ca_key_pem = read(&args.ca_key, crate::keys::expected_owner())?;
    let encrypted = String::from_utf8_lossy(&ca_key_pem).contains("ENCRYPTED PRIVATE KEY");
    let passphrase = match (&args.passphrase_file, encrypted) {
        (Some(file), _) => Some(passphrase_from_file(file)?),
        (None, true) => Some(ask_passphrase(&format!(
            "Passphrase for CA key {}: ",
            args.ca_key.display()
        ))?),
        (None, false) => None,
    };
    let ca_key =
        CaSigningKey::from_pkcs8_pem(&ca_key_pem, passphrase.as_ref().map(|p| p.as_bytes()))
            .map_err(refused)?;
    drop(passphrase);
    let certificate =
        issue_user_certificate(&ca_cert, &ca_key, &request, args.days).map_err(refused)?;
    match &args.out {
        Some(path) => {
            write_file_atomically(path, certificate.as_bytes(), 0o644, None, false)
                .map_err(Failure::File)?;
            eprintln!(
                "certificate for {} written to {} (valid {} days)",
                request.user,
                path.display(),
                args.days
            );
        }
        None => print!("{certificate}"),
    }
    Ok(())
}
