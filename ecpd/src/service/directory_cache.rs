//! The directory's answers: when a lookup is due, what a finished one
//! leaves in the cache, what a login may take from it, and its report.

use super::*;

/// A directory lookup the service found due; the D-Bus edge runs it on
/// the tokio runtime and hands the outcome back. When another login's
/// lookup for the same user is under way, this one waits for it instead
/// (a stale cached answer must not decide while its refresh is running:
/// the refresh may be the removal). The flight ends when this is
/// dropped, which the edge does only after [`Service::lookup_done`] has
/// recorded the answer.
pub struct DueLookup {
    directory: Arc<Directory>,
    user: String,
    known: bool,
    in_flight: Option<crate::directory::InFlight>,
}

impl DueLookup {
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether this one asks the directory (else it waits for the
    /// lookup already under way).
    pub fn runs_lookup(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The directory's answer; None when this waited for another login's
    /// lookup, whose answer the cache then holds.
    pub async fn run(&self) -> Option<Result<Vec<Vec<u8>>, LookupError>> {
        if self.in_flight.is_some() {
            Some(self.directory.lookup(&self.user, self.known).await)
        } else {
            self.directory.wait_for_lookup(&self.user).await;
            None
        }
    }
}

impl Service {
    /// Whether the directory must be asked for `user` before this Verify:
    /// only when everything the answer could be refused for without it
    /// has passed (caller, a signature at all, a genuine unexpired unused
    /// token of `user`'s, no penalty), so that nothing anyone can send
    /// makes ecpd ask the directory over and over; and only when the
    /// cached answer is missing or older than `cache_ttl_secs`.
    pub fn directory_lookup_due(
        &self,
        caller: &Caller,
        user: &str,
        token: &str,
        signature: &str,
    ) -> Option<DueLookup> {
        self.directory.as_ref()?;
        let user = UserName::parse(user).ok()?;
        self.authorize_self_or_root(caller, &user, "verify").ok()?;
        if signature.trim().is_empty() || signature.len() > MAX_SIGNATURE_LEN * 2 {
            return None;
        }
        let now = self.clock.now();
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let challenge = Challenge::from_token(token).ok()?;
        let usable = challenge.user == user
            && self.tokens.is_genuine(&challenge)
            && challenge.check_not_expired(now).is_ok()
            && !self.tokens.is_used(&challenge);
        if !usable {
            return None;
        }
        let source = Source::of(
            challenge.requester_uid,
            &challenge.rhost,
            self.config.grouping(),
        );
        self.throttle.check_penalty(&user, &source, now).ok()?;
        self.lookup_due(&user, now)
    }

    /// Whether `user`'s directory answer is missing or stale; the lookup to
    /// run if so.
    pub(super) fn lookup_due(&self, user: &UserName, now: u64) -> Option<DueLookup> {
        let directory = self.directory.as_ref()?;
        // While no server answers, the cache decides at once.
        if directory.is_down(now) {
            return None;
        }
        let ttl = directory.config().cache_ttl_secs;
        let known = match self.store.cached_lookup(user.as_str()) {
            Ok(Some(cached)) if now.saturating_sub(cached.fetched_at) < ttl => return None,
            Ok(Some(_)) => true,
            _ => false,
        };
        if !known && directory.known_absent(user.as_str(), now) {
            return None;
        }
        Some(DueLookup {
            in_flight: directory.start_lookup(user.as_str()),
            directory: directory.clone(),
            user: user.as_str().to_owned(),
            known,
        })
    }

    /// The lookup `SigningKeys` needs: when the caller may ask about
    /// `user` and the cached answer is missing or stale (at most one per
    /// `cache_ttl_secs` per user, whoever asks).
    pub fn signing_keys_lookup_due(&self, caller: &Caller, user: &str) -> Option<DueLookup> {
        self.directory.as_ref()?;
        let user = UserName::parse(user).ok()?;
        self.authorize_self_or_root(caller, &user, "ask about")
            .ok()?;
        self.lookup_due(&user, self.clock.now())
    }

    /// The lookup `NeedsSignature` needs for `nouserok`: only when the
    /// caller may ask about `user`, nothing else already says a signature
    /// is needed, and no fresh answer is at hand.
    pub fn needs_signature_lookup_due(&self, caller: &Caller, user: &str) -> Option<DueLookup> {
        self.directory.as_ref()?;
        let user = UserName::parse(user).ok()?;
        self.authorize_self_or_root(caller, &user, "ask about")
            .ok()?;
        if self.trust.is_configured() {
            return None;
        }
        if !self.store.certificates_of(user.as_str()).ok()?.is_empty() {
            return None;
        }
        self.lookup_due(&user, self.clock.now())
    }

    /// Records a finished lookup: its time (for `status`), the names
    /// without a certificate, and the cache — whatever the login it was
    /// made for then decides, so that the next one need not ask again. A
    /// fresh answer replaces the cached one (an empty answer removes it:
    /// that is how a removal arrives, and made-up names leave nothing in
    /// the store); an unusable entry removes it too; an outage leaves it.
    pub fn lookup_done(
        &self,
        user: &str,
        outcome: Result<Vec<Vec<u8>>, LookupError>,
    ) -> Result<Vec<Vec<u8>>, LookupError> {
        let Some(directory) = &self.directory else {
            return outcome;
        };
        let now = self.clock.now();
        directory.record(user, &outcome, now);
        let stored = match &outcome {
            Ok(certificates) if !certificates.is_empty() => self.store.cache_lookup(
                user,
                &CachedLookup {
                    fetched_at: now,
                    certificates: certificates.clone(),
                },
            ),
            Ok(_) | Err(LookupError::BadEntry(_)) => self.store.flush_lookups(Some(user)).map(drop),
            Err(_) => Ok(()),
        };
        match stored {
            Ok(()) => outcome,
            // Not kept: decide on this answer all the same, but say so.
            Err(e) => {
                warn!(event = "store", user = %user, outcome = "failed", reason = %e, "could not keep the directory's answer");
                outcome
            }
        }
    }

    /// Directory certificates never sign for an account with uid 0
    /// unless `ca_allow_root` says certificates from outside this host
    /// may: whoever can write a directory entry would otherwise hold
    /// root's second factor on every host.
    pub(super) fn directory_refused_for(&self, user: &UserName) -> bool {
        !self.config.ca_allow_root && is_superuser(user)
    }

    /// The certificates the directory holds for `user`: from a fresh
    /// answer (which then replaces the cached one — also when it holds no
    /// certificate, which is how a revocation arrives), else from the
    /// cache while it is young enough. A failed lookup never replaces a
    /// cached answer; with none younger than `max_offline_secs` the login
    /// cannot be decided.
    pub(super) fn directory_certificates(
        &self,
        user: &UserName,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
        now: u64,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        let Some(directory) = &self.directory else {
            return Ok(Vec::new());
        };
        let max_offline_secs = directory.config().max_offline_secs;
        match looked_up {
            // Fresh (and already cached by `lookup_done`).
            Some(Ok(certificates)) => return Ok(certificates),
            Some(Err(e @ LookupError::BadEntry(_))) => {
                warn!(event = "directory", user = %user, outcome = "unavailable", reason = %e, "the user's entry is unusable: the login fails closed");
                return Err(ServiceError::DirectoryUnavailable(e.to_string()));
            }
            _ => {}
        }
        let cached = self.store.cached_lookup(user.as_str())?;
        if looked_up.is_none() && cached.is_none() && directory.known_absent(user.as_str(), now) {
            // The directory said lately that there is no certificate.
            return Ok(Vec::new());
        }
        let age = cached.as_ref().map(|c| now.saturating_sub(c.fetched_at));
        let young = age.is_some_and(|age| age < max_offline_secs);
        match (cached, &looked_up) {
            (Some(cached), None) if young => Ok(cached.certificates),
            (Some(cached), Some(Err(e))) if young => {
                warn!(event = "directory", user = %user, outcome = "failed", reason = %e, cached_age_secs = age.unwrap_or(0), "using the cached answer while it is younger than max_offline_secs");
                Ok(cached.certificates)
            }
            _ => {
                let why = match looked_up {
                    Some(Err(e)) => e.to_string(),
                    _ => "no lookup could be made now".into(),
                };
                warn!(event = "directory", user = %user, outcome = "unavailable", reason = %why, "no cached answer young enough: the login fails closed");
                Err(ServiceError::DirectoryUnavailable(format!(
                    "the directory cannot be asked about {user} ({why}) and no cached answer is younger than {max_offline_secs} s"
                )))
            }
        }
    }

    /// Drops cached directory answers (one user's, or all); root only.
    pub fn flush_directory_cache(&self, caller: &Caller, user: &str) -> Result<u64, ServiceError> {
        self.authorize_root(caller, "flush the directory cache")?;
        let user = if user.is_empty() {
            None
        } else {
            Some(parse_user(user)?)
        };
        let removed = self
            .store
            .flush_lookups(user.as_ref().map(|u| u.as_str()))?;
        if let Some(directory) = &self.directory {
            directory.forget_absent(user.as_ref().map(|u| u.as_str()));
        }
        info!(
            event = "directory",
            outcome = "flushed",
            removed,
            "directory cache flushed"
        );
        Ok(removed)
    }

    /// Whether a status probe of the directory is due for `caller`: root
    /// only (it makes a connection), when a directory is configured.
    pub fn directory_probe_due(&self, caller: &Caller) -> Option<Arc<Directory>> {
        self.authorize_root(caller, "probe the directory").ok()?;
        self.directory.clone()
    }

    /// The directory's state for `status` and `doctor`, with the outcome
    /// of a probe made just now (None: none was made).
    pub fn directory_report(
        &self,
        caller: &Caller,
        probe: Option<Result<String, LookupError>>,
    ) -> Result<ecp_core::bus::DirectoryReport, ServiceError> {
        // Failure reasons and cache counts are the admin's; and a scan of
        // the cache is not for anyone to repeat at will.
        self.authorize_root(caller, "ask about the directory")?;
        let Some(directory) = &self.directory else {
            return Ok(ecp_core::bus::DirectoryReport::default());
        };
        let config = directory.config();
        let (last_success, last_failure) = directory.health();
        let (cached_users, oldest) = self.store.lookup_cache_summary()?;
        let (answered_by, problem) = match &probe {
            Some(Ok(uri)) => (uri.clone(), String::new()),
            Some(Err(e)) => (String::new(), e.to_string()),
            None => (String::new(), String::new()),
        };
        let (last_failure, last_failure_reason) = last_failure.unwrap_or_default();
        Ok(ecp_core::bus::DirectoryReport {
            configured: true,
            servers: config.uri.clone(),
            probed: probe.is_some(),
            answered_by,
            problem,
            last_success: last_success.unwrap_or(0) as i64,
            last_failure: last_failure as i64,
            last_failure_reason,
            cached_users,
            oldest_cached: oldest.unwrap_or(0) as i64,
            cache_ttl_secs: config.cache_ttl_secs,
            max_offline_secs: config.max_offline_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_support::*;
    use ecp_core::keyfile::generate_signing_key;

    #[test]
    fn the_directory_answer_is_cached_replaced_by_a_revocation_and_bounded_offline() {
        let f = with_directory();
        let dave = generate_signing_key();
        let user = UserName::parse("dave").unwrap();
        let der = self_signed_der(&dave, &user);
        let login = |looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>| {
            let looked_up = looked_up.map(|outcome| f.service.lookup_done("dave", outcome));
            let token = f.challenge("dave", "").unwrap();
            let signature = Challenge::from_token(&token).unwrap().sign(&dave);
            f.service
                .verify_answer(&ROOT, "dave", &token, &signature, None, looked_up)
        };
        let down = || Some(Err(LookupError::Unreachable("connect timed out".into())));
        // Whether a Verify for dave with a fresh token would ask the directory.
        let due = || {
            f.service
                .directory_lookup_due(&ROOT, "dave", &f.challenge("dave", "").unwrap(), "MEUC")
                .is_some()
        };

        // Nothing cached and the directory down: cannot decide.
        assert!(due());
        assert!(matches!(
            login(down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));

        // The directory's answer logs dave in with nothing enrolled, and is
        // cached: no lookup is due within the TTL.
        assert!(login(Some(Ok(vec![der.clone()]))).is_ok());
        assert!(!due());
        assert!(login(None).is_ok());
        f.clock.advance(61);
        // Due now, but only for a genuine token of dave's: one that is not
        // ecpd's, or another user's, never makes it ask.
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "dave", "AAAA", "MEUC")
            .is_none());
        let alices = f.challenge("alice", "").unwrap();
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "dave", &alices, "MEUC")
            .is_none());
        let daves = f.challenge("dave", "").unwrap();
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "dave", &daves, "MEUC")
            .is_some());

        // The directory down: the cached answer serves until it is
        // max_offline_secs old, then the login fails closed.
        assert!(login(down()).is_ok());
        f.clock.advance(600);
        assert!(matches!(
            login(down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));

        // The directory back, with the certificate removed: refused, and
        // the empty answer replaces the cached one.
        assert!(login(Some(Ok(vec![der.clone()]))).is_ok());
        assert!(matches!(
            login(Some(Ok(Vec::new()))),
            Err(ServiceError::Auth(_))
        ));
        // "No certificate" is remembered (in memory) for the TTL: no
        // lookup, and still refused rather than unavailable.
        assert!(!due());
        assert!(matches!(login(None), Err(ServiceError::Auth(_))));
        f.clock.advance(61);
        assert!(due());
        // A failed lookup never brings the old answer back: fails closed.
        assert!(matches!(
            login(down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));

        // Made-up names the directory has no certificate for leave no
        // trace in the store.
        let before = f.service.store.lookup_cache_summary().unwrap().0;
        for i in 0..50 {
            let name = format!("nobody{i}");
            let token = f.challenge(&name, "").unwrap();
            let _ = f.service.verify_answer(
                &ROOT,
                &name,
                &token,
                "MEUCIQx",
                None,
                Some(Ok(Vec::new())),
            );
        }
        assert_eq!(f.service.store.lookup_cache_summary().unwrap().0, before);
        assert!(login(Some(Ok(vec![der.clone()]))).is_ok());

        // Hostile values (garbage, another user's certificate) give no key.
        let other = self_signed_der(&dave, &UserName::parse("erin").unwrap());
        assert!(login(Some(Ok(vec![vec![0x30, 0x82, 0xff], other]))).is_err());

        // ecpctl cache flush: root only, and the next login must ask.
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(f.service.flush_directory_cache(&bob, "").is_err());
        assert_eq!(f.service.flush_directory_cache(&ROOT, "dave").unwrap(), 1);
        assert!(due());
    }

    #[test]
    fn nouserok_with_a_directory_needs_its_word_that_there_is_no_certificate() {
        let f = with_directory();
        let dave = generate_signing_key();
        let der = self_signed_der(&dave, &UserName::parse("dave").unwrap());
        let down = || Some(Err(LookupError::Unreachable("connect timed out".into())));
        let needs = |user: &str, looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>| {
            let looked_up = looked_up.map(|outcome| f.service.lookup_done(user, outcome));
            f.service.needs_signature(&ROOT, user, looked_up)
        };
        // Unreachable, nothing cached: cannot say, so no PAM_IGNORE.
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_some());
        assert!(matches!(
            needs("erin", down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
        // The directory's "no certificate" is the only way to "not
        // enrolled", and it is remembered for the TTL.
        assert!(!needs("erin", Some(Ok(Vec::new()))).unwrap());
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_none());
        assert!(!needs("erin", None).unwrap());
        f.clock.advance(61);
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_some());
        // Any value counts, even one that is no certificate at all.
        assert!(needs("dave", Some(Ok(vec![vec![1, 2, 3]]))).unwrap());
        assert!(needs("dave", Some(Ok(vec![der]))).unwrap());
        // Cached: the directory down changes nothing until max_offline_secs.
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "dave")
            .is_none());
        f.clock.advance(61);
        assert!(needs("dave", down()).unwrap());
        // A user may ask about itself only.
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(f.service.needs_signature_lookup_due(&bob, "dave").is_none());
        assert!(f.service.needs_signature(&bob, "dave", None).is_err());
    }

