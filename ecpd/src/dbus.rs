//! The D-Bus edge: turns method calls into `Service` calls with the
//! caller's identity, and `ServiceError`s into the contract's `EcpError`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ecp_core::bus::{
    CertificateEntry, DaemonStatus, DirectoryReport, EcpError, RevokedEntry, TrustReport,
};
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName};

use crate::service::{AuthFailure, Caller, Service, ServiceError};
use crate::throttle::Refusal;

/// How many callers' uids are remembered before the cache starts afresh.
const UID_CACHE_LIMIT: usize = 4096;

/// What both interfaces share.
pub struct Shared {
    pub service: Service,
    pub bus: zbus::fdo::DBusProxy<'static>,
    /// Where administrative decisions run: they block on disk (sled
    /// flushes before an enrollment is acknowledged), so they go to the
    /// runtime's blocking pool. Logins (Challenge, Verify) never wait on
    /// disk and run where the call arrives: measured with ecp-bench, the
    /// hop to the pool and back cost more than a Challenge itself and
    /// lowered the pair rate at 16 clients (3,500 against 4,660 /s).
    pub runtime: tokio::runtime::Handle,
    /// uid of each sender's unique name. A unique name is never reused
    /// while the bus runs and a connection's uid cannot change, so the
    /// answer stays true for as long as the name exists.
    pub uids: Mutex<HashMap<OwnedUniqueName, u32>>,
}

impl Shared {
    pub fn new(
        service: Service,
        bus: zbus::fdo::DBusProxy<'static>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            service,
            bus,
            runtime,
            uids: Mutex::new(HashMap::new()),
        }
    }

    /// Runs a decision on the blocking pool and waits for it.
    async fn decide<T: Send + 'static>(
        self: &Arc<Self>,
        caller: Caller,
        decision: impl FnOnce(&Service, &Caller) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, EcpError> {
        let shared = self.clone();
        let joined = self
            .runtime
            .spawn_blocking(move || {
                let result = decision(&shared.service, &caller);
                if let Err(ServiceError::Store(e)) = &result {
                    // Refused for want of a working store: say so loudly.
                    tracing::error!(event = "store", caller_uid = caller.uid, outcome = "failed", reason = %e);
                }
                result.map_err(|e| to_bus_error(e, &caller))
            })
            .await;
        joined.unwrap_or_else(|e| Err(EcpError::StoreFailure(format!("internal error: {e}"))))
    }

    /// Runs a login decision right here: it takes microseconds (Challenge)
    /// or one signature check (Verify), never a disk flush.
    fn decide_now<T>(
        &self,
        caller: Caller,
        decision: impl FnOnce(&Service, &Caller) -> Result<T, ServiceError>,
    ) -> Result<T, EcpError> {
        decision(&self.service, &caller).map_err(|e| to_bus_error(e, &caller))
    }

    /// Runs a directory lookup the service found due, on the tokio
    /// runtime (ldap3 needs it), within the configured timeouts.
    async fn directory_lookup(
        &self,
        due: Option<crate::service::DueLookup>,
    ) -> Option<Result<Vec<Vec<u8>>, crate::directory::LookupError>> {
        let due = due?;
        let user = due.user().to_owned();
        let ran = self
            .runtime
            .spawn(async move {
                let outcome = due.run().await;
                (due, outcome)
            })
            .await;
        let (due, outcome) = match ran {
            Ok(ran) => ran,
            Err(e) => {
                return Some(self.service.lookup_done(
                    &user,
                    Err(crate::directory::LookupError::Refused(format!(
                        "the lookup failed: {e}"
                    ))),
                ))
            }
        };
        // None: another login's lookup ran, and left its answer in the cache.
        let recorded = outcome.map(|outcome| self.service.lookup_done(&user, outcome));
        // Only now may logins waiting on this lookup read the cache.
        drop(due);
        recorded
    }

    /// Verify and VerifyPresented: the directory asked first when the
    /// answer could pass and its cached answer is due, then the decision.
    async fn verify_answer(
        &self,
        header: &Header<'_>,
        user: &str,
        token: &str,
        signature: &str,
        presented: Option<&[u8]>,
    ) -> Result<(), EcpError> {
        let caller = self.caller(header).await?;
        let due = self
            .service
            .directory_lookup_due(&caller, user, token, signature);
        let looked_up = self.directory_lookup(due).await;
        self.decide_now(caller, |s, c| {
            s.verify_answer(c, user, token, signature, presented, looked_up)
                .map(drop)
        })
    }

    /// The uid of the message's sender, as the bus daemon knows it. Never
    /// the connection's own peer credentials: those are the bus daemon's.
    async fn caller(&self, header: &Header<'_>) -> Result<Caller, EcpError> {
        let sender = header
            .sender()
            .ok_or_else(|| EcpError::AccessDenied("message has no sender".into()))?;
        let key = OwnedUniqueName::from(sender.to_owned());
        let cached = self
            .uids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();
        let uid = match cached {
            Some(uid) => uid,
            None => {
                let uid = self
                    .bus
                    .get_connection_unix_user(BusName::Unique(sender.to_owned()))
                    .await
                    .map_err(|e| {
                        EcpError::AccessDenied(format!("cannot identify the caller: {e}"))
                    })?;
                let mut uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
                if uids.len() >= UID_CACHE_LIMIT {
                    uids.clear();
                }
                uids.insert(key, uid);
                uid
            }
        };
        // Root may act for anyone, so its name is never needed.
        let name = if uid == 0 {
            None
        } else {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name)
        };
        Ok(Caller { uid, name })
    }
}

