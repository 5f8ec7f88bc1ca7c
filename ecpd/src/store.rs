//! Persistent state in sled, one tree per kind: certificates, outstanding
//! challenges (nonces), rate-limit windows and failure counters.
//!
//! Replay safety rests on two rules. A nonce is consumed with sled's atomic
//! `remove`, so of any number of concurrent verifications exactly one gets
//! the record. And every nonce outstanding at start-up is purged, because
//! sled's flush is not an fsync: after a crash a consumed nonce could
//! reappear, and one issued before the crash may have been answered.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: damaged record in {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
}

/// An enrolled certificate. Only the public certificate is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    pub pem: String,
    pub label: String,
    pub enrolled_at: i64,
    pub last_used: i64,
}

/// What the daemon remembers about an issued challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceRecord {
    /// SHA-256 of the token payload: binds every field of the token.
    pub payload_sha256: Vec<u8>,
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub expires_at: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    start: u64,
    count: u32,
}

/// Consecutive failed verifications of one user name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub consecutive: u32,
    pub locked_until: u64,
    pub last_failure: u64,
}

/// Why a certificate could not be added.
#[derive(Debug, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    Duplicate,
    TooMany { max: usize },
}

pub struct Store {
    db: sled::Db,
    certificates: sled::Tree,
    nonces: sled::Tree,
    rate_windows: sled::Tree,
    failures: sled::Tree,
    outstanding: AtomicU64,
    /// Serialises enroll/revoke so the per-user bound cannot be raced.
    certificate_writes: Mutex<()>,
}

const RATE_WINDOW_SECS: u64 = 60;
/// sled page cache size.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// Failure records of unlocked users are kept this long after the last
/// failure, then forgotten.
const FAILURE_MEMORY_SECS: u64 = 24 * 3600;

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise")
}

fn decode<T: for<'de> Deserialize<'de>>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

fn certificate_key(user: &str, fingerprint: &str) -> Vec<u8> {
    let mut key = user.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(fingerprint.as_bytes());
    key
}

/// The inverse of [`certificate_key`]: (user, fingerprint).
fn split_certificate_key(key: &[u8]) -> (String, String) {
    let split = key.iter().position(|&b| b == 0).unwrap_or(key.len());
    let user = String::from_utf8_lossy(&key[..split]).into_owned();
    let fingerprint = String::from_utf8_lossy(key.get(split + 1..).unwrap_or(&[])).into_owned();
    (user, fingerprint)
}

fn user_prefix(user: &str) -> Vec<u8> {
    let mut key = user.as_bytes().to_vec();
    key.push(0);
    key
}

