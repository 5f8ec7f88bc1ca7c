//! The D-Bus edge: turns method calls into `Service` calls with the
//! caller's identity, and `ServiceError`s into the contract's `EcpError`.

use std::sync::Arc;

use ecp_core::bus::{CertificateEntry, DaemonStatus, EcpError};
use zbus::message::Header;
use zbus::names::BusName;

use crate::service::{AuthFailure, Caller, Service, ServiceError};

/// What both interfaces share.
pub struct Shared {
    pub service: Service,
    pub bus: zbus::fdo::DBusProxy<'static>,
}

impl Shared {
    /// The uid of the message's sender, as the bus daemon knows it. Never
    /// the connection's own peer credentials: those are the bus daemon's.
    async fn caller(&self, header: &Header<'_>) -> Result<Caller, EcpError> {
        let sender = header
            .sender()
            .ok_or_else(|| EcpError::AccessDenied("message has no sender".into()))?;
        let uid = self
            .bus
            .get_connection_unix_user(BusName::Unique(sender.to_owned()))
            .await
            .map_err(|e| EcpError::AccessDenied(format!("cannot identify the caller: {e}")))?;
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        Ok(Caller { uid, name })
    }
}

/// The one mapping from decisions to D-Bus errors. No catch-all arm: a new
/// `ServiceError` or `AuthFailure` variant must be placed here by hand.
pub fn to_bus_error(error: ServiceError, caller: &Caller) -> EcpError {
    match error {
        ServiceError::InvalidArgument(m) => EcpError::InvalidArgument(m),
        ServiceError::AccessDenied(m) => EcpError::AccessDenied(m),
        ServiceError::RateLimited(m) => EcpError::RateLimited(m),
        e @ ServiceError::Locked { .. } => EcpError::Locked(e.to_string()),
        ServiceError::Auth(reason) if !caller.is_root() => {
            // Unknown user, no certificate and bad signature must look the
            // same to an unprivileged caller.
            let _ = reason;
            EcpError::AuthenticationFailed("authentication failed".into())
        }
        ServiceError::Auth(reason) => match reason {
            AuthFailure::NotEnrolled => EcpError::NotEnrolled(reason.to_string()),
            AuthFailure::Expired => EcpError::ChallengeExpired(reason.to_string()),
            AuthFailure::UnknownChallenge => EcpError::ChallengeUnknown(reason.to_string()),
            AuthFailure::MalformedChallenge(_)
            | AuthFailure::WrongUser
            | AuthFailure::NoValidCertificate
            | AuthFailure::BadSignature => EcpError::AuthenticationFailed(reason.to_string()),
        },
        ServiceError::CertificateRejected(e) => EcpError::CertificateRejected(e.to_string()),
        e @ ServiceError::AlreadyEnrolled => EcpError::AlreadyEnrolled(e.to_string()),
        e @ ServiceError::TooManyCertificates { .. } => {
            EcpError::TooManyCertificates(e.to_string())
        }
        ServiceError::NotFound(m) => EcpError::NotFound(m),
        ServiceError::Store(e) => EcpError::StoreFailure(e.to_string()),
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
            .service
            .challenge(&caller, &user, &service, &rhost)
            .map_err(|e| to_bus_error(e, &caller))
    }

    async fn verify(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        token: String,
        signature: String,
    ) -> Result<(), EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .service
            .verify(&caller, &user, &token, &signature)
            .map(drop)
            .map_err(|e| to_bus_error(e, &caller))
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
            .service
            .enroll(&caller, &user, &certificate_pem, &label)
            .map_err(|e| to_bus_error(e, &caller))
    }

    async fn revoke(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        fingerprint: String,
    ) -> Result<u32, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .service
            .revoke(&caller, &user, &fingerprint)
            .map_err(|e| to_bus_error(e, &caller))
    }

    async fn revoke_all(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<u32, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .service
            .revoke_all(&caller, &user)
            .map_err(|e| to_bus_error(e, &caller))
    }

    async fn list(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<Vec<CertificateEntry>, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .service
            .list(&caller, &user)
            .map_err(|e| to_bus_error(e, &caller))
    }

    async fn unlock(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<(), EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .service
            .unlock(&caller, &user)
            .map_err(|e| to_bus_error(e, &caller))
    }

    async fn status(&self, #[zbus(header)] header: Header<'_>) -> Result<DaemonStatus, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .service
            .status(&caller)
            .map_err(|e| to_bus_error(e, &caller))
    }

    async fn cleanup(&self, #[zbus(header)] header: Header<'_>) -> Result<u64, EcpError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .service
            .cleanup(&caller)
            .map_err(|e| to_bus_error(e, &caller))
    }
}
