//! Self-service renewal: a user whose enrolled certificate still holds
//! gets a successor enrolled by proving possession of the current key.
//!
//! The proof is a signature over a renewal challenge: its own token
//! version and signing prefix (so no login signature is a proof, and no
//! proof logs anyone in), bound to the successor certificate's SHA-256 at
//! issue time. The certificate that signs must be enrolled, unexpired and
//! at least `renew_min_age_secs` old, so a stolen key cannot chain
//! renewals quickly; revoked ones are refused by name.

use ecp_core::challenge::RenewalChallenge;
use sha2::Digest as _;

use super::*;

/// PAM-service-like name renewal challenges carry.
const RENEWAL_SERVICE: &str = "ecp-renew";

/// What a renewal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub fingerprint: String,
    pub label: String,
    /// The certificate that signed, when `retire_old` removed it.
    pub retired: Option<String>,
}

/// The longest validity a successor may have left, as `ecpctl keygen`
/// allows: expiry must stay a control, whoever calls the bus.
const MAX_SUCCESSOR_SECS: i64 =
    ecp_core::certificate::MAX_VALIDITY_DAYS as i64 * ecp_core::when::SECONDS_PER_DAY;

/// How long before now a successor's notBefore may lie (beyond the clock
/// skew): keygen backdates by five minutes, and a user may make the
/// certificate a few minutes before renewing.
const SUCCESSOR_MAX_AGE_SECS: i64 = 15 * 60;

/// A refusal of the renewal, said to the caller as it is (it is the
/// user's own request: there is nothing to hide from them).
fn refused(why: impl Into<String>) -> ServiceError {
    ServiceError::RenewalRefused(why.into())
}

impl Service {
    /// The successor's certificate, checked as an enrollment would be,
    /// not longer-lived than keygen makes them, and not over a key that
    /// was revoked or retired; with its SHA-256.
    pub(super) fn successor_of(
        &self,
        user: &UserName,
        pem: &str,
        now: i64,
    ) -> Result<(ParsedCertificate, [u8; 32]), ServiceError> {
        let cert = validate_certificate(pem.as_bytes(), user, now, self.skew())
            .map_err(ServiceError::CertificateRejected)?;
        if cert.not_after() > now.saturating_add(MAX_SUCCESSOR_SECS) {
            return Err(refused(format!(
                "the new certificate is valid until {}: a successor may be valid for at most {} days",
                ecp_core::when::format_utc(cert.not_after()),
                ecp_core::certificate::MAX_VALIDITY_DAYS
            )));
        }
        // Made now: a backdated notBefore would claim a longer lifetime
        // for the renewals this successor vouches for later.
        let earliest = now
            .saturating_sub(self.config.clock_skew_secs as i64)
            .saturating_sub(SUCCESSOR_MAX_AGE_SECS);
        if cert.not_before() < earliest {
            return Err(refused(format!(
                "the new certificate's notBefore is {}: a successor must be made now (notBefore at most {} minutes ago), not backdated",
                ecp_core::when::format_utc(cert.not_before()),
                SUCCESSOR_MAX_AGE_SECS / 60
            )));
        }
        if let Some(revoked) = self.store.revoked_key(&cert.key_id())? {
            return Err(refused(format!(
                "the new certificate's key was revoked ({})",
                describe_revoked_key(&revoked)
            )));
        }
        let digest: [u8; 32] = sha2::Sha256::digest(cert.der()).into();
        Ok((cert, digest))
    }

    /// The first of `user`'s revoked (or retired) certificates whose key
    /// `matches`, as "certificate FINGERPRINT, revoked on DATE".
    pub(super) fn revoked_with_key(
        &self,
        user: &UserName,
        matches: impl Fn(&p256::ecdsa::VerifyingKey) -> bool,
    ) -> Result<Option<String>, ServiceError> {
        Ok(self
            .store
            .revoked_of(user.as_str())?
            .into_iter()
            .find(|(_, record)| {
                parse_certificate_pem(record.pem.as_bytes()).is_ok_and(|c| matches(c.public_key()))
            })
            .map(|(fingerprint, record)| {
                format!(
                    "certificate {fingerprint}, revoked on {}",
                    ecp_core::when::format_utc(record.revoked_at)
                )
            }))
    }
}

