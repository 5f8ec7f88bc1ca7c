//! Persistent state in sled: the enrolled certificates, those withdrawn
//! (revoked or retired) and their keys, the directory cache and the CRLs
//! seen.
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

/// A certificate that signs no more, kept so that what was renewed from
/// it can still be found (the cascade) and a renewal it signs is refused
/// by name rather than as an unknown key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub revoked_at: i64,
    pub pem: String,
    /// As it was while enrolled.
    #[serde(default)]
    pub renewed_from: String,
    /// Records from before this field were revocations.
    #[serde(default)]
    pub why: Withdrawn,
}

/// Why a certificate was withdrawn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Withdrawn {
    /// An admin named it.
    #[default]
    Revoked,
    /// Its holder retired it when it vouched for a successor
    /// (`--retire-old`). A revocation of it later still reaches what was
    /// renewed from it.
    Retired,
    /// It was renewed from this revoked certificate (fingerprint).
    RenewedFrom(String),
    /// It carries the key of this revoked certificate (fingerprint).
    SameKey(String),
}

/// A revoked key (by [`ecp_core::certificate::key_id`]): it signs for no
/// one, whatever certificate carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedKey {
    /// The withdrawn certificate that carried it first.
    pub user: String,
    pub fingerprint: String,
    pub revoked_at: i64,
}

/// One certificate a revocation withdrew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub user: String,
    pub fingerprint: String,
    pub why: Withdrawn,
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
    /// A renewal that adds a certificate may not take the user's last
    /// free place: that one is kept for an admin's enrollment.
    LastPlaceKept {
        max: usize,
    },
    /// The certificate's key was revoked.
    KeyRevoked(RevokedKey),
    /// The signer's key, which `retire` would withdraw, is enrolled for
    /// another user too.
    KeyShared {
        user: String,
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
    /// Withdrawn certificates by (user, fingerprint): revoked by an
    /// admin, or retired by a renewal (once per `renew_min_age_secs` per
    /// user at most), so this grows only as fast as people act.
    revoked: sled::Tree,
    /// The keys of withdrawn certificates, by key id: what every login
    /// checks, whichever source offers the key.
    revoked_keys: sled::Tree,
    /// Bookkeeping: how many revoked records were last indexed.
    meta: sled::Tree,
    /// Serialises enroll/revoke so the per-user bound cannot be raced.
    certificate_writes: Mutex<()>,
}

/// The `meta` key of the number of revoked records last indexed.
const INDEXED_REVOKED: &[u8] = b"indexed_revoked_records";

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

