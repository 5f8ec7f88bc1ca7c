//! Users' certificates from the directory (LDAP): the `[directory]`
//! section of ecpd.toml, and one bounded lookup per login.
//!
//! The lookup runs on ecpd's tokio runtime (ldap3 is tokio-only; the PAM
//! module never links it) with a timeout on connect, bind and search, and
//! gives back at most a few small values, so that neither a slow nor a
//! hostile directory can hold a login up or exhaust the daemon. Caching,
//! and what a failed lookup means, is `Service`'s business.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions, StdStream};

use crate::ldap_stream::Endpoint;
use lru::LruCache;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// At most this many certificates of one user are taken from an entry.
pub const MAX_DIRECTORY_CERTIFICATES: usize = 16;

/// The `[directory]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    /// Servers, tried in order.
    pub uri: Vec<String>,
    pub base_dn: String,
    /// `{user}` is replaced by the user name, escaped per RFC 4515.
    pub user_filter: String,
    pub certificate_attribute: String,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    /// "none" allows plain ldap:// without TLS.
    pub tls: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    pub timeout_ms: u64,
    pub cache_ttl_secs: u64,
    pub max_offline_secs: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            uri: Vec::new(),
            base_dn: String::new(),
            user_filter: "(&(objectClass=posixAccount)(uid={user}))".into(),
            certificate_attribute: "userCertificate;binary".into(),
            bind_dn: None,
            bind_password_file: None,
            tls: None,
            tls_ca_file: None,
            timeout_ms: 2000,
            cache_ttl_secs: 300,
            max_offline_secs: 86_400,
        }
    }
}

impl DirectoryConfig {
    /// What is wrong with the section, if anything: (key, rule).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.uri.is_empty() {
            return Some(("directory.uri", "at least one server"));
        }
        for uri in &self.uri {
            let scheme = uri.split_once("://").map(|(scheme, _)| scheme);
            match scheme {
                Some("ldapi" | "ldaps" | "ldap") => {}
                _ => {
                    return Some((
                        "directory.uri",
                        "ldaps://HOST, ldap://HOST (StartTLS, or no TLS with tls = \"none\") or ldapi://SOCKET",
                    ))
                }
            }
            if uri.chars().any(char::is_whitespace) {
                return Some(("directory.uri", "one URI per string, without blanks"));
            }
        }
        if self.base_dn.is_empty() {
            return Some(("directory.base_dn", "the base of the user search"));
        }
        if !self.user_filter.contains("{user}") {
            return Some(("directory.user_filter", "an LDAP filter containing {user}"));
        }
        if self.tls.as_deref().is_some_and(|t| t != "none") {
            return Some((
                "directory.tls",
                "\"none\" (plain ldap:// without TLS), or unset (StartTLS on ldap://)",
            ));
        }
        if self.tls_ca_file.as_ref().is_some_and(|f| !f.is_absolute()) {
            return Some(("directory.tls_ca_file", "an absolute path"));
        }
        if self.bind_dn.is_some() != self.bind_password_file.is_some() {
            return Some((
                "directory.bind_password_file",
                "set together with bind_dn (or neither, to bind anonymously)",
            ));
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Some(("directory.timeout_ms", "100 to 60000"));
        }
        if self.cache_ttl_secs > self.max_offline_secs {
            return Some(("directory.cache_ttl_secs", "at most max_offline_secs"));
        }
        None
    }

    /// The search filter for `user`. Names are validated before they get
    /// here (no LDAP filter syntax can pass), and escaped per RFC 4515
    /// anyway.
    pub fn filter_for(&self, user: &str) -> String {
        self.user_filter
            .replace("{user}", &ldap3::ldap_escape(user))
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Why the directory could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no directory server answered: {0}")]
    Unreachable(String),
    /// ecpd's own lookups for this kind of user were all busy: nothing
    /// was asked, and nothing is known about the servers.
    #[error("{0}")]
    Crowded(String),
    /// The server would not let ecpd search (a failed bind): like an
    /// outage, the cached answer still counts.
    #[error("the directory refused the lookup: {0}")]
    Refused(String),
    /// The search's own answer makes the entry unusable (too many values,
    /// several matching entries, a referral, or any result code the server
    /// chose for the search: size limit, no such object, insufficient
    /// access, …): whatever was cached for the user is dropped and the
    /// login fails closed, so that neither padding an entry nor a server's
    /// verdict can keep an older answer alive.
    #[error("the directory's entry for this user was refused: {0}")]
    BadEntry(String),
}