/// How long a certificate was issued for (notAfter − notBefore).
fn issued_for(cert: &ParsedCertificate) -> i64 {
    cert.not_after().saturating_sub(cert.not_before())
}

impl Service {
    /// Refuses a successor that would outlive `lifetime` (what the
    /// certificate vouching for it, `vouching`, was issued for) counted
    /// from now: a one-year key cannot mint a ten-year one.
    fn lives_no_longer_than(
        &self,
        successor: &ParsedCertificate,
        lifetime: i64,
        vouching: &str,
        now: u64,
    ) -> Result<(), ServiceError> {
        let longest = (now as i64)
            .saturating_add(lifetime)
            .saturating_add(self.config.clock_skew_secs as i64);
        if successor.not_after() <= longest {
            return Ok(());
        }
        Err(refused(format!(
            "the new certificate is valid until {}, but a successor may be valid for at most as long as the certificate that vouches for it was issued for ({} days, {vouching}), counted from now: until {}",
            ecp_core::when::format_utc(successor.not_after()),
            lifetime / ecp_core::when::SECONDS_PER_DAY,
            ecp_core::when::format_utc(longest)
        )))
    }

    /// The caller may renew for `user` (itself, or anyone as root), and
    /// renewal is on for non-root callers.
    pub(super) fn renewal_allowed(
        &self,
        caller: &Caller,
        user: &UserName,
    ) -> Result<(), ServiceError> {
        self.authorize_self_or_root(caller, user, "renew certificates")?;
        if !caller.is_root() && !self.config.allow_self_renewal {
            warn!(event = "renew", user = %user, caller_uid = caller.uid, outcome = "refused", reason = "allow_self_renewal is off");
            return Err(ServiceError::RenewalRefused(
                "renewal is turned off on this host (allow_self_renewal = false): ask an admin to enroll the new certificate".into(),
            ));
        }
        Ok(())
    }

    /// Issues a renewal challenge for `user`'s successor certificate.
    pub fn renewal_challenge(
        &self,
        caller: &Caller,
        user: &str,
        successor_pem: &str,
    ) -> Result<String, ServiceError> {
        let user = parse_user(user)?;
        self.renewal_allowed(caller, &user)?;
        let now = self.clock.now();
        // Counted before any work: each costs a signature check.
        let source = Source::of(caller.uid, &RemoteHost::local(), self.config.grouping());
        if let Err(refusal) = self.throttle.admit_challenge(&user, &source, now) {
            return Err(ServiceError::Throttled(refusal));
        }
        let (successor, digest) = self.successor_of(&user, successor_pem, now as i64)?;
        let enrolled = self.store.certificates_of(user.as_str())?;
        if enrolled.is_empty() {
            return Err(ServiceError::RenewalRefused(format!(
                "{user} has no certificate enrolled on this host to renew from (certificates from an organisation CA or the directory are renewed where they are issued)"
            )));
        }
        if enrolled
            .iter()
            .any(|(fp, _)| *fp == successor.fingerprint())
        {
            return Err(ServiceError::AlreadyEnrolled);
        }
        // Told before anything is signed: no enrolled certificate was
        // issued for as long as the successor would live (`renew` checks
        // it again against the one that signs).
        let longest_issued = enrolled
            .iter()
            .filter_map(|(fp, r)| self.parsed_certificate(fp, &r.pem).ok())
            .map(|c| issued_for(&c))
            .max()
            .unwrap_or(0);
        self.lives_no_longer_than(
            &successor,
            longest_issued,
            "the longest-lived certificate enrolled",
            now,
        )?;
        let service = ServiceName::parse(RENEWAL_SERVICE).expect("a valid service name");
        let mut renewal = RenewalChallenge {
            challenge: Challenge::unsealed(
                user,
                self.host.clone(),
                service,
                RemoteHost::local(),
                caller.uid,
                now,
                self.config.challenge_lifetime_secs,
            )
            .map_err(|e| ServiceError::Random(e.to_string()))?,
            successor: digest,
        };
        self.tokens.seal_renewal(&mut renewal);
        Ok(renewal.to_token())
    }