impl Store {
    /// Opens (or creates) the store at `path` and purges every outstanding
    /// challenge, durably, before anything is served.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // sled's page cache defaults to 1 GiB; ecpd's working set (a few
        // thousand certificates, outstanding challenges) fits in far less.
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::LowSpace)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        Self::from_db(db)
    }

    /// A throw-away store (removed when dropped), for tests and fuzzing.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let store = Self {
            certificates: db.open_tree("certificates")?,
            nonces: db.open_tree("nonces")?,
            rate_windows: db.open_tree("rate_windows")?,
            failures: db.open_tree("failures")?,
            db,
            outstanding: AtomicU64::new(0),
            certificate_writes: Mutex::new(()),
        };
        store.nonces.clear()?;
        store.db.flush()?;
        Ok(store)
    }

    /// Makes every write so far durable (as far as sled can: see the module
    /// documentation).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    // ---- challenges ----

    pub fn outstanding_nonces(&self) -> u64 {
        self.outstanding.load(Ordering::SeqCst)
    }

    pub fn insert_nonce(&self, id: &[u8], record: &NonceRecord) -> Result<(), StoreError> {
        if self.nonces.insert(id, encode(record))?.is_none() {
            self.outstanding.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Removes and returns the nonce: of concurrent callers, one gets it.
    pub fn take_nonce(&self, id: &[u8]) -> Result<Option<NonceRecord>, StoreError> {
        match self.nonces.remove(id)? {
            Some(bytes) => {
                self.outstanding.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(decode("nonces", &bytes)?))
            }
            None => Ok(None),
        }
    }

    /// Removes challenges that expired at or before `now`; returns how many.
    pub fn remove_expired_nonces(&self, now: u64) -> Result<u64, StoreError> {
        let mut removed = 0;
        for item in self.nonces.iter() {
            let (key, value) = item?;
            let expired = match decode::<NonceRecord>("nonces", &value) {
                Ok(record) => record.expires_at <= now,
                Err(_) => true,
            };
            if expired && self.nonces.remove(&key)?.is_some() {
                self.outstanding.fetch_sub(1, Ordering::SeqCst);
                removed += 1;
            }
        }
        Ok(removed)
    }

    // ---- certificates ----

    pub fn certificates_of(
        &self,
        user: &str,
    ) -> Result<Vec<(String, CertificateRecord)>, StoreError> {
        self.certificates
            .scan_prefix(user_prefix(user))
            .map(|item| {
                let (key, value) = item?;
                let (_, fingerprint) = split_certificate_key(&key);
                Ok((fingerprint, decode("certificates", &value)?))
            })
            .collect()
    }

    /// Every (user, fingerprint, record).
    pub fn all_certificates(&self) -> Result<Vec<(String, String, CertificateRecord)>, StoreError> {
        self.certificates
            .iter()
            .map(|item| {
                let (key, value) = item?;
                let (user, fingerprint) = split_certificate_key(&key);
                Ok((user, fingerprint, decode("certificates", &value)?))
            })
            .collect()
    }

    /// Adds a certificate unless it is a duplicate or the user is at `max`;
    /// durable when it returns `Added`.
    pub fn add_certificate(
        &self,
        user: &str,
        fingerprint: &str,
        record: &CertificateRecord,
        max: usize,
    ) -> Result<AddOutcome, StoreError> {
        let _guard = self
            .certificate_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = certificate_key(user, fingerprint);
        if self.certificates.contains_key(&key)? {
            return Ok(AddOutcome::Duplicate);
        }
        if self.certificates.scan_prefix(user_prefix(user)).count() >= max {
            return Ok(AddOutcome::TooMany { max });
        }
        self.certificates.insert(key, encode(record))?;
        self.flush()?;
        Ok(AddOutcome::Added)
    }

    /// Removes one certificate; durable when it returns true.
    pub fn remove_certificate(&self, user: &str, fingerprint: &str) -> Result<bool, StoreError> {
        let _guard = self
            .certificate_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let removed = self
            .certificates
            .remove(certificate_key(user, fingerprint))?
            .is_some();
        self.flush()?;
        Ok(removed)
    }

    /// Removes all of `user`'s certificates; durable when it returns.
    pub fn remove_all_certificates(&self, user: &str) -> Result<u32, StoreError> {
        let _guard = self
            .certificate_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut removed = 0;
        for item in self.certificates.scan_prefix(user_prefix(user)) {
            let (key, _) = item?;
            if self.certificates.remove(key)?.is_some() {
                removed += 1;
            }
        }
        self.flush()?;
        Ok(removed)
    }

    /// Records a successful use (not flushed: losing it costs nothing).
    pub fn touch_certificate(
        &self,
        user: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let key = certificate_key(user, fingerprint);
        self.certificates.fetch_and_update(&key, |old| {
            let old = old?;
            let mut record: CertificateRecord = serde_json::from_slice(old).ok()?;
            record.last_used = now;
            Some(encode(&record))
        })?;
        Ok(())
    }

    // ---- rate limits ----

    /// Counts one event for `key` in the current one-minute window and
    /// returns the count including it.
    pub fn count_event(&self, key: &str, now: u64) -> Result<u32, StoreError> {
        let updated = self.rate_windows.update_and_fetch(key.as_bytes(), |old| {
            let mut window: Window = old
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            if now >= window.start + RATE_WINDOW_SECS || now < window.start {
                window = Window {
                    start: now,
                    count: 0,
                };
            }
            window.count = window.count.saturating_add(1);
            Some(encode(&window))
        })?;
        let window: Window = match updated {
            Some(bytes) => decode("rate_windows", &bytes)?,
            None => Window::default(),
        };
        Ok(window.count)
    }

    // ---- failures and lockout ----

    pub fn failures_of(&self, user: &str) -> Result<FailureRecord, StoreError> {
        match self.failures.get(user.as_bytes())? {
            Some(bytes) => decode("failures", &bytes),
            None => Ok(FailureRecord::default()),
        }
    }

    /// Counts a failed verification; locks the user for `lockout_secs`
    /// when the count reaches `max` (0 = never lock).
    pub fn record_failure(
        &self,
        user: &str,
        now: u64,
        max: u32,
        lockout_secs: u64,
    ) -> Result<FailureRecord, StoreError> {
        let updated = self.failures.update_and_fetch(user.as_bytes(), |old| {
            let mut record: FailureRecord = old
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            if record.locked_until != 0 && now >= record.locked_until {
                // A served lockout starts the count afresh.
                record = FailureRecord::default();
            }
            record.consecutive = record.consecutive.saturating_add(1);
            record.last_failure = now;
            if max > 0 && record.consecutive >= max && record.locked_until <= now {
                record.locked_until = now + lockout_secs;
            }
            Some(encode(&record))
        })?;
        match updated {
            Some(bytes) => decode("failures", &bytes),
            None => Ok(FailureRecord::default()),
        }
    }

    pub fn clear_failures(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self.failures.remove(user.as_bytes())?.is_some())
    }

    /// Forgets rate windows that ended and failure records long unused.
    pub fn prune_counters(&self, now: u64) -> Result<(), StoreError> {
        for item in self.rate_windows.iter() {
            let (key, value) = item?;
            let stale = serde_json::from_slice::<Window>(&value)
                .map(|w| now >= w.start + RATE_WINDOW_SECS)
                .unwrap_or(true);
            if stale {
                self.rate_windows.remove(key)?;
            }
        }
        for item in self.failures.iter() {
            let (key, value) = item?;
            let stale = serde_json::from_slice::<FailureRecord>(&value)
                .map(|f| f.locked_until <= now && now >= f.last_failure + FAILURE_MEMORY_SECS)
                .unwrap_or(true);
            if stale {
                self.failures.remove(key)?;
            }
        }
        Ok(())
    }

    // ---- status ----

    pub fn counts(&self, now: u64) -> Result<StoreCounts, StoreError> {
        let mut users = std::collections::BTreeSet::new();
        let mut certificates = 0;
        for item in self.certificates.iter() {
            let (key, _) = item?;
            users.insert(split_certificate_key(&key).0);
            certificates += 1;
        }
        let mut locked_users = 0;
        for item in self.failures.iter() {
            let (_, value) = item?;
            if decode::<FailureRecord>("failures", &value)?.locked_until > now {
                locked_users += 1;
            }
        }
        Ok(StoreCounts {
            users: users.len() as u64,
            certificates,
            locked_users,
            bytes_on_disk: self.db.size_on_disk()?,
        })
    }
}

