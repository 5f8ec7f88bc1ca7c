//! The fixture the service's in-process tests share: a service on a
//! temporary store with a clock that moves only when told.

use super::*;
use crate::clock::{ManualClock, SystemClock};
use ecp_core::keyfile::generate_signing_key;
use p256::ecdsa::SigningKey;

pub(crate) const ROOT: Caller = Caller { uid: 0, name: None };

pub(crate) struct Fixture {
    pub(crate) service: Service,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) key: SigningKey,
}

/// A service on a temporary store whose clock starts at the real time
/// (certificates are made with it) and moves only when told; `alice`
/// is enrolled.
pub(crate) fn fixture(config: &str) -> Fixture {
    let config = Config::parse(&format!("host_name = \"h\"\n{config}"), "test").unwrap();
    let clock = Arc::new(ManualClock::at(SystemClock.now()));
    let service = Service::new(
        Store::temporary().unwrap(),
        config,
        HostName::parse("h").unwrap(),
        clock.clone(),
    )
    .unwrap();
    let key = generate_signing_key();
    let user = UserName::parse("alice").unwrap();
    let pem = ecp_core::certificate::build_self_signed_certificate(&key, &user, 30).unwrap();
    service.enroll(&ROOT, "alice", &pem, "laptop").unwrap();
    Fixture {
        service,
        clock,
        key,
    }
}

impl Fixture {
    pub(crate) fn challenge(&self, user: &str, rhost: &str) -> Result<String, ServiceError> {
        self.service.challenge(&ROOT, user, "sshd", rhost)
    }

    pub(crate) fn sign(&self, token: &str) -> String {
        Challenge::from_token(token).unwrap().sign(&self.key)
    }

    /// The fingerprint of the certificate the fixture enrolled for alice.
    pub(crate) fn first_fingerprint(&self) -> String {
        self.service.list(&ROOT, "alice").unwrap()[0]
            .fingerprint
            .clone()
    }

    /// A whole login for alice from `rhost`.
    pub(crate) fn login(&self, rhost: &str) -> Result<String, ServiceError> {
        let token = self.challenge("alice", rhost)?;
        self.service
            .verify(&ROOT, "alice", &token, &self.sign(&token))
    }

    /// A challenge for alice from `rhost`, answered with garbage.
    pub(crate) fn bad_answer(&self, rhost: &str) -> Result<String, ServiceError> {
        let token = self.challenge("alice", rhost)?;
        let stranger = generate_signing_key();
        let signature = Challenge::from_token(&token).unwrap().sign(&stranger);
        self.service.verify(&ROOT, "alice", &token, &signature)
    }
}

pub(crate) fn is_auth(result: &Result<String, ServiceError>, expected: AuthFailure) -> bool {
    matches!(result, Err(ServiceError::Auth(reason)) if *reason == expected)
}

/// An organisation CA made in-process: its certificate file in `dir`
/// and its key.
pub(crate) fn organisation_ca(
    dir: &std::path::Path,
) -> (std::path::PathBuf, ecp_core::issue::CaSigningKey) {
    use std::str::FromStr;
    use x509_cert::builder::{profile::cabf::Root, Builder, CertificateBuilder};
    let key = generate_signing_key();
    let subject = x509_cert::name::Name::from_str("CN=Test CA,O=ecp tests,C=XX").unwrap();
    let validity =
        x509_cert::time::Validity::from_now(std::time::Duration::from_secs(86_400)).unwrap();
    let spki = x509_cert::spki::SubjectPublicKeyInfo::from_key(key.verifying_key()).unwrap();
    let certificate = CertificateBuilder::new(
        Root::new(false, subject).unwrap(),
        x509_cert::serial_number::SerialNumber::from(7u32),
        validity,
        spki,
    )
    .unwrap()
    .build::<_, p256::ecdsa::DerSignature>(&key)
    .unwrap();
    use pkcs8::der::EncodePem;
    let pem = certificate.to_pem(pkcs8::der::pem::LineEnding::LF).unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    (path, ecp_core::issue::CaSigningKey::P256(key))
}

