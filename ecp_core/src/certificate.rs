//! User certificates: self-signed X.509 v3, ECDSA P-256 with SHA-256,
//! subject CN = the user name.
//!
//! [`validate_certificate`] is the one rule every part of ecp applies: the
//! CLI before enrolling, the daemon when enrolling and again at every
//! verification. A certificate only carries a public key, so it is safe for
//! the daemon to store.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::hex;
use crate::names::UserName;
use crate::oids;
use crate::when::format_utc;

/// The largest certificate PEM we accept. Ours are about 600 bytes.
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;

/// Default validity of a new certificate.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;

/// Longest validity `ecpctl keygen --days` will write (about 10 years).
pub const MAX_VALIDITY_DAYS: u32 = 3660;

/// Default tolerance for clocks that disagree about "now".
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// How far a new certificate's notBefore is set into the past, so that a
/// server whose clock is a little behind the user's accepts it at once.
const BACKDATE: Duration = Duration::from_secs(300);

const CERT_PEM_LABEL: &str = "CERTIFICATE";

/// Why a certificate was refused. Each rule has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate is {len} bytes long; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("the certificate is not PEM text: {detail}")]
    NotPem { detail: String },
    #[error("expected exactly one `BEGIN CERTIFICATE` block and nothing else: {detail}")]
    NotSingleCertificate { detail: String },
    #[error("the certificate is damaged: {detail}")]
    Malformed { detail: String },
    #[error("the certificate's subject has no common name (CN)")]
    NoCommonName,
    #[error("the certificate's subject has {count} common names (CN); exactly one is required")]
    SeveralCommonNames { count: usize },
    #[error("the certificate's common name (CN) is not readable text")]
    CommonNameNotText,
    #[error("the certificate holds an {algorithm} key; ecp needs an ECDSA P-256 key")]
    NotEcKey { algorithm: String },
    #[error("the certificate's key is on curve {curve}; ecp needs P-256 (prime256v1)")]
    WrongCurve { curve: String },
    #[error("the certificate's public key is not a valid P-256 point")]
    InvalidPublicKey,
    #[error("the certificate is signed with {algorithm}; ecp needs ecdsa-with-SHA256")]
    UnsupportedSignatureAlgorithm { algorithm: String },
    #[error("the certificate is not validly self-signed by its own key")]
    BadSelfSignature,
    #[error("the certificate is a CA certificate (basicConstraints CA:TRUE); a user certificate must not be one")]
    IsCa,
    #[error("the certificate's key usage does not allow digital signatures")]
    KeyUsageForbidsSigning,
    #[error("the certificate is not valid before {}", format_utc(*not_before))]
    NotYetValid { not_before: i64 },
    #[error("the certificate expired on {}", format_utc(*not_after))]
    Expired { not_after: i64 },
    #[error("the certificate is for {common_name:?}, not for user {user:?}")]
    WrongUser { common_name: String, user: String },
    #[error("could not build the certificate: {detail}")]
    Build { detail: String },
}

/// A parsed user certificate that passed the structural rules (one CN, a
/// P-256 key, key usage allowing signatures). Who vouches for it is a
/// separate question: its own self-signature for an enrolled certificate
/// ([`ParsedCertificate::check_self_signed`]), or an organisation CA
/// (`crate::trust`). Time and user checks are in [`validate_certificate`].
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    der: Vec<u8>,
    common_name: String,
    not_before: i64,
    not_after: i64,
    serial_hex: String,
    serial: Vec<u8>,
    public_key: VerifyingKey,
    issuer: String,
    issuer_der: Vec<u8>,
    subject_der: Vec<u8>,
    tbs: Vec<u8>,
    signature_algorithm: String,
    signature: Vec<u8>,
    is_ca: bool,
    /// Critical extensions other than those ecp applies (basic
    /// constraints, key usage, extended key usage, subject alternative
    /// name), dotted.
    unknown_critical: Vec<String>,
}

