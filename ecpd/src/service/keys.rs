//! Which keys may sign for a user, and why: the enrolled certificates,
//! a certificate the user presented (issued by a trusted CA), and the
//! directory's. Every source is checked here, at every login, and a
//! revoked key is dropped whichever source offers it.

use super::*;

/// Why a key may sign for a user.
pub(super) enum Authority {
    /// A certificate from the user's directory entry (or its cached copy).
    Directory { fingerprint: String },
    /// An enrolled certificate, by fingerprint.
    Enrolled { fingerprint: String },
    /// A certificate the user presented, issued by a trusted CA.
    Ca {
        issuer: String,
        serial: String,
        fingerprint: String,
    },
}

impl Authority {
    fn fingerprint(&self) -> &str {
        match self {
            Authority::Directory { fingerprint }
            | Authority::Enrolled { fingerprint }
            | Authority::Ca { fingerprint, .. } => fingerprint,
        }
    }
}

/// Every key that may sign for a user now, and what the directory said.
pub(super) struct SigningKeys {
    pub keys: Vec<(p256::ecdsa::VerifyingKey, Authority)>,
    /// Whether the directory holds any value for the user, usable or not.
    pub directory_holds_values: bool,
    /// Why the directory could not be asked, when keys from elsewhere
    /// may still decide the login.
    pub directory_unavailable: Option<ServiceError>,
}

impl Service {
    /// The keys that may sign for `user` at `now`, from every source. A
    /// directory that cannot be asked does not stop keys from this host
    /// or a CA: only if none of them verifies is the login undecidable.
    pub(super) fn keys_that_may_sign(
        &self,
        user: &UserName,
        presented: Option<&[u8]>,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
        now: u64,
    ) -> Result<SigningKeys, ServiceError> {
        let keys = self.signing_keys(user, presented, now)?;
        let mut keys = self.without_revoked_keys(user, keys)?;
        let mut directory_holds_values = false;
        let mut directory_unavailable = None;
        match self.directory_keys(user, looked_up, now) {
            Ok((directory_keys, holds_values)) => {
                keys.extend(self.without_revoked_keys(user, directory_keys)?);
                directory_holds_values = holds_values;
            }
            Err(e) if keys.is_empty() => return Err(e),
            Err(e) => directory_unavailable = Some(e),
        }
        Ok(SigningKeys {
            keys,
            directory_holds_values,
            directory_unavailable,
        })
    }

    /// Revocation is of the key: a revoked key signs for no one, whatever
    /// certificate carries it (a renewal of itself, a CA's, the
    /// directory's). A store that cannot say refuses.
    fn without_revoked_keys(
        &self,
        user: &UserName,
        keys: Vec<(p256::ecdsa::VerifyingKey, Authority)>,
    ) -> Result<Vec<(p256::ecdsa::VerifyingKey, Authority)>, ServiceError> {
        let mut kept = Vec::with_capacity(keys.len());
        for (key, authority) in keys {
            match self
                .store
                .revoked_key(&ecp_core::certificate::key_id(&key))?
            {
                None => kept.push((key, authority)),
                Some(revoked) => {
                    warn!(event = "verify", user = %user, fingerprint = %authority.fingerprint(), revoked = %revoked.fingerprint, revoked_user = %revoked.user, "skipping a certificate whose key was revoked");
                }
            }
        }
        Ok(kept)
    }

    /// `der` if an organisation CA this host trusts issued it for `user`,
    /// valid now and not revoked. Once this host has held a CRL of that
    /// CA, a CA without one refuses even when `require_crl` is off: a CRL
    /// file replaced by one that lacks the CA's list must not forget its
    /// revocations. The reason, for the journal, on refusal.
    fn issued_by_trusted_ca(
        &self,
        der: &[u8],
        user: &UserName,
        now: u64,
    ) -> Result<ecp_core::trust::Accepted, String> {
        let trust = self.trust.current();
        let accepted = trust
            .check_presented(der, user, now as i64, self.skew(), self.config.crl_policy())
            .map_err(|e| e.to_string())?;
        if !accepted.crl_checked {
            let trust_ca = trust
                .cas()
                .iter()
                .find(|ca| ca.identity == accepted.ca_identity);
            let seen = match trust_ca {
                Some(ca) => held_crl_mark(&self.store, ca).map_err(|e| e.to_string())?,
                None => None,
            };
            if seen.is_some() {
                return Err(format!(
                    "this host has held a CRL of {}, and the CRL file now has none for it: certificates it issued are refused until it does",
                    accepted.issuer
                ));
            }
        }
        Ok(accepted)
    }

