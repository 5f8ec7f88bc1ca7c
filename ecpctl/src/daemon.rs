//! Commands that talk to ecpd through the shared proxies in
//! `ecp_core::bus`. zbus 6 has no blocking API: each command runs its
//! async body in `zbus::block_on`.

use std::path::Path;
use std::time::Duration;

use ecp_core::bus::{AdminProxy, AuthProxy, CertificateEntry, EcpError};
use ecp_core::when::{format_utc, unix_now};

use crate::cli::{EnrollArgs, JsonArg, ListArgs, RevokeArgs, TestLoginArgs, UserArg};
use crate::failure::Failure;
use crate::keygen::{prepare_output, write_key_pair, CERTIFICATE_FILE};
use crate::keys::presented_for;

/// How long any one call may take before we give up.
const METHOD_TIMEOUT: Duration = Duration::from_secs(25);

async fn connect(bus: &str) -> Result<zbus::Connection, Failure> {
    ecp_core::bus::connection_builder(bus)
        .method_timeout(METHOD_TIMEOUT)
        .build()
        .await
        .map_err(crate::unreachable::failure(bus))
}

pub(crate) fn call<T>(result: Result<T, EcpError>) -> Result<T, Failure> {
    result.map_err(Failure::from_daemon)
}

pub(crate) async fn admin(bus: &str) -> Result<(zbus::Connection, AdminProxy<'static>), Failure> {
    let conn = connect(bus).await?;
    let proxy = AdminProxy::new(&conn)
        .await
        .map_err(crate::unreachable::failure(bus))?;
    Ok((conn, proxy))
}

pub(crate) fn read_text_file(path: &Path) -> Result<String, Failure> {
    let bytes = ecp_core::keyfile_io::read_owned_file(
        path,
        ecp_core::keyfile_io::ExpectedOwner::Anyone,
        ecp_core::certificate::MAX_CERTIFICATE_LEN,
    )
    .map_err(Failure::File)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Failure::Usage(format!("{}: not a text file", path.display())))
}

pub fn enroll(bus: &str, args: &EnrollArgs) -> Result<(), Failure> {
    let pem = match &args.cert {
        // The daemon decides who may enroll; it is asked even for non-root.
        Some(path) => read_text_file(path)?,
        None if !nix::unistd::geteuid().is_root() => {
            // Checked here only to save writing key files for nothing.
            return Err(Failure::DaemonRefused(
                "only root may enroll certificates; make your key with `ecpctl keygen` \
                 and ask an administrator to enroll the certificate"
                    .into(),
            ));
        }
        None => generate_for(args)?,
    };
    // The same rule the daemon applies, so a bad file fails here with the
    // same message before anything is sent.
    ecp_core::validate_certificate(
        pem.as_bytes(),
        &args.user,
        ecp_core::when::unix_now(),
        ecp_core::certificate::DEFAULT_CLOCK_SKEW,
    )?;
    zbus::block_on(async {
        let (_conn, proxy) = admin(bus).await?;
        let fingerprint = call(proxy.enroll(args.user.as_str(), &pem, &args.label).await)?;
        println!("enrolled {} for {}", fingerprint, args.user);
        Ok(())
    })
}

/// Generates the key pair for `args.user`. When root works for another
/// user, the files are written with that user's identity (effective uid
/// and gid), so the kernel checks the user's own permissions on every path
/// component and the files are the user's: no symlink planted in the
/// user's home can redirect a write by root.
fn generate_for(args: &EnrollArgs) -> Result<String, Failure> {
    let account = nix::unistd::User::from_name(args.user.as_str())
        .ok()
        .flatten()
        .ok_or_else(|| {
            Failure::Usage(format!(
                "no account named {} on this system; use --cert for a certificate made elsewhere",
                args.user
            ))
        })?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| ecp_core::user_files::user_dir(&account.dir));
    let days = args
        .days
        .unwrap_or(ecp_core::certificate::DEFAULT_VALIDITY_DAYS);
    let as_other_user = !account.uid.is_root();
    // Ask or read the passphrase as root, before taking the user's identity.
    let passphrase = crate::secrets::new_passphrase(args.passphrase_file.as_deref())?;
    if as_other_user {
        nix::unistd::setegid(account.gid)
            .and_then(|_| nix::unistd::seteuid(account.uid))
            .map_err(|e| Failure::Usage(format!("cannot act as {}: {e}", args.user)))?;
    }
    let result = prepare_output(&out, args.force)
        .and_then(|()| write_key_pair(&args.user, &out, days, passphrase, args.force));
    if as_other_user {
        nix::unistd::seteuid(nix::unistd::Uid::from_raw(0))
            .and_then(|_| nix::unistd::setegid(nix::unistd::Gid::from_raw(0)))
            .map_err(|e| Failure::Usage(format!("cannot return to root: {e}")))?;
    }
    let pem = result?;
    crate::keygen::print_written(&out);
    println!(
        "{} and the key belong to {}",
        out.join(CERTIFICATE_FILE).display(),
        args.user
    );
    Ok(pem)
}

