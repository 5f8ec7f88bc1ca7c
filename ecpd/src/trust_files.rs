//! `ca_file` and `crl_file`: read at start, re-read when either changes
//! (checked every few seconds, and on SIGHUP), and swapped in whole. A
//! file that cannot be read or checked leaves the last good set in place:
//! the CAs as they were, and the CRLs only until their nextUpdate (the
//! decision refuses a CA's certificates once its CRL is out of date).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use ecp_core::trust::{parse_ca_file, parse_crl_file, TrustError, TrustStore, MAX_TRUST_FILE_LEN};
use tracing::{error, info, warn};

use crate::config::Config;

/// What identifies one version of a file: inode, size and change time, so
/// that an atomic replace (rename) and an edit in place are both seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    changed_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        len: meta.len(),
        // ctime, which no one can set back (mtime can be).
        changed_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    })
}

/// Why the trust files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustFileError {
    #[error("{path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path}: {error}")]
    Invalid { path: String, error: TrustError },
}

/// A check a freshly read set must pass before it is put in force (the
/// service checks CRLs against the newest ones it has recorded).
pub type Acceptance = Box<dyn Fn(&TrustStore) -> Result<(), TrustError> + Send + Sync>;

pub struct TrustFiles {
    accept: Acceptance,
    ca_file: Option<PathBuf>,
    crl_file: Option<PathBuf>,
    seen: Mutex<(Option<Stamp>, Option<Stamp>)>,
    current: RwLock<Arc<TrustStore>>,
    /// Why the last read failed; empty after a good one.
    problem: Mutex<String>,
}

