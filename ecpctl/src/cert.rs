//! `ecpctl cert show` and `ecpctl cert check`.

use std::path::Path;
use std::time::Duration;

use ecp_core::certificate::{parse_user_certificate_pem, ParsedCertificate, MAX_CERTIFICATE_LEN};
use ecp_core::keyfile_io::{read_owned_file, ExpectedOwner, FileError};
use ecp_core::trust::{parse_ca_file, parse_crl_file, CrlPolicy, TrustStore};
use ecp_core::validate_certificate;
use ecp_core::when::{days_left, format_utc, unix_now};

use crate::cli::{CertCheckArgs, CertLdifArgs, CertShowArgs};
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
    // Shown whoever signed it; a self-issued one must sign itself.
    let cert = parse_user_certificate_pem(&pem)?;
    if cert.is_self_issued() {
        cert.check_self_signed()?;
    }
    print!("{}", describe(&cert, unix_now()));
    Ok(())
}

pub fn check(args: &CertCheckArgs) -> Result<(), Failure> {
    let pem = read_certificate_file(&args.file)?;
    if let Some(ca_file) = &args.ca_file {
        return check_ca_issued(args, ca_file, &pem);
    }
    let cert = validate_certificate(&pem, &args.user, unix_now(), Duration::from_secs(args.skew))?;
    println!(
        "OK: {} would be accepted for user {} (valid until {})",
        args.file.display(),
        args.user,
        format_utc(cert.not_after())
    );
    Ok(())
}

/// Prints an LDIF modify record adding the certificate to the user's
/// directory entry.
pub fn ldif(args: &CertLdifArgs) -> Result<(), Failure> {
    let plain = |text: &str| !text.is_empty() && !text.chars().any(char::is_control);
    if !plain(&args.dn) || !args.dn.contains('=') {
        return Err(Failure::Usage(format!(
            "--dn {:?}: not a distinguished name",
            args.dn
        )));
    }
    let attribute_ok = args
        .attribute
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
    if !attribute_ok || args.attribute.is_empty() {
        return Err(Failure::Usage(format!(
            "--attribute {:?}: not an attribute name",
            args.attribute
        )));
    }
    let pem = read_certificate_file(&args.file)?;
    let cert = parse_user_certificate_pem(&pem)?;
    if cert.is_self_issued() {
        cert.check_self_signed()?;
    }
    cert.check_user(&args.user)?;
    use base64::Engine as _;
    let value = base64::engine::general_purpose::STANDARD.encode(cert.der());
    // A DN with characters LDIF cannot carry plainly goes base64 too.
    let dn_line = if args.dn.is_ascii() && !args.dn.starts_with([' ', ':', '<']) {
        format!("dn: {}", args.dn)
    } else {
        format!(
            "dn:: {}",
            base64::engine::general_purpose::STANDARD.encode(&args.dn)
        )
    };
    println!(
        "{dn_line}\nchangetype: modify\nadd: {0}\n{0}:: {value}\n-",
        args.attribute
    );
    Ok(())
}

/// What ecpd decides about `pem` presented at login, with the CAs and CRLs
/// from the files named.
fn check_ca_issued(args: &CertCheckArgs, ca_file: &Path, pem: &[u8]) -> Result<(), Failure> {
    let read = |path: &Path| {
        read_owned_file(
            path,
            ExpectedOwner::Anyone,
            ecp_core::trust::MAX_TRUST_FILE_LEN,
        )
        .map_err(Failure::File)
    };
    let refused = |e: &dyn std::fmt::Display| Failure::CheckFailed(e.to_string());
    let cas = parse_ca_file(&read(ca_file)?).map_err(|e| refused(&e))?;
    let crls = match &args.crl_file {
        Some(path) => parse_crl_file(&read(path)?).map_err(|e| refused(&e))?,
        None => Vec::new(),
    };
    let (store, unused) = TrustStore::new(cas, crls).map_err(|e| refused(&e))?;
    for crl in unused {
        eprintln!(
            "note: the CRL of {} is of no CA in --ca-file; ignored",
            crl.issuer
        );
    }
    let der = parse_user_certificate_pem(pem)?.der().to_vec();
    let policy = CrlPolicy {
        require_crl: !args.no_require_crl,
        grace_secs: args.crl_grace_secs,
    };
    let accepted = store
        .check_presented(
            &der,
            &args.user,
            unix_now(),
            Duration::from_secs(args.skew),
            policy,
        )
        .map_err(|e| refused(&e))?;
    println!(
        "OK: {} would be accepted for user {} at login: issued by {} (serial {}), valid until {}",
        args.file.display(),
        args.user,
        accepted.issuer,
        accepted.certificate.serial_hex(),
        format_utc(accepted.certificate.not_after())
    );
    Ok(())
}

fn describe(cert: &ParsedCertificate, now: i64) -> String {
    let status = match cert.check_time(now, Duration::ZERO) {
        Ok(()) => format!("valid, {} days left", days_left(cert.not_after(), now)),
        Err(e) => e.to_string(),
    };
    let issuer = if cert.is_self_issued() {
        "itself (self-signed: enroll it with `ecpctl enroll`)".to_owned()
    } else {
        format!(
            "{} (present it at login; ecpd must trust this CA)",
            cert.issuer()
        )
    };
    format!(
        "subject:      CN={}\nissuer:       {issuer}\nfingerprint:  {} (SHA-256)\nserial:       {}\nnot before:   {}\nnot after:    {}\nstatus:       {}\nkey:          ECDSA P-256\n",
        cert.common_name(),
        cert.fingerprint(),
        cert.serial_hex(),
        format_utc(cert.not_before()),
        format_utc(cert.not_after()),
        status
    )
}