/// The most a server may send over one lookup's connection (bind and
/// search answers together): room for the largest entry ecpd would use
/// (16 values of 16 KiB) with plenty to spare, and a bound on what a
/// hostile entry can make ecpd hold while it is read.
pub const MAX_ANSWER_BYTES: usize = 512 * 1024;

/// Search result codes that say the server cannot answer now rather than
/// what it found (busy, unavailable): the only ones treated as an outage.
const TRANSIENT_RESULT_CODES: [u32; 2] = [51, 52];

/// However many servers are configured, one lookup ends after this: the
/// module waits 10 s for ecpd, and a cached answer must still reach it.
const LOOKUP_DEADLINE: Duration = Duration::from_secs(4);

/// After a lookup found no server answering, logins go to the cache at
/// once for this long instead of each waiting out the timeouts; the
/// first lookup after it tries the servers again.
pub const DOWN_RETRY_SECS: u64 = 30;

/// Lookups in flight at once, per pool. Each holds at most one bounded
/// answer, so this also bounds the memory lookups can take.
const LOOKUPS_PER_POOL: usize = 4;

/// Names the directory said have no certificate, remembered for
/// `cache_ttl_secs` so that `nouserok` and repeated attempts do not ask
/// again; bounded, since anyone can make names up.
const ABSENT_NAMES_LIMIT: usize = 4096;

/// The directory as ecpd uses it: its settings, the TLS client built from
/// them, the lookup pools, and what the last lookups found.
pub struct Directory {
    config: DirectoryConfig,
    tls: Arc<rustls::ClientConfig>,
    /// Lookups for users the cache knows (their answer is being
    /// refreshed) and for everyone else: a flood of made-up names fills
    /// only the second, so known users' refreshes still get through.
    known_users: Semaphore,
    other_users: Semaphore,
    /// Names the directory answered "no certificate" for, with when.
    absent: Mutex<LruCache<String, u64>>,
    health: Mutex<Health>,
    /// Users with a lookup under way.
    in_flight: Mutex<std::collections::HashSet<String>>,
    /// Told each time a lookup ends, for logins waiting on one.
    lookup_ended: tokio::sync::Notify,
    /// One status probe at a time: `ecpctl status` must not become a way
    /// to load the directory or crowd out lookups.
    probing: Semaphore,
}

/// A lookup under way for one user; dropping it ends it.
pub struct InFlight {
    directory: Arc<Directory>,
    user: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut in_flight = self
            .directory
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        in_flight.remove(&self.user);
        drop(in_flight);
        self.directory.lookup_ended.notify_waiters();
    }
}

/// The outcome of recent lookups, for `ecpctl status`.
#[derive(Debug, Clone, Default)]
struct Health {
    last_success: Option<u64>,
    last_failure: Option<(u64, String)>,
    /// Since when no server answered (None: the last one did).
    down_since: Option<u64>,
}

impl Directory {
    /// Checks the section and reads `tls_ca_file` (or the system's CA
    /// bundle): a directory ecpd cannot talk to safely stops it at start.
    pub fn new(config: DirectoryConfig) -> Result<Self, String> {
        if let Some((key, rule)) = config.problem() {
            return Err(format!("{key}: {rule}"));
        }
        let tls = Arc::new(tls_client(config.tls_ca_file.as_deref())?);
        Ok(Self {
            config,
            tls,
            known_users: Semaphore::new(LOOKUPS_PER_POOL),
            other_users: Semaphore::new(LOOKUPS_PER_POOL),
            absent: Mutex::new(LruCache::new(
                NonZeroUsize::new(ABSENT_NAMES_LIMIT).expect("non-zero"),
            )),
            health: Mutex::new(Health::default()),
            probing: Semaphore::new(1),
            in_flight: Mutex::new(std::collections::HashSet::new()),
            lookup_ended: tokio::sync::Notify::new(),
        })
    }

    pub fn config(&self) -> &DirectoryConfig {
        &self.config
    }

