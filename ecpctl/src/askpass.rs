//! `ecpctl askpass`: SSH_ASKPASS that signs ecp challenges.

use std::path::PathBuf;

use ecp_core::challenge::token_in_prompt;
use ecp_core::user_files::approved_hosts_path;
use ecp_core::when::unix_now;
use ecp_core::Challenge;

use crate::approved::{
    confirm_on_terminal, destination_is_challenge_host, ssh_destination,
    started_by_openssh_8_4_or_later, ApprovedHosts, Target,
};
use crate::cli::AskpassArgs;
use crate::failure::Failure;
use crate::keys::home_dir;
use crate::sign::describe;

pub fn run(args: &AskpassArgs) -> Result<(), Failure> {
    let prompt = args.prompt.join(" ");
    let Some(token) = token_in_prompt(&prompt) else {
        // Not ours: the person answers (their password), without echo.
        // The server wrote this text: no control character reaches the
        // terminal, where one could make it answer on its own.
        let shown: String = prompt
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect();
        let answer = rpassword::prompt_password(&shown)
            .map_err(|e| Failure::Terminal(format!("cannot ask on a terminal ({e})")))?;
        println!("{answer}");
        return Ok(());
    };
    let challenge = Challenge::from_token(token)?;
    let now = u64::try_from(unix_now()).unwrap_or(0);
    challenge.check_not_expired(now)?;
    let mut approved = ApprovedHosts::load(&approved_hosts_path(&home_dir()?))?;
    // Believed only from OpenSSH 8.4 on, which always writes it itself.
    let destination = ssh_destination(&prompt).filter(|_| started_by_openssh_8_4_or_later());
    let target = destination.map(|d| Target::of(&challenge, d));
    let on_list = target.as_ref().is_some_and(|t| approved.contains(t));
    let mut remember = None;
    if !on_list {
        let account = format!("{}@{}", challenge.user, challenge.host);
        let (connection, remembered) = match (destination, target) {
            (Some(d), Some(t)) if destination_is_challenge_host(d, &challenge) => (
                format!(
                    "ssh is connected to {d}. A \"yes\" signs and remembers this login \
                     (service {}) in {}.",
                    challenge.service,
                    approved.path().display()
                ),
                Some(t),
            ),
            // A challenge for another host than the one ssh talks to is
            // what a relay looks like (or an address or an alias): it is
            // approved one login at a time.
            (Some(d), _) => (
                format!(
                    "ssh is connected to {d}, but this challenge is for {account}: the \
                     names differ. If you did not expect {account}, answer no: someone \
                     may be relaying your login. A \"yes\" signs this login only and is \
                     asked again next time."
                ),
                None,
            ),
            _ => (
                "Which host ssh is connected to is not known (not ssh, or ssh older than \
                 8.4). A \"yes\" signs this login only."
                    .to_owned(),
                None,
            ),
        };
        let question = format!(
            "ecp: {} is not on your approved list for service {}.\n{}\n{connection}\n\
             Sign it?",
            account,
            challenge.service,
            describe(&challenge, now),
        );
        if !confirm_on_terminal(&question, approved.path())? {
            return Err(Failure::NotApproved(
                "not approved: nothing was signed".into(),
            ));
        }
        remember = remembered;
    } else {
        // On the list: signed without a question, but still shown.
        eprintln!("{}", describe(&challenge, now));
    }
    let key = args
        .key
        .clone()
        .or_else(|| std::env::var_os("ECP_KEY_FILE").map(PathBuf::from));
    let passphrase_file = std::env::var_os("ECP_PASSPHRASE_FILE").map(PathBuf::from);
    let cert = std::env::var_os("ECP_CERT_FILE").map(PathBuf::from);
    let token_key = token_key_to_use(
        &args.token_key,
        key.is_some(),
        nix::unistd::geteuid().is_root(),
        |name| std::env::var_os(name),
    );
    let mut token_key = token_key;
    // With an ecp agent running, askpass signs through it unless a key
    // file or token is named: the passphrase was typed once, at its start.
    if key.is_none()
        && token_key.pkcs11.is_none()
        && std::env::var_os("ECP_AUTH_SOCK").is_some_and(|s| !s.is_empty())
    {
        token_key.agent = true;
    }
    let passphrase_file =
        passphrase_file.filter(|_| token_key.pkcs11.is_none() && !token_key.agent);
    let signature = crate::sign::sign_token(
        token,
        key.as_deref(),
        cert.as_deref(),
        passphrase_file.as_deref(),
        &token_key,
    )?;
    if let Some(target) = remember {
        approved.add(target)?;
    }
    println!("{signature}");
    Ok(())
}

/// The token key from the arguments, else from $ECP_PKCS11_URI (and
/// $ECP_PIN_FILE): SSH_ASKPASS cannot pass arguments itself. Not for root:
/// an inherited environment must not choose which module root's process
/// loads or which file it reads as a PIN.
fn token_key_to_use(
    given: &crate::cli::TokenArgs,
    key_file_given: bool,
    as_root: bool,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> crate::cli::TokenArgs {
    let mut token_key = given.clone();
    if token_key.pkcs11.is_none() && !key_file_given && !as_root {
        token_key.pkcs11 = env("ECP_PKCS11_URI")
            .and_then(|u| u.into_string().ok())
            .filter(|u| !u.is_empty());
        if token_key.pkcs11.is_some() && token_key.pin_file.is_none() {
            token_key.pin_file = env("ECP_PIN_FILE").map(PathBuf::from);
        }
    }
    token_key
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

    #[test]
    fn root_takes_no_token_or_pin_file_from_the_environment() {
        let env = |name: &str| match name {
            "ECP_PKCS11_URI" => Some("pkcs11:token=t;object=k".into()),
            "ECP_PIN_FILE" => Some("/home/mallory/pin".into()),
            _ => None,
        };
        let none = crate::cli::TokenArgs::default();
        let user = token_key_to_use(&none, false, false, env);
        assert_eq!(user.pkcs11.as_deref(), Some("pkcs11:token=t;object=k"));
        assert_eq!(user.pin_file, Some(PathBuf::from("/home/mallory/pin")));
        let root = token_key_to_use(&none, false, true, env);
        assert!(root.pkcs11.is_none() && root.pin_file.is_none());
        // A key file given wins over the environment.
        assert!(token_key_to_use(&none, true, false, env).pkcs11.is_none());
    }
}
