//! The decisions. Nothing here knows about D-Bus or sled types: callers are
//! a uid and a name, answers are values or a `ServiceError`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ecp_core::bus::{CertificateEntry, DaemonStatus};
use ecp_core::certificate::{parse_certificate_pem, ParsedCertificate};
use ecp_core::challenge::{MAX_SIGNATURE_LEN, MAX_TOKEN_LEN};
use ecp_core::when::unix_now;
use ecp_core::{
    validate_certificate, CertificateError, Challenge, ChallengeError, HostName, ServiceName,
    UserName,
};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::config::Config;
use crate::store::{AddOutcome, CertificateRecord, NonceRecord, Store, StoreError};

/// Who is calling, as the bus daemon vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// The caller's user name from the password database, if it has one.
    pub name: Option<String>,
}

impl Caller {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Why a verification failed. Root callers learn some of this; others only
/// learn that it failed. The journal always gets the real reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("malformed challenge token: {0}")]
    MalformedChallenge(ChallengeError),
    #[error("unknown or already used challenge")]
    UnknownChallenge,
    #[error("challenge was issued for another user")]
    WrongUser,
    #[error("challenge expired")]
    Expired,
    #[error("user has no enrolled certificate")]
    NotEnrolled,
    #[error("none of the user's certificates is currently valid")]
    NoValidCertificate,
    #[error("signature does not match any enrolled certificate")]
    BadSignature,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("user is locked out after too many failed attempts, until {}", ecp_core::when::format_utc(*until as i64))]
    Locked { until: u64 },
    #[error("authentication failed: {0}")]
    Auth(AuthFailure),
    #[error("certificate rejected: {0}")]
    CertificateRejected(CertificateError),
    #[error("this certificate is already enrolled for the user")]
    AlreadyEnrolled,
    #[error("the user already has the maximum of {max} certificates; revoke one first")]
    TooManyCertificates { max: usize },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Longest certificate label accepted.
pub const MAX_LABEL_LEN: usize = 64;
/// Longest rhost accepted (a DNS name; an IPv6 address with zone fits).
pub const MAX_RHOST_LEN: usize = 253;

/// Where a verified challenge was issued for (for the log).
#[derive(Debug, Default)]
struct Origin {
    service: String,
    rhost: String,
}

pub struct Service {
    store: Store,
    config: Config,
    host: HostName,
    started: Instant,
    /// Certificates already parsed and self-signature-checked, by
    /// fingerprint (the SHA-256 of their DER, so an entry can never stand
    /// for other bytes). Saves a second signature check on every login;
    /// the time window and CN are still checked at every use.
    parsed: Mutex<HashMap<String, ParsedCertificate>>,
    /// A key no one holds: a user with no usable certificate still costs
    /// one signature check, so the time of a refusal does not tell an
    /// enrolled user from an unknown one.
    decoy: p256::ecdsa::VerifyingKey,
}

/// Parsed certificates kept before the cache starts afresh.
const PARSED_CACHE_LIMIT: usize = 4096;

fn now_secs() -> u64 {
    u64::try_from(unix_now()).unwrap_or(0)
}

fn parse_user(raw: &str) -> Result<UserName, ServiceError> {
    UserName::parse(raw).map_err(|e| ServiceError::InvalidArgument(e.to_string()))
}

fn check_rhost(raw: &str) -> Result<(), ServiceError> {
    if raw.len() > MAX_RHOST_LEN {
        return Err(ServiceError::InvalidArgument(format!(
            "remote host is {} bytes long; at most {MAX_RHOST_LEN} are allowed",
            raw.len()
        )));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ServiceError::InvalidArgument(
            "remote host contains spaces, control or non-ASCII characters".into(),
        ));
    }
    Ok(())
}

