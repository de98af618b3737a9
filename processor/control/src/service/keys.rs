//! Named API keys with scopes: created and rotated with a key shown once, revoked,
//! published to every process with the version of the key set.

use std::time::Duration;

use mutt_bus::control::{Announcement, KeyRecord};
use mutt_store::api_keys::ApiKeyRow;
use mutt_store::{Actor, Outcome};
use time::OffsetDateTime;

use super::Refused;
use crate::ControlState;
use mutt_worker::auth::{BOOTSTRAP, Caller, Scope, digest_hex};
use serde_json::{Value, json};

/// A new random key: 32 bytes from the operating system, hex, with a prefix that secret
/// scanners can recognise.
fn new_key() -> Result<String, Refused> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|_| Refused::Unavailable {
        message: "no randomness available".into(),
        retry_after: 1,
    })?;
    Ok(format!(
        "mutt_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

/// A key name: 1–100 letters, digits or `-_.:@`, and not the bootstrap key's.
pub fn check_name(name: &str) -> Result<(), Refused> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
        && name != BOOTSTRAP;
    if ok {
        Ok(())
    } else {
        Err(Refused::bad(
            "name: 1–100 letters, digits or - _ . : @ (and not \"bootstrap\")",
        ))
    }
}

/// The calling key: its name, its scopes, and every scope it allows (admin allows
/// everything, write includes read), so that the console hides what the key cannot do
/// without knowing those rules.
pub fn whoami(caller: &Caller) -> Value {
    let scopes: Vec<&str> = caller.scopes.iter().map(|s| s.as_str()).collect();
    let allows: Vec<&str> = [Scope::Ingest, Scope::Read, Scope::Write, Scope::Admin]
        .into_iter()
        .filter(|s| caller.may(*s))
        .map(Scope::as_str)
        .collect();
    json!({"name": caller.name, "scopes": scopes, "allows": allows})
}

/// Every key, newest first (never a digest).
pub async fn list(s: &ControlState) -> Result<Vec<ApiKeyRow>, Refused> {
    Ok(s.store.list_api_keys().await?)
}

/// A key as created: the key itself is in the answer once, and stored nowhere.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its scopes, normalised.
    pub scopes: Vec<String>,
    /// The key.
    pub key: String,
    /// When the keys it replaced stop working (a rotation).
    pub previous_expire_at: Option<OffsetDateTime>,
}

/// Creates a key `name` with `scopes`.
pub async fn create(
    s: &ControlState,
    name: &str,
    scopes: &[String],
    actor: Actor,
) -> Result<Issued, Refused> {
    check_name(name)?;
    let mut normalized: Vec<String> = Vec::new();
    for sc in scopes {
        let scope = Scope::parse(sc).ok_or_else(|| {
            Refused::bad(format!(
                "scopes: {sc:?} is not one of ingest, read, write, admin"
            ))
        })?;
        if !normalized.iter().any(|x| x == scope.as_str()) {
            normalized.push(scope.as_str().to_string());
        }
    }
    if normalized.is_empty() {
        return Err(Refused::bad(
            "scopes: at least one of ingest, read, write, admin",
        ));
    }
    let key = new_key()?;
    let o = s
        .store
        .create_api_key(name, &digest_hex(&key), &normalized, None, &actor)
        .await?;
    if o == Outcome::Conflict {
        return Err(Refused::conflict(
            "a live key with this name exists; rotate it instead",
        ));
    }
    publish(s).await;
    Ok(Issued {
        scopes: normalized,
        key,
        previous_expire_at: None,
    })
}

/// Rotates key `name`: a new key now, the old ones valid for `overlap` (default 1 h, at
/// most 30 days).
pub async fn rotate(
    s: &ControlState,
    name: &str,
    overlap: Option<&str>,
    actor: Actor,
) -> Result<Issued, Refused> {
    check_name(name)?;
    let overlap = match overlap {
        None => Duration::from_secs(3600),
        Some(o) => humantime::parse_duration(o)
            .ok()
            .filter(|d| *d <= Duration::from_secs(30 * 86_400))
            .ok_or_else(|| {
                Refused::bad(format!(
                    "overlap: {o:?} is not a duration of at most 30 days"
                ))
            })?,
    };
    let existing = s.store.list_api_keys().await?;
    let current = existing
        .iter()
        .find(|k| k.name == name && k.revoked_at.is_none())
        .ok_or_else(|| Refused::NotFound(format!("no live key named {name:?}")))?;
    let scopes = current.scopes.clone();
    let key = new_key()?;
    let until = OffsetDateTime::now_utc() + overlap;
    s.store
        .create_api_key(name, &digest_hex(&key), &scopes, Some(until), &actor)
        .await?;
    publish(s).await;
    Ok(Issued {
        scopes,
        key,
        previous_expire_at: Some(until),
    })
}

/// Revokes every live key of `name`.
pub async fn revoke(s: &ControlState, name: &str, actor: Actor) -> Result<(), Refused> {
    check_name(name)?;
    if s.store.revoke_api_key(name, &actor).await? != Outcome::Done {
        return Err(Refused::NotFound(format!("no live key named {name:?}")));
    }
    publish(s).await;
    Ok(())
}

/// Publishes the live keys to every process, with the version of the key set they were
/// read at (Redis refuses an older set).
pub async fn sync(s: &ControlState) -> Result<(), Refused> {
    let (version, live) = s.store.live_api_keys().await?;
    let records: Vec<KeyRecord> = live
        .into_iter()
        .map(|k| KeyRecord {
            digest: k.key_hash,
            name: k.name,
            scopes: k.scopes,
            expires_ms: k
                .expires_at
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
        })
        .collect();
    let held = s.bus.publish_keys(version, &records).await?;
    if held > version {
        // Another replica published a newer set meanwhile (fine), or PostgreSQL went back
        // in time (restored from a backup): Redis keeps the newer set until it is deleted.
        tracing::debug!(
            read = version,
            held,
            "Redis holds a newer API key set; this one was not published"
        );
        return Ok(());
    }
    s.announce(Announcement::Keys).await;
    let _ = s.keys.reload(&s.bus).await;
    Ok(())
}

/// Publishes the keys after a committed change. The change stands if this fails: the
/// background sync republishes within seconds, so the caller still gets its answer (and a
/// new key, which would otherwise be lost).
async fn publish(s: &ControlState) {
    if let Err(e) = sync(s).await {
        tracing::warn!(error = ?e, "keys not yet published; the background sync retries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoami_says_what_a_key_allows() {
        let caller = |scopes: &[Scope]| Caller {
            name: "k".into(),
            scopes: scopes.to_vec(),
        };
        assert_eq!(
            whoami(&caller(&[Scope::Read])),
            json!({"name": "k", "scopes": ["read"], "allows": ["read"]})
        );
        assert_eq!(
            whoami(&caller(&[Scope::Write]))["allows"],
            json!(["read", "write"])
        );
        assert_eq!(
            whoami(&caller(&[Scope::Admin]))["allows"],
            json!(["ingest", "read", "write", "admin"])
        );
    }
}
