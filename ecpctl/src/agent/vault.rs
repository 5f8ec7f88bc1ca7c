//! The agent's decrypted keys: in one allocation locked in memory (never
//! swapped out), wiped when dropped (p256 zeroizes signing keys).

use ecp_agent::key::p256_key_blob;
use p256::ecdsa::SigningKey;

pub struct AgentKey {
    pub signing: SigningKey,
    pub blob: Vec<u8>,
    pub comment: String,
}

impl AgentKey {
    pub fn new(signing: SigningKey, comment: String) -> AgentKey {
        AgentKey {
            blob: p256_key_blob(signing.verifying_key()),
            signing,
            comment,
        }
    }
}

pub struct Vault {
    keys: Box<[AgentKey]>,
    /// Unlocks the pages when the vault goes (after the keys are wiped:
    /// fields drop in order).
    _locked: Option<region::LockGuard>,
}

impl Vault {
    /// Locks the keys' memory; why it could not be locked, if so (a small
    /// RLIMIT_MEMLOCK), is returned beside the vault.
    pub fn new(keys: Vec<AgentKey>) -> (Vault, Option<String>) {
        let keys = keys.into_boxed_slice();
        let (locked, problem) =
            match region::lock(keys.as_ptr(), std::mem::size_of_val(&*keys).max(1)) {
                Ok(guard) => (Some(guard), None),
                Err(e) => (None, Some(format!("cannot lock the keys in memory: {e}"))),
            };
        (
            Vault {
                keys,
                _locked: locked,
            },
            problem,
        )
    }

    pub fn find(&self, blob: &[u8]) -> Option<&AgentKey> {
        self.keys.iter().find(|k| k.blob == blob)
    }

    pub fn identities(&self) -> Vec<(Vec<u8>, String)> {
        self.keys
            .iter()
            .map(|k| (k.blob.clone(), k.comment.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}
