//! `/etc/ecp/ecpd.toml`: every key optional, each with a built-in default;
//! an unknown key is an error that names it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ecp/ecpd.toml";
pub const DEFAULT_DB_PATH: &str = "/var/lib/ecpd";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a challenge may be answered, in seconds.
    pub challenge_lifetime_secs: u64,
    /// Allowed disagreement between clocks when checking certificate
    /// validity, in seconds.
    pub clock_skew_secs: u64,
    /// Certificates one user may have enrolled at once.
    pub max_certificates_per_user: usize,
    /// Challenges one remote source (network or host name) may request per
    /// minute, for any users (0 = no limit). Local logins and non-root
    /// callers are limited per user only.
    #[serde(alias = "challenges_per_rhost_per_minute")]
    pub challenges_per_source_per_minute: u32,
    /// Challenges for one user from one source per minute (0 = no limit).
    pub challenges_per_user_per_minute: u32,
    /// Failed answers from one source for one user before that pair is
    /// made to wait (0 = never).
    #[serde(alias = "max_failed_attempts")]
    pub failures_before_penalty: u32,
    /// The first wait, in seconds; it doubles with each further failure.
    pub penalty_initial_secs: u64,
    /// The longest wait, in seconds.
    pub penalty_max_secs: u64,
    /// Remote IPv4 addresses in one network of this size count as one
    /// source.
    pub ipv4_prefix_len: u8,
    /// Remote IPv6 addresses in one network of this size count as one
    /// source (a /64 is one site or host).
    pub ipv6_prefix_len: u8,
    /// Entries kept in each throttling table; the least recently used
    /// goes when it is full.
    pub max_tracked_sources: usize,
    /// How often used nonces and stale counters are dropped, seconds.
    pub cleanup_interval_secs: u64,
    /// The host name bound into challenges; default: the system host name.
    pub host_name: Option<String>,
    /// Organisation CA certificates (PEM, one or more): a user certificate
    /// one of them issued logs in without being enrolled here.
    pub ca_file: Option<PathBuf>,
    /// Revocation lists of those CAs (PEM or DER, one or more).
    pub crl_file: Option<PathBuf>,
    /// Refuse a CA's certificates while no current CRL of it is loaded;
    /// default: true when `ca_file` is set.
    pub require_crl: Option<bool>,
    /// How long after a CRL's nextUpdate it still counts as current.
    pub crl_grace_secs: u64,
    /// Let a CA-issued certificate sign for an account with uid 0. Off by
    /// default: a CA that also issues certificates for other purposes (or
    /// lets requesters choose their subject) would otherwise hand out the
    /// second factor for root on every host.
    pub ca_allow_root: bool,
    /// Whether users may renew their own enrolled certificates
    /// (`ecpctl renew`); root may always enroll.
    pub allow_self_renewal: bool,
    /// How old (since enrollment) a certificate must be before it may
    /// vouch for a successor, so a stolen key cannot chain renewals fast.
    pub renew_min_age_secs: u64,
    /// Users' certificates from an LDAP directory, with an offline cache.
    pub directory: Option<crate::directory::DirectoryConfig>,
    /// Replaced by `penalty_max_secs`; still read so that old files work.
    pub lockout_minutes: Option<u64>,
    /// No longer used: challenges are not stored, so there is nothing to
    /// cap. Still read so that old files work.
    pub max_outstanding_challenges: Option<u64>,
    /// What the file said that is outdated, for the log.
    #[serde(skip)]
    pub notices: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            challenge_lifetime_secs: 300,
            clock_skew_secs: 300,
            max_certificates_per_user: 8,
            challenges_per_source_per_minute: 30,
            challenges_per_user_per_minute: 10,
            failures_before_penalty: 5,
            penalty_initial_secs: 10,
            penalty_max_secs: 900,
            ipv4_prefix_len: 32,
            ipv6_prefix_len: 64,
            max_tracked_sources: 50_000,
            cleanup_interval_secs: 60,
            host_name: None,
            ca_file: None,
            crl_file: None,
            require_crl: None,
            crl_grace_secs: 0,
            ca_allow_root: false,
            allow_self_renewal: true,
            renew_min_age_secs: 86_400,
            directory: None,
            lockout_minutes: None,
            max_outstanding_challenges: None,
            notices: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {key} must be {rule}")]
    Invalid {
        path: String,
        key: &'static str,
        rule: &'static str,
    },
}

