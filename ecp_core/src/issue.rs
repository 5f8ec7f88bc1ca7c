//! Both sides of a CA-issued certificate: the user's certificate request
//! (PKCS#10, made with their own key, which never leaves them), and a CA
//! kept in files signing it (`ecpctl ca sign`). What a CA signs here is
//! what `crate::trust` accepts, and what `openssl verify -CAfile` accepts.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use pkcs8::der::{DecodePem, EncodePem};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, RequestBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use crate::certificate::{CertificateError, MAX_VALIDITY_DAYS};
use crate::names::UserName;
use crate::oids;

/// Why a request could not be made, read or signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("the certificate request is not PEM or DER PKCS#10: {0}")]
    RequestUnreadable(String),
    #[error("the certificate request must name exactly one CN, a valid user name: {0}")]
    RequestSubject(String),
    #[error("the certificate request holds {0}; ecp users need an ECDSA P-256 key")]
    RequestKey(String),
    #[error("the certificate request is not signed by its own key")]
    RequestSignature,
    #[error("the CA certificate cannot be read: {0}")]
    CaCertificate(String),
    #[error("the CA key cannot be read: {0}")]
    CaKey(String),
    #[error("the CA key does not belong to the CA certificate")]
    CaKeyMismatch,
    #[error("{0}")]
    Certificate(#[from] CertificateError),
}

/// A certificate request for `user`, signed with `key`, as PEM.
pub fn build_certificate_request<S: crate::certificate::P256Signer>(
    key: &S,
    user: &UserName,
) -> Result<String, IssueError> {
    let fail = |e: &dyn std::fmt::Display| {
        IssueError::Certificate(CertificateError::Build {
            detail: e.to_string(),
        })
    };
    let subject = Name::from_str(&format!("CN={user}")).map_err(|e| fail(&e))?;
    let request = RequestBuilder::new(subject)
        .map_err(|e| fail(&e))?
        .build::<_, DerSignature>(key)
        .map_err(|e| fail(&e))?;
    request
        .to_pem(pkcs8::der::pem::LineEnding::LF)
        .map_err(|e| fail(&e))
}

/// A request that passed the checks: its user and its key.
#[derive(Debug, Clone)]
pub struct CheckedRequest {
    pub user: UserName,
    pub public_key: VerifyingKey,
}

/// Reads a PKCS#10 request (PEM or DER): exactly one CN that is a valid
/// user name, a P-256 key, and a valid signature by that key.
pub fn check_certificate_request(bytes: &[u8]) -> Result<CheckedRequest, IssueError> {
    let der = match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => {
            pkcs8::der::pem::decode_vec(text.trim().as_bytes())
                .map_err(|e| IssueError::RequestUnreadable(e.to_string()))?
                .1
        }
        _ => bytes.to_vec(),
    };
    let (_, request) = X509CertificationRequest::from_der(&der)
        .map_err(|e| IssueError::RequestUnreadable(e.to_string()))?;
    let info = &request.certification_request_info;
    let names: Vec<_> = info.subject.iter_common_name().collect();
    let user = match names.as_slice() {
        [one] => {
            let name = one
                .as_str()
                .map_err(|_| IssueError::RequestSubject("the CN is not text".into()))?;
            UserName::parse(name).map_err(|e| IssueError::RequestSubject(e.to_string()))?
        }
        other => {
            return Err(IssueError::RequestSubject(format!(
                "it names {} CNs",
                other.len()
            )))
        }
    };
    let spki = &info.subject_pki;
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let curve = crate::certificate::named_curve(spki).unwrap_or_default();
    if algorithm != oids::EC_PUBLIC_KEY || curve != oids::P256 {
        let what = if algorithm == oids::EC_PUBLIC_KEY {
            format!("a key on curve {}", oids::curve_name(&curve))
        } else {
            format!("an {} key", oids::algorithm_name(&algorithm))
        };
        return Err(IssueError::RequestKey(what));
    }
    let public_key = VerifyingKey::from_sec1_bytes(&spki.subject_public_key.data)
        .map_err(|_| IssueError::RequestKey("an invalid P-256 point".into()))?;
    if request.signature_algorithm.algorithm.to_id_string() != oids::ECDSA_WITH_SHA256 {
        return Err(IssueError::RequestSignature);
    }
    let signature = Signature::from_der(&request.signature_value.data)
        .map_err(|_| IssueError::RequestSignature)?;
    crate::verify::p256_sha256(&public_key, info.raw, &signature)
        .map_err(|_| IssueError::RequestSignature)?;
    Ok(CheckedRequest { user, public_key })
}

