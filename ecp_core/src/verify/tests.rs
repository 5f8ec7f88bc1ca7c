//! The differential test: ring's verifier (this module) against the
//! `p256` crate's own on generated cases, every case also checked against
//! the outcome it was built to have.
//!
//! `make test` runs [`CASES_IN_MAKE_TEST`] P-256 cases;
//! `ECP_VERIFY_CASES=1000000 cargo test --release -p ecp_core verify::`
//! (or `make differential`) runs a million. `ECP_VERIFY_SEED=N` repeats a
//! run; a failure prints its seed and case number.
//!
//! A case goes through the pipeline a login takes: DER bytes →
//! `Signature::from_der` → the check. Each case says where it must end:
//! accepted, refused by both verifiers, or refused by the parser before
//! either verifier sees it (r or s out of range, not DER), and the run
//! prints how many cases reached the verifiers. What random signatures
//! never reach (a doubling inside the verifier, the point at infinity,
//! x(R) ≥ n) is built on purpose: see `crafted`.

mod crafted;

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::ops::Reduce;
use p256::{FieldBytes, Scalar};

use super::{p256_sha256, EcdsaHash};
use crafted::{add, from_hex, CraftedKind};

const CASES_IN_MAKE_TEST: u64 = 10_000;

/// splitmix64: reproducible from one seed, and fast enough that the
/// curve arithmetic, not the generator, is what a case costs.
pub(super) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn array32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.bytes(32));
        out
    }

    fn signing_key(&mut self) -> SigningKey {
        loop {
            if let Ok(key) = SigningKey::from_slice(&self.array32()) {
                return key;
            }
        }
    }

    fn nonzero_scalar(&mut self) -> Scalar {
        loop {
            let s = <Scalar as Reduce<FieldBytes>>::reduce(&self.array32().into());
            if !bool::from(p256::elliptic_curve::Field::is_zero(&s)) {
                return s;
            }
        }
    }

    fn message(&mut self) -> Vec<u8> {
        // Mostly challenge-sized; sometimes empty or long.
        let len = match self.below(8) {
            0 => 0,
            1 => self.below(4096) as usize,
            _ => 100 + self.below(120) as usize,
        };
        self.bytes(len)
    }
}

/// Where a case was built to end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Parsed, and accepted by both verifiers.
    Accept,
    /// Parsed, and refused by both verifiers.
    RefusedByVerifiers,
    /// Refused by `Signature::from_der`: no verifier sees it.
    RefusedByParser,
    /// Refused, by the parser or the verifiers (a flipped bit may push r
    /// or s out of range, or break the DER).
    Refused,
}

struct Case {
    key: VerifyingKey,
    message: Vec<u8>,
    der: Vec<u8>,
    expect: Expect,
}

/// Every kind of case, taken in turn so that each gets its share.
#[derive(Clone, Copy, Debug)]
enum Kind {
    ValidLowS,
    ValidHighS,
    MessageBitFlipped,
    MessageOneByteLonger,
    SignatureBitFlipped,
    RBitFlipped,
    SBitFlipped,
    RAndSSwapped,
    WrongKey,
    RandomRAndS,
    ROutOfRange,
    SOutOfRange,
    NotDer,
    /// Built from the verification equation: see `crafted`.
    Crafted(CraftedKind),
}

const KINDS: [Kind; 17] = [
    Kind::ValidLowS,
    Kind::ValidHighS,
    Kind::MessageBitFlipped,
    Kind::MessageOneByteLonger,
    Kind::SignatureBitFlipped,
    Kind::RBitFlipped,
    Kind::SBitFlipped,
    Kind::RAndSSwapped,
    Kind::WrongKey,
    Kind::RandomRAndS,
    Kind::ROutOfRange,
    Kind::SOutOfRange,
    Kind::NotDer,
    Kind::Crafted(CraftedKind::EqualPoints),
    Kind::Crafted(CraftedKind::PointAtInfinity),
    Kind::Crafted(CraftedKind::LargeX),
    Kind::Crafted(CraftedKind::LargeXTrap),
];

