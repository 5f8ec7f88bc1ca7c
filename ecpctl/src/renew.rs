//! `ecpctl renew`: a successor certificate enrolled on the strength of a
//! current key.

use std::path::{Path, PathBuf};

use ecp_core::certificate::{build_self_signed_certificate, parse_certificate_pem};
use ecp_core::challenge::RenewalChallenge;
use ecp_core::keyfile::generate_signing_key;
use ecp_core::user_files::{CERTIFICATE_FILE, PRIVATE_KEY_FILE};
use ecp_core::when::format_utc;
use ecp_core::{Passphrase, UserName};

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

/// The current key: a key file, a token with --pkcs11, or with --agent the
/// agent key that ecpd lets sign for `user`.
fn current_key(bus: &str, args: &RenewArgs, user: &UserName) -> Result<UnlockedKey, Failure> {
    if args.token_key.agent && args.key.is_none() && args.passphrase_file.is_none() {
        let wanted = crate::daemon::signing_keys(bus, user.as_str())?;
        return crate::keys::unlock_in_agent(Some(&wanted));
    }
    crate::keys::unlock(
        args.key.as_deref(),
        args.passphrase_file.as_deref(),
        &args.token_key,
    )
}

/// How many days the current certificate was issued for, when it lies
/// beside the current key file (`certificate.pem`) and carries that key:
/// ecpd lets a successor live no longer. Else the keygen default.
fn current_lifetime_days(args: &RenewArgs, current: &UnlockedKey) -> u32 {
    let default = ecp_core::certificate::DEFAULT_VALIDITY_DAYS;
    let UnlockedKey::File(key) = current else {
        return default;
    };
    let Ok(key_path) = crate::keys::key_path_or_default(args.key.as_deref()) else {
        return default;
    };
    let beside = key_path.with_file_name(CERTIFICATE_FILE);
    let Ok(cert) = std::fs::read(&beside)
        .ok()
        .and_then(|pem| parse_certificate_pem(&pem).ok())
        .ok_or(())
    else {
        return default;
    };
    if cert.public_key() != key.verifying_key() {
        return default;
    }
    let days = cert.not_after().saturating_sub(cert.not_before()) / ecp_core::when::SECONDS_PER_DAY;
    u32::try_from(days)
        .unwrap_or(u32::MAX)
        .clamp(1, ecp_core::certificate::MAX_VALIDITY_DAYS)
}

/// The successor's key pair, written under temporary names beside their
/// final ones until ecpd has enrolled the certificate: a refusal leaves
/// the directory as it was (also with --force, whose files are replaced
/// only on success), and a lost answer leaves both versions.
struct StagedKey {
    staged: (PathBuf, PathBuf),
    final_names: (PathBuf, PathBuf),
}

impl StagedKey {
    fn write(
        dir: &Path,
        key: &p256::ecdsa::SigningKey,
        pem: &str,
        passphrase: Passphrase,
    ) -> Result<Self, Failure> {
        let staged_name = |name: &str| dir.join(format!("{name}.new"));
        let staged = StagedKey {
            staged: (staged_name(PRIVATE_KEY_FILE), staged_name(CERTIFICATE_FILE)),
            final_names: (dir.join(PRIVATE_KEY_FILE), dir.join(CERTIFICATE_FILE)),
        };
        // Leftovers of an earlier interrupted run are ours to replace.
        if let Err(e) = write_given_key_pair(key, pem, &staged.staged, passphrase, true) {
            staged.discard();
            return Err(e);
        }
        Ok(staged)
    }

    fn discard(&self) {
        let _ = std::fs::remove_file(&self.staged.0);
        let _ = std::fs::remove_file(&self.staged.1);
    }

    fn commit(&self) -> Result<(), Failure> {
        for (from, to) in [
            (&self.staged.0, &self.final_names.0),
            (&self.staged.1, &self.final_names.1),
        ] {
            std::fs::rename(from, to).map_err(|source| {
                Failure::File(ecp_core::keyfile_io::FileError::Io {
                    path: to.clone(),
                    action: "rename the new key into place",
                    source,
                })
            })?;
        }
        Ok(())
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
    match (&args.key_out, &args.cert) {
        (Some(dir), _) => {
            prepare_output(dir, args.force)?;
            let current = current_key(bus, args, &user)?;
            let new_key = generate_signing_key();
            let days = args
                .days
                .unwrap_or_else(|| current_lifetime_days(args, &current));
            let pem = build_self_signed_certificate(&new_key, &user, days)?;
            let passphrase = new_passphrase(args.new_passphrase_file.as_deref())?;
            let staged = StagedKey::write(dir, &new_key, &pem, passphrase)?;
            finish(bus, args, &user, &current, &pem, Some(staged))
        }
        (None, Some(cert)) => {
            let pem = read_text_file(cert)?;
            let current = current_key(bus, args, &user)?;
            finish(bus, args, &user, &current, &pem, None)
        }
        (None, None) => Err(Failure::Usage(
            "give --key-out DIR (a new key) or --cert FILE (a key you hold)".into(),
        )),
    }
}

/// Asks ecpd for a renewal challenge, signs it with `current`, and has the
/// successor enrolled.
fn finish(
    bus: &str,
    args: &RenewArgs,
    user: &UserName,
    current: &UnlockedKey,
    successor_pem: &str,
    staged: Option<StagedKey>,
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
        // No answer: ecpd may have enrolled it. Keep the new key.
        Err(e @ Failure::DaemonUnreachable(_)) => {
            if let Some(staged) = &staged {
                eprintln!(
                    "ecpctl: the new key is kept as {} and {}: if `ecpctl list` shows {}, rename them into place",
                    staged.staged.0.display(),
                    staged.staged.1.display(),
                    successor.fingerprint()
                );
            }
            return Err(e);
        }
        Err(e) => {
            if let Some(staged) = &staged {
                staged.discard();
            }
            return Err(e);
        }
    };
    if let Some(staged) = &staged {
        staged.commit()?;
        println!(
            "private key:  {} (encrypted, mode 0600)",
            staged.final_names.0.display()
        );
        println!("certificate:  {}", staged.final_names.1.display());
    }
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
