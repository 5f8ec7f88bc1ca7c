//! The one-time challenge and its signature.
//!
//! A challenge travels as one printable token: unpadded base64url of the
//! payload below. What the user's key signs is a fixed domain-separation
//! prefix followed by that same payload, so a signature is bound to this
//! protocol, this version, one nonce, one user, one host, one service, the
//! remote host the login came from and one expiry — never a bare random
//! string that some other protocol might also ask the key to sign.
//!
//! ```text
//! payload   = version(1) nonce_id(16) tag(32) expires_at(8, big-endian
//!             Unix seconds) requester_uid(4, big-endian) user host service
//!             rhost
//!             where each name = length(1) || ASCII bytes (rhost may be
//!             empty: a local login)
//! token     = base64url(payload), no padding
//! signed    = "ecp-login-challenge-v2" || 0x00 || payload
//! signature = base64(DER(ECDSA-P256-SHA256(signed)))
//! ```
//!
//! The `tag` is ecpd's MAC over every other field ([`Challenge::mac_input`])
//! under a key that exists only in the running daemon's memory. A token is
//! therefore its own record: the daemon stores nothing when it issues one,
//! can tell its own tokens from forgeries without a lookup, and forgets
//! every earlier token when it restarts. To a signer the tag is just the
//! challenge's unpredictable part.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

use crate::hex;
use crate::names::{HostName, NameError, RemoteHost, ServiceName, UserName};
use crate::when::format_utc;

/// Format version carried in the first payload byte. Version 1 (a random
/// nonce the daemon stored, no rhost) is no longer read.
pub const TOKEN_VERSION: u8 = 2;

/// What every signed message starts with. The NUL ends the prefix so that
/// no payload can extend it.
pub const SIGNING_DOMAIN: &[u8] = b"ecp-login-challenge-v2\0";

/// Bytes of the nonce identifier (the daemon's lookup key).
pub const NONCE_ID_LEN: usize = 16;
/// Bytes of the tag: the daemon's MAC, unpredictable to anyone else.
pub const TAG_LEN: usize = 32;

const FIXED_LEN: usize = 1 + NONCE_ID_LEN + TAG_LEN + 8 + 4;
const MAX_PAYLOAD_LEN: usize = FIXED_LEN
    + 4
    + UserName::MAX_LEN
    + HostName::MAX_LEN
    + ServiceName::MAX_LEN
    + RemoteHost::MAX_LEN;

/// The longest token text accepted, checked before any decoding.
pub const MAX_TOKEN_LEN: usize = MAX_PAYLOAD_LEN.div_ceil(3) * 4;
/// The longest signature text accepted (a P-256 DER signature is ≤ 72 bytes).
pub const MAX_SIGNATURE_LEN: usize = 128;

/// What pam_ecp writes before the token in its prompt, so that an askpass
/// program finds the token wherever sshd folds the lines.
pub const PROMPT_MARKER: &str = "ecp challenge ";

/// The prompt pam_ecp shows: the marked token, then `question`.
pub fn prompt_with_token(token: &str, question: &str) -> String {
    format!("{PROMPT_MARKER}{token}\n{question}")
}

/// The token in a prompt made by [`prompt_with_token`], if there is one.
pub fn token_in_prompt(prompt: &str) -> Option<&str> {
    let at = prompt.find(PROMPT_MARKER)?;
    prompt[at + PROMPT_MARKER.len()..].split_whitespace().next()
}

/// What separates the signature from a presented certificate in an answer.
pub const ANSWER_SEPARATOR: char = ':';

/// A user's answer to a challenge, as one line that pastes: the signature
/// (base64 DER), then, when the key's certificate is issued by an
/// organisation CA rather than enrolled on the host, `:` and that
/// certificate (base64 DER). A bare signature is an answer too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAnswer {
    pub signature: String,
    pub certificate_der: Option<Vec<u8>>,
}