/// The one mapping from decisions to D-Bus errors. No catch-all arm: a new
/// `ServiceError` or `AuthFailure` variant must be placed here by hand.
pub fn to_bus_error(error: ServiceError, caller: &Caller) -> EcpError {
    match error {
        ServiceError::InvalidArgument(m) => EcpError::InvalidArgument(m),
        ServiceError::AccessDenied(m) => EcpError::AccessDenied(m),
        ServiceError::Throttled(refusal @ Refusal::TooMany { .. }) => {
            EcpError::RateLimited(refusal.to_string())
        }
        ServiceError::Throttled(refusal @ Refusal::Penalised { .. }) => {
            EcpError::Locked(refusal.to_string())
        }
        ServiceError::Auth(reason) if !caller.is_root() => {
            // Unknown user, no certificate and bad signature must look the
            // same to an unprivileged caller.
            let _ = reason;
            EcpError::AuthenticationFailed("authentication failed".into())
        }
        ServiceError::Auth(reason) => match reason {
            AuthFailure::NotEnrolled => EcpError::NotEnrolled(reason.to_string()),
            AuthFailure::Expired => EcpError::ChallengeExpired(reason.to_string()),
            AuthFailure::UnknownChallenge | AuthFailure::AlreadyUsed => {
                EcpError::ChallengeUnknown(reason.to_string())
            }
            AuthFailure::MalformedChallenge(_)
            | AuthFailure::WrongUser
            | AuthFailure::NoValidCertificate
            | AuthFailure::BadSignature
            | AuthFailure::NoSignature => EcpError::AuthenticationFailed(reason.to_string()),
        },
        ServiceError::CertificateRejected(e) => EcpError::CertificateRejected(e.to_string()),
        e @ ServiceError::AlreadyEnrolled => EcpError::AlreadyEnrolled(e.to_string()),
        e @ ServiceError::TooManyCertificates { .. } => {
            EcpError::TooManyCertificates(e.to_string())
        }
        ServiceError::NotFound(m) => EcpError::NotFound(m),
        ServiceError::Store(e) => EcpError::StoreFailure(e.to_string()),
        e @ ServiceError::TrustFiles(_) => EcpError::StoreFailure(e.to_string()),
        ServiceError::DirectoryUnavailable(m) => EcpError::DirectoryUnavailable(m),
        e @ ServiceError::Directory(_) => EcpError::StoreFailure(e.to_string()),
        ServiceError::RenewalRefused(m) => EcpError::RenewalRefused(m),
        e @ ServiceError::KeyRevoked(_) => EcpError::CertificateRejected(e.to_string()),
        e @ ServiceError::Random(_) => EcpError::StoreFailure(e.to_string()),
    }
}

pub struct AuthInterface(pub Arc<Shared>);

