//! Logins: challenges, their answers, and whether a user needs to sign
//! at all (`nouserok`).

use super::*;

impl Service {
    /// Issues a challenge. Nothing is stored: the token is its own record
    /// (see `tokens`). Unknown and unenrolled users get one that looks
    /// exactly the same, so the answer reveals nothing about accounts.
    pub fn challenge(
        &self,
        caller: &Caller,
        user: &str,
        service: &str,
        rhost: &str,
    ) -> Result<String, ServiceError> {
        let user = parse_user(user)?;
        let service = ServiceName::parse(service)
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        let rhost =
            RemoteHost::parse(rhost).map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        self.authorize_self_or_root(caller, &user, "request a challenge")?;
        let now = self.clock.now();
        // A non-root caller is counted as itself, whatever rhost it names.
        let source = Source::of(caller.uid, &rhost, self.config.grouping());
        if let Err(refusal) = self.throttle.admit_challenge(&user, &source, now) {
            info!(event = "challenge", user = %user, service = %service, source = %source, outcome = "refused", reason = %refusal);
            return Err(ServiceError::Throttled(refusal));
        }
        let mut challenge = Challenge::unsealed(
            user,
            self.host.clone(),
            service,
            rhost,
            caller.uid,
            now,
            self.config.challenge_lifetime_secs,
        )
        .map_err(|e| ServiceError::Random(e.to_string()))?;
        self.tokens.seal(&mut challenge);
        self.recent.record(now, self.config.challenge_lifetime_secs);
        debug!(event = "challenge", user = %challenge.user, service = %challenge.service, source = %source, nonce_id = %challenge.nonce_id.to_hex(), outcome = "issued");
        Ok(challenge.to_token())
    }

    /// Verifies a signed challenge. A token this daemon did not issue (or
    /// issued before a restart) is refused by its tag before anything else
    /// is looked at; a nonce validates at most once; failures count
    /// against the (user, source) the challenge was issued for.
    pub fn verify(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
    ) -> Result<String, ServiceError> {
        self.verify_answer(caller, user, token, signature, None, None)
    }

    /// As [`Service::verify`], with a certificate the user presented (DER):
    /// its key may sign if an organisation CA this host trusts issued it.
    pub fn verify_presented(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
        certificate: &[u8],
    ) -> Result<String, ServiceError> {
        self.verify_answer(caller, user, token, signature, Some(certificate), None)
    }

