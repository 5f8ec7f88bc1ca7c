//! `ecpctl askpass`: SSH_ASKPASS that signs ecp challenges.

use std::path::PathBuf;

use ecp_core::challenge::token_in_prompt;
use ecp_core::user_files::approved_hosts_path;
use ecp_core::when::unix_now;
use ecp_core::Challenge;

use crate::approved::{confirm_on_terminal, ssh_destination, ApprovedHosts, Target};
use crate::cli::AskpassArgs;
use crate::failure::Failure;
use crate::keys::home_dir;
use crate::sign::describe;

pub fn run(args: &AskpassArgs) -> Result<(), Failure> {
    let prompt = args.prompt.join(" ");
    let Some(token) = token_in_prompt(&prompt) else {
        // Not ours: the person answers (their password), without echo.
        let answer = rpassword::prompt_password(&prompt)
            .map_err(|e| Failure::Terminal(format!("cannot ask on a terminal ({e})")))?;
        println!("{answer}");
        return Ok(());
    };
    let challenge = Challenge::from_token(token)?;
    let now = u64::try_from(unix_now()).unwrap_or(0);
    challenge.check_not_expired(now)?;
    let mut approved = ApprovedHosts::load(&approved_hosts_path(&home_dir()?))?;
    let destination = ssh_destination(&prompt);
    let target = Target::of(&challenge, destination);
    let newly_approved = !approved.contains(&target);
    if newly_approved {
        let account = format!("{}@{}", challenge.user, challenge.host);
        let connection = match destination {
            Some(d) if d == account => format!("ssh is connected to {d}."),
            // A challenge for another host than the one ssh talks to is
            // what a relay looks like (or an alias, or an address).
            Some(d) => format!(
                "ssh is connected to {d}, but this challenge is for {account}: if you did \
                 not expect that name, answer no, someone may be relaying your login."
            ),
            None => "ssh did not say which host it is connected to.".to_owned(),
        };
        let question = format!(
            "ecp: this login is not on your approved list {}.\n{}\n{connection}\n\
             Approve {account} for service {} {} from now on, and sign?",
            approved.path().display(),
            describe(&challenge, now),
            challenge.service,
            destination.map_or_else(String::new, |d| format!("through {d}")),
        );
        if !confirm_on_terminal(&question, approved.path())? {
            return Err(Failure::NotApproved(
                "not approved: nothing was signed".into(),
            ));
        }
    }
    let key = args
        .key
        .clone()
        .or_else(|| std::env::var_os("ECP_KEY_FILE").map(PathBuf::from));
    let passphrase_file = std::env::var_os("ECP_PASSPHRASE_FILE").map(PathBuf::from);
    let signature = crate::sign::sign_token(token, key.as_deref(), passphrase_file.as_deref())?;
    if newly_approved {
        approved.add(target)?;
    }
    println!("{signature}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_found_in_folded_prompts() {
        assert_eq!(
            token_in_prompt("ecp challenge AbC_-1\nSignature: "),
            Some("AbC_-1")
        );
        assert_eq!(
            token_in_prompt("Password for x:\necp challenge T0K\nSignature: "),
            Some("T0K")
        );
        assert_eq!(token_in_prompt("alice@host's password: "), None);
    }
}
