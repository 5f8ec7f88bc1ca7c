//! Certificates issued by an organisation CA: the trust anchors a host
//! keeps (`ca_file`), their revocation lists (`crl_file`), and the one
//! decision about a certificate a user presents at login.
//!
//! Only certificates issued *directly* by a trusted CA are accepted (the
//! CA may itself be an intermediate: it is the anchor, its own issuer is
//! not looked at). CA keys may be ECDSA P-256 or P-384, or RSA 2048–4096
//! bits (PKCS#1 v1.5); the user's key is P-256 as always. ECDSA signatures
//! are checked by [`crate::verify`], RSA ones by the RustCrypto crates;
//! this module only chooses.

use std::collections::HashSet;
use std::time::Duration;

use p256::ecdsa::signature::Verifier as _;
use sha2::{Sha256, Sha384, Sha512};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::certificate::{
    fingerprint_of_der, parse_user_certificate_der, CertificateError, ParsedCertificate,
};
use crate::names::UserName;
use crate::oids;
use crate::verify::{self, EcdsaHash};
use crate::when::format_utc;

/// The largest `ca_file` or `crl_file` read (a CRL of a big organisation
/// runs to a few MiB).
pub const MAX_TRUST_FILE_LEN: usize = 16 * 1024 * 1024;

const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 4096;

/// Why a CA file, a CRL or a presented certificate was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("{what} is {len} bytes long; at most {max} are read")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} is neither PEM nor DER: {detail}")]
    Unreadable { what: &'static str, detail: String },
    #[error("{what} holds no {label}")]
    Empty {
        what: &'static str,
        label: &'static str,
    },
    #[error("CA certificate {subject} is not a CA (basicConstraints CA:TRUE is missing)")]
    NotCa { subject: String },
    #[error("CA certificate {subject} may not sign certificates (keyUsage lacks keyCertSign)")]
    CaMayNotSign { subject: String },
    #[error("CA certificate {subject} holds a key ecp cannot use: {detail}")]
    UnsupportedCaKey { subject: String, detail: String },
    #[error("the CRL of {issuer} does not carry a valid signature of that CA")]
    BadCrlSignature { issuer: String },
    #[error("the CRL of {issuer} is {what}; ecp needs complete CRLs (no delta, partitioned or indirect CRLs)")]
    IncompleteCrl { issuer: String, what: String },
    #[error("the CRL of {issuer} is older than the one already in force (CRL number or thisUpdate went back)")]
    CrlRolledBack { issuer: String },
    #[error("{0}")]
    Certificate(#[from] CertificateError),
    #[error("the certificate (serial {serial}) is issued by {issuer}, which is not a trusted CA")]
    UnknownIssuer { issuer: String, serial: String },
    #[error("the certificate (serial {serial}) does not carry a valid signature of {issuer}")]
    BadIssuerSignature { issuer: String, serial: String },
    #[error("the issuing CA {issuer} is not valid now (valid {} to {})", format_utc(*not_before), format_utc(*not_after))]
    CaNotValidNow {
        issuer: String,
        not_before: i64,
        not_after: i64,
    },
    #[error("the certificate (serial {serial}) is itself a CA certificate")]
    UserCertificateIsCa { serial: String },
    #[error("the certificate (serial {serial}) of {issuer} is revoked")]
    Revoked { issuer: String, serial: String },
    #[error("there is no CRL for {issuer}, and require_crl is set")]
    NoCrl { issuer: String },
    #[error("the CRL of {issuer} is out of date (nextUpdate {})", format_utc(*next_update))]
    CrlOutOfDate { issuer: String, next_update: i64 },
    #[error("the CRL of {issuer} has no nextUpdate, so it never goes out of date; require_crl needs one that does")]
    CrlWithoutNextUpdate { issuer: String },
    #[error("the certificate (serial {serial}) carries critical extensions ecp does not know: {extensions}")]
    UnknownCriticalExtension { serial: String, extensions: String },
    #[error("signature algorithm {algorithm} is not supported with a {key} key")]
    UnsupportedSignature {
        algorithm: String,
        key: &'static str,
    },
}

/// A CA's public key.
#[derive(Debug, Clone)]
enum CaKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::PublicKey),
}