/// Reads a trust file, which decides who may log in as anyone: it must
/// belong to root (or to ecpd's own account) and be writable by no one
/// else. Symbolic links are followed (the file may be distributed).
fn read_bounded(path: &Path) -> Result<Vec<u8>, TrustFileError> {
    let unreadable = |detail: String| TrustFileError::Read {
        path: path.display().to_string(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let meta = file.metadata().map_err(|e| unreadable(e.to_string()))?;
    let own = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != own {
        return Err(unreadable(format!(
            "owned by uid {}; it must belong to root",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unreadable(format!(
            "mode {:o} lets others write it; chmod go-w",
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TRUST_FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() > MAX_TRUST_FILE_LEN {
        return Err(unreadable(format!(
            "larger than {MAX_TRUST_FILE_LEN} bytes"
        )));
    }
    Ok(bytes)
}

impl TrustFiles {
    /// Reads the files named in `config`. A CA file that cannot be used is
    /// an error (ecpd does not start on it); a CRL file that cannot be used
    /// is logged and leaves no CRL loaded, so with `require_crl` that CA's
    /// certificates are refused until a good one is in place.
    pub fn load(config: &Config, accept: Acceptance) -> Result<TrustFiles, TrustFileError> {
        let files = TrustFiles {
            accept,
            ca_file: config.ca_file.clone(),
            crl_file: config.crl_file.clone(),
            seen: Mutex::new((None, None)),
            current: RwLock::new(Arc::new(TrustStore::default())),
            problem: Mutex::new(String::new()),
        };
        if files.ca_file.is_some() {
            let stamps = files.stamps();
            let checked = files.read().and_then(|store| {
                (files.accept)(&store)
                    .map(|()| store)
                    .map_err(|error| TrustFileError::Invalid {
                        path: files.crl_path(),
                        error,
                    })
            });
            let store = match checked {
                Ok(store) => store,
                Err(e) if files.is_crl_error(&e) => {
                    error!(event = "trust", outcome = "failed", reason = ?e.to_string(), "no CRL is loaded");
                    *files.problem.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
                    TrustStore::new(files.read_cas()?, Vec::new())
                        .map_err(|error| TrustFileError::Invalid {
                            path: files.ca_path(),
                            error,
                        })?
                        .0
                }
                Err(e) => return Err(e),
            };
            files.log_loaded(&store);
            *files.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(store);
            *files.seen.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        }
        Ok(files)
    }

    /// Whether any CA is configured (then every account needs a signature).
    pub fn is_configured(&self) -> bool {
        self.ca_file.is_some()
    }

    /// Why the last read failed ("" after a good one).
    pub fn problem(&self) -> String {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<TrustStore> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the files if either changed since last read (or always,
    /// with `force`, for SIGHUP). Returns whether a new set is in force.
    pub fn refresh(&self, force: bool) -> bool {
        if self.ca_file.is_none() {
            return false;
        }
        let stamps = self.stamps();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == stamps {
                return false;
            }
            // Remembered even when the read fails: a broken file is
            // reported once, not every few seconds, until it changes.
            *seen = stamps;
        }
        // A CRL older than the one in force is a replay (an old list from
        // before a revocation): refused like a broken file.
        let read = self.read().and_then(|store| {
            store
                .check_not_rolled_back(&self.current())
                .and_then(|()| (self.accept)(&store))
                .map(|()| store)
                .map_err(|error| TrustFileError::Invalid {
                    path: self.crl_path(),
                    error,
                })
        });
        match read {
            Ok(store) => {
                self.log_loaded(&store);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(store);
                self.problem
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                true
            }
            Err(e) => {
                *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
                error!(event = "trust", outcome = "failed", reason = ?e.to_string(), "keeping the CAs and CRLs loaded before; an out-of-date CRL still refuses its CA's certificates");
                false
            }
        }
    }

    fn stamps(&self) -> (Option<Stamp>, Option<Stamp>) {
        (
            self.ca_file.as_deref().and_then(stamp),
            self.crl_file.as_deref().and_then(stamp),
        )
    }

    fn ca_path(&self) -> String {
        self.ca_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    fn crl_path(&self) -> String {
        self.crl_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    fn is_crl_error(&self, error: &TrustFileError) -> bool {
        let crl = self.crl_path();
        match error {
            TrustFileError::Read { path, .. } | TrustFileError::Invalid { path, .. } => {
                *path == crl
            }
        }
    }

    fn read_cas(&self) -> Result<Vec<ecp_core::trust::TrustedCa>, TrustFileError> {
        let Some(path) = &self.ca_file else {
            return Ok(Vec::new());
        };
        parse_ca_file(&read_bounded(path)?).map_err(|error| TrustFileError::Invalid {
            path: path.display().to_string(),
            error,
        })
    }

    fn read(&self) -> Result<TrustStore, TrustFileError> {
        let cas = self.read_cas()?;
        let crls = match &self.crl_file {
            None => Vec::new(),
            Some(path) => {
                parse_crl_file(&read_bounded(path)?).map_err(|error| TrustFileError::Invalid {
                    path: path.display().to_string(),
                    error,
                })?
            }
        };
        let (store, unused) = TrustStore::new(cas, crls).map_err(|error| {
            TrustFileError::Invalid {
                // A CRL that does not fit the CAs is the CRL file's fault.
                path: self.crl_path(),
                error,
            }
        })?;
        for crl in unused {
            warn!(event = "trust", crl_issuer = ?crl.issuer, outcome = "ignored", "a CRL of a CA that is not in ca_file");
        }
        Ok(store)
    }

    fn log_loaded(&self, store: &TrustStore) {
        for (ca, crl) in store.crls() {
            match crl {
                Some(crl) => {
                    info!(event = "trust", ca = %ca.subject, fingerprint = %ca.fingerprint, crl_this_update = crl.this_update, crl_next_update = crl.next_update.unwrap_or(0), outcome = "loaded")
                }
                None => {
                    info!(event = "trust", ca = %ca.subject, fingerprint = %ca.fingerprint, outcome = "loaded", "no CRL")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_trust_file_others_can_write_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let config = Config {
            ca_file: Some(path.clone()),
            ..Config::default()
        };
        let any = || -> Acceptance { Box::new(|_| Ok(())) };
        let err = TrustFiles::load(&config, any()).err().unwrap().to_string();
        assert!(err.contains("lets others write it"), "{err}");
        // Made private, it is read (and found not to be a CA file).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = TrustFiles::load(&config, any()).err().unwrap().to_string();
        assert!(!err.contains("lets others write it"), "{err}");
    }
}
