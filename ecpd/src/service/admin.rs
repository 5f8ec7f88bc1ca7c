//! Administration: enrollment, revocation, listing, unlocking, status,
//! cleanup and the trust files.

use super::*;

/// Accepts `ab:CD:…` or plain hex; returns 64 lowercase hex digits.
fn normalize_fingerprint(raw: &str) -> Result<String, ServiceError> {
    let hex: String = raw
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::InvalidArgument(
            "a fingerprint is 64 hex digits (SHA-256), as `ecpctl list` shows".into(),
        ));
    }
    Ok(hex)
}

impl Service {
    /// Re-reads `ca_file` and `crl_file` if they changed (always, with
    /// `force`); true when a new set is in force.
    pub fn refresh_trust(&self, force: bool) -> bool {
        let changed = self.trust.refresh(force);
        if changed {
            record_crl_marks(&self.store, &self.trust.current());
        }
        changed
    }

    /// The CAs and CRLs in force, for `ecpctl status` and `doctor`.
    pub fn trust_report(&self) -> ecp_core::bus::TrustReport {
        let store = self.trust.current();
        ecp_core::bus::TrustReport {
            configured: self.trust.is_configured(),
            cas: store
                .crls()
                .map(|(ca, crl)| ecp_core::bus::TrustedCaEntry {
                    subject: ca.subject.clone(),
                    fingerprint: ca.fingerprint.clone(),
                    not_before: ca.not_before,
                    not_after: ca.not_after,
                    crl_this_update: crl.map_or(0, |c| c.this_update),
                    crl_next_update: crl.and_then(|c| c.next_update).unwrap_or(0),
                })
                .collect(),
            problem: self.trust.problem(),
        }
    }

