//! Persistent state in sled: the enrolled certificates, nothing else.
//!
//! Challenges, used nonces and throttling counters live in memory (see
//! `tokens` and `throttle`): a challenge is its own record under a MAC key
//! made afresh at every start, so none of it needs to outlive the process,
//! and an outsider's requests never cost a write. Enrollments and
//! revocations are flushed before they are acknowledged; in sled 0.34.7
//! `flush` ends in `File::sync_all`, so an acknowledged change survives a
//! crash. Writes between flushes (a certificate's `last_used`) may not,
//! which costs nothing.

use std::path::Path;
use std::sync::Mutex;

use ecp_core::trust::CrlMark;
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
    /// The fingerprint of the certificate whose key vouched for this one
    /// (`ecpctl renew`); empty when an admin enrolled it.
    #[serde(default)]
    pub renewed_from: String,
}

/// A certificate an admin revoked, kept so that a renewal it signs is
/// refused by name rather than as an unknown key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub revoked_at: i64,
    pub pem: String,
}

/// A directory answer for one user: the certificate values (DER) and when
/// they were fetched (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLookup {
    pub fetched_at: u64,
    pub certificates: Vec<Vec<u8>>,
}

/// Why a certificate could not be added.
#[derive(Debug, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    Duplicate,
    TooMany {
        max: usize,
    },
    /// The certificate that vouched for a renewal was revoked (or
    /// retired) while the renewal was being checked.
    SignerGone,
    /// The certificate that vouched already has a successor.
    SignerUsed {
        successor: String,
    },
}

pub struct Store {
    db: sled::Db,
    certificates: sled::Tree,
    /// The newest CRL seen of each organisation CA (by CA fingerprint), so
    /// that an older one is refused even after a restart.
    crl_high_water: sled::Tree,
    /// The last good directory answer for each user, with its time.
    directory_cache: sled::Tree,
    /// When each revoked certificate was revoked (user, fingerprint), so
    /// that a renewal signed by one is refused by name. Revocations are
    /// root's acts, so this grows only as fast as an admin works.
    revoked: sled::Tree,
    /// Serialises enroll/revoke so the per-user bound cannot be raced.
    certificate_writes: Mutex<()>,
}

/// sled page cache size.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// Trees earlier versions kept (stored challenges, rate windows, failure
/// counters); dropped when found.
const RETIRED_TREES: [&str; 3] = ["nonces", "rate_windows", "failures"];

/// `user`'s records in a tree keyed by (user, fingerprint).
fn records_of<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    user: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    tree.scan_prefix(user_prefix(user))
        .map(|item| {
            let (key, value) = item?;
            let (_, fingerprint) = split_certificate_key(&key);
            Ok((fingerprint, decode(name, &value)?))
        })
        .collect()
}

