//! The D-Bus contract between ecpd and its clients (the PAM module and
//! ecpctl): names, argument and reply types, the error enum with its D-Bus
//! names, and the client proxies. A reader who wants to know what crosses
//! the bus reads this file.
//!
//! Two interfaces, so that a bus policy can tell them apart: `Auth` is what
//! a login needs; `Admin` manages certificates. The daemon checks every
//! caller's uid itself either way (see ecpd's `service` module):
//!
//! | method | who may call |
//! |---|---|
//! | Auth.Challenge, Auth.Verify | root for anyone; others for themselves |
//! | Admin.List | root for anyone (or all, with ""); others for themselves |
//! | Admin.Status | anyone (non-root: the version only) |
//! | Admin.Trust, Directory | root only |
//! | Admin.Enroll, Revoke, RevokeAll, Unlock, Cleanup | root only |

use serde::{Deserialize, Serialize};
use zbus::{DBusError, Type};

/// Well-known bus name; the trailing 1 is the interface version.
pub const BUS_NAME: &str = "org.ecp.Ecpd1";
/// The one object ecpd serves.
pub const OBJECT_PATH: &str = "/org/ecp/Ecpd1";
pub const AUTH_INTERFACE: &str = "org.ecp.Ecpd1.Auth";
pub const ADMIN_INTERFACE: &str = "org.ecp.Ecpd1.Admin";
/// Prefix of every error name ecpd returns.
pub const ERROR_PREFIX: &str = "org.ecp.Ecpd1.Error";
/// The real system bus. The PAM module connects here and nowhere else
/// (unless a root-owned PAM file says `bus=`): never to an address taken
/// from the environment, which inside sudo belongs to the user.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

/// A connection builder for a `--bus` argument of ecpd or ecpctl:
/// `system`, `session`, or a D-Bus address. (The PAM module does not use
/// this: it never reads the environment, which `system` may.)
pub fn connection_builder(bus: &str) -> zbus::connection::Builder<'_> {
    match bus {
        "system" => zbus::connection::Builder::system(),
        "session" => zbus::connection::Builder::session(),
        address => zbus::connection::Builder::address(address),
    }
}

/// Errors ecpd returns. Each variant is a D-Bus error name
/// `org.ecp.Ecpd1.Error.<Variant>` whose message is a sentence for a person.
#[derive(Debug, DBusError, PartialEq)]
#[zbus(prefix = "org.ecp.Ecpd1.Error")]
pub enum EcpError {
    /// A transport or protocol failure on the client's side.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// An argument is malformed, too long, or not a valid name.
    InvalidArgument(String),
    /// The caller may not do this (for example, enroll as non-root).
    AccessDenied(String),
    /// Too many challenges for this user from this source, or from this
    /// source; nothing was stored.
    RateLimited(String),
    /// Failed answers from this source for this user earned it a wait;
    /// other sources are unaffected.
    Locked(String),
    /// Verification failed. The only failure a non-root caller ever sees,
    /// whether the user is unknown, unenrolled, or the signature is bad.
    AuthenticationFailed(String),
    /// The user has no enrolled certificate (told to root callers only,
    /// so that the module's `nouserok` can work).
    NotEnrolled(String),
    /// The challenge expired before it was verified (root callers only).
    ChallengeExpired(String),
    /// The challenge is forged, already used, or from before a restart
    /// (root callers only).
    ChallengeUnknown(String),
    /// The certificate fails the validation rule; the message says which.
    CertificateRejected(String),
    /// This certificate is already enrolled for the user.
    AlreadyEnrolled(String),
    /// The user already has the maximum number of certificates.
    TooManyCertificates(String),
    /// No such certificate.
    NotFound(String),
    /// The daemon's store failed; nothing unsafe was accepted.
    StoreFailure(String),
    /// The directory holding the user's certificates could not be asked,
    /// and no cached answer is young enough: the login cannot be decided.
    DirectoryUnavailable(String),
    /// A renewal was refused: renewal off, nothing enrolled to renew from,
    /// the signing certificate revoked, expired or too young, or the
    /// certificate not the one the challenge was issued for.
    RenewalRefused(String),
}