    /// The keys that may sign for `user` at `now`, and why: each enrolled
    /// certificate that is still valid, and the presented one if a trusted
    /// CA issued it. What was passed over is logged with its reason.
    fn signing_keys(
        &self,
        user: &UserName,
        presented: Option<&[u8]>,
        now: u64,
    ) -> Result<Vec<(p256::ecdsa::VerifyingKey, Authority)>, ServiceError> {
        let mut keys = Vec::new();
        for (fingerprint, stored) in self.store.certificates_of(user.as_str())? {
            // Re-validated at every use: it may have expired since enrolment.
            match self
                .parsed_certificate(&fingerprint, &stored.pem)
                .and_then(|cert| {
                    cert.check_user(user)?;
                    cert.check_time(now as i64, self.skew())?;
                    Ok(cert)
                }) {
                Ok(cert) => keys.push((*cert.public_key(), Authority::Enrolled { fingerprint })),
                Err(e) => {
                    info!(event = "verify", user = %user, fingerprint = %fingerprint, reason = %e, "skipping certificate");
                }
            }
        }
        if let Some(der) = presented {
            match self.issued_by_trusted_ca(der, user, now) {
                Ok(accepted) if !self.config.ca_allow_root && is_superuser(user) => {
                    warn!(event = "verify", user = %user, presented = "refused", serial = %accepted.certificate.serial_hex(), issuer = ?accepted.issuer, reason = "a CA-issued certificate may not sign for an account with uid 0 (ca_allow_root is off)", "presented certificate not accepted");
                }
                Ok(accepted) => keys.push((
                    *accepted.certificate.public_key(),
                    Authority::Ca {
                        issuer: accepted.issuer,
                        serial: accepted.certificate.serial_hex().to_owned(),
                        fingerprint: accepted.certificate.fingerprint(),
                    },
                )),
                Err(e) => {
                    // The real reason goes to the journal only: outside,
                    // a refused certificate looks like a bad signature.
                    let (serial, issuer) = ecp_core::certificate::parse_user_certificate_der(der)
                        .map(|c| (c.serial_hex().to_owned(), c.issuer().to_owned()))
                        .unwrap_or_default();
                    // Debug formatting: names in a certificate are the presenter's
                    // text, and must not forge log lines.
                    warn!(event = "verify", user = %user, presented = "refused", serial = %serial, issuer = ?issuer, reason = ?e, "presented certificate not accepted");
                }
            }
        }
        Ok(keys)
    }