    /// Verify or VerifyPresented, with the directory's fresh answer for
    /// the user when one was fetched (see [`Service::directory_lookup_due`]).
    pub fn verify_answer(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
        presented: Option<&[u8]>,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
    ) -> Result<String, ServiceError> {
        let user = parse_user(user)?;
        if token.len() > MAX_TOKEN_LEN || signature.len() > MAX_SIGNATURE_LEN * 2 {
            return Err(ServiceError::InvalidArgument(
                "token or signature is too long".into(),
            ));
        }
        if presented.is_some_and(|c| c.len() > ecp_core::certificate::MAX_CERTIFICATE_LEN) {
            return Err(ServiceError::InvalidArgument(
                "the presented certificate is too long".into(),
            ));
        }
        self.authorize_self_or_root(caller, &user, "verify")?;
        let now = self.clock.now();
        let auth = ServiceError::Auth;

        let challenge = Challenge::from_token(token).map_err(|e| {
            warn!(event = "verify", user = %user, outcome = "failure", reason = %e);
            auth(AuthFailure::MalformedChallenge(e))
        })?;
        if !self.tokens.is_genuine(&challenge) {
            // Nothing in it can be trusted, not even the source: count nothing.
            warn!(event = "verify", user = %user, nonce_id = %challenge.nonce_id.to_hex(), outcome = "failure", reason = %AuthFailure::UnknownChallenge);
            return Err(auth(AuthFailure::UnknownChallenge));
        }
        let source = Source::of(
            challenge.requester_uid,
            &challenge.rhost,
            self.config.grouping(),
        );
        let service = challenge.service.clone();
        if challenge.check_not_expired(now).is_err() {
            info!(event = "verify", user = %user, service = %service, source = %source, outcome = "failure", reason = %AuthFailure::Expired);
            return Err(auth(AuthFailure::Expired));
        }
        if let Err(refusal) = self.throttle.check_penalty(&user, &source, now) {
            info!(event = "verify", user = %user, service = %service, source = %source, outcome = "refused", reason = %refusal);
            return Err(ServiceError::Throttled(refusal));
        }

        match self.check_answer(&user, &challenge, signature, presented, looked_up, now) {
            Ok(fingerprint) => {
                self.throttle.success(&user, &source);
                info!(event = "verify", user = %user, service = %service, source = %source, fingerprint = %fingerprint, outcome = "success");
                Ok(fingerprint)
            }
            Err(ServiceError::Auth(reason)) => {
                let count = self.throttle.failure(&user, &source, now);
                warn!(event = "verify", user = %user, service = %service, source = %source, outcome = "failure", reason = %reason, failures = count.failures);
                if let Some(until) = count.penalty_until {
                    warn!(event = "penalty", user = %user, source = %source, until, failures = count.failures, outcome = "waiting");
                }
                Err(auth(reason))
            }
            Err(other) => {
                warn!(event = "verify", user = %user, service = %service, source = %source, outcome = "refused", reason = %other);
                Err(other)
            }
        }
    }

    /// The answer itself: user binding, the keys that may sign, the
    /// signature, and finally the one-time use of the nonce.
    pub(super) fn check_answer(
        &self,
        user: &UserName,
        challenge: &Challenge,
        signature: &str,
        presented: Option<&[u8]>,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
        now: u64,
    ) -> Result<String, ServiceError> {
        let auth = ServiceError::Auth;
        if challenge.user != *user {
            return Err(auth(AuthFailure::WrongUser));
        }
        // Only the module sends this (the user could not unlock the key
        // file), and it knows it did: no decoy check is needed to hide it.
        if signature.trim().is_empty() {
            return Err(auth(AuthFailure::NoSignature));
        }
        let SigningKeys {
            keys,
            directory_holds_values,
            directory_unavailable,
        } = self.keys_that_may_sign(user, presented, looked_up, now)?;
        if keys.is_empty() {
            // As costly as a real check, so the time of a refusal does not
            // tell an enrolled user from an unknown one.
            let _ = challenge.verify(&self.decoy, signature);
            // "Not enrolled" lets a `nouserok` module wave the user through:
            // never so while CAs are trusted, since anyone may hold a
            // CA-issued certificate.
            // A presented certificate that was refused answers exactly as
            // a bad signature does.
            let enrolled = !self.store.certificates_of(user.as_str())?.is_empty();
            return Err(auth(if presented.is_some() {
                AuthFailure::BadSignature
            } else if enrolled || directory_holds_values || self.trust.is_configured() {
                AuthFailure::NoValidCertificate
            } else {
                AuthFailure::NotEnrolled
            }));
        }
        for (key, authority) in keys {
            if challenge.verify(&key, signature).is_ok() {
                // Only a correct answer uses the nonce up: of concurrent
                // correct answers exactly one gets through here.
                if !self.tokens.consume(challenge) {
                    return Err(auth(AuthFailure::AlreadyUsed));
                }
                return Ok(match authority {
                    Authority::Enrolled { fingerprint } => {
                        // The last-use time is for the admin's eye: a full
                        // or read-only disk must not turn a good login away.
                        if let Err(e) =
                            self.store
                                .touch_certificate(user.as_str(), &fingerprint, now as i64)
                        {
                            warn!(event = "store", user = %user, fingerprint = %fingerprint, outcome = "failed", reason = %e, "could not record the certificate's last use");
                        }
                        fingerprint
                    }
                    Authority::Directory { fingerprint } => {
                        info!(event = "verify", user = %user, fingerprint = %fingerprint, "signed with a certificate from the directory");
                        fingerprint
                    }
                    Authority::Ca {
                        issuer,
                        serial,
                        fingerprint,
                    } => {
                        info!(event = "verify", user = %user, issuer = ?issuer, serial = %serial, fingerprint = %fingerprint, "signed with a CA-issued certificate");
                        fingerprint
                    }
                });
            }
        }
        if let Some(e) = directory_unavailable {
            // Perhaps signed with a key only the directory knows.
            return Err(e);
        }
        Err(auth(AuthFailure::BadSignature))
    }