impl ParsedCertificate {
    /// The certificate in DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as PEM text, as `openssl x509` writes it.
    pub fn to_pem(&self) -> String {
        pkcs8::der::pem::encode_string(CERT_PEM_LABEL, pkcs8::der::pem::LineEnding::LF, &self.der)
            .expect("PEM encoding of a parsed certificate cannot fail")
    }

    /// SHA-256 over the DER encoding, lowercase hex: what `ecpctl list`
    /// shows and `ecpctl revoke` takes.
    pub fn fingerprint(&self) -> String {
        fingerprint_of_der(&self.der)
    }

    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// notBefore, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// notAfter, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// The serial number's DER integer bytes.
    pub fn serial_bytes(&self) -> &[u8] {
        &self.serial
    }

    pub fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }

    /// The [`key_id`] of the certificate's public key.
    pub fn key_id(&self) -> String {
        key_id(&self.public_key)
    }

    /// The issuer's name, as OpenSSL prints it in one line.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The issuer's name in DER, to match a CA's subject exactly.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer_der
    }

    /// Whether issuer and subject are the same name (self-signed, as an
    /// enrolled certificate is; a CA-issued one names its CA).
    pub fn is_self_issued(&self) -> bool {
        self.issuer_der == self.subject_der
    }

    /// The signed part (tbsCertificate) in DER.
    pub fn tbs(&self) -> &[u8] {
        &self.tbs
    }

    /// The signature algorithm's OID, dotted.
    pub fn signature_algorithm(&self) -> &str {
        &self.signature_algorithm
    }

    /// The issuer's signature over [`Self::tbs`].
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Critical extensions ecp does not apply; RFC 5280 says a certificate
    /// with one must not be relied on.
    pub fn unknown_critical_extensions(&self) -> &[String] {
        &self.unknown_critical
    }

    /// Whether basicConstraints says CA:TRUE.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// The anchor of an enrolled certificate: signed by its own key with
    /// ecdsa-with-SHA256.
    pub fn check_self_signed(&self) -> Result<(), CertificateError> {
        if self.signature_algorithm != oids::ECDSA_WITH_SHA256 {
            return Err(CertificateError::UnsupportedSignatureAlgorithm {
                algorithm: self.signature_algorithm.clone(),
            });
        }
        let signature =
            Signature::from_der(&self.signature).map_err(|_| CertificateError::BadSelfSignature)?;
        crate::verify::p256_sha256(&self.public_key, &self.tbs, &signature)
            .map_err(|_| CertificateError::BadSelfSignature)
    }

    /// Checks the validity window against `now` (Unix seconds), allowing
    /// `skew` either way.
    pub fn check_time(&self, now: i64, skew: Duration) -> Result<(), CertificateError> {
        let skew = i64::try_from(skew.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_add(skew) < self.not_before {
            return Err(CertificateError::NotYetValid {
                not_before: self.not_before,
            });
        }
        if now.saturating_sub(skew) > self.not_after {
            return Err(CertificateError::Expired {
                not_after: self.not_after,
            });
        }
        Ok(())
    }

    /// Checks that the CN is exactly `user`.
    pub fn check_user(&self, user: &UserName) -> Result<(), CertificateError> {
        if self.common_name != user.as_str() {
            return Err(CertificateError::WrongUser {
                common_name: self.common_name.clone(),
                user: user.as_str().to_owned(),
            });
        }
        Ok(())
    }
}

/// SHA-256 fingerprint of DER bytes, lowercase hex without separators.
pub fn fingerprint_of_der(der: &[u8]) -> String {
    hex::encode(&Sha256::digest(der))
}

/// What names a key whatever certificate carries it: SHA-256 over its
/// SubjectPublicKeyInfo (DER), lowercase hex. Revocation is of the key,
/// so this, not a certificate's fingerprint, is what a revoked key is
/// remembered by. OpenSSL gives the same digest:
/// `openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public_key_der(key)))
}

