//! Signatures built from the verification equation, to reach the branches
//! random signatures never do.
//!
//! A verifier computes R = u1·G + u2·Q with u1 = e/s and u2 = r/s, and
//! accepts when x(R) mod n = r. For any point R, any r and s, the key
//! Q = (s/r)·R − (e/r)·G makes it compute exactly that R, so a case can
//! choose R:
//! - u1·G = u2·Q (the addition is a doubling), valid;
//! - u1·G = −u2·Q (R is the point at infinity), refused;
//! - x(R) ≥ n, so r = x − n (about one random signature in 2^129 has
//!   this on P-256, one in 2^194 on P-384), valid;
//! - r = x(R) + (p − n) with x(R) < n: refused, but a verifier that tried
//!   r + n without checking r + n < p would take it, as (r + n) mod p = x.

use crate::verify::EcdsaHash;

/// The kinds, in the order [`CraftedKind::ALL`] gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CraftedKind {
    EqualPoints,
    PointAtInfinity,
    LargeX,
    LargeXTrap,
}

impl CraftedKind {
    pub const ALL: [CraftedKind; 4] = [
        CraftedKind::EqualPoints,
        CraftedKind::PointAtInfinity,
        CraftedKind::LargeX,
        CraftedKind::LargeXTrap,
    ];

    pub fn is_valid(self) -> bool {
        matches!(self, CraftedKind::EqualPoints | CraftedKind::LargeX)
    }
}

pub fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// `a + b` for big-endian numbers of one length, the carry as a first byte.
pub fn add(a: &[u8], b: &[u8]) -> Vec<u8> {
    assert_eq!(a.len(), b.len());
    let mut out = vec![0u8; a.len() + 1];
    let mut carry = 0u16;
    for i in (0..a.len()).rev() {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i + 1] = sum as u8;
        carry = sum >> 8;
    }
    out[0] = carry as u8;
    out
}

/// `a − b` for big-endian numbers of one length, a ≥ b.
fn sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    assert!(a.len() == b.len() && a >= b);
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut difference = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(difference < 0);
        if difference < 0 {
            difference += 256;
        }
        out[i] = difference as u8;
    }
    out
}

/// The digest as the curve's verifiers read it: its leftmost bytes when
/// longer than the order, zeros to the left when shorter.
fn digest_field_bytes(digest: &[u8], len: usize) -> Vec<u8> {
    if digest.len() >= len {
        digest[..len].to_vec()
    } else {
        [vec![0; len - digest.len()], digest.to_vec()].concat()
    }
}

pub fn digest(hash: EcdsaHash, message: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    match hash {
        EcdsaHash::Sha256 => sha2::Sha256::digest(message).to_vec(),
        EcdsaHash::Sha384 => sha2::Sha384::digest(message).to_vec(),
        EcdsaHash::Sha512 => sha2::Sha512::digest(message).to_vec(),
    }
}

