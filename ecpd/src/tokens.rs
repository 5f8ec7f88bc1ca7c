//! Challenges that cost the daemon nothing until they are answered.
//!
//! A token carries everything the daemon needs to check an answer (user,
//! host, service, remote host, requester, expiry) under an HMAC-SHA256 tag.
//! The MAC key is drawn from the OS at start-up and lives only in this
//! process's memory, so:
//! - issuing a challenge writes nothing, anywhere: a flood of requests for
//!   made-up users from any number of addresses costs CPU, never memory or
//!   disk;
//! - a forged or altered token is refused by one MAC check, before any
//!   other work and without a lookup;
//! - a restart or crash makes every earlier token worthless at once (the
//!   new key does not recognise them), which is what keeps "a nonce
//!   validates at most once" true across a crash without a durable write.
//!
//! Only nonce ids that have been *used* (verified successfully) are
//! remembered, in memory, until their token expires; after that the expiry
//! check refuses the token anyway. Only a correct signature from an
//! enrolled key adds an entry, so an outsider cannot grow the set.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use ecp_core::challenge::{NonceId, TAG_LEN};
use ecp_core::Challenge;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// What the MAC covers besides the token: a label, so this key can never
/// be tricked into tagging anything else.
const MAC_DOMAIN: &[u8] = b"ecpd-challenge-tag-v2\0";

pub struct Tokens {
    key: Zeroizing<[u8; 32]>,
    used: Mutex<UsedNonces>,
}

#[derive(Default)]
struct UsedNonces {
    ids: HashSet<NonceId>,
    /// (expires_at, id), oldest first, so expired ids are dropped cheaply.
    by_expiry: BTreeSet<(u64, NonceId)>,
}

impl Tokens {
    /// A fresh key from the operating system's random source.
    pub fn new() -> Result<Self, getrandom::Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut())?;
        Ok(Self {
            key,
            used: Mutex::new(UsedNonces::default()),
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_ref())
            .expect("HMAC takes any key length");
        mac.update(MAC_DOMAIN);
        mac
    }

    /// Sets the challenge's tag to this daemon's MAC over its fields.
    pub fn seal(&self, challenge: &mut Challenge) {
        let mut mac = self.mac();
        mac.update(&challenge.mac_input());
        let tag = mac.finalize().into_bytes();
        challenge.tag.copy_from_slice(&tag[..TAG_LEN]);
    }

    /// Sets a renewal challenge's tag (the same key: the payload's own
    /// version byte keeps the two kinds apart).
    pub fn seal_renewal(&self, renewal: &mut ecp_core::challenge::RenewalChallenge) {
        let mut mac = self.mac();
        mac.update(&renewal.mac_input());
        let tag = mac.finalize().into_bytes();
        renewal.challenge.tag.copy_from_slice(&tag[..TAG_LEN]);
    }

    /// True when this daemon issued exactly this renewal challenge.
    pub fn is_genuine_renewal(&self, renewal: &ecp_core::challenge::RenewalChallenge) -> bool {
        let mut mac = self.mac();
        mac.update(&renewal.mac_input());
        mac.verify_slice(&renewal.challenge.tag).is_ok()
    }

    /// True when this daemon (since its last start) issued exactly this
    /// challenge. Constant-time in the tag.
    pub fn is_genuine(&self, challenge: &Challenge) -> bool {
        let mut mac = self.mac();
        mac.update(&challenge.mac_input());
        mac.verify_slice(&challenge.tag).is_ok()
    }

    /// Whether the challenge's nonce was used already.
    pub fn is_used(&self, challenge: &Challenge) -> bool {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.ids.contains(&challenge.nonce_id)
    }

    /// Marks the challenge's nonce as used. Of any number of callers, also
    /// concurrent ones, exactly one gets `true` per nonce.
    pub fn consume(&self, challenge: &Challenge) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if !used.ids.insert(challenge.nonce_id) {
            return false;
        }
        used.by_expiry
            .insert((challenge.expires_at, challenge.nonce_id));
        true
    }

    /// Forgets used nonces whose tokens expired at or before `now` (the
    /// expiry check refuses those tokens by itself); returns how many.
    pub fn forget_expired(&self, now: u64) -> usize {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut forgotten = 0;
        while let Some(&(expires_at, id)) = used.by_expiry.first() {
            if expires_at > now {
                break;
            }
            used.by_expiry.pop_first();
            used.ids.remove(&id);
            forgotten += 1;
        }
        forgotten
    }

    /// Used nonces still remembered.
    pub fn used_count(&self) -> usize {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecp_core::{HostName, RemoteHost, ServiceName, UserName};

    fn challenge(user: &str, expires_in: u64) -> Challenge {
        Challenge::unsealed(
            UserName::parse(user).unwrap(),
            HostName::parse("h").unwrap(),
            ServiceName::parse("sshd").unwrap(),
            RemoteHost::parse("203.0.113.7").unwrap(),
            0,
            1000,
            expires_in,
        )
        .unwrap()
    }

    #[test]
    fn a_sealed_challenge_is_genuine_and_any_change_is_not() {
        let tokens = Tokens::new().unwrap();
        let mut c = challenge("alice", 300);
        assert!(!tokens.is_genuine(&c), "an unsealed challenge passed");
        tokens.seal(&mut c);
        assert!(tokens.is_genuine(&c));
        let through_text = Challenge::from_token(&c.to_token()).unwrap();
        assert!(tokens.is_genuine(&through_text));

        let mut changes = Vec::new();
        let mut longer = c.clone();
        longer.expires_at += 1;
        changes.push(longer);
        let mut other_user = c.clone();
        other_user.user = UserName::parse("bob").unwrap();
        changes.push(other_user);
        let mut other_rhost = c.clone();
        other_rhost.rhost = RemoteHost::local();
        changes.push(other_rhost);
        let mut other_requester = c.clone();
        other_requester.requester_uid = 1000;
        changes.push(other_requester);
        let mut other_tag = c.clone();
        other_tag.tag[31] ^= 1;
        changes.push(other_tag);
        for changed in changes {
            assert!(!tokens.is_genuine(&changed), "{changed:?}");
        }
    }

    #[test]
    fn another_daemon_start_does_not_recognise_earlier_tokens() {
        let before = Tokens::new().unwrap();
        let after = Tokens::new().unwrap();
        let mut c = challenge("alice", 300);
        before.seal(&mut c);
        assert!(!after.is_genuine(&c));
    }

    #[test]
    fn a_nonce_is_used_once_also_under_concurrency() {
        let tokens = std::sync::Arc::new(Tokens::new().unwrap());
        let mut c = challenge("alice", 300);
        tokens.seal(&mut c);
        let winners: usize = (0..16)
            .map(|_| {
                let tokens = tokens.clone();
                let c = c.clone();
                std::thread::spawn(move || usize::from(tokens.consume(&c)))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(winners, 1);
        assert!(!tokens.consume(&c));
    }

    #[test]
    fn used_nonces_are_forgotten_once_expired() {
        let tokens = Tokens::new().unwrap();
        let short = challenge("alice", 10); // expires at 1010
        let long = challenge("alice", 300); // expires at 1300
        assert!(tokens.consume(&short) && tokens.consume(&long));
        assert_eq!(tokens.forget_expired(1009), 0);
        assert_eq!(tokens.forget_expired(1010), 1);
        assert_eq!(tokens.used_count(), 1);
        assert!(!tokens.consume(&long), "a live used nonce was forgotten");
    }
}
