//! `/api/v2`: the handlers, adapters over the services. Each reads its request (path,
//! query, body), calls one service, and shapes the answer; nothing else happens here.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ControlState;
use super::extract::{Body, Ctx, Params, PathParam, reason};
use super::service::audit::{self, AuditQuery, EventQuery};
use super::service::dlq::{self, Filter, Selection};
use super::service::rules::{self, RuleBody, TestBody, rule_id};
use super::service::{hosts, keys, overview, retention, secrets, settings, slo, teams};
use super::versions;
use mutt_bus::dlq::Shelf;
use mutt_worker::http::ApiError;

/// The OpenAPI document of this API, served at `/api/v2/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../schemas/control.openapi.yaml");

type Answer = Result<Response, ApiError>;
type S = State<Arc<ControlState>>;

/// 201 with a JSON body.
fn created(body: Value) -> Answer {
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// 200 with a JSON body.
fn ok(body: Value) -> Answer {
    Ok(axum::Json(body).into_response())
}

pub(super) fn router() -> Router<Arc<ControlState>> {
    Router::new()
        .route("/version", get(version))
        .route("/openapi.yaml", get(openapi))
        .route("/overview", get(get_overview))
        .route("/whoami", get(whoami))
        .route("/rules", get(list_rules).post(create_rule))
        .route("/rules/test", post(test_rule))
        .route(
            "/rules/{id}",
            get(get_rule).put(update_rule).delete(delete_rule),
        )
        .route("/dev-hosts", get(list_dev_hosts).post(create_dev_host))
        .route("/dev-hosts/{hostname}", delete(delete_dev_host))
        .route("/teams", get(list_teams).post(create_team))
        .route("/teams/{hostname}", put(update_team).delete(delete_team))
        .route("/config", get(list_config))
        .route("/config/versions", get(config_versions))
        .route("/config/{key}", get(get_config).put(put_config))
        .route("/audit", get(audit_changes))
        .route("/events", get(audit_events))
        .route("/dlq", get(list_dlqs))
        .route("/dlq/{name}", get(dlq_entries))
        .route("/dlq/{name}/replay", post(dlq_replay))
        .route("/dlq/{name}/purge", post(dlq_purge))
        .route("/dlq/{name}/{id}", delete(dlq_purge_one))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{name}", delete(revoke_key))
        .route("/keys/{name}/rotate", post(rotate_key))
        .route("/secrets", get(list_secrets))
        .route("/secrets/{name}/rotate", post(rotate_secret))
        .route("/slo", get(slo_status))
        .route("/retention", get(retention_status))
}

async fn version() -> Answer {
    ok(versions::v2())
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        )],
        OPENAPI,
    )
        .into_response()
}

/// The console's overview: streams, DLQs, processes, totals.
async fn get_overview(State(s): S) -> Answer {
    ok(overview::overview(&s).await?)
}

/// The calling key and what it may do.
async fn whoami(ctx: Ctx) -> Answer {
    ok(keys::whoami(&ctx.caller))
}

/// An optional reason, in the query string (deletions).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ReasonQuery {
    pub(super) reason: Option<String>,
}

// === rules, development hosts, device teams ===

async fn list_rules(State(s): S) -> Answer {
    ok(json!({ "rules": rules::list(&s).await? }))
}

async fn get_rule(State(s): S, PathParam(id): PathParam<String>) -> Answer {
    ok(json!(rules::get(&s, rule_id(&id)?).await?))
}

async fn create_rule(State(s): S, ctx: Ctx, Body(b): Body<RuleBody>) -> Answer {
    created(json!(rules::create(&s, b, |why| ctx.actor(why)).await?))
}

async fn update_rule(
    State(s): S,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
    Body(b): Body<RuleBody>,
) -> Answer {
    let id = rule_id(&id)?;
    ok(json!(rules::update(&s, id, b, |why| ctx.actor(why)).await?))
}

async fn delete_rule(
    State(s): S,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Answer {
    let id = rule_id(&id)?;
    let why = reason(q.reason, false)?;
    ok(json!({ "deleted": rules::delete(&s, id, ctx.actor(why)).await? }))
}

/// Which rule an event matches and why (scope `read`: nothing changes).
async fn test_rule(State(s): S, ctx: Ctx, Body(b): Body<TestBody>) -> Answer {
    ok(rules::test(&s, b, &ctx.cid).await?)
}

/// A development host.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostBody {
    hostname: String,
    reason: Option<String>,
}

