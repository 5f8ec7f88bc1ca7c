//! Why ecpd cannot be reached, said so that an admin knows what to run:
//! the bus itself is down, ecpd is not running and nothing starts it, or
//! D-Bus tried to start it and failed (a host without systemd, a broken
//! configuration). zbus's own words ("FDO error", "Launch helper exited")
//! name none of that.

/// The command that starts ecpd where systemd does not: as its account,
/// with the packaged paths.
pub const START_BY_HAND: &str = "runuser -u _ecpd -- /usr/sbin/ecpd --config /etc/ecp/ecpd.toml \
                                 --db /var/lib/ecpd --bus system &";

/// The failure (exit status 5) for a connection or call that ended in a
/// zbus error on `bus`, with [`reason`]'s sentence.
pub fn failure(bus: &str) -> impl Fn(zbus::Error) -> crate::failure::Failure + '_ {
    move |error| crate::failure::Failure::DaemonUnreachable(reason(bus, &error))
}

/// One sentence on why ecpd could not be reached on `bus` ("system", an
/// address, or "" when unknown), from the error a connection or a call
/// ended in.
pub fn reason(bus: &str, error: &zbus::Error) -> String {
    let which = match bus {
        "system" => "the system bus".to_owned(),
        "" => "the bus".to_owned(),
        address => format!("the bus {address}"),
    };
    match error {
        zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut => reason_for(
            "org.freedesktop.DBus.Error.TimedOut",
            &io.to_string(),
            systemd_runs(),
        ),
        zbus::Error::Connection(io, _) | zbus::Error::InputOutput(io) => format!(
            "{which} is not running or refuses the connection ({io}): start D-Bus first \
             (`systemctl start dbus`; without systemd, `service dbus start` or \
             `dbus-daemon --system`)"
        ),
        _ => match dbus_error(error) {
            Some((name, message)) => reason_for(&name, &message, systemd_runs()),
            None => error.to_string(),
        },
    }
}

/// The D-Bus error's name and message, if the error came from the bus or
/// a peer.
fn dbus_error(error: &zbus::Error) -> Option<(String, String)> {
    use zbus::DBusError as _;
    match error {
        zbus::Error::MethodError(name, message, _) => {
            Some((name.to_string(), message.clone().unwrap_or_default()))
        }
        zbus::Error::FDO(fdo) => Some((
            fdo.name().to_string(),
            fdo.description().unwrap_or_default().to_owned(),
        )),
        zbus::Error::DBus(e) => Some((
            e.name().to_string(),
            e.description().unwrap_or_default().to_owned(),
        )),
        _ => None,
    }
}

/// Whether systemd runs this machine: then ecpd is started by it, in its
/// sandbox (and SELinux domain), never by hand.
fn systemd_runs() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// The sentence for a D-Bus error `name` with `message`, on a machine run
/// by systemd or not.
pub fn reason_for(name: &str, message: &str, systemd: bool) -> String {
    let said = if message.is_empty() {
        name.to_owned()
    } else {
        format!("{name}: {message}")
    };
    let start = if systemd {
        "`systemctl start ecpd`; `systemctl status ecpd` and `journalctl -u ecpd` say why \
         it stopped"
            .to_owned()
    } else {
        format!(
            "without systemd (a container, an init-less host) start it by hand: {START_BY_HAND}"
        )
    };
    // dbus-broker answers a failed activation with NameHasNoOwner "Could
    // not activate remote peer …".
    let activation_failed = name.starts_with("org.freedesktop.DBus.Error.Spawn.")
        || (name == "org.freedesktop.DBus.Error.NameHasNoOwner" && message.contains("activat"));
    if activation_failed {
        format!("ecpd is not running, and D-Bus could not start it ({said}): {start}")
    } else if name == "org.freedesktop.DBus.Error.ServiceUnknown"
        || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
    {
        format!(
            "ecpd is not running, and D-Bus has no activation file that starts it ({said}); \
             is ecp installed, and has D-Bus been reloaded since (`systemctl reload dbus`)? \
             Then: {start}"
        )
    } else if name.starts_with("org.freedesktop.systemd1.") {
        format!(
            "systemd could not start ecpd.service ({said}): see `systemctl status ecpd` and \
             `journalctl -u ecpd`"
        )
    } else if name == "org.freedesktop.DBus.Error.NoReply"
        || name == "org.freedesktop.DBus.Error.Timeout"
        || name == "org.freedesktop.DBus.Error.TimedOut"
    {
        format!(
            "ecpd did not answer in time ({said}): it may be hung or overloaded; see \
             `systemctl status ecpd` and `journalctl -u ecpd`"
        )
    } else {
        said
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_names_what_to_run() {
        let unknown = reason_for(
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "The name org.ecp.Ecpd1 was not provided by any .service files",
            false,
        );
        assert!(
            unknown.starts_with("ecpd is not running, and D-Bus has no activation file")
                && unknown.contains(START_BY_HAND),
            "{unknown}"
        );
        let spawn = reason_for(
            "org.freedesktop.DBus.Error.Spawn.ChildExited",
            "Launch helper exited with unknown return code 1",
            false,
        );
        assert!(
            spawn.starts_with("ecpd is not running, and D-Bus could not start it")
                && spawn.contains("Launch helper exited")
                && spawn.contains("without systemd")
                && spawn.contains(START_BY_HAND),
            "{spawn}"
        );
        let hung = reason_for("org.freedesktop.DBus.Error.NoReply", "", false);
        assert!(hung.starts_with("ecpd did not answer in time"), "{hung}");
        // Anything else is passed on as the bus said it.
        assert_eq!(
            reason_for("org.example.Other", "what happened", false),
            "org.example.Other: what happened"
        );
        // A call that timed out is not a bus that is down.
        let timed_out = zbus::Error::InputOutput(std::sync::Arc::new(std::io::Error::from(
            std::io::ErrorKind::TimedOut,
        )));
        let said = reason("system", &timed_out);
        assert!(said.starts_with("ecpd did not answer in time"), "{said}");
        let refused = zbus::Error::InputOutput(std::sync::Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(reason("system", &refused).starts_with("the system bus is not running"));
        // dbus-broker's word for a failed start; and under systemd the
        // advice is systemd's, never a start by hand outside its sandbox.
        let broker = reason_for(
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "Could not activate remote peer 'org.ecp.Ecpd1': activation request failed: unit failed",
            true,
        );
        assert!(
            broker.starts_with("ecpd is not running, and D-Bus could not start it")
                && broker.contains("systemctl status ecpd")
                && !broker.contains("runuser"),
            "{broker}"
        );
    }
}
