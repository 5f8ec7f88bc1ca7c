//! A stand-in for the daemon's two decisions, for the offline demo and for
//! people writing their own signer: issue a challenge token, and check a
//! signature over it against a certificate. It keeps no state, so unlike
//! ecpd it cannot refuse a replay; it is not part of any login path.
//!
//!   challenge_tool issue USER HOST SERVICE
//!   challenge_tool verify CERT.pem TOKEN SIGNATURE

use std::process::ExitCode;
use std::time::Duration;

use ecp_core::when::unix_now;
use ecp_core::{validate_certificate, Challenge, HostName, ServiceName, UserName};

fn run(args: &[String]) -> Result<String, String> {
    match args {
        [cmd, user, host, service] if cmd == "issue" => {
            let challenge = Challenge::new_random(
                UserName::parse(user).map_err(|e| e.to_string())?,
                HostName::parse(host).map_err(|e| e.to_string())?,
                ServiceName::parse(service).map_err(|e| e.to_string())?,
                unix_now() as u64,
                300,
            )
            .map_err(|e| e.to_string())?;
            Ok(challenge.to_token())
        }
        [cmd, cert, token, signature] if cmd == "verify" => {
            let challenge = Challenge::from_token(token).map_err(|e| e.to_string())?;
            challenge
                .check_not_expired(unix_now() as u64)
                .map_err(|e| e.to_string())?;
            let pem = std::fs::read(cert).map_err(|e| format!("{cert}: {e}"))?;
            let cert =
                validate_certificate(&pem, &challenge.user, unix_now(), Duration::from_secs(300))
                    .map_err(|e| e.to_string())?;
            challenge
                .verify(cert.public_key(), signature)
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "signature valid: {}@{} service {}",
                challenge.user, challenge.host, challenge.service
            ))
        }
        _ => Err(
            "usage: challenge_tool issue USER HOST SERVICE | verify CERT TOKEN SIGNATURE".into(),
        ),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("challenge_tool: {e}");
            ExitCode::FAILURE
        }
    }
}