impl SignedAnswer {
    /// Reads an answer line; surrounding blanks are ignored. The signature
    /// itself is checked later, against the challenge.
    pub fn parse(line: &str) -> Result<SignedAnswer, ChallengeError> {
        let line = line.trim();
        let Some((signature, certificate)) = line.split_once(ANSWER_SEPARATOR) else {
            return Ok(SignedAnswer {
                signature: line.to_owned(),
                certificate_der: None,
            });
        };
        let max = crate::certificate::MAX_CERTIFICATE_LEN;
        if certificate.len() > max * 4 / 3 + 4 {
            return Err(ChallengeError::AnswerCertificateTooLong {
                len: certificate.len() * 3 / 4,
                max,
            });
        }
        let der = STANDARD
            .decode(certificate.trim())
            .map_err(|_| ChallengeError::AnswerCertificateNotBase64)?;
        Ok(SignedAnswer {
            signature: signature.trim().to_owned(),
            certificate_der: Some(der),
        })
    }

    /// The answer as one line.
    pub fn to_line(&self) -> String {
        match &self.certificate_der {
            Some(der) => format!(
                "{}{ANSWER_SEPARATOR}{}",
                self.signature,
                STANDARD.encode(der)
            ),
            None => self.signature.clone(),
        }
    }
}

/// The nonce's public identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NonceId(pub [u8; NONCE_ID_LEN]);

impl NonceId {
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl std::fmt::Debug for NonceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NonceId({})", self.to_hex())
    }
}

/// A login challenge: everything the signature is bound to.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    pub nonce_id: NonceId,
    /// The daemon's MAC over every other field (see the module docs).
    pub tag: [u8; TAG_LEN],
    pub expires_at: u64,
    /// Who asked the daemon for it: 0 for the PAM module (running as
    /// root), otherwise the user's own uid (a screen locker, `ecpctl`).
    pub requester_uid: u32,
    pub user: UserName,
    pub host: HostName,
    pub service: ServiceName,
    /// Where the login came from; empty for a local login.
    pub rhost: RemoteHost,
}

impl std::fmt::Debug for Challenge {
    // The tag is left out: logs may show the id, never the secret part.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge")
            .field("nonce_id", &self.nonce_id)
            .field("expires_at", &self.expires_at)
            .field("requester_uid", &self.requester_uid)
            .field("user", &self.user)
            .field("host", &self.host)
            .field("service", &self.service)
            .field("rhost", &self.rhost)
            .finish_non_exhaustive()
    }
}

/// Why a token or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the challenge token is empty")]
    EmptyToken,
    #[error("the challenge token is {len} characters long; at most {max} are allowed")]
    TokenTooLong { len: usize, max: usize },
    #[error("the challenge token is not base64url text")]
    TokenNotBase64,
    #[error("the challenge token has format version {0}; this ecp reads version 2")]
    UnsupportedVersion(u8),
    #[error("the challenge token is truncated")]
    TokenTruncated,
    #[error("the challenge token has {0} unexpected bytes at its end")]
    TokenTrailingBytes(usize),
    #[error("the challenge token carries an invalid {0}")]
    TokenBadName(NameError),
    #[error("the challenge expired at {}", format_utc(i64::try_from(*expires_at).unwrap_or(i64::MAX)))]
    Expired { expires_at: u64 },
    #[error("the signature is empty")]
    EmptySignature,
    #[error("the signature is {len} characters long; at most {max} are allowed")]
    SignatureTooLong { len: usize, max: usize },
    #[error("the signature is not base64 text")]
    SignatureNotBase64,
    #[error("the signature is not a DER-encoded ECDSA signature")]
    SignatureNotDer,
    #[error("the signature does not match the challenge and key")]
    SignatureMismatch,
    #[error("could not read random bytes from the operating system: {0}")]
    Random(String),
    #[error("the certificate after the signature is not base64 text")]
    AnswerCertificateNotBase64,
    #[error("the certificate after the signature is {len} bytes; at most {max} are allowed")]
    AnswerCertificateTooLong { len: usize, max: usize },
    #[error("this is a renewal challenge (from `ecpctl renew`), not a login challenge")]
    RenewalToken,
    #[error("this is a login challenge, not a renewal challenge")]
    LoginToken,
    #[error("the data to sign is neither an ecp login challenge nor a renewal proof")]
    NotEcpData,
}