impl CaKey {
    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<CaKey, String> {
        use p256::pkcs8::DecodePublicKey as _;
        let algorithm = spki.algorithm.algorithm.to_id_string();
        match algorithm.as_str() {
            oids::EC_PUBLIC_KEY => {
                let curve = crate::certificate::named_curve(spki).unwrap_or_default();
                match curve.as_str() {
                    oids::P256 => p256::ecdsa::VerifyingKey::from_public_key_der(spki.raw)
                        .map(CaKey::P256)
                        .map_err(|e| format!("P-256 key: {e}")),
                    oids::P384 => p384::ecdsa::VerifyingKey::from_public_key_der(spki.raw)
                        .map(CaKey::P384)
                        .map_err(|e| format!("P-384 key: {e}")),
                    other => Err(format!("EC key on curve {}", oids::curve_name(other))),
                }
            }
            oids::RSA => {
                use rsa::traits::PublicKeyParts as _;
                let key = rsa::PublicKey::from_public_key_der(spki.raw)
                    .map_err(|e| format!("RSA key: {e}"))?;
                let bits = key.size() * 8;
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(format!(
                        "RSA key of {bits} bits ({RSA_MIN_BITS} to {RSA_MAX_BITS} are accepted)"
                    ));
                }
                Ok(CaKey::Rsa(key))
            }
            other => Err(format!("{} key", oids::algorithm_name(other))),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            CaKey::P256(_) => "P-256",
            CaKey::P384(_) => "P-384",
            CaKey::Rsa(_) => "RSA",
        }
    }

    /// Checks `signature` over `message` under `algorithm` (dotted OID).
    fn verify(&self, algorithm: &str, message: &[u8], signature: &[u8]) -> Result<(), Bad> {
        let unsupported = || Bad::Unsupported {
            algorithm: algorithm.to_owned(),
            key: self.name(),
        };
        match self {
            CaKey::P256(key) => {
                let signature =
                    p256::ecdsa::Signature::from_der(signature).map_err(|_| Bad::Signature)?;
                let hash = ecdsa_hash(algorithm).ok_or_else(unsupported)?;
                verify::p256(key, hash, message, &signature).map_err(|_| Bad::Signature)
            }
            CaKey::P384(key) => {
                let signature =
                    p384::ecdsa::Signature::from_der(signature).map_err(|_| Bad::Signature)?;
                let hash = ecdsa_hash(algorithm).ok_or_else(unsupported)?;
                verify::p384(key, hash, message, &signature).map_err(|_| Bad::Signature)
            }
            CaKey::Rsa(key) => {
                use rsa::pkcs1v15::{Signature, VerifyingKey};
                let signature = Signature::try_from(signature).map_err(|_| Bad::Signature)?;
                let key = key.clone();
                let checked = match algorithm {
                    oids::SHA256_WITH_RSA => {
                        VerifyingKey::<Sha256>::new(key).verify(message, &signature)
                    }
                    oids::SHA384_WITH_RSA => {
                        VerifyingKey::<Sha384>::new(key).verify(message, &signature)
                    }
                    oids::SHA512_WITH_RSA => {
                        VerifyingKey::<Sha512>::new(key).verify(message, &signature)
                    }
                    _ => return Err(unsupported()),
                };
                checked.map_err(|_| Bad::Signature)
            }
        }
    }
}

/// The digest an ECDSA signature algorithm (dotted OID) names.
fn ecdsa_hash(algorithm: &str) -> Option<EcdsaHash> {
    Some(match algorithm {
        oids::ECDSA_WITH_SHA256 => EcdsaHash::Sha256,
        oids::ECDSA_WITH_SHA384 => EcdsaHash::Sha384,
        oids::ECDSA_WITH_SHA512 => EcdsaHash::Sha512,
        _ => return None,
    })
}

/// Why a signature check failed, before it is given its context.
enum Bad {
    Signature,
    Unsupported {
        algorithm: String,
        key: &'static str,
    },
}