    #[test]
    fn an_unusable_directory_entry_is_never_not_enrolled() {
        let f = with_directory();
        let down = || Some(Err(LookupError::Unreachable("connect timed out".into())));
        let verify = |user: &str, looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>| {
            let looked_up = looked_up.map(|outcome| f.service.lookup_done(user, outcome));
            let token = f.challenge(user, "").unwrap();
            f.service
                .verify_answer(&ROOT, user, &token, "MEUCIQx", None, looked_up)
        };
        // Garbage, or a value too big to keep (kept as an empty value):
        // the user holds a certificate, so a made-up answer is a failure,
        // never "not enrolled" (which nouserok would wave through).
        for values in [vec![b"garbage".to_vec()], vec![Vec::new()]] {
            assert!(matches!(
                verify("erin", Some(Ok(values))),
                Err(ServiceError::Auth(AuthFailure::NoValidCertificate))
            ));
        }
        // An unusable entry (too many values) drops what was cached and
        // fails closed, so padding an entry cannot keep an old answer.
        let erin = generate_signing_key();
        let der = self_signed_der(&erin, &UserName::parse("erin").unwrap());
        let token = f.challenge("erin", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&erin);
        let fresh = Some(f.service.lookup_done("erin", Ok(vec![der])));
        assert!(f
            .service
            .verify_answer(&ROOT, "erin", &token, &signature, None, fresh)
            .is_ok());
        assert!(matches!(
            verify("erin", Some(Err(LookupError::BadEntry("17 values".into())))),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
        assert!(matches!(
            verify("erin", down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
    }

    #[test]
    fn roots_directory_entry_needs_a_signature_that_it_can_never_give() {
        // Directory certificates never sign for root (ca_allow_root off),
        // but an entry holding one still means root needs a signature:
        // nouserok must not let root in on the password alone.
        let f = with_directory();
        let root_key = generate_signing_key();
        let root_der = self_signed_der(&root_key, &UserName::parse("root").unwrap());
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "root")
            .is_some());
        let answer = f.service.lookup_done("root", Ok(vec![root_der.clone()]));
        assert!(f
            .service
            .needs_signature(&ROOT, "root", Some(answer))
            .unwrap());
        assert!(f.service.needs_signature(&ROOT, "root", None).unwrap());
        let token = f.challenge("root", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&root_key);
        let verdict = f.service.verify_answer(
            &ROOT,
            "root",
            &token,
            &signature,
            None,
            Some(Ok(vec![root_der])),
        );
        assert!(
            is_auth(&verdict, AuthFailure::NoValidCertificate),
            "{verdict:?}"
        );
    }

    #[test]
    fn while_no_server_answers_logins_go_to_the_cache_at_once() {
        let f = with_directory();
        let dave = generate_signing_key();
        let der = self_signed_der(&dave, &UserName::parse("dave").unwrap());
        let _ = f.service.lookup_done("dave", Ok(vec![der]));
        let due = |f: &Fixture| {
            f.service
                .directory_lookup_due(&ROOT, "dave", &f.challenge("dave", "").unwrap(), "MEUC")
                .is_some()
        };
        f.clock.advance(61);
        assert!(due(&f), "the cached answer is older than the TTL");
        let _ = f.service.lookup_done(
            "dave",
            Err(LookupError::Unreachable("no answer within 4000 ms".into())),
        );
        // Down: the cache answers without a lookup, and the login works.
        assert!(!due(&f));
        let token = f.challenge("dave", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&dave);
        assert!(f
            .service
            .verify_answer(&ROOT, "dave", &token, &signature, None, None)
            .is_ok());
        // A user with nothing cached is refused at once, not after a wait.
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_none());
        assert!(matches!(
            f.service.needs_signature(&ROOT, "erin", None),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
        // After the retry time, the servers are tried again.
        f.clock.advance(crate::directory::DOWN_RETRY_SECS);
        assert!(due(&f));
    }

    #[test]
    fn only_an_answer_that_could_pass_makes_ecpd_ask_the_directory() {
        let f = with_directory();
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        let token = f.challenge("dave", "").unwrap();
        let due = |caller: &Caller, token: &str, signature: &str| {
            f.service
                .directory_lookup_due(caller, "dave", token, signature)
                .is_some_and(|d| d.runs_lookup())
        };
        assert!(due(&ROOT, &token, "MEUC"));
        assert!(!due(&ROOT, &token, ""), "no signature");
        assert!(!due(&bob, &token, "MEUC"), "another user's caller");
        // One lookup per user at a time: a second login waits for the
        // first one's answer instead of deciding from a stale cache.
        let first = f
            .service
            .directory_lookup_due(&ROOT, "dave", &token, "MEUC");
        assert!(first.as_ref().is_some_and(|d| d.runs_lookup()));
        let second = f
            .service
            .directory_lookup_due(&ROOT, "dave", &token, "MEUC");
        assert!(
            second.is_some_and(|d| !d.runs_lookup()),
            "one already under way"
        );
        drop(first);
        assert!(due(&ROOT, &token, "MEUC"));
        // A penalised source asks nothing.
        let f = fixture(
            "failures_before_penalty = 1\n[directory]\nuri = [\"ldapi://%2Fnowhere\"]\n\
             base_dn = \"dc=example,dc=org\"\n",
        );
        let tokens: Vec<String> = (0..3).map(|_| f.challenge("dave", "").unwrap()).collect();
        for token in &tokens[..2] {
            let _ = f.service.verify_answer(
                &ROOT,
                "dave",
                token,
                "MEUCIQx",
                None,
                Some(Ok(vec![b"x".to_vec()])),
            );
        }
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "dave", &tokens[2], "MEUC")
            .is_none());
        // A used token asks nothing either.
        let token = f.challenge("alice", "").unwrap();
        f.service
            .verify(&ROOT, "alice", &token, &f.sign(&token))
            .unwrap();
        assert!(f
            .service
            .directory_lookup_due(&ROOT, "alice", &token, "MEUC")
            .is_none());
    }

    #[test]
    fn keys_from_this_host_still_work_while_the_directory_is_down() {
        let f = with_directory();
        let down = || Some(Err(LookupError::Unreachable("connect timed out".into())));
        // alice is enrolled here: the directory being down does not matter
        // to a signature her enrolled key makes.
        let token = f.challenge("alice", "").unwrap();
        assert!(f
            .service
            .verify_answer(&ROOT, "alice", &token, &f.sign(&token), None, down())
            .is_ok());
        // Any other signature cannot be decided (a directory key might
        // have made it).
        let token = f.challenge("alice", "").unwrap();
        let stranger = Challenge::from_token(&token)
            .unwrap()
            .sign(&generate_signing_key());
        assert!(matches!(
            f.service
                .verify_answer(&ROOT, "alice", &token, &stranger, None, down()),
            Err(ServiceError::DirectoryUnavailable(_))
        ));
    }

    #[test]
    fn a_cache_flush_also_forgets_names_without_a_certificate_and_status_is_roots() {
        let f = with_directory();
        let _ = f.service.lookup_done("erin", Ok(Vec::new()));
        assert!(!f.service.needs_signature(&ROOT, "erin", None).unwrap());
        f.service.flush_directory_cache(&ROOT, "erin").unwrap();
        assert!(f
            .service
            .needs_signature_lookup_due(&ROOT, "erin")
            .is_some());
        let bob = Caller {
            uid: 1000,
            name: Some("bob".into()),
        };
        assert!(f.service.directory_report(&bob, None).is_err());
        let report = f.service.directory_report(&ROOT, None).unwrap();
        assert!(report.configured && !report.probed);
    }
}