/// The constructions for one curve, its genuine and altered CA cases, and
/// the verdicts of ring (through `$verify`) and of the curve crate's own
/// verifier.
macro_rules! crafted_for_curve {
    ($module:ident, $curve:ident, $verify:path, order: $order:literal, prime: $prime:literal) => {
        pub mod $module {
            use super::{add, digest, digest_field_bytes, from_hex, sub, CraftedKind};
            use crate::verify::tests::Rng;
            use crate::verify::EcdsaHash;
            use $curve::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
            use $curve::ecdsa::{Signature, SigningKey, VerifyingKey};
            use $curve::elliptic_curve::ops::Reduce;
            use $curve::elliptic_curve::point::AffineCoordinates as _;
            use $curve::{FieldBytes, ProjectivePoint, Scalar};

            /// A crafted signature (r, s, big-endian) and its key.
            pub struct Crafted {
                pub key: VerifyingKey,
                pub r: Vec<u8>,
                pub s: Vec<u8>,
            }

            /// `bytes` (the curve's length, a value below n) as a scalar.
            fn scalar(bytes: &[u8]) -> Scalar {
                let mut field = FieldBytes::default();
                field.copy_from_slice(bytes);
                <Scalar as Reduce<FieldBytes>>::reduce(&field)
            }

            fn random_scalar(rng: &mut Rng) -> Scalar {
                loop {
                    let s = scalar(&rng.bytes(FieldBytes::default().len()));
                    if !bool::from($curve::elliptic_curve::Field::is_zero(&s)) {
                        return s;
                    }
                }
            }

            /// The key for which (r, s) over e makes the verifier compute
            /// `point`: Q = (s/r)·R − (e/r)·G.
            fn key_reaching(
                point: ProjectivePoint,
                e: Scalar,
                r: Scalar,
                s: Scalar,
            ) -> VerifyingKey {
                let r_inverse = r.invert().unwrap();
                let q = point * (s * r_inverse) - ProjectivePoint::GENERATOR * (e * r_inverse);
                VerifyingKey::from_affine(q.to_affine()).unwrap()
            }

            fn crafted(key: VerifyingKey, r: Scalar, s: Scalar) -> Crafted {
                Crafted {
                    key,
                    r: r.to_bytes().to_vec(),
                    s: s.to_bytes().to_vec(),
                }
            }

            pub fn make(
                kind: CraftedKind,
                rng: &mut Rng,
                hash: EcdsaHash,
                message: &[u8],
            ) -> Crafted {
                let len = FieldBytes::default().len();
                let e = scalar(&digest_field_bytes(&digest(hash, message), len));
                let order = from_hex($order);
                let gap = sub(&from_hex($prime), &order); // p − n
                match kind {
                    // R = 2k·G, s = e/k (u1 = k), d = e/r (u2·Q = k·G).
                    CraftedKind::EqualPoints => {
                        let k = random_scalar(rng);
                        let r = scalar(&(ProjectivePoint::GENERATOR * (k + k)).to_affine().x());
                        let s = e * k.invert().unwrap();
                        let d = e * r.invert().unwrap();
                        let key =
                            VerifyingKey::from_affine((ProjectivePoint::GENERATOR * d).to_affine())
                                .unwrap();
                        crafted(key, r, s)
                    }
                    // d = −e/r: u2·Q = −u1·G whatever s is.
                    CraftedKind::PointAtInfinity => {
                        let (r, s) = (random_scalar(rng), random_scalar(rng));
                        let d = -(e * r.invert().unwrap());
                        let key =
                            VerifyingKey::from_affine((ProjectivePoint::GENERATOR * d).to_affine())
                                .unwrap();
                        crafted(key, r, s)
                    }
                    // x = n + t with 0 < t < p − n, on the curve; r = t.
                    CraftedKind::LargeX => loop {
                        let leading_zeros = gap.iter().take_while(|b| **b == 0).count() + 1;
                        let mut t = rng.bytes(len);
                        t[..leading_zeros].fill(0);
                        if t.iter().all(|b| *b == 0) {
                            continue;
                        }
                        let x = add(&order, &t);
                        assert_eq!(x[0], 0, "n + t < p");
                        let compressed = [&[0x02], &x[1..]].concat();
                        let Ok(point) = VerifyingKey::from_sec1_bytes(&compressed) else {
                            continue; // no point has this x
                        };
                        let (r, s) = (scalar(&t), random_scalar(rng));
                        let key = key_reaching(ProjectivePoint::from(*point.as_affine()), e, r, s);
                        break crafted(key, r, s);
                    },
                    // r = x + (p − n) < n for a point with x < n.
                    CraftedKind::LargeXTrap => loop {
                        let point = ProjectivePoint::GENERATOR * random_scalar(rng);
                        let x = point.to_affine().x().to_vec();
                        let r = add(&x, &gap);
                        if r[0] != 0 || r[1..] >= order[..] || x[..] >= order[..] {
                            continue;
                        }
                        let (r, s) = (scalar(&r[1..]), random_scalar(rng));
                        break crafted(key_reaching(point, e, r, s), r, s);
                    },
                }
            }

            fn signing_key(rng: &mut Rng) -> SigningKey {
                loop {
                    if let Ok(key) = SigningKey::from_slice(&rng.bytes(FieldBytes::default().len()))
                    {
                        return key;
                    }
                }
            }

            /// A CA case: a new key's signature over `hash` of `message`
            /// (high-S if asked) as fixed-width r‖s, altered as
            /// [`crate::verify::tests::alter`] says `variant` is; the
            /// verdicts, or None when the altered r‖s is out of range.
            pub fn altered_ca_case(
                rng: &mut Rng,
                hash: EcdsaHash,
                message: &mut Vec<u8>,
                variant: u64,
                high_s: bool,
            ) -> Option<(bool, bool)> {
                let key = signing_key(rng);
                let signature: Signature = key.sign_prehash(&digest(hash, message)).unwrap();
                let low = signature.normalize_s();
                let (r, s) = low.split_scalars();
                let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
                let mut fixed = if high_s { high } else { low }.to_bytes().to_vec();
                let public = if crate::verify::tests::alter(variant, rng, message, &mut fixed) {
                    *signing_key(rng).verifying_key()
                } else {
                    *key.verifying_key()
                };
                Signature::from_slice(&fixed)
                    .ok()
                    .map(|signature| verdicts_of(&public, hash, message, &signature))
            }

            /// (ring's verdict, the curve crate's verdict) on `der`, or
            /// None when the DER does not parse.
            pub fn verdicts(
                key: &VerifyingKey,
                hash: EcdsaHash,
                message: &[u8],
                der: &[u8],
            ) -> Option<(bool, bool)> {
                let signature = Signature::from_der(der).ok()?;
                Some(verdicts_of(key, hash, message, &signature))
            }

            fn verdicts_of(
                key: &VerifyingKey,
                hash: EcdsaHash,
                message: &[u8],
                signature: &Signature,
            ) -> (bool, bool) {
                (
                    $verify(key, hash, message, signature).is_ok(),
                    key.verify_prehash(&digest(hash, message), signature)
                        .is_ok(),
                )
            }
        }
    };
}

crafted_for_curve!(
    p256_curve,
    p256,
    crate::verify::p256,
    order: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    prime: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"
);

crafted_for_curve!(
    p384_curve,
    p384,
    crate::verify::p384,
    order: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    prime: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff"
);
