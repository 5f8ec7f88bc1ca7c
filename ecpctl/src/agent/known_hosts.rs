//! Which host names the user's known_hosts files give a host key, read
//! the way ssh writes them: plain and `[name]:port` patterns, hashed
//! entries (`|1|salt|hash`, HMAC-SHA1 of the name), negations, and
//! `@revoked` lines. Wildcard patterns name no host exactly and are
//! passed over; `@cert-authority` lines vouch for certificates, which the
//! agent does not read.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A known_hosts file larger than this is not read.
const MAX_FILE_LEN: u64 = 4 << 20;

/// What the files say about a host key and a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostVerdict {
    /// A line with this key names this host.
    Named,
    /// No line with this key names this host; the names they do give
    /// (plain ones; hashed ones cannot be listed).
    Other { names: Vec<String>, hashed: usize },
    /// The key is marked @revoked.
    Revoked,
}

/// The default files: the user's and the system's, as ssh reads them.
pub fn default_files(home: &Path) -> Vec<PathBuf> {
    vec![
        home.join(".ssh/known_hosts"),
        home.join(".ssh/known_hosts2"),
        PathBuf::from("/etc/ssh/ssh_known_hosts"),
        PathBuf::from("/etc/ssh/ssh_known_hosts2"),
    ]
}

/// Reads `files` (missing ones are skipped) and judges `host` for `key_blob`.
pub fn judge(files: &[PathBuf], key_blob: &[u8], host: &str) -> HostVerdict {
    let mut texts = Vec::new();
    for path in files {
        let Ok(file) = std::fs::File::open(path) else {
            continue;
        };
        let mut text = String::new();
        if file.take(MAX_FILE_LEN).read_to_string(&mut text).is_ok() {
            texts.push(text);
        }
    }
    judge_texts(&texts, key_blob, host)
}

fn judge_texts(texts: &[String], key_blob: &[u8], host: &str) -> HostVerdict {
    let host = host.to_ascii_lowercase();
    let mut names = Vec::new();
    let mut hashed = 0;
    let mut named = false;
    for line in texts.iter().flat_map(|t| t.lines()) {
        let Some(entry) = Entry::parse(line) else {
            continue;
        };
        if entry.key != key_blob {
            continue;
        }
        match entry.marker {
            Marker::Revoked => return HostVerdict::Revoked,
            Marker::CertAuthority => continue,
            Marker::None => {}
        }
        match entry.names_host(&host) {
            Some(true) => named = true,
            Some(false) => {}
            // A negated pattern matched: this line is not for the host.
            None => continue,
        }
        for pattern in entry.patterns.split(',') {
            if pattern.starts_with("|1|") {
                hashed += 1;
            } else if let Some(name) = plain_name(pattern) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    if named {
        HostVerdict::Named
    } else {
        HostVerdict::Other { names, hashed }
    }
}

enum Marker {
    None,
    Revoked,
    CertAuthority,
}

struct Entry<'a> {
    marker: Marker,
    patterns: &'a str,
    key: Vec<u8>,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Entry<'a>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            marker if marker.starts_with('@') => return None,
            _ => Marker::None,
        };
        if !matches!(marker, Marker::None) {
            first = fields.next()?;
        }
        let _key_type = fields.next()?;
        let key = STANDARD.decode(fields.next()?).ok()?;
        Some(Entry {
            marker,
            patterns: first,
            key,
        })
    }

    /// Some(true) if a pattern names `host` exactly, None if a negated
    /// pattern matches it (the line then does not apply), else Some(false).
    fn names_host(&self, host: &str) -> Option<bool> {
        let mut named = false;
        for pattern in self.patterns.split(',') {
            let (negated, pattern) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, pattern),
            };
            let matches = if let Some(hashed) = pattern.strip_prefix("|1|") {
                hashed_matches(hashed, host)
            } else {
                plain_name(pattern).is_some_and(|name| name == host)
            };
            if matches && negated {
                return None;
            }
            named |= matches;
        }
        Some(named)
    }
}