/// r and s of a signature, big-endian, low-S and high-S forms.
fn low_and_high_s(signature: &Signature) -> (Signature, Signature) {
    let low = signature.normalize_s();
    let (r, s) = low.split_scalars();
    let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    (low, high)
}

/// A minimal DER INTEGER of the unsigned big-endian `value`.
fn der_integer(value: &[u8]) -> Vec<u8> {
    let first = value
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(value.len() - 1);
    let mut content = value[first..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    let mut out = vec![0x02, content.len() as u8];
    out.extend(content);
    out
}

fn der_sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    let body = parts.concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

fn der_of(r: &[u8], s: &[u8]) -> Vec<u8> {
    der_sequence(&[der_integer(r), der_integer(s)])
}

/// A value ≥ n (or 0) for r or s, each form in turn.
fn out_of_range(rng: &mut Rng, valid: &[u8; 32]) -> Vec<u8> {
    let order = from_hex(P256_ORDER);
    let mut n_plus_one = order.clone();
    n_plus_one[31] += 1;
    match rng.below(6) {
        0 => vec![0],
        1 => order,
        2 => n_plus_one,
        3 => add(valid, &order), // the same value mod n
        4 => from_hex(P256_PRIME),
        _ => vec![0xff; 32],
    }
}

const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P256_PRIME: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";

/// Encodings of (r, s) that are not DER, or not a signature at all.
fn not_der(rng: &mut Rng, r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    let good = der_of(r, s);
    let (ri, si) = (der_integer(r), der_integer(s));
    match rng.below(14) {
        // Long-form lengths where the short form fits.
        0 => [&[0x30, 0x81, good[1]][..], &good[2..]].concat(),
        1 => {
            let long_r = [&[0x02, 0x81, ri[1]][..], &ri[2..]].concat();
            der_sequence(&[long_r, si])
        }
        // A needless leading zero.
        2 => {
            let padded = [&[0x02, ri[1] + 1, 0][..], &ri[2..]].concat();
            der_sequence(&[padded, si])
        }
        // A negative integer: the sign byte dropped, or the top bit set.
        3 => {
            let mut r_bytes = ri[2..].to_vec();
            if r_bytes[0] == 0 {
                r_bytes.remove(0);
            } else {
                r_bytes[0] |= 0x80;
            }
            let negative = [&[0x02, r_bytes.len() as u8][..], &r_bytes].concat();
            der_sequence(&[negative, si])
        }
        4 => {
            let extra = 1 + rng.below(4) as usize;
            [good.clone(), rng.bytes(extra)].concat()
        }
        5 => der_sequence(&[ri, si, der_integer(&[1])]),
        // Indefinite length (BER).
        6 => [&[0x30, 0x80][..], &good[2..], &[0, 0]].concat(),
        7 => {
            let mut wrong = good.clone();
            wrong[0] = [0x31, 0x10, 0xa0][rng.below(3) as usize];
            wrong
        }
        8 => {
            let mut wrong = good.clone();
            wrong[2] = 0x03; // BIT STRING for INTEGER
            wrong
        }
        9 => {
            let cut = rng.below(good.len() as u64) as usize;
            good[..cut].to_vec()
        }
        10 => {
            let mut wrong = good.clone();
            wrong[1] = wrong[1].wrapping_add(if rng.below(2) == 0 { 1 } else { 0xff });
            wrong
        }
        // The fixed-width r‖s form, which is not what travels.
        11 => [&r[..], &s[..]].concat(),
        12 => Vec::new(),
        _ => {
            let len = 1 + rng.below(80) as usize;
            rng.bytes(len)
        }
    }
}

fn flip_bit(rng: &mut Rng, bytes: &mut [u8]) {
    let bit = rng.below(bytes.len() as u64 * 8) as usize;
    bytes[bit / 8] ^= 1 << (bit % 8);
}

fn make_case(kind: Kind, rng: &mut Rng) -> Case {
    let signer = rng.signing_key();
    let key = *signer.verifying_key();
    let mut message = rng.message();
    let signature: Signature = signer.sign(&message);
    let (low, high) = low_and_high_s(&signature);
    let chosen = if rng.below(2) == 0 { low } else { high };
    let r: [u8; 32] = chosen.r().to_bytes().into();
    let s: [u8; 32] = chosen.s().to_bytes().into();
    let der = chosen.to_der().as_bytes().to_vec();
    assert_eq!(der, der_of(&r, &s), "this test's DER encoder");
    let case = |key, message, der, expect| Case {
        key,
        message,
        der,
        expect,
    };
    use Expect::*;
    match kind {
        Kind::ValidLowS => case(key, message, low.to_der().as_bytes().to_vec(), Accept),
        Kind::ValidHighS => case(key, message, high.to_der().as_bytes().to_vec(), Accept),
        Kind::MessageBitFlipped => {
            if message.is_empty() {
                message.push(0);
            } else {
                flip_bit(rng, &mut message);
            }
            case(key, message, der, RefusedByVerifiers)
        }
        Kind::MessageOneByteLonger => {
            message.push(rng.next() as u8);
            case(key, message, der, RefusedByVerifiers)
        }
        Kind::SignatureBitFlipped => {
            let mut flipped = der;
            flip_bit(rng, &mut flipped);
            case(key, message, flipped, Refused)
        }
        Kind::RBitFlipped => {
            let mut r = r;
            flip_bit(rng, &mut r);
            case(key, message, der_of(&r, &s), Refused)
        }
        Kind::SBitFlipped => {
            let mut s = s;
            flip_bit(rng, &mut s);
            case(key, message, der_of(&r, &s), Refused)
        }
        Kind::RAndSSwapped => case(key, message, der_of(&s, &r), RefusedByVerifiers),
        Kind::WrongKey => case(
            *rng.signing_key().verifying_key(),
            message,
            der,
            RefusedByVerifiers,
        ),
        Kind::RandomRAndS => {
            let (r, s) = (rng.nonzero_scalar(), rng.nonzero_scalar());
            case(
                key,
                message,
                der_of(&r.to_bytes(), &s.to_bytes()),
                RefusedByVerifiers,
            )
        }
        Kind::ROutOfRange => {
            let bad = out_of_range(rng, &r);
            case(
                key,
                message,
                der_sequence(&[der_integer(&bad), der_integer(&s)]),
                RefusedByParser,
            )
        }
        Kind::SOutOfRange => {
            let bad = out_of_range(rng, &s);
            case(
                key,
                message,
                der_sequence(&[der_integer(&r), der_integer(&bad)]),
                RefusedByParser,
            )
        }
        Kind::NotDer => case(key, message, not_der(rng, &r, &s), RefusedByParser),
        Kind::Crafted(kind) => {
            let crafted = crafted::p256_curve::make(kind, rng, EcdsaHash::Sha256, &message);
            let expect = if kind.is_valid() {
                Accept
            } else {
                RefusedByVerifiers
            };
            case(crafted.key, message, der_of(&crafted.r, &crafted.s), expect)
        }
    }
}

/// The login pipeline with ring's check, and with p256's: `true` when the
/// signature is accepted; None when the DER does not parse.
fn verdicts(case: &Case) -> Option<(bool, bool)> {
    let signature = Signature::from_der(&case.der).ok()?;
    Some((
        p256_sha256(&case.key, &case.message, &signature).is_ok(),
        case.key.verify(&case.message, &signature).is_ok(),
    ))
}

/// Whether `verdicts` is where `expect` said the case would end.
fn ended_as_built(expect: Expect, verdicts: Option<(bool, bool)>) -> bool {
    match (expect, verdicts) {
        (Expect::Accept, Some((ring, _))) => ring,
        (Expect::RefusedByVerifiers, Some((ring, _))) => !ring,
        (Expect::RefusedByParser, None) => true,
        (Expect::Refused, None) => true,
        (Expect::Refused, Some((ring, _))) => !ring,
        _ => false,
    }
}

fn seed() -> u64 {
    match std::env::var("ECP_VERIFY_SEED") {
        Ok(text) => text.parse().expect("ECP_VERIFY_SEED is a number"),
        Err(_) => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).unwrap();
            u64::from_le_bytes(bytes)
        }
    }
}

