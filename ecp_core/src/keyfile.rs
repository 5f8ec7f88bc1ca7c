//! The user's private key file: an ECDSA P-256 key in encrypted PKCS#8
//! (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 + AES-256-CBC), the format OpenSSL,
//! Python's `cryptography` and most tools read and write.
//!
//! Writing always uses scrypt with [`KdfParams::DEFAULT`]. Reading accepts any
//! PBES2 key derivation (PBKDF2 or scrypt) with AES-CBC, but refuses files
//! whose KDF parameters would make the reader spend unbounded memory or time:
//! the PAM module reads these files as root, and a key file is chosen by its
//! (possibly hostile) owner.

use std::fmt;

use p256::ecdsa::SigningKey;
use p256::elliptic_curve::Generate;
use p256::pkcs8::EncodePrivateKey as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{asn1::ObjectIdentifier, Decode};

use crate::oids;
use pkcs8::pkcs5::{self, pbes2};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use zeroize::{Zeroize, Zeroizing};

/// The largest key file we read. A P-256 key in encrypted PKCS#8 PEM is
/// about 400 bytes; anything much larger is not a key file.
pub const MAX_KEY_FILE_LEN: usize = 16 * 1024;

/// PEM label of an encrypted PKCS#8 private key.
pub const ENCRYPTED_PEM_LABEL: &str = "ENCRYPTED PRIVATE KEY";

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap(oids::EC_PUBLIC_KEY);
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap(oids::P256);

/// A passphrase that is wiped from memory when dropped and never printed.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Takes ownership of the bytes; refuses an empty passphrase, since an
    /// empty one makes the encryption worthless.
    pub fn new(mut bytes: Vec<u8>) -> Result<Self, KeyFileError> {
        if bytes.is_empty() {
            bytes.zeroize();
            return Err(KeyFileError::EmptyPassphrase);
        }
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// Reads a passphrase the way `openssl -passin file:` does: the first
    /// line, without its line ending. The input buffer is wiped.
    pub fn from_first_line(mut input: Vec<u8>) -> Result<Self, KeyFileError> {
        let end = input
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(input.len());
        let mut line = input[..end].to_vec();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        input.zeroize();
        Self::new(line)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// scrypt cost used when writing a key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl KdfParams {
    /// N = 2^14, r = 8, p = 4: 16 MiB of memory per guess, which is the most
    /// OpenSSL 3 accepts by default (its scrypt memory cap is 32 MiB and
    /// N = 2^15 crosses it), made four times as slow through p. About 100 ms
    /// on one core here; see docs/FORMAT.md for the measured figures and
    /// the comparison with OpenSSL's default PBKDF2.
    pub const DEFAULT: Self = Self {
        log_n: 14,
        r: 8,
        p: 4,
    };

    /// A deliberately weak cost for tests and benchmarks only.
    pub const INSECURE_FAST_FOR_TESTS: Self = Self {
        log_n: 10,
        r: 8,
        p: 1,
    };
}

/// Why a key file could not be read, written or unlocked.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("an empty passphrase is not allowed: it would leave the key unprotected")]
    EmptyPassphrase,
    #[error("the key file is {len} bytes long; a key file is at most {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("the key file is not PEM text (truncated, garbage, or binary): {detail}")]
    NotPem { detail: String },
    #[error(
        "the key file is an unencrypted private key ({label}); ecp requires an encrypted key so \
         that a copied file is useless without its passphrase. Encrypt it with: \
         openssl pkcs8 -topk8 -v2 aes-256-cbc -scrypt -in KEY -out NEW_KEY"
    )]
    Unencrypted { label: String },
    #[error(
        "the key file uses OpenSSL's legacy encrypted format (BEGIN {label} with Proc-Type: \
         4,ENCRYPTED), which ecp does not read. Convert it once with: \
         openssl pkcs8 -topk8 -v2 aes-256-cbc -scrypt -in OLD_KEY -out NEW_KEY"
    )]
    LegacyEncrypted { label: String },
    #[error(
        "the key file holds `{label}`, not an encrypted PKCS#8 private key \
         (BEGIN ENCRYPTED PRIVATE KEY)"
    )]
    UnsupportedFormat { label: String },
    #[error("the key file is damaged: {detail}")]
    Malformed { detail: String },
    #[error("the key file uses an unsupported encryption: {detail}")]
    UnsupportedEncryption { detail: String },
    #[error(
        "the key file's key derivation cost ({detail}) is above what ecp will spend on a \
         login; re-encrypt it with `ecpctl passwd`"
    )]
    KdfTooExpensive { detail: String },
    #[error("wrong passphrase (or the key file is damaged)")]
    WrongPassphrase,
    #[error("the key file holds an {algorithm} key; ecp needs an ECDSA P-256 key")]
    NotEcKey { algorithm: String },
    #[error("the key file holds an EC key on curve {curve}; ecp needs P-256 (prime256v1)")]
    WrongCurve { curve: String },
    #[error("the key in the file is not a valid P-256 private key")]
    InvalidKey,
    #[error("could not encrypt the key: {detail}")]
    Encrypt { detail: String },
}

