//! `ecpctl askpass`: SSH_ASKPASS that signs ecp challenges.

use std::path::PathBuf;

use crate::cli::AskpassArgs;
use crate::failure::Failure;

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
    let key = args
        .key
        .clone()
        .or_else(|| std::env::var_os("ECP_KEY_FILE").map(PathBuf::from));
    let passphrase_file = std::env::var_os("ECP_PASSPHRASE_FILE").map(PathBuf::from);
    let signature = crate::sign::sign_token(token, key.as_deref(), passphrase_file.as_deref())?;
    println!("{signature}");
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