fn case_count(default: u64) -> u64 {
    std::env::var("ECP_VERIFY_CASES")
        .map(|text| text.parse().expect("ECP_VERIFY_CASES is a number"))
        .unwrap_or(default)
}

#[test]
fn ring_and_p256_agree_on_every_generated_p256_case() {
    let seed = seed();
    let cases = case_count(CASES_IN_MAKE_TEST);
    // Per kind: accepted, refused by the verifiers, refused by the parser.
    let mut tally = [[0u64; 3]; KINDS.len()];
    for i in 0..cases {
        let kind_index = (i % KINDS.len() as u64) as usize;
        let kind = KINDS[kind_index];
        let mut rng = Rng(seed ^ i.wrapping_mul(0xd134_2543_de82_ef95));
        let case = make_case(kind, &mut rng);
        let verdicts = verdicts(&case);
        let context = || {
            format!(
                "seed {seed} case {i} ({kind:?}, built to end {:?}): key {}, message {}, signature {}",
                case.expect,
                crate::hex::encode(case.key.to_sec1_point(false).as_bytes()),
                crate::hex::encode(&case.message),
                crate::hex::encode(&case.der)
            )
        };
        if let Some((ring, reference)) = verdicts {
            assert_eq!(
                ring,
                reference,
                "ring and p256 disagree (ring {ring}): {}",
                context()
            );
        }
        assert!(
            ended_as_built(case.expect, verdicts),
            "the case ended {verdicts:?}: {}",
            context()
        );
        let column = match verdicts {
            Some((true, _)) => 0,
            Some((false, _)) => 1,
            None => 2,
        };
        tally[kind_index][column] += 1;
    }
    let reached: u64 = tally.iter().map(|t| t[0] + t[1]).sum();
    println!("seed {seed}: {cases} cases, {reached} reached both verifiers");
    for (kind, [accepted, refused, unparsed]) in KINDS.iter().zip(tally) {
        println!(
            "  {kind:?}: {accepted} accepted, {refused} refused by the verifiers, {unparsed} by the parser"
        );
    }
}