/// One trusted CA certificate.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    /// Its subject, as OpenSSL prints it in one line.
    pub subject: String,
    subject_der: Vec<u8>,
    /// SHA-256 over its DER, lowercase hex.
    pub fingerprint: String,
    /// SHA-256 over its subject and public key (DER): the same for every
    /// certificate of one CA key and name (a renewed CA certificate), so
    /// what is remembered about the CA's CRLs carries over to it.
    pub identity: String,
    pub not_before: i64,
    pub not_after: i64,
    key: CaKey,
    /// keyUsage allows cRLSign (or there is no keyUsage).
    may_sign_crls: bool,
}

impl TrustedCa {
    fn from_der(der: &[u8]) -> Result<TrustedCa, TrustError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| TrustError::Unreadable {
            what: "a certificate in the CA file",
            detail: e.to_string(),
        })?;
        let subject = cert.subject().to_string();
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(TrustError::NotCa { subject });
        }
        // A keyUsage that cannot be read is no permission.
        let usage = cert.key_usage().map_err(|_| TrustError::CaMayNotSign {
            subject: subject.clone(),
        })?;
        if usage.as_ref().is_some_and(|ku| !ku.value.key_cert_sign()) {
            return Err(TrustError::CaMayNotSign { subject });
        }
        let may_sign_crls = usage.as_ref().is_none_or(|ku| ku.value.crl_sign());
        let key =
            CaKey::from_spki(cert.public_key()).map_err(|detail| TrustError::UnsupportedCaKey {
                subject: subject.clone(),
                detail,
            })?;
        let validity = cert.validity();
        let identity = {
            let mut both = cert.subject().as_raw().to_vec();
            both.extend_from_slice(cert.public_key().raw);
            fingerprint_of_der(&both)
        };
        Ok(TrustedCa {
            subject,
            subject_der: cert.subject().as_raw().to_vec(),
            fingerprint: fingerprint_of_der(der),
            identity,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            key,
            may_sign_crls,
        })
    }
}

/// Reads a `ca_file`: one or more PEM certificates (or one DER), each of
/// which must be a usable CA.
pub fn parse_ca_file(bytes: &[u8]) -> Result<Vec<TrustedCa>, TrustError> {
    blocks(bytes, "the CA file", "CERTIFICATE")?
        .iter()
        .map(|der| TrustedCa::from_der(der))
        .collect()
}

/// One certificate revocation list, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Crl {
    /// The issuer, as OpenSSL prints it in one line.
    pub issuer: String,
    issuer_der: Vec<u8>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// The cRLNumber extension as unsigned big-endian bytes, if present:
    /// CRLs of one CA only go up.
    pub crl_number: Option<Vec<u8>>,
    revoked: HashSet<Vec<u8>>,
    tbs: Vec<u8>,
    signature_algorithm: String,
    signature: Vec<u8>,
}

/// CRL extensions ecp understands well enough to use a CRL that carries
/// them: cRLNumber and authorityKeyIdentifier.
const KNOWN_CRL_EXTENSIONS: &[&str] = &["2.5.29.20", "2.5.29.35"];
/// deltaCRLIndicator: a delta CRL lists only what changed since a base.
const DELTA_CRL_INDICATOR: &str = "2.5.29.27";
/// issuingDistributionPoint: the CRL may cover only part of the CA's
/// certificates (a partition, users or CAs only, some reasons, or another
/// issuer's certificates).
const ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";