fn print_entries(entries: &[CertificateEntry], json: bool) -> Result<(), Failure> {
    if json {
        let text =
            serde_json::to_string_pretty(entries).map_err(|e| Failure::Usage(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    if entries.is_empty() {
        println!("no certificates enrolled");
        return Ok(());
    }
    println!(
        "{:<16} {:<16} {:<64} {:<20} {:<20} RENEWED FROM",
        "USER", "LABEL", "FINGERPRINT (SHA-256)", "NOT AFTER", "LAST USED"
    );
    for e in entries {
        let last_used = if e.last_used == 0 {
            "never".to_owned()
        } else {
            format_utc(e.last_used)
        };
        println!(
            "{:<16} {:<16} {:<64} {:<20} {:<20} {}",
            e.user,
            e.label,
            e.fingerprint,
            format_utc(e.not_after).trim_end_matches(" UTC"),
            last_used.trim_end_matches(" UTC"),
            if e.renewed_from.is_empty() {
                "-"
            } else {
                &e.renewed_from
            }
        );
    }
    Ok(())
}

pub fn list(bus: &str, args: &ListArgs) -> Result<(), Failure> {
    let user = match &args.user {
        Some(user) => user.to_string(),
        None if nix::unistd::getuid().is_root() => String::new(),
        None => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or_else(|| Failure::Usage("cannot find your user name; give USER".into()))?,
    };
    zbus::block_on(async {
        let (_conn, proxy) = admin(bus).await?;
        let entries = call(proxy.list(&user).await)?;
        print_entries(&entries, args.json)
    })
}

pub fn revoke(bus: &str, args: &RevokeArgs) -> Result<(), Failure> {
    zbus::block_on(async {
        let (_conn, proxy) = admin(bus).await?;
        let revoked = match &args.fingerprint {
            Some(fp) => call(
                proxy
                    .revoke(args.user.as_str(), fp, args.keep_successors)
                    .await,
            )?,
            None => call(proxy.revoke_all(args.user.as_str()).await)?,
        };
        for entry in &revoked {
            let why = match entry.reason.as_str() {
                "renewed_from" => format!(" (renewed from {})", entry.from),
                "same_key" => format!(" (same key as {})", entry.from),
                _ => String::new(),
            };
            println!("revoked {} of {}{why}", entry.fingerprint, entry.user);
        }
        match (revoked.len(), &args.fingerprint) {
            (0, Some(fp)) => println!(
                "{fp} of {} was revoked already; nothing renewed from it was left",
                args.user
            ),
            (0, None) => println!("{} has no certificate enrolled", args.user),
            (n, _) => {
                println!("revoked {n} certificate(s); their keys sign for no one on this host")
            }
        }
        Ok(())
    })
}

pub fn unlock(bus: &str, args: &UserArg) -> Result<(), Failure> {
    zbus::block_on(async {
        let (_conn, proxy) = admin(bus).await?;
        call(proxy.unlock(args.user.as_str()).await)?;
        println!("{} unlocked", args.user);
        Ok(())
    })
}

pub fn status(bus: &str, args: &JsonArg) -> Result<(), Failure> {
    zbus::block_on(async {
        let (_conn, proxy) = admin(bus).await?;
        let s = call(proxy.status().await)?;
        // Root's only; others are told so below.
        let trust = proxy.trust().await.ok();
        let directory = proxy.directory().await.ok();
        if args.json {
            let mut value = serde_json::to_value(&s).map_err(|e| Failure::Usage(e.to_string()))?;
            if let Some(trust) = &trust {
                value["trust"] =
                    serde_json::to_value(trust).map_err(|e| Failure::Usage(e.to_string()))?;
            }
            if let Some(directory) = &directory {
                value["directory"] =
                    serde_json::to_value(directory).map_err(|e| Failure::Usage(e.to_string()))?;
            }
            let text =
                serde_json::to_string_pretty(&value).map_err(|e| Failure::Usage(e.to_string()))?;
            println!("{text}");
            return Ok(());
        }
        println!("version:                {}", s.version);
        if s.host.is_empty() {
            // What a non-root caller is told; the rest is root's.
            println!("(run as root for the counts)");
        } else {
            println!("host:                   {}", s.host);
            println!("users enrolled:         {}", s.users);
            println!("certificates:           {}", s.certificates);
            println!("recent challenges:      {}", s.recent_challenges);
            println!("penalised sources:      {}", s.penalised_sources);
            println!("store size:             {} bytes", s.store_bytes);
            println!("uptime:                 {} s", s.uptime_secs);
        }
        match &trust {
            Some(trust) => print_trust(trust),
            None => println!("organisation CAs:       (run as root to see them)"),
        }
        match &directory {
            Some(directory) => print_directory(directory, unix_now()),
            None => println!("directory:              (run as root to see it)"),
        }
        Ok(())
    })
}

/// "2026-11-23 15:40:00 UTC (120 s ago)", or `never`.
fn when_and_age(at: i64, now: i64, never: &str) -> String {
    if at == 0 {
        never.to_owned()
    } else {
        format!("{} ({} s ago)", format_utc(at), now.saturating_sub(at))
    }
}

/// The directory's servers, whether one answered, the last lookups and
/// the offline cache.
fn print_directory(d: &ecp_core::bus::DirectoryReport, now: i64) {
    if !d.configured {
        println!("directory:              none ([directory] not set)");
        return;
    }
    println!("directory:              {}", d.servers.join(", "));
    let reachable = match (d.probed, d.answered_by.is_empty()) {
        (false, _) => "not asked (run as root to try the servers)".to_owned(),
        (true, false) => format!("yes ({} answered)", d.answered_by),
        (true, true) => format!("NO: {}", d.problem),
    };
    println!("  reachable:            {reachable}");
    println!(
        "  last good lookup:     {}",
        when_and_age(d.last_success, now, "none since ecpd started")
    );
    if d.last_failure != 0 {
        println!(
            "  last failed lookup:   {}: {}",
            when_and_age(d.last_failure, now, ""),
            d.last_failure_reason
        );
    }
    println!(
        "  cached users:         {}{}",
        d.cached_users,
        if d.cached_users == 0 {
            String::new()
        } else {
            format!(
                ", oldest fetched {}",
                when_and_age(d.oldest_cached, now, "")
            )
        }
    );
    println!(
        "  cache:                fresh for {} s, used offline for up to {} s",
        d.cache_ttl_secs, d.max_offline_secs
    );
}

/// The trusted CAs, one block each, and the CRL held for each.
fn print_trust(trust: &ecp_core::bus::TrustReport) {
    if !trust.configured {
        println!("organisation CAs:       none (ca_file not set)");
        return;
    }
    for ca in &trust.cas {
        println!("trusted CA:             {}", ca.subject);
        println!("  fingerprint:          {}", ca.fingerprint);
        println!("  not after:            {}", format_utc(ca.not_after));
        if ca.crl_this_update == 0 {
            println!("  CRL:                  none loaded");
        } else {
            let next = if ca.crl_next_update == 0 {
                "none".to_owned()
            } else {
                format_utc(ca.crl_next_update)
            };
            println!(
                "  CRL:                  this update {}, next update {next}",
                format_utc(ca.crl_this_update)
            );
        }
    }
    if !trust.problem.is_empty() {
        println!("CA/CRL files problem:   {}", trust.problem);
    }
}

pub fn flush_cache(bus: &str, args: &crate::cli::CacheFlushArgs) -> Result<(), Failure> {
    zbus::block_on(async {
        let (_conn, proxy) = admin(bus).await?;
        let user = args.user.as_ref().map(|u| u.as_str()).unwrap_or("");
        let removed = call(proxy.flush_directory_cache(user).await)?;
        println!("dropped {removed} cached directory answer(s)");
        Ok(())
    })
}

pub fn cleanup(bus: &str) -> Result<(), Failure> {
    zbus::block_on(async {
        let (_conn, proxy) = admin(bus).await?;
        let removed = call(proxy.cleanup().await)?;
        println!("forgot {removed} expired used nonce(s)");
        Ok(())
    })
}

/// The keys ecpd lets sign for `user` now (its SigningKeys): which key
/// of an agent `--agent` means.
pub fn signing_keys(bus: &str, user: &str) -> Result<Vec<p256::ecdsa::VerifyingKey>, Failure> {
    use p256::pkcs8::DecodePublicKey;
    let keys = zbus::block_on(async {
        let conn = connect(bus).await?;
        let auth = AuthProxy::new(&conn)
            .await
            .map_err(crate::unreachable::failure(bus))?;
        call(auth.signing_keys(user).await)
    })?;
    Ok(keys
        .iter()
        .filter_map(|der| p256::ecdsa::VerifyingKey::from_public_key_der(der).ok())
        .collect())
}

pub fn test_login(bus: &str, args: &TestLoginArgs) -> Result<(), Failure> {
    // Root naming a user tests that user's login with that user's own key
    // file, read with their identity, as pam_ecp would read it.
    let signs_with_default_key_file =
        args.key.is_none() && !args.token_key.agent && args.token_key.pkcs11.is_none();
    let owner = if signs_with_default_key_file {
        crate::keys::other_users_account(&args.user)?
    } else {
        None
    };
    // Unlock first: the challenge's short life should not run while the
    // user types a passphrase or PIN.
    let (certificate, key) = match &owner {
        Some(account) => {
            let path = ecp_core::user_files::default_key_path(&account.dir);
            eprintln!(
                "using {}'s key file {} (read as {})",
                account.name,
                path.display(),
                account.name
            );
            let certificate = match &args.cert {
                Some(cert) => crate::keys::presented_certificate(&path, Some(cert))?,
                None => ecp_core::user_files::as_user(account, || {
                    crate::keys::presented_certificate(&path, None)
                })?,
            };
            let key = crate::keys::unlock_key_of(&path, args.passphrase_file.as_deref(), account)?;
            (certificate, crate::keys::UnlockedKey::File(key))
        }
        None => unlock_for_test_login(bus, args)?,
    };
    test_login_with(bus, args, &certificate, &key)
}

/// The certificate to present and the key, as the arguments name them.
fn unlock_for_test_login(
    bus: &str,
    args: &TestLoginArgs,
) -> Result<(Option<Vec<u8>>, crate::keys::UnlockedKey), Failure> {
    let certificate = presented_for(args.key.as_deref(), args.cert.as_deref(), &args.token_key)?;
    let key = if args.token_key.agent && args.key.is_none() && args.passphrase_file.is_none() {
        // The given certificate's key, else any that ecpd lets sign.
        let wanted = match crate::keys::certificate_key(args.cert.as_deref())? {
            Some(key) if args.cert.is_some() => vec![key],
            _ => signing_keys(bus, args.user.as_str())?,
        };
        crate::keys::unlock_in_agent(Some(&wanted))?
    } else {
        crate::keys::unlock(
            args.key.as_deref(),
            args.passphrase_file.as_deref(),
            &args.token_key,
        )?
    };
    Ok((certificate, key))
}

/// Challenge, signature, verdict: one login against the daemon.
fn test_login_with(
    bus: &str,
    args: &TestLoginArgs,
    certificate: &Option<Vec<u8>>,
    key: &crate::keys::UnlockedKey,
) -> Result<(), Failure> {
    zbus::block_on(async {
        let conn = connect(bus).await?;
        let auth = AuthProxy::new(&conn)
            .await
            .map_err(crate::unreachable::failure(bus))?;
        let token = call(auth.challenge(args.user.as_str(), &args.service, "").await)?;
        let challenge = ecp_core::Challenge::from_token(&token)?;
        let signature = key.sign(&challenge.signed_bytes())?;
        match &certificate {
            Some(der) => call(
                auth.verify_presented(args.user.as_str(), &token, &signature, der)
                    .await,
            )?,
            None => call(auth.verify(args.user.as_str(), &token, &signature).await)?,
        }
        let how = if certificate.is_some() {
            " (with its CA-issued certificate)"
        } else {
            ""
        };
        println!("login for {} accepted by ecpd{how}", args.user);
        Ok(())
    })
}
