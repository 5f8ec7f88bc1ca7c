//! ecpd: the ecp system daemon. It is the only place where trust is
//! decided: it issues one-time challenges, verifies signatures against
//! enrolled certificates, and keeps everything in sled. It never sees a
//! private key.

#![forbid(unsafe_code)]

use ecpd::{dbus, service, store};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ecp_core::bus::{BUS_NAME, OBJECT_PATH};
use ecp_core::HostName;
use tracing::{error, info, warn};

use ecpd::config::{Config, DEFAULT_CONFIG_PATH, DEFAULT_DB_PATH};

/// ecpd — the ecp daemon: one-time login challenges and signature
/// verification on the D-Bus system bus.
///
/// Serves org.ecp.Ecpd1 at /org/ecp/Ecpd1 (interfaces org.ecp.Ecpd1.Auth and
/// org.ecp.Ecpd1.Admin). Every caller is identified by the uid the bus
/// daemon reports for it; root may do everything, other users may request
/// and verify challenges and list certificates for themselves only.
/// Challenges are not stored: each token carries its own binding under a
/// MAC whose key is made afresh at every start, so no challenge issued
/// before a restart can ever be verified. Failed answers count per user
/// and source (network, `local`, or caller uid) and earn that pair a
/// doubling wait; no account is ever locked for everyone. Logs go to
/// standard error (the journal under systemd); set ECPD_LOG (e.g. `debug`)
/// for more. ecpd exits with status 1 when it loses its bus connection, so
/// that systemd restarts it.
#[derive(Debug, Parser)]
#[command(
    name = "ecpd",
    version,
    after_help = "EXIT STATUS:\n  0  stopped by SIGTERM or SIGINT\n  1  could not start (bad configuration, store or bus: the message says which), or lost the bus connection"
)]
struct Args {
    /// Configuration file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Directory of the sled store (enrolled certificates).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DB_PATH)]
    db: PathBuf,
    /// Bus to serve on: `system`, `session`, or a D-Bus address.
    #[arg(long, value_name = "BUS", default_value = "system")]
    bus: String,
    /// Check the configuration file and exit.
    #[arg(long)]
    check_config: bool,
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ECPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn host_name(config: &Config) -> Result<HostName, String> {
    let raw = match &config.host_name {
        Some(name) => name.clone(),
        None => nix::unistd::gethostname()
            .map_err(|e| format!("cannot read the host name: {e}"))?
            .to_string_lossy()
            .into_owned(),
    };
    HostName::parse(&raw).map_err(|e| format!("{e}; set host_name in the configuration"))
}

async fn serve(
    args: &Args,
    service: service::Service,
    cleanup_every: Duration,
) -> Result<(), String> {
    let connection = ecp_core::bus::connection_builder(&args.bus)
        .build()
        .await
        .map_err(|e| format!("cannot connect to the {} bus: {e}", args.bus))?;
    let bus = zbus::fdo::DBusProxy::new(&connection)
        .await
        .map_err(|e| format!("bus daemon proxy: {e}"))?;
    let shared = Arc::new(dbus::Shared::new(
        service,
        bus,
        tokio::runtime::Handle::current(),
    ));
    let server = connection.object_server();
    server
        .at(OBJECT_PATH, dbus::AuthInterface(shared.clone()))
        .await
        .map_err(|e| format!("serve: {e}"))?;
    server
        .at(OBJECT_PATH, dbus::AdminInterface(shared.clone()))
        .await
        .map_err(|e| format!("serve: {e}"))?;
    // Own the name only once the object is ready, and never queue behind
    // or replace another owner.
    let reply = connection
        .request_name_with_flags(BUS_NAME, zbus::fdo::RequestNameFlags::DO_NOT_QUEUE)
        .await
        .map_err(|e| format!("cannot own {BUS_NAME}: {e} (is the D-Bus policy installed?)"))?;
    if reply != zbus::fdo::RequestNameReply::PrimaryOwner {
        return Err(format!("{BUS_NAME} is already owned by another process"));
    }
    info!(event = "start", bus = %args.bus, db = %args.db.display(), host = %shared.service.host(), outcome = "serving");

    let cleaner = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(cleanup_every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let shared = cleaner.clone();
            let result =
                tokio::task::spawn_blocking(move || shared.service.periodic_cleanup()).await;
            if let Ok(Err(e)) = result {
                warn!(event = "cleanup", outcome = "failed", reason = %e);
            }
        }
    });

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;

    // The organisation CA and CRL files: re-read when they change, and on
    // SIGHUP even when they seem not to have.
    let watcher = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TRUST_CHECK_INTERVAL);
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                _ = hangup.recv() => true,
            };
            let shared = watcher.clone();
            let _ = tokio::task::spawn_blocking(move || shared.service.refresh_trust(force)).await;
        }
    });
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
        lost = bus_lost(&shared.bus) => {
            return Err(format!("lost the bus connection ({lost}); exiting so that the service manager restarts ecpd"));
        }
    }
    info!(event = "stop", outcome = "stopping");
    let _ = connection.release_name(BUS_NAME).await;
    Ok(())
}

/// How often `ca_file` and `crl_file` are checked for changes.
const TRUST_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// How often the bus daemon is asked whether it is still there.
const BUS_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Returns once the bus connection fails. A daemon that kept running
/// without its bus would leave every login unavailable until someone
/// noticed; exiting lets systemd restart it (and D-Bus activation start it).
async fn bus_lost(bus: &zbus::fdo::DBusProxy<'static>) -> String {
    let mut tick = tokio::time::interval(BUS_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = bus.get_id().await {
            return e.to_string();
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let explicit = args.config.as_os_str() != DEFAULT_CONFIG_PATH;
    let config = match Config::load(&args.config, explicit) {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for notice in &config.notices {
        warn!("{}: {notice}", args.config.display());
    }
    if args.check_config {
        // What ecpd reads at start besides this file, checked too.
        if let Some(directory) = &config.directory {
            if let Err(e) = ecpd::directory::Directory::new(directory.clone()) {
                error!("{}: [directory] {e}", args.config.display());
                return ExitCode::FAILURE;
            }
        }
        println!("{}: OK", args.config.display());
        return ExitCode::SUCCESS;
    }
    let host = match host_name(&config) {
        Ok(host) => host,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let store = match store::Store::open(&args.db) {
        Ok(store) => store,
        Err(e) => {
            error!("cannot open the store at {}: {e}", args.db.display());
            return ExitCode::FAILURE;
        }
    };
    let cleanup_every = Duration::from_secs(config.cleanup_interval_secs);
    let clock = Arc::new(ecpd::clock::SystemClock);
    let service = match service::Service::new(store, config, host, clock) {
        Ok(service) => service,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&args, service, cleanup_every)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