/// Reads a `crl_file`: one or more PEM CRLs, or one DER. Only complete
/// CRLs are accepted: a delta CRL, one with an issuingDistributionPoint,
/// one with an unknown critical extension, or an entry with a critical
/// extension (certificateIssuer of an indirect CRL) could leave revoked
/// certificates out if read as the whole list, so it is refused.
pub fn parse_crl_file(bytes: &[u8]) -> Result<Vec<Crl>, TrustError> {
    blocks(bytes, "the CRL file", "X509 CRL")?
        .iter()
        .map(|der| {
            let (_, crl) =
                CertificateRevocationList::from_der(der).map_err(|e| TrustError::Unreadable {
                    what: "a CRL in the CRL file",
                    detail: e.to_string(),
                })?;
            let issuer = crl.issuer().to_string();
            let incomplete = |what: &str| TrustError::IncompleteCrl {
                issuer: issuer.clone(),
                what: what.to_owned(),
            };
            for extension in crl.extensions() {
                let oid = extension.oid.to_id_string();
                match oid.as_str() {
                    DELTA_CRL_INDICATOR => return Err(incomplete("a delta CRL")),
                    ISSUING_DISTRIBUTION_POINT => {
                        return Err(incomplete("limited by an issuingDistributionPoint"))
                    }
                    known if KNOWN_CRL_EXTENSIONS.contains(&known) => {}
                    other if extension.critical => {
                        return Err(incomplete(&format!(
                            "marked with critical extension {other}"
                        )))
                    }
                    _ => {}
                }
            }
            if crl
                .iter_revoked_certificates()
                .any(|r| r.extensions().iter().any(|e| e.critical))
            {
                return Err(incomplete(
                    "listing entries with critical extensions (an indirect CRL)",
                ));
            }
            Ok(Crl {
                issuer_der: crl.issuer().as_raw().to_vec(),
                issuer,
                this_update: crl.last_update().timestamp(),
                next_update: crl.next_update().map(|t| t.timestamp()),
                crl_number: crl.crl_number().map(|n| n.to_bytes_be()),
                revoked: crl
                    .iter_revoked_certificates()
                    .map(|r| serial_key(r.raw_serial()))
                    .collect(),
                tbs: crl.tbs_cert_list.as_ref().to_vec(),
                signature_algorithm: crl.signature_algorithm.algorithm.to_id_string(),
                signature: crl.signature_value.data.to_vec(),
            })
        })
        .collect()
}

/// Where a CA's CRLs have got to: a CRL's number (unsigned big-endian
/// bytes) when it has one, and its thisUpdate. What ecpd records to refuse
/// a replayed older CRL, and how two CRLs of one CA are ordered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrlMark {
    pub crl_number: Option<Vec<u8>>,
    pub this_update: i64,
}

impl CrlMark {
    /// Whether this mark comes after `other`: by CRL number when both have
    /// one, else by thisUpdate.
    pub fn is_after(&self, other: &CrlMark) -> bool {
        match (&self.crl_number, &other.crl_number) {
            (Some(a), Some(b)) if !same_number(a, b) => big_endian_greater(a, b),
            _ => self.this_update > other.this_update,
        }
    }

    /// Whether this mark goes back before `other` (a replayed old CRL).
    pub fn is_before(&self, other: &CrlMark) -> bool {
        match (&self.crl_number, &other.crl_number) {
            (Some(a), Some(b)) => big_endian_greater(b, a),
            _ => self.this_update < other.this_update,
        }
    }
}

/// Unsigned big-endian bytes without leading zeros.
fn significant(x: &[u8]) -> &[u8] {
    let start = x.iter().position(|&d| d != 0).unwrap_or(x.len());
    &x[start..]
}

fn same_number(a: &[u8], b: &[u8]) -> bool {
    significant(a) == significant(b)
}

/// `a > b` for unsigned big-endian numbers of any length.
fn big_endian_greater(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (significant(a), significant(b));
    (a.len(), a) > (b.len(), b)
}

impl Crl {
    /// This CRL's place among its CA's CRLs.
    pub fn mark(&self) -> CrlMark {
        CrlMark {
            crl_number: self.crl_number.clone(),
            this_update: self.this_update,
        }
    }

    /// The CA subject this CRL is issued by, in DER.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer_der
    }
}

/// A serial number as compared: its DER integer bytes without leading
/// zeros (a CRL and a certificate may pad the same number differently).
fn serial_key(raw: &[u8]) -> Vec<u8> {
    significant(raw).to_vec()
}