    /// Whether the directory said, less than `cache_ttl_secs` ago, that
    /// `user` has no certificate.
    pub fn known_absent(&self, user: &str, now: u64) -> bool {
        let mut absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
        match absent.get(user) {
            Some(&at) if now.saturating_sub(at) < self.config.cache_ttl_secs => true,
            Some(_) => {
                absent.pop(user);
                false
            }
            None => false,
        }
    }

    /// Forgets what the directory said about names without a certificate
    /// (one name, or all): `ecpctl cache flush` means "ask again".
    pub fn forget_absent(&self, user: Option<&str>) {
        let mut absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
        match user {
            Some(user) => {
                absent.pop(user);
            }
            None => absent.clear(),
        }
    }

    /// Marks a lookup for `user` as under way; None when one already is
    /// (then the caller decides from the cache: one user's logins never
    /// hold more than one lookup slot).
    pub fn start_lookup(self: &Arc<Self>, user: &str) -> Option<InFlight> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if !in_flight.insert(user.to_owned()) {
            return None;
        }
        Some(InFlight {
            directory: self.clone(),
            user: user.to_owned(),
        })
    }

    /// Waits until no lookup for `user` is under way, for at most one
    /// lookup's deadline.
    pub async fn wait_for_lookup(&self, user: &str) {
        let deadline = tokio::time::Instant::now() + self.lookup_deadline();
        loop {
            // Registered before the check, so an end between the check
            // and the wait is not missed.
            let ended = self.lookup_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let under_way = self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(user);
            if !under_way || tokio::time::timeout_at(deadline, ended).await.is_err() {
                return;
            }
        }
    }

    /// Records a lookup's outcome: its time for `status`, and the names
    /// without a certificate.
    pub fn record(&self, user: &str, outcome: &Result<Vec<Vec<u8>>, LookupError>, now: u64) {
        {
            let mut absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
            match outcome {
                Ok(values) if values.is_empty() => {
                    absent.put(user.to_owned(), now);
                }
                Ok(_) => {
                    absent.pop(user);
                }
                Err(_) => {}
            }
        }
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(_) | Err(LookupError::BadEntry(_)) => {
                health.last_success = Some(now);
                health.down_since = None;
            }
            // Only a server that did not answer marks the directory down,
            // not ecpd's own queue being full.
            Err(LookupError::Crowded(_)) => {}
            Err(e) => {
                health.last_failure = Some((now, e.to_string()));
                health.down_since.get_or_insert(now);
            }
        }
    }

    /// Whether the last lookup found no server answering, less than
    /// [`DOWN_RETRY_SECS`] ago: then logins decide from the cache without
    /// asking.
    pub fn is_down(&self, now: u64) -> bool {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let last_failure = health.last_failure.as_ref().map_or(0, |(at, _)| *at);
        health.down_since.is_some() && now.saturating_sub(last_failure) < DOWN_RETRY_SECS
    }

    /// When a server last answered, and the last failure.
    pub fn health(&self) -> (Option<u64>, Option<(u64, String)>) {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        (health.last_success, health.last_failure.clone())
    }

    /// The certificate values (DER) of `user`'s entry, from the first
    /// server that answers. A user with no entry, or an entry without the
    /// attribute, has none. `known` picks the lookup pool: whether the
    /// cache holds an answer for this user.
    pub async fn lookup(&self, user: &str, known: bool) -> Result<Vec<Vec<u8>>, LookupError> {
        let deadline = self.lookup_deadline();
        tokio::time::timeout(deadline, self.lookup_within(user, known))
            .await
            .map_err(|_| {
                LookupError::Unreachable(format!(
                    "no server answered within {} ms (one deadline for the whole lookup)",
                    deadline.as_millis()
                ))
            })?
    }

    /// `timeout_ms` for each server, and never more than
    /// [`LOOKUP_DEADLINE`] for all of them together.
    pub fn lookup_deadline(&self) -> Duration {
        let servers = u32::try_from(self.config.uri.len()).unwrap_or(u32::MAX);
        self.config
            .timeout()
            .saturating_mul(servers.max(1))
            .min(LOOKUP_DEADLINE)
    }

    async fn lookup_within(&self, user: &str, known: bool) -> Result<Vec<Vec<u8>>, LookupError> {
        let pool = if known {
            &self.known_users
        } else {
            &self.other_users
        };
        let _permit = tokio::time::timeout(self.config.timeout(), pool.acquire())
            .await
            .map_err(|_| {
                LookupError::Crowded(format!(
                    "{LOOKUPS_PER_POOL} lookups already waiting on the directory"
                ))
            })?
            .map_err(|e| LookupError::Crowded(e.to_string()))?;
        let filter = self.config.filter_for(user);
        let attributes = vec![self.config.certificate_attribute.as_str()];
        let (_, entries) = self
            .search(&self.config.base_dn, Scope::Subtree, &filter, attributes)
            .await?;
        // A search reference instead of an entry: ecpd does not chase
        // referrals, and must not read one as "no such user".
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| !e.is_intermediate())
            .collect();
        if entries.iter().any(ldap3::ResultEntry::is_ref) {
            return Err(LookupError::BadEntry(
                "the server answered with a referral; point uri at a server holding the entries"
                    .into(),
            ));
        }
        let count = entries.len();
        let mut entries = entries.into_iter();
        match (entries.next(), count) {
            (None, _) => Ok(Vec::new()),
            (Some(entry), 1) => certificate_values(&self.config, SearchEntry::construct(entry)),
            (Some(_), n) => Err(LookupError::BadEntry(format!(
                "the user filter matched {n} entries; it must match one"
            ))),
        }
    }

    /// Whether a server answers now: reads the base entry as a lookup
    /// would, for `ecpctl status` and `doctor`. Ok names the server; None
    /// when another probe is under way.
    pub async fn probe(&self) -> Option<Result<String, LookupError>> {
        let _permit = self.probing.try_acquire().ok()?;
        let base = &self.config.base_dn;
        let answered = tokio::time::timeout(
            self.lookup_deadline(),
            self.search(base, Scope::Base, "(objectClass=*)", vec!["1.1"]),
        )
        .await
        .unwrap_or_else(|_| {
            Err(LookupError::Unreachable(
                "no server answered in time".into(),
            ))
        });
        if answered.is_ok() {
            // Answering again: logins need not wait for the retry time.
            let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
            health.down_since = None;
        }
        Some(answered.map(|(uri, _)| uri.to_owned()))
    }

    /// One search, on the first server that answers; with that server's
    /// URI. A refusal names the server that refused.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: Vec<&str>,
    ) -> Result<(&str, Vec<ldap3::ResultEntry>), LookupError> {
        let mut last = String::from("no server configured");
        for uri in &self.config.uri {
            match self
                .search_at(uri, base, scope, filter, attributes.clone())
                .await
            {
                Ok(entries) => return Ok((uri, entries)),
                Err(LookupError::Unreachable(why) | LookupError::Crowded(why)) => {
                    last = format!("{uri}: {why}")
                }
                Err(LookupError::Refused(why)) => {
                    return Err(LookupError::Refused(format!("{uri}: {why}")))
                }
                Err(LookupError::BadEntry(why)) => {
                    return Err(LookupError::BadEntry(format!("{uri}: {why}")))
                }
            }
        }
        Err(LookupError::Unreachable(last))
    }

    /// Connect (with TLS as the URI and `tls` say), bind, search: all of
    /// it within `timeout_ms`, so a server that stops answering halfway
    /// costs one timeout, not three.
    async fn search_at(
        &self,
        uri: &str,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: Vec<&str>,
    ) -> Result<Vec<ldap3::ResultEntry>, LookupError> {
        let timeout = self.config.timeout();
        let password = bind_password(&self.config)?;
        let plain = self.config.tls.as_deref() == Some("none");
        let endpoint = Endpoint::parse(uri, plain).map_err(LookupError::Unreachable)?;
        let exchange = async {
            // ecpd makes the connection (and its TLS) itself, so that it
            // can count what the server sends: ldap3 gets the other end.
            let (stream, relay) = endpoint.open(self.tls.clone(), MAX_ANSWER_BYTES).await?;
            let settings = LdapConnSettings::new().set_std_stream(StdStream::Unix(stream));
            let (connection, mut ldap) = LdapConnAsync::with_settings(settings, "ldapi:///")
                .await
                .map_err(|e| LookupError::Unreachable(e.to_string()))?;
            let driver = tokio::spawn(async move {
                let _ = connection.drive().await;
            });
            let answer = async {
                if let (Some(dn), Some(pw)) = (&self.config.bind_dn, password.as_deref()) {
                    ldap.simple_bind(dn, pw)
                        .await
                        .map_err(|e| LookupError::Unreachable(e.to_string()))?
                        .success()
                        .map_err(|e| LookupError::Refused(format!("bind: {e}")))?;
                }
                let (entries, _) = ldap
                    .with_search_options(SearchOptions::new().sizelimit(2))
                    .search(base, scope, filter, attributes)
                    .await
                    .map_err(|e| LookupError::Unreachable(e.to_string()))?
                    .success()
                    .map_err(search_verdict)?;
                Ok(entries)
            }
            .await;
            if relay.was_cut() {
                return Err(LookupError::BadEntry(format!(
                    "the server's answer was larger than {} KiB; ecpd stopped reading it",
                    MAX_ANSWER_BYTES / 1024
                )));
            }
            // Only when the server answered: an unbind to a frozen server
            // would wait too.
            if answer.is_ok() {
                let _ = tokio::time::timeout(Duration::from_millis(50), ldap.unbind()).await;
            }
            driver.abort();
            answer
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            LookupError::Unreachable(format!("no answer within {} ms", self.config.timeout_ms))
        })?
    }
}