/// The host name of a plain pattern (`name`, `[name]:port`), lower-cased;
/// None for wildcard patterns.
fn plain_name(pattern: &str) -> Option<String> {
    let name = match pattern.strip_prefix('[') {
        Some(rest) => rest.split_once("]:")?.0,
        None => pattern,
    };
    let plain = !name.is_empty() && !name.contains(['*', '?', '!', '|']);
    plain.then(|| name.to_ascii_lowercase())
}

/// Whether `salt|hash` (base64 each) is HMAC-SHA1(salt, host).
fn hashed_matches(salt_and_hash: &str, host: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, host.as_bytes(), &hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(salt: &[u8], host: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
        let tag = ring::hmac::sign(&key, host.as_bytes());
        format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(tag.as_ref())
        )
    }

    #[test]
    fn a_key_is_judged_by_the_names_its_lines_give() {
        let web = vec![1u8, 2, 3];
        let db = vec![4u8, 5, 6];
        let line = |names: &str, key: &[u8]| {
            format!("{names} ssh-ed25519 {} comment\n", STANDARD.encode(key))
        };
        let text = [
            "# comment\n\n".to_owned(),
            line("web1,web1.example.org,192.0.2.10", &web),
            line(&hashed(b"0123456789abcdef0123", "hashed-host"), &web),
            line("[db]:2222", &db),
            line("*.wild.example", &db),
        ]
        .concat();
        let texts = [text];
        assert_eq!(judge_texts(&texts, &web, "web1"), HostVerdict::Named);
        assert_eq!(
            judge_texts(&texts, &web, "WEB1.example.org"),
            HostVerdict::Named
        );
        assert_eq!(judge_texts(&texts, &web, "hashed-host"), HostVerdict::Named);
        assert_eq!(judge_texts(&texts, &db, "db"), HostVerdict::Named);
        assert_eq!(
            judge_texts(&texts, &db, "x.wild.example"),
            HostVerdict::Other {
                names: vec!["db".into()],
                hashed: 0
            }
        );
        // web1's key does not name db: the relay case.
        assert_eq!(
            judge_texts(&texts, &web, "db"),
            HostVerdict::Other {
                names: vec![
                    "web1".into(),
                    "web1.example.org".into(),
                    "192.0.2.10".into()
                ],
                hashed: 1
            }
        );
        // An unknown key names nothing.
        assert_eq!(
            judge_texts(&texts, &[9], "web1"),
            HostVerdict::Other {
                names: vec![],
                hashed: 0
            }
        );
    }

    #[test]
    fn revoked_keys_and_negated_patterns_name_nothing() {
        let key = vec![1u8, 2, 3];
        let encoded = STANDARD.encode(&key);
        let texts = [format!(
            "web1,!web2 ssh-ed25519 {encoded}\nweb2 ssh-ed25519 {encoded}\n"
        )];
        assert_eq!(judge_texts(&texts, &key, "web1"), HostVerdict::Named);
        // The first line excludes web2, the second names it.
        assert_eq!(judge_texts(&texts, &key, "web2"), HostVerdict::Named);
        let negated_only = [format!("web1,!web2 ssh-ed25519 {encoded}\n")];
        assert!(matches!(
            judge_texts(&negated_only, &key, "web2"),
            HostVerdict::Other { .. }
        ));
        let revoked = [format!(
            "web1 ssh-ed25519 {encoded}\n@revoked * ssh-ed25519 {encoded}\n"
        )];
        assert_eq!(judge_texts(&revoked, &key, "web1"), HostVerdict::Revoked);
        let ca = [format!("@cert-authority web1 ssh-ed25519 {encoded}\n")];
        assert!(matches!(
            judge_texts(&ca, &key, "web1"),
            HostVerdict::Other { .. }
        ));
    }
}