/// One enrolled certificate, as `List` returns it. Times are Unix seconds;
/// `last_used` is 0 when never used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct CertificateEntry {
    pub user: String,
    pub label: String,
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
    pub enrolled_at: i64,
    pub last_used: i64,
    /// The fingerprint of the certificate whose key vouched for this one
    /// (`ecpctl renew`); "" when an admin enrolled it.
    pub renewed_from: String,
}

/// One certificate a revocation withdrew, and why: `reason` is "revoked"
/// (the one named, or every one with `revoke --all`), "renewed_from"
/// (renewed, directly or not, from the one named) or "same_key" (it
/// carries a revoked key); `from` is the fingerprint it followed from (""
/// for the one named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct RevokedEntry {
    pub user: String,
    pub fingerprint: String,
    pub reason: String,
    pub from: String,
}

/// What `Status` returns. A non-root caller gets the version only (every
/// other field empty or zero).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct DaemonStatus {
    pub version: String,
    pub host: String,
    pub users: u64,
    pub certificates: u64,
    /// Challenges issued within the last challenge lifetime (none is
    /// stored: this is a count, for the admin's eye).
    pub recent_challenges: u64,
    /// (user, source) pairs waiting out a penalty after failed answers.
    pub penalised_sources: u64,
    pub store_bytes: u64,
    pub uptime_secs: u64,
}

/// One organisation CA ecpd trusts, with the CRL it holds for it. Times
/// are Unix seconds; a CRL time of 0 means none (no CRL, or no
/// nextUpdate in it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct TrustedCaEntry {
    pub subject: String,
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
    pub crl_this_update: i64,
    pub crl_next_update: i64,
}

/// What `Trust` returns: whether `ca_file` is set, the CAs in force, and
/// why the last re-read of the files failed ("" when it did not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct TrustReport {
    pub configured: bool,
    pub cas: Vec<TrustedCaEntry>,
    pub problem: String,
}

/// What `Directory` returns: the `[directory]` servers, whether one
/// answered just now (asked only for root: others see the last lookups),
/// the last lookups, and the offline cache. Times are Unix seconds, 0 for
/// never.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct DirectoryReport {
    pub configured: bool,
    pub servers: Vec<String>,
    /// Whether ecpd asked a server for this report.
    pub probed: bool,
    /// The server that answered ("" when none did, or none was asked).
    pub answered_by: String,
    /// Why no server answered, when asked.
    pub problem: String,
    pub last_success: i64,
    pub last_failure: i64,
    pub last_failure_reason: String,
    /// Users with a cached answer, and when the oldest was fetched.
    pub cached_users: u64,
    pub oldest_cached: i64,
    pub cache_ttl_secs: u64,
    pub max_offline_secs: u64,
}

/// Methods a login needs.
#[zbus::proxy(
    interface = "org.ecp.Ecpd1.Auth",
    default_service = "org.ecp.Ecpd1",
    default_path = "/org/ecp/Ecpd1"
)]
pub trait Auth {
    /// Issues a one-time challenge token for `user` logging in to `service`
    /// from `rhost` ("" for a local login).
    fn challenge(&self, user: &str, service: &str, rhost: &str) -> Result<String, EcpError>;

    /// Verifies `signature` (base64 DER) over `token` for `user`. A
    /// challenge validates at most once; a failed answer counts against
    /// the (user, source) it was issued for. An empty `signature` reports
    /// that the user could not sign (a wrong key-file passphrase) and
    /// counts as a failure.
    fn verify(&self, user: &str, token: &str, signature: &str) -> Result<(), EcpError>;

    /// As `verify`, with the certificate (DER) the user presented beside
    /// the signature: its key may sign when an organisation CA this host
    /// trusts issued it. Enrolled certificates count as with `verify`. A
    /// presented certificate that is not accepted gets the same answer as
    /// a bad signature; the journal has the reason.
    fn verify_presented(
        &self,
        user: &str,
        token: &str,
        signature: &str,
        certificate: &[u8],
    ) -> Result<(), EcpError>;

