//! Validated names: the only way to get a `UserName`, `HostName` or
//! `ServiceName` is through a check, so code that holds one never has to ask
//! whether it contains a `/`, a newline or a NUL.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} {shown} contains a character that is not allowed: {bad:?}")]
    BadCharacter {
        kind: &'static str,
        shown: String,
        bad: char,
    },
    #[error("{kind} {shown} is not allowed: {why}")]
    BadForm {
        kind: &'static str,
        shown: String,
        why: &'static str,
    },
}

/// Shows a refused name safely in a message: control characters and
/// anything beyond printable ASCII are escaped, long input is cut.
fn shown(raw: &str) -> String {
    let cut: String = raw.chars().take(40).collect();
    let mut out = format!("{:?}", cut);
    if raw.chars().count() > 40 {
        out.push('…');
    }
    out
}

fn check_chars(
    kind: &'static str,
    raw: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    if raw.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if raw.len() > max {
        return Err(NameError::TooLong {
            kind,
            len: raw.len(),
            max,
        });
    }
    if let Some(bad) = raw.chars().find(|c| !allowed(*c)) {
        return Err(NameError::BadCharacter {
            kind,
            shown: shown(raw),
            bad,
        });
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The validated name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(raw: &str) -> Result<Self, NameError> {
                Self::parse(raw)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_name!(
    /// A Unix account name as the login programs pass it: 1–32 bytes of
    /// `A–Z a–z 0–9 _ . -`, not starting with `-` or `.`, optionally ending in
    /// `$` (Samba machine accounts), and not all digits (which `chown` and
    /// friends would read as a uid).
    UserName
);

impl UserName {
    /// Longest user name accepted, as in glibc's `LOGIN_NAME_MAX`-minded tools.
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        const KIND: &str = "user name";
        let body = raw.strip_suffix('$').unwrap_or(raw);
        check_chars(KIND, raw, Self::MAX_LEN, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '$')
        })?;
        let bad_form = |why| NameError::BadForm {
            kind: KIND,
            shown: shown(raw),
            why,
        };
        if body.is_empty() || body.contains('$') {
            return Err(bad_form("`$` may only end a name"));
        }
        if body.starts_with('-') || body.starts_with('.') {
            return Err(bad_form("it may not start with `-` or `.`"));
        }
        if body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_form("an all-digit name would be read as a uid"));
        }
        Ok(Self(raw.to_owned()))
    }
}

validated_name!(
    /// A host name (the machine a challenge is issued by): 1–253 bytes of
    /// letters, digits, `-` and `.`, as DNS and `hostname(1)` allow.
    HostName
);

impl HostName {
    pub const MAX_LEN: usize = 253;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        const KIND: &str = "host name";
        check_chars(KIND, raw, Self::MAX_LEN, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '.')
        })?;
        if raw.starts_with(['-', '.']) || raw.contains("..") {
            return Err(NameError::BadForm {
                kind: KIND,
                shown: shown(raw),
                why: "labels may not be empty or start with `-`",
            });
        }
        Ok(Self(raw.to_owned()))
    }
}

validated_name!(
    /// A PAM service name (`sshd`, `sudo`, `login`, …): 1–64 bytes of
    /// letters, digits, `_ . + -`, as file names in `/etc/pam.d` use.
    ServiceName
);

impl ServiceName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        const KIND: &str = "service name";
        check_chars(KIND, raw, Self::MAX_LEN, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
        })?;
        if raw.starts_with('.') {
            return Err(NameError::BadForm {
                kind: KIND,
                shown: shown(raw),
                why: "it may not start with `.`",
            });
        }
        Ok(Self(raw.to_owned()))
    }
}

/// The remote host PAM reports for a login (`PAM_RHOST`): empty for a
/// local login, otherwise 1–253 bytes of printable ASCII without spaces
/// (an address, a DNS name, or whatever the login program put there).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteHost(String);

impl RemoteHost {
    pub const MAX_LEN: usize = 253;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        const KIND: &str = "remote host";
        if raw.is_empty() {
            return Ok(Self::local());
        }
        check_chars(KIND, raw, Self::MAX_LEN, |c| c.is_ascii_graphic())?;
        Ok(Self(raw.to_owned()))
    }

    /// No remote host: a login at the console, through sudo, su, a locker.
    pub fn local() -> Self {
        Self(String::new())
    }

    pub fn is_local(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RemoteHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RemoteHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteHost({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_user_names_are_accepted() {
        for ok in [
            "alice",
            "bob.smith",
            "svc_backup",
            "a-b",
            "WS01$",
            "x1",
            "_apt",
        ] {
            assert_eq!(UserName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn odd_user_names_are_refused() {
        let cases = [
            "", "..", ".", "../etc", "a/b", "al ice", "alice\n", "ali\0ce", "-rf", ".hidden",
            "1000", "$", "a$b", "élodie", "a*",
        ];
        for bad in cases {
            assert!(UserName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = "a".repeat(33);
        assert!(matches!(
            UserName::parse(&long),
            Err(NameError::TooLong {
                len: 33,
                max: 32,
                ..
            })
        ));
    }

    #[test]
    fn refusal_message_escapes_control_characters() {
        let err = UserName::parse("bad\nname").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("\\n"), "{err}");
    }

    #[test]
    fn host_names_follow_dns_shape() {
        assert!(HostName::parse("server-1.example.org").is_ok());
        assert!(HostName::parse("localhost").is_ok());
        for bad in ["", "a..b", "-a", ".a", "a b", "a/b", "a_b"] {
            assert!(HostName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(HostName::parse(&"a".repeat(254)).is_err());
    }

    #[test]
    fn remote_hosts_are_printable_or_empty() {
        assert!(RemoteHost::parse("").unwrap().is_local());
        for ok in [
            "203.0.113.9",
            "2001:db8::1",
            "fe80::1%eth0",
            "client.example.org",
        ] {
            assert_eq!(RemoteHost::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["a b", "a\n", "\u{e9}", "a\0"] {
            assert!(RemoteHost::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(RemoteHost::parse(&"a".repeat(254)).is_err());
    }

    #[test]
    fn service_names_follow_pam_d_file_names() {
        for ok in [
            "sshd",
            "sudo",
            "sudo-i",
            "gdm-password",
            "ecp+test",
            "login.1",
        ] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../sshd", "a/b", ".x", "a b", "a\0"] {
            assert!(ServiceName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
