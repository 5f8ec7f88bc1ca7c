//! The ECDSA signature checks of a user's key and of an organisation CA: a
//! login answer, a renewal proof, a certificate's self-signature, a
//! certificate request, a CA's signature on a certificate or CRL, a
//! token's or an agent's answer. (Not here: the ecp agent's check of an
//! ssh server's host key, which calls ring for its several key types.)
//!
//! The arithmetic is ring's (assembly on x86_64 and aarch64: about 3× the
//! `p256` crate's speed, and as fast as OpenSSL's; see `make bench`),
//! because the check was most of what a login cost ecpd and bounds how
//! fast it refuses a flood of wrong answers; only ecdsa-with-SHA512, which
//! ring does not do, stays with the RustCrypto verifier. What is *accepted*
//! is still decided by the `p256`/`p384` types as before: a key reaches
//! this module only as a parsed [`VerifyingKey`] (a point on the curve,
//! not the identity), and a signature only as a parsed [`Signature`]
//! (strict DER already undone, 0 < r, s < n); ring is handed the point
//! uncompressed and the signature as fixed-width r‖s. High-S signatures,
//! which OpenSSL makes about half the time, verify as they always did.
//!
//! `tests` below holds the differential test against the `p256` and
//! `p384` crates' own verifiers, with cases built to reach the branches
//! random signatures never do; `fuzz/fuzz_targets/verify.rs` is the fuzz
//! target.

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use ring::signature::{self as ring_sig, EcdsaVerificationAlgorithm, UnparsedPublicKey};
use sha2::{Digest as _, Sha512};

/// The signature does not verify with the key over the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signature does not verify")]
pub struct BadSignature;

/// The digest an ECDSA signature was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdsaHash {
    Sha256,
    Sha384,
    /// ring has no ECDSA over SHA-512: such signatures (CA ones only)
    /// are checked by the RustCrypto verifier, as before ring.
    Sha512,
}

/// Checks an ECDSA P-256 signature over SHA-256 of `message`: the form of
/// every signature a user's key makes for ecp.
pub fn p256_sha256(
    key: &VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), BadSignature> {
    p256(key, EcdsaHash::Sha256, message, signature)
}

/// Checks an ECDSA P-256 signature over `hash` of `message`.
pub fn p256(
    key: &VerifyingKey,
    hash: EcdsaHash,
    message: &[u8],
    signature: &Signature,
) -> Result<(), BadSignature> {
    let point = key.to_sec1_point(false);
    match hash {
        EcdsaHash::Sha256 => check(
            &ring_sig::ECDSA_P256_SHA256_FIXED,
            point.as_bytes(),
            message,
            &signature.to_bytes(),
        ),
        // ring has this pairing in DER form only: the re-encoding of a
        // parsed signature is canonical, so it reads back the same r, s.
        EcdsaHash::Sha384 => check(
            &ring_sig::ECDSA_P256_SHA384_ASN1,
            point.as_bytes(),
            message,
            signature.to_der().as_bytes(),
        ),
        EcdsaHash::Sha512 => key
            .verify_prehash(&Sha512::digest(message), signature)
            .map_err(|_| BadSignature),
    }
}

/// Checks an ECDSA P-384 signature over `hash` of `message` (organisation
/// CA keys only).
pub fn p384(
    key: &p384::ecdsa::VerifyingKey,
    hash: EcdsaHash,
    message: &[u8],
    signature: &p384::ecdsa::Signature,
) -> Result<(), BadSignature> {
    let point = key.to_sec1_point(false);
    match hash {
        EcdsaHash::Sha256 => check(
            &ring_sig::ECDSA_P384_SHA256_ASN1,
            point.as_bytes(),
            message,
            signature.to_der().as_bytes(),
        ),
        EcdsaHash::Sha384 => check(
            &ring_sig::ECDSA_P384_SHA384_FIXED,
            point.as_bytes(),
            message,
            &signature.to_bytes(),
        ),
        EcdsaHash::Sha512 => key
            .verify_prehash(&Sha512::digest(message), signature)
            .map_err(|_| BadSignature),
    }
}

fn check(
    algorithm: &'static EcdsaVerificationAlgorithm,
    uncompressed_point: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), BadSignature> {
    UnparsedPublicKey::new(algorithm, uncompressed_point)
        .verify(message, signature)
        .map_err(|_| BadSignature)
}

#[cfg(test)]
mod tests;
