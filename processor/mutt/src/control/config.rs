//! Hot settings, the versions each process applied, API keys, and the API versions.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use mutt_bus::control::{Announcement, Snapshot};
use mutt_core::hot::{self, REGISTRY};
use mutt_store::control::{Actor, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Ctx, Params, PathParam, reason};
use super::records::ReasonQuery;
use super::{ControlState, bus_error, created, ok, store_error};
use crate::auth::{Scope, digest_hex};
use crate::http::ApiError;

/// A reported version older than this is a process that is gone.
const STALE: Duration = Duration::from_secs(60);

fn setting_json(
    key: &str,
    current: &hot::HotConfig,
    overrides: &serde_json::Map<String, Value>,
) -> Option<Value> {
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

async fn current(
    s: &ControlState,
    cid: &str,
) -> Result<(i64, serde_json::Map<String, Value>), ApiError> {
    match s
        .store
        .latest_snapshot()
        .await
        .map_err(|e| store_error(e, cid))?
    {
        Some((v, Value::Object(m))) => Ok((v, m)),
        _ => Ok((0, serde_json::Map::new())),
    }
}

pub(super) async fn list(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let (version, overrides) = current(&s, &ctx.cid).await?;
    let hot = s.hot.borrow().clone();
    let settings: Vec<Value> = REGISTRY
        .iter()
        .filter_map(|spec| setting_json(spec.key, &hot, &overrides))
        .collect();
    Ok(ok(json!({"version": version, "settings": settings})))
}

fn unknown_key(key: &str, cid: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("{key:?} is not a hot setting; GET /api/v2/config lists them"),
        cid,
    )
}

pub(super) async fn get_one(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(key): PathParam<String>,
) -> Result<Response, ApiError> {
    let (_, overrides) = current(&s, &ctx.cid).await?;
    let hot = s.hot.borrow().clone();
    setting_json(&key, &hot, &overrides)
        .map(ok)
        .ok_or_else(|| unknown_key(&key, &ctx.cid))
}

/// A new value for a hot setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutBody {
    value: Value,
    reason: Option<String>,
}

/// Changes a hot setting: validated with the workers' own parser, stored as a new
/// versioned snapshot (audited in the same transaction), published to Redis, announced.
pub(super) async fn set(
    s: &ControlState,
    ctx: &Ctx,
    key: &str,
    value: Value,
    why: Option<String>,
) -> Result<(String, String, i64), ApiError> {
    let spec = hot::spec(key).ok_or_else(|| unknown_key(key, &ctx.cid))?;
    let raw = match value {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("{key}: value must be a string or a number, not {other}"),
                &ctx.cid,
            ));
        }
    };
    let normalized = hot::validate(key, &raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.to_string(), &ctx.cid))?;
    let actor = Actor {
        who: ctx.caller.name.clone(),
        reason: why,
        correlation_id: ctx.cid.clone(),
    };
    let (version, values) = s
        .store
        .set_hot_value(key, &normalized, spec.default, &actor)
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
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
    Ok((old, normalized, version))
}

pub(super) async fn put(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(key): PathParam<String>,
    Body(b): Body<PutBody>,
) -> Result<Response, ApiError> {
    hot::spec(&key).ok_or_else(|| unknown_key(&key, &ctx.cid))?;
    let why = reason(b.reason, true, &ctx.cid)?;
    let (old, new, version) = set(&s, &ctx, &key, b.value, why).await?;
    Ok(ok(
        json!({"key": key, "old_value": old, "new_value": new, "version": version}),
    ))
}

pub(super) async fn versions(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let (version, _) = current(&s, &ctx.cid).await?;
    let applied = s
        .bus
        .applied_versions(STALE, mutt_core::now_ms())
        .await
        .map_err(|e| bus_error(e, &ctx.cid))?;
    let converged = applied.iter().all(|a| a.version >= version);
    let consumers: Vec<Value> = applied
        .iter()
        .map(|a| {
            json!({
                "consumer": a.consumer, "roles": a.roles, "version": a.version,
                "generations": a.generations, "seen_ms": a.seen_ms,
            })
        })
        .collect();
    Ok(ok(
        json!({"version": version, "converged": converged, "consumers": consumers}),
    ))
}

pub(super) async fn version() -> Response {
    ok(json!({
        "current": "v2",
        "service_version": env!("CARGO_PKG_VERSION"),
        "versions": [
            {"version": "v2", "status": "current", "path": "/api/v2", "docs": "/api/v2/openapi.yaml"},
            {"version": "v1", "status": "deprecated", "path": "/api/v1",
             "deprecated_at": super::v1::DEPRECATED_AT_RFC3339, "sunset": super::v1::SUNSET_RFC3339,
             "removed_endpoints": super::v1::REMOVED},
        ],
    }))
}

// === API keys ===

/// A new key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyBody {
    name: String,
    scopes: Vec<String>,
    reason: Option<String>,
}