impl Challenge {
    /// A challenge with a fresh random id and an all-zero tag, expiring
    /// `lifetime_secs` after `now`. The daemon then sets the tag to its MAC
    /// over [`Challenge::mac_input`].
    pub fn unsealed(
        user: UserName,
        host: HostName,
        service: ServiceName,
        rhost: RemoteHost,
        requester_uid: u32,
        now: u64,
        lifetime_secs: u64,
    ) -> Result<Self, ChallengeError> {
        let mut nonce_id = [0u8; NONCE_ID_LEN];
        getrandom::fill(&mut nonce_id).map_err(|e| ChallengeError::Random(e.to_string()))?;
        Ok(Self {
            nonce_id: NonceId(nonce_id),
            tag: [0; TAG_LEN],
            expires_at: now.saturating_add(lifetime_secs),
            requester_uid,
            user,
            host,
            service,
            rhost,
        })
    }

    /// A local-login challenge with a random tag: one no daemon issued.
    /// For tests and examples.
    pub fn new_random(
        user: UserName,
        host: HostName,
        service: ServiceName,
        now: u64,
        lifetime_secs: u64,
    ) -> Result<Self, ChallengeError> {
        let mut challenge = Self::unsealed(
            user,
            host,
            service,
            RemoteHost::local(),
            0,
            now,
            lifetime_secs,
        )?;
        getrandom::fill(&mut challenge.tag).map_err(|e| ChallengeError::Random(e.to_string()))?;
        Ok(challenge)
    }

    /// The canonical payload bytes (see the module documentation).
    pub fn payload(&self) -> Vec<u8> {
        self.encode(true)
    }

    /// What the daemon's tag authenticates: the payload without the tag.
    pub fn mac_input(&self) -> Vec<u8> {
        self.encode(false)
    }

    fn encode(&self, with_tag: bool) -> Vec<u8> {
        self.encode_as(TOKEN_VERSION, with_tag)
    }

    /// The payload layout under `version` (a login or a renewal token).
    fn encode_as(&self, version: u8, with_tag: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + 4 + 96 + SUCCESSOR_LEN);
        out.push(version);
        out.extend_from_slice(&self.nonce_id.0);
        if with_tag {
            out.extend_from_slice(&self.tag);
        }
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.requester_uid.to_be_bytes());
        for name in [
            self.user.as_str(),
            self.host.as_str(),
            self.service.as_str(),
            self.rhost.as_str(),
        ] {
            // Every name type caps its length well below 256.
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
        out
    }

    /// The printable token: unpadded base64url of the payload.
    pub fn to_token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.payload())
    }

    /// The exact bytes a signer signs: domain prefix, then payload.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&self.payload());
        out
    }

    /// Decodes a token strictly: one canonical encoding per challenge, every
    /// name re-validated, nothing left over.
    pub fn from_token(token: &str) -> Result<Self, ChallengeError> {
        Self::from_payload(&token_payload(token, MAX_TOKEN_LEN)?)
    }

    fn from_payload(payload: &[u8]) -> Result<Self, ChallengeError> {
        let mut reader = Reader(payload);
        let challenge = Self::read_fields(&mut reader, TOKEN_VERSION)?;
        if !reader.0.is_empty() {
            return Err(ChallengeError::TokenTrailingBytes(reader.0.len()));
        }
        Ok(challenge)
    }

    /// Everything of a payload written by [`Challenge::encode_as`] with
    /// `version`; what follows is the caller's.
    fn read_fields(reader: &mut Reader<'_>, version: u8) -> Result<Self, ChallengeError> {
        match reader.take(1)?[0] {
            v if v == version => {}
            RENEWAL_TOKEN_VERSION => return Err(ChallengeError::RenewalToken),
            TOKEN_VERSION => return Err(ChallengeError::LoginToken),
            other => return Err(ChallengeError::UnsupportedVersion(other)),
        }
        let nonce_id = NonceId(reader.take_array()?);
        let tag = reader.take_array()?;
        let expires_at = u64::from_be_bytes(reader.take_array()?);
        let requester_uid = u32::from_be_bytes(reader.take_array()?);
        let user = UserName::parse(reader.take_name()?).map_err(ChallengeError::TokenBadName)?;
        let host = HostName::parse(reader.take_name()?).map_err(ChallengeError::TokenBadName)?;
        let service =
            ServiceName::parse(reader.take_name()?).map_err(ChallengeError::TokenBadName)?;
        let rhost = RemoteHost::parse(reader.take_name()?).map_err(ChallengeError::TokenBadName)?;
        Ok(Self {
            nonce_id,
            tag,
            expires_at,
            requester_uid,
            user,
            host,
            service,
            rhost,
        })
    }

    /// Refuses a challenge whose expiry is at or before `now`.
    pub fn check_not_expired(&self, now: u64) -> Result<(), ChallengeError> {
        if now >= self.expires_at {
            return Err(ChallengeError::Expired {
                expires_at: self.expires_at,
            });
        }
        Ok(())
    }

    /// Signs the challenge; returns base64 of the DER signature.
    pub fn sign(&self, key: &SigningKey) -> String {
        sign_bytes(key, &self.signed_bytes())
    }

    /// Checks `signature_text` (base64 DER) against this challenge and
    /// `key`. High-S signatures, which OpenSSL produces about half the time,
    /// are accepted.
    pub fn verify(&self, key: &VerifyingKey, signature_text: &str) -> Result<(), ChallengeError> {
        verify_bytes(key, &self.signed_bytes(), signature_text)
    }
}

