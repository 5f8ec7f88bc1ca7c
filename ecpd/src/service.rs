//! The decisions. Nothing here knows about D-Bus or sled types: callers are
//! a uid and a name, answers are values or a `ServiceError`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecp_core::bus::{CertificateEntry, DaemonStatus};
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
use crate::store::{AddOutcome, CachedLookup, CertificateRecord, Store, StoreError};
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
        let held = store.crl_high_water(&ca.fingerprint).map_err(|e| {
            ecp_core::trust::TrustError::Unreadable {
                what: "the record of CRLs seen",
                detail: e.to_string(),
            }
        })?;
        if held.is_some_and(|held| crl.mark().is_before(&held)) {
            return Err(ecp_core::trust::TrustError::CrlRolledBack {
                issuer: crl.issuer.clone(),
            });
        }
    }
    Ok(())
}

/// Records the CRLs now in force as the newest seen of their CAs.
fn record_crl_marks(store: &Store, trust: &ecp_core::trust::TrustStore) {
    for (ca, crl) in trust.crls() {
        let Some(crl) = crl else { continue };
        if let Err(e) = store.raise_crl_high_water(&ca.fingerprint, &crl.mark()) {
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

/// Why a key may sign for a user.
enum Authority {
    /// A certificate from the user's directory entry (or its cached copy).
    Directory { fingerprint: String },
    /// An enrolled certificate, by fingerprint.
    Enrolled { fingerprint: String },
    /// A certificate the user presented, issued by a trusted CA.
    Ca {
        issuer: String,
        serial: String,
        fingerprint: String,
    },
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

#[path = "renewal.rs"]
mod renewal;
pub use renewal::Renewed;

/// A directory lookup the service found due; the D-Bus edge runs it on
/// the tokio runtime and hands the outcome back.
pub struct DueLookup {
    directory: Arc<Directory>,
    user: String,
    known: bool,
    _in_flight: crate::directory::InFlight,
}

impl DueLookup {
    pub fn user(&self) -> &str {
        &self.user
    }

    pub async fn run(self) -> Result<Vec<Vec<u8>>, LookupError> {
        self.directory.lookup(&self.user, self.known).await
    }
}

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

    /// Issues a challenge. Nothing is stored: the token is its own record
    /// (see `tokens`). Unknown and unenrolled users get one that looks
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
        let rhost =
            RemoteHost::parse(rhost).map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        self.authorize_self_or_root(caller, &user, "request a challenge")?;
        let now = self.clock.now();
        // A non-root caller is counted as itself, whatever rhost it names.
        let source = Source::of(caller.uid, &rhost, self.config.grouping());
        if let Err(refusal) = self.throttle.admit_challenge(&user, &source, now) {
            info!(event = "challenge", user = %user, service = %service, source = %source, outcome = "refused", reason = %refusal);
            return Err(ServiceError::Throttled(refusal));
        }
        let mut challenge = Challenge::unsealed(
            user,
            self.host.clone(),
            service,
            rhost,
            caller.uid,
            now,
            self.config.challenge_lifetime_secs,
        )
        .map_err(|e| ServiceError::Random(e.to_string()))?;
        self.tokens.seal(&mut challenge);
        self.recent.record(now, self.config.challenge_lifetime_secs);
        debug!(event = "challenge", user = %challenge.user, service = %challenge.service, source = %source, nonce_id = %challenge.nonce_id.to_hex(), outcome = "issued");
        Ok(challenge.to_token())
    }

    /// Verifies a signed challenge. A token this daemon did not issue (or
    /// issued before a restart) is refused by its tag before anything else
    /// is looked at; a nonce validates at most once; failures count
    /// against the (user, source) the challenge was issued for.
    pub fn verify(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
    ) -> Result<String, ServiceError> {
        self.verify_answer(caller, user, token, signature, None, None)
    }

    /// As [`Service::verify`], with a certificate the user presented (DER):
    /// its key may sign if an organisation CA this host trusts issued it.
    pub fn verify_presented(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
        certificate: &[u8],
    ) -> Result<String, ServiceError> {
        self.verify_answer(caller, user, token, signature, Some(certificate), None)
    }

    /// Verify or VerifyPresented, with the directory's fresh answer for
    /// the user when one was fetched (see [`Service::directory_lookup_due`]).
    pub fn verify_answer(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
        presented: Option<&[u8]>,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
    ) -> Result<String, ServiceError> {
        let user = parse_user(user)?;
        if token.len() > MAX_TOKEN_LEN || signature.len() > MAX_SIGNATURE_LEN * 2 {
            return Err(ServiceError::InvalidArgument(
                "token or signature is too long".into(),
            ));
        }
        if presented.is_some_and(|c| c.len() > ecp_core::certificate::MAX_CERTIFICATE_LEN) {
            return Err(ServiceError::InvalidArgument(
                "the presented certificate is too long".into(),
            ));
        }
        self.authorize_self_or_root(caller, &user, "verify")?;
        let now = self.clock.now();
        let auth = ServiceError::Auth;

        let challenge = Challenge::from_token(token).map_err(|e| {
            warn!(event = "verify", user = %user, outcome = "failure", reason = %e);
            auth(AuthFailure::MalformedChallenge(e))
        })?;
        if !self.tokens.is_genuine(&challenge) {
            // Nothing in it can be trusted, not even the source: count nothing.
            warn!(event = "verify", user = %user, nonce_id = %challenge.nonce_id.to_hex(), outcome = "failure", reason = %AuthFailure::UnknownChallenge);
            return Err(auth(AuthFailure::UnknownChallenge));
        }
        let source = Source::of(
            challenge.requester_uid,
            &challenge.rhost,
            self.config.grouping(),
        );
        let service = challenge.service.clone();
        if challenge.check_not_expired(now).is_err() {
            info!(event = "verify", user = %user, service = %service, source = %source, outcome = "failure", reason = %AuthFailure::Expired);
            return Err(auth(AuthFailure::Expired));
        }
        if let Err(refusal) = self.throttle.check_penalty(&user, &source, now) {
            info!(event = "verify", user = %user, service = %service, source = %source, outcome = "refused", reason = %refusal);
            return Err(ServiceError::Throttled(refusal));
        }

        match self.check_answer(&user, &challenge, signature, presented, looked_up, now) {
            Ok(fingerprint) => {
                self.throttle.success(&user, &source);
                info!(event = "verify", user = %user, service = %service, source = %source, fingerprint = %fingerprint, outcome = "success");
                Ok(fingerprint)
            }
            Err(ServiceError::Auth(reason)) => {
                let count = self.throttle.failure(&user, &source, now);
                warn!(event = "verify", user = %user, service = %service, source = %source, outcome = "failure", reason = %reason, failures = count.failures);
                if let Some(until) = count.penalty_until {
                    warn!(event = "penalty", user = %user, source = %source, until, failures = count.failures, outcome = "waiting");
                }
                Err(auth(reason))
            }
            Err(other) => {
                warn!(event = "verify", user = %user, service = %service, source = %source, outcome = "refused", reason = %other);
                Err(other)
            }
        }
    }

    /// The keys that may sign for `user` at `now`, and why: each enrolled
    /// certificate that is still valid, and the presented one if a trusted
    /// CA issued it. What was passed over is logged with its reason.
    fn signing_keys(
        &self,
        user: &UserName,
        presented: Option<&[u8]>,
        now: u64,
    ) -> Result<Vec<(p256::ecdsa::VerifyingKey, Authority)>, ServiceError> {
        let mut keys = Vec::new();
        for (fingerprint, stored) in self.store.certificates_of(user.as_str())? {
            // Re-validated at every use: it may have expired since enrolment.
            match self
                .parsed_certificate(&fingerprint, &stored.pem)
                .and_then(|cert| {
                    cert.check_user(user)?;
                    cert.check_time(now as i64, self.skew())?;
                    Ok(cert)
                }) {
                Ok(cert) => keys.push((*cert.public_key(), Authority::Enrolled { fingerprint })),
                Err(e) => {
                    info!(event = "verify", user = %user, fingerprint = %fingerprint, reason = %e, "skipping certificate");
                }
            }
        }
        if let Some(der) = presented {
            let trust = self.trust.current();
            match trust.check_presented(
                der,
                user,
                now as i64,
                self.skew(),
                self.config.crl_policy(),
            ) {
                Ok(accepted) if !self.config.ca_allow_root && is_superuser(user) => {
                    warn!(event = "verify", user = %user, presented = "refused", serial = %accepted.certificate.serial_hex(), issuer = ?accepted.issuer, reason = "a CA-issued certificate may not sign for an account with uid 0 (ca_allow_root is off)", "presented certificate not accepted");
                }
                Ok(accepted) => keys.push((
                    *accepted.certificate.public_key(),
                    Authority::Ca {
                        issuer: accepted.issuer,
                        serial: accepted.certificate.serial_hex().to_owned(),
                        fingerprint: accepted.certificate.fingerprint(),
                    },
                )),
                Err(e) => {
                    // The real reason goes to the journal only: outside,
                    // a refused certificate looks like a bad signature.
                    let (serial, issuer) = ecp_core::certificate::parse_user_certificate_der(der)
                        .map(|c| (c.serial_hex().to_owned(), c.issuer().to_owned()))
                        .unwrap_or_default();
                    // Debug formatting: names in a certificate are the presenter's
                    // text, and must not forge log lines.
                    warn!(event = "verify", user = %user, presented = "refused", serial = %serial, issuer = ?issuer, reason = ?e.to_string(), "presented certificate not accepted");
                }
            }
        }
        Ok(keys)
    }

    /// The answer itself: user binding, the keys that may sign, the
    /// signature, and finally the one-time use of the nonce.
    fn check_answer(
        &self,
        user: &UserName,
        challenge: &Challenge,
        signature: &str,
        presented: Option<&[u8]>,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
        now: u64,
    ) -> Result<String, ServiceError> {
        let auth = ServiceError::Auth;
        if challenge.user != *user {
            return Err(auth(AuthFailure::WrongUser));
        }
        // Only the module sends this (the user could not unlock the key
        // file), and it knows it did: no decoy check is needed to hide it.
        if signature.trim().is_empty() {
            return Err(auth(AuthFailure::NoSignature));
        }
        let mut keys = self.signing_keys(user, presented, now)?;
        // A directory that cannot be asked does not stop keys from this
        // host or a CA: only if none of them verifies is the login
        // undecidable.
        let mut directory_holds_values = false;
        let mut directory_unavailable = None;
        match self.directory_keys(user, looked_up, now) {
            Ok((directory_keys, holds_values)) => {
                keys.extend(directory_keys);
                directory_holds_values = holds_values;
            }
            Err(e) if keys.is_empty() => return Err(e),
            Err(e) => directory_unavailable = Some(e),
        }
        if keys.is_empty() {
            // As costly as a real check, so the time of a refusal does not
            // tell an enrolled user from an unknown one.
            let _ = challenge.verify(&self.decoy, signature);
            // "Not enrolled" lets a `nouserok` module wave the user through:
            // never so while CAs are trusted, since anyone may hold a
            // CA-issued certificate.
            // A presented certificate that was refused answers exactly as
            // a bad signature does.
            let enrolled = !self.store.certificates_of(user.as_str())?.is_empty();
            return Err(auth(if presented.is_some() {
                AuthFailure::BadSignature
            } else if enrolled || directory_holds_values || self.trust.is_configured() {
                AuthFailure::NoValidCertificate
            } else {
                AuthFailure::NotEnrolled
            }));
        }
        for (key, authority) in keys {
            if challenge.verify(&key, signature).is_ok() {
                // Only a correct answer uses the nonce up: of concurrent
                // correct answers exactly one gets through here.
                if !self.tokens.consume(challenge) {
                    return Err(auth(AuthFailure::AlreadyUsed));
                }
                return Ok(match authority {
                    Authority::Enrolled { fingerprint } => {
                        // The last-use time is for the admin's eye: a full
                        // or read-only disk must not turn a good login away.
                        if let Err(e) =
                            self.store
                                .touch_certificate(user.as_str(), &fingerprint, now as i64)
                        {
                            warn!(event = "store", user = %user, fingerprint = %fingerprint, outcome = "failed", reason = %e, "could not record the certificate's last use");
                        }
                        fingerprint
                    }
                    Authority::Directory { fingerprint } => {
                        info!(event = "verify", user = %user, fingerprint = %fingerprint, "signed with a certificate from the directory");
                        fingerprint
                    }
                    Authority::Ca {
                        issuer,
                        serial,
                        fingerprint,
                    } => {
                        info!(event = "verify", user = %user, issuer = ?issuer, serial = %serial, fingerprint = %fingerprint, "signed with a CA-issued certificate");
                        fingerprint
                    }
                });
            }
        }
        if let Some(e) = directory_unavailable {
            // Perhaps signed with a key only the directory knows.
            return Err(e);
        }
        Err(auth(AuthFailure::BadSignature))
    }

    /// Whether the directory must be asked for `user` before this Verify:
    /// only when everything the answer could be refused for without it
    /// has passed (caller, a signature at all, a genuine unexpired unused
    /// token of `user`'s, no penalty), so that nothing anyone can send
    /// makes ecpd ask the directory over and over; and only when the
    /// cached answer is missing or older than `cache_ttl_secs`.
    pub fn directory_lookup_due(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
    ) -> Option<DueLookup> {
        self.directory.as_ref()?;
        let user = UserName::parse(user).ok()?;
        self.authorize_self_or_root(caller, &user, "verify").ok()?;
        if signature.trim().is_empty() || signature.len() > MAX_SIGNATURE_LEN * 2 {
            return None;
        }
        let now = self.clock.now();
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let challenge = Challenge::from_token(token).ok()?;
        let usable = challenge.user == user
            && self.tokens.is_genuine(&challenge)
            && challenge.check_not_expired(now).is_ok()
            && !self.tokens.is_used(&challenge);
        if !usable {
            return None;
        }
        let source = Source::of(
            challenge.requester_uid,
            &challenge.rhost,
            self.config.grouping(),
        );
        self.throttle.check_penalty(&user, &source, now).ok()?;
        self.lookup_due(&user, now)
    }

    /// Whether `user`'s directory answer is missing or stale; the lookup to
    /// run if so.
    fn lookup_due(&self, user: &UserName, now: u64) -> Option<DueLookup> {
        let directory = self.directory.as_ref()?;
        if self.directory_refused_for(user) {
            return None;
        }
        let ttl = directory.config().cache_ttl_secs;
        let known = match self.store.cached_lookup(user.as_str()) {
            Ok(Some(cached)) if now.saturating_sub(cached.fetched_at) < ttl => return None,
            Ok(Some(_)) => true,
            _ => false,
        };
        if !known && directory.known_absent(user.as_str(), now) {
            return None;
        }
        Some(DueLookup {
            _in_flight: directory.start_lookup(user.as_str())?,
            directory: directory.clone(),
            user: user.as_str().to_owned(),
            known,
        })
    }

    /// The lookup `NeedsSignature` needs for `nouserok`: only when the
    /// caller may ask about `user`, nothing else already says a signature
    /// is needed, and no fresh answer is at hand.
    pub fn needs_signature_lookup_due(&self, caller: &Caller, user: &str) -> Option<DueLookup> {
        self.directory.as_ref()?;
        let user = UserName::parse(user).ok()?;
        self.authorize_self_or_root(caller, &user, "ask about")
            .ok()?;
        if self.trust.is_configured() {
            return None;
        }
        if !self.store.certificates_of(user.as_str()).ok()?.is_empty() {
            return None;
        }
        self.lookup_due(&user, self.clock.now())
    }

    /// Records a finished lookup: its time (for `status`), the names
    /// without a certificate, and the cache — whatever the login it was
    /// made for then decides, so that the next one need not ask again. A
    /// fresh answer replaces the cached one (an empty answer removes it:
    /// that is how a removal arrives, and made-up names leave nothing in
    /// the store); an unusable entry removes it too; an outage leaves it.
    pub fn lookup_done(
        &self,
        user: &str,
        outcome: Result<Vec<Vec<u8>>, LookupError>,
    ) -> Result<Vec<Vec<u8>>, LookupError> {
        let Some(directory) = &self.directory else {
            return outcome;
        };
        let now = self.clock.now();
        directory.record(user, &outcome, now);
        let stored = match &outcome {
            Ok(certificates) if !certificates.is_empty() => self.store.cache_lookup(
                user,
                &CachedLookup {
                    fetched_at: now,
                    certificates: certificates.clone(),
                },
            ),
            Ok(_) | Err(LookupError::BadEntry(_)) => self.store.flush_lookups(Some(user)).map(drop),
            Err(_) => Ok(()),
        };
        match stored {
            Ok(()) => outcome,
            // Not kept: decide on this answer all the same, but say so.
            Err(e) => {
                warn!(event = "store", user = %user, outcome = "failed", reason = %e, "could not keep the directory's answer");
                outcome
            }
        }
    }

    /// Directory certificates never sign for an account with uid 0
    /// unless `ca_allow_root` says certificates from outside this host
    /// may: whoever can write a directory entry would otherwise hold
    /// root's second factor on every host.
    fn directory_refused_for(&self, user: &UserName) -> bool {
        !self.config.ca_allow_root && is_superuser(user)
    }

    /// The certificates the directory holds for `user`: from a fresh
    /// answer (which then replaces the cached one — also when it holds no
    /// certificate, which is how a revocation arrives), else from the
    /// cache while it is young enough. A failed lookup never replaces a
    /// cached answer; with none younger than `max_offline_secs` the login
    /// cannot be decided.
    fn directory_certificates(
        &self,
        user: &UserName,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
        now: u64,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        let Some(directory) = &self.directory else {
            return Ok(Vec::new());
        };
        if self.directory_refused_for(user) {
            return Ok(Vec::new());
        }
        let max_offline_secs = directory.config().max_offline_secs;
        match looked_up {
            // Fresh (and already cached by `lookup_done`).
            Some(Ok(certificates)) => return Ok(certificates),
            Some(Err(e @ LookupError::BadEntry(_))) => {
                warn!(event = "directory", user = %user, outcome = "unavailable", reason = %e, "the user's entry is unusable: the login fails closed");
                return Err(ServiceError::DirectoryUnavailable(e.to_string()));
            }
            _ => {}
        }
        let cached = self.store.cached_lookup(user.as_str())?;
        if looked_up.is_none() && cached.is_none() && directory.known_absent(user.as_str(), now) {
            // The directory said lately that there is no certificate.
            return Ok(Vec::new());
        }
        let age = cached.as_ref().map(|c| now.saturating_sub(c.fetched_at));
        let young = age.is_some_and(|age| age < max_offline_secs);
        match (cached, &looked_up) {
            (Some(cached), None) if young => Ok(cached.certificates),
            (Some(cached), Some(Err(e))) if young => {
                warn!(event = "directory", user = %user, outcome = "failed", reason = %e, cached_age_secs = age.unwrap_or(0), "using the cached answer while it is younger than max_offline_secs");
                Ok(cached.certificates)
            }
            _ => {
                let why = match looked_up {
                    Some(Err(e)) => e.to_string(),
                    _ => "no lookup could be made now".into(),
                };
                warn!(event = "directory", user = %user, outcome = "unavailable", reason = %why, "no cached answer young enough: the login fails closed");
                Err(ServiceError::DirectoryUnavailable(format!(
                    "the directory cannot be asked about {user} ({why}) and no cached answer is younger than {max_offline_secs} s"
                )))
            }
        }
    }

    /// The keys the directory vouches for: its certificates that are
    /// valid for `user` now (self-signed, or issued by a trusted CA); and
    /// whether it holds any value at all for the user, usable or not.
    fn directory_keys(
        &self,
        user: &UserName,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
        now: u64,
    ) -> Result<(Vec<(p256::ecdsa::VerifyingKey, Authority)>, bool), ServiceError> {
        let certificates = self.directory_certificates(user, looked_up, now)?;
        let holds_values = !certificates.is_empty();
        let mut keys = Vec::new();
        for der in certificates {
            let checked = self
                .self_signed_der(&der)
                .and_then(|cert| {
                    cert.check_user(user)?;
                    cert.check_time(now as i64, self.skew())?;
                    Ok(cert)
                })
                .map(|cert| (*cert.public_key(), cert.fingerprint()))
                .or_else(|e| {
                    // Not self-signed: a trusted CA may have issued it.
                    let trust = self.trust.current();
                    trust
                        .check_presented(
                            &der,
                            user,
                            now as i64,
                            self.skew(),
                            self.config.crl_policy(),
                        )
                        .map(|a| (*a.certificate.public_key(), a.certificate.fingerprint()))
                        .map_err(|_| e)
                });
            match checked {
                Ok((key, fingerprint)) => keys.push((key, Authority::Directory { fingerprint })),
                Err(e) => {
                    info!(event = "verify", user = %user, source = "directory", reason = ?e.to_string(), "skipping a directory certificate");
                }
            }
        }
        Ok((keys, holds_values))
    }

    /// Drops cached directory answers (one user's, or all); root only.
    pub fn flush_directory_cache(&self, caller: &Caller, user: &str) -> Result<u64, ServiceError> {
        self.authorize_root(caller, "flush the directory cache")?;
        let user = if user.is_empty() {
            None
        } else {
            Some(parse_user(user)?)
        };
        let removed = self
            .store
            .flush_lookups(user.as_ref().map(|u| u.as_str()))?;
        if let Some(directory) = &self.directory {
            directory.forget_absent(user.as_ref().map(|u| u.as_str()));
        }
        info!(
            event = "directory",
            outcome = "flushed",
            removed,
            "directory cache flushed"
        );
        Ok(removed)
    }

    /// Whether a login of `user` needs a signature: an enrolled
    /// certificate, or any trusted CA (then everyone may hold one, so
    /// `nouserok` must not let anyone through on the password alone).
    pub fn needs_signature(
        &self,
        caller: &Caller,
        user: &str,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
    ) -> Result<bool, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_self_or_root(caller, &user, "ask about")?;
        // Any trusted CA may have issued this user a certificate.
        if self.trust.is_configured() {
            return Ok(true);
        }
        if !self.store.certificates_of(user.as_str())?.is_empty() {
            return Ok(true);
        }
        // "Not enrolled" only on the directory's word (fresh, or cached
        // while young enough); any certificate value counts, usable or
        // not, and a directory that cannot be asked is an error.
        Ok(!self
            .directory_certificates(&user, looked_up, self.clock.now())?
            .is_empty())
    }

    /// Re-reads `ca_file` and `crl_file` if they changed (always, with
    /// `force`); true when a new set is in force.
    pub fn refresh_trust(&self, force: bool) -> bool {
        let changed = self.trust.refresh(force);
        if changed {
            record_crl_marks(&self.store, &self.trust.current());
        }
        changed
    }

    /// The CAs and CRLs in force, for `ecpctl status` and `doctor`.
    pub fn trust_report(&self) -> ecp_core::bus::TrustReport {
        let store = self.trust.current();
        ecp_core::bus::TrustReport {
            configured: self.trust.is_configured(),
            cas: store
                .crls()
                .map(|(ca, crl)| ecp_core::bus::TrustedCaEntry {
                    subject: ca.subject.clone(),
                    fingerprint: ca.fingerprint.clone(),
                    not_before: ca.not_before,
                    not_after: ca.not_after,
                    crl_this_update: crl.map_or(0, |c| c.this_update),
                    crl_next_update: crl.and_then(|c| c.next_update).unwrap_or(0),
                })
                .collect(),
            problem: self.trust.problem(),
        }
    }

    /// Whether a status probe of the directory is due for `caller`: root
    /// only (it makes a connection), when a directory is configured.
    pub fn directory_probe_due(&self, caller: &Caller) -> Option<Arc<Directory>> {
        self.authorize_root(caller, "probe the directory").ok()?;
        self.directory.clone()
    }

    /// The directory's state for `status` and `doctor`, with the outcome
    /// of a probe made just now (None: none was made).
    pub fn directory_report(
        &self,
        caller: &Caller,
        probe: Option<Result<String, LookupError>>,
    ) -> Result<ecp_core::bus::DirectoryReport, ServiceError> {
        // Failure reasons and cache counts are the admin's; and a scan of
        // the cache is not for anyone to repeat at will.
        self.authorize_root(caller, "ask about the directory")?;
        let Some(directory) = &self.directory else {
            return Ok(ecp_core::bus::DirectoryReport::default());
        };
        let config = directory.config();
        let (last_success, last_failure) = directory.health();
        let (cached_users, oldest) = self.store.lookup_cache_summary()?;
        let (answered_by, problem) = match &probe {
            Some(Ok(uri)) => (uri.clone(), String::new()),
            Some(Err(e)) => (String::new(), e.to_string()),
            None => (String::new(), String::new()),
        };
        let (last_failure, last_failure_reason) = last_failure.unwrap_or_default();
        Ok(ecp_core::bus::DirectoryReport {
            configured: true,
            servers: config.uri.clone(),
            probed: probe.is_some(),
            answered_by,
            problem,
            last_success: last_success.unwrap_or(0) as i64,
            last_failure: last_failure as i64,
            last_failure_reason,
            cached_users,
            oldest_cached: oldest.unwrap_or(0) as i64,
            cache_ttl_secs: config.cache_ttl_secs,
            max_offline_secs: config.max_offline_secs,
        })
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
        let now = self.clock.now() as i64;
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
            renewed_from: String::new(),
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
            // Only renewals name a signer.
            AddOutcome::SignerGone | AddOutcome::SignerUsed { .. } => {
                Err(ServiceError::AlreadyEnrolled)
            }
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

    /// Clears the user's failures and waits, from every source.
    pub fn unlock(&self, caller: &Caller, user: &str) -> Result<(), ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "unlock users")?;
        let sources = self.throttle.clear_user(&user);
        info!(event = "unlock", user = %user, sources, outcome = "unlocked");
        Ok(())
    }

    /// Root learns the counts; anyone else only the version, so that no
    /// local user learns how many accounts use ecp or are under attack.
    pub fn status(&self, caller: &Caller) -> Result<DaemonStatus, ServiceError> {
        let version = env!("CARGO_PKG_VERSION").to_owned();
        if !caller.is_root() {
            return Ok(DaemonStatus {
                version,
                ..DaemonStatus::default()
            });
        }
        let now = self.clock.now();
        let counts = self.store.counts()?;
        Ok(DaemonStatus {
            version,
            host: self.host.to_string(),
            users: counts.users,
            certificates: counts.certificates,
            recent_challenges: self.recent.count(now, self.config.challenge_lifetime_secs),
            penalised_sources: self.throttle.penalised(now) as u64,
            store_bytes: counts.bytes_on_disk,
            uptime_secs: now.saturating_sub(self.started_at),
        })
    }

    pub fn cleanup(&self, caller: &Caller) -> Result<u64, ServiceError> {
        self.authorize_root(caller, "run a cleanup")?;
        self.periodic_cleanup()
    }

    /// Forgets used nonces whose tokens expired and counters that hold
    /// nothing any more; returns how many nonces were forgotten. Run on a
    /// timer too.
    pub fn periodic_cleanup(&self) -> Result<u64, ServiceError> {
        let now = self.clock.now();
        let forgotten = self.tokens.forget_expired(now) as u64;
        self.throttle.prune(now);
        if forgotten > 0 {
            debug!(event = "cleanup", forgotten, outcome = "done");
        }
        Ok(forgotten)
    }

    /// Sizes of the in-memory tables: used nonces, (user, source) pairs,
    /// remote sources. For tests and the bench.
    pub fn memory_tables(&self) -> (usize, usize, usize) {
        let (pairs, sources) = self.throttle.sizes();
        (self.tokens.used_count(), pairs, sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};
    use ecp_core::keyfile::generate_signing_key;
    use p256::ecdsa::SigningKey;

    const ROOT: Caller = Caller { uid: 0, name: None };

    struct Fixture {
        service: Service,
        clock: Arc<ManualClock>,
        key: SigningKey,
    }

    /// A service on a temporary store whose clock starts at the real time
    /// (certificates are made with it) and moves only when told; `alice`
    /// is enrolled.
    fn fixture(config: &str) -> Fixture {
        let config = Config::parse(&format!("host_name = \"h\"\n{config}"), "test").unwrap();
        let clock = Arc::new(ManualClock::at(SystemClock.now()));
        let service = Service::new(
            Store::temporary().unwrap(),
            config,
            HostName::parse("h").unwrap(),
            clock.clone(),
        )
        .unwrap();
        let key = generate_signing_key();
        let user = UserName::parse("alice").unwrap();
        let pem = ecp_core::certificate::build_self_signed_certificate(&key, &user, 30).unwrap();
        service.enroll(&ROOT, "alice", &pem, "laptop").unwrap();
        Fixture {
            service,
            clock,
            key,
        }
    }

    impl Fixture {
        fn challenge(&self, user: &str, rhost: &str) -> Result<String, ServiceError> {
            self.service.challenge(&ROOT, user, "sshd", rhost)
        }

        fn sign(&self, token: &str) -> String {
            Challenge::from_token(token).unwrap().sign(&self.key)
        }

        /// A whole login for alice from `rhost`.
        fn login(&self, rhost: &str) -> Result<String, ServiceError> {
            let token = self.challenge("alice", rhost)?;
            self.service
                .verify(&ROOT, "alice", &token, &self.sign(&token))
        }

        /// A challenge for alice from `rhost`, answered with garbage.
        fn bad_answer(&self, rhost: &str) -> Result<String, ServiceError> {
            let token = self.challenge("alice", rhost)?;
            let stranger = generate_signing_key();
            let signature = Challenge::from_token(&token).unwrap().sign(&stranger);
            self.service.verify(&ROOT, "alice", &token, &signature)
        }
    }

    fn is_auth(result: &Result<String, ServiceError>, expected: AuthFailure) -> bool {
        matches!(result, Err(ServiceError::Auth(reason)) if *reason == expected)
    }

    #[test]
    fn a_challenge_validates_once_and_stores_nothing_until_answered() {
        let f = fixture("");
        let bytes_before = f.service.store.counts().unwrap().bytes_on_disk;
        let token = f.challenge("alice", "192.0.2.1").unwrap();
        assert_eq!(f.service.memory_tables().0, 0, "issuing used a nonce");
        let signature = f.sign(&token);
        f.service
            .verify(&ROOT, "alice", &token, &signature)
            .unwrap();
        let replay = f.service.verify(&ROOT, "alice", &token, &signature);
        assert!(is_auth(&replay, AuthFailure::AlreadyUsed), "{replay:?}");
        assert_eq!(f.service.memory_tables().0, 1);
        for i in 0..500 {
            f.challenge(&format!("nobody{i}"), "192.0.2.1").ok();
        }
        assert_eq!(f.service.memory_tables().0, 1);
        assert_eq!(
            f.service.store.counts().unwrap().bytes_on_disk,
            bytes_before
        );
    }

    #[test]
    fn concurrent_correct_answers_validate_exactly_once() {
        let f = Arc::new(fixture(""));
        let token = f.challenge("alice", "").unwrap();
        let signature = f.sign(&token);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (f, token, signature) = (f.clone(), token.clone(), signature.clone());
                std::thread::spawn(move || {
                    f.service.verify(&ROOT, "alice", &token, &signature).is_ok()
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(winners, 1);
    }

    #[test]
    fn forged_altered_and_earlier_tokens_are_refused_and_cost_nothing() {
        let f = fixture("failures_before_penalty = 1");
        let token = f.challenge("alice", "192.0.2.1").unwrap();
        let mut altered = Challenge::from_token(&token).unwrap();
        altered.expires_at += 3600;
        let altered = altered.to_token();
        let forged = ecp_core::Challenge::new_random(
            UserName::parse("alice").unwrap(),
            HostName::parse("h").unwrap(),
            ServiceName::parse("sshd").unwrap(),
            f.clock.now(),
            300,
        )
        .unwrap()
        .to_token();
        for _ in 0..5 {
            for bad in [&altered, &forged] {
                let signature = f.sign(bad);
                let result = f.service.verify(&ROOT, "alice", bad, &signature);
                assert!(
                    is_auth(&result, AuthFailure::UnknownChallenge),
                    "{result:?}"
                );
            }
        }
        // Nothing counted: the real token still works from that source.
        assert_eq!(f.service.throttle.penalised(f.clock.now()), 0);
        f.service
            .verify(&ROOT, "alice", &token, &f.sign(&token))
            .unwrap();

        // A token from before a restart: another Service is another key.
        let earlier = f.challenge("alice", "").unwrap();
        let restarted = fixture("");
        let result = restarted
            .service
            .verify(&ROOT, "alice", &earlier, &f.sign(&earlier));
        assert!(
            is_auth(&result, AuthFailure::UnknownChallenge),
            "{result:?}"
        );
    }

    #[test]
    fn challenges_expire() {
        let f = fixture("challenge_lifetime_secs = 60");
        let token = f.challenge("alice", "").unwrap();
        f.clock.advance(59);
        let early = f.challenge("alice", "").unwrap();
        f.service
            .verify(&ROOT, "alice", &token, &f.sign(&token))
            .unwrap();
        f.clock.advance(1);
        let late = f.service.verify(&ROOT, "alice", &early, &f.sign(&early));
        assert!(late.is_ok(), "{late:?}");
        let token = f.challenge("alice", "").unwrap();
        f.clock.advance(60);
        let result = f.service.verify(&ROOT, "alice", &token, &f.sign(&token));
        assert!(is_auth(&result, AuthFailure::Expired), "{result:?}");
        // Used nonces are forgotten once their tokens expired.
        f.clock.advance(60);
        assert_eq!(f.service.periodic_cleanup().unwrap(), 2);
        assert_eq!(f.service.memory_tables().0, 0);
    }

    #[test]
    fn aimed_failures_never_lock_the_user_out_elsewhere() {
        let f = fixture(
            "failures_before_penalty = 3\npenalty_initial_secs = 10\npenalty_max_secs = 900",
        );
        let attacker = "203.0.113.9";
        for _ in 0..3 {
            assert!(is_auth(&f.bad_answer(attacker), AuthFailure::BadSignature));
        }
        // The fourth failure starts the wait; from then on that source is
        // refused for alice before anything is checked.
        let _ = f.bad_answer(attacker);
        for _ in 0..20 {
            assert!(matches!(
                f.bad_answer(attacker),
                Err(ServiceError::Throttled(Refusal::Penalised { .. }))
            ));
        }
        // Alice at the console, from her own address, and from the
        // attacker's neighbour all log in.
        f.login("").unwrap();
        f.login("198.51.100.20").unwrap();
        f.login("203.0.113.10").unwrap();
        // The wait doubles: 10 s, then 20 s.
        f.clock.advance(10);
        assert!(is_auth(&f.bad_answer(attacker), AuthFailure::BadSignature));
        f.clock.advance(19);
        assert!(f.challenge("alice", attacker).is_err());
        f.clock.advance(1);
        f.login(attacker).unwrap();
        // The success cleared the count for that source.
        assert!(is_auth(&f.bad_answer(attacker), AuthFailure::BadSignature));
    }

    #[test]
    fn unlock_clears_every_wait_of_the_user() {
        let f = fixture("failures_before_penalty = 1");
        for rhost in ["192.0.2.1", "192.0.2.2", ""] {
            let _ = f.bad_answer(rhost);
            let _ = f.bad_answer(rhost);
            assert!(f.challenge("alice", rhost).is_err());
        }
        assert_eq!(f.service.status(&ROOT).unwrap().penalised_sources, 3);
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(matches!(
            f.service.unlock(&bob, "alice"),
            Err(ServiceError::AccessDenied(_))
        ));
        f.service.unlock(&ROOT, "alice").unwrap();
        for rhost in ["192.0.2.1", "192.0.2.2", ""] {
            f.login(rhost).unwrap();
        }
    }

    #[test]
    fn a_quota_aimed_from_one_source_starves_no_one_else() {
        let f = fixture("challenges_per_user_per_minute = 10");
        let attacker = "203.0.113.9";
        for _ in 0..10 {
            f.challenge("alice", attacker).unwrap();
        }
        assert!(matches!(
            f.challenge("alice", attacker),
            Err(ServiceError::Throttled(Refusal::TooMany { .. }))
        ));
        f.login("").unwrap();
        f.login("198.51.100.20").unwrap();
        f.clock.advance(60);
        f.login(attacker).unwrap();
    }

    #[test]
    fn a_non_root_caller_is_counted_as_itself_not_as_the_rhost_it_names() {
        let f = fixture("failures_before_penalty = 1\nchallenges_per_user_per_minute = 3");
        let key = generate_signing_key();
        let bob_name = UserName::parse("bob").unwrap();
        let pem =
            ecp_core::certificate::build_self_signed_certificate(&key, &bob_name, 30).unwrap();
        f.service.enroll(&ROOT, "bob", &pem, "").unwrap();
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        let victim_address = "198.51.100.20";
        // Bob earns a wait, naming an address.
        for _ in 0..2 {
            let token = f
                .service
                .challenge(&bob, "bob", "sshd", victim_address)
                .unwrap();
            let _ = f.service.verify(&bob, "bob", &token, "");
        }
        assert!(f
            .service
            .challenge(&bob, "bob", "sshd", victim_address)
            .is_err());
        // The address itself is untouched, for bob's logins through sshd too.
        for _ in 0..3 {
            let token = f.challenge("bob", victim_address).unwrap();
            let signature = Challenge::from_token(&token).unwrap().sign(&key);
            f.service.verify(&ROOT, "bob", &token, &signature).unwrap();
        }
        // And a non-root caller may not act for anyone else.
        assert!(matches!(
            f.service.challenge(&bob, "alice", "sshd", ""),
            Err(ServiceError::AccessDenied(_))
        ));
    }

    #[test]
    fn an_empty_signature_is_counted_as_a_failure() {
        let f = fixture("failures_before_penalty = 2");
        for _ in 0..3 {
            let token = f.challenge("alice", "").unwrap();
            let result = f.service.verify(&ROOT, "alice", &token, "");
            assert!(is_auth(&result, AuthFailure::NoSignature), "{result:?}");
        }
        assert!(matches!(
            f.challenge("alice", ""),
            Err(ServiceError::Throttled(Refusal::Penalised { .. }))
        ));
    }

    #[test]
    fn a_flood_from_many_sources_refuses_no_legitimate_login_and_stays_bounded() {
        let f = fixture("max_tracked_sources = 1000\nchallenge_lifetime_secs = 30");
        let mut refused = 0;
        for i in 0..20_000u32 {
            let rhost = if i % 2 == 0 {
                format!("2001:db8:0:1:{:x}:{:x}::1", i >> 16, i & 0xffff)
            } else {
                format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
            };
            let user = format!("x{:x}", i.wrapping_mul(2_654_435_761));
            if f.challenge(&user, &rhost).is_err() {
                refused += 1;
            }
            if i % 1000 == 0 {
                f.login("").unwrap();
                f.login("198.51.100.20").unwrap();
                f.clock.advance(10);
                f.service.periodic_cleanup().unwrap();
            }
        }
        // The IPv6 half is one /64: all but its allowance was refused.
        assert!(refused >= 9_000, "{refused}");
        let (used, pairs, sources) = f.service.memory_tables();
        // Remote and local pairs are kept in tables of their own.
        assert!(pairs <= 2 * 1000 && sources <= 1000, "{pairs} {sources}");
        assert!(used <= 20, "{used}");
        f.login("").unwrap();
        f.login("2001:db8:0:2::1").unwrap();
    }

    #[test]
    fn status_tells_non_root_callers_the_version_only() {
        let f = fixture("");
        f.challenge("alice", "").unwrap();
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        let seen = f.service.status(&bob).unwrap();
        assert_eq!(seen.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            seen,
            DaemonStatus {
                version: seen.version.clone(),
                ..DaemonStatus::default()
            }
        );
        let full = f.service.status(&ROOT).unwrap();
        assert_eq!(
            (full.users, full.certificates, full.recent_challenges),
            (1, 1, 1)
        );
        assert_eq!(full.host, "h");
    }

    /// An organisation CA made in-process: its certificate file in `dir`
    /// and its key.
    fn organisation_ca(
        dir: &std::path::Path,
    ) -> (std::path::PathBuf, ecp_core::issue::CaSigningKey) {
        use std::str::FromStr;
        use x509_cert::builder::{profile::cabf::Root, Builder, CertificateBuilder};
        let key = generate_signing_key();
        let subject = x509_cert::name::Name::from_str("CN=Test CA,O=ecp tests,C=XX").unwrap();
        let validity =
            x509_cert::time::Validity::from_now(std::time::Duration::from_secs(86_400)).unwrap();
        let spki = x509_cert::spki::SubjectPublicKeyInfo::from_key(key.verifying_key()).unwrap();
        let certificate = CertificateBuilder::new(
            Root::new(false, subject).unwrap(),
            x509_cert::serial_number::SerialNumber::from(7u32),
            validity,
            spki,
        )
        .unwrap()
        .build::<_, p256::ecdsa::DerSignature>(&key)
        .unwrap();
        use pkcs8::der::EncodePem;
        let pem = certificate.to_pem(pkcs8::der::pem::LineEnding::LF).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, pem).unwrap();
        (path, ecp_core::issue::CaSigningKey::P256(key))
    }

    /// A certificate for `user`'s `key` from the CA, in DER.
    fn issued(
        ca: &(std::path::PathBuf, ecp_core::issue::CaSigningKey),
        user: &str,
        key: &SigningKey,
    ) -> Vec<u8> {
        let request =
            ecp_core::issue::build_certificate_request(key, &UserName::parse(user).unwrap())
                .unwrap();
        let request = ecp_core::issue::check_certificate_request(request.as_bytes()).unwrap();
        let pem = ecp_core::issue::issue_user_certificate(
            &std::fs::read(&ca.0).unwrap(),
            &ca.1,
            &request,
            30,
        )
        .unwrap();
        ecp_core::certificate::parse_user_certificate_pem(pem.as_bytes())
            .unwrap()
            .der()
            .to_vec()
    }

    /// The usual fixture, trusting the CA certificate in `ca_file`.
    fn trusting(ca_file: &std::path::Path) -> Fixture {
        fixture(&format!(
            "ca_file = \"{}\"\nrequire_crl = false\n",
            ca_file.display()
        ))
    }

    #[test]
    fn the_keys_that_may_sign_are_the_enrolled_ones_and_a_presented_ca_issued_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = organisation_ca(dir.path());
        let f = trusting(&ca.0);
        let alice = UserName::parse("alice").unwrap();
        let now = f.clock.now();
        let other_key = generate_signing_key();

        let enrolled_only = f.service.signing_keys(&alice, None, now).unwrap();
        assert_eq!(enrolled_only.len(), 1);
        assert!(matches!(enrolled_only[0].1, Authority::Enrolled { .. }));

        let presented = issued(&ca, "alice", &other_key);
        let both = f
            .service
            .signing_keys(&alice, Some(&presented), now)
            .unwrap();
        assert_eq!(both.len(), 2);
        assert!(matches!(&both[1].1, Authority::Ca { issuer, .. } if issuer.contains("Test CA")));
        assert_eq!(both[1].0, *other_key.verifying_key());

        // root: not from a CA unless ca_allow_root.
        let root = UserName::parse("root").unwrap();
        let for_root = issued(&ca, "root", &other_key);
        assert!(f
            .service
            .signing_keys(&root, Some(&for_root), now)
            .unwrap()
            .is_empty());
        let allowing = fixture(&format!(
            "ca_file = \"{}\"\nrequire_crl = false\nca_allow_root = true\n",
            ca.0.display()
        ));
        assert_eq!(
            allowing
                .service
                .signing_keys(&root, Some(&for_root), now)
                .unwrap()
                .len(),
            1
        );

        // Not for alice, not from a trusted CA, or garbage: not a key.
        let for_bob = issued(&ca, "bob", &other_key);
        let self_signed = self_signed_der(&other_key, &alice);
        for refused in [for_bob, self_signed, vec![0x30, 0x00]] {
            assert_eq!(
                f.service
                    .signing_keys(&alice, Some(&refused), now)
                    .unwrap()
                    .len(),
                1
            );
        }
    }

    #[test]
    fn a_ca_issued_key_logs_in_unenrolled_and_a_refusal_still_costs_one_check() {
        let dir = tempfile::tempdir().unwrap();
        let ca = organisation_ca(dir.path());
        let f = trusting(&ca.0);
        let carol = generate_signing_key();
        let certificate = issued(&ca, "carol", &carol);
        let token = f.challenge("carol", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&carol);
        let fingerprint = f
            .service
            .verify_presented(&ROOT, "carol", &token, &signature, &certificate)
            .unwrap();
        assert_eq!(
            fingerprint,
            ecp_core::certificate::fingerprint_of_der(&certificate)
        );
        assert!(f.service.list(&ROOT, "carol").unwrap().is_empty());

        // Without the certificate, or with a stranger's signature: refused,
        // and never as "not enrolled" (which nouserok would let through).
        let token = f.challenge("carol", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&carol);
        assert!(matches!(
            f.service.verify(&ROOT, "carol", &token, &signature),
            Err(ServiceError::Auth(AuthFailure::NoValidCertificate))
        ));
        let token = f.challenge("carol", "").unwrap();
        let stranger = Challenge::from_token(&token)
            .unwrap()
            .sign(&generate_signing_key());
        assert!(matches!(
            f.service
                .verify_presented(&ROOT, "carol", &token, &stranger, &certificate),
            Err(ServiceError::Auth(AuthFailure::BadSignature))
        ));
        // A certificate from no trusted CA: the same answer as a bad
        // signature, though carol has no key at all here.
        let token = f.challenge("carol", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&carol);
        let self_signed = self_signed_der(&carol, &UserName::parse("carol").unwrap());
        assert!(matches!(
            f.service
                .verify_presented(&ROOT, "carol", &token, &signature, &self_signed),
            Err(ServiceError::Auth(AuthFailure::BadSignature))
        ));
        assert!(f.service.needs_signature(&ROOT, "carol", None).unwrap());
        assert!(f
            .service
            .needs_signature(&ROOT, "nobody-here", None)
            .unwrap());
    }

    /// The DER of a self-signed certificate for `user`'s `key`.
    fn self_signed_der(key: &SigningKey, user: &UserName) -> Vec<u8> {
        let pem = ecp_core::certificate::build_self_signed_certificate(key, user, 30).unwrap();
        ecp_core::certificate::parse_certificate_pem(pem.as_bytes())
            .unwrap()
            .der()
            .to_vec()
    }

    /// A service whose users' certificates come from a directory (no
    /// server: the tests hand it the directory's answers).
    fn with_directory() -> Fixture {
        fixture(
            "[directory]\nuri = [\"ldapi://%2Fnowhere\"]\nbase_dn = \"dc=example,dc=org\"\n\
             cache_ttl_secs = 60\nmax_offline_secs = 600\n",
        )
    }

    #[test]
    fn the_directory_answer_is_cached_replaced_by_a_revocation_and_bounded_offline() {
        let f = with_directory();
        let dave = generate_signing_key();
        let user = UserName::parse("dave").unwrap();
        let der = self_signed_der(&dave, &user);
        let login = |looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>| {
            let looked_up = looked_up.map(|outcome| f.service.lookup_done("dave", outcome));
            let token = f.challenge("dave", "").unwrap();
            let signature = Challenge::from_token(&token).unwrap().sign(&dave);
            f.service
                .verify_answer(&ROOT, "dave", &token, &signature, None, looked_up)
        };
        let down = || Some(Err(LookupError::Unreachable("connect timed out".into())));
        // Whether a Verify for dave with a fresh token would ask the directory.
        let due = || {
            f.service
                .directory_lookup_due(&ROOT, "dave", &f.challenge("dave", "").unwrap(), "MEUC")
                .is_some()
        };

        // Nothing cached and the directory down: cannot decide.
        assert!(due());
        assert!(matches!(
            login(down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));

        // The directory's answer logs dave in with nothing enrolled, and is
        // cached: no lookup is due within the TTL.
        assert!(login(Some(Ok(vec![der.clone()]))).is_ok());
        assert!(!due());
        assert!(login(None).is_ok());
        f.clock.advance(61);
        // Due now, but only for a genuine token of dave's: one that is not
        // ecpd's, or another user's, never makes it ask.
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "dave", "AAAA", "MEUC")
            .is_none());
        let alices = f.challenge("alice", "").unwrap();
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "dave", &alices, "MEUC")
            .is_none());
        let daves = f.challenge("dave", "").unwrap();
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "dave", &daves, "MEUC")
            .is_some());

        // The directory down: the cached answer serves until it is
        // max_offline_secs old, then the login fails closed.
        assert!(login(down()).is_ok());
        f.clock.advance(600);
        assert!(matches!(
            login(down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));

        // The directory back, with the certificate removed: refused, and
        // the empty answer replaces the cached one.
        assert!(login(Some(Ok(vec![der.clone()]))).is_ok());
        assert!(matches!(
            login(Some(Ok(Vec::new()))),
            Err(ServiceError::Auth(_))
        ));
        // "No certificate" is remembered (in memory) for the TTL: no
        // lookup, and still refused rather than unavailable.
        assert!(!due());
        assert!(matches!(login(None), Err(ServiceError::Auth(_))));
        f.clock.advance(61);
        assert!(due());
        // A failed lookup never brings the old answer back: fails closed.
        assert!(matches!(
            login(down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));

        // Made-up names the directory has no certificate for leave no
        // trace in the store.
        let before = f.service.store.lookup_cache_summary().unwrap().0;
        for i in 0..50 {
            let name = format!("nobody{i}");
            let token = f.challenge(&name, "").unwrap();
            let _ = f.service.verify_answer(
                &ROOT,
                &name,
                &token,
                "MEUCIQx",
                None,
                Some(Ok(Vec::new())),
            );
        }
        assert_eq!(f.service.store.lookup_cache_summary().unwrap().0, before);
        assert!(login(Some(Ok(vec![der.clone()]))).is_ok());

        // Hostile values (garbage, another user's certificate) give no key.
        let other = self_signed_der(&dave, &UserName::parse("erin").unwrap());
        assert!(login(Some(Ok(vec![vec![0x30, 0x82, 0xff], other]))).is_err());

        // ecpctl cache flush: root only, and the next login must ask.
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(f.service.flush_directory_cache(&bob, "").is_err());
        assert_eq!(f.service.flush_directory_cache(&ROOT, "dave").unwrap(), 1);
        assert!(due());
    }

    #[test]
    fn nouserok_with_a_directory_needs_its_word_that_there_is_no_certificate() {
        let f = with_directory();
        let dave = generate_signing_key();
        let der = self_signed_der(&dave, &UserName::parse("dave").unwrap());
        let down = || Some(Err(LookupError::Unreachable("connect timed out".into())));
        let needs = |user: &str, looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>| {
            let looked_up = looked_up.map(|outcome| f.service.lookup_done(user, outcome));
            f.service.needs_signature(&ROOT, user, looked_up)
        };
        // Unreachable, nothing cached: cannot say, so no PAM_IGNORE.
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_some());
        assert!(matches!(
            needs("erin", down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
        // The directory's "no certificate" is the only way to "not
        // enrolled", and it is remembered for the TTL.
        assert!(!needs("erin", Some(Ok(Vec::new()))).unwrap());
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_none());
        assert!(!needs("erin", None).unwrap());
        f.clock.advance(61);
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_some());
        // Any value counts, even one that is no certificate at all.
        assert!(needs("dave", Some(Ok(vec![vec![1, 2, 3]]))).unwrap());
        assert!(needs("dave", Some(Ok(vec![der]))).unwrap());
        // Cached: the directory down changes nothing until max_offline_secs.
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "dave")
            .is_none());
        f.clock.advance(61);
        assert!(needs("dave", down()).unwrap());
        // A user may ask about itself only.
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(f.service.needs_signature_lookup_due(&bob, "dave").is_none());
        assert!(f.service.needs_signature(&bob, "dave", None).is_err());
    }

    #[test]
    fn an_unusable_directory_entry_is_never_not_enrolled() {
        let f = with_directory();
        let down = || Some(Err(LookupError::Unreachable("connect timed out".into())));
        let verify = |user: &str, looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>| {
            let looked_up = looked_up.map(|outcome| f.service.lookup_done(user, outcome));
            let token = f.challenge(user, "").unwrap();
            f.service
                .verify_answer(&ROOT, user, &token, "MEUCIQx", None, looked_up)
        };
        // Garbage, or a value too big to keep (kept as an empty value):
        // the user holds a certificate, so a made-up answer is a failure,
        // never "not enrolled" (which nouserok would wave through).
        for values in [vec![b"garbage".to_vec()], vec![Vec::new()]] {
            assert!(matches!(
                verify("erin", Some(Ok(values))),
                Err(ServiceError::Auth(AuthFailure::NoValidCertificate))
            ));
        }
        // An unusable entry (too many values) drops what was cached and
        // fails closed, so padding an entry cannot keep an old answer.
        let erin = generate_signing_key();
        let der = self_signed_der(&erin, &UserName::parse("erin").unwrap());
        let token = f.challenge("erin", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&erin);
        let fresh = Some(f.service.lookup_done("erin", Ok(vec![der])));
        assert!(f
            .service
            .verify_answer(&ROOT, "erin", &token, &signature, None, fresh)
            .is_ok());
        assert!(matches!(
            verify("erin", Some(Err(LookupError::BadEntry("17 values".into())))),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
        assert!(matches!(
            verify("erin", down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
        // Directory certificates never sign for root (ca_allow_root off).
        let root_key = generate_signing_key();
        let root_der = self_signed_der(&root_key, &UserName::parse("root").unwrap());
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "root", &f.challenge("root", "").unwrap(), "MEUC")
            .is_none());
        let token = f.challenge("root", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&root_key);
        assert!(f
            .service
            .verify_answer(
                &ROOT,
                "root",
                &token,
                &signature,
                None,
                Some(Ok(vec![root_der]))
            )
            .is_err());
    }

    #[test]
    fn only_an_answer_that_could_pass_makes_ecpd_ask_the_directory() {
        let f = with_directory();
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        let token = f.challenge("dave", "").unwrap();
        let due = |caller: &Caller, token: &str, signature: &str| {
            f.service
                .directory_lookup_due(caller, "dave", token, signature)
                .is_some()
        };
        assert!(due(&ROOT, &token, "MEUC"));
        assert!(!due(&ROOT, &token, ""), "no signature");
        assert!(!due(&bob, &token, "MEUC"), "another user's caller");
        // One lookup per user at a time.
        let first = f
            .service
            .directory_lookup_due(&ROOT, "dave", &token, "MEUC");
        assert!(first.is_some());
        assert!(!due(&ROOT, &token, "MEUC"), "one already under way");
        drop(first);
        assert!(due(&ROOT, &token, "MEUC"));
        // A penalised source asks nothing.
        let f = fixture(
            "failures_before_penalty = 1\n[directory]\nuri = [\"ldapi://%2Fnowhere\"]\n\
             base_dn = \"dc=example,dc=org\"\n",
        );
        let tokens: Vec<String> = (0..3).map(|_| f.challenge("dave", "").unwrap()).collect();
        for token in &tokens[..2] {
            let _ = f.service.verify_answer(
                &ROOT,
                "dave",
                token,
                "MEUCIQx",
                None,
                Some(Ok(vec![b"x".to_vec()])),
            );
        }
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "dave", &tokens[2], "MEUC")
            .is_none());
        // A used token asks nothing either.
        let token = f.challenge("alice", "").unwrap();
        f.service
            .verify(&ROOT, "alice", &token, &f.sign(&token))
            .unwrap();
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "alice", &token, "MEUC")
            .is_none());
    }

    #[test]
    fn keys_from_this_host_still_work_while_the_directory_is_down() {
        let f = with_directory();
        let down = || Some(Err(LookupError::Unreachable("connect timed out".into())));
        // alice is enrolled here: the directory being down does not matter
        // to a signature her enrolled key makes.
        let token = f.challenge("alice", "").unwrap();
        assert!(f
            .service
            .verify_answer(&ROOT, "alice", &token, &f.sign(&token), None, down())
            .is_ok());
        // Any other signature cannot be decided (a directory key might
        // have made it).
        let token = f.challenge("alice", "").unwrap();
        let stranger = Challenge::from_token(&token)
            .unwrap()
            .sign(&generate_signing_key());
        assert!(matches!(
            f.service
                .verify_answer(&ROOT, "alice", &token, &stranger, None, down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
    }

    #[test]
    fn a_cache_flush_also_forgets_names_without_a_certificate_and_status_is_roots() {
        let f = with_directory();
        let _ = f.service.lookup_done("erin", Ok(Vec::new()));
        assert!(!f.service.needs_signature(&ROOT, "erin", None).unwrap());
        f.service.flush_directory_cache(&ROOT, "erin").unwrap();
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_some());
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(f.service.directory_report(&bob, None).is_err());
        let report = f.service.directory_report(&ROOT, None).unwrap();
        assert!(report.configured && !report.probed);
    }

    /// A successor certificate for alice: (key, PEM).
    fn successor_for(user: &str) -> (SigningKey, String) {
        let key = generate_signing_key();
        let pem = ecp_core::certificate::build_self_signed_certificate(
            &key,
            &UserName::parse(user).unwrap(),
            90,
        )
        .unwrap();
        (key, pem)
    }

    /// Asks for a renewal challenge for `pem` and proves it with `key`.
    fn renew_with(
        f: &Fixture,
        caller: &Caller,
        user: &str,
        key: &SigningKey,
        pem: &str,
        retire_old: bool,
    ) -> Result<Renewed, ServiceError> {
        let token = f.service.renewal_challenge(caller, user, pem)?;
        let renewal = ecp_core::challenge::RenewalChallenge::from_token(&token).unwrap();
        f.service.renew(
            caller,
            user,
            &token,
            &renewal.sign(key),
            pem,
            "",
            retire_old,
        )
    }

    #[test]
    fn a_user_renews_its_own_certificate_once_it_is_old_enough() {
        let f = fixture("");
        let alice = Caller {
            uid: 1000,
            name: Some("alice".into()),
        };
        let (new_key, pem) = successor_for("alice");
        // Too young: enrolled just now.
        assert!(matches!(
            renew_with(&f, &alice, "alice", &f.key, &pem, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("renew_min_age_secs")
        ));
        f.clock.advance(86_400);
        let renewed = renew_with(&f, &alice, "alice", &f.key, &pem, false).unwrap();
        assert!(renewed.label.starts_with("renewed-20"), "{}", renewed.label);
        assert_eq!(renewed.retired, None);
        // Both keys now log in; the successor is enrolled under alice.
        let token = f.challenge("alice", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&new_key);
        assert!(f.service.verify(&ROOT, "alice", &token, &signature).is_ok());
        let token = f.challenge("alice", "").unwrap();
        assert!(f
            .service
            .verify(&ROOT, "alice", &token, &f.sign(&token))
            .is_ok());
        // The successor is too young to vouch for another, and the old
        // one has vouched once already: a stolen key cannot mint a fleet.
        let (third_key, third) = successor_for("alice");
        assert!(matches!(
            renew_with(&f, &alice, "alice", &new_key, &third, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("renew_min_age_secs")
        ));
        assert!(matches!(
            renew_with(&f, &alice, "alice", &f.key, &third, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("already vouched")
        ));
        // A day on, the successor vouches for the next and is retired in
        // the same step: it no longer logs in, and its key cannot come
        // back as a later successor.
        f.clock.advance(86_400);
        let retired = renew_with(&f, &alice, "alice", &new_key, &third, true).unwrap();
        assert!(retired.retired.is_some());
        let token = f.challenge("alice", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&new_key);
        assert!(f
            .service
            .verify(&ROOT, "alice", &token, &signature)
            .is_err());
        let again = ecp_core::certificate::build_self_signed_certificate(
            &new_key,
            &UserName::parse("alice").unwrap(),
            30,
        )
        .unwrap();
        f.clock.advance(86_400);
        assert!(matches!(
            renew_with(&f, &alice, "alice", &third_key, &again, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("revoked")
        ));
    }

    #[test]
    fn renewal_refusals_say_why() {
        let f = fixture("");
        f.clock.advance(86_400);
        let bob = Caller {
            uid: 1001,
            name: Some("bob".into()),
        };
        let (_, pem) = successor_for("alice");
        // Not your account.
        assert!(matches!(
            f.service.renewal_challenge(&bob, "alice", &pem),
            Err(ServiceError::AccessDenied(_))
        ));
        // Nothing enrolled.
        let (_, carols) = successor_for("carol");
        assert!(matches!(
            f.service.renewal_challenge(&ROOT, "carol", &carols),
            Err(ServiceError::RenewalRefused(m)) if m.contains("no certificate enrolled")
        ));
        // A successor for someone else.
        assert!(matches!(
            f.service.renewal_challenge(&ROOT, "alice", &carols),
            Err(ServiceError::CertificateRejected(_))
        ));
        // A key that is no enrolled one.
        let stranger = generate_signing_key();
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &stranger, &pem, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("matches no certificate")
        ));

        // A different successor than the one the challenge was issued for.
        let token = f.service.renewal_challenge(&ROOT, "alice", &pem).unwrap();
        let renewal = ecp_core::challenge::RenewalChallenge::from_token(&token).unwrap();
        let (_, other) = successor_for("alice");
        assert!(matches!(
            f.service.renew(&ROOT, "alice", &token, &renewal.sign(&f.key), &other, "", false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("not the one")
        ));
        // Revoked: refused by name.
        let fingerprint = f.service.list(&ROOT, "alice").unwrap()[0]
            .fingerprint
            .clone();
        f.service.revoke(&ROOT, "alice", &fingerprint).unwrap();
        f.service
            .enroll(&ROOT, "alice", &successor_for("alice").1, "spare")
            .unwrap();
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &f.key, &pem, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("revoked")
        ));
        // Turned off: for users, not for root.
        let off = fixture("allow_self_renewal = false");
        let alice = Caller {
            uid: 1000,
            name: Some("alice".into()),
        };
        assert!(matches!(
            off.service.renewal_challenge(&alice, "alice", &pem),
            Err(ServiceError::RenewalRefused(m)) if m.contains("allow_self_renewal")
        ));
        assert!(off.service.renewal_challenge(&ROOT, "alice", &pem).is_ok());
    }

    #[test]
    fn an_expired_certificate_cannot_renew() {
        let f = fixture("");
        // The fixture's certificate is valid for 30 days.
        f.clock.advance(31 * 86_400);
        let (_, pem) = successor_for("alice");
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &f.key, &pem, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("not valid now")
        ));
    }

    #[test]
    fn login_signatures_and_renewal_proofs_never_stand_for_each_other() {
        let f = fixture("");
        f.clock.advance(86_400);
        let (_, pem) = successor_for("alice");
        // A login token and its signature offered as a renewal.
        let login = f.challenge("alice", "").unwrap();
        let login_signature = f.sign(&login);
        assert!(matches!(
            f.service
                .renew(&ROOT, "alice", &login, &login_signature, &pem, "", false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("login challenge")
        ));
        // The renewal token, signed as if it were a login (login prefix).
        let token = f.service.renewal_challenge(&ROOT, "alice", &pem).unwrap();
        let renewal = ecp_core::challenge::RenewalChallenge::from_token(&token).unwrap();
        let as_login = renewal.challenge.sign(&f.key);
        assert!(matches!(
            f.service
                .renew(&ROOT, "alice", &token, &as_login, &pem, "", false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("matches no certificate")
        ));
        // A renewal proof offered as a login answer, with its own token
        // or with a login token.
        let proof = renewal.sign(&f.key);
        assert!(f.service.verify(&ROOT, "alice", &token, &proof).is_err());
        let login = f.challenge("alice", "").unwrap();
        assert!(f.service.verify(&ROOT, "alice", &login, &proof).is_err());
        // The proof itself works once, and only once.
        assert!(f
            .service
            .renew(&ROOT, "alice", &token, &proof, &pem, "", false)
            .is_ok());
        assert!(f
            .service
            .renew(&ROOT, "alice", &token, &proof, &pem, "", false)
            .is_err());
    }
}
