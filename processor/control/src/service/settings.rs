//! Hot settings: each change is validated with the workers' own parser, stored as a new
//! versioned snapshot (audited in the same transaction), published to Redis and announced;
//! every process reports the version it applied.

use std::time::Duration;

use mutt_bus::control::{Announcement, Applied, Snapshot};
use mutt_core::hot::{self, REGISTRY};
use mutt_store::Actor;
use serde_json::{Map, Value, json};

use super::Refused;
use crate::ControlState;

/// A reported version older than this is a process that is gone.
const STALE: Duration = Duration::from_secs(60);

/// The version in force and its overrides.
async fn current(s: &ControlState) -> Result<(i64, Map<String, Value>), Refused> {
    match s.store.latest_snapshot().await? {
        Some((v, Value::Object(m))) => Ok((v, m)),
        _ => Ok((0, Map::new())),
    }
}

fn view(key: &str, current: &hot::HotConfig, overrides: &Map<String, Value>) -> Option<Value> {
    let spec = hot::spec(key)?;
    Some(json!({
        "key": spec.key,
        "value": current.get(spec.key),
        "default": spec.default,
        "overridden": overrides.contains_key(spec.key),
        "type": spec.kind.describe(),
        "roles": spec.roles,
        "description": spec.help,
    }))
}

fn unknown(key: &str) -> Refused {
    Refused::NotFound(format!(
        "{key:?} is not a hot setting; GET /api/v2/config lists them"
    ))
}

/// The version in force and every setting with its value, default and whether it is
/// overridden.
pub async fn list(s: &ControlState) -> Result<(i64, Vec<Value>), Refused> {
    let (version, overrides) = current(s).await?;
    let hot = s.hot.borrow().clone();
    Ok((
        version,
        REGISTRY
            .iter()
            .filter_map(|spec| view(spec.key, &hot, &overrides))
            .collect(),
    ))
}

/// One setting.
pub async fn get(s: &ControlState, key: &str) -> Result<Value, Refused> {
    let (_, overrides) = current(s).await?;
    let hot = s.hot.borrow().clone();
    view(key, &hot, &overrides).ok_or_else(|| unknown(key))
}

/// Whether `key` is a hot setting.
pub fn check_key(key: &str) -> Result<(), Refused> {
    hot::spec(key).map(|_| ()).ok_or_else(|| unknown(key))
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The value before.
    pub old: String,
    /// The value now, normalised (`30s`, `500`).
    pub new: String,
    /// The snapshot version that holds it.
    pub version: i64,
}

/// Changes a hot setting.
pub async fn set(
    s: &ControlState,
    key: &str,
    value: Value,
    actor: Actor,
) -> Result<Changed, Refused> {
    let spec = hot::spec(key).ok_or_else(|| unknown(key))?;
    let raw = match value {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => {
            return Err(Refused::bad(format!(
                "{key}: value must be a string or a number, not {other}"
            )));
        }
    };
    let normalized = hot::validate(key, &raw).map_err(|e| Refused::bad(e.to_string()))?;
    let (version, values) = s
        .store
        .set_hot_value(key, &normalized, spec.default, &actor)
        .await?;
    let old = s.hot.borrow().get(key).unwrap_or_default();
    let values = match values {
        Value::Object(m) => m
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
            .collect(),
        _ => Default::default(),
    };
    // The database holds the version; Redis is how it reaches the processes. If this
    // fails, the background sync publishes it within seconds.
    if let Err(e) = s.bus.store_snapshot(&Snapshot { version, values }).await {
        tracing::warn!(error = %e, version, "snapshot not yet published to redis");
    }
    s.announce(Announcement::Config { version }).await;
    Ok(Changed {
        old,
        new: normalized,
        version,
    })
}

/// The version in force, and what every live process applied.
pub async fn versions(s: &ControlState) -> Result<(i64, Vec<Applied>), Refused> {
    let (version, _) = current(s).await?;
    Ok((version, applied(s).await?))
}

/// The version Redis holds, and what every live process applied: [`versions`] without
/// PostgreSQL, for the overview that the console polls every few seconds. Redis holds what
/// the processes apply, and the background sync republishes a version it lacks.
pub async fn live_versions(s: &ControlState) -> Result<(i64, Vec<Applied>), Refused> {
    let version = s.bus.snapshot().await?.map_or(0, |snap| snap.version);
    Ok((version, applied(s).await?))
}

/// What every live process reported.
async fn applied(s: &ControlState) -> Result<Vec<Applied>, Refused> {
    Ok(s.bus.applied_versions(STALE, mutt_core::now_ms()).await?)
}

/// Republishes the newest snapshot to Redis when Redis does not hold it (lost, or its
/// publication failed), and announces it.
pub async fn republish(s: &ControlState) {
    match s.store.latest_snapshot().await {
        Ok(Some((version, Value::Object(m)))) => {
            let values = m
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
                .collect();
            if let Ok(true) = s.bus.store_snapshot(&Snapshot { version, values }).await {
                tracing::info!(version, "config snapshot republished to redis");
                s.announce(Announcement::Config { version }).await;
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "reading the latest snapshot"),
    }
}