#[zbus::interface(name = "org.ecp.Ecpd1.Auth")]
impl AuthInterface {
    async fn challenge(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        service: String,
        rhost: String,
    ) -> Result<String, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .decide_now(caller, |s, c| s.challenge(c, &user, &service, &rhost))
    }

    async fn verify(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        token: String,
        signature: String,
    ) -> Result<(), EcpError> {
        self.0
            .verify_answer(&header, &user, &token, &signature, None)
            .await
    }

    async fn verify_presented(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        token: String,
        signature: String,
        certificate: Vec<u8>,
    ) -> Result<(), EcpError> {
        self.0
            .verify_answer(&header, &user, &token, &signature, Some(&certificate))
            .await
    }

    async fn signing_keys(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<Vec<Vec<u8>>, EcpError> {
        let caller = self.0.caller(&header).await?;
        let looked_up = self
            .0
            .directory_lookup(self.0.service.signing_keys_lookup_due(&caller, &user))
            .await;
        self.0
            .decide(caller, move |s, c| {
                s.signing_public_keys(c, &user, looked_up)
            })
            .await
    }

    async fn needs_signature(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<bool, EcpError> {
        let caller = self.0.caller(&header).await?;
        let looked_up = self
            .0
            .directory_lookup(self.0.service.needs_signature_lookup_due(&caller, &user))
            .await;
        self.0
            .decide(caller, move |s, c| s.needs_signature(c, &user, looked_up))
            .await
    }
}

pub struct AdminInterface(pub Arc<Shared>);

#[zbus::interface(name = "org.ecp.Ecpd1.Admin")]
impl AdminInterface {
    async fn enroll(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        certificate_pem: String,
        label: String,
    ) -> Result<String, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .decide(caller, move |s, c| {
                s.enroll(c, &user, &certificate_pem, &label)
            })
            .await
    }

    async fn revoke(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        fingerprint: String,
        keep_successors: bool,
    ) -> Result<Vec<RevokedEntry>, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .decide(caller, move |s, c| {
                s.revoke(c, &user, &fingerprint, keep_successors)
            })
            .await
    }

    async fn revoke_all(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<Vec<RevokedEntry>, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .decide(caller, move |s, c| s.revoke_all(c, &user))
            .await
    }

    async fn list(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<Vec<CertificateEntry>, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0.decide(caller, move |s, c| s.list(c, &user)).await
    }

    async fn unlock(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<(), EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0.decide(caller, move |s, c| s.unlock(c, &user)).await
    }

    async fn status(&self, #[zbus(header)] header: Header<'_>) -> Result<DaemonStatus, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0.decide(caller, |s, c| s.status(c)).await
    }

    async fn cleanup(&self, #[zbus(header)] header: Header<'_>) -> Result<u64, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0.decide(caller, |s, c| s.cleanup(c)).await
    }

    async fn flush_directory_cache(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<u64, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .decide(caller, move |s, c| s.flush_directory_cache(c, &user))
            .await
    }

    async fn trust(&self, #[zbus(header)] header: Header<'_>) -> Result<TrustReport, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0.decide(caller, |s, c| s.trust_report(c)).await
    }

    async fn renewal_challenge(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        certificate_pem: String,
    ) -> Result<String, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0.decide_now(caller, |s, c| {
            s.renewal_challenge(c, &user, &certificate_pem)
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn renew(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        token: String,
        signature: String,
        certificate_pem: String,
        label: String,
        retire_old: bool,
    ) -> Result<(String, String, String), EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .decide(caller, move |s, c| {
                s.renew(
                    c,
                    &user,
                    &token,
                    &signature,
                    &certificate_pem,
                    &label,
                    retire_old,
                )
                .map(|r| (r.fingerprint, r.label, r.retired.unwrap_or_default()))
            })
            .await
    }

    async fn directory(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<DirectoryReport, EcpError> {
        let caller = self.0.caller(&header).await?;
        let probe = match self.0.service.directory_probe_due(&caller) {
            Some(directory) => self
                .0
                .runtime
                .spawn(async move { directory.probe().await })
                .await
                .ok()
                .flatten(),
            None => None,
        };
        self.0
            .decide(caller, move |s, c| s.directory_report(c, probe))
            .await
    }
}