/// Creates a new P-256 key pair from the operating system's random source.
/// Key pairs are made on the user's side only: the daemon never sees one.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate()
}

/// Encrypts `key` into `BEGIN ENCRYPTED PRIVATE KEY` PEM text with scrypt
/// (`cost`) and AES-256-CBC, using a fresh random salt and IV.
pub fn encrypt_key_to_pem(
    key: &SigningKey,
    passphrase: &Passphrase,
    cost: KdfParams,
) -> Result<Zeroizing<String>, KeyFileError> {
    let encrypt_err = |detail: String| KeyFileError::Encrypt { detail };
    let plain = p256::SecretKey::from(key)
        .to_pkcs8_der()
        .map_err(|e| encrypt_err(e.to_string()))?;
    let info =
        PrivateKeyInfoRef::try_from(plain.as_bytes()).map_err(|e| encrypt_err(e.to_string()))?;

    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| encrypt_err(e.to_string()))?;
    getrandom::fill(&mut iv).map_err(|e| encrypt_err(e.to_string()))?;
    let scrypt = pkcs5::scrypt::Params::new(cost.log_n, cost.r, cost.p)
        .map_err(|e| encrypt_err(format!("scrypt parameters: {e}")))?;
    let params = pbes2::Parameters::generate_scrypt_aes256cbc(scrypt, &salt, iv)
        .map_err(|e| encrypt_err(e.to_string()))?;
    let encrypted = info
        .encrypt_with_params(params, passphrase.as_bytes())
        .map_err(|e| encrypt_err(e.to_string()))?;
    encrypted
        .to_pem(ENCRYPTED_PEM_LABEL, LineEnding::LF)
        .map_err(|e| encrypt_err(e.to_string()))
}

/// The most a key file may make us spend before we learn whether its
/// passphrase is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfLimits {
    pub max_pbkdf2_iterations: u32,
    /// Bytes of memory scrypt may need (128 · r · N).
    pub max_scrypt_memory_bytes: u64,
    /// N · r · p.
    pub max_scrypt_work: u64,
}

impl KdfLimits {
    /// What every reader in ecp applies: generous for real key files
    /// (32× ecp's own default work, 128 MiB), bounded for hostile ones.
    pub const DEFAULT: Self = Self {
        max_pbkdf2_iterations: 10_000_000,
        max_scrypt_memory_bytes: 128 * 1024 * 1024,
        max_scrypt_work: (1 << 14) * 8 * 32,
    };
}

/// Decrypts an encrypted PKCS#8 P-256 key file. Every way this can fail has
/// its own [`KeyFileError`] variant, so the user learns what to fix.
pub fn decrypt_key_pem(file: &[u8], passphrase: &Passphrase) -> Result<SigningKey, KeyFileError> {
    decrypt_key_pem_within(file, passphrase, KdfLimits::DEFAULT)
}

