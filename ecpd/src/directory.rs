//! Users' certificates from the directory (LDAP): the `[directory]`
//! section of ecpd.toml, and one bounded lookup per login.
//!
//! The lookup runs on ecpd's tokio runtime (ldap3 is tokio-only; the PAM
//! module never links it) with a timeout on connect, bind and search, and
//! gives back at most a few small values, so that neither a slow nor a
//! hostile directory can hold a login up or exhaust the daemon. Caching,
//! and what a failed lookup means, is `Service`'s business.

use std::path::PathBuf;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use serde::Deserialize;

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
            let allowed = uri.starts_with("ldapi://")
                || (uri.starts_with("ldap://") && self.tls.as_deref() == Some("none"));
            if !allowed {
                return Some((
                    "directory.uri",
                    "ldapi:// (a local socket), or ldap:// with tls = \"none\" set explicitly; ldaps:// and StartTLS are not supported yet",
                ));
            }
        }
        if self.base_dn.is_empty() {
            return Some(("directory.base_dn", "the base of the user search"));
        }
        if !self.user_filter.contains("{user}") {
            return Some(("directory.user_filter", "an LDAP filter containing {user}"));
        }
        if self.tls.as_deref().is_some_and(|t| t != "none") {
            return Some(("directory.tls", "\"none\", or unset"));
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

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Why the directory could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no directory server answered: {0}")]
    Unreachable(String),
    #[error("the directory's answer for this user was refused: {0}")]
    Refused(String),
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
    if (meta.uid() != 0 && meta.uid() != own) || meta.mode() & 0o077 != 0 {
        return Err(refused(
            "must belong to root or ecpd's account and be readable by no one else".into(),
        ));
    }
    let mut text = String::new();
    file.by_ref()
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| refused(e.to_string()))?;
    Ok(Some(text.lines().next().unwrap_or("").to_owned()))
}

/// The certificate values (DER) of `user`'s entry, from the first server
/// that answers. A user with no entry, or an entry without the attribute,
/// has none.
pub async fn lookup(config: &DirectoryConfig, user: &str) -> Result<Vec<Vec<u8>>, LookupError> {
    let password = bind_password(config)?;
    let filter = config
        .user_filter
        .replace("{user}", &ldap3::ldap_escape(user));
    let mut last = String::from("no server configured");
    for uri in &config.uri {
        match lookup_at(config, uri, password.as_deref(), &filter).await {
            Ok(values) => return Ok(values),
            Err(LookupError::Unreachable(why)) => last = format!("{uri}: {why}"),
            Err(refused) => return Err(refused),
        }
    }
    Err(LookupError::Unreachable(last))
}

async fn lookup_at(
    config: &DirectoryConfig,
    uri: &str,
    password: Option<&str>,
    filter: &str,
) -> Result<Vec<Vec<u8>>, LookupError> {
    let timeout = config.timeout();
    let unreachable = |e: &dyn std::fmt::Display| LookupError::Unreachable(e.to_string());
    let settings = LdapConnSettings::new().set_conn_timeout(timeout);
    let (connection, mut ldap) =
        tokio::time::timeout(timeout, LdapConnAsync::with_settings(settings, uri))
            .await
            .map_err(|_| unreachable(&"connect timed out"))?
            .map_err(|e| unreachable(&e))?;
    let driver = tokio::spawn(async move {
        let _ = connection.drive().await;
    });
    let answer = async {
        if let (Some(dn), Some(pw)) = (&config.bind_dn, password) {
            ldap.with_timeout(timeout)
                .simple_bind(dn, pw)
                .await
                .map_err(|e| unreachable(&e))?
                .success()
                .map_err(|e| LookupError::Refused(format!("bind: {e}")))?;
        }
        let (entries, _) = ldap
            .with_timeout(timeout)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(
                &config.base_dn,
                Scope::Subtree,
                filter,
                vec![config.certificate_attribute.as_str()],
            )
            .await
            .map_err(|e| unreachable(&e))?
            .success()
            .map_err(|e| LookupError::Refused(format!("search: {e}")))?;
        let count = entries.len();
        let mut entries = entries.into_iter();
        match (entries.next(), count) {
            (None, _) => Ok(Vec::new()),
            (Some(entry), 1) => certificate_values(config, SearchEntry::construct(entry)),
            (Some(_), n) => Err(LookupError::Refused(format!(
                "the user filter matched {n} entries; it must match one"
            ))),
        }
    }
    .await;
    let _ = ldap.unbind().await;
    driver.abort();
    answer
}

/// The attribute's values, bounded in number and size.
fn certificate_values(
    config: &DirectoryConfig,
    entry: SearchEntry,
) -> Result<Vec<Vec<u8>>, LookupError> {
    let wanted = config.certificate_attribute.to_ascii_lowercase();
    let values: Vec<Vec<u8>> = entry
        .bin_attrs
        .into_iter()
        .filter(|(name, _)| name.to_ascii_lowercase() == wanted)
        .flat_map(|(_, values)| values)
        .chain(
            entry
                .attrs
                .into_iter()
                .filter(|(name, _)| name.to_ascii_lowercase() == wanted)
                .flat_map(|(_, values)| values.into_iter().map(String::into_bytes)),
        )
        .collect();
    if values.len() > MAX_DIRECTORY_CERTIFICATES {
        return Err(LookupError::Refused(format!(
            "{} certificate values; at most {MAX_DIRECTORY_CERTIFICATES} are read",
            values.len()
        )));
    }
    // Oversized values are skipped, not fatal: the others may be good.
    Ok(values
        .into_iter()
        .filter(|v| v.len() <= ecp_core::certificate::MAX_CERTIFICATE_LEN)
        .collect())
}