    /// Whether a login of `user` needs a signature: true when `user` has
    /// an enrolled certificate, and always when the host trusts a CA (any
    /// account may hold a CA-issued certificate, so `nouserok` must not
    /// wave anyone through). Non-root callers may ask about themselves.
    fn needs_signature(&self, user: &str) -> Result<bool, EcpError>;

    /// The public keys (SubjectPublicKeyInfo DER) that may sign a login of
    /// `user` now: enrolled certificates and the directory's, revoked keys
    /// left out (a CA-issued certificate is presented, so not listed).
    /// Lets a signer that holds several keys (an ssh agent) pick the right
    /// one; Verify still decides. Non-root callers may ask about
    /// themselves.
    fn signing_keys(&self, user: &str) -> Result<Vec<Vec<u8>>, EcpError>;
}

/// Certificate management.
#[zbus::proxy(
    interface = "org.ecp.Ecpd1.Admin",
    default_service = "org.ecp.Ecpd1",
    default_path = "/org/ecp/Ecpd1"
)]
pub trait Admin {
    /// Registers a PEM certificate for `user`; returns its fingerprint.
    fn enroll(&self, user: &str, certificate_pem: &str, label: &str) -> Result<String, EcpError>;

    /// Revokes one of `user`'s certificates (enrolled, or retired by a
    /// renewal) and its key: no certificate with that key signs again, for
    /// anyone. Unless `keep_successors`, every certificate renewed from
    /// it is revoked too, transitively. Returns what was revoked now.
    fn revoke(
        &self,
        user: &str,
        fingerprint: &str,
        keep_successors: bool,
    ) -> Result<Vec<RevokedEntry>, EcpError>;

    /// Revokes every certificate of `user` and its key; returns what was
    /// revoked (also other users' certificates with one of those keys).
    fn revoke_all(&self, user: &str) -> Result<Vec<RevokedEntry>, EcpError>;

    /// Lists `user`'s certificates, or everyone's when `user` is "".
    fn list(&self, user: &str) -> Result<Vec<CertificateEntry>, EcpError>;

    /// Clears `user`'s failures and penalties, from every source.
    fn unlock(&self, user: &str) -> Result<(), EcpError>;

    /// Version, counts, store size and uptime (root); the version (others).
    fn status(&self) -> Result<DaemonStatus, EcpError>;

    /// Forgets expired used nonces and stale counters now; returns how
    /// many nonces were forgotten.
    fn cleanup(&self) -> Result<u64, EcpError>;

    /// The organisation CAs and CRLs in force, and why the last re-read
    /// of the files failed (root only).
    fn trust(&self) -> Result<TrustReport, EcpError>;

    /// The directory's state: servers, reachability (tried now for root
    /// only), last lookups, cached users.
    fn directory(&self) -> Result<DirectoryReport, EcpError>;

    /// Drops cached directory answers for `user`, or for everyone when
    /// `user` is "" (root only); returns how many.
    fn flush_directory_cache(&self, user: &str) -> Result<u64, EcpError>;

    /// A renewal challenge for `user`'s successor certificate (PEM): the
    /// token to sign with a current key (`ecpctl renew`). Root, or the
    /// user itself while `allow_self_renewal` is on.
    fn renewal_challenge(&self, user: &str, certificate_pem: &str) -> Result<String, EcpError>;

    /// Enrolls the successor when `signature` (base64 DER over the renewal
    /// token's signed bytes) comes from one of `user`'s enrolled keys that
    /// is valid and old enough. `label` "" means `renewed-YYYY-MM-DD`;
    /// `retire_old` removes the certificate that signed. Returns the new
    /// fingerprint, the label, and the retired fingerprint ("" if none).
    fn renew(
        &self,
        user: &str,
        token: &str,
        signature: &str,
        certificate_pem: &str,
        label: &str,
        retire_old: bool,
    ) -> Result<(String, String, String), EcpError>;
}
