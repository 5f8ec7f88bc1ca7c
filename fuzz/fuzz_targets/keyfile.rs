#![no_main]
//! Encrypted key file parsing and decryption. KDF limits are tiny here so
//! that the fuzzer spends its time in the parsers, not in scrypt.

use ecp_core::keyfile::{decrypt_key_pem_within, KdfLimits, Passphrase};
use libfuzzer_sys::fuzz_target;

const CHEAP: KdfLimits = KdfLimits {
    max_pbkdf2_iterations: 4096,
    max_scrypt_memory_bytes: 1 << 20,
    max_scrypt_work: 1 << 13,
};

fuzz_target!(|data: &[u8]| {
    let passphrase = Passphrase::new(b"fuzz".to_vec()).unwrap();
    let _ = decrypt_key_pem_within(data, &passphrase, CHEAP);
});
