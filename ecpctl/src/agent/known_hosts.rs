//! Which host names the user's known_hosts files give a host key, read
//! the way ssh writes them: plain and `[name]:port` patterns, hashed
//! entries (`|1|salt|hash`, HMAC-SHA1 of the name), negations, and
//! `@revoked` lines. A pattern names exactly the text ssh looked it up
//! by: `[build]:2222` is the machine on port 2222, not `build` (port 22
//! may be another machine). Wildcard patterns name no host exactly and
//! are passed over; `@cert-authority` lines vouch for certificates, which
//! the agent does not read.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
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
    /// A file could not be read whole: an @revoked line may be in what
    /// was not read, so nothing is judged.
    Unreadable(String),
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
        // Non-blocking, and only a regular file is read: a FIFO someone
        // put where a configured file is missing must not hang the agent.
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return HostVerdict::Unreadable(format!("{}: {e}", path.display())),
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let mut bytes = Vec::new();
        if let Err(e) = file.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes) {
            return HostVerdict::Unreadable(format!("{}: {e}", path.display()));
        }
        if bytes.len() as u64 > MAX_FILE_LEN {
            return HostVerdict::Unreadable(format!(
                "{} is larger than {} MiB",
                path.display(),
                MAX_FILE_LEN >> 20
            ));
        }
        // ssh reads bytes; a line that is not UTF-8 is not one it wrote,
        // and must not hide the lines after it.
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
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
            // (`host` is lower-case; a pattern's port stays part of it.)
            if matches && negated {
                return None;
            }
            named |= matches;
        }
        Some(named)
    }
}

/// A plain pattern (`name`, or `[name]:port` as a whole), lower-cased;
/// None for wildcard patterns.
fn plain_name(pattern: &str) -> Option<String> {
    let name = match pattern.strip_prefix('[') {
        Some(rest) => rest.split_once("]:")?.0,
        None => pattern,
    };
    let plain = !name.is_empty() && !name.contains(['*', '?', '!', '|']);
    plain.then(|| pattern.to_ascii_lowercase())
}

/// The name ssh looks a server up by in known_hosts: its HostKeyAlias,
/// else the host name, as `[host]:port` when the port is not 22.
pub fn lookup_name(alias: Option<&str>, host: &str, port: u16) -> String {
    match alias {
        Some(alias) => alias.to_ascii_lowercase(),
        None if port == 22 => host.to_ascii_lowercase(),
        None => format!("[{}]:{port}", host.to_ascii_lowercase()),
    }
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
        // A key known on port 2222 is that machine, not the one on 22.
        assert_eq!(
            judge_texts(&texts, &db, "db"),
            HostVerdict::Other {
                names: vec!["[db]:2222".into()],
                hashed: 0
            }
        );
        assert_eq!(judge_texts(&texts, &db, "[db]:2222"), HostVerdict::Named);
        assert_eq!(
            judge_texts(&texts, &db, "x.wild.example"),
            HostVerdict::Other {
                names: vec!["[db]:2222".into()],
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
    fn ssh_looks_a_server_up_by_its_alias_or_name_and_port() {
        assert_eq!(lookup_name(Some("Web1"), "10.0.0.5", 2222), "web1");
        assert_eq!(lookup_name(None, "Web1", 22), "web1");
        assert_eq!(lookup_name(None, "web1", 2222), "[web1]:2222");
    }

    #[test]
    fn an_unreadable_or_oversized_file_judges_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; (MAX_FILE_LEN + 1) as usize]).unwrap();
        assert!(matches!(
            judge(&[big], &[1], "web1"),
            HostVerdict::Unreadable(_)
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            judge(&[missing], &[1], "web1"),
            HostVerdict::Other { .. }
        ));
        // A line that is not UTF-8 hides nothing after it.
        let key = [1u8, 2, 3];
        let mixed = dir.path().join("mixed");
        let mut bytes = b"\xff\xfe junk\n".to_vec();
        bytes.extend_from_slice(
            format!("@revoked web1 ssh-ed25519 {}\n", STANDARD.encode(key)).as_bytes(),
        );
        std::fs::write(&mixed, bytes).unwrap();
        assert_eq!(judge(&[mixed], &key, "web1"), HostVerdict::Revoked);
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