#[test]
fn ring_and_rustcrypto_agree_on_crafted_cases_for_every_curve_and_hash() {
    let seed = seed();
    let per_pairing = (case_count(CASES_IN_MAKE_TEST) / 40).max(8);
    for (pairing, (curve, hash)) in [
        ("P-256", EcdsaHash::Sha256),
        ("P-256", EcdsaHash::Sha384),
        ("P-384", EcdsaHash::Sha256),
        ("P-384", EcdsaHash::Sha384),
    ]
    .into_iter()
    .enumerate()
    {
        for i in 0..per_pairing {
            let kind = CraftedKind::ALL[(i % 4) as usize];
            // Each pairing its own messages and points.
            let case_number = (pairing as u64) << 48 | i;
            let mut rng = Rng(seed ^ case_number.wrapping_mul(0x9e6c_63d0_676a_9a99));
            let message = rng.message();
            let verdicts = if curve == "P-256" {
                let c = crafted::p256_curve::make(kind, &mut rng, hash, &message);
                crafted::p256_curve::verdicts(&c.key, hash, &message, &der_of(&c.r, &c.s))
            } else {
                let c = crafted::p384_curve::make(kind, &mut rng, hash, &message);
                crafted::p384_curve::verdicts(&c.key, hash, &message, &der_of(&c.r, &c.s))
            };
            let context = format!("seed {seed} case {i}: {curve} {hash:?} {kind:?}");
            let (ring, reference) =
                verdicts.unwrap_or_else(|| panic!("{context}: the DER did not parse"));
            assert_eq!(
                ring, reference,
                "{context}: ring {ring}, RustCrypto {reference}"
            );
            assert_eq!(ring, kind.is_valid(), "{context}: accepted {ring}");
        }
    }
    println!(
        "seed {seed}: {} crafted cases, {per_pairing} for each curve and hash",
        4 * per_pairing
    );
}

