//! The decisions. Nothing here knows about D-Bus or sled types: callers are
//! a uid and a name, answers are values or a `ServiceError`.
//!
//! One file a concern: `login` (challenges, answers, `nouserok`), `keys`
//! (which keys may sign for a user, from every source, and the revoked-key
//! rule), `directory_cache` (when to ask LDAP, what its answers leave
//! behind), `admin` (enroll, revoke, list, status) and `renewal`. This
//! file holds what they share: the service itself, callers and errors.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecp_core::bus::{CertificateEntry, DaemonStatus, RevokedEntry};
use ecp_core::certificate::{parse_certificate_pem, ParsedCertificate};
use ecp_core::challenge::{MAX_SIGNATURE_LEN, MAX_TOKEN_LEN};
use ecp_core::{
    validate_certificate, CertificateError, Challenge, ChallengeError, HostName, RemoteHost,
    ServiceName, UserName,
};
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::config::Config;
use crate::directory::{Directory, LookupError};
use crate::store::{
    AddOutcome, CachedLookup, CertificateRecord, RevokedKey, Store, StoreError, Withdrawn,
};
use crate::throttle::{Refusal, Source, Throttle};
use crate::tokens::Tokens;
use crate::trust_files::TrustFiles;

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
    #[error("challenge not issued by this daemon since it started (forged, altered, or from before a restart)")]
    UnknownChallenge,
    #[error("challenge already used")]
    AlreadyUsed,
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
    #[error("no signature given (for example, a wrong passphrase at the key file prompt)")]
    NoSignature,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Throttled(Refusal),
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
    #[error("cannot read random bytes from the operating system: {0}")]
    Random(String),
    #[error("organisation CA files: {0}")]
    TrustFiles(String),
    #[error("{0}")]
    DirectoryUnavailable(String),
    #[error("directory: {0}")]
    Directory(String),
    #[error("renewal refused: {0}")]
    RenewalRefused(String),
    #[error("the key of this certificate was revoked ({0}): a revoked key never signs again; make a new key")]
    KeyRevoked(String),
}

/// Refuses a set whose CRL of some CA is older than the newest one this
/// store has recorded for that CA: a replayed list from before a
/// revocation, even across restarts. A store that cannot be read refuses.
fn crls_not_older_than_recorded(
    store: &Store,
    candidate: &ecp_core::trust::TrustStore,
) -> Result<(), ecp_core::trust::TrustError> {
    for (ca, crl) in candidate.crls() {
        let Some(crl) = crl else { continue };
        let held =
            held_crl_mark(store, ca).map_err(|e| ecp_core::trust::TrustError::Unreadable {
                what: "the record of CRLs seen",
                detail: e.to_string(),
            })?;
        if held.is_some_and(|held| crl.mark().is_before(&held)) {
            return Err(ecp_core::trust::TrustError::CrlRolledBack {
                issuer: crl.issuer.clone(),
            });
        }
    }
    Ok(())
}

/// The newest CRL recorded for `ca`: by its identity (subject and key, so
/// a renewed CA certificate inherits it), or, from before identities were
/// used, by its certificate's fingerprint.
fn held_crl_mark(
    store: &Store,
    ca: &ecp_core::trust::TrustedCa,
) -> Result<Option<ecp_core::trust::CrlMark>, StoreError> {
    match store.crl_high_water(&ca.identity)? {
        Some(mark) => Ok(Some(mark)),
        None => store.crl_high_water(&ca.fingerprint),
    }
}

/// Records the CRLs now in force as the newest seen of their CAs.
fn record_crl_marks(store: &Store, trust: &ecp_core::trust::TrustStore) {
    for (ca, crl) in trust.crls() {
        let Some(crl) = crl else { continue };
        if let Err(e) = store.raise_crl_high_water(&ca.identity, &crl.mark()) {
            warn!(event = "store", outcome = "failed", reason = %e, "could not record the newest CRL seen");
        }
    }
}

/// Whether `user` is root, or an account with uid 0 under another name.
/// An account the name service cannot look up counts as one, to be safe.
fn is_superuser(user: &UserName) -> bool {
    match nix::unistd::User::from_name(user.as_str()) {
        Ok(Some(account)) => account.uid.is_root(),
        Ok(None) => user.as_str() == "root",
        Err(_) => true,
    }
}

/// A revoked key's record as a person reads it.
fn describe_revoked_key(revoked: &RevokedKey) -> String {
    format!(
        "with certificate {} of {}, on {}",
        revoked.fingerprint,
        revoked.user,
        ecp_core::when::format_utc(revoked.revoked_at)
    )
}

/// Longest certificate label accepted.
pub const MAX_LABEL_LEN: usize = 64;

