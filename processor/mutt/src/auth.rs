//! API key verification.
//!
//! Keys are kept as SHA-256 digests, never as text, and a presented key is compared with
//! every known digest in constant time, so neither memory dumps nor timing reveal a key.
//! API keys are long random strings, so a fast hash is the right tool here: a password
//! hash would cost milliseconds per ingest request and buy nothing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A key's digest.
pub type KeyDigest = [u8; 32];

/// SHA-256 of a key.
pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// The keys a process accepts, each with a name (the "who" of audit rows).
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(String, KeyDigest)>,
}

impl ApiKeys {
    /// Accepts `key` under `name`.
    pub fn add(&mut self, name: impl Into<String>, key: &str) {
        self.keys.push((name.into(), digest(key)));
    }

    /// Whether no key is configured (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the key, if `presented` is one of the accepted keys. Every digest is
    /// compared, whatever matches first, so the time taken does not depend on which.
    pub fn verify(&self, presented: &str) -> Option<&str> {
        let d = digest(presented);
        let mut found = None;
        for (name, k) in &self.keys {
            if bool::from(k.ct_eq(&d)) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_keys_verify() {
        let mut k = ApiKeys::default();
        assert!(k.verify("x").is_none());
        k.add("bootstrap", "s3cret-key");
        k.add("other", "another");
        assert_eq!(k.verify("s3cret-key"), Some("bootstrap"));
        assert_eq!(k.verify("another"), Some("other"));
        assert!(k.verify("s3cret-kez").is_none());
        assert!(k.verify("").is_none());
        assert!(!format!("{k:?}").contains("s3cret"));
    }
}
