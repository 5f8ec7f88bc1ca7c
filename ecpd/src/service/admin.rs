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

    /// The CAs and CRLs in force, for `ecpctl status` and `doctor`; root
    /// only (which CAs a host trusts and why its CRL failed to load are
    /// the admin's business).
    pub fn trust_report(
        &self,
        caller: &Caller,
    ) -> Result<ecp_core::bus::TrustReport, ServiceError> {
        self.authorize_root(caller, "ask which CAs this host trusts")?;
        let store = self.trust.current();
        Ok(ecp_core::bus::TrustReport {
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
        })
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
            AddOutcome::KeyRevoked(revoked) => {
                warn!(event = "enroll", user = %user, fingerprint = %fingerprint, outcome = "rejected", reason = "revoked key", revoked = %revoked.fingerprint);
                Err(ServiceError::KeyRevoked(describe_revoked_key(&revoked)))
            }
            // Only renewals name a signer, and only they keep a place free.
            AddOutcome::SignerGone
            | AddOutcome::SignerUsed { .. }
            | AddOutcome::LastPlaceKept { .. }
            | AddOutcome::KeyShared { .. } => Err(ServiceError::AlreadyEnrolled),
        }
    }

    /// Revokes `user`'s certificate `fingerprint` and its key, and (unless
    /// `keep_successors`) whatever was renewed from it; see
    /// [`Store::revoke_certificate`].
    pub fn revoke(
        &self,
        caller: &Caller,
        user: &str,
        fingerprint: &str,
        keep_successors: bool,
    ) -> Result<Vec<RevokedEntry>, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "revoke certificates")?;
        let fingerprint = normalize_fingerprint(fingerprint)?;
        let now = self.clock.now() as i64;
        let Some(revoked) =
            self.store
                .revoke_certificate(user.as_str(), &fingerprint, !keep_successors, now)?
        else {
            return Err(ServiceError::NotFound(format!(
                "user {user} has no certificate with fingerprint {fingerprint}"
            )));
        };
        Ok(self.report_revoked(revoked))
    }

    /// Revokes every certificate of `user`, and their keys.
    pub fn revoke_all(
        &self,
        caller: &Caller,
        user: &str,
    ) -> Result<Vec<RevokedEntry>, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_root(caller, "revoke certificates")?;
        let now = self.clock.now() as i64;
        let revoked = self.store.revoke_all_certificates(user.as_str(), now)?;
        Ok(self.report_revoked(revoked))
    }

    /// Logs each revocation and turns it into what the bus returns.
    fn report_revoked(&self, revoked: Vec<crate::store::Revocation>) -> Vec<RevokedEntry> {
        revoked
            .into_iter()
            .map(|r| {
                let (reason, from) = match r.why {
                    Withdrawn::Revoked | Withdrawn::Retired => ("revoked", String::new()),
                    Withdrawn::RenewedFrom(from) => ("renewed_from", from),
                    Withdrawn::SameKey(from) => ("same_key", from),
                };
                info!(event = "revoke", user = %r.user, fingerprint = %r.fingerprint, reason, from = %from, outcome = "revoked");
                RevokedEntry {
                    user: r.user,
                    fingerprint: r.fingerprint,
                    reason: reason.into(),
                    from,
                }
            })
            .collect()
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
                    renewed_from: record.renewed_from,
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

    #[test]
    fn revoking_a_certificate_revokes_what_was_renewed_from_it() {
        let f = fixture("");
        let first = f.first_fingerprint();
        // A thief with the key renews to a key of its own, and from that
        // to another.
        f.clock.advance(86_400);
        let (thief, thiefs) = f.successor("alice");
        renew_with(&f, &ROOT, "alice", &f.key, &thiefs, false).unwrap();
        f.clock.advance(86_400);
        let (thief2, thiefs2) = f.successor("alice");
        renew_with(&f, &ROOT, "alice", &thief, &thiefs2, false).unwrap();
        let listed = f.service.list(&ROOT, "alice").unwrap();
        let second = listed
            .iter()
            .find(|e| e.fingerprint == fingerprint_of(&thiefs))
            .unwrap();
        assert_eq!(second.renewed_from, first);

        let revoked = f.service.revoke(&ROOT, "alice", &first, false).unwrap();
        let reasons: Vec<_> = revoked
            .iter()
            .map(|r| (r.fingerprint.clone(), r.reason.as_str(), r.from.clone()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (first.clone(), "revoked", String::new()),
                (fingerprint_of(&thiefs), "renewed_from", first.clone()),
                (
                    fingerprint_of(&thiefs2),
                    "renewed_from",
                    fingerprint_of(&thiefs)
                ),
            ]
        );
        for key in [&f.key, &thief, &thief2] {
            assert!(login_with(&f, "alice", key).is_err());
        }
        // Again: nothing new, and no error.
        assert!(f
            .service
            .revoke(&ROOT, "alice", &first, false)
            .unwrap()
            .is_empty());
        assert!(matches!(
            f.service.revoke(&ROOT, "alice", &"ab".repeat(32), false),
            Err(ServiceError::NotFound(_))
        ));
    }

    #[test]
    fn keeping_successors_is_explicit_and_a_retired_link_still_leads_on() {
        // The admin who knows the renewal was the holder's own keeps it.
        let f = fixture("");
        let first = f.first_fingerprint();
        f.clock.advance(86_400);
        let (next, nexts) = f.successor("alice");
        renew_with(&f, &ROOT, "alice", &f.key, &nexts, false).unwrap();
        let revoked = f.service.revoke(&ROOT, "alice", &first, true).unwrap();
        assert_eq!(revoked.len(), 1);
        assert!(login_with(&f, "alice", &next).is_ok());
        assert!(login_with(&f, "alice", &f.key).is_err());

        // A thief who retired the stolen certificate in its renewal: the
        // retired certificate can still be named, and its successor goes.
        let f = fixture("");
        let first = f.first_fingerprint();
        f.clock.advance(86_400);
        let (thief, thiefs) = f.successor("alice");
        renew_with(&f, &ROOT, "alice", &f.key, &thiefs, true).unwrap();
        assert!(f.service.list(&ROOT, "alice").unwrap().len() == 1);
        let revoked = f.service.revoke(&ROOT, "alice", &first, false).unwrap();
        assert_eq!(revoked.len(), 2, "{revoked:?}");
        assert!(login_with(&f, "alice", &thief).is_err());
    }

    #[test]
    fn a_revoked_key_cannot_be_enrolled_again_for_anyone() {
        let f = fixture("");
        let first = f.first_fingerprint();
        f.service.revoke(&ROOT, "alice", &first, false).unwrap();
        for user in ["alice", "bob"] {
            let again = f.certificate_for(&f.key, user, 30);
            assert!(matches!(
                f.service.enroll(&ROOT, user, &again, "again"),
                Err(ServiceError::KeyRevoked(m)) if m.contains(&first)
            ));
        }
    }

    #[test]
    fn revoke_all_revokes_the_same_key_wherever_it_is_enrolled() {
        let f = fixture("");
        // The same key enrolled for a second account.
        f.service
            .enroll(
                &ROOT,
                "alice-admin",
                &f.certificate_for(&f.key, "alice-admin", 30),
                "",
            )
            .unwrap();
        let revoked = f.service.revoke_all(&ROOT, "alice").unwrap();
        assert_eq!(revoked.len(), 2, "{revoked:?}");
        assert_eq!(revoked[1].user, "alice-admin");
        assert_eq!(revoked[1].reason, "same_key");
        assert!(login_with(&f, "alice-admin", &f.key).is_err());
    }

    #[test]
    fn a_renewal_for_the_stolen_key_itself_dies_with_it() {
        // The reproduced attack: `renew --cert samekey.pem`, a new 30-day
        // certificate for the same key, then the admin revokes the stolen
        // certificate, even keeping successors: the key logs in no more.
        let f = fixture("");
        let first = f.first_fingerprint();
        f.clock.advance(86_400);
        let same = f.certificate_for(&f.key, "alice", 30);
        renew_with(&f, &ROOT, "alice", &f.key, &same, false).unwrap();
        let revoked = f.service.revoke(&ROOT, "alice", &first, true).unwrap();
        assert_eq!(revoked.len(), 2, "{revoked:?}");
        assert_eq!(
            (revoked[1].reason.as_str(), revoked[1].from.as_str()),
            ("same_key", first.as_str())
        );
        assert!(login_with(&f, "alice", &f.key).is_err());
        assert!(f.service.list(&ROOT, "alice").unwrap().is_empty());
    }

    #[test]
    fn which_cas_are_trusted_is_roots_to_ask() {
        let f = fixture("");
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(matches!(
            f.service.trust_report(&bob),
            Err(ServiceError::AccessDenied(_))
        ));
        assert!(!f.service.trust_report(&ROOT).unwrap().configured);
    }
}
