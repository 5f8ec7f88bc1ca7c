//! The object identifiers ecp reads in keys and certificates.

/// id-ecPublicKey (RFC 5480).
pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// secp256r1, the one curve ecp accepts.
pub const P256: &str = "1.2.840.10045.3.1.7";
/// ecdsa-with-SHA256, -SHA384, -SHA512 (RFC 5758).
pub const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
pub const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
pub const ECDSA_WITH_SHA512: &str = "1.2.840.10045.4.3.4";
/// sha256/384/512WithRSAEncryption (RFC 4055): PKCS#1 v1.5 signatures.
pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
pub const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
pub const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
/// rsaEncryption: named in refusals.
pub const RSA: &str = "1.2.840.113549.1.1.1";
/// Ed25519 and Ed448 (RFC 8410): named in refusals.
pub const ED25519: &str = "1.3.101.112";
pub const ED448: &str = "1.3.101.113";
/// secp384r1: accepted for CA keys.
pub const P384: &str = "1.3.132.0.34";
/// Curves people are likely to try instead of P-256.
const P521: &str = "1.3.132.0.35";
const SECP256K1: &str = "1.3.132.0.10";
const BRAINPOOL_P256R1: &str = "1.3.36.3.3.2.8.1.1.7";

/// A key algorithm's name for a refusal message.
pub fn algorithm_name(oid: &str) -> String {
    match oid {
        EC_PUBLIC_KEY => "EC".into(),
        RSA => "RSA".into(),
        ED25519 => "Ed25519".into(),
        ED448 => "Ed448".into(),
        other => format!("unknown ({other})"),
    }
}

/// A curve's name for a refusal message.
pub fn curve_name(oid: &str) -> String {
    match oid {
        P256 => "P-256".into(),
        P384 => "P-384".into(),
        P521 => "P-521".into(),
        SECP256K1 => "secp256k1".into(),
        BRAINPOOL_P256R1 => "brainpoolP256r1".into(),
        other => other.into(),
    }
}