/// A token's payload bytes, its length checked before any decoding.
fn token_payload(token: &str, max: usize) -> Result<Vec<u8>, ChallengeError> {
    if token.is_empty() {
        return Err(ChallengeError::EmptyToken);
    }
    if token.len() > max {
        return Err(ChallengeError::TokenTooLong {
            len: token.len(),
            max,
        });
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ChallengeError::TokenNotBase64)
}

/// base64 of the DER signature over `signed`.
fn sign_bytes(key: &SigningKey, signed: &[u8]) -> String {
    signature_text(&key.sign(signed))
}

/// A signature as it travels: standard base64 of its DER, one line. For
/// signers other than a key in memory (a hardware token).
pub fn signature_text(signature: &Signature) -> String {
    STANDARD.encode(signature.to_der().as_bytes())
}

/// Checks `signature_text` (base64 DER) over `signed` with `key`.
fn verify_bytes(
    key: &VerifyingKey,
    signed: &[u8],
    signature_text: &str,
) -> Result<(), ChallengeError> {
    let signature = parse_signature(signature_text)?;
    crate::verify::p256_sha256(key, signed, &signature)
        .map_err(|_| ChallengeError::SignatureMismatch)
}

/// Format version of a renewal token: a login-shaped payload under its own
/// version, followed by the successor certificate's SHA-256.
pub const RENEWAL_TOKEN_VERSION: u8 = b'R';

/// What a renewal proof signs first: never the login prefix, so that no
/// login signature proves a renewal and no renewal proof logs anyone in.
pub const RENEWAL_SIGNING_DOMAIN: &[u8] = b"ecp-renewal-proof-v1\0";

/// Bytes of the successor's fingerprint in a renewal token.
pub const SUCCESSOR_LEN: usize = 32;

/// The longest renewal token text accepted.
pub const MAX_RENEWAL_TOKEN_LEN: usize = (MAX_PAYLOAD_LEN + SUCCESSOR_LEN).div_ceil(3) * 4;

/// A renewal challenge: proof that the holder of a current key wants
/// `successor` (the SHA-256 of a certificate's DER) enrolled beside it.
///
/// ```text
/// payload = 'R' nonce_id tag expires_at requester_uid user host service
///           rhost successor(32)        (fields as in a login payload)
/// signed  = "ecp-renewal-proof-v1" || 0x00 || payload
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RenewalChallenge {
    pub challenge: Challenge,
    pub successor: [u8; SUCCESSOR_LEN],
}

impl RenewalChallenge {
    pub fn payload(&self) -> Vec<u8> {
        self.encode(true)
    }

