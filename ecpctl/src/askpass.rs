//! `ecpctl askpass`: SSH_ASKPASS that signs ecp challenges.

use std::path::PathBuf;

use ecp_core::when::unix_now;
use ecp_core::Challenge;

use crate::cli::AskpassArgs;
use crate::failure::Failure;
use crate::keys::{key_path_or_default, unlock_key};

/// The marker pam_ecp puts before the token in its prompt.
const MARKER: &str = "ecp challenge ";

/// Finds the token in a prompt, wherever sshd placed the line.
pub fn token_in(prompt: &str) -> Option<&str> {
    let at = prompt.find(MARKER)?;
    prompt[at + MARKER.len()..].split_whitespace().next()
}

pub fn run(args: &AskpassArgs) -> Result<(), Failure> {
    let prompt = args.prompt.join(" ");
    let Some(token) = token_in(&prompt) else {
        // Not ours: the person answers (their password), without echo.
        let answer = rpassword::prompt_password(&prompt)
            .map_err(|e| Failure::Terminal(format!("cannot ask on a terminal ({e})")))?;
        println!("{answer}");
        return Ok(());
    };
    let challenge = Challenge::from_token(token)?;
    challenge.check_not_expired(u64::try_from(unix_now()).unwrap_or(0))?;
    eprintln!(
        "{}",
        crate::sign::describe(&challenge, u64::try_from(unix_now()).unwrap_or(0))
    );
    let key = args
        .key
        .clone()
        .or_else(|| std::env::var_os("ECP_KEY_FILE").map(PathBuf::from));
    let key_path = key_path_or_default(key.as_deref())?;
    let passphrase_file = std::env::var_os("ECP_PASSPHRASE_FILE").map(PathBuf::from);
    let key = unlock_key(&key_path, passphrase_file.as_deref())?;
    println!("{}", challenge.sign(&key));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_found_in_folded_prompts() {
        assert_eq!(
            token_in("ecp challenge AbC_-1\nSignature: "),
            Some("AbC_-1")
        );
        assert_eq!(
            token_in("Password for x:\necp challenge T0K\nSignature: "),
            Some("T0K")
        );
        assert_eq!(token_in("alice@host's password: "), None);
    }
}