    /// Enrolls the successor when `signature` proves possession of one of
    /// `user`'s enrolled keys over the renewal challenge `token`.
    #[allow(clippy::too_many_arguments)]
    pub fn renew(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
        successor_pem: &str,
        label: &str,
        retire_old: bool,
    ) -> Result<Renewed, ServiceError> {
        let user = parse_user(user)?;
        self.renewal_allowed(caller, &user)?;
        if token.len() > ecp_core::challenge::MAX_RENEWAL_TOKEN_LEN
            || signature.len() > MAX_SIGNATURE_LEN * 2
        {
            return Err(ServiceError::InvalidArgument(
                "token or signature is too long".into(),
            ));
        }
        let now = self.clock.now();
        let renewal = RenewalChallenge::from_token(token).map_err(|e| refused(e.to_string()))?;
        if !self.tokens.is_genuine_renewal(&renewal) {
            return Err(refused(
                "this renewal challenge is not from this ecpd (or it restarted since): ask for a new one",
            ));
        }
        let challenge = &renewal.challenge;
        if challenge.user != user {
            return Err(refused(format!(
                "this renewal challenge is for {}, not {user}",
                challenge.user
            )));
        }
        if let Err(e) = challenge.check_not_expired(now) {
            return Err(refused(e.to_string()));
        }
        let source = Source::of(
            challenge.requester_uid,
            &RemoteHost::local(),
            self.config.grouping(),
        );
        self.throttle
            .check_penalty(&user, &source, now)
            .map_err(|refusal| refused(refusal.to_string()))?;
        let (successor, digest) = self.successor_of(&user, successor_pem, now as i64)?;
        if digest != renewal.successor {
            return Err(ServiceError::RenewalRefused(
                "this certificate is not the one the renewal challenge was issued for".into(),
            ));
        }
        let label = if label.is_empty() {
            format!(
                "renewed-{}",
                ecp_core::when::format_utc(now as i64)
                    .get(..10)
                    .unwrap_or_default()
            )
        } else {
            label.to_owned()
        };
        let label = check_label(&label)?;

        // Which enrolled certificate made the proof? One whose key was
        // revoked (a same-key renewal of a revoked one, say) never does.
        // Several may carry the key (a certificate renewed for the same
        // key): the one that can still vouch (valid now, no successor
        // yet) is taken; else the first, whose refusal then says why.
        let enrolled = self.store.certificates_of(user.as_str())?;
        let mut candidates = Vec::new();
        for (fingerprint, stored) in &enrolled {
            let Ok(cert) = self.parsed_certificate(fingerprint, &stored.pem) else {
                continue;
            };
            if renewal.verify(cert.public_key(), signature).is_ok() {
                if let Some(revoked) = self.store.revoked_key(&cert.key_id())? {
                    let count = self.throttle.failure(&user, &source, now);
                    warn!(event = "renew", user = %user, fingerprint = %fingerprint, outcome = "refused", reason = "revoked key", failures = count.failures);
                    return Err(refused(format!(
                        "the key that signed was revoked ({})",
                        describe_revoked_key(&revoked)
                    )));
                }
                candidates.push((fingerprint.clone(), stored.clone(), cert));
            }
        }
        let can_vouch =
            |(fingerprint, _, cert): &(String, CertificateRecord, ParsedCertificate)| {
                cert.check_time(now as i64, Duration::ZERO).is_ok()
                    && !enrolled.iter().any(|(_, r)| r.renewed_from == *fingerprint)
            };
        let signer = match candidates.iter().position(can_vouch) {
            Some(at) => Some(candidates.swap_remove(at)),
            None => candidates.into_iter().next(),
        };
        let Some((old_fingerprint, old_record, old_cert)) = signer else {
            let revoked =
                self.revoked_with_key(&user, |key| renewal.verify(key, signature).is_ok())?;
            let count = self.throttle.failure(&user, &source, now);
            warn!(event = "renew", user = %user, outcome = "refused", failures = count.failures, revoked = revoked.is_some());
            return Err(match revoked {
                Some(revoked) => refused(format!("the key that signed belongs to {revoked}")),
                None => refused(format!(
                    "the key that signed matches no certificate enrolled for {user}"
                )),
            });
        };
        if let Err(e) = old_cert.check_time(now as i64, Duration::ZERO) {
            warn!(event = "renew", user = %user, fingerprint = %old_fingerprint, outcome = "refused", reason = %e);
            return Err(ServiceError::RenewalRefused(format!(
                "the current certificate {old_fingerprint} is not valid now ({e}): ask an admin to enroll a new one"
            )));
        }
        if let Err(e) =
            self.lives_no_longer_than(&successor, issued_for(&old_cert), &old_fingerprint, now)
        {
            warn!(event = "renew", user = %user, fingerprint = %old_fingerprint, outcome = "refused", reason = "successor outlives its signer's lifetime");
            return Err(e);
        }
        let age = (now as i64).saturating_sub(old_record.enrolled_at);
        let min_age = self.config.renew_min_age_secs as i64;
        if age < min_age {
            warn!(event = "renew", user = %user, fingerprint = %old_fingerprint, outcome = "refused", reason = "too young", age_secs = age);
            return Err(ServiceError::RenewalRefused(format!(
                "the current certificate was enrolled {age} s ago; it may vouch for a successor once it is {min_age} s old (renew_min_age_secs)"
            )));
        }
        if !self.tokens.consume(challenge) {
            return Err(refused("this renewal challenge was used already"));
        }
        let fingerprint = successor.fingerprint();
        let record = CertificateRecord {
            pem: successor.to_pem(),
            label: label.clone(),
            enrolled_at: now as i64,
            last_used: 0,
            renewed_from: old_fingerprint.clone(),
        };
        match self.store.renew_certificate(
            user.as_str(),
            &fingerprint,
            &record,
            self.config.max_certificates_per_user,
            old_record.enrolled_at,
            retire_old,
        )? {
            AddOutcome::Added => {}
            AddOutcome::Duplicate => return Err(ServiceError::AlreadyEnrolled),
            AddOutcome::TooMany { max } => return Err(ServiceError::TooManyCertificates { max }),
            AddOutcome::SignerGone => {
                return Err(refused(format!(
                    "certificate {old_fingerprint} was revoked while the renewal was checked"
                )))
            }
            AddOutcome::LastPlaceKept { max } => {
                return Err(refused(format!(
                    "{user} has {} of at most {max} certificates: a renewal may not take the last free place (it is kept for an admin's enrollment); renew with --retire-old, or ask an admin to revoke one", max - 1
                )))
            }
            AddOutcome::KeyShared { user: other } => {
                return Err(refused(format!(
                    "the key of {old_fingerprint} is enrolled for {other} as well: retiring it would withdraw that too; renew without --retire-old, or ask an admin"
                )))
            }
            AddOutcome::KeyRevoked(revoked) => {
                return Err(refused(format!(
                    "the new certificate's key was revoked ({})",
                    describe_revoked_key(&revoked)
                )))
            }
            AddOutcome::SignerUsed { successor } => {
                return Err(refused(format!(
                    "certificate {old_fingerprint} already vouched for {successor}: renew from that one once it is old enough, or ask an admin"
                )))
            }
        }
        self.throttle.success(&user, &source);
        info!(event = "renew", user = %user, caller_uid = caller.uid, from = %old_fingerprint, fingerprint = %fingerprint, label = %label, retired_old = retire_old, outcome = "enrolled");
        Ok(Renewed {
            fingerprint,
            label,
            retired: retire_old.then_some(old_fingerprint),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_support::*;
    use ecp_core::keyfile::generate_signing_key;

    #[test]
    fn a_user_renews_its_own_certificate_once_it_is_old_enough() {
        let f = fixture("");
        let alice = Caller {
            uid: 1000,
            name: Some("alice".into()),
        };
        let (new_key, pem) = f.successor("alice");
        // Too young: enrolled just now.
        assert!(matches!(
            renew_with(&f, &alice, "alice", &f.key, &pem, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("renew_min_age_secs")
        ));
        f.clock.advance(86_400);
        // Made again a day on: a successor must be made now.
        let pem = f.certificate_for(&new_key, "alice", 30);
        let renewed = renew_with(&f, &alice, "alice", &f.key, &pem, false).unwrap();
        assert!(renewed.label.starts_with("renewed-20"), "{}", renewed.label);
        assert_eq!(renewed.retired, None);
        // Both keys now log in; the successor is enrolled under alice.
        let token = f.challenge("alice", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&new_key);
        assert!(f.service.verify(&ROOT, "alice", &token, &signature).is_ok());
        let token = f.challenge("alice", "").unwrap();
        assert!(f
            .service
            .verify(&ROOT, "alice", &token, &f.sign(&token))
            .is_ok());
        // The successor is too young to vouch for another, and the old
        // one has vouched once already: a stolen key cannot mint a fleet.
        let (third_key, third) = f.successor("alice");
        assert!(matches!(
            renew_with(&f, &alice, "alice", &new_key, &third, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("renew_min_age_secs")
        ));
        assert!(matches!(
            renew_with(&f, &alice, "alice", &f.key, &third, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("already vouched")
        ));
        // A day on, the successor vouches for the next and is retired in
        // the same step: it no longer logs in, and its key cannot come
        // back as a later successor.
        f.clock.advance(86_400);
        let third = f.certificate_for(&third_key, "alice", 30);
        let retired = renew_with(&f, &alice, "alice", &new_key, &third, true).unwrap();
        assert!(retired.retired.is_some());
        let token = f.challenge("alice", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&new_key);
        assert!(f
            .service
            .verify(&ROOT, "alice", &token, &signature)
            .is_err());
        f.clock.advance(86_400);
        let again = f.certificate_for(&new_key, "alice", 30);
        assert!(matches!(
            renew_with(&f, &alice, "alice", &third_key, &again, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("revoked")
        ));
    }

    #[test]
    fn renewal_refusals_say_why() {
        let f = fixture("");
        f.clock.advance(86_400);
        let bob = Caller {
            uid: 1001,
            name: Some("bob".into()),
        };
        let (_, pem) = f.successor("alice");
        // Not your account.
        assert!(matches!(
            f.service.renewal_challenge(&bob, "alice", &pem),
            Err(ServiceError::AccessDenied(_))
        ));
        // Nothing enrolled.
        let (_, carols) = f.successor("carol");
        assert!(matches!(
            f.service.renewal_challenge(&ROOT, "carol", &carols),
            Err(ServiceError::RenewalRefused(m)) if m.contains("no certificate enrolled")
        ));
        // A successor for someone else.
        assert!(matches!(
            f.service.renewal_challenge(&ROOT, "alice", &carols),
            Err(ServiceError::CertificateRejected(_))
        ));
        // A key that is no enrolled one.
        let stranger = generate_signing_key();
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &stranger, &pem, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("matches no certificate")
        ));

        // A different successor than the one the challenge was issued for.
        let token = f.service.renewal_challenge(&ROOT, "alice", &pem).unwrap();
        let renewal = ecp_core::challenge::RenewalChallenge::from_token(&token).unwrap();
        let (_, other) = f.successor("alice");
        assert!(matches!(
            f.service.renew(&ROOT, "alice", &token, &renewal.sign(&f.key), &other, "", false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("not the one")
        ));
        // Revoked: refused by name.
        let fingerprint = f.first_fingerprint();
        f.service
            .revoke(&ROOT, "alice", &fingerprint, false)
            .unwrap();
        f.service
            .enroll(&ROOT, "alice", &f.successor("alice").1, "spare")
            .unwrap();
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &f.key, &pem, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("revoked")
        ));
        // Turned off: for users, not for root.
        let off = fixture("allow_self_renewal = false");
        let alice = Caller {
            uid: 1000,
            name: Some("alice".into()),
        };
        let (_, pem) = off.successor("alice");
        assert!(matches!(
            off.service.renewal_challenge(&alice, "alice", &pem),
            Err(ServiceError::RenewalRefused(m)) if m.contains("allow_self_renewal")
        ));
        assert!(off.service.renewal_challenge(&ROOT, "alice", &pem).is_ok());
    }

    #[test]
    fn an_expired_certificate_cannot_renew() {
        let f = fixture("");
        // The fixture's certificate is valid for 30 days.
        f.clock.advance(31 * 86_400);
        let (_, pem) = f.successor_valid_for("alice", 20);
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &f.key, &pem, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("not valid now")
        ));
    }

    #[test]
    fn login_signatures_and_renewal_proofs_never_stand_for_each_other() {
        let f = fixture("");
        f.clock.advance(86_400);
        let (_, pem) = f.successor("alice");
        // A login token and its signature offered as a renewal.
        let login = f.challenge("alice", "").unwrap();
        let login_signature = f.sign(&login);
        assert!(matches!(
            f.service
                .renew(&ROOT, "alice", &login, &login_signature, &pem, "", false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("login challenge")
        ));
        // The renewal token, signed as if it were a login (login prefix).
        let token = f.service.renewal_challenge(&ROOT, "alice", &pem).unwrap();
        let renewal = ecp_core::challenge::RenewalChallenge::from_token(&token).unwrap();
        let as_login = renewal.challenge.sign(&f.key);
        assert!(matches!(
            f.service
                .renew(&ROOT, "alice", &token, &as_login, &pem, "", false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("matches no certificate")
        ));
        // A renewal proof offered as a login answer, with its own token
        // or with a login token.
        let proof = renewal.sign(&f.key);
        assert!(f.service.verify(&ROOT, "alice", &token, &proof).is_err());
        let login = f.challenge("alice", "").unwrap();
        assert!(f.service.verify(&ROOT, "alice", &login, &proof).is_err());
        // The proof itself works once, and only once.
        assert!(f
            .service
            .renew(&ROOT, "alice", &token, &proof, &pem, "", false)
            .is_ok());
        assert!(f
            .service
            .renew(&ROOT, "alice", &token, &proof, &pem, "", false)
            .is_err());
    }

    #[test]
    fn a_successor_lives_no_longer_than_its_signer_was_issued_for() {
        let f = fixture("");
        f.clock.advance(86_400);
        // The fixture's certificate was issued for 30 days: a 90-day
        // successor is refused before anything is signed.
        let (_, long) = f.successor_valid_for("alice", 90);
        assert!(matches!(
            f.service.renewal_challenge(&ROOT, "alice", &long),
            Err(ServiceError::RenewalRefused(m)) if m.contains("at most as long")
        ));
        // With a one-year certificate enrolled too, the 90-day successor
        // gets a challenge, but the 30-day one may not vouch for it.
        let (year_key, year) = f.successor_valid_for("alice", 365);
        f.service.enroll(&ROOT, "alice", &year, "desk").unwrap();
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &f.key, &long, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("at most as long") && m.contains("30 days")
        ));
        f.clock.advance(86_400);
        let (_, long) = f.successor_valid_for("alice", 90);
        assert!(renew_with(&f, &ROOT, "alice", &year_key, &long, false).is_ok());
    }

    #[test]
    fn nine_chained_renewals_leave_the_admin_a_place_to_enroll() {
        let f = fixture("");
        let alice = Caller {
            uid: 1000,
            name: Some("alice".into()),
        };
        let first = f.first_fingerprint();
        let mut signer = f.key.clone();
        let mut refused = 0;
        for _ in 0..9 {
            f.clock.advance(86_400);
            let (next_key, next) = f.successor("alice");
            match renew_with(&f, &alice, "alice", &signer, &next, false) {
                Ok(_) => signer = next_key,
                Err(ServiceError::RenewalRefused(m)) if m.contains("last free place") => {
                    refused += 1
                }
                Err(e) => panic!("{e}"),
            }
        }
        // Six renewals fit beside the first certificate (seven of eight);
        // the rest were refused, and the admin's enrollment still fits.
        assert_eq!(refused, 3);
        assert_eq!(f.service.list(&ROOT, "alice").unwrap().len(), 7);
        let (_, admins) = f.successor("alice");
        f.service.enroll(&ROOT, "alice", &admins, "admin").unwrap();
        // A renewal that retires its signer takes no place: still allowed.
        f.clock.advance(86_400);
        let (_, last) = f.successor("alice");
        assert!(renew_with(&f, &alice, "alice", &signer, &last, true).is_ok());
        // Revoking the first certificate takes the whole chain along, the
        // retired link included; the admin's stays.
        let revoked = f.service.revoke(&ROOT, "alice", &first, false).unwrap();
        assert_eq!(revoked.len(), 8, "{revoked:?}");
        let left = f.service.list(&ROOT, "alice").unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].label, "admin");
    }