pub struct StoreCounts {
    pub users: u64,
    pub certificates: u64,
    pub locked_users: u64,
    pub bytes_on_disk: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(user: &str, expires_at: u64) -> NonceRecord {
        NonceRecord {
            payload_sha256: vec![1; 32],
            user: user.into(),
            service: "sshd".into(),
            rhost: "".into(),
            expires_at,
        }
    }

    #[test]
    fn a_nonce_is_taken_once() {
        let store = Store::temporary().unwrap();
        store.insert_nonce(b"id1", &nonce("alice", 100)).unwrap();
        assert_eq!(store.outstanding_nonces(), 1);
        assert_eq!(store.take_nonce(b"id1").unwrap(), Some(nonce("alice", 100)));
        assert_eq!(store.take_nonce(b"id1").unwrap(), None);
        assert_eq!(store.outstanding_nonces(), 0);
    }

    #[test]
    fn concurrent_takers_get_the_nonce_exactly_once() {
        let store = std::sync::Arc::new(Store::temporary().unwrap());
        store.insert_nonce(b"id", &nonce("alice", 100)).unwrap();
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || store.take_nonce(b"id").unwrap().is_some())
            })
            .collect();
        let winners = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|&w| w)
            .count();
        assert_eq!(winners, 1);
    }

    #[test]
    fn expired_nonces_are_cleaned_up() {
        let store = Store::temporary().unwrap();
        store.insert_nonce(b"old", &nonce("a", 10)).unwrap();
        store.insert_nonce(b"new", &nonce("a", 1000)).unwrap();
        assert_eq!(store.remove_expired_nonces(10).unwrap(), 1);
        assert_eq!(store.outstanding_nonces(), 1);
        assert!(store.take_nonce(b"new").unwrap().is_some());
    }

    #[test]
    fn reopening_purges_outstanding_nonces_but_keeps_certificates() {
        let dir = tempdir();
        {
            let store = Store::open(&dir).unwrap();
            store
                .insert_nonce(b"id", &nonce("alice", u64::MAX))
                .unwrap();
            let record = CertificateRecord {
                pem: "pem".into(),
                label: "laptop".into(),
                enrolled_at: 1,
                last_used: 0,
            };
            assert_eq!(
                store.add_certificate("alice", "ff", &record, 8).unwrap(),
                AddOutcome::Added
            );
            store.flush().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.take_nonce(b"id").unwrap(), None);
        assert_eq!(store.certificates_of("alice").unwrap().len(), 1);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let mut bytes = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .unwrap();
        std::env::temp_dir().join(format!("ecpd-store-{}", u64::from_ne_bytes(bytes)))
    }

    #[test]
    fn certificate_bounds_and_duplicates() {
        let store = Store::temporary().unwrap();
        let record = CertificateRecord {
            pem: "p".into(),
            label: "l".into(),
            enrolled_at: 0,
            last_used: 0,
        };
        assert_eq!(
            store.add_certificate("alice", "aa", &record, 2).unwrap(),
            AddOutcome::Added
        );
        assert_eq!(
            store.add_certificate("alice", "aa", &record, 2).unwrap(),
            AddOutcome::Duplicate
        );
        assert_eq!(
            store.add_certificate("alice", "bb", &record, 2).unwrap(),
            AddOutcome::Added
        );
        assert_eq!(
            store.add_certificate("alice", "cc", &record, 2).unwrap(),
            AddOutcome::TooMany { max: 2 }
        );
        // A user whose name is a prefix of another's is kept apart.
        assert_eq!(
            store.add_certificate("alic", "aa", &record, 2).unwrap(),
            AddOutcome::Added
        );
        assert_eq!(store.certificates_of("alice").unwrap().len(), 2);
        assert_eq!(store.certificates_of("alic").unwrap().len(), 1);
        assert_eq!(store.remove_all_certificates("alice").unwrap(), 2);
        assert!(store.certificates_of("alice").unwrap().is_empty());
        assert_eq!(store.all_certificates().unwrap().len(), 1);
    }

    #[test]
    fn rate_window_counts_and_resets() {
        let store = Store::temporary().unwrap();
        assert_eq!(store.count_event("rhost\0a", 1000).unwrap(), 1);
        assert_eq!(store.count_event("rhost\0a", 1030).unwrap(), 2);
        assert_eq!(store.count_event("rhost\0b", 1030).unwrap(), 1);
        assert_eq!(store.count_event("rhost\0a", 1060).unwrap(), 1);
        store.prune_counters(1200).unwrap();
        assert_eq!(store.rate_windows.len(), 0);
    }

    #[test]
    fn failures_lock_and_a_served_lockout_restarts_the_count() {
        let store = Store::temporary().unwrap();
        for i in 1..3 {
            let f = store.record_failure("alice", 100, 3, 60).unwrap();
            assert_eq!((f.consecutive, f.locked_until), (i, 0));
        }
        let f = store.record_failure("alice", 100, 3, 60).unwrap();
        assert_eq!(f.locked_until, 160);
        let f = store.record_failure("alice", 161, 3, 60).unwrap();
        assert_eq!((f.consecutive, f.locked_until), (1, 0));
        assert!(store.clear_failures("alice").unwrap());
        assert_eq!(
            store.failures_of("alice").unwrap(),
            FailureRecord::default()
        );
    }
}