/// [`decrypt_key_pem`] with explicit KDF limits (tests and fuzzing use
/// small ones).
pub fn decrypt_key_pem_within(
    file: &[u8],
    passphrase: &Passphrase,
    limits: KdfLimits,
) -> Result<SigningKey, KeyFileError> {
    let encrypted_der = decode_encrypted_pem(file)?;
    let info = EncryptedPrivateKeyInfoRef::from_der(&encrypted_der).map_err(|e| {
        KeyFileError::Malformed {
            detail: format!("not a PKCS#8 EncryptedPrivateKeyInfo: {e}"),
        }
    })?;
    check_encryption_scheme(&info.encryption_algorithm, limits)?;

    let plain = info.decrypt(passphrase.as_bytes()).map_err(|e| match e {
        pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::UnsupportedAlgorithm { oid }) => {
            KeyFileError::UnsupportedEncryption {
                detail: format!("algorithm {oid}"),
            }
        }
        pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::AlgorithmParametersInvalid { oid }) => {
            KeyFileError::Malformed {
                detail: format!("invalid parameters for {oid}"),
            }
        }
        // A wrong passphrase shows up as bad CBC padding, or (1 time in
        // ~256) as plaintext that is not DER: both mean the same to the user.
        _ => KeyFileError::WrongPassphrase,
    })?;
    signing_key_from_pkcs8(plain.as_bytes())
}

/// Refuses the formats we recognise but do not read, naming each, and
/// returns the DER inside an `ENCRYPTED PRIVATE KEY` block.
fn decode_encrypted_pem(file: &[u8]) -> Result<Vec<u8>, KeyFileError> {
    if file.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge {
            len: file.len(),
            max: MAX_KEY_FILE_LEN,
        });
    }
    let text = std::str::from_utf8(file).map_err(|_| KeyFileError::NotPem {
        detail: "it is not text".into(),
    })?;
    let text = text.trim();
    let label = pem_label(text).ok_or_else(|| KeyFileError::NotPem {
        detail: "no `-----BEGIN …-----` line at its start".into(),
    })?;
    match label {
        ENCRYPTED_PEM_LABEL => {}
        "EC PRIVATE KEY" | "RSA PRIVATE KEY" | "DSA PRIVATE KEY"
            if text.contains("Proc-Type: 4,ENCRYPTED") =>
        {
            return Err(KeyFileError::LegacyEncrypted {
                label: label.into(),
            });
        }
        "PRIVATE KEY"
        | "EC PRIVATE KEY"
        | "RSA PRIVATE KEY"
        | "DSA PRIVATE KEY"
        | "OPENSSH PRIVATE KEY" => {
            return Err(KeyFileError::Unencrypted {
                label: label.into(),
            });
        }
        other => {
            return Err(KeyFileError::UnsupportedFormat {
                label: other.into(),
            });
        }
    }
    let (_, der) =
        pkcs8::der::pem::decode_vec(text.as_bytes()).map_err(|e| KeyFileError::NotPem {
            detail: e.to_string(),
        })?;
    Ok(der)
}