    #[test]
    fn a_backdated_successor_is_refused() {
        let f = fixture("");
        f.clock.advance(86_400);
        // notBefore a year back, notAfter within the signer's 30 days: it
        // would vouch for a year-long successor later.
        let key = generate_signing_key();
        let now = f.clock.now();
        let backdated = certificate_between(&key, "alice", now - 365 * 86_400, now + 20 * 86_400);
        assert!(matches!(
            f.service.renewal_challenge(&ROOT, "alice", &backdated),
            Err(ServiceError::RenewalRefused(m)) if m.contains("not backdated")
        ));
    }

    #[test]
    fn a_certificate_vouches_once_even_after_its_successor_was_retired() {
        let f = fixture("");
        f.clock.advance(86_400);
        let (b_key, b) = f.successor("alice");
        renew_with(&f, &ROOT, "alice", &f.key, &b, false).unwrap();
        f.clock.advance(86_400);
        let (_, c) = f.successor("alice");
        renew_with(&f, &ROOT, "alice", &b_key, &c, true).unwrap();
        let (_, d) = f.successor("alice");
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &f.key, &d, false),
            Err(ServiceError::RenewalRefused(m)) if m.contains("already vouched")
        ));
    }

    #[test]
    fn retiring_a_key_another_account_shares_is_refused() {
        let f = fixture("");
        let shared = f.certificate_for(&f.key, "alice-adm", 30);
        f.service.enroll(&ROOT, "alice-adm", &shared, "").unwrap();
        f.clock.advance(86_400);
        let (_, next) = f.successor("alice");
        assert!(matches!(
            renew_with(&f, &ROOT, "alice", &f.key, &next, true),
            Err(ServiceError::RenewalRefused(m)) if m.contains("alice-adm")
        ));
        assert!(login_with(&f, "alice-adm", &f.key).is_ok());
    }
}