/// A CA's signing key, from a PKCS#8 file.
pub enum CaSigningKey {
    P256(SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(rsa::pkcs1v15::SigningKey<sha2::Sha256>),
}

impl CaSigningKey {
    /// Reads a PKCS#8 key as `openssl genpkey` writes it: `PRIVATE KEY`,
    /// or `ENCRYPTED PRIVATE KEY` with `passphrase`.
    pub fn from_pkcs8_pem(pem: &[u8], passphrase: Option<&[u8]>) -> Result<Self, IssueError> {
        let unreadable = |e: &dyn std::fmt::Display| IssueError::CaKey(e.to_string());
        let text = std::str::from_utf8(pem).map_err(|_| unreadable(&"not PEM text"))?;
        let (label, der) =
            pkcs8::der::pem::decode_vec(text.trim().as_bytes()).map_err(|e| unreadable(&e))?;
        let plain: Zeroizing<Vec<u8>> = match label {
            "PRIVATE KEY" => Zeroizing::new(der),
            "ENCRYPTED PRIVATE KEY" => {
                let passphrase = passphrase
                    .ok_or_else(|| unreadable(&"it is encrypted: give its passphrase"))?;
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| unreadable(&e))?;
                let document = info
                    .decrypt(passphrase)
                    .map_err(|_| unreadable(&"wrong passphrase, or an unsupported encryption"))?;
                Zeroizing::new(document.as_bytes().to_vec())
            }
            other => {
                return Err(unreadable(&format!(
                    "a `{other}` block; convert it to PKCS#8 with `openssl pkcs8 -topk8`"
                )))
            }
        };
        let info =
            pkcs8::PrivateKeyInfoRef::try_from(plain.as_slice()).map_err(|e| unreadable(&e))?;
        let algorithm = info.algorithm.oid.to_string();
        let curve = info
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<pkcs8::der::asn1::ObjectIdentifier>().ok())
            .map(|oid| oid.to_string())
            .unwrap_or_default();
        use p256::pkcs8::DecodePrivateKey as _;
        match (algorithm.as_str(), curve.as_str()) {
            (oids::EC_PUBLIC_KEY, oids::P256) => SigningKey::from_pkcs8_der(&plain)
                .map(CaSigningKey::P256)
                .map_err(|e| unreadable(&e)),
            (oids::EC_PUBLIC_KEY, oids::P384) => p384::ecdsa::SigningKey::from_pkcs8_der(&plain)
                .map(CaSigningKey::P384)
                .map_err(|e| unreadable(&e)),
            (oids::RSA, _) => rsa::PrivateKey::from_pkcs8_der(&plain)
                .map(|k| CaSigningKey::Rsa(rsa::pkcs1v15::SigningKey::new(k)))
                .map_err(|e| unreadable(&e)),
            _ => Err(unreadable(&format!(
                "{} keys are not supported for a CA (P-256, P-384 or RSA)",
                oids::algorithm_name(&algorithm)
            ))),
        }
    }

    fn public_key_der(&self) -> Result<Vec<u8>, IssueError> {
        use p256::pkcs8::EncodePublicKey as _;
        let der = match self {
            CaSigningKey::P256(k) => k.verifying_key().to_public_key_der(),
            CaSigningKey::P384(k) => k.verifying_key().to_public_key_der(),
            CaSigningKey::Rsa(k) => {
                use rsa::signature::Keypair as _;
                k.verifying_key().to_public_key_der()
            }
        };
        der.map(|d| d.as_bytes().to_vec())
            .map_err(|e| IssueError::CaKey(e.to_string()))
    }
}

