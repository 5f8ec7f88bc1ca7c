//! `ecdsa-sha2-nistp256` keys and signatures in their ssh encodings
//! (RFC 5656): a key blob is the type name, the curve name and the
//! uncompressed point; a signature blob is the type name and a string
//! holding the mpints r and s.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use ssh_encoding::{Decode, Encode, Mpint};

pub const P256_KEY_TYPE: &str = "ecdsa-sha2-nistp256";
const P256_CURVE: &str = "nistp256";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyBlobError {
    #[error("the key is of type {0}, not ecdsa-sha2-nistp256")]
    NotP256(String),
    #[error("a malformed ecdsa-sha2-nistp256 key: {0}")]
    MalformedKey(String),
    #[error("a malformed ecdsa-sha2-nistp256 signature: {0}")]
    MalformedSignature(String),
}

/// The key type an ssh key (or signature) blob names, if it reads as text.
pub fn blob_type(blob: &[u8]) -> Option<String> {
    String::decode(&mut &blob[..]).ok()
}

/// The ssh key blob of a P-256 public key.
pub fn p256_key_blob(key: &VerifyingKey) -> Vec<u8> {
    let point = key.to_sec1_point(false);
    let mut blob = Vec::with_capacity(104);
    let _ = P256_KEY_TYPE.encode(&mut blob);
    let _ = P256_CURVE.encode(&mut blob);
    let _ = point.as_bytes().encode(&mut blob);
    blob
}

/// The P-256 public key in an ssh key blob; any other type is refused
/// by name.
pub fn parse_p256_key_blob(blob: &[u8]) -> Result<VerifyingKey, KeyBlobError> {
    let malformed = |e: &dyn std::fmt::Display| KeyBlobError::MalformedKey(e.to_string());
    let reader = &mut &blob[..];
    let kind = String::decode(reader).map_err(|e| malformed(&e))?;
    if kind != P256_KEY_TYPE {
        return Err(KeyBlobError::NotP256(kind));
    }
    let curve = String::decode(reader).map_err(|e| malformed(&e))?;
    if curve != P256_CURVE {
        return Err(malformed(&format!("curve {curve:?}")));
    }
    let point = Vec::decode(reader).map_err(|e| malformed(&e))?;
    if !reader.is_empty() {
        return Err(malformed(&"bytes after the key"));
    }
    VerifyingKey::from_sec1_bytes(&point).map_err(|_| malformed(&"not a point on P-256"))
}

/// OpenSSH's fingerprint of a key blob: `SHA256:` and unpadded base64.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The ssh signature blob of an ECDSA P-256 signature.
pub fn p256_signature_blob(signature: &Signature) -> Vec<u8> {
    let (r, s) = signature.split_bytes();
    let mut inner = Vec::with_capacity(72);
    let _ = Mpint::from_positive_bytes(&r).encode(&mut inner);
    let _ = Mpint::from_positive_bytes(&s).encode(&mut inner);
    let mut blob = Vec::with_capacity(inner.len() + 27);
    let _ = P256_KEY_TYPE.encode(&mut blob);
    let _ = inner.encode(&mut blob);
    blob
}

/// The ECDSA signature in an ssh `ecdsa-sha2-nistp256` signature blob.
/// r and s must be positive and fit in 32 bytes; nothing may follow.
pub fn parse_p256_signature_blob(blob: &[u8]) -> Result<Signature, KeyBlobError> {
    let malformed = |e: &dyn std::fmt::Display| KeyBlobError::MalformedSignature(e.to_string());
    let reader = &mut &blob[..];
    let kind = String::decode(reader).map_err(|e| malformed(&e))?;
    if kind != P256_KEY_TYPE {
        return Err(KeyBlobError::NotP256(kind));
    }
    let inner = Vec::decode(reader).map_err(|e| malformed(&e))?;
    if !reader.is_empty() {
        return Err(malformed(&"bytes after the signature"));
    }
    let inner = &mut &inner[..];
    let mut scalars = [[0u8; 32]; 2];
    for scalar in &mut scalars {
        let mpint = Mpint::decode(inner).map_err(|e| malformed(&e))?;
        let bytes = mpint
            .as_positive_bytes()
            .ok_or_else(|| malformed(&"a negative or zero scalar"))?;
        if bytes.len() > 32 {
            return Err(malformed(&"a scalar longer than 32 bytes"));
        }
        scalar[32 - bytes.len()..].copy_from_slice(bytes);
    }
    if !inner.is_empty() {
        return Err(malformed(&"bytes after s"));
    }
    let [r, s] = scalars;
    Signature::from_scalars(r, s).map_err(|_| malformed(&"r or s out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};

    #[test]
    fn keys_and_signatures_round_trip() {
        let key = ecp_core::keyfile::generate_signing_key();
        let public = *key.verifying_key();
        let blob = p256_key_blob(&public);
        assert_eq!(blob.len(), 104);
        assert_eq!(parse_p256_key_blob(&blob).unwrap(), public);
        assert_eq!(blob_type(&blob).as_deref(), Some(P256_KEY_TYPE));
        assert!(fingerprint(&blob).starts_with("SHA256:"));

        for _ in 0..32 {
            // Some r or s have their top bit set (a leading zero in the
            // mpint) or a zero top byte (a shorter mpint): both round-trip.
            let signature: Signature = key.sign(b"bytes");
            let back = parse_p256_signature_blob(&p256_signature_blob(&signature)).unwrap();
            assert_eq!(back, signature);
            public.verify(b"bytes", &back).unwrap();
        }
    }

    #[test]
    fn other_types_and_malformed_blobs_are_refused() {
        let mut ed25519 = Vec::new();
        let _ = "ssh-ed25519".encode(&mut ed25519);
        let _ = [7u8; 32].as_slice().encode(&mut ed25519);
        assert_eq!(
            parse_p256_key_blob(&ed25519),
            Err(KeyBlobError::NotP256("ssh-ed25519".into()))
        );
        let key = ecp_core::keyfile::generate_signing_key();
        let mut blob = p256_key_blob(key.verifying_key());
        blob.push(0);
        assert!(parse_p256_key_blob(&blob).is_err());
        let mut off_curve = p256_key_blob(key.verifying_key());
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        assert!(parse_p256_key_blob(&off_curve).is_err());

        let signature: Signature = key.sign(b"x");
        let good = p256_signature_blob(&signature);
        let mut trailing = good.clone();
        trailing.push(1);
        assert!(parse_p256_signature_blob(&trailing).is_err());
        // r = 0 and an over-long r.
        for r in [vec![], vec![1u8; 33]] {
            let mut inner = Vec::new();
            let _ = Mpint::from_positive_bytes(&r).encode(&mut inner);
            let _ = Mpint::from_positive_bytes(&[1]).encode(&mut inner);
            let mut blob = Vec::new();
            let _ = P256_KEY_TYPE.encode(&mut blob);
            let _ = inner.encode(&mut blob);
            assert!(parse_p256_signature_blob(&blob).is_err(), "{r:?}");
        }
    }
}
