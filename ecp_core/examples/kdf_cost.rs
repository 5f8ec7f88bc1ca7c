//! Prints how long one key-file decryption takes at ecp's default cost and
//! at OpenSSL's default (PBKDF2-HMAC-SHA256, 2,048 iterations), and the
//! ratio between them: the guessing cost an attacker pays per passphrase.
//!
//! Run: cargo run --release -p ecp_core --example kdf_cost

use std::time::{Duration, Instant};

use ecp_core::keyfile::{decrypt_key_pem, encrypt_key_to_pem, KdfParams, Passphrase};
use pkcs8::pkcs5::pbes2;

fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let pass = || Passphrase::new(b"benchmark passphrase".to_vec()).unwrap();
    let key = ecp_core::keyfile::generate_signing_key();

    let ours = encrypt_key_to_pem(&key, &pass(), KdfParams::DEFAULT).unwrap();
    let t_ours = median_time(11, || {
        decrypt_key_pem(ours.as_bytes(), &pass()).unwrap();
    });

    // The same key under OpenSSL's default PBES2 parameters.
    use p256::pkcs8::EncodePrivateKey;
    let der = p256::SecretKey::from(&key).to_pkcs8_der().unwrap();
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_bytes()).unwrap();
    let params =
        pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(2048, &[7u8; 16], [9u8; 16]).unwrap();
    let openssl_default = info
        .encrypt_with_params(params, pass().as_bytes())
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap();
    let t_openssl = median_time(101, || {
        decrypt_key_pem(openssl_default.as_bytes(), &pass()).unwrap();
    });

    let d = KdfParams::DEFAULT;
    println!(
        "ecp default  scrypt N=2^{} r={} p={} + AES-256-CBC: {:8.2} ms per decryption, {} MiB",
        d.log_n,
        d.r,
        d.p,
        t_ours.as_secs_f64() * 1e3,
        ((128u64 << d.log_n) * u64::from(d.r)) >> 20
    );
    println!(
        "OpenSSL default PBKDF2-SHA256 2048 + AES-256-CBC: {:8.2} ms per decryption",
        t_openssl.as_secs_f64() * 1e3
    );
    println!(
        "ratio (guessing cost per passphrase, CPU time): {:.0}x",
        t_ours.as_secs_f64() / t_openssl.as_secs_f64()
    );
}