/// A new random key: 32 bytes from the operating system, hex, with a prefix that secret
/// scanners can recognise.
pub(crate) fn new_key() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(format!(
        "mutt_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

fn check_name(name: &str, cid: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
        && name != crate::auth::BOOTSTRAP;
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "name: 1–100 letters, digits or - _ . : @ (and not \"bootstrap\")",
            cid,
        ))
    }
}

pub(super) async fn list_keys(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let keys = s
        .store
        .list_api_keys()
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    Ok(ok(json!({"keys": keys})))
}

/// Publishes the live keys to every process.
pub(super) async fn sync_keys(s: &ControlState) -> Result<(), String> {
    let (version, live) = s.store.live_api_keys().await.map_err(|e| e.to_string())?;
    let records: Vec<mutt_bus::control::KeyRecord> = live
        .into_iter()
        .map(|k| mutt_bus::control::KeyRecord {
            digest: k.key_hash,
            name: k.name,
            scopes: k.scopes,
            expires_ms: k
                .expires_at
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
        })
        .collect();
    let held = s
        .bus
        .publish_keys(version, &records)
        .await
        .map_err(|e| e.to_string())?;
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
/// background sync republishes within 30 s, so the caller still gets its answer (and a
/// new key, which would otherwise be lost).
async fn publish_keys(s: &ControlState) {
    if let Err(e) = sync_keys(s).await {
        tracing::warn!(error = %e, "keys not yet published; the background sync retries");
    }
}

pub(super) async fn create_key(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Body(b): Body<KeyBody>,
) -> Result<Response, ApiError> {
    check_name(&b.name, &ctx.cid)?;
    let mut scopes: Vec<String> = Vec::new();
    for sc in &b.scopes {
        let Some(scope) = Scope::parse(sc) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("scopes: {sc:?} is not one of ingest, read, write, admin"),
                &ctx.cid,
            ));
        };
        if !scopes.iter().any(|x| x == scope.as_str()) {
            scopes.push(scope.as_str().to_string());
        }
    }
    if scopes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "scopes: at least one of ingest, read, write, admin",
            &ctx.cid,
        ));
    }
    let why = reason(b.reason, false, &ctx.cid)?;
    let key = new_key().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no randomness available",
            &ctx.cid,
        )
    })?;
    let actor = Actor {
        who: ctx.caller.name.clone(),
        reason: why,
        correlation_id: ctx.cid.clone(),
    };
    let o = s
        .store
        .create_api_key(&b.name, &digest_hex(&key), &scopes, None, &actor)
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    if o == Outcome::Conflict {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a live key with this name exists; rotate it instead",
            &ctx.cid,
        ));
    }
    publish_keys(&s).await;
    // The key itself is shown once, here, and stored nowhere.
    Ok(created(
        json!({"name": b.name, "scopes": scopes, "key": key}),
    ))
}

/// A rotation of a key: a new key now; the old ones stay valid for the overlap.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateBody {
    /// Overlap, humantime (default 1h).
    overlap: Option<String>,
    reason: Option<String>,
}

pub(super) async fn rotate_key(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(name): PathParam<String>,
    Body(b): Body<RotateBody>,
) -> Result<Response, ApiError> {
    check_name(&name, &ctx.cid)?;
    let overlap = match &b.overlap {
        None => Duration::from_secs(3600),
        Some(o) => humantime::parse_duration(o)
            .ok()
            .filter(|d| *d <= Duration::from_secs(30 * 86_400))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("overlap: {o:?} is not a duration of at most 30 days"),
                    &ctx.cid,
                )
            })?,
    };
    let why = reason(b.reason, true, &ctx.cid)?;
    let existing = s
        .store
        .list_api_keys()
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    let Some(current) = existing
        .iter()
        .find(|k| k.name == name && k.revoked_at.is_none())
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no live key named {name:?}"),
            &ctx.cid,
        ));
    };
    let scopes = current.scopes.clone();
    let key = new_key().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no randomness available",
            &ctx.cid,
        )
    })?;
    let until = time::OffsetDateTime::now_utc() + overlap;
    let actor = Actor {
        who: ctx.caller.name.clone(),
        reason: why,
        correlation_id: ctx.cid.clone(),
    };
    s.store
        .create_api_key(&name, &digest_hex(&key), &scopes, Some(until), &actor)
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    publish_keys(&s).await;
    Ok(created(json!({
        "name": name, "scopes": scopes, "key": key,
        "previous_keys_expire_at": until.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })))
}

pub(super) async fn revoke_key(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(name): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Result<Response, ApiError> {
    check_name(&name, &ctx.cid)?;
    let why = reason(q.reason().map(str::to_string), false, &ctx.cid)?;
    let actor = Actor {
        who: ctx.caller.name.clone(),
        reason: why,
        correlation_id: ctx.cid.clone(),
    };
    match s
        .store
        .revoke_api_key(&name, &actor)
        .await
        .map_err(|e| store_error(e, &ctx.cid))?
    {
        Outcome::Done => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no live key named {name:?}"),
                &ctx.cid,
            ));
        }
    }
    publish_keys(&s).await;
    Ok(ok(json!({"revoked": name})))
}