fn check_label(raw: &str) -> Result<String, ServiceError> {
    if raw.chars().count() > MAX_LABEL_LEN {
        return Err(ServiceError::InvalidArgument(format!(
            "label is longer than {MAX_LABEL_LEN} characters"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(ServiceError::InvalidArgument(
            "label contains control characters".into(),
        ));
    }
    Ok(if raw.is_empty() {
        "default".into()
    } else {
        raw.into()
    })
}

/// Accepts `ab:CD:…` or plain hex; returns 64 lowercase hex digits.
fn normalize_fingerprint(raw: &str) -> Result<String, ServiceError> {
    let hex: String = raw
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::InvalidArgument(
            "a fingerprint is 64 hex digits (SHA-256), as `ecpctl list` shows".into(),
        ));
    }
    Ok(hex)
}

impl Service {
    pub fn new(store: Store, config: Config, host: HostName) -> Self {
        Self {
            store,
            config,
            host,
            started: Instant::now(),
            parsed: Mutex::new(HashMap::new()),
            decoy: *ecp_core::keyfile::generate_signing_key().verifying_key(),
        }
    }

    /// The stored certificate, parsed (from the cache when possible).
    fn parsed_certificate(
        &self,
        fingerprint: &str,
        pem: &str,
    ) -> Result<ParsedCertificate, CertificateError> {
        let mut cache = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cert) = cache.get(fingerprint) {
            return Ok(cert.clone());
        }
        let cert = parse_certificate_pem(pem.as_bytes())?;
        if cert.fingerprint() == fingerprint {
            if cache.len() >= PARSED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(fingerprint.to_owned(), cert.clone());
        }
        Ok(cert)
    }

    pub fn host(&self) -> &HostName {
        &self.host
    }

    fn skew(&self) -> Duration {
        Duration::from_secs(self.config.clock_skew_secs)
    }

    /// Root may act for anyone; anyone else only for themselves.
    fn authorize_self_or_root(
        &self,
        caller: &Caller,
        user: &UserName,
        what: &str,
    ) -> Result<(), ServiceError> {
        if caller.is_root() || caller.name.as_deref() == Some(user.as_str()) {
            return Ok(());
        }
        warn!(event = what, caller_uid = caller.uid, user = %user, outcome = "denied", "non-root caller acted for another user");
        Err(ServiceError::AccessDenied(format!(
            "uid {} may {what} only for itself",
            caller.uid
        )))
    }

    fn authorize_root(&self, caller: &Caller, what: &str) -> Result<(), ServiceError> {
        if caller.is_root() {
            return Ok(());
        }
        warn!(
            event = what,
            caller_uid = caller.uid,
            outcome = "denied",
            "root-only operation"
        );
        Err(ServiceError::AccessDenied(format!("only root may {what}")))
    }

    fn check_not_locked(&self, user: &UserName, now: u64) -> Result<(), ServiceError> {
        let failures = self.store.failures_of(user.as_str())?;
        if failures.locked_until > now {
            return Err(ServiceError::Locked {
                until: failures.locked_until,
            });
        }
        Ok(())
    }

    /// Issues a challenge. Unknown and unenrolled users get one that looks
    /// exactly the same, so the answer reveals nothing about accounts.
    pub fn challenge(
        &self,
        caller: &Caller,
        user: &str,
        service: &str,
        rhost: &str,
    ) -> Result<String, ServiceError> {
        let user = parse_user(user)?;
        let service = ServiceName::parse(service)
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        check_rhost(rhost)?;
        self.authorize_self_or_root(caller, &user, "request a challenge")?;
        let now = now_secs();
        self.check_not_locked(&user, now)?;

        if self.store.outstanding_nonces() >= self.config.max_outstanding_challenges {
            warn!(event = "challenge", user = %user, rhost, outcome = "rate_limited", reason = "outstanding cap");
            return Err(ServiceError::RateLimited(
                "too many challenges are outstanding; try again shortly".into(),
            ));
        }
        let per_rhost = self.config.challenges_per_rhost_per_minute;
        if per_rhost > 0
            && !rhost.is_empty()
            && self.store.count_event(&format!("rhost\0{rhost}"), now)? > per_rhost
        {
            warn!(event = "challenge", user = %user, rhost, outcome = "rate_limited", reason = "per rhost");
            return Err(ServiceError::RateLimited(format!(
                "more than {per_rhost} challenges a minute from {rhost}"
            )));
        }
        let per_user = self.config.challenges_per_user_per_minute;
        if per_user > 0 && self.store.count_event(&format!("user\0{user}"), now)? > per_user {
            warn!(event = "challenge", user = %user, rhost, outcome = "rate_limited", reason = "per user");
            return Err(ServiceError::RateLimited(format!(
                "more than {per_user} challenges a minute for this user"
            )));
        }

        let challenge = Challenge::new_random(
            user.clone(),
            self.host.clone(),
            service.clone(),
            now,
            self.config.challenge_lifetime_secs,
        )
        .map_err(|e| {
            ServiceError::Store(StoreError::Corrupt {
                tree: "random",
                detail: e.to_string(),
            })
        })?;
        let record = NonceRecord {
            payload_sha256: Sha256::digest(challenge.payload()).to_vec(),
            user: user.to_string(),
            service: service.to_string(),
            rhost: rhost.to_owned(),
            expires_at: challenge.expires_at,
        };
        self.store.insert_nonce(&challenge.nonce_id.0, &record)?;
        info!(event = "challenge", user = %user, service = %service, rhost, nonce_id = %challenge.nonce_id.to_hex(), outcome = "issued");
        Ok(challenge.to_token())
    }

    /// Verifies a signed challenge. The nonce is consumed before anything
    /// else is looked at, so it can validate at most once.
    pub fn verify(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
    ) -> Result<String, ServiceError> {
        let user = parse_user(user)?;
        if token.len() > MAX_TOKEN_LEN || signature.len() > MAX_SIGNATURE_LEN * 2 {
            return Err(ServiceError::InvalidArgument(
                "token or signature is too long".into(),
            ));
        }
        self.authorize_self_or_root(caller, &user, "verify")?;
        let now = now_secs();
        // Filled in once the nonce is found, so every log line says where
        // the login came from.
        let mut origin = Origin::default();
        let result = self.verify_authorized(&user, token, signature, now, &mut origin);
        let Origin { service, rhost } = &origin;
        match &result {
            Ok(fingerprint) => {
                self.store.clear_failures(user.as_str())?;
                info!(event = "verify", user = %user, service, rhost, fingerprint = %fingerprint, outcome = "success");
            }
            Err(ServiceError::Auth(reason)) => {
                let failures = self.store.record_failure(
                    user.as_str(),
                    now,
                    self.config.max_failed_attempts,
                    self.config.lockout_minutes * 60,
                )?;
                warn!(event = "verify", user = %user, service, rhost, outcome = "failure", reason = %reason, consecutive_failures = failures.consecutive);
                if failures.locked_until > now
                    && failures.consecutive == self.config.max_failed_attempts
                {
                    warn!(event = "lockout", user = %user, until = failures.locked_until, outcome = "locked");
                }
            }
            Err(other) => {
                warn!(event = "verify", user = %user, service, rhost, outcome = "refused", reason = %other);
            }
        }
        result
    }

    fn verify_authorized(
        &self,
        user: &UserName,
        token: &str,
        signature: &str,
        now: u64,
        origin: &mut Origin,
    ) -> Result<String, ServiceError> {
        let auth = ServiceError::Auth;
        let challenge =
            Challenge::from_token(token).map_err(|e| auth(AuthFailure::MalformedChallenge(e)))?;
        let record = self
            .store
            .take_nonce(&challenge.nonce_id.0)?
            .ok_or(auth(AuthFailure::UnknownChallenge))?;
        origin.service.clone_from(&record.service);
        origin.rhost.clone_from(&record.rhost);
        if record.payload_sha256 != Sha256::digest(challenge.payload()).as_slice() {
            // Same id, other content: a forged token.
            return Err(auth(AuthFailure::UnknownChallenge));
        }
        if record.user != user.as_str() || challenge.user != *user {
            return Err(auth(AuthFailure::WrongUser));
        }
        if challenge.check_not_expired(now).is_err() || record.expires_at <= now {
            return Err(auth(AuthFailure::Expired));
        }
        self.check_not_locked(user, now)?;

        let certificates = self.store.certificates_of(user.as_str())?;
        if certificates.is_empty() {
            let _ = challenge.verify(&self.decoy, signature);
            return Err(auth(AuthFailure::NotEnrolled));
        }
        let mut any_valid = false;
        for (fingerprint, stored) in certificates {
            // Re-validated at every use: it may have expired since enrolment.
            let cert = match self
                .parsed_certificate(&fingerprint, &stored.pem)
                .and_then(|cert| {
                    cert.check_user(user)?;
                    cert.check_time(now as i64, self.skew())?;
                    Ok(cert)
                }) {
                Ok(cert) => cert,
                Err(e) => {
                    info!(event = "verify", user = %user, fingerprint = %fingerprint, reason = %e, "skipping certificate");
                    continue;
                }
            };
            any_valid = true;
            if challenge.verify(cert.public_key(), signature).is_ok() {
                self.store
                    .touch_certificate(user.as_str(), &fingerprint, now as i64)?;
                return Ok(fingerprint);
            }
        }
        if !any_valid {
            let _ = challenge.verify(&self.decoy, signature);
            return Err(auth(AuthFailure::NoValidCertificate));
        }
        Err(auth(AuthFailure::BadSignature))
    }

    pub fn enroll(
        &self,
        caller: &Caller,
        user: &str,
        pem: &str,
        label: &str,
    ) -> Result<String, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "enroll certificates")?;
        let label = check_label(label)?;
        let now = unix_now();
        let cert = validate_certificate(pem.as_bytes(), &user, now, self.skew()).map_err(|e| {
            warn!(event = "enroll", user = %user, outcome = "rejected", reason = %e);
            ServiceError::CertificateRejected(e)
        })?;
        let fingerprint = cert.fingerprint();
        let record = CertificateRecord {
            pem: cert.to_pem(),
            label: label.clone(),
            enrolled_at: now,
            last_used: 0,
        };
        match self.store.add_certificate(
            user.as_str(),
            &fingerprint,
            &record,
            self.config.max_certificates_per_user,
        )? {
            AddOutcome::Added => {
                info!(event = "enroll", user = %user, fingerprint = %fingerprint, label = %label, outcome = "enrolled");
                Ok(fingerprint)
            }
            AddOutcome::Duplicate => Err(ServiceError::AlreadyEnrolled),
            AddOutcome::TooMany { max } => Err(ServiceError::TooManyCertificates { max }),
        }
    }

    pub fn revoke(
        &self,
        caller: &Caller,
        user: &str,
        fingerprint: &str,
    ) -> Result<u32, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "revoke certificates")?;
        let fingerprint = normalize_fingerprint(fingerprint)?;
        if !self.store.remove_certificate(user.as_str(), &fingerprint)? {
            return Err(ServiceError::NotFound(format!(
                "user {user} has no certificate with fingerprint {fingerprint}"
            )));
        }
        info!(event = "revoke", user = %user, fingerprint = %fingerprint, outcome = "revoked");
        Ok(1)
    }

    pub fn revoke_all(&self, caller: &Caller, user: &str) -> Result<u32, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "revoke certificates")?;
        let removed = self.store.remove_all_certificates(user.as_str())?;
        info!(event = "revoke", user = %user, count = removed, outcome = "revoked_all");
        Ok(removed)
    }

    pub fn list(&self, caller: &Caller, user: &str) -> Result<Vec<CertificateEntry>, ServiceError> {
        let rows = if user.is_empty() {
            self.authorize_root(caller, "list every user's certificates")?;
            self.store.all_certificates()?
        } else {
            let user = parse_user(user)?;
            self.authorize_self_or_root(caller, &user, "list certificates")?;
            self.store
                .certificates_of(user.as_str())?
                .into_iter()
                .map(|(fp, record)| (user.to_string(), fp, record))
                .collect()
        };
        Ok(rows
            .into_iter()
            .map(|(user, fingerprint, record)| {
                let (not_before, not_after) = parse_certificate_pem(record.pem.as_bytes())
                    .map(|c| (c.not_before(), c.not_after()))
                    .unwrap_or((0, 0));
                CertificateEntry {
                    user,
                    label: record.label,
                    fingerprint,
                    not_before,
                    not_after,
                    enrolled_at: record.enrolled_at,
                    last_used: record.last_used,
                }
            })
            .collect())
    }

    pub fn unlock(&self, caller: &Caller, user: &str) -> Result<(), ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "unlock users")?;
        self.store.clear_failures(user.as_str())?;
        info!(event = "unlock", user = %user, outcome = "unlocked");
        Ok(())
    }

    pub fn status(&self, _caller: &Caller) -> Result<DaemonStatus, ServiceError> {
        let counts = self.store.counts(now_secs())?;
        Ok(DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            host: self.host.to_string(),
            users: counts.users,
            certificates: counts.certificates,
            outstanding_challenges: self.store.outstanding_nonces(),
            locked_users: counts.locked_users,
            store_bytes: counts.bytes_on_disk,
            uptime_secs: self.started.elapsed().as_secs(),
        })
    }

    pub fn cleanup(&self, caller: &Caller) -> Result<u64, ServiceError> {
        self.authorize_root(caller, "run a cleanup")?;
        self.periodic_cleanup()
    }

    /// Removes expired challenges and stale counters; run on a timer too.
    pub fn periodic_cleanup(&self) -> Result<u64, ServiceError> {
        let now = now_secs();
        let removed = self.store.remove_expired_nonces(now)?;
        self.store.prune_counters(now)?;
        if removed > 0 {
            info!(event = "cleanup", removed, outcome = "done");
        }
        Ok(removed)
    }
}
