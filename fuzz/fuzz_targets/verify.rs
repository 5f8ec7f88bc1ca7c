#![no_main]
//! The signature checks ecpd makes (ring, through ecp_core::verify)
//! against the p256 and p384 crates' own verifiers: the same verdict on
//! every input. Inputs are a curve and hash (a user's P-256/SHA-256, or a
//! CA's pairing), a key (from a seed), a message and either a signature
//! the key really made, with bits flipped and s possibly negated, or
//! arbitrary bytes read as DER. A genuine, unaltered signature must verify.

use ecp_core::verify::EcdsaHash;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sha2::Digest as _;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Pairing {
    P256Sha256,
    P256Sha384,
    P384Sha256,
    P384Sha384,
}

#[derive(Arbitrary, Debug)]
struct Input {
    pairing: Pairing,
    key_seed: [u8; 48],
    message: Vec<u8>,
    signature: SignatureInput,
}

#[derive(Arbitrary, Debug)]
enum SignatureInput {
    /// The key's own signature over the message, high-S if asked, with
    /// these bit positions of its DER flipped.
    Genuine { high_s: bool, flips: Vec<u16> },
    /// Bytes that are handed to the DER parser as they are.
    Raw(Vec<u8>),
}

fn digest(hash: EcdsaHash, message: &[u8]) -> Vec<u8> {
    match hash {
        EcdsaHash::Sha256 => sha2::Sha256::digest(message).to_vec(),
        EcdsaHash::Sha384 => sha2::Sha384::digest(message).to_vec(),
        EcdsaHash::Sha512 => sha2::Sha512::digest(message).to_vec(),
    }
}

/// `genuine` with the given bits flipped, and whether it is unchanged.
fn altered(genuine: Vec<u8>, flips: &[u16]) -> (Vec<u8>, bool) {
    let mut der = genuine.clone();
    let bits = der.len() * 8;
    for &position in flips {
        let bit = usize::from(position) % bits;
        der[bit / 8] ^= 1 << (bit % 8);
    }
    // Flips that cancel out leave the genuine signature.
    let unaltered = der == genuine;
    (der, unaltered)
}

/// The DER to check and whether it must verify; the verdicts of ecp's
/// check and of the curve crate's, or None when the DER does not parse.
macro_rules! run_curve {
    ($curve:ident, $verify:path, $input:expr, $hash:expr) => {{
        use $curve::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
        use $curve::ecdsa::{Signature, SigningKey};
        let input = $input;
        let hash = $hash;
        let len = $curve::FieldBytes::default().len();
        let Ok(key) = SigningKey::from_slice(&input.key_seed[..len]) else {
            return;
        };
        let public = key.verifying_key();
        let digest = digest(hash, &input.message);
        let (der, must_verify) = match &input.signature {
            SignatureInput::Genuine { high_s, flips } => {
                let signature: Signature = key.sign_prehash(&digest).unwrap();
                let low = signature.normalize_s();
                let chosen = if *high_s {
                    let (r, s) = low.split_scalars();
                    Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap()
                } else {
                    low
                };
                altered(chosen.to_der().as_bytes().to_vec(), flips)
            }
            SignatureInput::Raw(bytes) => (bytes.clone(), false),
        };
        let verdicts = Signature::from_der(&der).ok().map(|signature| {
            (
                $verify(public, hash, &input.message, &signature).is_ok(),
                public.verify_prehash(&digest, &signature).is_ok(),
            )
        });
        (verdicts, must_verify)
    }};
}

fuzz_target!(|input: Input| {
    let (verdicts, must_verify) = match input.pairing {
        Pairing::P256Sha256 => {
            run_curve!(p256, ecp_core::verify::p256, &input, EcdsaHash::Sha256)
        }
        Pairing::P256Sha384 => {
            run_curve!(p256, ecp_core::verify::p256, &input, EcdsaHash::Sha384)
        }
        Pairing::P384Sha256 => {
            run_curve!(p384, ecp_core::verify::p384, &input, EcdsaHash::Sha256)
        }
        Pairing::P384Sha384 => {
            run_curve!(p384, ecp_core::verify::p384, &input, EcdsaHash::Sha384)
        }
    };
    match verdicts {
        None => assert!(!must_verify, "a genuine signature did not parse"),
        Some((ours, reference)) => {
            assert_eq!(ours, reference, "ring {ours}, RustCrypto {reference}");
            assert!(ours || !must_verify, "a genuine signature did not verify");
        }
    }
});