/// How a CA case alters a valid signature (fixed-width r‖s) or its
/// message: 0 leaves it valid, 1 flips a message bit, 2 flips a signature
/// bit, 3 asks for the wrong key. Returns whether to use the wrong key.
pub(super) fn alter(variant: u64, rng: &mut Rng, message: &mut Vec<u8>, fixed: &mut [u8]) -> bool {
    match variant {
        0 => false,
        1 if message.is_empty() => {
            message.push(0);
            false
        }
        1 => {
            flip_bit(rng, message);
            false
        }
        2 => {
            flip_bit(rng, fixed);
            false
        }
        _ => true,
    }
}

/// Organisation CA signatures: P-256 over SHA-384 and P-384 over SHA-256
/// and SHA-384; valid (either form of s), altered, or under a wrong key.
#[test]
fn ring_and_rustcrypto_agree_on_ca_signature_cases() {
    let seed = seed();
    let cases = case_count(CASES_IN_MAKE_TEST) / 10;
    let mut accepted = 0;
    for i in 0..cases {
        let mut rng = Rng(seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut message = rng.message();
        let variant = rng.below(4);
        let high_s = rng.below(2) == 1;
        let verdicts = match i % 4 {
            0 | 2 => crafted::p256_curve::altered_ca_case(
                &mut rng,
                EcdsaHash::Sha384,
                &mut message,
                variant,
                high_s,
            ),
            1 => crafted::p384_curve::altered_ca_case(
                &mut rng,
                EcdsaHash::Sha256,
                &mut message,
                variant,
                high_s,
            ),
            _ => crafted::p384_curve::altered_ca_case(
                &mut rng,
                EcdsaHash::Sha384,
                &mut message,
                variant,
                high_s,
            ),
        };
        let (ring, reference) = verdicts.unwrap_or((false, false));
        assert_eq!(
            ring, reference,
            "seed {seed} case {i}: ring {ring}, RustCrypto {reference}"
        );
        assert_eq!(
            ring,
            variant == 0,
            "seed {seed} case {i} (variant {variant}): accepted {ring}"
        );
        accepted += u64::from(ring);
    }
    assert!(accepted > 0 || cases == 0, "no valid CA case was generated");
}

/// ecdsa-with-SHA512 (RustCrypto's check inside `verify`, ring has none):
/// a CA's genuine signature verifies on both curves, an altered one not.
#[test]
fn ecdsa_with_sha512_ca_signatures_are_checked_on_both_curves() {
    let mut rng = Rng(seed());
    for variant in 0..4 {
        for high_s in [false, true] {
            let mut message = rng.message();
            let p256 = crafted::p256_curve::altered_ca_case(
                &mut rng,
                EcdsaHash::Sha512,
                &mut message,
                variant,
                high_s,
            );
            let mut message = rng.message();
            let p384 = crafted::p384_curve::altered_ca_case(
                &mut rng,
                EcdsaHash::Sha512,
                &mut message,
                variant,
                high_s,
            );
            for (curve, verdicts) in [("P-256", p256), ("P-384", p384)] {
                let (ours, _) = verdicts.unwrap_or((false, false));
                assert_eq!(ours, variant == 0, "{curve} variant {variant}");
            }
        }
    }
}
