//! Talking to ecpd: a connection opened for one PAM call and dropped before
//! it returns, pinned to the bus name's owner as it was when checked.

use std::time::Duration;

use ecp_core::bus::{AdminProxy, AuthProxy, CertificateEntry, EcpError, BUS_NAME};
use zbus::names::{BusName, OwnedUniqueName, WellKnownName};
use zbus::proxy::CacheProperties;

/// Why the daemon could not be used.
#[derive(Debug)]
pub enum DaemonError {
    /// Certainly not running: no bus at the socket (absent, refused), or
    /// the name has no owner and the bus could not start ecpd (no
    /// activation file, the start failed). A bus or daemon that merely
    /// does not answer in time is `Unavailable`.
    NotRunning(String),
    /// A call failed in transport or timed out, or ecpd could not be
    /// identified.
    Unavailable(String),
    /// The name is owned by a process that is not the daemon's account.
    Untrusted(String),
}

pub struct Daemon {
    // Kept so the proxies' connection lives exactly as long as this value.
    _connection: zbus::Connection,
    auth: AuthProxy<'static>,
    admin: AdminProxy<'static>,
}

impl Daemon {
    /// Connects to `address`, starts ecpd by D-Bus activation if the name
    /// has no owner, checks that `org.ecp.Ecpd1` is owned by a
    /// process running as one of `trusted_uids`, and talks to that owner's
    /// unique name only: if the name changes hands during the login, the
    /// calls fail instead of reaching the new owner.
    pub async fn connect(
        address: &str,
        timeout: Duration,
        trusted_uids: &[u32],
    ) -> Result<Self, DaemonError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            DaemonError::Unavailable(format!("{what}: {e}"))
        };
        let connection = zbus::connection::Builder::address(address)
            .method_timeout(timeout)
            .build()
            .await
            .map_err(|e| {
                let what = format!("cannot connect to {address}");
                if bus_absent(&e) {
                    DaemonError::NotRunning(format!("{what}: {e}"))
                } else {
                    unavailable(&what, &e)
                }
            })?;
        let bus = zbus::fdo::DBusProxy::builder(&connection)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| unavailable("bus proxy", &e))?;
        let name = BusName::try_from(BUS_NAME).map_err(|e| unavailable("bus name", &e))?;
        let owner: OwnedUniqueName = match bus.get_name_owner(name.clone()).await {
            Ok(owner) => owner,
            // Not running (after a boot, or a crash): have the bus start
            // it from its activation file, then ask again.
            Err(zbus::fdo::Error::NameHasNoOwner(_)) => {
                let well_known =
                    WellKnownName::try_from(BUS_NAME).map_err(|e| unavailable("bus name", &e))?;
                bus.start_service_by_name(well_known, 0)
                    .await
                    .map_err(|e| {
                        let what = "ecpd is not running and could not be started";
                        if start_refused(&e) {
                            DaemonError::NotRunning(format!("{what}: {e}"))
                        } else {
                            unavailable(what, &e)
                        }
                    })?;
                bus.get_name_owner(name)
                    .await
                    .map_err(|e| unavailable("ecpd is not running", &e))?
            }
            Err(e) => return Err(unavailable("ecpd is not running", &e)),
        };
        let uid = bus
            .get_connection_unix_user(BusName::Unique(owner.as_ref()))
            .await
            .map_err(|e| unavailable("cannot identify ecpd", &e))?;
        if !trusted_uids.contains(&uid) {
            return Err(DaemonError::Untrusted(format!(
                "{BUS_NAME} is owned by uid {uid}, not by the daemon's account"
            )));
        }
        let auth = AuthProxy::builder(&connection)
            .destination(owner.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| unavailable("proxy", &e))?;
        let admin = AdminProxy::builder(&connection)
            .destination(owner)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| unavailable("proxy", &e))?;
        Ok(Self {
            _connection: connection,
            auth,
            admin,
        })
    }
}

/// Whether connecting failed because nothing listens at the bus socket.
fn bus_absent(error: &zbus::Error) -> bool {
    let io = match error {
        zbus::Error::Connection(io, _) | zbus::Error::InputOutput(io) => io,
        _ => return false,
    };
    matches!(
        io.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

/// Whether the bus answered that it cannot start ecpd (no activation
/// file; the start failed, under dbus-daemon, systemd or dbus-broker), as
/// opposed to not answering in time.
fn start_refused(error: &zbus::fdo::Error) -> bool {
    use zbus::DBusError as _;
    let name = error.name();
    let name = name.as_str();
    name == "org.freedesktop.DBus.Error.ServiceUnknown"
        || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        || name.starts_with("org.freedesktop.DBus.Error.Spawn.")
        || name.starts_with("org.freedesktop.systemd1.")
}

/// What the flows ask of ecpd: `Daemon` asks over D-Bus, the flow tests a
/// scripted fake.
pub(crate) trait EcpDaemon {
    async fn certificates(&self, user: &str) -> Result<Vec<CertificateEntry>, EcpError>;
    async fn challenge(&self, user: &str, service: &str, rhost: &str) -> Result<String, EcpError>;
    async fn verify(&self, user: &str, token: &str, signature: &str) -> Result<(), EcpError>;
    async fn verify_presented(
        &self,
        user: &str,
        token: &str,
        signature: &str,
        certificate: &[u8],
    ) -> Result<(), EcpError>;
    async fn needs_signature(&self, user: &str) -> Result<bool, EcpError>;
    async fn signing_keys(&self, user: &str) -> Result<Vec<Vec<u8>>, EcpError>;
}

impl EcpDaemon for Daemon {
    async fn certificates(&self, user: &str) -> Result<Vec<CertificateEntry>, EcpError> {
        self.admin.list(user).await
    }
    async fn challenge(&self, user: &str, service: &str, rhost: &str) -> Result<String, EcpError> {
        self.auth.challenge(user, service, rhost).await
    }
    async fn verify(&self, user: &str, token: &str, signature: &str) -> Result<(), EcpError> {
        self.auth.verify(user, token, signature).await
    }
    async fn verify_presented(
        &self,
        user: &str,
        token: &str,
        signature: &str,
        certificate: &[u8],
    ) -> Result<(), EcpError> {
        self.auth
            .verify_presented(user, token, signature, certificate)
            .await
    }
    async fn needs_signature(&self, user: &str) -> Result<bool, EcpError> {
        self.auth.needs_signature(user).await
    }
    async fn signing_keys(&self, user: &str) -> Result<Vec<Vec<u8>>, EcpError> {
        self.auth.signing_keys(user).await
    }
}