    pub fn enroll(
        &self,
        caller: &Caller,
        user: &str,
        pem: &str,
        label: &str,
    ) -> Result<String, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "enroll certificates")?;
        let label = check_label(label)?;
        let now = self.clock.now() as i64;
        let cert = validate_certificate(pem.as_bytes(), &user, now, self.skew()).map_err(|e| {
            warn!(event = "enroll", user = %user, outcome = "rejected", reason = %e);
            ServiceError::CertificateRejected(e)
        })?;
        let fingerprint = cert.fingerprint();
        let record = CertificateRecord {
            pem: cert.to_pem(),
            label: label.clone(),
            enrolled_at: now,
            last_used: 0,
            renewed_from: String::new(),
        };
        match self.store.add_certificate(
            user.as_str(),
            &fingerprint,
            &record,
            self.config.max_certificates_per_user,
        )? {
            AddOutcome::Added => {
                info!(event = "enroll", user = %user, fingerprint = %fingerprint, label = %label, outcome = "enrolled");
                Ok(fingerprint)
            }
            AddOutcome::Duplicate => Err(ServiceError::AlreadyEnrolled),
            AddOutcome::TooMany { max } => Err(ServiceError::TooManyCertificates { max }),
            // Only renewals name a signer.
            AddOutcome::SignerGone | AddOutcome::SignerUsed { .. } => {
                Err(ServiceError::AlreadyEnrolled)
            }
        }
    }

    pub fn revoke(
        &self,
        caller: &Caller,
        user: &str,
        fingerprint: &str,
    ) -> Result<u32, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "revoke certificates")?;
        let fingerprint = normalize_fingerprint(fingerprint)?;
        if !self.store.remove_certificate(user.as_str(), &fingerprint)? {
            return Err(ServiceError::NotFound(format!(
                "user {user} has no certificate with fingerprint {fingerprint}"
            )));
        }
        info!(event = "revoke", user = %user, fingerprint = %fingerprint, outcome = "revoked");
        Ok(1)
    }

    pub fn revoke_all(&self, caller: &Caller, user: &str) -> Result<u32, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "revoke certificates")?;
        let removed = self.store.remove_all_certificates(user.as_str())?;
        info!(event = "revoke", user = %user, count = removed, outcome = "revoked_all");
        Ok(removed)
    }

    pub fn list(&self, caller: &Caller, user: &str) -> Result<Vec<CertificateEntry>, ServiceError> {
        let rows = if user.is_empty() {
            self.authorize_root(caller, "list every user's certificates")?;
            self.store.all_certificates()?
        } else {
            let user = parse_user(user)?;
            self.authorize_self_or_root(caller, &user, "list certificates")?;
            self.store
                .certificates_of(user.as_str())?
                .into_iter()
                .map(|(fp, record)| (user.to_string(), fp, record))
                .collect()
        };
        Ok(rows
            .into_iter()
            .map(|(user, fingerprint, record)| {
                let (not_before, not_after) = parse_certificate_pem(record.pem.as_bytes())
                    .map(|c| (c.not_before(), c.not_after()))
                    .unwrap_or((0, 0));
                CertificateEntry {
                    user,
                    label: record.label,
                    fingerprint,
                    not_before,
                    not_after,
                    enrolled_at: record.enrolled_at,
                    last_used: record.last_used,
                }
            })
            .collect())
    }

    /// Clears the user's failures and waits, from every source.
    pub fn unlock(&self, caller: &Caller, user: &str) -> Result<(), ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "unlock users")?;
        let sources = self.throttle.clear_user(&user);
        info!(event = "unlock", user = %user, sources, outcome = "unlocked");
        Ok(())
    }

    /// Root learns the counts; anyone else only the version, so that no
    /// local user learns how many accounts use ecp or are under attack.
    pub fn status(&self, caller: &Caller) -> Result<DaemonStatus, ServiceError> {
        let version = env!("CARGO_PKG_VERSION").to_owned();
        if !caller.is_root() {
            return Ok(DaemonStatus {
                version,
                ..DaemonStatus::default()
            });
        }
        let now = self.clock.now();
        let counts = self.store.counts()?;
        Ok(DaemonStatus {
            version,
            host: self.host.to_string(),
            users: counts.users,
            certificates: counts.certificates,
            recent_challenges: self.recent.count(now, self.config.challenge_lifetime_secs),
            penalised_sources: self.throttle.penalised(now) as u64,
            store_bytes: counts.bytes_on_disk,
            uptime_secs: now.saturating_sub(self.started_at),
        })
    }

    pub fn cleanup(&self, caller: &Caller) -> Result<u64, ServiceError> {
        self.authorize_root(caller, "run a cleanup")?;
        self.periodic_cleanup()
    }

    /// Forgets used nonces whose tokens expired and counters that hold
    /// nothing any more; returns how many nonces were forgotten. Run on a
    /// timer too.
    pub fn periodic_cleanup(&self) -> Result<u64, ServiceError> {
        let now = self.clock.now();
        let forgotten = self.tokens.forget_expired(now) as u64;
        self.throttle.prune(now);
        if forgotten > 0 {
            debug!(event = "cleanup", forgotten, outcome = "done");
        }
        Ok(forgotten)
    }

    /// Sizes of the in-memory tables: used nonces, (user, source) pairs,
    /// remote sources. For tests and the bench.
    pub fn memory_tables(&self) -> (usize, usize, usize) {
        let (pairs, sources) = self.throttle.sizes();
        (self.tokens.used_count(), pairs, sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_support::*;

    #[test]
    fn unlock_clears_every_wait_of_the_user() {
        let f = fixture("failures_before_penalty = 1");
        for rhost in ["192.0.2.1", "192.0.2.2", ""] {
            let _ = f.bad_answer(rhost);
            let _ = f.bad_answer(rhost);
            assert!(f.challenge("alice", rhost).is_err());
        }
        assert_eq!(f.service.status(&ROOT).unwrap().penalised_sources, 3);
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(matches!(
            f.service.unlock(&bob, "alice"),
            Err(ServiceError::AccessDenied(_))
        ));
        f.service.unlock(&ROOT, "alice").unwrap();
        for rhost in ["192.0.2.1", "192.0.2.2", ""] {
            f.login(rhost).unwrap();
        }
    }

    #[test]
    fn status_tells_non_root_callers_the_version_only() {
        let f = fixture("");
        f.challenge("alice", "").unwrap();
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        let seen = f.service.status(&bob).unwrap();
        assert_eq!(seen.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            seen,
            DaemonStatus {
                version: seen.version.clone(),
                ..DaemonStatus::default()
            }
        );
        let full = f.service.status(&ROOT).unwrap();
        assert_eq!(
            (full.users, full.certificates, full.recent_challenges),
            (1, 1, 1)
        );
        assert_eq!(full.host, "h");
    }
}