async fn list_dev_hosts(State(s): S) -> Answer {
    let hosts: Vec<Value> = hosts::list(&s)
        .await?
        .into_iter()
        .map(|h| json!({"hostname": h}))
        .collect();
    ok(json!({ "hosts": hosts }))
}

async fn create_dev_host(State(s): S, ctx: Ctx, Body(b): Body<HostBody>) -> Answer {
    let why = reason(b.reason, false)?;
    let h = hosts::create(&s, &b.hostname, ctx.actor(why)).await?;
    created(json!({"hostname": h}))
}

async fn delete_dev_host(
    State(s): S,
    ctx: Ctx,
    PathParam(host): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Answer {
    let why = reason(q.reason, false)?;
    hosts::delete(&s, &host, ctx.actor(why)).await?;
    ok(json!({"deleted": host}))
}

/// A device team.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamBody {
    hostname: String,
    team_assignment: String,
    reason: Option<String>,
}

/// A team change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamUpdate {
    team_assignment: String,
    reason: Option<String>,
}

async fn list_teams(State(s): S) -> Answer {
    let teams: Vec<Value> = teams::list(&s)
        .await?
        .into_iter()
        .map(|(h, t)| json!({"hostname": h, "team_assignment": t}))
        .collect();
    ok(json!({ "teams": teams }))
}

async fn create_team(State(s): S, ctx: Ctx, Body(b): Body<TeamBody>) -> Answer {
    let why = reason(b.reason, false)?;
    let t = teams::put(&s, &b.hostname, &b.team_assignment, true, ctx.actor(why)).await?;
    created(json!({"hostname": b.hostname.trim(), "team_assignment": t}))
}

async fn update_team(
    State(s): S,
    ctx: Ctx,
    PathParam(host): PathParam<String>,
    Body(b): Body<TeamUpdate>,
) -> Answer {
    let why = reason(b.reason, false)?;
    let t = teams::put(&s, &host, &b.team_assignment, false, ctx.actor(why)).await?;
    ok(json!({"hostname": host, "team_assignment": t}))
}

async fn delete_team(
    State(s): S,
    ctx: Ctx,
    PathParam(host): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Answer {
    let why = reason(q.reason, false)?;
    teams::delete(&s, &host, ctx.actor(why)).await?;
    ok(json!({"deleted": host}))
}

// === hot settings ===

async fn list_config(State(s): S) -> Answer {
    let (version, settings) = settings::list(&s).await?;
    ok(json!({"version": version, "settings": settings}))
}

async fn get_config(State(s): S, PathParam(key): PathParam<String>) -> Answer {
    ok(settings::get(&s, &key).await?)
}

/// A new value for a hot setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: Value,
    reason: Option<String>,
}

async fn put_config(
    State(s): S,
    ctx: Ctx,
    PathParam(key): PathParam<String>,
    Body(b): Body<PutBody>,
) -> Answer {
    settings::check_key(&key)?;
    let why = reason(b.reason, true)?;
    let c = settings::set(&s, &key, b.value, ctx.actor(why)).await?;
    ok(json!({"key": key, "old_value": c.old, "new_value": c.new, "version": c.version}))
}

async fn config_versions(State(s): S) -> Answer {
    let (version, applied) = settings::versions(&s).await?;
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
    ok(json!({"version": version, "converged": converged, "consumers": consumers}))
}

// === audit ===

async fn audit_changes(State(s): S, Params(q): Params<AuditQuery>) -> Answer {
    let page = audit::changes(&s, q).await?;
    ok(json!({"logs": page.items, "pagination": audit::pagination(&page)}))
}

async fn audit_events(State(s): S, Params(q): Params<EventQuery>) -> Answer {
    let page = audit::events(&s, q).await?;
    ok(json!({"events": page.items, "pagination": audit::pagination(&page)}))
}

// === dead letters ===

async fn list_dlqs(State(s): S) -> Answer {
    ok(json!({"dlqs": dlq::list(&s).await?}))
}

/// Paging through a DLQ, optionally filtered.
#[derive(Debug, Default, Deserialize)]
struct EntriesQuery {
    after: Option<String>,
    limit: Option<u32>,
    /// The parked letters instead of the DLQ.
    #[serde(default)]
    parked: bool,
    /// Only letters whose last error contains this text.
    error_contains: Option<String>,
    /// Only letters of this source entry.
    source_id: Option<String>,
    /// Only letters that first failed at least this long ago (humantime).
    older_than: Option<String>,
}