    /// What the daemon's tag authenticates: the payload without the tag.
    pub fn mac_input(&self) -> Vec<u8> {
        self.encode(false)
    }

    fn encode(&self, with_tag: bool) -> Vec<u8> {
        let mut out = self.challenge.encode_as(RENEWAL_TOKEN_VERSION, with_tag);
        out.extend_from_slice(&self.successor);
        out
    }

    pub fn to_token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.payload())
    }

    pub fn from_token(token: &str) -> Result<Self, ChallengeError> {
        Self::from_payload(&token_payload(token, MAX_RENEWAL_TOKEN_LEN)?)
    }

    fn from_payload(payload: &[u8]) -> Result<Self, ChallengeError> {
        let mut reader = Reader(payload);
        let challenge = Challenge::read_fields(&mut reader, RENEWAL_TOKEN_VERSION)?;
        let successor = reader.take_array()?;
        if !reader.0.is_empty() {
            return Err(ChallengeError::TokenTrailingBytes(reader.0.len()));
        }
        Ok(Self {
            challenge,
            successor,
        })
    }

    /// The exact bytes a renewal proof signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = RENEWAL_SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&self.payload());
        out
    }

    pub fn sign(&self, key: &SigningKey) -> String {
        sign_bytes(key, &self.signed_bytes())
    }

    pub fn verify(&self, key: &VerifyingKey, signature_text: &str) -> Result<(), ChallengeError> {
        verify_bytes(key, &self.signed_bytes(), signature_text)
    }

    /// The successor's fingerprint as ecp prints fingerprints (hex).
    pub fn successor_hex(&self) -> String {
        hex::encode(&self.successor)
    }
}

/// What a signer is asked to sign, recognised from the signed bytes
/// themselves: a login challenge or a renewal proof, nothing else. An ecp
/// agent signs only what decodes as one of these.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SignedRequest {
    Login(Challenge),
    Renewal(RenewalChallenge),
}

impl SignedRequest {
    /// Decodes `bytes` as produced by [`Challenge::signed_bytes`] or
    /// [`RenewalChallenge::signed_bytes`]: domain prefix, then a payload
    /// that decodes strictly, nothing left over.
    pub fn from_signed_bytes(bytes: &[u8]) -> Result<SignedRequest, ChallengeError> {
        // Both prefixes are longer than the login one.
        let max = RENEWAL_SIGNING_DOMAIN.len().max(SIGNING_DOMAIN.len())
            + MAX_PAYLOAD_LEN
            + SUCCESSOR_LEN;
        if bytes.len() > max {
            return Err(ChallengeError::TokenTooLong {
                len: bytes.len(),
                max,
            });
        }
        if let Some(payload) = bytes.strip_prefix(SIGNING_DOMAIN) {
            return Challenge::from_payload(payload).map(SignedRequest::Login);
        }
        if let Some(payload) = bytes.strip_prefix(RENEWAL_SIGNING_DOMAIN) {
            return RenewalChallenge::from_payload(payload).map(SignedRequest::Renewal);
        }
        Err(ChallengeError::NotEcpData)
    }

    /// The login fields (user, host, service, origin, expiry) of either kind.
    pub fn challenge(&self) -> &Challenge {
        match self {
            SignedRequest::Login(challenge) => challenge,
            SignedRequest::Renewal(renewal) => &renewal.challenge,
        }
    }
}