impl Config {
    /// Reads `path`. A missing file at the default location means "all
    /// defaults"; a missing file that was asked for by name is an error.
    pub fn load(path: &Path, explicitly_given: bool) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicitly_given => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: shown,
                    source,
                })
            }
        };
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, shown_path: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: shown_path.to_owned(),
            message: e.message().to_owned(),
        })?;
        config.migrate(text);
        config.check(shown_path)?;
        Ok(config)
    }

    /// Carries keys of earlier versions over, noting each for the log.
    fn migrate(&mut self, text: &str) {
        // The typed parse above succeeded, so this one does too.
        let keys: toml::Table = toml::from_str(text).unwrap_or_default();
        let set = |key: &str| keys.contains_key(key);
        for (old, new) in [
            (
                "challenges_per_rhost_per_minute",
                "challenges_per_source_per_minute",
            ),
            ("max_failed_attempts", "failures_before_penalty"),
        ] {
            if set(old) {
                self.notices.push(format!(
                    "{old} is now called {new} (counted per user and source, no longer per account); please rename it"
                ));
            }
        }
        if let Some(minutes) = self.lockout_minutes.take() {
            if set("penalty_max_secs") {
                self.notices.push(
                    "lockout_minutes is ignored: penalty_max_secs is set; please remove it".into(),
                );
            } else {
                self.penalty_max_secs = minutes.saturating_mul(60);
                self.notices.push(format!(
                    "lockout_minutes = {minutes} is read as penalty_max_secs = {}: failures now earn a per-source wait, not an account lock; please rename it",
                    self.penalty_max_secs
                ));
            }
        }
        if self.max_outstanding_challenges.take().is_some() {
            self.notices.push(
                "max_outstanding_challenges is ignored: challenges are no longer stored; please remove it".into(),
            );
        }
    }

    /// How the throttle groups and counts, from these settings.
    pub fn limits(&self) -> crate::throttle::Limits {
        crate::throttle::Limits {
            per_user_and_source: self.challenges_per_user_per_minute,
            per_source: self.challenges_per_source_per_minute,
            free_failures: self.failures_before_penalty,
            penalty_initial_secs: self.penalty_initial_secs,
            penalty_max_secs: self.penalty_max_secs,
            max_entries: self.max_tracked_sources,
        }
    }

    pub fn grouping(&self) -> crate::throttle::Grouping {
        crate::throttle::Grouping {
            ipv4_prefix_len: self.ipv4_prefix_len,
            ipv6_prefix_len: self.ipv6_prefix_len,
        }
    }

    /// How revocation lists are required, from these settings.
    pub fn crl_policy(&self) -> ecp_core::trust::CrlPolicy {
        ecp_core::trust::CrlPolicy {
            require_crl: self.require_crl.unwrap_or(self.ca_file.is_some()),
            grace_secs: self.crl_grace_secs,
        }
    }

    fn check(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |key, rule| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            rule,
        };
        if !(1..=3600).contains(&self.challenge_lifetime_secs) {
            return Err(invalid("challenge_lifetime_secs", "1 to 3600"));
        }
        if self.clock_skew_secs > 86_400 {
            return Err(invalid("clock_skew_secs", "at most 86400"));
        }
        if !(1..=64).contains(&self.max_certificates_per_user) {
            return Err(invalid("max_certificates_per_user", "1 to 64"));
        }
        if !(1..=32).contains(&self.ipv4_prefix_len) {
            return Err(invalid("ipv4_prefix_len", "1 to 32"));
        }
        if !(1..=128).contains(&self.ipv6_prefix_len) {
            return Err(invalid("ipv6_prefix_len", "1 to 128"));
        }
        if !(100..=10_000_000).contains(&self.max_tracked_sources) {
            return Err(invalid("max_tracked_sources", "100 to 10000000"));
        }
        if self.penalty_initial_secs == 0 || self.penalty_initial_secs > self.penalty_max_secs {
            return Err(invalid(
                "penalty_initial_secs",
                "at least 1 and at most penalty_max_secs",
            ));
        }
        if self.penalty_max_secs > 86_400 {
            return Err(invalid("penalty_max_secs", "at most 86400"));
        }
        if self.cleanup_interval_secs == 0 {
            return Err(invalid("cleanup_interval_secs", "at least 1"));
        }
        if self.renew_min_age_secs > 365 * 86_400 {
            return Err(invalid("renew_min_age_secs", "at most 31536000 (a year)"));
        }
        if self.crl_grace_secs > 30 * 86_400 {
            return Err(invalid("crl_grace_secs", "at most 2592000 (30 days)"));
        }
        if let Some((key, rule)) = self.directory.as_ref().and_then(|d| d.problem()) {
            return Err(invalid(key, rule));
        }
        if self.crl_file.is_some() && self.ca_file.is_none() {
            return Err(invalid("crl_file", "only with ca_file"));
        }
        for (key, file) in [("ca_file", &self.ca_file), ("crl_file", &self.crl_file)] {
            if file.as_ref().is_some_and(|f| !f.is_absolute()) {
                return Err(invalid(key, "an absolute path"));
            }
        }
        if let Some(host) = &self.host_name {
            if ecp_core::HostName::parse(host).is_err() {
                return Err(invalid("host_name", "a valid host name"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("", "t").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("challenge_lifetime = 5\n", "ecpd.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("challenge_lifetime"), "{msg}");
        assert!(msg.starts_with("ecpd.toml:"), "{msg}");
    }

    #[test]
    fn values_are_range_checked() {
        assert!(Config::parse("challenge_lifetime_secs = 0", "t").is_err());
        assert!(Config::parse("max_certificates_per_user = 0", "t").is_err());
        assert!(Config::parse("host_name = \"bad host\"", "t").is_err());
        assert!(Config::parse("ipv6_prefix_len = 129", "t").is_err());
        assert!(Config::parse("ipv4_prefix_len = 0", "t").is_err());
        assert!(Config::parse("penalty_initial_secs = 1000\npenalty_max_secs = 10", "t").is_err());
        let ok = Config::parse("challenge_lifetime_secs = 2\npenalty_max_secs = 60", "t").unwrap();
        assert_eq!(ok.challenge_lifetime_secs, 2);
        assert_eq!(ok.penalty_max_secs, 60);
        assert!(ok.notices.is_empty());
    }

    #[test]
    fn keys_of_earlier_versions_are_carried_over_and_noted() {
        let old = "challenges_per_rhost_per_minute = 7\nmax_failed_attempts = 4\n\
                   lockout_minutes = 2\nmax_outstanding_challenges = 10\n";
        let c = Config::parse(old, "t").unwrap();
        assert_eq!(c.challenges_per_source_per_minute, 7);
        assert_eq!(c.failures_before_penalty, 4);
        assert_eq!(c.penalty_max_secs, 120);
        assert_eq!(c.notices.len(), 4, "{:?}", c.notices);
        // An old name beside its new one is a mistake, not a choice.
        assert!(
            Config::parse("max_failed_attempts = 1\nfailures_before_penalty = 2", "t").is_err()
        );
    }

    #[test]
    fn packaged_config_file_is_all_defaults() {
        let text = include_str!("../../packaging/ecpd.toml");
        assert_eq!(
            Config::parse(text, "packaging/ecpd.toml").unwrap(),
            Config::default()
        );
        // Every key is documented there.
        for key in [
            "challenge_lifetime_secs",
            "clock_skew_secs",
            "max_certificates_per_user",
            "challenges_per_source_per_minute",
            "challenges_per_user_per_minute",
            "failures_before_penalty",
            "penalty_initial_secs",
            "penalty_max_secs",
            "ipv4_prefix_len",
            "ipv6_prefix_len",
            "max_tracked_sources",
            "cleanup_interval_secs",
            "host_name",
            "ca_file",
            "crl_file",
            "require_crl",
            "crl_grace_secs",
            "ca_allow_root",
        ] {
            assert!(text.contains(&format!("#{key} = ")), "{key} undocumented");
        }
    }

    #[test]
    fn wrong_type_is_an_error() {
        assert!(Config::parse("failures_before_penalty = \"ten\"", "t").is_err());
    }
}
