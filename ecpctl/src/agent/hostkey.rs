//! Checking a server's host-key signature over the ssh session
//! identifier, as OpenSSH's `session-bind@openssh.com` carries it: proof
//! that the connection ssh forwarded was made to the holder of that key.

use ecp_agent::key::blob_type;
use ecp_agent::ssh_encoding::{Decode, Mpint};
use ring::signature::{self, UnparsedPublicKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    #[error("host key type {0} is not one this agent checks (ed25519, ECDSA P-256/P-384, RSA)")]
    Unsupported(String),
    #[error("a malformed host key or signature: {0}")]
    Malformed(String),
    #[error("the host key's signature over the session does not verify")]
    BadSignature,
}

fn malformed(e: impl std::fmt::Display) -> HostKeyError {
    HostKeyError::Malformed(e.to_string())
}

/// Verifies `signature_blob` (an ssh signature) over `session_id` with
/// `host_key_blob` (an ssh public key).
pub fn verify_session_signature(
    host_key_blob: &[u8],
    session_id: &[u8],
    signature_blob: &[u8],
) -> Result<(), HostKeyError> {
    let key_type = blob_type(host_key_blob).ok_or_else(|| malformed("no key type"))?;
    let key = &mut &host_key_blob[..];
    let _ = String::decode(key).map_err(malformed)?;
    let sig = &mut &signature_blob[..];
    let sig_type = String::decode(sig).map_err(malformed)?;
    let sig_bytes = Vec::decode(sig).map_err(malformed)?;
    if !sig.is_empty() || sig_bytes.len() > 2048 {
        return Err(malformed("bytes after the signature"));
    }
    let (algorithm, public): (&'static dyn signature::VerificationAlgorithm, Vec<u8>) =
        match (key_type.as_str(), sig_type.as_str()) {
            ("ssh-ed25519", "ssh-ed25519") => {
                let point = Vec::decode(key).map_err(malformed)?;
                (&signature::ED25519, point)
            }
            ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256")
            | ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384") => {
                let _curve = String::decode(key).map_err(malformed)?;
                let point = Vec::decode(key).map_err(malformed)?;
                let (algorithm, width): (&'static dyn signature::VerificationAlgorithm, usize) =
                    if key_type.ends_with("256") {
                        (&signature::ECDSA_P256_SHA256_FIXED, 32)
                    } else {
                        (&signature::ECDSA_P384_SHA384_FIXED, 48)
                    };
                let fixed = fixed_ecdsa(&sig_bytes, width)?;
                if !key.is_empty() {
                    return Err(malformed("bytes after the host key"));
                }
                return UnparsedPublicKey::new(algorithm, point)
                    .verify(session_id, &fixed)
                    .map_err(|_| HostKeyError::BadSignature);
            }
            ("ssh-rsa", "rsa-sha2-256") | ("ssh-rsa", "rsa-sha2-512") => {
                let e = Mpint::decode(key).map_err(malformed)?;
                let n = Mpint::decode(key).map_err(malformed)?;
                if !key.is_empty() {
                    return Err(malformed("bytes after the host key"));
                }
                let components = signature::RsaPublicKeyComponents {
                    n: n.as_positive_bytes()
                        .ok_or_else(|| malformed("RSA modulus"))?,
                    e: e.as_positive_bytes()
                        .ok_or_else(|| malformed("RSA exponent"))?,
                };
                let params = if sig_type == "rsa-sha2-256" {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA512
                };
                return components
                    .verify(params, session_id, &sig_bytes)
                    .map_err(|_| HostKeyError::BadSignature);
            }
            (key_type, sig_type) => {
                return Err(HostKeyError::Unsupported(if key_type == sig_type {
                    key_type.to_owned()
                } else {
                    format!("{key_type} (signature {sig_type})")
                }))
            }
        };
    if !key.is_empty() {
        return Err(malformed("bytes after the host key"));
    }
    UnparsedPublicKey::new(algorithm, public)
        .verify(session_id, &sig_bytes)
        .map_err(|_| HostKeyError::BadSignature)
}

/// r || s, each left-padded to `width`, from an ssh ECDSA signature body
/// (two mpints).
fn fixed_ecdsa(body: &[u8], width: usize) -> Result<Vec<u8>, HostKeyError> {
    let reader = &mut &body[..];
    let mut fixed = vec![0u8; 2 * width];
    for half in fixed.chunks_mut(width) {
        let mpint = Mpint::decode(reader).map_err(malformed)?;
        let bytes = mpint
            .as_positive_bytes()
            .ok_or_else(|| malformed("a negative ECDSA scalar"))?;
        if bytes.len() > width {
            return Err(malformed("an ECDSA scalar too long"));
        }
        half[width - bytes.len()..].copy_from_slice(bytes);
    }
    if !reader.is_empty() {
        return Err(malformed("bytes after the ECDSA signature"));
    }
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecp_agent::key::{p256_key_blob, p256_signature_blob};
    use p256::ecdsa::signature::Signer;

    #[test]
    fn p256_host_signatures_verify_and_nothing_else_does() {
        let host = ecp_core::keyfile::generate_signing_key();
        let session = [7u8; 32];
        let signature: p256::ecdsa::Signature = host.sign(&session);
        let key = p256_key_blob(host.verifying_key());
        let blob = p256_signature_blob(&signature);
        assert_eq!(verify_session_signature(&key, &session, &blob), Ok(()));
        assert_eq!(
            verify_session_signature(&key, &[8u8; 32], &blob),
            Err(HostKeyError::BadSignature)
        );
        let other = p256_key_blob(ecp_core::keyfile::generate_signing_key().verifying_key());
        assert_eq!(
            verify_session_signature(&other, &session, &blob),
            Err(HostKeyError::BadSignature)
        );
        let mut dsa = Vec::new();
        let _ = ecp_agent::ssh_encoding::Encode::encode("ssh-dss", &mut dsa);
        assert!(matches!(
            verify_session_signature(&dsa, &session, &blob),
            Err(HostKeyError::Unsupported(_))
        ));
    }
}