/// An ecp user certificate issued by a CA: the CA's name as issuer, CN =
/// user, an end entity (CA:FALSE) whose key may only sign, with key
/// identifiers linking it to the CA.
struct IssuedUserProfile {
    issuer: Name,
    subject: Name,
}

impl BuilderProfile for IssuedUserProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut extensions = Vec::with_capacity(4);
        let basic = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        }
        .to_extension(tbs.subject(), &extensions)?;
        extensions.push(basic);
        let usage = KeyUsage(KeyUsages::DigitalSignature.into())
            .to_extension(tbs.subject(), &extensions)?;
        extensions.push(usage);
        let issuer_key_id = SubjectKeyIdentifier::try_from(issuer_spk)?;
        let authority = AuthorityKeyIdentifier {
            key_identifier: Some(issuer_key_id.0),
            ..Default::default()
        }
        .to_extension(tbs.subject(), &extensions)?;
        extensions.push(authority);
        let subject_key_id =
            SubjectKeyIdentifier::try_from(spk)?.to_extension(tbs.subject(), &extensions)?;
        extensions.push(subject_key_id);
        Ok(extensions)
    }
}

/// Signs `request` with a CA kept in files: the certificate in
/// `ca_certificate_pem` (a CA, matching `ca_key`), valid from a few minutes
/// ago for `days` days. Returns the user's certificate as PEM.
pub fn issue_user_certificate(
    ca_certificate_pem: &[u8],
    ca_key: &CaSigningKey,
    request: &CheckedRequest,
    days: u32,
) -> Result<String, IssueError> {
    let build = |e: &dyn std::fmt::Display| {
        IssueError::Certificate(CertificateError::Build {
            detail: e.to_string(),
        })
    };
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(build(&format!(
            "validity must be 1 to {MAX_VALIDITY_DAYS} days, not {days}"
        )));
    }
    let ca = Certificate::from_pem(ca_certificate_pem)
        .map_err(|e| IssueError::CaCertificate(e.to_string()))?;
    // Only a usable anchor: what trust would refuse, nothing signs with.
    crate::trust::parse_ca_file(ca_certificate_pem)
        .map_err(|e| IssueError::CaCertificate(e.to_string()))?;
    use pkcs8::der::Encode as _;
    let ca_spki = ca
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| IssueError::CaCertificate(e.to_string()))?;
    if ca_spki != ca_key.public_key_der()? {
        return Err(IssueError::CaKeyMismatch);
    }

    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| build(&e))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let serial = SerialNumber::new(&serial).map_err(|e| build(&e))?;
    let now = SystemTime::now();
    let not_before = now.checked_sub(Duration::from_secs(300)).unwrap_or(now);
    let not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    let time = |t: SystemTime| Time::try_from(t).map_err(|e| build(&e));
    let validity = Validity::new(time(not_before)?, time(not_after)?);
    let subject = Name::from_str(&format!("CN={}", request.user)).map_err(|e| build(&e))?;
    let spki = SubjectPublicKeyInfo::from_key(&request.public_key).map_err(|e| build(&e))?;
    let profile = IssuedUserProfile {
        issuer: ca.tbs_certificate().subject().clone(),
        subject,
    };
    let builder =
        CertificateBuilder::new(profile, serial, validity, spki).map_err(|e| build(&e))?;
    let certificate = match ca_key {
        CaSigningKey::P256(key) => builder.build::<_, DerSignature>(key),
        CaSigningKey::P384(key) => builder.build::<_, p384::ecdsa::DerSignature>(key),
        CaSigningKey::Rsa(key) => builder.build::<_, rsa::pkcs1v15::Signature>(key),
    }
    .map_err(|e| build(&e))?;
    certificate
        .to_pem(pkcs8::der::pem::LineEnding::LF)
        .map_err(|e| build(&e))
}