/// The DER blocks of a PEM file with `label` blocks, or the file itself
/// when it is DER.
fn blocks(
    bytes: &[u8],
    what: &'static str,
    label: &'static str,
) -> Result<Vec<Vec<u8>>, TrustError> {
    if bytes.len() > MAX_TRUST_FILE_LEN {
        return Err(TrustError::TooLarge {
            what,
            len: bytes.len(),
            max: MAX_TRUST_FILE_LEN,
        });
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Binary: one DER object.
        return Ok(vec![bytes.to_vec()]);
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let Some(stop) = rest[start..].find(&end) else {
            return Err(TrustError::Unreadable {
                what,
                detail: format!("a `{begin}` block has no END line"),
            });
        };
        let block = &rest[start..start + stop + end.len()];
        let (_, der) =
            pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|e| TrustError::Unreadable {
                what,
                detail: e.to_string(),
            })?;
        out.push(der);
        rest = &rest[start + stop + end.len()..];
    }
    if out.is_empty() {
        return Err(TrustError::Empty { what, label });
    }
    Ok(out)
}

/// How revocation lists are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlPolicy {
    /// No current CRL for an issuing CA means its certificates are refused.
    pub require_crl: bool,
    /// How long after a CRL's nextUpdate it still counts as current.
    pub grace_secs: u64,
}

/// The trusted CAs and their checked CRLs.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    cas: Vec<TrustedCa>,
    /// The newest checked CRL of each CA, by index into `cas`.
    crls: Vec<Option<Crl>>,
}

/// A presented certificate the store accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub certificate: ParsedCertificate,
    /// The issuing CA's subject.
    pub issuer: String,
    /// The issuing CA's [`TrustedCa::identity`].
    pub ca_identity: String,
    /// Whether a CRL of the issuer was checked (false: none is held and
    /// `require_crl` is off). A caller that remembers CRLs seen must
    /// refuse when it held one before: a list that disappears must not
    /// forget its revocations.
    pub crl_checked: bool,
}

impl TrustStore {
    /// Pairs each CRL with the CA that issued it (any CA of that name whose
    /// key verifies it and whose keyUsage allows cRLSign) and keeps the
    /// newest of each. A CRL that names a trusted CA but is not signed by
    /// it is an error; a CRL of a CA that is not trusted (a root's list
    /// beside an intermediate anchor) is set aside and returned, for the
    /// log.
    pub fn new(cas: Vec<TrustedCa>, crls: Vec<Crl>) -> Result<(TrustStore, Vec<Crl>), TrustError> {
        let mut by_ca: Vec<Option<Crl>> = vec![None; cas.len()];
        let mut unused = Vec::new();
        for crl in crls {
            let named: Vec<usize> = (0..cas.len())
                .filter(|&i| cas[i].subject_der == crl.issuer_der)
                .collect();
            if named.is_empty() {
                unused.push(crl);
                continue;
            }
            // Every CA certificate of that name whose key verifies the
            // list gets it: an expired and a renewed certificate of one CA
            // key share its revocations.
            let signers: Vec<usize> = named
                .into_iter()
                .filter(|&i| {
                    cas[i].may_sign_crls
                        && cas[i]
                            .key
                            .verify(&crl.signature_algorithm, &crl.tbs, &crl.signature)
                            .is_ok()
                })
                .collect();
            if signers.is_empty() {
                return Err(TrustError::BadCrlSignature { issuer: crl.issuer });
            }
            for index in signers {
                if by_ca[index]
                    .as_ref()
                    .is_none_or(|held| crl.mark().is_after(&held.mark()))
                {
                    by_ca[index] = Some(crl.clone());
                }
            }
        }
        Ok((TrustStore { cas, crls: by_ca }, unused))
    }