pub struct Service {
    store: Arc<Store>,
    config: Config,
    host: HostName,
    clock: Arc<dyn Clock>,
    started_at: u64,
    tokens: Tokens,
    throttle: Throttle,
    recent: RecentChallenges,
    /// Certificates already parsed and self-signature-checked, by
    /// fingerprint (the SHA-256 of their DER, so an entry can never stand
    /// for other bytes). Saves a second signature check on every login;
    /// the time window and CN are still checked at every use.
    parsed: Mutex<lru::LruCache<String, ParsedCertificate>>,
    /// The organisation CAs and CRLs this host trusts (`ca_file`,
    /// `crl_file`), re-read when they change.
    trust: TrustFiles,
    /// Users' certificates from LDAP, when `[directory]` is set.
    directory: Option<Arc<Directory>>,
    /// A key no one holds: a user with no usable certificate still costs
    /// one signature check, so the time of a refusal does not tell an
    /// enrolled user from an unknown one.
    decoy: p256::ecdsa::VerifyingKey,
}

mod admin;
mod directory_cache;
mod keys;
mod login;
mod renewal;
#[cfg(test)]
mod test_support;

pub use directory_cache::DueLookup;
use keys::{Authority, SigningKeys};
pub use renewal::Renewed;

/// Parsed certificates kept (the least recently used goes first).
const PARSED_CACHE_LIMIT: usize = 4096;

fn parse_user(raw: &str) -> Result<UserName, ServiceError> {
    UserName::parse(raw).map_err(|e| ServiceError::InvalidArgument(e.to_string()))
}

/// Challenges issued per second over the last lifetime, for `Status`:
/// nothing else remembers them.
#[derive(Default)]
struct RecentChallenges(Mutex<VecDeque<(u64, u64)>>);

impl RecentChallenges {
    fn record(&self, now: u64, window: u64) {
        let mut seconds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match seconds.back_mut() {
            Some((second, count)) if *second == now => *count += 1,
            _ => seconds.push_back((now, 1)),
        }
        Self::drop_old(&mut seconds, now, window);
    }

    fn count(&self, now: u64, window: u64) -> u64 {
        let mut seconds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Self::drop_old(&mut seconds, now, window);
        seconds.iter().map(|(_, count)| count).sum()
    }

    fn drop_old(seconds: &mut VecDeque<(u64, u64)>, now: u64, window: u64) {
        while seconds
            .front()
            .is_some_and(|(second, _)| second.saturating_add(window) <= now)
        {
            seconds.pop_front();
        }
    }
}

fn check_label(raw: &str) -> Result<String, ServiceError> {
    if raw.chars().count() > MAX_LABEL_LEN {
        return Err(ServiceError::InvalidArgument(format!(
            "label is longer than {MAX_LABEL_LEN} characters"
        )));
    }
    // Letters, digits, blanks and plain punctuation only: no control,
    // format (bidi overrides, zero-width) or line-separator characters
    // that could make `ecpctl list` or the journal show something else.
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || (c.is_ascii_punctuation());
    if !raw.chars().all(allowed) {
        return Err(ServiceError::InvalidArgument(
            "label may hold letters, digits, spaces and ASCII punctuation only".into(),
        ));
    }
    Ok(if raw.is_empty() {
        "default".into()
    } else {
        raw.into()
    })
}

impl Service {
    /// The decisions over `store`, with time from `clock` and a fresh
    /// token key.
    pub fn new(
        store: Store,
        config: Config,
        host: HostName,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let tokens = Tokens::new().map_err(|e| ServiceError::Random(e.to_string()))?;
        let store = Arc::new(store);
        let marks = store.clone();
        let trust = TrustFiles::load(
            &config,
            Box::new(move |candidate| crls_not_older_than_recorded(&marks, candidate)),
        )
        .map_err(|e| ServiceError::TrustFiles(e.to_string()))?;
        record_crl_marks(&store, &trust.current());
        let directory = config
            .directory
            .clone()
            .map(Directory::new)
            .transpose()
            .map_err(ServiceError::Directory)?
            .map(Arc::new);
        Ok(Self {
            trust,
            directory,
            throttle: Throttle::new(config.limits()),
            started_at: clock.now(),
            store,
            config,
            host,
            clock,
            tokens,
            recent: RecentChallenges::default(),
            parsed: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(PARSED_CACHE_LIMIT).expect("non-zero"),
            )),
            decoy: *ecp_core::keyfile::generate_signing_key().verifying_key(),
        })
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
            cache.put(fingerprint.to_owned(), cert.clone());
        }
        Ok(cert)
    }

    /// A self-signed certificate from the directory, parsed and its
    /// self-signature checked once, then served from the same cache as
    /// enrolled ones (a cache hit then costs a lookup, not a signature
    /// check: measured, that check was most of what a directory login
    /// added).
    fn self_signed_der(&self, der: &[u8]) -> Result<ParsedCertificate, CertificateError> {
        let fingerprint = ecp_core::certificate::fingerprint_of_der(der);
        let mut cache = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cert) = cache.get(&fingerprint) {
            return Ok(cert.clone());
        }
        let cert = ecp_core::certificate::parse_certificate_der(der)?;
        cache.put(fingerprint, cert.clone());
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
}
