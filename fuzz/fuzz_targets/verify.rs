#![no_main]
//! The signature check ecpd makes (ring, through ecp_core::verify) against
//! the p256 crate's verifier: the same verdict on every input. Inputs are
//! a key (from a seed), a message and either a signature the key really
//! made, with bits flipped and s possibly negated, or arbitrary bytes
//! read as DER. A genuine, unaltered signature must verify.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey};

#[derive(Arbitrary, Debug)]
struct Input {
    key_seed: [u8; 32],
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

fuzz_target!(|input: Input| {
    let Ok(key) = SigningKey::from_slice(&input.key_seed) else {
        return;
    };
    let public = key.verifying_key();
    let (der, must_verify) = match input.signature {
        SignatureInput::Genuine { high_s, flips } => {
            let low = Signature::normalize_s(&key.sign(&input.message));
            let chosen = if high_s {
                let (r, s) = low.split_scalars();
                Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap()
            } else {
                low
            };
            let genuine = chosen.to_der().as_bytes().to_vec();
            let mut der = genuine.clone();
            let bits = der.len() * 8;
            for position in flips {
                let bit = usize::from(position) % bits;
                der[bit / 8] ^= 1 << (bit % 8);
            }
            // Flips that cancel out leave the genuine signature.
            let unaltered = der == genuine;
            (der, unaltered)
        }
        SignatureInput::Raw(bytes) => (bytes, false),
    };
    let Ok(signature) = Signature::from_der(&der) else {
        assert!(!must_verify, "a genuine signature did not parse");
        return;
    };
    let ours = ecp_core::verify::p256_sha256(public, &input.message, &signature).is_ok();
    let reference = public.verify(&input.message, &signature).is_ok();
    assert_eq!(ours, reference, "ring {ours}, p256 {reference}");
    if must_verify {
        assert!(ours, "a genuine signature did not verify");
    }
});
