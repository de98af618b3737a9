//! `/api/v1`: MUTT v1's paths and response shapes, for existing scripts and dashboards.
//! Every answer carries `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and a `Link` to the
//! v2 documentation; endpoints v2 dropped answer 410 with their replacement.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use mutt_bus::control::Announcement;
use mutt_store::control::{Actor, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config;
use super::extract::{Body, Ctx, Params, PathParam, reason};
use super::records::{
    self, AuditQuery, EventQuery, ReasonQuery, RuleBody, check_host, check_team, new_rule, rule_id,
};
use super::{ControlState, created, ok, store_error};
use crate::http::ApiError;

/// When v1 was deprecated: 2026-11-01T00:00:00Z (RFC 9745 wants a Unix time).
pub(super) const DEPRECATED_AT: i64 = 1_793_491_200;
/// The same, for humans.
pub(super) const DEPRECATED_AT_RFC3339: &str = "2026-11-01T00:00:00Z";
/// When v1 goes away.
pub(super) const SUNSET: &str = "Wed, 30 Jun 2027 23:59:59 GMT";
/// The same, for humans.
pub(super) const SUNSET_RFC3339: &str = "2027-06-30T23:59:59Z";
/// v1 endpoints that v2 removed, with their replacement.
pub(super) const REMOVED: &[(&str, &str)] = &[
    ("/api/v1/metrics", "/metrics on the ops listener"),
    (
        "/api/v1/config/history",
        "/api/v2/audit?table_name=dynamic_config",
    ),
    (
        "/api/v1/slo",
        "/api/v2/slo (one shape for every objective, with burn rates)",
    ),
];

async fn deprecation(req: axum::extract::Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("@{DEPRECATED_AT}")) {
        h.insert("deprecation", v);
    }
    h.insert("sunset", HeaderValue::from_static(SUNSET));
    h.insert(
        header::LINK,
        HeaderValue::from_static("</api/v2/openapi.yaml>; rel=\"deprecation\"; type=\"application/yaml\", </api/v2>; rel=\"successor-version\""),
    );
    resp
}

pub(super) fn router() -> Router<Arc<ControlState>> {
    Router::new()
        .route("/version", get(version))
        .route("/rules", get(list_rules).post(create_rule))
        .route(
            "/rules/{id}",
            get(get_rule).put(update_rule).delete(delete_rule),
        )
        .route("/dev-hosts", get(list_dev_hosts).post(create_dev_host))
        .route("/dev-hosts/{hostname}", delete(delete_dev_host))
        .route("/teams", get(list_teams).post(create_team))
        .route("/teams/{hostname}", put(update_team).delete(delete_team))
        .route("/config", get(get_config))
        .route("/config/{key}", put(put_config))
        .route("/audit", get(audit))
        .route("/audit-logs", get(audit_logs))
        .route("/metrics", get(gone))
        .route("/config/history", get(gone))
        .route("/slo", get(gone))
        .layer(middleware::from_fn(deprecation))
}

async fn gone(ctx: Ctx, axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> Response {
    // The original URI: inside the nested router the path has lost its /api/v1 prefix.
    let path = uri.path().to_string();
    let instead = REMOVED
        .iter()
        .find(|(p, _)| *p == path)
        .map_or("/api/v2", |(_, i)| i);
    ApiError::new(
        StatusCode::GONE,
        "gone",
        format!("{path} was removed in v2; use {instead}"),
        &ctx.cid,
    )
    .details(json!({"replacement": instead}))
    .into_response()
}

async fn version() -> Response {
    ok(json!({
        "current_version": "2.0",
        "default_version": "2.0",
        "supported_versions": ["2.0", "1.0"],
        "deprecated_versions": ["1.0"],
        "sunset": SUNSET_RFC3339,
    }))
}

fn actor(ctx: &Ctx, reason: Option<String>) -> Actor {
    Actor {
        who: ctx.caller.name.clone(),
        reason,
        correlation_id: ctx.cid.clone(),
    }
}

async fn list_rules(State(s): State<Arc<ControlState>>, ctx: Ctx) -> Result<Response, ApiError> {
    let rules = s
        .store
        .list_rules()
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    Ok(ok(json!({"rules": rules})))
}

async fn get_rule(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    let id = rule_id(&id, &ctx.cid)?;
    match s
        .store
        .get_rule(id)
        .await
        .map_err(|e| store_error(e, &ctx.cid))?
    {
        Some(r) => Ok(ok(json!(r))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Rule not found",
            &ctx.cid,
        )),
    }
}

async fn create_rule(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Body(b): Body<RuleBody>,
) -> Result<Response, ApiError> {
    let (rule, why) = b.apply(new_rule(), &ctx.cid)?;
    let stored = s
        .store
        .create_rule(&rule, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    s.announce(Announcement::Rules).await;
    Ok(created(
        json!({"id": stored.rule.id, "message": "Rule created successfully"}),
    ))
}

async fn update_rule(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
    Body(b): Body<RuleBody>,
) -> Result<Response, ApiError> {
    let id = rule_id(&id, &ctx.cid)?;
    let nf = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Rule not found",
            &ctx.cid,
        )
    };
    let current = s
        .store
        .get_rule(id)
        .await
        .map_err(|e| store_error(e, &ctx.cid))?
        .ok_or_else(nf)?;
    let (rule, why) = b.apply(current.rule, &ctx.cid)?;
    s.store
        .update_rule(id, &rule, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?
        .ok_or_else(nf)?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({"message": "Rule updated successfully"})))
}