/// Unix seconds now, for the revocation record (the admin's clock).
fn now_secs() -> i64 {
    ecp_core::when::unix_now()
}

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
    /// Opens (or creates) the store at `path`, dropping what earlier
    /// versions kept besides certificates.
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
        let mut dropped = false;
        for name in RETIRED_TREES {
            // false when there is no such tree: nothing to do.
            dropped |= db.drop_tree(name)?;
        }
        if dropped {
            db.flush()?;
        }
        Ok(Self {
            certificates: db.open_tree("certificates")?,
            crl_high_water: db.open_tree("crl_high_water")?,
            directory_cache: db.open_tree("directory_cache")?,
            revoked: db.open_tree("revoked")?,
            db,
            certificate_writes: Mutex::new(()),
        })
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    // ---- CRLs ----

    /// The newest CRL recorded for the CA with `ca_fingerprint`.
    pub fn crl_high_water(&self, ca_fingerprint: &str) -> Result<Option<CrlMark>, StoreError> {
        self.crl_high_water
            .get(ca_fingerprint.as_bytes())?
            .map(|v| decode("crl_high_water", &v))
            .transpose()
    }

    /// Records `mark` for the CA if it is newer than what is recorded;
    /// durable when it returns.
    pub fn raise_crl_high_water(
        &self,
        ca_fingerprint: &str,
        mark: &CrlMark,
    ) -> Result<(), StoreError> {
        let newer = match self.crl_high_water(ca_fingerprint)? {
            Some(held) => mark.is_after(&held),
            None => true,
        };
        if newer {
            self.crl_high_water
                .insert(ca_fingerprint.as_bytes(), encode(mark))?;
            self.db.flush()?;
        }
        Ok(())
    }

    // ---- directory cache ----

    /// The cached directory answer for `user`.
    pub fn cached_lookup(&self, user: &str) -> Result<Option<CachedLookup>, StoreError> {
        self.directory_cache
            .get(user.as_bytes())?
            .map(|v| decode("directory_cache", &v))
            .transpose()
    }

    /// Replaces `user`'s cached answer (only a complete answer from a
    /// working directory gets here).
    pub fn cache_lookup(&self, user: &str, lookup: &CachedLookup) -> Result<(), StoreError> {
        self.directory_cache
            .insert(user.as_bytes(), encode(lookup))?;
        Ok(())
    }

    /// Drops `user`'s cached answer, or every one; returns how many.
    pub fn flush_lookups(&self, user: Option<&str>) -> Result<u64, StoreError> {
        match user {
            Some(user) => Ok(u64::from(
                self.directory_cache.remove(user.as_bytes())?.is_some(),
            )),
            None => {
                let n = self.directory_cache.len() as u64;
                self.directory_cache.clear()?;
                Ok(n)
            }
        }
    }

    /// (entries, oldest fetch time) of the directory cache.
    pub fn lookup_cache_summary(&self) -> Result<(u64, Option<u64>), StoreError> {
        let mut oldest: Option<u64> = None;
        let mut count = 0;
        for item in self.directory_cache.iter() {
            let (_, value) = item?;
            let cached: CachedLookup = decode("directory_cache", &value)?;
            oldest = Some(oldest.map_or(cached.fetched_at, |o| o.min(cached.fetched_at)));
            count += 1;
        }
        Ok((count, oldest))
    }

    // ---- certificates ----

    pub fn certificates_of(
        &self,
        user: &str,
    ) -> Result<Vec<(String, CertificateRecord)>, StoreError> {
        records_of(&self.certificates, "certificates", user)
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
        self.renew_certificate(user, fingerprint, record, max, 0, false)
    }

    /// Removes one certificate; durable when it returns true.
    pub fn remove_certificate(&self, user: &str, fingerprint: &str) -> Result<bool, StoreError> {
        let _guard = self
            .certificate_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = certificate_key(user, fingerprint);
        let removed = self.certificates.remove(&key)?;
        if let Some(old) = &removed {
            self.record_revoked(key, old)?;
        }
        self.flush()?;
        Ok(removed.is_some())
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
            if let Some(old) = self.certificates.remove(&key)? {
                self.record_revoked(key, &old)?;
                removed += 1;
            }
        }
        self.flush()?;
        Ok(removed)
    }

    fn record_revoked(&self, key: impl AsRef<[u8]>, old: &sled::IVec) -> Result<(), StoreError> {
        let old: CertificateRecord = decode("certificates", old)?;
        let record = RevokedRecord {
            revoked_at: now_secs(),
            pem: old.pem,
        };
        self.revoked.insert(key.as_ref(), encode(&record))?;
        Ok(())
    }

    /// `user`'s revoked certificates, by fingerprint.
    pub fn revoked_of(&self, user: &str) -> Result<Vec<(String, RevokedRecord)>, StoreError> {
        records_of(&self.revoked, "revoked", user)
    }

    /// Enrolls `record` as `user`'s certificate `fingerprint`; durable
    /// when it returns `Added`. For a renewal (`record.renewed_from` set),
    /// in the same step and under the same lock: the vouching certificate
    /// must still be enrolled exactly as `signer_enrolled_at` says and
    /// have no successor yet, and with `retire` it is removed (and kept in
    /// the revoked tree, so it cannot come back). The bound `max` counts
    /// the user's certificates after all of that.
    pub fn renew_certificate(
        &self,
        user: &str,
        fingerprint: &str,
        record: &CertificateRecord,
        max: usize,
        signer_enrolled_at: i64,
        retire: bool,
    ) -> Result<AddOutcome, StoreError> {
        let _guard = self
            .certificate_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = certificate_key(user, fingerprint);
        if self.certificates.contains_key(&key)? {
            return Ok(AddOutcome::Duplicate);
        }
        let held = records_of::<CertificateRecord>(&self.certificates, "certificates", user)?;
        let signer = &record.renewed_from;
        let mut retired = None;
        if !signer.is_empty() {
            match held.iter().find(|(fp, _)| fp == signer) {
                Some((_, r)) if r.enrolled_at == signer_enrolled_at => {}
                _ => return Ok(AddOutcome::SignerGone),
            }
            if let Some((successor, _)) = held.iter().find(|(_, r)| r.renewed_from == *signer) {
                return Ok(AddOutcome::SignerUsed {
                    successor: successor.clone(),
                });
            }
            if retire {
                retired = self.certificates.get(certificate_key(user, signer))?;
            }
        }
        if held.len() - usize::from(retired.is_some()) >= max {
            return Ok(AddOutcome::TooMany { max });
        }
        let mut batch = sled::Batch::default();
        batch.insert(key, encode(record));
        if retired.is_some() {
            batch.remove(certificate_key(user, signer));
        }
        self.certificates.apply_batch(batch)?;
        if let Some(old) = &retired {
            self.record_revoked(certificate_key(user, signer), old)?;
        }
        self.flush()?;
        Ok(AddOutcome::Added)
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

    // ---- status ----

    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let mut users = std::collections::BTreeSet::new();
        let mut certificates = 0;
        for item in self.certificates.iter() {
            let (key, _) = item?;
            users.insert(split_certificate_key(&key).0);
            certificates += 1;
        }
        Ok(StoreCounts {
            users: users.len() as u64,
            certificates,
            bytes_on_disk: self.db.size_on_disk()?,
        })
    }
}

pub struct StoreCounts {
    pub users: u64,
    pub certificates: u64,
    pub bytes_on_disk: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_keeps_certificates_and_drops_retired_trees() {
        let dir = tempdir();
        {
            let store = Store::open(&dir).unwrap();
            // What an earlier version left behind.
            store
                .db
                .open_tree("nonces")
                .unwrap()
                .insert(b"id", b"record".to_vec())
                .unwrap();
            let record = CertificateRecord {
                pem: "pem".into(),
                label: "laptop".into(),
                enrolled_at: 1,
                last_used: 0,
                renewed_from: String::new(),
            };
            assert_eq!(
                store.add_certificate("alice", "ff", &record, 8).unwrap(),
                AddOutcome::Added
            );
            store.flush().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert!(!store
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == b"nonces"));
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
            renewed_from: String::new(),
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
}
