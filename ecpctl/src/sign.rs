//! `ecpctl sign`.

use ecp_core::when::{format_utc, unix_now};
use ecp_core::Challenge;

use crate::cli::SignArgs;
use crate::failure::Failure;
use crate::keys::{key_path_or_default, unlock_key};

pub fn run(args: &SignArgs) -> Result<(), Failure> {
    // Decode and check the token before touching the key: nothing is
    // unlocked for a token that cannot be used.
    let challenge = Challenge::from_token(args.token.trim())?;
    let now = u64::try_from(unix_now()).unwrap_or(0);
    challenge.check_not_expired(now)?;
    eprintln!("{}", describe(&challenge, now));

    let key_path = key_path_or_default(args.key.as_deref())?;
    let key = unlock_key(&key_path, args.passphrase_file.as_deref())?;
    println!("{}", challenge.sign(&key));
    Ok(())
}

/// What the user approves by signing, in one line.
pub fn describe(challenge: &Challenge, now: u64) -> String {
    let left = challenge.expires_at.saturating_sub(now);
    format!(
        "Approving login of {}@{} for service {}, valid until {} ({}m{:02}s left)",
        challenge.user,
        challenge.host,
        challenge.service,
        format_utc(i64::try_from(challenge.expires_at).unwrap_or(i64::MAX)),
        left / 60,
        left % 60
    )
}
