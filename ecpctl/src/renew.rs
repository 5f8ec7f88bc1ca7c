//! `ecpctl renew`: a successor certificate enrolled on the strength of a
//! current key.

use std::path::{Path, PathBuf};

use ecp_core::certificate::{build_self_signed_certificate, parse_certificate_pem};
use ecp_core::challenge::RenewalChallenge;
use ecp_core::keyfile::generate_signing_key;
use ecp_core::user_files::{CERTIFICATE_FILE, PRIVATE_KEY_FILE};
use ecp_core::when::format_utc;
use ecp_core::UserName;

use crate::cli::RenewArgs;
use crate::daemon::{admin, call, read_text_file};
use crate::failure::Failure;
use crate::keygen::{prepare_output, write_given_key_pair};
use crate::keys::UnlockedKey;
use crate::secrets::new_passphrase;

/// The name of the calling account.
fn caller_name() -> Result<UserName, Failure> {
    let uid = nix::unistd::getuid();
    let account = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .ok_or_else(|| Failure::Usage(format!("uid {uid} has no account name; name the user")))?;
    UserName::parse(&account.name).map_err(|e| Failure::Usage(e.to_string()))
}

/// The current key: a key file, or a token with --pkcs11.
fn current_key(args: &RenewArgs) -> Result<UnlockedKey, Failure> {
    crate::keys::unlock(
        args.key.as_deref(),
        args.passphrase_file.as_deref(),
        &args.token_key,
    )
}

/// New key files written for the successor, removed again if ecpd says
/// no (only those this run created).
struct WrittenKey {
    created: Vec<PathBuf>,
}

impl WrittenKey {
    fn remove(self) {
        for path in self.created {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub fn run(bus: &str, args: &RenewArgs) -> Result<(), Failure> {
    let user = match &args.user {
        Some(user) => user.clone(),
        None => caller_name()?,
    };

    // The successor: a new key pair (written before ecpd is asked, so a
    // renewal never enrolls a key that is not on disk), or a certificate
    // for a key the user holds.
    let (successor_pem, written) = match (&args.key_out, &args.cert) {
        (Some(dir), _) => {
            prepare_output(dir, args.force)?;
            let current = current_key(args)?;
            let new_key = generate_signing_key();
            let pem = build_self_signed_certificate(&new_key, &user, args.days)?;
            let created = [PRIVATE_KEY_FILE, CERTIFICATE_FILE]
                .iter()
                .map(|name| dir.join(name))
                .filter(|path| path.symlink_metadata().is_err())
                .collect();
            let passphrase = new_passphrase(args.new_passphrase_file.as_deref())?;
            write_given_key_pair(&new_key, &pem, dir, passphrase, args.force)?;
            return finish(
                bus,
                args,
                &user,
                &current,
                &pem,
                Some(WrittenKey { created }),
            );
        }
        (None, Some(cert)) => (read_text_file(cert)?, None),
        (None, None) => {
            return Err(Failure::Usage(
                "give --key-out DIR (a new key) or --cert FILE (a key you hold)".into(),
            ))
        }
    };
    let current = current_key(args)?;
    finish(bus, args, &user, &current, &successor_pem, written)
}

/// Asks ecpd for a renewal challenge, signs it with `current`, and has the
/// successor enrolled.
fn finish(
    bus: &str,
    args: &RenewArgs,
    user: &UserName,
    current: &UnlockedKey,
    successor_pem: &str,
    written: Option<WrittenKey>,
) -> Result<(), Failure> {
    let successor = parse_certificate_pem(successor_pem.as_bytes())?;
    let outcome = zbus::block_on(async {
        let (_conn, proxy) = admin(bus).await?;
        let token = call(proxy.renewal_challenge(user.as_str(), successor_pem).await)?;
        // Sign only what was asked for: this user, this successor.
        let renewal = RenewalChallenge::from_token(&token)?;
        if renewal.challenge.user != *user || renewal.successor_hex() != successor.fingerprint() {
            return Err(Failure::CheckFailed(
                "ecpd answered with a renewal challenge for something else; nothing was signed"
                    .into(),
            ));
        }
        let signature = current.sign(&renewal.signed_bytes())?;
        call(
            proxy
                .renew(
                    user.as_str(),
                    &token,
                    &signature,
                    successor_pem,
                    args.label.as_deref().unwrap_or(""),
                    args.retire_old,
                )
                .await,
        )
    });
    let (fingerprint, label, retired) = match outcome {
        Ok(done) => done,
        Err(e) => {
            if let Some(written) = written {
                written.remove();
            }
            return Err(e);
        }
    };
    println!("user:         {user}");
    println!("enrolled:     {fingerprint} (label {label})");
    println!("valid until:  {}", format_utc(successor.not_after()));
    if retired.is_empty() {
        println!(
            "old key:      still enrolled until its certificate expires (--retire-old removes it)"
        );
    } else {
        println!("retired:      {retired}");
    }
    if let Some(dir) = args.key_out.as_deref() {
        print_next_steps(dir);
    }
    Ok(())
}

fn print_next_steps(dir: &Path) {
    println!(
        "next step:    use {} as your key (move it to ~/.config/ecp/ to make it the default)",
        dir.join(PRIVATE_KEY_FILE).display()
    );
}
