//! API keys: verification in constant time, scopes, and the key ring every process keeps.
//!
//! Keys are known only as SHA-256 digests. A presented key is hashed and compared with
//! every known digest in constant time, so neither a memory dump nor timing reveals a key.
//! API keys are long random strings, for which a fast hash is the right tool: a password
//! hash would cost milliseconds per ingest request and buy nothing.

use std::sync::{Arc, RwLock};

use mutt_bus::Bus;
use mutt_bus::control::KeyRecord;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A key's digest.
pub type KeyDigest = [u8; 32];

/// SHA-256 of a key.
pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// The hex form of a digest (as stored).
pub fn digest_hex(key: &str) -> String {
    digest(key).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(h: &str) -> Option<KeyDigest> {
    if h.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in h.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send events.
    Ingest,
    /// Read the control API.
    Read,
    /// Change rules, hosts, teams, settings, DLQs.
    Write,
    /// Everything, including keys and secrets.
    Admin,
}

impl Scope {
    /// Parses a scope name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Self::Ingest),
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name: the "who" of audit rows.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the caller may do what `scope` allows (admin may do everything; write
    /// includes read).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| {
            *s == scope || *s == Scope::Admin || (*s == Scope::Write && scope == Scope::Read)
        })
    }
}

#[derive(Debug, Clone)]
struct Known {
    name: String,
    digest: KeyDigest,
    scopes: Vec<Scope>,
    expires_ms: Option<i64>,
}

/// The keys a process accepts.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Known>,
}

/// The name of the key given by `MUTT_API_KEY`.
pub const BOOTSTRAP: &str = "bootstrap";

impl ApiKeys {
    /// Accepts `key` under `name` with `scopes`.
    pub fn add(&mut self, name: impl Into<String>, key: &str, scopes: &[Scope]) {
        self.keys.push(Known {
            name: name.into(),
            digest: digest(key),
            scopes: scopes.to_vec(),
            expires_ms: None,
        });
    }

    /// Accepts a registry record (skipped if malformed).
    pub fn add_record(&mut self, r: &KeyRecord) {
        let Some(d) = parse_hex(&r.digest) else {
            return;
        };
        self.keys.push(Known {
            name: r.name.clone(),
            digest: d,
            scopes: r.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            expires_ms: r.expires_ms,
        });
    }

    /// Whether no key is configured (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller, if `presented` is a known, unexpired key. Every digest is compared,
    /// whichever matches, so the time taken does not depend on which key it is.
    pub fn verify(&self, presented: &str, now_ms: i64) -> Option<Caller> {
        let d = digest(presented);
        let mut found = None;
        for k in &self.keys {
            let live = k.expires_ms.is_none_or(|e| e > now_ms);
            if bool::from(k.digest.ct_eq(&d)) && live && found.is_none() {
                found = Some(Caller {
                    name: k.name.clone(),
                    scopes: k.scopes.clone(),
                });
            }
        }
        found
    }
}

/// A bootstrap key and when it stops being accepted (ms since the epoch).
type Bootstrap = (String, Option<i64>);

/// The keys of a process, refreshed from the registry in Redis when the control plane
/// announces a change (and periodically). The bootstrap key from `MUTT_API_KEY` is always
/// accepted, with every scope.
#[derive(Clone, Default)]
pub struct KeyRing {
    /// Bootstrap keys with their expiry: one, or two while a changed `MUTT_API_KEY_FILE`
    /// overlaps with the previous key.
    bootstrap: Arc<RwLock<Vec<Bootstrap>>>,
    records: Arc<RwLock<Vec<KeyRecord>>>,
    current: Arc<RwLock<Arc<ApiKeys>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    match l.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn write<T>(l: &RwLock<T>, v: T) {
    match l.write() {
        Ok(mut g) => *g = v,
        Err(p) => *p.into_inner() = v,
    }
}

impl KeyRing {
    /// A ring with the bootstrap key, if one is configured.
    pub fn new(bootstrap: Option<&str>) -> Self {
        let ring = Self::default();
        write(
            &ring.bootstrap,
            bootstrap
                .map(|b| (b.to_string(), None))
                .into_iter()
                .collect(),
        );
        ring.rebuild();
        ring
    }