async fn delete_rule(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Result<Response, ApiError> {
    let id = rule_id(&id, &ctx.cid)?;
    let why = reason(q.reason().map(str::to_string), false, &ctx.cid)?;
    s.store
        .delete_rule(id, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Rule not found",
                &ctx.cid,
            )
        })?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({"message": "Rule deleted successfully"})))
}

fn outcome(o: Outcome, what: &str, cid: &str) -> Result<(), ApiError> {
    match o {
        Outcome::Done => Ok(()),
        Outcome::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
            cid,
        )),
        Outcome::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{what} already exists"),
            cid,
        )),
    }
}

async fn list_dev_hosts(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let hosts = s
        .store
        .list_dev_hosts()
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    Ok(ok(
        json!({"hosts": hosts.into_iter().map(|h| json!({"hostname": h})).collect::<Vec<_>>()}),
    ))
}

#[derive(Debug, Deserialize)]
struct V1Host {
    hostname: String,
    reason: Option<String>,
}

async fn create_dev_host(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Body(b): Body<V1Host>,
) -> Result<Response, ApiError> {
    check_host(&b.hostname, &ctx.cid)?;
    let why = reason(b.reason, false, &ctx.cid)?;
    let o = s
        .store
        .create_dev_host(b.hostname.trim(), &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "Host", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(created(
        json!({"message": "Host added", "hostname": b.hostname.trim()}),
    ))
}

async fn delete_dev_host(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(h): PathParam<String>,
) -> Result<Response, ApiError> {
    check_host(&h, &ctx.cid)?;
    let o = s
        .store
        .delete_dev_host(&h, &actor(&ctx, None))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "Host", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({"message": "Host removed"})))
}

async fn list_teams(State(s): State<Arc<ControlState>>, ctx: Ctx) -> Result<Response, ApiError> {
    let teams = s
        .store
        .list_teams()
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    let teams: Vec<Value> = teams
        .into_iter()
        .map(|(h, t)| json!({"hostname": h, "team_assignment": t}))
        .collect();
    Ok(ok(json!({"teams": teams})))
}

#[derive(Debug, Deserialize)]
struct V1Team {
    hostname: String,
    team_assignment: String,
}

async fn create_team(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Body(b): Body<V1Team>,
) -> Result<Response, ApiError> {
    check_host(&b.hostname, &ctx.cid)?;
    check_team(&b.team_assignment, &ctx.cid)?;
    let o = s
        .store
        .put_team(
            b.hostname.trim(),
            b.team_assignment.trim(),
            true,
            &actor(&ctx, None),
        )
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "Team mapping", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(created(json!({"message": "Team mapping added"})))
}

#[derive(Debug, Deserialize)]
struct V1TeamUpdate {
    team_assignment: String,
}

async fn update_team(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(h): PathParam<String>,
    Body(b): Body<V1TeamUpdate>,
) -> Result<Response, ApiError> {
    check_host(&h, &ctx.cid)?;
    check_team(&b.team_assignment, &ctx.cid)?;
    let o = s
        .store
        .put_team(&h, b.team_assignment.trim(), false, &actor(&ctx, None))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "Team mapping", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({"message": "Team mapping updated"})))
}

async fn delete_team(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(h): PathParam<String>,
) -> Result<Response, ApiError> {
    check_host(&h, &ctx.cid)?;
    let o = s
        .store
        .delete_team(&h, &actor(&ctx, None))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "Team mapping", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({"message": "Team mapping removed"})))
}

async fn get_config(State(s): State<Arc<ControlState>>) -> Response {
    let hot = s.hot.borrow().clone();
    ok(json!({"config": hot.values()}))
}

#[derive(Debug, Deserialize)]
struct V1Put {
    value: Option<Value>,
    reason: Option<String>,
}

async fn put_config(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(key): PathParam<String>,
    Body(b): Body<V1Put>,
) -> Result<Response, ApiError> {
    let Some(value) = b.value else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "value: required",
            &ctx.cid,
        ));
    };
    // v1 made the reason optional; the audit trail still says where the change came from.
    let why =
        reason(b.reason, false, &ctx.cid)?.or_else(|| Some("(v1 request without a reason)".into()));
    let (old, new, _) = config::set(&s, &ctx, &key, value, why).await?;
    Ok(ok(json!({"key": key, "old_value": old, "new_value": new})))
}

async fn audit(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Params(q): Params<AuditQuery>,
) -> Result<Response, ApiError> {
    Ok(ok(records::audit_page(&s, q, &ctx.cid).await?))
}

async fn audit_logs(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Params(q): Params<EventQuery>,
) -> Result<Response, ApiError> {
    let (items, pagination) = records::events_page(&s, q, &ctx.cid).await?;
    Ok(ok(json!({"logs": items, "pagination": pagination})))
}