/// Parses base64 (standard alphabet, padded) DER signature text.
pub fn parse_signature(text: &str) -> Result<Signature, ChallengeError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ChallengeError::EmptySignature);
    }
    if text.len() > MAX_SIGNATURE_LEN {
        return Err(ChallengeError::SignatureTooLong {
            len: text.len(),
            max: MAX_SIGNATURE_LEN,
        });
    }
    let der = STANDARD
        .decode(text)
        .map_err(|_| ChallengeError::SignatureNotBase64)?;
    Signature::from_der(&der).map_err(|_| ChallengeError::SignatureNotDer)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ChallengeError> {
        if self.0.len() < n {
            return Err(ChallengeError::TokenTruncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], ChallengeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn take_name(&mut self) -> Result<&'a str, ChallengeError> {
        let len = usize::from(self.take(1)?[0]);
        let bytes = self.take(len)?;
        // Non-ASCII cannot pass the name rules anyway; reject it here as
        // a name error so the message says which field was bad.
        std::str::from_utf8(bytes).map_err(|_| {
            ChallengeError::TokenBadName(NameError::BadForm {
                kind: "name",
                shown: format!("{:?}", String::from_utf8_lossy(bytes)),
                why: "it is not UTF-8",
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::generate_signing_key;

    fn sample(user: &str, host: &str, service: &str) -> Challenge {
        Challenge::new_random(
            UserName::parse(user).unwrap(),
            HostName::parse(host).unwrap(),
            ServiceName::parse(service).unwrap(),
            1_000_000,
            300,
        )
        .unwrap()
    }

    #[test]
    fn token_round_trips_and_is_one_printable_line() {
        let c = sample("alice", "server.example.org", "sshd");
        let token = c.to_token();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(token.len() < 170, "{} chars", token.len());
        assert_eq!(Challenge::from_token(&token).unwrap(), c);
        assert_eq!(c.expires_at, 1_000_300);
    }

    #[test]
    fn signed_bytes_are_recognised_as_a_login_or_a_renewal_and_nothing_else() {
        let login = sample("alice", "h", "sudo");
        assert_eq!(
            SignedRequest::from_signed_bytes(&login.signed_bytes()),
            Ok(SignedRequest::Login(login.clone()))
        );
        let renewal = RenewalChallenge {
            challenge: sample("alice", "h", "ecp-renew"),
            successor: [7; SUCCESSOR_LEN],
        };
        let decoded = SignedRequest::from_signed_bytes(&renewal.signed_bytes()).unwrap();
        assert_eq!(decoded, SignedRequest::Renewal(renewal.clone()));
        assert_eq!(decoded.challenge().service.as_str(), "ecp-renew");

        // The other kind's payload under a prefix, a bare payload, a
        // trailing byte, an ssh signature namespace: all refused.
        let mut swapped = RENEWAL_SIGNING_DOMAIN.to_vec();
        swapped.extend_from_slice(&login.payload());
        let mut trailing = login.signed_bytes();
        trailing.push(0);
        for (bytes, expected) in [
            (swapped, ChallengeError::LoginToken),
            (login.payload(), ChallengeError::NotEcpData),
            (trailing, ChallengeError::TokenTrailingBytes(1)),
            (b"SSHSIG\0\0\0\x04file".to_vec(), ChallengeError::NotEcpData),
            (
                vec![0; 4096],
                ChallengeError::TokenTooLong { len: 4096, max: 0 },
            ),
        ] {
            match (SignedRequest::from_signed_bytes(&bytes), expected) {
                (
                    Err(ChallengeError::TokenTooLong { len, .. }),
                    ChallengeError::TokenTooLong { .. },
                ) => {
                    assert_eq!(len, 4096)
                }
                (got, expected) => assert_eq!(got, Err(expected)),
            }
        }
    }

    #[test]
    fn nonces_are_fresh_each_time() {
        let a = sample("alice", "h", "sshd");
        let b = sample("alice", "h", "sshd");
        assert_ne!(a.tag, b.tag);
        assert_ne!(a.nonce_id, b.nonce_id);
    }

    #[test]
    fn signed_bytes_are_prefixed_and_never_the_bare_nonce() {
        let c = sample("alice", "h", "sshd");
        let signed = c.signed_bytes();
        assert!(signed.starts_with(SIGNING_DOMAIN));
        assert_eq!(&signed[SIGNING_DOMAIN.len()..], c.payload().as_slice());
        assert_ne!(signed, c.tag.to_vec());
    }

    #[test]
    fn mac_input_is_the_payload_without_the_tag() {
        let c = sample("alice", "h", "sshd");
        let payload = c.payload();
        let input = c.mac_input();
        let tag_at = 1 + NONCE_ID_LEN;
        assert_eq!(&payload[..tag_at], &input[..tag_at]);
        assert_eq!(&payload[tag_at..tag_at + TAG_LEN], &c.tag);
        assert_eq!(&payload[tag_at + TAG_LEN..], &input[tag_at..]);
    }

    #[test]
    fn signature_verifies_only_for_the_same_binding() {
        let key = generate_signing_key();
        let c = sample("alice", "host-a", "sshd");
        let sig = c.sign(&key);
        assert!(c.verify(key.verifying_key(), &sig).is_ok());

        let mut other_host = c.clone();
        other_host.host = HostName::parse("host-b").unwrap();
        let mut other_user = c.clone();
        other_user.user = UserName::parse("bob").unwrap();
        let mut other_service = c.clone();
        other_service.service = ServiceName::parse("sudo").unwrap();
        let mut other_nonce = c.clone();
        other_nonce.tag[0] ^= 1;
        let mut other_rhost = c.clone();
        other_rhost.rhost = RemoteHost::parse("198.51.100.7").unwrap();
        let mut other_requester = c.clone();
        other_requester.requester_uid = 1000;
        let mut other_expiry = c.clone();
        other_expiry.expires_at += 1;
        for changed in [
            other_host,
            other_user,
            other_service,
            other_nonce,
            other_expiry,
            other_rhost,
            other_requester,
        ] {
            assert_eq!(
                changed.verify(key.verifying_key(), &sig),
                Err(ChallengeError::SignatureMismatch),
                "{changed:?}"
            );
        }
        let stranger = generate_signing_key();
        assert_eq!(
            c.verify(stranger.verifying_key(), &sig),
            Err(ChallengeError::SignatureMismatch)
        );
    }

    #[test]
    fn high_s_signature_is_accepted() {
        let key = generate_signing_key();
        let c = sample("alice", "h", "sshd");
        let low: Signature = key.sign(&c.signed_bytes());
        let low = low.normalize_s();
        // s' = n − s is the other valid signature for the same message.
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r, -*s).unwrap();
        assert_ne!(high, low);
        let text = STANDARD.encode(high.to_der().as_bytes());
        assert!(c.verify(key.verifying_key(), &text).is_ok());
    }

    #[test]
    fn signature_text_must_be_base64_der() {
        let c = sample("alice", "h", "sshd");
        let key = generate_signing_key();
        let vk = key.verifying_key();
        assert_eq!(c.verify(vk, ""), Err(ChallengeError::EmptySignature));
        assert_eq!(
            c.verify(vk, "not base64!"),
            Err(ChallengeError::SignatureNotBase64)
        );
        let raw = key.sign(&c.signed_bytes());
        let raw: Signature = raw;
        let fixed = STANDARD.encode(raw.to_bytes()); // 64-byte r||s, not DER
        assert_eq!(c.verify(vk, &fixed), Err(ChallengeError::SignatureNotDer));
        let long = "A".repeat(MAX_SIGNATURE_LEN + 1);
        assert!(matches!(
            c.verify(vk, &long),
            Err(ChallengeError::SignatureTooLong { .. })
        ));
        // Surrounding whitespace (a pasted line) is fine.
        let good = format!("  {}\n", c.sign(&key));
        assert!(c.verify(vk, &good).is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_reason() {
        let c = sample("alice", "h", "sshd");
        let payload = c.payload();
        assert_eq!(Challenge::from_token(""), Err(ChallengeError::EmptyToken));
        assert_eq!(
            Challenge::from_token("***"),
            Err(ChallengeError::TokenNotBase64)
        );
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(
            Challenge::from_token(&long),
            Err(ChallengeError::TokenTooLong { .. })
        ));

        let truncated = URL_SAFE_NO_PAD.encode(&payload[..payload.len() - 1]);
        assert_eq!(
            Challenge::from_token(&truncated),
            Err(ChallengeError::TokenTruncated)
        );

        let mut trailing = payload.clone();
        trailing.push(0);
        assert_eq!(
            Challenge::from_token(&URL_SAFE_NO_PAD.encode(&trailing)),
            Err(ChallengeError::TokenTrailingBytes(1))
        );

        let mut version = payload.clone();
        version[0] = 1;
        assert_eq!(
            Challenge::from_token(&URL_SAFE_NO_PAD.encode(&version)),
            Err(ChallengeError::UnsupportedVersion(1))
        );

        // A user name with a slash smuggled into the payload.
        let mut evil = payload[..FIXED_LEN].to_vec();
        for name in ["../x", "h", "sshd", ""] {
            evil.push(name.len() as u8);
            evil.extend_from_slice(name.as_bytes());
        }
        assert!(matches!(
            Challenge::from_token(&URL_SAFE_NO_PAD.encode(&evil)),
            Err(ChallengeError::TokenBadName(_))
        ));

        // Padded or standard-alphabet forms are not the canonical token.
        let padded = format!("{}=", c.to_token());
        assert!(Challenge::from_token(&padded).is_err());
    }

    #[test]
    fn expiry_is_checked() {
        let c = sample("alice", "h", "sshd");
        assert!(c.check_not_expired(c.expires_at - 1).is_ok());
        assert!(matches!(
            c.check_not_expired(c.expires_at),
            Err(ChallengeError::Expired { .. })
        ));
    }

    #[test]
    fn debug_output_leaves_out_the_tag() {
        let c = sample("alice", "h", "sshd");
        let shown = format!("{c:?}");
        assert!(!shown.contains(&hex::encode(&c.tag)), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[test]
    fn an_answer_carries_its_certificate_in_one_line_and_a_bare_signature_still_reads() {
        let with = SignedAnswer {
            signature: "MEUCIQabc=".into(),
            certificate_der: Some(vec![0x30, 0x82, 0x01, 0x00, 0xff]),
        };
        let line = with.to_line();
        assert!(!line.contains('\n'));
        assert_eq!(SignedAnswer::parse(&format!("  {line}\n")).unwrap(), with);
        let bare = SignedAnswer::parse("MEUCIQabc=").unwrap();
        assert_eq!(bare.certificate_der, None);
        assert_eq!(bare.to_line(), "MEUCIQabc=");
        assert_eq!(
            SignedAnswer::parse("MEUCIQabc=:not base64!"),
            Err(ChallengeError::AnswerCertificateNotBase64)
        );
        let huge = format!("sig:{}", "A".repeat(40_000));
        assert!(matches!(
            SignedAnswer::parse(&huge),
            Err(ChallengeError::AnswerCertificateTooLong { .. })
        ));
    }

    #[test]
    fn renewal_tokens_and_proofs_never_pass_for_logins_and_back() {
        let login = sample("alice", "h", "sshd");
        let renewal = RenewalChallenge {
            challenge: sample("alice", "h", "renew"),
            successor: [7; SUCCESSOR_LEN],
        };
        let token = renewal.to_token();
        assert!(token.len() <= MAX_RENEWAL_TOKEN_LEN);
        assert_eq!(RenewalChallenge::from_token(&token).unwrap(), renewal);
        // Each kind of token is refused as the other, by name.
        assert_eq!(
            Challenge::from_token(&token),
            Err(ChallengeError::RenewalToken)
        );
        assert_eq!(
            RenewalChallenge::from_token(&login.to_token()),
            Err(ChallengeError::LoginToken)
        );
        // Same fields, different prefix: a proof is no login signature,
        // and a login signature is no proof.
        let same = RenewalChallenge {
            challenge: login.clone(),
            successor: [7; SUCCESSOR_LEN],
        };
        assert!(same.signed_bytes().starts_with(RENEWAL_SIGNING_DOMAIN));
        assert!(!same.signed_bytes().starts_with(SIGNING_DOMAIN));
        let key = crate::keyfile::generate_signing_key();
        let public = key.verifying_key();
        assert!(same.verify(public, &same.sign(&key)).is_ok());
        assert!(same.verify(public, &login.sign(&key)).is_err());
        assert!(login.verify(public, &same.sign(&key)).is_err());
        // The successor is bound: another fingerprint, another message.
        let other = RenewalChallenge {
            successor: [8; SUCCESSOR_LEN],
            ..same.clone()
        };
        assert!(other.verify(public, &same.sign(&key)).is_err());
    }
}
