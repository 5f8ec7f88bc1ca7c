//! `ecpctl cert show` and `ecpctl cert check`.

use std::path::Path;
use std::time::Duration;

use ecp_core::certificate::{parse_certificate_pem, ParsedCertificate, MAX_CERTIFICATE_LEN};
use ecp_core::keyfile_io::{read_owned_file, ExpectedOwner, FileError};
use ecp_core::validate_certificate;
use ecp_core::when::{days_left, format_utc, unix_now};

use crate::cli::{CertCheckArgs, CertShowArgs};
use crate::failure::Failure;

fn read_certificate_file(path: &Path) -> Result<Vec<u8>, Failure> {
    // Certificates are public: anyone may own them, but we still refuse
    // FIFOs, devices and huge files.
    match read_owned_file(path, ExpectedOwner::Anyone, MAX_CERTIFICATE_LEN) {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(FileError::WritableByOthers { .. }) => std::fs::read(path).map_err(|source| {
            Failure::File(FileError::Io {
                path: path.to_path_buf(),
                action: "read",
                source,
            })
        }),
        Err(e) => Err(Failure::File(e)),
    }
}

pub fn show(args: &CertShowArgs) -> Result<(), Failure> {
    let pem = read_certificate_file(&args.file)?;
    let cert = parse_certificate_pem(&pem)?;
    print!("{}", describe(&cert, unix_now()));
    Ok(())
}

pub fn check(args: &CertCheckArgs) -> Result<(), Failure> {
    let pem = read_certificate_file(&args.file)?;
    let cert = validate_certificate(&pem, &args.user, unix_now(), Duration::from_secs(args.skew))?;
    println!(
        "OK: {} would be accepted for user {} (valid until {})",
        args.file.display(),
        args.user,
        format_utc(cert.not_after())
    );
    Ok(())
}

fn describe(cert: &ParsedCertificate, now: i64) -> String {
    let status = match cert.check_time(now, Duration::ZERO) {
        Ok(()) => format!("valid, {} days left", days_left(cert.not_after(), now)),
        Err(e) => e.to_string(),
    };
    format!(
        "subject:      CN={}\nfingerprint:  {} (SHA-256)\nserial:       {}\nnot before:   {}\nnot after:    {}\nstatus:       {}\nkey:          ECDSA P-256\n",
        cert.common_name(),
        cert.fingerprint(),
        cert.serial_hex(),
        format_utc(cert.not_before()),
        format_utc(cert.not_after()),
        status
    )
}
