//! `Idempotency-Key`: resending a request is safe.
//!
//! A client that sent a request and got no answer (a timeout, a 503 because Redis did not
//! confirm the append) cannot know whether its events were accepted. Resending without a
//! key could accept them twice, under new ids: new audit rows, new `external_id`s at the
//! webhook. With a key, the request is identified by the caller, the key and the body's
//! bytes; its events get ids derived from that identity and their position, and ingest
//! appends a request it has already appended within `MUTT_INGEST_IDEMPOTENCY_WINDOW` no
//! second time (one Redis script checks, appends and remembers). The resend is answered
//! like the original, with `Idempotent-Replayed: true`.
//!
//! The body is part of the identity: the same key with a different body is a different
//! request, so a client reusing keys by mistake cannot make ingest drop events.

use sha2::{Digest, Sha256};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The answer header of a resend that was not appended again.
pub const REPLAYED: &str = "idempotent-replayed";

/// An `Idempotency-Key` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 255 printable ASCII characters")]
pub struct InvalidKey;

/// The identity of a keyed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    digest: [u8; 32],
}

impl Request {
    /// The identity of the request that `caller` sent with `key` and `body`; `None` when
    /// the request has no key.
    pub fn of(caller: &str, key: Option<&[u8]>, body: &[u8]) -> Result<Option<Self>, InvalidKey> {
        let Some(key) = key else { return Ok(None) };
        if key.is_empty() || key.len() > 255 || !key.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(InvalidKey);
        }
        let mut h = Sha256::new();
        // Lengths first: no two (caller, key) pairs can run together into one.
        h.update(b"mutt-ingest-idempotency\0");
        h.update((caller.len() as u64).to_be_bytes());
        h.update(caller.as_bytes());
        h.update((key.len() as u64).to_be_bytes());
        h.update(key);
        h.update(body);
        Ok(Some(Self {
            digest: h.finalize().into(),
        }))
    }

    /// The member that remembers the request in Redis (128 bits are plenty).
    pub fn member(&self) -> String {
        self.digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The id of the request's `index`-th item: a UUIDv8, the same on every resend.
    pub fn event_id(&self, index: usize) -> String {
        let mut h = Sha256::new();
        h.update(self.digest);
        h.update((index as u64).to_be_bytes());
        let d: [u8; 32] = h.finalize().into();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&d[..16]);
        uuid::Uuid::new_v8(bytes).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_depends_on_caller_key_and_body() {
        let r = |c: &str, k: &str, b: &str| Request::of(c, Some(k.as_bytes()), b.as_bytes());
        let a = r("sender", "k1", "[1]").unwrap().unwrap();
        assert_eq!(a, r("sender", "k1", "[1]").unwrap().unwrap());
        assert_ne!(a, r("other", "k1", "[1]").unwrap().unwrap());
        assert_ne!(a, r("sender", "k2", "[1]").unwrap().unwrap());
        assert_ne!(a, r("sender", "k1", "[2]").unwrap().unwrap());
        // No ambiguity between where the caller ends and the key begins.
        assert_ne!(
            r("ab", "c", "").unwrap().unwrap(),
            r("a", "bc", "").unwrap().unwrap()
        );
        assert_eq!(a.event_id(3), a.event_id(3));
        assert_ne!(a.event_id(3), a.event_id(4));
        let id = uuid::Uuid::parse_str(&a.event_id(0)).unwrap();
        assert_eq!(id.get_version_num(), 8);
        assert_eq!(a.member().len(), 32);
        assert_eq!(Request::of("s", None, b"x"), Ok(None));
    }

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert_eq!(Request::of("s", Some(b""), b""), Err(InvalidKey));
        assert_eq!(Request::of("s", Some(&[b'a'; 256]), b""), Err(InvalidKey));
        assert_eq!(Request::of("s", Some(b"a\nb"), b""), Err(InvalidKey));
        assert_eq!(Request::of("s", Some("é".as_bytes()), b""), Err(InvalidKey));
        assert!(
            Request::of("s", Some(b"0f3a-retry key 1"), b"")
                .unwrap()
                .is_some()
        );
    }
}