/// The key's SubjectPublicKeyInfo, DER-encoded.
pub fn public_key_der(key: &VerifyingKey) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey;
    key.to_public_key_der()
        .expect("a P-256 public key always encodes")
        .as_bytes()
        .to_vec()
}

/// The rule every part of ecp applies before trusting a certificate for
/// `user` at time `now` (Unix seconds).
pub fn validate_certificate(
    pem: &[u8],
    user: &UserName,
    now: i64,
    skew: Duration,
) -> Result<ParsedCertificate, CertificateError> {
    let cert = parse_certificate_pem(pem)?;
    cert.check_user(user)?;
    cert.check_time(now, skew)?;
    Ok(cert)
}

/// What can sign a certificate or request as a P-256 key: a key in
/// memory ([`p256::ecdsa::SigningKey`]) or one on a hardware token (ecpctl's PKCS#11
/// signer), as the x509 builders need it.
pub trait P256Signer:
    p256::ecdsa::signature::Signer<DerSignature>
    + p256::ecdsa::signature::Keypair<VerifyingKey = VerifyingKey>
    + x509_cert::spki::DynSignatureAlgorithmIdentifier
{
}

impl<S> P256Signer for S where
    S: p256::ecdsa::signature::Signer<DerSignature>
        + p256::ecdsa::signature::Keypair<VerifyingKey = VerifyingKey>
        + x509_cert::spki::DynSignatureAlgorithmIdentifier
{
}

/// Parses one PEM certificate and applies the rules that do not depend on
/// the time or the user: exactly one CN, a P-256 key, ecdsa-with-SHA256,
/// a valid self-signature, and key usage (if present) allowing signatures.
pub fn parse_certificate_pem(pem: &[u8]) -> Result<ParsedCertificate, CertificateError> {
    parse_certificate_der(&pem_to_der(pem)?)
}

/// The DER inside one PEM certificate, and nothing else around it.
fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, CertificateError> {
    if pem.len() > MAX_CERTIFICATE_LEN {
        return Err(CertificateError::TooLarge {
            len: pem.len(),
            max: MAX_CERTIFICATE_LEN,
        });
    }
    let text = std::str::from_utf8(pem)
        .map_err(|_| CertificateError::NotPem {
            detail: "it is not text (DER? convert with `openssl x509 -inform der`)".into(),
        })?
        .trim();
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    if !text.starts_with(begin) {
        return Err(CertificateError::NotPem {
            detail: "it does not start with `-----BEGIN CERTIFICATE-----`".into(),
        });
    }
    if text.matches(begin).count() != 1 || !text.ends_with(end) {
        return Err(CertificateError::NotSingleCertificate {
            detail: "there is more than one block, or text after the END line".into(),
        });
    }
    let (_, der) =
        pkcs8::der::pem::decode_vec(text.as_bytes()).map_err(|e| CertificateError::NotPem {
            detail: e.to_string(),
        })?;
    Ok(der)
}

/// [`parse_user_certificate_der`] for one PEM certificate: the structural
/// rules only, whoever signed it.
pub fn parse_user_certificate_pem(pem: &[u8]) -> Result<ParsedCertificate, CertificateError> {
    parse_user_certificate_der(&pem_to_der(pem)?)
}

/// As [`parse_certificate_pem`], for DER input.
pub fn parse_certificate_der(der: &[u8]) -> Result<ParsedCertificate, CertificateError> {
    let cert = parse_user_certificate_der(der)?;
    cert.check_self_signed()?;
    Ok(cert)
}