    /// The keys the directory vouches for: its certificates that are
    /// valid for `user` now (self-signed, or issued by a trusted CA); and
    /// whether it holds any value at all for the user, usable or not.
    fn directory_keys(
        &self,
        user: &UserName,
        looked_up: Option<Result<Vec<Vec<u8>>, LookupError>>,
        now: u64,
    ) -> Result<(Vec<(p256::ecdsa::VerifyingKey, Authority)>, bool), ServiceError> {
        let certificates = self.directory_certificates(user, looked_up, now)?;
        let holds_values = !certificates.is_empty();
        // Root's entry may hold values (so it needs a signature, and
        // nouserok must not pass it), but none of them signs for it.
        if holds_values && self.directory_refused_for(user) {
            info!(event = "verify", user = %user, source = "directory", "directory certificates never sign for an account with uid 0 (ca_allow_root is off)");
            return Ok((Vec::new(), true));
        }
        let mut keys = Vec::new();
        for der in certificates {
            let checked = self
                .self_signed_der(&der)
                .and_then(|cert| {
                    cert.check_user(user)?;
                    cert.check_time(now as i64, self.skew())?;
                    Ok(cert)
                })
                .map(|cert| (*cert.public_key(), cert.fingerprint()))
                .or_else(|e| {
                    // Not self-signed: a trusted CA may have issued it.
                    self.issued_by_trusted_ca(&der, user, now)
                        .map(|a| (*a.certificate.public_key(), a.certificate.fingerprint()))
                        .map_err(|_| e)
                });
            match checked {
                Ok((key, fingerprint)) => keys.push((key, Authority::Directory { fingerprint })),
                Err(e) => {
                    info!(event = "verify", user = %user, source = "directory", reason = ?e.to_string(), "skipping a directory certificate");
                }
            }
        }
        Ok((keys, holds_values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_support::*;
    use ecp_core::keyfile::generate_signing_key;

    #[test]
    fn the_keys_that_may_sign_are_the_enrolled_ones_and_a_presented_ca_issued_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = organisation_ca(dir.path());
        let f = trusting(&ca.0);
        let alice = UserName::parse("alice").unwrap();
        let now = f.clock.now();
        let other_key = generate_signing_key();

        let enrolled_only = f.service.signing_keys(&alice, None, now).unwrap();
        assert_eq!(enrolled_only.len(), 1);
        assert!(matches!(enrolled_only[0].1, Authority::Enrolled { .. }));

        let presented = issued(&ca, "alice", &other_key);
        let both = f
            .service
            .signing_keys(&alice, Some(&presented), now)
            .unwrap();
        assert_eq!(both.len(), 2);
        assert!(matches!(&both[1].1, Authority::Ca { issuer, .. } if issuer.contains("Test CA")));
        assert_eq!(both[1].0, *other_key.verifying_key());

        // root: not from a CA unless ca_allow_root.
        let root = UserName::parse("root").unwrap();
        let for_root = issued(&ca, "root", &other_key);
        assert!(f
            .service
            .signing_keys(&root, Some(&for_root), now)
            .unwrap()
            .is_empty());
        let allowing = fixture(&format!(
            "ca_file = \"{}\"\nrequire_crl = false\nca_allow_root = true\n",
            ca.0.display()
        ));
        assert_eq!(
            allowing
                .service
                .signing_keys(&root, Some(&for_root), now)
                .unwrap()
                .len(),
            1
        );

        // Not for alice, not from a trusted CA, or garbage: not a key.
        let for_bob = issued(&ca, "bob", &other_key);
        let self_signed = self_signed_der(&other_key, &alice);
        for refused in [for_bob, self_signed, vec![0x30, 0x00]] {
            assert_eq!(
                f.service
                    .signing_keys(&alice, Some(&refused), now)
                    .unwrap()
                    .len(),
                1
            );
        }
    }

    #[test]
    fn a_ca_issued_key_logs_in_unenrolled_and_a_refusal_still_costs_one_check() {
        let dir = tempfile::tempdir().unwrap();
        let ca = organisation_ca(dir.path());
        let f = trusting(&ca.0);
        let carol = generate_signing_key();
        let certificate = issued(&ca, "carol", &carol);
        let token = f.challenge("carol", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&carol);
        let fingerprint = f
            .service
            .verify_presented(&ROOT, "carol", &token, &signature, &certificate)
            .unwrap();
        assert_eq!(
            fingerprint,
            ecp_core::certificate::fingerprint_of_der(&certificate)
        );
        assert!(f.service.list(&ROOT, "carol").unwrap().is_empty());

        // Without the certificate, or with a stranger's signature: refused,
        // and never as "not enrolled" (which nouserok would let through).
        let token = f.challenge("carol", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&carol);
        assert!(matches!(
            f.service.verify(&ROOT, "carol", &token, &signature),
            Err(ServiceError::Auth(AuthFailure::NoValidCertificate))
        ));
        let token = f.challenge("carol", "").unwrap();
        let stranger = Challenge::from_token(&token)
            .unwrap()
            .sign(&generate_signing_key());
        assert!(matches!(
            f.service
                .verify_presented(&ROOT, "carol", &token, &stranger, &certificate),
            Err(ServiceError::Auth(AuthFailure::BadSignature))
        ));
        // A certificate from no trusted CA: the same answer as a bad
        // signature, though carol has no key at all here.
        let token = f.challenge("carol", "").unwrap();
        let signature = Challenge::from_token(&token).unwrap().sign(&carol);
        let self_signed = self_signed_der(&carol, &UserName::parse("carol").unwrap());
        assert!(matches!(
            f.service
                .verify_presented(&ROOT, "carol", &token, &signature, &self_signed),
            Err(ServiceError::Auth(AuthFailure::BadSignature))
        ));
        assert!(f.service.needs_signature(&ROOT, "carol", None).unwrap());
        assert!(f
            .service
            .needs_signature(&ROOT, "nobody-here", None)
            .unwrap());
    }

    #[test]
    fn signing_keys_lists_enrolled_and_directory_keys_for_root_or_the_user_only() {
        let f = with_directory();
        let alice = UserName::parse("alice").unwrap();
        let der = |key: &p256::ecdsa::SigningKey| {
            ecp_core::certificate::public_key_der(key.verifying_key())
        };
        let in_directory = generate_signing_key();
        let looked_up = f
            .service
            .lookup_done("alice", Ok(vec![self_signed_der(&in_directory, &alice)]));
        let keys = f
            .service
            .signing_public_keys(&ROOT, "alice", Some(looked_up))
            .unwrap();
        assert_eq!(keys, vec![der(&f.key), der(&in_directory)]);

        let alice_caller = Caller {
            uid: 1000,
            name: Some("alice".into()),
        };
        assert_eq!(
            f.service
                .signing_public_keys(&alice_caller, "alice", None)
                .unwrap()
                .len(),
            2,
            "from the cache"
        );
        let bob = Caller {
            uid: 1001,
            name: Some("bob".into()),
        };
        assert!(matches!(
            f.service.signing_public_keys(&bob, "alice", None),
            Err(ServiceError::AccessDenied(_))
        ));

        f.service
            .revoke(&ROOT, "alice", &f.first_fingerprint(), false)
            .unwrap();
        assert_eq!(
            f.service.signing_public_keys(&ROOT, "alice", None).unwrap(),
            vec![der(&in_directory)]
        );
    }

    #[test]
    fn a_revoked_key_signs_through_no_source() {
        // alice's key, revoked here, comes back in a CA-issued certificate
        // and in her directory entry: neither may sign with it.
        let dir = tempfile::tempdir().unwrap();
        let ca = organisation_ca(dir.path());
        let f = fixture(&format!(
            "ca_file = \"{}\"\nrequire_crl = false\n\
             [directory]\nuri = [\"ldapi://%2Fnowhere\"]\nbase_dn = \"dc=example,dc=org\"\n",
            ca.0.display()
        ));
        let alice = UserName::parse("alice").unwrap();
        let fingerprint = f.first_fingerprint();
        let from_ca = issued(&ca, "alice", &f.key);
        let in_directory = self_signed_der(&f.key, &alice);
        let now = f.clock.now();
        let offered = |f: &Fixture| {
            let directory = f
                .service
                .lookup_done("alice", Ok(vec![in_directory.clone()]));
            f.service
                .keys_that_may_sign(&alice, Some(&from_ca), Some(directory), now)
                .unwrap()
                .keys
                .len()
        };
        assert_eq!(offered(&f), 3, "enrolled, CA-issued, directory");
        f.service
            .revoke(&ROOT, "alice", &fingerprint, false)
            .unwrap();
        assert_eq!(offered(&f), 0);

        let token = f.challenge("alice", "").unwrap();
        assert!(f
            .service
            .verify_presented(&ROOT, "alice", &token, &f.sign(&token), &from_ca)
            .is_err());
    }
}
