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
                let what = "ecpd is not running and could not be started";
                // A unit systemd will not start: no need to wait for it.
                if let Some(UnitState::Unstartable(why)) = ecpd_unit(&connection, &bus).await {
                    return Err(DaemonError::NotRunning(format!("{what}: {why}")));
                }
                let well_known =
                    WellKnownName::try_from(BUS_NAME).map_err(|e| unavailable("bus name", &e))?;
                if let Err(e) = bus.start_service_by_name(well_known, 0).await {
                    if start_refused(&e) {
                        return Err(DaemonError::NotRunning(format!("{what}: {e}")));
                    }
                    // dbus-daemon is not told when the start job it asked
                    // systemd for fails (systemd issue 28877): the call
                    // times out. systemd itself knows.
                    return Err(match ecpd_unit(&connection, &bus).await {
                        Some(UnitState::Unstartable(why) | UnitState::Failed(why)) => {
                            DaemonError::NotRunning(format!("{what}: {e}; {why}"))
                        }
                        None => unavailable(what, &e),
                    });
                }
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
/// opposed to not answering in time or lacking a resource for a moment.
fn start_refused(error: &zbus::fdo::Error) -> bool {
    use zbus::DBusError as _;
    // An error name zbus has no variant for (systemd's) comes wrapped,
    // and the wrapper's own name is zbus's.
    let name = match error {
        zbus::fdo::Error::ZBus(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        other => other.name().to_string(),
    };
    refused_start_error(&name)
}

/// The error names that mean "this bus will not start ecpd now". Fork
/// failures and lack of memory are passing shortages anyone may cause,
/// so they do not count.
fn refused_start_error(name: &str) -> bool {
    const PASSING: &[&str] = &[
        "org.freedesktop.DBus.Error.Spawn.ForkFailed",
        "org.freedesktop.DBus.Error.Spawn.NoMemory",
    ];
    if PASSING.contains(&name) {
        return false;
    }
    name == "org.freedesktop.DBus.Error.ServiceUnknown"
        || name.starts_with("org.freedesktop.DBus.Error.Spawn.")
        || name.starts_with("org.freedesktop.systemd1.")
}

/// What systemd says of ecpd.service.
enum UnitState {
    /// Masked, absent or broken: systemd will not start it.
    Unstartable(String),
    /// It failed and systemd gave up on it (its restart limit, or no
    /// restart).
    Failed(String),
}

/// The unit ecpd runs as under systemd.
const ECPD_UNIT: &str = "ecpd.service";

/// ecpd.service's state, as systemd tells it on this bus, when systemd's
/// name there is owned by root and the unit cannot run now; None when
/// there is no such systemd, it does not answer, or the unit may yet run.
async fn ecpd_unit(
    connection: &zbus::Connection,
    bus: &zbus::fdo::DBusProxy<'_>,
) -> Option<UnitState> {
    let systemd = BusName::try_from("org.freedesktop.systemd1").ok()?;
    let owner = bus.get_name_owner(systemd).await.ok()?;
    if bus
        .get_connection_unix_user(BusName::Unique(owner.as_ref()))
        .await
        .ok()?
        != 0
    {
        return None;
    }
    let manager = zbus::Proxy::new(
        connection,
        owner.clone(),
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
    )
    .await
    .ok()?;
    let path: zbus::OwnedObjectPath = manager.call("LoadUnit", &(ECPD_UNIT,)).await.ok()?;
    let unit = zbus::Proxy::new(connection, owner, path, "org.freedesktop.systemd1.Unit")
        .await
        .ok()?;
    let load: String = unit.get_property("LoadState").await.ok()?;
    let active: String = unit.get_property("ActiveState").await.ok()?;
    unit_state(&load, &active)
}

/// The judgement on a unit's LoadState and ActiveState.
fn unit_state(load: &str, active: &str) -> Option<UnitState> {
    match (load, active) {
        ("masked" | "not-found" | "bad-setting" | "error", _) => Some(UnitState::Unstartable(
            format!("systemd: {ECPD_UNIT} is {load}"),
        )),
        (_, "failed") => Some(UnitState::Failed(format!(
            "systemd: {ECPD_UNIT} failed and is not being restarted"
        ))),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bus_that_will_not_start_ecpd_or_a_unit_systemd_gave_up_on_counts_as_not_running() {
        for refused in [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.Spawn.ChildExited",
            "org.freedesktop.DBus.Error.Spawn.ExecFailed",
            "org.freedesktop.systemd1.UnitMasked",
            "org.freedesktop.systemd1.NoSuchUnit",
        ] {
            assert!(refused_start_error(refused), "{refused}");
        }
        for passing in [
            "org.freedesktop.DBus.Error.Spawn.ForkFailed",
            "org.freedesktop.DBus.Error.Spawn.NoMemory",
            "org.freedesktop.DBus.Error.NoReply",
            "org.freedesktop.DBus.Error.TimedOut",
            "org.freedesktop.DBus.Error.AccessDenied",
            "org.freedesktop.DBus.Error.LimitsExceeded",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
        ] {
            assert!(!refused_start_error(passing), "{passing}");
        }
        // systemd's names come wrapped in zbus's own error: seen through.
        let wrapped = zbus::fdo::Error::ZBus(zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from("org.freedesktop.systemd1.UnitMasked").unwrap(),
            Some("Unit ecpd.service is masked.".into()),
            zbus::message::Message::method_call("/", "Ping")
                .build(&())
                .unwrap(),
        ));
        assert!(start_refused(&wrapped));
        assert!(!start_refused(&zbus::fdo::Error::NoReply("late".into())));

        assert!(matches!(
            unit_state("masked", "inactive"),
            Some(UnitState::Unstartable(_))
        ));
        assert!(matches!(
            unit_state("not-found", "inactive"),
            Some(UnitState::Unstartable(_))
        ));
        assert!(matches!(
            unit_state("loaded", "failed"),
            Some(UnitState::Failed(_))
        ));
        for active in [
            "active",
            "activating",
            "inactive",
            "deactivating",
            "reloading",
        ] {
            assert!(unit_state("loaded", active).is_none(), "{active}");
        }
    }
}