/// Parses a user certificate and applies the structural rules only: one
/// CN, a P-256 key, key usage (if present) allowing signatures. Nothing
/// about who signed it.
pub fn parse_user_certificate_der(der: &[u8]) -> Result<ParsedCertificate, CertificateError> {
    let malformed = |detail: String| CertificateError::Malformed { detail };
    if der.len() > MAX_CERTIFICATE_LEN {
        return Err(CertificateError::TooLarge {
            len: der.len(),
            max: MAX_CERTIFICATE_LEN,
        });
    }
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| malformed(format!("not X.509: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }

    let common_name = single_common_name(&cert)?;
    let public_key = p256_public_key(&cert)?;

    if let Ok(Some(ku)) = cert.key_usage() {
        if !ku.value.digital_signature() {
            return Err(CertificateError::KeyUsageForbidsSigning);
        }
    } else if cert.key_usage().is_err() {
        return Err(malformed(
            "the key usage extension is invalid or repeated".into(),
        ));
    }
    let is_ca = match cert.basic_constraints() {
        Ok(bc) => bc.is_some_and(|bc| bc.value.ca),
        Err(_) => {
            return Err(malformed(
                "the basic constraints extension is invalid or repeated".into(),
            ))
        }
    };

    // basicConstraints, keyUsage, extendedKeyUsage, subjectAltName.
    const UNDERSTOOD: &[&str] = &["2.5.29.19", "2.5.29.15", "2.5.29.37", "2.5.29.17"];
    let unknown_critical = cert
        .extensions()
        .iter()
        .filter(|e| e.critical)
        .map(|e| e.oid.to_id_string())
        .filter(|oid| !UNDERSTOOD.contains(&oid.as_str()))
        .collect();

    let validity = cert.validity();
    Ok(ParsedCertificate {
        der: der.to_vec(),
        unknown_critical,
        common_name,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        serial_hex: hex::encode(cert.raw_serial()),
        serial: cert.raw_serial().to_vec(),
        public_key,
        issuer: cert.issuer().to_string(),
        issuer_der: cert.issuer().as_raw().to_vec(),
        subject_der: cert.subject().as_raw().to_vec(),
        tbs: cert.tbs_certificate.as_ref().to_vec(),
        signature_algorithm: cert.signature_algorithm.algorithm.to_id_string(),
        signature: cert.signature_value.data.to_vec(),
        is_ca,
    })
}

fn single_common_name(cert: &X509Certificate<'_>) -> Result<String, CertificateError> {
    let names: Vec<_> = cert.subject().iter_common_name().collect();
    match names.as_slice() {
        [] => Err(CertificateError::NoCommonName),
        [one] => one
            .as_str()
            .map(str::to_owned)
            .map_err(|_| CertificateError::CommonNameNotText),
        several => Err(CertificateError::SeveralCommonNames {
            count: several.len(),
        }),
    }
}

/// The named curve (dotted OID) of an EC public key, if it names one.
pub(crate) fn named_curve(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Option<String> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string())
}

fn p256_public_key(cert: &X509Certificate<'_>) -> Result<VerifyingKey, CertificateError> {
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    if algorithm != oids::EC_PUBLIC_KEY {
        return Err(CertificateError::NotEcKey {
            algorithm: oids::algorithm_name(&algorithm),
        });
    }
    let curve = named_curve(spki);
    if curve.as_deref() != Some(oids::P256) {
        let curve = curve.map_or_else(|| "(not named)".to_owned(), |c| oids::curve_name(&c));
        return Err(CertificateError::WrongCurve { curve });
    }
    VerifyingKey::from_sec1_bytes(&spki.subject_public_key.data)
        .map_err(|_| CertificateError::InvalidPublicKey)
}

/// The profile of an ecp user certificate: self-issued, CN = user, an end
/// entity (not a CA) whose key may only make digital signatures.
struct UserCertificateProfile {
    subject: Name,
}

impl BuilderProfile for UserCertificateProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        // Each `to_extension` sees the extensions already added (it refuses
        // duplicates), so they are added one by one.
        let mut extensions = Vec::with_capacity(4);
        let basic_constraints = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        }
        .to_extension(tbs.subject(), &extensions)?;
        extensions.push(basic_constraints);
        let key_usage = KeyUsage(KeyUsages::DigitalSignature.into())
            .to_extension(tbs.subject(), &extensions)?;
        extensions.push(key_usage);
        let authority_key_id = AuthorityKeyIdentifier {
            key_identifier: Some(ski.0.clone()),
            ..Default::default()
        }
        .to_extension(tbs.subject(), &extensions)?;
        extensions.push(authority_key_id);
        let subject_key_id = ski.to_extension(tbs.subject(), &extensions)?;
        extensions.push(subject_key_id);
        Ok(extensions)
    }
}