    /// Refuses a store whose CRL for some CA goes back before the one
    /// `earlier` held for the same CA (by subject and key fingerprint).
    pub fn check_not_rolled_back(&self, earlier: &TrustStore) -> Result<(), TrustError> {
        for (ca, crl) in self.crls() {
            let Some(crl) = crl else { continue };
            let before = earlier
                .crls()
                .find(|(old, _)| old.identity == ca.identity)
                .and_then(|(_, old)| old);
            if before.is_some_and(|old| crl.mark().is_before(&old.mark())) {
                return Err(TrustError::CrlRolledBack {
                    issuer: crl.issuer.clone(),
                });
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }

    pub fn cas(&self) -> &[TrustedCa] {
        &self.cas
    }

    /// Each CA with its current CRL, if any.
    pub fn crls(&self) -> impl Iterator<Item = (&TrustedCa, Option<&Crl>)> {
        self.cas.iter().zip(self.crls.iter().map(Option::as_ref))
    }

    /// The decision about a certificate presented for `user` at `now`:
    /// issued directly by a trusted CA valid now, today's user rule (one
    /// CN equal to the user, P-256, validity with `skew`, key usage), not a
    /// CA itself, and not revoked by a current CRL.
    pub fn check_presented(
        &self,
        der: &[u8],
        user: &UserName,
        now: i64,
        skew: Duration,
        policy: CrlPolicy,
    ) -> Result<Accepted, TrustError> {
        let certificate = parse_user_certificate_der(der)?;
        let serial = certificate.serial_hex().to_owned();
        let issuer = certificate.issuer().to_owned();
        let named: Vec<usize> = (0..self.cas.len())
            .filter(|&i| self.cas[i].subject_der == certificate.issuer_der())
            .collect();
        if named.is_empty() {
            return Err(TrustError::UnknownIssuer { issuer, serial });
        }
        // Several CAs may share a name (a renewed CA key): the one whose
        // key verifies the certificate is its issuer.
        let mut failure = TrustError::BadIssuerSignature {
            issuer: issuer.clone(),
            serial: serial.clone(),
        };
        let skew_secs = i64::try_from(skew.as_secs()).unwrap_or(i64::MAX);
        let valid_now = |ca: &TrustedCa| {
            now.saturating_add(skew_secs) >= ca.not_before
                && now.saturating_sub(skew_secs) <= ca.not_after
        };
        let mut verifying = Vec::new();
        for i in named {
            match self.cas[i].key.verify(
                certificate.signature_algorithm(),
                certificate.tbs(),
                certificate.signature(),
            ) {
                Ok(()) => verifying.push(i),
                Err(Bad::Unsupported { algorithm, key }) => {
                    failure = TrustError::UnsupportedSignature { algorithm, key }
                }
                Err(Bad::Signature) => {}
            }
        }
        // An expired and a renewed certificate of the same CA key may both
        // be in the bundle, in any order: the one valid now is the issuer.
        let Some(index) = verifying
            .iter()
            .copied()
            .find(|&i| valid_now(&self.cas[i]))
            .or_else(|| verifying.first().copied())
        else {
            return Err(failure);
        };
        let ca = &self.cas[index];
        if !certificate.unknown_critical_extensions().is_empty() {
            return Err(TrustError::UnknownCriticalExtension {
                serial,
                extensions: certificate.unknown_critical_extensions().join(", "),
            });
        }
        if !valid_now(ca) {
            return Err(TrustError::CaNotValidNow {
                issuer,
                not_before: ca.not_before,
                not_after: ca.not_after,
            });
        }
        if certificate.is_ca() {
            return Err(TrustError::UserCertificateIsCa { serial });
        }
        certificate.check_user(user)?;
        certificate.check_time(now, skew)?;
        match &self.crls[index] {
            Some(crl) => {
                let grace = i64::try_from(policy.grace_secs).unwrap_or(i64::MAX);
                if let Some(next_update) = crl.next_update {
                    if now > next_update.saturating_add(grace) {
                        return Err(TrustError::CrlOutOfDate {
                            issuer,
                            next_update,
                        });
                    }
                }
                if crl
                    .revoked
                    .contains(&serial_key(certificate.serial_bytes()))
                {
                    return Err(TrustError::Revoked { issuer, serial });
                }
            }
            None if policy.require_crl => return Err(TrustError::NoCrl { issuer }),
            None => {}
        }
        Ok(Accepted {
            certificate,
            issuer: ca.subject.clone(),
            ca_identity: ca.identity.clone(),
            crl_checked: self.crls[index].is_some(),
        })
    }
}