    /// Replaces the bootstrap key (its file changed): the new key is accepted at once, the
    /// previous one until `overlap` has passed.
    pub fn rotate_bootstrap(&self, key: &str, overlap: std::time::Duration) {
        let until = mutt_core::now_ms() + overlap.as_millis() as i64;
        let mut keys: Vec<Bootstrap> = read(&self.bootstrap)
            .into_iter()
            .filter(|(k, exp)| k != key && exp.is_none_or(|e| e > mutt_core::now_ms()))
            .map(|(k, exp)| (k, Some(exp.map_or(until, |e| e.min(until)))))
            .collect();
        keys.insert(0, (key.to_string(), None));
        write(&self.bootstrap, keys);
        self.rebuild();
    }

    fn replace(&self, records: &[KeyRecord]) {
        write(&self.records, records.to_vec());
        self.rebuild();
    }

    fn rebuild(&self) {
        let mut keys = ApiKeys::default();
        for (b, expires) in read(&self.bootstrap) {
            keys.add(BOOTSTRAP, &b, &[Scope::Admin]);
            if let Some(last) = keys.keys.last_mut() {
                last.expires_ms = expires;
            }
        }
        for r in read(&self.records) {
            keys.add_record(&r);
        }
        let keys = Arc::new(keys);
        match self.current.write() {
            Ok(mut g) => *g = keys,
            Err(p) => *p.into_inner() = keys,
        }
    }

    /// The keys now.
    pub fn get(&self) -> Arc<ApiKeys> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the registry. On failure the keys in use stay.
    pub async fn reload(&self, bus: &Bus) -> Result<(), mutt_bus::BusError> {
        let records = bus.keys().await?;
        self.replace(&records);
        Ok(())
    }

    /// Verifies a key now.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        self.get().verify(presented, mutt_core::now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_live_keys_verify_with_their_scopes() {
        let mut k = ApiKeys::default();
        assert!(k.verify("x", 0).is_none());
        k.add("bootstrap", "s3cret-key", &[Scope::Admin]);
        k.add_record(&KeyRecord {
            digest: digest_hex("another"),
            name: "sender".into(),
            scopes: vec!["ingest".into()],
            expires_ms: Some(1_000),
        });
        assert_eq!(k.verify("s3cret-key", 0).unwrap().name, "bootstrap");
        let sender = k.verify("another", 999).unwrap();
        assert!(sender.may(Scope::Ingest) && !sender.may(Scope::Read));
        assert!(k.verify("another", 1_000).is_none(), "expired");
        assert!(k.verify("s3cret-kez", 0).is_none());
        assert!(k.verify("", 0).is_none());
        assert!(!format!("{k:?}").contains("s3cret"));
        let admin = Caller {
            name: "a".into(),
            scopes: vec![Scope::Admin],
        };
        assert!(admin.may(Scope::Write) && admin.may(Scope::Ingest));
        let writer = Caller {
            name: "w".into(),
            scopes: vec![Scope::Write],
        };
        assert!(writer.may(Scope::Read) && !writer.may(Scope::Admin));
        assert_eq!(parse_hex(&digest_hex("z")), Some(digest("z")));
    }

    #[test]
    fn a_rotated_bootstrap_key_overlaps_then_expires() {
        let ring = KeyRing::new(Some("boot-1"));
        assert!(ring.verify("boot-1").is_some());
        ring.rotate_bootstrap("boot-2", std::time::Duration::from_millis(40));
        assert!(ring.verify("boot-2").is_some());
        assert!(ring.verify("boot-1").is_some(), "within the overlap");
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(ring.verify("boot-1").is_none(), "after the overlap");
        assert!(ring.verify("boot-2").is_some());
        assert!(!format!("{ring:?}").contains("boot"));
    }
}