/// A certificate for `user`'s `key` from the CA, in DER.
pub(crate) fn issued(
    ca: &(std::path::PathBuf, ecp_core::issue::CaSigningKey),
    user: &str,
    key: &SigningKey,
) -> Vec<u8> {
    let request =
        ecp_core::issue::build_certificate_request(key, &UserName::parse(user).unwrap()).unwrap();
    let request = ecp_core::issue::check_certificate_request(request.as_bytes()).unwrap();
    let pem = ecp_core::issue::issue_user_certificate(
        &std::fs::read(&ca.0).unwrap(),
        &ca.1,
        &request,
        30,
    )
    .unwrap();
    ecp_core::certificate::parse_user_certificate_pem(pem.as_bytes())
        .unwrap()
        .der()
        .to_vec()
}

/// The usual fixture, trusting the CA certificate in `ca_file`.
pub(crate) fn trusting(ca_file: &std::path::Path) -> Fixture {
    fixture(&format!(
        "ca_file = \"{}\"\nrequire_crl = false\n",
        ca_file.display()
    ))
}

/// The DER of a self-signed certificate for `user`'s `key`.
pub(crate) fn self_signed_der(key: &SigningKey, user: &UserName) -> Vec<u8> {
    let pem = ecp_core::certificate::build_self_signed_certificate(key, user, 30).unwrap();
    ecp_core::certificate::parse_certificate_pem(pem.as_bytes())
        .unwrap()
        .der()
        .to_vec()
}

/// A service whose users' certificates come from a directory (no
/// server: the tests hand it the directory's answers).
pub(crate) fn with_directory() -> Fixture {
    fixture(
        "[directory]\nuri = [\"ldapi://%2Fnowhere\"]\nbase_dn = \"dc=example,dc=org\"\n\
         cache_ttl_secs = 60\nmax_offline_secs = 600\n",
    )
}

/// A login of `user` from this host, answered with `key`.
pub(crate) fn login_with(
    f: &Fixture,
    user: &str,
    key: &SigningKey,
) -> Result<String, ServiceError> {
    let token = f.challenge(user, "")?;
    let signature = Challenge::from_token(&token).unwrap().sign(key);
    f.service.verify(&ROOT, user, &token, &signature)
}

/// The fingerprint of a certificate in PEM.
pub(crate) fn fingerprint_of(pem: &str) -> String {
    ecp_core::certificate::parse_certificate_pem(pem.as_bytes())
        .unwrap()
        .fingerprint()
}

/// Asks for a renewal challenge for `pem` and proves it with `key`.
pub(crate) fn renew_with(
    f: &Fixture,
    caller: &Caller,
    user: &str,
    key: &SigningKey,
    pem: &str,
    retire_old: bool,
) -> Result<Renewed, ServiceError> {
    let token = f.service.renewal_challenge(caller, user, pem)?;
    let renewal = ecp_core::challenge::RenewalChallenge::from_token(&token).unwrap();
    f.service.renew(
        caller,
        user,
        &token,
        &renewal.sign(key),
        pem,
        "",
        retire_old,
    )
}

/// A self-signed certificate for `user`'s `key`, valid between these
/// Unix times.
pub(crate) fn certificate_between(
    key: &SigningKey,
    user: &str,
    not_before: u64,
    not_after: u64,
) -> String {
    let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    ecp_core::certificate::build_self_signed_certificate_between(
        key,
        &UserName::parse(user).unwrap(),
        at(not_before),
        at(not_after),
    )
    .unwrap()
}

impl Fixture {
    /// A certificate for `user`'s `key`, made now on the fixture's clock
    /// (backdated five minutes, as keygen does), valid for `days`.
    pub(crate) fn certificate_for(&self, key: &SigningKey, user: &str, days: u64) -> String {
        let now = self.clock.now();
        certificate_between(key, user, now - 300, now + days * 86_400)
    }

    /// A new key and its certificate for `user`, made now, valid `days`.
    pub(crate) fn successor_valid_for(&self, user: &str, days: u64) -> (SigningKey, String) {
        let key = generate_signing_key();
        let pem = self.certificate_for(&key, user, days);
        (key, pem)
    }

    /// A 30-day successor for `user`, made now.
    pub(crate) fn successor(&self, user: &str) -> (SigningKey, String) {
        self.successor_valid_for(user, 30)
    }
}