    /// The public keys (SubjectPublicKeyInfo DER) that may sign a login of
    /// `user` now: enrolled and directory certificates, revoked keys left
    /// out. What lets the module pick the key an ssh agent should use; it
    /// decides nothing (Verify still checks everything at the answer).
    pub fn signing_public_keys(
        &self,
        caller: &Caller,
        user: &str,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_self_or_root(caller, &user, "ask about")?;
        let found = self.keys_that_may_sign(&user, None, looked_up, self.clock.now())?;
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(found.keys.len());
        for (key, _) in found.keys {
            let der = ecp_core::certificate::public_key_der(&key);
            if !keys.contains(&der) {
                keys.push(der);
            }
        }
        Ok(keys)
    }

    /// Whether a login of `user` needs a signature: an enrolled
    /// certificate, or any trusted CA (then everyone may hold one, so
    /// `nouserok` must not let anyone through on the password alone).
    pub fn needs_signature(
        &self,
        caller: &Caller,
        user: &str,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
    ) -> Result<bool, ServiceError> {
        let user = parse_user(user)?;
        self.authorize_self_or_root(caller, &user, "ask about")?;
        // Any trusted CA may have issued this user a certificate.
        if self.trust.is_configured() {
            return Ok(true);
        }
        if !self.store.certificates_of(user.as_str())?.is_empty() {
            return Ok(true);
        }
        // "Not enrolled" only on the directory's word (fresh, or cached
        // while young enough); any certificate value counts, usable or
        // not, and a directory that cannot be asked is an error.
        Ok(!self
            .directory_certificates(&user, looked_up, self.clock.now())?
            .is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_support::*;
    use ecp_core::keyfile::generate_signing_key;

    #[test]
    fn a_challenge_validates_once_and_stores_nothing_until_answered() {
        let f = fixture("");
        let bytes_before = f.service.store.counts().unwrap().bytes_on_disk;
        let token = f.challenge("alice", "192.0.2.1").unwrap();
        assert_eq!(f.service.memory_tables().0, 0, "issuing used a nonce");
        let signature = f.sign(&token);
        f.service
            .verify(&ROOT, "alice", &token, &signature)
            .unwrap();
        let replay = f.service.verify(&ROOT, "alice", &token, &signature);
        assert!(is_auth(&replay, AuthFailure::AlreadyUsed), "{replay:?}");
        assert_eq!(f.service.memory_tables().0, 1);
        for i in 0..500 {
            f.challenge(&format!("nobody{i}"), "192.0.2.1").ok();
        }
        assert_eq!(f.service.memory_tables().0, 1);
        assert_eq!(
            f.service.store.counts().unwrap().bytes_on_disk,
            bytes_before
        );
    }

    #[test]
    fn concurrent_correct_answers_validate_exactly_once() {
        let f = Arc::new(fixture(""));
        let token = f.challenge("alice", "").unwrap();
        let signature = f.sign(&token);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (f, token, signature) = (f.clone(), token.clone(), signature.clone());
                std::thread::spawn(move || {
                    f.service.verify(&ROOT, "alice", &token, &signature).is_ok()
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(winners, 1);
    }

    #[test]
    fn forged_altered_and_earlier_tokens_are_refused_and_cost_nothing() {
        let f = fixture("failures_before_penalty = 1");
        let token = f.challenge("alice", "192.0.2.1").unwrap();
        let mut altered = Challenge::from_token(&token).unwrap();
        altered.expires_at += 3600;
        let altered = altered.to_token();
        let forged = ecp_core::Challenge::new_random(
            UserName::parse("alice").unwrap(),
            HostName::parse("h").unwrap(),
            ServiceName::parse("sshd").unwrap(),
            f.clock.now(),
            300,
        )
        .unwrap()
        .to_token();
        for _ in 0..5 {
            for bad in [&altered, &forged] {
                let signature = f.sign(bad);
                let result = f.service.verify(&ROOT, "alice", bad, &signature);
                assert!(
                    is_auth(&result, AuthFailure::UnknownChallenge),
                    "{result:?}"
                );
            }
        }
        // Nothing counted: the real token still works from that source.
        assert_eq!(f.service.throttle.penalised(f.clock.now()), 0);
        f.service
            .verify(&ROOT, "alice", &token, &f.sign(&token))
            .unwrap();

        // A token from before a restart: another Service is another key.
        let earlier = f.challenge("alice", "").unwrap();
        let restarted = fixture("");
        let result = restarted
            .service
            .verify(&ROOT, "alice", &earlier, &f.sign(&earlier));
        assert!(
            is_auth(&result, AuthFailure::UnknownChallenge),
            "{result:?}"
        );
    }

    #[test]
    fn challenges_expire() {
        let f = fixture("challenge_lifetime_secs = 60");
        let token = f.challenge("alice", "").unwrap();
        f.clock.advance(59);
        let early = f.challenge("alice", "").unwrap();
        f.service
            .verify(&ROOT, "alice", &token, &f.sign(&token))
            .unwrap();
        f.clock.advance(1);
        let late = f.service.verify(&ROOT, "alice", &early, &f.sign(&early));
        assert!(late.is_ok(), "{late:?}");
        let token = f.challenge("alice", "").unwrap();
        f.clock.advance(60);
        let result = f.service.verify(&ROOT, "alice", &token, &f.sign(&token));
        assert!(is_auth(&result, AuthFailure::Expired), "{result:?}");
        // Used nonces are forgotten once their tokens expired.
        f.clock.advance(60);
        assert_eq!(f.service.periodic_cleanup().unwrap(), 2);
        assert_eq!(f.service.memory_tables().0, 0);
    }

    #[test]
    fn aimed_failures_never_lock_the_user_out_elsewhere() {
        let f = fixture(
            "failures_before_penalty = 3\npenalty_initial_secs = 10\npenalty_max_secs = 900",
        );
        let attacker = "203.0.113.9";
        for _ in 0..3 {
            assert!(is_auth(&f.bad_answer(attacker), AuthFailure::BadSignature));
        }
        // The fourth failure starts the wait; from then on that source is
        // refused for alice before anything is checked.
        let _ = f.bad_answer(attacker);
        for _ in 0..20 {
            assert!(matches!(
                f.bad_answer(attacker),
                Err(ServiceError::Throttled(Refusal::Penalised { .. }))
            ));
        }
        // Alice at the console, from her own address, and from the
        // attacker's neighbour all log in.
        f.login("").unwrap();
        f.login("198.51.100.20").unwrap();
        f.login("203.0.113.10").unwrap();
        // The wait doubles: 10 s, then 20 s.
        f.clock.advance(10);
        assert!(is_auth(&f.bad_answer(attacker), AuthFailure::BadSignature));
        f.clock.advance(19);
        assert!(f.challenge("alice", attacker).is_err());
        f.clock.advance(1);
        f.login(attacker).unwrap();
        // The success cleared the count for that source.
        assert!(is_auth(&f.bad_answer(attacker), AuthFailure::BadSignature));
    }

    #[test]
    fn a_quota_aimed_from_one_source_starves_no_one_else() {
        let f = fixture("challenges_per_user_per_minute = 10");
        let attacker = "203.0.113.9";
        for _ in 0..10 {
            f.challenge("alice", attacker).unwrap();
        }
        assert!(matches!(
            f.challenge("alice", attacker),
            Err(ServiceError::Throttled(Refusal::TooMany { .. }))
        ));
        f.login("").unwrap();
        f.login("198.51.100.20").unwrap();
        f.clock.advance(60);
        f.login(attacker).unwrap();
    }

    #[test]
    fn a_non_root_caller_is_counted_as_itself_not_as_the_rhost_it_names() {
        let f = fixture("failures_before_penalty = 1\nchallenges_per_user_per_minute = 3");
        let key = generate_signing_key();
        let bob_name = UserName::parse("bob").unwrap();
        let pem =
            ecp_core::certificate::build_self_signed_certificate(&key, &bob_name, 30).unwrap();
        f.service.enroll(&ROOT, "bob", &pem, "").unwrap();
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        let victim_address = "198.51.100.20";
        // Bob earns a wait, naming an address.
        for _ in 0..2 {
            let token = f
                .service
                .challenge(&bob, "bob", "sshd", victim_address)
                .unwrap();
            let _ = f.service.verify(&bob, "bob", &token, "");
        }
        assert!(f
            .service
            .challenge(&bob, "bob", "sshd", victim_address)
            .is_err());
        // The address itself is untouched, for bob's logins through sshd too.
        for _ in 0..3 {
            let token = f.challenge("bob", victim_address).unwrap();
            let signature = Challenge::from_token(&token).unwrap().sign(&key);
            f.service.verify(&ROOT, "bob", &token, &signature).unwrap();
        }
        // And a non-root caller may not act for anyone else.
        assert!(matches!(
            f.service.challenge(&bob, "alice", "sshd", ""),
            Err(ServiceError::AccessDenied(_))
        ));
    }

    #[test]
    fn an_empty_signature_is_counted_as_a_failure() {
        let f = fixture("failures_before_penalty = 2");
        for _ in 0..3 {
            let token = f.challenge("alice", "").unwrap();
            let result = f.service.verify(&ROOT, "alice", &token, "");
            assert!(is_auth(&result, AuthFailure::NoSignature), "{result:?}");
        }
        assert!(matches!(
            f.challenge("alice", ""),
            Err(ServiceError::Throttled(Refusal::Penalised { .. }))
        ));
    }

    #[test]
    fn a_flood_from_many_sources_refuses_no_legitimate_login_and_stays_bounded() {
        let f = fixture("max_tracked_sources = 1000\nchallenge_lifetime_secs = 30");
        let mut refused = 0;
        for i in 0..20_000u32 {
            let rhost = if i % 2 == 0 {
                format!("2001:db8:0:1:{:x}:{:x}::1", i >> 16, i & 0xffff)
            } else {
                format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
            };
            let user = format!("x{:x}", i.wrapping_mul(2_654_435_761));
            if f.challenge(&user, &rhost).is_err() {
                refused += 1;
            }
            if i % 1000 == 0 {
                f.login("").unwrap();
                f.login("198.51.100.20").unwrap();
                f.clock.advance(10);
                f.service.periodic_cleanup().unwrap();
            }
        }
        // The IPv6 half is one /64: all but its allowance was refused.
        assert!(refused >= 9_000, "{refused}");
        let (used, pairs, sources) = f.service.memory_tables();
        // Remote and local pairs are kept in tables of their own.
        assert!(pairs <= 2 * 1000 && sources <= 1000, "{pairs} {sources}");
        assert!(used <= 20, "{used}");
        f.login("").unwrap();
        f.login("2001:db8:0:2::1").unwrap();
    }
}