/// The key id of a stored certificate; None for a record that does not
/// parse (it could not sign either).
fn key_id_of_pem(pem: &str) -> Option<String> {
    ecp_core::certificate::parse_user_certificate_pem(pem.as_bytes())
        .ok()
        .map(|c| c.key_id())
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
        let store = Self {
            certificates: db.open_tree("certificates")?,
            crl_high_water: db.open_tree("crl_high_water")?,
            directory_cache: db.open_tree("directory_cache")?,
            revoked: db.open_tree("revoked")?,
            revoked_keys: db.open_tree("revoked_keys")?,
            meta: db.open_tree("meta")?,
            db,
            certificate_writes: Mutex::new(()),
        };
        store.index_revoked_keys()?;
        Ok(store)
    }

    /// Stores from before revoked keys were indexed kept only revoked
    /// certificates: index their keys, so an upgrade forgets no
    /// revocation. Done again whenever the number of revoked records is
    /// not the one last indexed (an interrupted first pass, or records an
    /// older version added after a downgrade); indexing is idempotent and
    /// the count is written last.
    fn index_revoked_keys(&self) -> Result<(), StoreError> {
        let records = self.revoked.len() as u64;
        let indexed = self
            .meta
            .get(INDEXED_REVOKED)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes);
        if indexed == Some(records) {
            return Ok(());
        }
        for item in self.revoked.iter() {
            let (key, value) = item?;
            let record: RevokedRecord = decode("revoked", &value)?;
            // A retirement for the same key as its successor kept the key
            // in use; every other withdrawal revoked it.
            if record.why == Withdrawn::Retired && !self.revoked_key_recorded(&record.pem)? {
                continue;
            }
            let (user, fingerprint) = split_certificate_key(&key);
            self.note_revoked_key(&record.pem, &user, &fingerprint, record.revoked_at)?;
        }
        self.flush()?;
        self.meta.insert(INDEXED_REVOKED, &records.to_be_bytes())?;
        self.flush()
    }

    /// Whether the key of `pem` is indexed as revoked.
    fn revoked_key_recorded(&self, pem: &str) -> Result<bool, StoreError> {
        Ok(match key_id_of_pem(pem) {
            Some(id) => self.revoked_keys.contains_key(id.as_bytes())?,
            None => false,
        })
    }

    /// Records the key of `pem` as revoked (the first record stays).
    fn note_revoked_key(
        &self,
        pem: &str,
        user: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let Some(id) = key_id_of_pem(pem) else {
            return Ok(None);
        };
        let record = RevokedKey {
            user: user.to_owned(),
            fingerprint: fingerprint.to_owned(),
            revoked_at: now,
        };
        // Compare-and-swap from nothing: an existing record is kept.
        let _ = self.revoked_keys.compare_and_swap(
            id.as_bytes(),
            None::<&[u8]>,
            Some(encode(&record)),
        )?;
        Ok(Some(id))
    }

    /// Whether the key with `key_id` was revoked, and with which
    /// certificate.
    pub fn revoked_key(&self, key_id: &str) -> Result<Option<RevokedKey>, StoreError> {
        self.revoked_keys
            .get(key_id.as_bytes())?
            .map(|v| decode("revoked_keys", &v))
            .transpose()
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

    /// Adds a certificate unless it is a duplicate, its key was revoked,
    /// or the user is at `max`; durable when it returns `Added`.
    pub fn add_certificate(
        &self,
        user: &str,
        fingerprint: &str,
        record: &CertificateRecord,
        max: usize,
    ) -> Result<AddOutcome, StoreError> {
        self.renew_certificate(user, fingerprint, record, max, 0, false)
    }

    /// Revokes `user`'s certificate `fingerprint` (enrolled, or retired
    /// earlier) and its key; with `follow_renewals`, also every
    /// certificate renewed from it, transitively; and every certificate,
    /// of any user, that carries one of those keys. Returns what was
    /// withdrawn now (a certificate revoked before is not listed again,
    /// but what came from it is followed), or None when `user` never had
    /// such a certificate. Durable when it returns.
    pub fn revoke_certificate(
        &self,
        user: &str,
        fingerprint: &str,
        follow_renewals: bool,
        now: i64,
    ) -> Result<Option<Vec<Revocation>>, StoreError> {
        let _guard = self
            .certificate_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = certificate_key(user, fingerprint);
        if !self.certificates.contains_key(&key)? && !self.revoked.contains_key(&key)? {
            return Ok(None);
        }
        let root = Revocation {
            user: user.to_owned(),
            fingerprint: fingerprint.to_owned(),
            why: Withdrawn::Revoked,
        };
        self.withdraw(vec![root], follow_renewals, now).map(Some)
    }

    /// Revokes every certificate `user` has enrolled (and so whatever
    /// was renewed from them, and their keys wherever they are
    /// enrolled); durable when it returns.
    pub fn revoke_all_certificates(
        &self,
        user: &str,
        now: i64,
    ) -> Result<Vec<Revocation>, StoreError> {
        let _guard = self
            .certificate_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let roots = records_of::<CertificateRecord>(&self.certificates, "certificates", user)?
            .into_iter()
            .map(|(fingerprint, _)| Revocation {
                user: user.to_owned(),
                fingerprint,
                why: Withdrawn::Revoked,
            })
            .collect();
        self.withdraw(roots, true, now)
    }

    /// Withdraws `roots` and what follows from them; the caller holds
    /// `certificate_writes`. Each key is recorded as revoked before its
    /// certificate leaves the enrolled tree, so a crash half-way leaves
    /// certificates that cannot sign, never a key that can.
    fn withdraw(
        &self,
        roots: Vec<Revocation>,
        follow_renewals: bool,
        now: i64,
    ) -> Result<Vec<Revocation>, StoreError> {
        let mut queue: std::collections::VecDeque<Revocation> = roots.into();
        let mut seen = std::collections::HashSet::new();
        let mut withdrawn = Vec::new();
        while let Some(next) = queue.pop_front() {
            if !seen.insert((next.user.clone(), next.fingerprint.clone())) {
                continue;
            }
            let key = certificate_key(&next.user, &next.fingerprint);
            let (pem, renewed_from, newly) = if let Some(value) = self.certificates.get(&key)? {
                let record: CertificateRecord = decode("certificates", &value)?;
                (record.pem, record.renewed_from, true)
            } else if let Some(value) = self.revoked.get(&key)? {
                let record: RevokedRecord = decode("revoked", &value)?;
                // A retired certificate becomes a revoked one; one
                // revoked before stays as it was.
                let newly = record.why == Withdrawn::Retired && next.why != Withdrawn::Retired;
                (record.pem, record.renewed_from, newly)
            } else {
                continue;
            };
            let key_id = self.note_revoked_key(&pem, &next.user, &next.fingerprint, now)?;
            if newly {
                self.move_to_withdrawn(&key, pem, renewed_from, next.why.clone(), now)?;
                withdrawn.push(next.clone());
            }
            if follow_renewals {
                for (successor, _) in self.renewed_from(&next.user, &next.fingerprint)? {
                    queue.push_back(Revocation {
                        user: next.user.clone(),
                        fingerprint: successor,
                        why: Withdrawn::RenewedFrom(next.fingerprint.clone()),
                    });
                }
            }
            if let Some(key_id) = key_id {
                for (user, fingerprint) in self.enrolled_with_key(&key_id)? {
                    queue.push_back(Revocation {
                        user,
                        fingerprint,
                        why: Withdrawn::SameKey(next.fingerprint.clone()),
                    });
                }
            }
        }
        self.flush()?;
        Ok(withdrawn)
    }

    /// Keeps the certificate at `key` as withdrawn (`why`, at `now`) and
    /// takes it out of the enrolled ones.
    fn move_to_withdrawn(
        &self,
        key: &[u8],
        pem: String,
        renewed_from: String,
        why: Withdrawn,
        now: i64,
    ) -> Result<(), StoreError> {
        let record = RevokedRecord {
            revoked_at: now,
            pem,
            renewed_from,
            why,
        };
        self.revoked.insert(key, encode(&record))?;
        self.certificates.remove(key)?;
        Ok(())
    }

    /// `user`'s certificates (enrolled or withdrawn) renewed from
    /// `fingerprint`, with whether each is still enrolled.
    fn renewed_from(
        &self,
        user: &str,
        fingerprint: &str,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        let enrolled = records_of::<CertificateRecord>(&self.certificates, "certificates", user)?
            .into_iter()
            .filter(|(_, r)| r.renewed_from == fingerprint)
            .map(|(fp, _)| (fp, true));
        let withdrawn = records_of::<RevokedRecord>(&self.revoked, "revoked", user)?
            .into_iter()
            .filter(|(_, r)| r.renewed_from == fingerprint)
            .map(|(fp, _)| (fp, false));
        Ok(enrolled.chain(withdrawn).collect())
    }

    /// Every enrolled (user, fingerprint) whose certificate carries the
    /// key `key_id`. A scan: revocations are rare and root's.
    fn enrolled_with_key(&self, key_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        for item in self.certificates.iter() {
            let (key, value) = item?;
            let record: CertificateRecord = decode("certificates", &value)?;
            if key_id_of_pem(&record.pem).as_deref() == Some(key_id) {
                found.push(split_certificate_key(&key));
            }
        }
        Ok(found)
    }

    /// `user`'s withdrawn certificates, by fingerprint.
    pub fn revoked_of(&self, user: &str) -> Result<Vec<(String, RevokedRecord)>, StoreError> {
        records_of(&self.revoked, "revoked", user)
    }

    /// Enrolls `record` as `user`'s certificate `fingerprint`; durable
    /// when it returns `Added`. Its key must not be revoked. For a
    /// renewal (`record.renewed_from` set), in the same step and under the
    /// same lock: the vouching certificate must still be enrolled exactly
    /// as `signer_enrolled_at` says and have no successor yet, and with
    /// `retire` it is withdrawn (with its key, so it cannot come back).
    /// The bound `max` counts the user's certificates after all of that,
    /// and a renewal that adds one may not take the last free place.
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
        let successor_key = key_id_of_pem(&record.pem);
        if let Some(id) = &successor_key {
            if let Some(revoked) = self.revoked_key(id)? {
                return Ok(AddOutcome::KeyRevoked(revoked));
            }
        }
        let held = records_of::<CertificateRecord>(&self.certificates, "certificates", user)?;
        let signer = &record.renewed_from;
        let mut retired = None;
        if !signer.is_empty() {
            match held.iter().find(|(fp, _)| fp == signer) {
                Some((_, r)) if r.enrolled_at == signer_enrolled_at => {}
                _ => return Ok(AddOutcome::SignerGone),
            }
            // Also a successor withdrawn since: a certificate vouches once.
            if let Some((successor, _)) = self.renewed_from(user, signer)?.into_iter().next() {
                return Ok(AddOutcome::SignerUsed { successor });
            }
            if retire {
                retired = self
                    .certificates
                    .get(certificate_key(user, signer))?
                    .map(|old| decode::<CertificateRecord>("certificates", &old))
                    .transpose()?;
            }
        }
        // A new certificate for the signer's own key (a token's key, say)
        // retires the old certificate only; the key stays in use.
        let signer_key = retired.as_ref().and_then(|old| key_id_of_pem(&old.pem));
        let same_key = signer_key.is_some() && signer_key == successor_key;
        // Retiring otherwise withdraws the signer's key: never another
        // user's certificate with it on the strength of this user's proof.
        if let (Some(id), false) = (&signer_key, same_key) {
            if let Some((other, _)) = self
                .enrolled_with_key(id)?
                .into_iter()
                .find(|(other, _)| other != user)
            {
                return Ok(AddOutcome::KeyShared { user: other });
            }
        }
        let after = held.len() - usize::from(retired.is_some()) + 1;
        if after > max {
            return Ok(AddOutcome::TooMany { max });
        }
        // Chained renewals (by a thief with a stolen key, say) must never
        // leave the admin unable to enroll: a renewal that adds a
        // certificate leaves one place free. Retiring the old one adds
        // nothing, so a user can always renew that way.
        if !signer.is_empty() && retired.is_none() && after >= max {
            return Ok(AddOutcome::LastPlaceKept { max });
        }
        // The successor first: a crash before the signer is retired
        // leaves both enrolled, never neither.
        self.certificates.insert(key, encode(record))?;
        if let Some(old) = retired {
            if same_key {
                self.move_to_withdrawn(
                    &certificate_key(user, signer),
                    old.pem,
                    old.renewed_from,
                    Withdrawn::Retired,
                    record.enrolled_at,
                )?;
            } else {
                let signer = Revocation {
                    user: user.to_owned(),
                    fingerprint: signer.clone(),
                    why: Withdrawn::Retired,
                };
                self.withdraw(vec![signer], false, record.enrolled_at)?;
            }
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
        assert_eq!(store.revoke_all_certificates("alice", 5).unwrap().len(), 2);
        assert!(store.certificates_of("alice").unwrap().is_empty());
        assert_eq!(store.all_certificates().unwrap().len(), 1);
    }

    #[test]
    fn revocations_from_before_key_ids_are_indexed_on_open() {
        let dir = tempdir();
        let key = ecp_core::keyfile::generate_signing_key();
        let user = ecp_core::UserName::parse("alice").unwrap();
        let pem = ecp_core::certificate::build_self_signed_certificate(&key, &user, 30).unwrap();
        {
            let store = Store::open(&dir).unwrap();
            // What an earlier version wrote for a revocation.
            let old = serde_json::json!({ "revoked_at": 7, "pem": pem });
            store
                .revoked
                .insert(certificate_key("alice", "ff"), old.to_string().as_bytes())
                .unwrap();
            store.revoked_keys.clear().unwrap();
            store.meta.clear().unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        let id = ecp_core::certificate::key_id(key.verifying_key());
        let revoked = store.revoked_key(&id).unwrap().unwrap();
        assert_eq!((revoked.user.as_str(), revoked.revoked_at), ("alice", 7));
        // Its key cannot come back.
        let record = CertificateRecord {
            pem,
            label: "again".into(),
            enrolled_at: 8,
            last_used: 0,
            renewed_from: String::new(),
        };
        assert!(matches!(
            store.add_certificate("alice", "ee", &record, 8).unwrap(),
            AddOutcome::KeyRevoked(_)
        ));
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