/// Makes the self-signed certificate for `key`, valid from a few minutes ago
/// for `days` days, and returns it as PEM.
pub fn build_self_signed_certificate<S: P256Signer>(
    key: &S,
    user: &UserName,
    days: u32,
) -> Result<String, CertificateError> {
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(CertificateError::Build {
            detail: format!("validity must be 1 to {MAX_VALIDITY_DAYS} days, not {days}"),
        });
    }
    let now = SystemTime::now();
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    let not_after =
        now + Duration::from_secs(u64::from(days) * crate::when::SECONDS_PER_DAY as u64);
    build_self_signed_certificate_between(key, user, not_before, not_after)
}

/// Makes the self-signed certificate for `key`, valid from `not_before`
/// to `not_after`, and returns it as PEM (for tests that move the clock;
/// keygen uses [`build_self_signed_certificate`]).
pub fn build_self_signed_certificate_between<S: P256Signer>(
    key: &S,
    user: &UserName,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<String, CertificateError> {
    let build_err = |detail: String| CertificateError::Build { detail };
    // The user name's character set needs no escaping in an RFC 4514 string.
    let subject =
        Name::from_str(&format!("CN={user}")).map_err(|e| build_err(format!("subject: {e}")))?;

    // A random 127-bit positive serial, as RFC 5280 asks of issuers.
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| build_err(e.to_string()))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let serial = SerialNumber::new(&serial).map_err(|e| build_err(e.to_string()))?;

    let time = |t: SystemTime| Time::try_from(t).map_err(|e| build_err(e.to_string()));
    let validity = Validity::new(time(not_before)?, time(not_after)?);

    let public: VerifyingKey = p256::ecdsa::signature::Keypair::verifying_key(key);
    let spki = SubjectPublicKeyInfo::from_key(&public).map_err(|e| build_err(e.to_string()))?;
    let builder =
        CertificateBuilder::new(UserCertificateProfile { subject }, serial, validity, spki)
            .map_err(|e| build_err(e.to_string()))?;
    let cert = builder
        .build::<_, DerSignature>(key)
        .map_err(|e| build_err(e.to_string()))?;
    use pkcs8::der::EncodePem;
    cert.to_pem(pkcs8::der::pem::LineEnding::LF)
        .map_err(|e| build_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::generate_signing_key;
    use crate::when::unix_now;

    fn alice() -> UserName {
        UserName::parse("alice").unwrap()
    }

    #[test]
    fn built_certificate_passes_the_rule() {
        let key = generate_signing_key();
        let pem = build_self_signed_certificate(&key, &alice(), 30).unwrap();
        let cert =
            validate_certificate(pem.as_bytes(), &alice(), unix_now(), DEFAULT_CLOCK_SKEW).unwrap();
        assert_eq!(cert.common_name(), "alice");
        assert_eq!(cert.public_key(), key.verifying_key());
        let span = cert.not_after() - cert.not_before();
        assert_eq!(span, 30 * 86_400 + BACKDATE.as_secs() as i64);
        assert_eq!(cert.fingerprint().len(), 64);
        assert_eq!(cert.to_pem().trim(), pem.trim());
    }

    #[test]
    fn serials_are_random() {
        let key = generate_signing_key();
        let a = build_self_signed_certificate(&key, &alice(), 1).unwrap();
        let b = build_self_signed_certificate(&key, &alice(), 1).unwrap();
        let (a, b) = (
            parse_certificate_pem(a.as_bytes()).unwrap(),
            parse_certificate_pem(b.as_bytes()).unwrap(),
        );
        assert_ne!(a.serial_hex(), b.serial_hex());
        assert!(a.serial_hex().len() >= 30);
    }

    #[test]
    fn certificate_for_another_user_is_refused() {
        let key = generate_signing_key();
        let pem = build_self_signed_certificate(&key, &alice(), 30).unwrap();
        let bob = UserName::parse("bob").unwrap();
        let err =
            validate_certificate(pem.as_bytes(), &bob, unix_now(), DEFAULT_CLOCK_SKEW).unwrap_err();
        assert_eq!(
            err,
            CertificateError::WrongUser {
                common_name: "alice".into(),
                user: "bob".into()
            }
        );
        // Prefix and case differences are different users.
        let alic = UserName::parse("alic").unwrap();
        let upper = UserName::parse("Alice").unwrap();
        for other in [alic, upper] {
            assert!(
                validate_certificate(pem.as_bytes(), &other, unix_now(), DEFAULT_CLOCK_SKEW)
                    .is_err()
            );
        }
    }

    #[test]
    fn expired_and_not_yet_valid_are_refused_outside_the_skew() {
        let key = generate_signing_key();
        let pem = build_self_signed_certificate(&key, &alice(), 1).unwrap();
        let cert = parse_certificate_pem(pem.as_bytes()).unwrap();
        let skew = Duration::from_secs(60);
        let after = cert.not_after() + 61;
        assert!(matches!(
            cert.check_time(after, skew),
            Err(CertificateError::Expired { .. })
        ));
        assert!(cert.check_time(cert.not_after() + 59, skew).is_ok());
        let before = cert.not_before() - 61;
        assert!(matches!(
            cert.check_time(before, skew),
            Err(CertificateError::NotYetValid { .. })
        ));
        assert!(cert.check_time(cert.not_before() - 59, skew).is_ok());
        let msg = CertificateError::Expired {
            not_after: 1_798_977_600,
        }
        .to_string();
        assert_eq!(msg, "the certificate expired on 2027-01-03 12:00:00 UTC");
    }

    #[test]
    fn tampered_certificate_fails_the_self_signature() {
        let key = generate_signing_key();
        let pem = build_self_signed_certificate(&key, &alice(), 30).unwrap();
        let mut der = parse_certificate_pem(pem.as_bytes())
            .unwrap()
            .der()
            .to_vec();
        // Flip a bit inside the subject CN "alice" → "alicd" (still parses).
        let at = der.windows(5).position(|w| w == b"alice").unwrap();
        der[at + 4] ^= 0x07;
        assert_eq!(
            parse_certificate_der(&der).unwrap_err(),
            CertificateError::BadSelfSignature
        );
    }

    #[test]
    fn pem_with_trailing_garbage_or_two_blocks_is_refused() {
        let key = generate_signing_key();
        let pem = build_self_signed_certificate(&key, &alice(), 30).unwrap();
        let trailing = format!("{pem}garbage\n");
        assert!(matches!(
            parse_certificate_pem(trailing.as_bytes()),
            Err(CertificateError::NotSingleCertificate { .. })
        ));
        let two = format!("{pem}{pem}");
        assert!(matches!(
            parse_certificate_pem(two.as_bytes()),
            Err(CertificateError::NotSingleCertificate { .. })
        ));
        let truncated = &pem.as_bytes()[..pem.len() - 40];
        assert!(parse_certificate_pem(truncated).is_err());
        assert!(matches!(
            parse_certificate_pem(b"hello"),
            Err(CertificateError::NotPem { .. })
        ));
        assert!(matches!(
            parse_certificate_pem(&[0x30, 0x82, 0xff]),
            Err(CertificateError::NotPem { .. })
        ));
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = vec![b' '; MAX_CERTIFICATE_LEN + 1];
        assert!(matches!(
            parse_certificate_pem(&big),
            Err(CertificateError::TooLarge { .. })
        ));
    }

    #[test]
    fn validity_days_are_bounded() {
        let key = generate_signing_key();
        assert!(build_self_signed_certificate(&key, &alice(), 0).is_err());
        assert!(build_self_signed_certificate(&key, &alice(), MAX_VALIDITY_DAYS + 1).is_err());
    }
}