async fn dlq_entries(
    State(s): S,
    PathParam(name): PathParam<String>,
    Params(q): Params<EntriesQuery>,
) -> Answer {
    let g = dlq::group(&name)?;
    let shelf = if q.parked {
        Shelf::Parked
    } else {
        Shelf::Active
    };
    let filter = Filter::of_query(q.error_contains, q.source_id, q.older_than.as_deref())?;
    let (entries, next) = dlq::page(&s, g, shelf, q.after.as_deref(), q.limit, &filter).await?;
    ok(json!({"entries": entries, "next": next}))
}

async fn dlq_replay(
    State(s): S,
    ctx: Ctx,
    PathParam(name): PathParam<String>,
    Body(sel): Body<Selection>,
) -> Answer {
    let g = dlq::group(&name)?;
    // A dry run changes nothing and is not audited: it needs no reason.
    let why = reason(sel.reason.clone(), !sel.dry_run)?;
    if sel.dry_run {
        return ok(dlq::dry_run(&s, g, &sel).await?);
    }
    let replayed = dlq::replay(&s, g, &sel, ctx.actor(why)).await?;
    ok(json!({"replayed": replayed.len(), "ids": replayed}))
}

async fn dlq_purge(
    State(s): S,
    ctx: Ctx,
    PathParam(name): PathParam<String>,
    Body(sel): Body<Selection>,
) -> Answer {
    let g = dlq::group(&name)?;
    let why = reason(sel.reason.clone(), !sel.dry_run)?;
    if sel.dry_run {
        return ok(dlq::dry_run(&s, g, &sel).await?);
    }
    ok(json!({"purged": dlq::purge(&s, g, &sel, ctx.actor(why)).await?}))
}

async fn dlq_purge_one(
    State(s): S,
    ctx: Ctx,
    PathParam((name, id)): PathParam<(String, String)>,
    Params(q): Params<ReasonQuery>,
) -> Answer {
    let g = dlq::group(&name)?;
    dlq::check_id(&id)?;
    let why = reason(q.reason, true)?;
    dlq::purge_one(&s, g, &id, ctx.actor(why)).await?;
    ok(json!({"purged": 1}))
}

// === API keys ===

/// A new key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    scopes: Vec<String>,
    reason: Option<String>,
}

/// A rotation of a key: a new key now; the old ones stay valid for the overlap.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// Overlap, humantime (default 1h).
    overlap: Option<String>,
    reason: Option<String>,
}

async fn list_keys(State(s): S) -> Answer {
    ok(json!({"keys": keys::list(&s).await?}))
}

async fn create_key(State(s): S, ctx: Ctx, Body(b): Body<KeyBody>) -> Answer {
    keys::check_name(&b.name)?;
    let why = reason(b.reason, false)?;
    let issued = keys::create(&s, &b.name, &b.scopes, ctx.actor(why)).await?;
    // The key itself is shown once, here, and stored nowhere.
    created(json!({"name": b.name, "scopes": issued.scopes, "key": issued.key}))
}

async fn rotate_key(
    State(s): S,
    ctx: Ctx,
    PathParam(name): PathParam<String>,
    Body(b): Body<RotateBody>,
) -> Answer {
    keys::check_name(&name)?;
    let why = reason(b.reason, true)?;
    let issued = keys::rotate(&s, &name, b.overlap.as_deref(), ctx.actor(why)).await?;
    let until = issued
        .previous_expire_at
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    created(json!({
        "name": name, "scopes": issued.scopes, "key": issued.key,
        "previous_keys_expire_at": until,
    }))
}

async fn revoke_key(
    State(s): S,
    ctx: Ctx,
    PathParam(name): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Answer {
    keys::check_name(&name)?;
    let why = reason(q.reason, false)?;
    keys::revoke(&s, &name, ctx.actor(why)).await?;
    ok(json!({"revoked": name}))
}

// === secrets, SLOs ===

async fn list_secrets(State(s): S) -> Answer {
    ok(json!({"secrets": secrets::list(&s).await?}))
}

async fn rotate_secret(
    State(s): S,
    ctx: Ctx,
    PathParam(name): PathParam<String>,
    body: Bytes,
) -> Answer {
    // The body is parsed by the service, by hand, never echoing a value.
    ok(secrets::rotate(&s, &name, &body, |why| ctx.actor(Some(why)), &ctx.cid).await?)
}

async fn slo_status(State(s): S) -> Answer {
    ok(json!({
        "window": mutt_telemetry::slo::BUDGET_WINDOW,
        "evaluated_at": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "slos": slo::evaluate(&s).await?,
    }))
}

async fn retention_status(State(s): S) -> Answer {
    ok(retention::status(&s).await?)
}