fn pem_label(text: &str) -> Option<&str> {
    let first = text.lines().next()?.trim_end();
    first.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

fn check_encryption_scheme(
    scheme: &pkcs5::EncryptionScheme,
    limits: KdfLimits,
) -> Result<(), KeyFileError> {
    let params = match scheme {
        pkcs5::EncryptionScheme::Pbes2(params) => params,
        pkcs5::EncryptionScheme::Pbes1(_) => {
            return Err(KeyFileError::UnsupportedEncryption {
                detail: "PBES1 (an obsolete DES/RC2-based scheme); re-encrypt with \
                         `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
                    .into(),
            });
        }
        _ => {
            return Err(KeyFileError::UnsupportedEncryption {
                detail: "an encryption scheme this version does not know".into(),
            });
        }
    };
    match &params.kdf {
        pbes2::Kdf::Pbkdf2(p) if p.iteration_count > limits.max_pbkdf2_iterations => {
            Err(KeyFileError::KdfTooExpensive {
                detail: format!("PBKDF2 with {} iterations", p.iteration_count),
            })
        }
        pbes2::Kdf::Pbkdf2(_) => Ok(()),
        pbes2::Kdf::Scrypt(s) => {
            let n = s.cost_parameter;
            let r = u64::from(s.block_size);
            let p = u64::from(s.parallelization);
            let memory = n.saturating_mul(r).saturating_mul(128);
            let work = n.saturating_mul(r).saturating_mul(p);
            if memory > limits.max_scrypt_memory_bytes || work > limits.max_scrypt_work {
                Err(KeyFileError::KdfTooExpensive {
                    detail: format!("scrypt N={n} r={r} p={p}"),
                })
            } else {
                Ok(())
            }
        }
        _ => Err(KeyFileError::UnsupportedEncryption {
            detail: "a key derivation function this version does not know".into(),
        }),
    }
}

/// Turns a decrypted PKCS#8 document into a P-256 signing key, naming the
/// algorithm or curve when it is something else.
fn signing_key_from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyFileError> {
    let info = PrivateKeyInfoRef::try_from(der).map_err(|_| KeyFileError::WrongPassphrase)?;
    let algorithm = info.algorithm.oid;
    if algorithm != OID_EC_PUBLIC_KEY {
        return Err(KeyFileError::NotEcKey {
            algorithm: oids::algorithm_name(&algorithm.to_string()),
        });
    }
    let curve = info
        .algorithm
        .parameters
        .and_then(|any| any.decode_as::<ObjectIdentifier>().ok());
    if curve != Some(OID_P256) {
        return Err(KeyFileError::WrongCurve {
            curve: curve.map_or_else(
                || "(not named)".into(),
                |oid| oids::curve_name(&oid.to_string()),
            ),
        });
    }
    use p256::pkcs8::DecodePrivateKey as _;
    let secret = p256::SecretKey::from_pkcs8_der(der).map_err(|_| KeyFileError::InvalidKey)?;
    Ok(SigningKey::from(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.as_bytes().to_vec()).unwrap()
    }

    fn fast_key_file(p: &str) -> (SigningKey, Zeroizing<String>) {
        let key = generate_signing_key();
        let pem = encrypt_key_to_pem(&key, &pass(p), KdfParams::INSECURE_FAST_FOR_TESTS).unwrap();
        (key, pem)
    }

    #[test]
    fn written_key_decrypts_to_the_same_key() {
        let (key, pem) = fast_key_file("correct horse");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        let back = decrypt_key_pem(pem.as_bytes(), &pass("correct horse")).unwrap();
        assert_eq!(key.to_bytes(), back.to_bytes());
    }

    #[test]
    fn default_cost_writes_scrypt_and_aes_256_cbc() {
        let key = generate_signing_key();
        let pem = encrypt_key_to_pem(&key, &pass("pw"), KdfParams::DEFAULT).unwrap();
        let der = decode_encrypted_pem(pem.as_bytes()).unwrap();
        let info = EncryptedPrivateKeyInfoRef::from_der(&der).unwrap();
        let pkcs5::EncryptionScheme::Pbes2(params) = info.encryption_algorithm else {
            panic!("not PBES2");
        };
        let pbes2::Kdf::Scrypt(s) = params.kdf else {
            panic!("not scrypt");
        };
        assert_eq!(
            (s.cost_parameter, s.block_size, s.parallelization),
            (1 << 14, 8, 4)
        );
        assert!(matches!(
            params.encryption,
            pbes2::EncryptionScheme::Aes256Cbc { .. }
        ));
    }

    #[test]
    fn wrong_passphrase_is_reported_as_such() {
        let (_, pem) = fast_key_file("right");
        assert!(matches!(
            decrypt_key_pem(pem.as_bytes(), &pass("wrong")),
            Err(KeyFileError::WrongPassphrase)
        ));
    }

    #[test]
    fn empty_passphrase_is_refused() {
        assert!(matches!(
            Passphrase::new(Vec::new()),
            Err(KeyFileError::EmptyPassphrase)
        ));
        assert!(matches!(
            Passphrase::from_first_line(b"\nsecond".to_vec()),
            Err(KeyFileError::EmptyPassphrase)
        ));
    }

    #[test]
    fn passphrase_file_uses_first_line_only() {
        let p = Passphrase::from_first_line(b"secret\r\nignored\n".to_vec()).unwrap();
        assert_eq!(p.as_bytes(), b"secret");
        assert_eq!(format!("{p:?}"), "Passphrase(<redacted>)");
    }

    #[test]
    fn truncated_file_is_not_pem() {
        let (_, pem) = fast_key_file("pw");
        let cut = &pem.as_bytes()[..pem.len() / 2];
        assert!(matches!(
            decrypt_key_pem(cut, &pass("pw")),
            Err(KeyFileError::NotPem { .. })
        ));
    }

    #[test]
    fn garbage_and_binary_are_not_pem() {
        for input in [&b"hello world"[..], &[0xff, 0x00, 0x13][..], b""] {
            assert!(
                matches!(
                    decrypt_key_pem(input, &pass("pw")),
                    Err(KeyFileError::NotPem { .. })
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn oversized_file_is_refused_before_parsing() {
        let big = vec![b'A'; MAX_KEY_FILE_LEN + 1];
        assert!(matches!(
            decrypt_key_pem(&big, &pass("pw")),
            Err(KeyFileError::TooLarge { .. })
        ));
    }

    #[test]
    fn unencrypted_and_legacy_files_name_the_fix() {
        let plain = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = decrypt_key_pem(plain.as_bytes(), &pass("pw")).unwrap_err();
        assert!(matches!(err, KeyFileError::Unencrypted { .. }));
        assert!(err.to_string().contains("openssl pkcs8 -topk8"));

        let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n\
                      -----END EC PRIVATE KEY-----\n";
        let err = decrypt_key_pem(legacy.as_bytes(), &pass("pw")).unwrap_err();
        assert!(matches!(err, KeyFileError::LegacyEncrypted { .. }));
        assert!(err.to_string().contains("openssl pkcs8 -topk8"));

        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            decrypt_key_pem(sec1.as_bytes(), &pass("pw")),
            Err(KeyFileError::Unencrypted { .. })
        ));
    }

    #[test]
    fn certificate_given_as_key_is_unsupported_format() {
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            decrypt_key_pem(cert.as_bytes(), &pass("pw")),
            Err(KeyFileError::UnsupportedFormat { .. })
        ));
    }

    #[test]
    fn excessive_kdf_cost_is_refused_before_deriving() {
        let key = generate_signing_key();
        // N = 2^20, r = 8 needs 1 GiB: a hostile key file must not make the
        // module (running as root inside sudo) allocate that.
        let pem = encrypt_key_to_pem(
            &key,
            &pass("pw"),
            KdfParams {
                log_n: 10,
                r: 8,
                p: 1,
            },
        )
        .unwrap();
        let der = decode_encrypted_pem(pem.as_bytes()).unwrap();
        let info = EncryptedPrivateKeyInfoRef::from_der(&der).unwrap();
        let pkcs5::EncryptionScheme::Pbes2(mut params) = info.encryption_algorithm else {
            panic!()
        };
        let pbes2::Kdf::Scrypt(mut s) = params.kdf else {
            panic!()
        };
        s.cost_parameter = 1 << 20;
        params.kdf = pbes2::Kdf::Scrypt(s);
        assert!(matches!(
            check_encryption_scheme(&pkcs5::EncryptionScheme::Pbes2(params), KdfLimits::DEFAULT),
            Err(KeyFileError::KdfTooExpensive { .. })
        ));
    }
}
