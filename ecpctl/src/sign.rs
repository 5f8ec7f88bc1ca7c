//! `ecpctl sign`.

use ecp_core::challenge::SignedAnswer;
use ecp_core::when::{format_utc, unix_now};
use ecp_core::Challenge;

use std::path::Path;

use crate::cli::SignArgs;
use crate::cli::TokenArgs;
use crate::failure::Failure;
use crate::keys::{presented_for, unlock};

pub fn run(args: &SignArgs) -> Result<(), Failure> {
    let challenge = Challenge::from_token(args.token.trim())?;
    let now = u64::try_from(unix_now()).unwrap_or(0);
    challenge.check_not_expired(now)?;
    eprintln!("{}", describe(&challenge, now));
    let answer = sign_token(
        args.token.trim(),
        args.key.as_deref(),
        args.cert.as_deref(),
        args.passphrase_file.as_deref(),
        &args.token_key,
    )?;
    println!("{answer}");
    Ok(())
}

/// Signs `token` with the key file (or the token key) and returns the
/// answer line: the signature, and a CA-issued certificate (`cert`, or
/// the one beside the key file) after it. Shared by `sign` and `askpass`,
/// which each show the person what is approved first, once. The token is
/// decoded and checked before the key is touched: nothing is unlocked for
/// a token that cannot be used.
pub fn sign_token(
    token: &str,
    key: Option<&Path>,
    cert: Option<&Path>,
    passphrase_file: Option<&Path>,
    token_key: &TokenArgs,
) -> Result<String, Failure> {
    let challenge = Challenge::from_token(token)?;
    let now = u64::try_from(unix_now()).unwrap_or(0);
    challenge.check_not_expired(now)?;

    let certificate_der = presented_for(key, cert, token_key)?;
    let key = if token_key.agent && key.is_none() && passphrase_file.is_none() {
        let wanted = crate::keys::certificate_key(cert)?;
        crate::keys::unlock_in_agent(wanted.as_ref().map(std::slice::from_ref))?
    } else {
        unlock(key, passphrase_file, token_key)?
    };
    Ok(SignedAnswer {
        signature: key.sign(&challenge.signed_bytes())?,
        certificate_der,
    }
    .to_line())
}

/// What the user approves by signing, in one line.
pub fn describe(challenge: &Challenge, now: u64) -> String {
    let left = challenge.expires_at.saturating_sub(now);
    // Where the server saw the login come from: an address that is not
    // yours means someone else is logging in with your signature.
    let from = origin(challenge);
    format!(
        "Approving login of {}@{} for service {} ({from}), valid until {} ({}m{:02}s left)",
        challenge.user,
        challenge.host,
        challenge.service,
        format_utc(i64::try_from(challenge.expires_at).unwrap_or(i64::MAX)),
        left / 60,
        left % 60
    )
}

/// Where the server saw the login come from, as the person signing reads
/// it. No remote address means a command run on the server itself (sudo,
/// su, its console), which is not "local" to someone signing elsewhere.
pub fn origin(challenge: &Challenge) -> String {
    if challenge.rhost.is_local() {
        format!("on {} itself, not from the network", challenge.host)
    } else {
        format!("a login from {}", challenge.rhost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecp_core::{HostName, RemoteHost, ServiceName, UserName};

    #[test]
    fn the_description_says_where_the_login_comes_from() {
        let challenge = |rhost: &str| {
            Challenge::unsealed(
                UserName::parse("alice").unwrap(),
                HostName::parse("server").unwrap(),
                ServiceName::parse("sshd").unwrap(),
                RemoteHost::parse(rhost).unwrap(),
                0,
                1000,
                300,
            )
            .unwrap()
        };
        let remote = describe(&challenge("203.0.113.9"), 1000);
        assert!(remote.contains("alice@server"), "{remote}");
        assert!(remote.contains("a login from 203.0.113.9"), "{remote}");
        assert!(remote.contains("5m00s left"), "{remote}");
        let local = describe(&challenge(""), 1000);
        assert!(
            local.contains("(on server itself, not from the network)"),
            "{local}"
        );
    }
}