/// What a search's result code means for the lookup: busy or unavailable
/// is an outage (the next server is tried, the cache may answer); any
/// other code is what the server chose to answer about this search (a
/// size limit when the filter matches several entries, a referral, no
/// such object, insufficient access, …), so the entry is unusable.
fn search_verdict(e: ldap3::LdapError) -> LookupError {
    match &e {
        ldap3::LdapError::LdapResult { result } if TRANSIENT_RESULT_CODES.contains(&result.rc) => {
            LookupError::Unreachable(format!("search: {e}"))
        }
        _ => LookupError::BadEntry(format!("search: {e}")),
    }
}

/// The TLS client: it trusts the CAs in `ca_file` (PEM), or the system's
/// bundle when none is set, checks the server's name against the URI's
/// host, and offers no client certificate.
fn tls_client(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let system_bundle = system_ca_bundle(SYSTEM_CA_BUNDLES);
    let path = ca_file.unwrap_or(&system_bundle);
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        // No system bundle and no tls_ca_file: only ldapi:// and tls =
        // "none" can work, and any TLS connection is refused.
        Err(e) if ca_file.is_none() && e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("directory.tls_ca_file {}: {e}", path.display())),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: a CA certificate is unusable: {e}", path.display()))?;
    }
    if roots.is_empty() && ca_file.is_some() {
        return Err(format!(
            "directory.tls_ca_file {}: no PEM certificate in it",
            path.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The bundle of the CAs the system trusts, where each family keeps it:
/// Debian and Ubuntu, then Fedora and RHEL, then openSUSE.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// The first of `candidates` that exists (the first one when none does,
/// so that the error names the usual place).
fn system_ca_bundle(candidates: &[&str]) -> std::path::PathBuf {
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or(Path::new(candidates[0]))
        .to_path_buf()
}

/// The bind password, read for each connection (it may be rotated): the
/// file must belong to root or ecpd's account and be readable by no one
/// else.
fn bind_password(config: &DirectoryConfig) -> Result<Option<String>, LookupError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let Some(path) = &config.bind_password_file else {
        return Ok(None);
    };
    let refused = |why: String| LookupError::Refused(format!("{}: {why}", path.display()));
    let mut file = std::fs::File::open(path).map_err(|e| refused(e.to_string()))?;
    let meta = file.metadata().map_err(|e| refused(e.to_string()))?;
    let own = nix::unistd::geteuid().as_raw();
    // Group read is allowed (root:_ecpd 0640 is how a root-owned secret
    // reaches a daemon account); group write and anything for others are
    // not.
    if (meta.uid() != 0 && meta.uid() != own) || meta.mode() & 0o027 != 0 {
        return Err(refused(
            "must belong to root or ecpd's account, with no access for others and no group write (0600, or 0640 with ecpd's group)".into(),
        ));
    }
    let mut text = String::new();
    file.by_ref()
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| refused(e.to_string()))?;
    Ok(Some(text.lines().next().unwrap_or("").to_owned()))
}

/// The attribute's values, bounded in number and size.
fn certificate_values(
    config: &DirectoryConfig,
    entry: SearchEntry,
) -> Result<Vec<Vec<u8>>, LookupError> {
    // The attribute's type, without options: a server may answer
    // "userCertificate" for "userCertificate;binary".
    let base = |name: &str| {
        name.split(';')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let wanted = base(&config.certificate_attribute);
    let values: Vec<Vec<u8>> = entry
        .bin_attrs
        .into_iter()
        .filter(|(name, _)| base(name) == wanted)
        .flat_map(|(_, values)| values)
        .chain(
            entry
                .attrs
                .into_iter()
                .filter(|(name, _)| base(name) == wanted)
                .flat_map(|(_, values)| values.into_iter().map(String::into_bytes)),
        )
        .collect();
    if values.len() > MAX_DIRECTORY_CERTIFICATES {
        return Err(LookupError::BadEntry(format!(
            "{} certificate values; at most {MAX_DIRECTORY_CERTIFICATES} are read",
            values.len()
        )));
    }
    // An oversized value is not kept, but it still counts as a value (an
    // empty one, which no check accepts): the entry holds a certificate,
    // so the user is not "not enrolled".
    Ok(values
        .into_iter()
        .map(|v| {
            if v.len() <= ecp_core::certificate::MAX_CERTIFICATE_LEN {
                v
            } else {
                Vec::new()
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_bundle_is_found_where_the_distribution_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let rhel = dir.path().join("ca-bundle.crt");
        std::fs::write(&rhel, "").unwrap();
        let missing = dir.path().join("missing.crt");
        let candidates = [missing.to_str().unwrap(), rhel.to_str().unwrap()];
        assert_eq!(system_ca_bundle(&candidates), rhel);
        assert_eq!(
            system_ca_bundle(&["/nonexistent/a.crt", "/nonexistent/b.crt"]),
            Path::new("/nonexistent/a.crt")
        );
    }

    #[test]
    fn filter_syntax_in_a_name_is_escaped() {
        let config = DirectoryConfig::default();
        assert_eq!(
            config.filter_for("alice"),
            "(&(objectClass=posixAccount)(uid=alice))"
        );
        assert_eq!(
            config.filter_for("*)(uid=*"),
            "(&(objectClass=posixAccount)(uid=\\2a\\29\\28uid=\\2a))"
        );
        assert_eq!(
            config.filter_for("a\\b\0"),
            "(&(objectClass=posixAccount)(uid=a\\5cb\\00))"
        );
    }

    #[test]
    fn uris_and_tls_settings_are_checked() {
        let with = |uri: &str, tls: Option<&str>| DirectoryConfig {
            uri: vec![uri.into()],
            base_dn: "dc=example,dc=org".into(),
            tls: tls.map(str::to_owned),
            ..DirectoryConfig::default()
        };
        for good in [
            "ldaps://ldap.example.org",
            "ldap://ldap.example.org",
            "ldapi://%2Frun%2Fslapd",
        ] {
            assert_eq!(with(good, None).problem(), None, "{good}");
        }
        assert_eq!(with("ldap://h", Some("none")).problem(), None);
        for bad in ["http://h", "ldaps://a ldaps://b", "h"] {
            assert!(with(bad, None).problem().is_some(), "{bad}");
        }
        assert!(with("ldap://h", Some("starttls")).problem().is_some());
        let relative = DirectoryConfig {
            tls_ca_file: Some("ca.pem".into()),
            ..with("ldaps://h", None)
        };
        assert!(relative.problem().is_some());
        // A CA file that holds no certificate stops ecpd at start.
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let config = DirectoryConfig {
            tls_ca_file: Some(empty),
            ..with("ldaps://h", None)
        };
        assert!(Directory::new(config).is_err());
    }

    #[test]
    fn certificate_values_are_bounded_and_matched_by_attribute_type() {
        let config = DirectoryConfig::default();
        let entry = |name: &str, values: Vec<Vec<u8>>| SearchEntry {
            dn: "uid=erin,dc=example,dc=org".into(),
            attrs: std::collections::HashMap::new(),
            bin_attrs: [(name.to_owned(), values)].into_iter().collect(),
        };
        // A server may drop the ;binary option in its answer.
        let got = certificate_values(&config, entry("userCertificate", vec![vec![1, 2]]));
        assert_eq!(got, Ok(vec![vec![1, 2]]));
        // An oversized value still counts, as an empty (unusable) one.
        let big = vec![0x30; ecp_core::certificate::MAX_CERTIFICATE_LEN + 1];
        let got = certificate_values(&config, entry("usercertificate;binary", vec![big]));
        assert_eq!(got, Ok(vec![Vec::new()]));
        // Too many values: the entry is refused whole.
        let many = (0..=MAX_DIRECTORY_CERTIFICATES as u8)
            .map(|i| vec![i])
            .collect();
        assert!(matches!(
            certificate_values(&config, entry("userCertificate;binary", many)),
            Err(LookupError::BadEntry(_))
        ));
        // Another attribute is not a certificate.
        let got = certificate_values(&config, entry("userPKCS12", vec![vec![1]]));
        assert_eq!(got, Ok(Vec::new()));
    }

    #[test]
    fn only_busy_or_unavailable_is_an_outage_and_a_lookup_has_one_deadline() {
        let result = |rc| ldap3::LdapError::LdapResult {
            result: ldap3::LdapResult {
                rc,
                matched: String::new(),
                text: String::new(),
                refs: Vec::new(),
                ctrls: Vec::new(),
            },
        };
        // sizeLimitExceeded, referral, noSuchObject, insufficientAccess:
        // the server's verdict on this search.
        for rc in [4, 10, 32, 50] {
            assert!(
                matches!(search_verdict(result(rc)), LookupError::BadEntry(_)),
                "{rc}"
            );
        }
        for rc in [51, 52] {
            assert!(
                matches!(search_verdict(result(rc)), LookupError::Unreachable(_)),
                "{rc}"
            );
        }
        let with = |servers: usize, timeout_ms: u64| {
            Directory::new(DirectoryConfig {
                uri: vec!["ldapi://%2Fnowhere".into(); servers],
                base_dn: "dc=example,dc=org".into(),
                timeout_ms,
                ..DirectoryConfig::default()
            })
            .unwrap()
            .lookup_deadline()
        };
        assert_eq!(with(1, 200), Duration::from_millis(200));
        assert_eq!(with(2, 1500), Duration::from_millis(3000));
        assert_eq!(with(5, 2000), LOOKUP_DEADLINE);
    }

    #[tokio::test]
    async fn a_login_waits_for_the_lookup_under_way_until_it_ends() {
        let directory = Arc::new(
            Directory::new(DirectoryConfig {
                uri: vec!["ldapi://%2Fnowhere".into()],
                base_dn: "dc=example,dc=org".into(),
                ..DirectoryConfig::default()
            })
            .unwrap(),
        );
        let flight = directory.start_lookup("dave").unwrap();
        assert!(directory.start_lookup("dave").is_none());
        let waiter = {
            let directory = directory.clone();
            tokio::spawn(async move { directory.wait_for_lookup("dave").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "returned while the lookup ran");
        drop(flight);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("still waiting after the lookup ended")
            .unwrap();
        // Nothing under way: no wait at all.
        tokio::time::timeout(
            Duration::from_millis(100),
            directory.wait_for_lookup("erin"),
        )
        .await
        .unwrap();
    }

    #[test]
    fn only_servers_that_do_not_answer_mark_the_directory_down() {
        let directory = Directory::new(DirectoryConfig {
            uri: vec!["ldapi://%2Fnowhere".into()],
            base_dn: "dc=example,dc=org".into(),
            ..DirectoryConfig::default()
        })
        .unwrap();
        directory.record("dave", &Err(LookupError::Crowded("4 lookups".into())), 100);
        assert!(!directory.is_down(100), "ecpd's own queue is not an outage");
        directory.record(
            "dave",
            &Err(LookupError::Unreachable("timeout".into())),
            100,
        );
        assert!(directory.is_down(100));
        assert!(!directory.is_down(100 + DOWN_RETRY_SECS));
    }
}
