//! `/etc/ecp/ecpd.toml`: every key optional, each with a built-in default;
//! an unknown key is an error that names it.

use std::path::Path;

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
    /// Challenges one remote host may request per minute (0 = no limit).
    /// Local logins (empty rhost) are limited per user only.
    pub challenges_per_rhost_per_minute: u32,
    /// Challenges issued for one user per minute (0 = no limit).
    pub challenges_per_user_per_minute: u32,
    /// Challenges outstanding at once, across all users.
    pub max_outstanding_challenges: u64,
    /// Consecutive failed verifications before a user is locked (0 = never).
    pub max_failed_attempts: u32,
    /// How long a lockout lasts, in minutes.
    pub lockout_minutes: u64,
    /// How often expired challenges and stale counters are removed, seconds.
    pub cleanup_interval_secs: u64,
    /// The host name bound into challenges; default: the system host name.
    pub host_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            challenge_lifetime_secs: 300,
            clock_skew_secs: 300,
            max_certificates_per_user: 8,
            challenges_per_rhost_per_minute: 10,
            challenges_per_user_per_minute: 10,
            max_outstanding_challenges: 10_000,
            max_failed_attempts: 10,
            lockout_minutes: 15,
            cleanup_interval_secs: 60,
            host_name: None,
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
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: shown_path.to_owned(),
            message: e.message().to_owned(),
        })?;
        config.check(shown_path)?;
        Ok(config)
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
        if self.max_outstanding_challenges == 0 {
            return Err(invalid("max_outstanding_challenges", "at least 1"));
        }
        if self.cleanup_interval_secs == 0 {
            return Err(invalid("cleanup_interval_secs", "at least 1"));
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
        let ok = Config::parse("challenge_lifetime_secs = 2\nlockout_minutes = 1", "t").unwrap();
        assert_eq!(ok.challenge_lifetime_secs, 2);
        assert_eq!(ok.lockout_minutes, 1);
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
            "challenges_per_rhost_per_minute",
            "challenges_per_user_per_minute",
            "max_outstanding_challenges",
            "max_failed_attempts",
            "lockout_minutes",
            "cleanup_interval_secs",
            "host_name",
        ] {
            assert!(text.contains(&format!("#{key} = ")), "{key} undocumented");
        }
    }

    #[test]
    fn wrong_type_is_an_error() {
        assert!(Config::parse("max_failed_attempts = \"ten\"", "t").is_err());
    }
}
