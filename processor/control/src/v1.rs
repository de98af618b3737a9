//! `/api/v1`: MUTT v1's paths and response shapes, for existing scripts and dashboards,
//! over the same services as v2 (only the shapes and messages differ). Every answer
//! carries `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and a `Link` to the v2
//! documentation; endpoints v2 dropped answer 410 with their replacement.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ControlState;
use super::extract::{Body, Ctx, Params, PathParam, reason};
use super::service::audit::{self, AuditQuery, EventQuery};
use super::service::rules::{self, RuleBody, rule_id};
use super::service::{Refused, hosts, settings, teams};
use super::v2::ReasonQuery;
use super::versions::{self, DEPRECATED_AT, REMOVED, SUNSET};
use mutt_worker::http::ApiError;

type Answer = Result<Response, ApiError>;
type S = State<Arc<ControlState>>;

fn created(body: Value) -> Answer {
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

fn ok(body: Value) -> Answer {
    Ok(axum::Json(body).into_response())
}

/// v1's wording of a missing or existing record (`Rule not found`, `Host already exists`).
fn v1_words(what: &'static str) -> impl FnOnce(Refused) -> Refused {
    move |r| match r {
        Refused::NotFound(_) => Refused::NotFound(format!("{what} not found")),
        Refused::Conflict {
            code: "conflict", ..
        } => Refused::conflict(format!("{what} already exists")),
        other => other,
    }
}

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
        .route("/audit", get(audit_changes))
        .route("/audit-logs", get(audit_logs))
        .route("/metrics", get(gone))
        .route("/config/history", get(gone))
        .route("/slo", get(gone))
        .layer(middleware::from_fn(deprecation))
}

async fn gone(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> Response {
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
    )
    .details(json!({"replacement": instead}))
    .into_response()
}

async fn version() -> Answer {
    ok(versions::v1())
}

async fn list_rules(State(s): S) -> Answer {
    ok(json!({"rules": rules::list(&s).await?}))
}

async fn get_rule(State(s): S, PathParam(id): PathParam<String>) -> Answer {
    let id = rule_id(&id)?;
    ok(json!(rules::get(&s, id).await.map_err(v1_words("Rule"))?))
}

async fn create_rule(State(s): S, ctx: Ctx, Body(b): Body<RuleBody>) -> Answer {
    let stored = rules::create(&s, b, |why| ctx.actor(why)).await?;
    created(json!({"id": stored.rule.id, "message": "Rule created successfully"}))
}

async fn update_rule(
    State(s): S,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
    Body(b): Body<RuleBody>,
) -> Answer {
    let id = rule_id(&id)?;
    rules::update(&s, id, b, |why| ctx.actor(why))
        .await
        .map_err(v1_words("Rule"))?;
    ok(json!({"message": "Rule updated successfully"}))
}

async fn delete_rule(
    State(s): S,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Answer {
    let id = rule_id(&id)?;
    let why = reason(q.reason, false)?;
    rules::delete(&s, id, ctx.actor(why))
        .await
        .map_err(v1_words("Rule"))?;
    ok(json!({"message": "Rule deleted successfully"}))
}

async fn list_dev_hosts(State(s): S) -> Answer {
    let hosts: Vec<Value> = hosts::list(&s)
        .await?
        .into_iter()
        .map(|h| json!({"hostname": h}))
        .collect();
    ok(json!({"hosts": hosts}))
}

#[derive(Debug, Deserialize)]
struct V1Host {
    hostname: String,
    reason: Option<String>,
}

async fn create_dev_host(State(s): S, ctx: Ctx, Body(b): Body<V1Host>) -> Answer {
    let why = reason(b.reason, false)?;
    let h = hosts::create(&s, &b.hostname, ctx.actor(why))
        .await
        .map_err(v1_words("Host"))?;
    created(json!({"message": "Host added", "hostname": h}))
}

async fn delete_dev_host(State(s): S, ctx: Ctx, PathParam(h): PathParam<String>) -> Answer {
    hosts::delete(&s, &h, ctx.actor(None))
        .await
        .map_err(v1_words("Host"))?;
    ok(json!({"message": "Host removed"}))
}

async fn list_teams(State(s): S) -> Answer {
    let teams: Vec<Value> = teams::list(&s)
        .await?
        .into_iter()
        .map(|(h, t)| json!({"hostname": h, "team_assignment": t}))
        .collect();
    ok(json!({"teams": teams}))
}

#[derive(Debug, Deserialize)]
struct V1Team {
    hostname: String,
    team_assignment: String,
}

async fn create_team(State(s): S, ctx: Ctx, Body(b): Body<V1Team>) -> Answer {
    teams::put(&s, &b.hostname, &b.team_assignment, true, ctx.actor(None))
        .await
        .map_err(v1_words("Team mapping"))?;
    created(json!({"message": "Team mapping added"}))
}

#[derive(Debug, Deserialize)]
struct V1TeamUpdate {
    team_assignment: String,
}

async fn update_team(
    State(s): S,
    ctx: Ctx,
    PathParam(h): PathParam<String>,
    Body(b): Body<V1TeamUpdate>,
) -> Answer {
    teams::put(&s, &h, &b.team_assignment, false, ctx.actor(None))
        .await
        .map_err(v1_words("Team mapping"))?;
    ok(json!({"message": "Team mapping updated"}))
}

async fn delete_team(State(s): S, ctx: Ctx, PathParam(h): PathParam<String>) -> Answer {
    teams::delete(&s, &h, ctx.actor(None))
        .await
        .map_err(v1_words("Team mapping"))?;
    ok(json!({"message": "Team mapping removed"}))
}

async fn get_config(State(s): S) -> Answer {
    let hot = s.hot.borrow().clone();
    ok(json!({"config": hot.values()}))
}

#[derive(Debug, Deserialize)]
struct V1Put {
    value: Option<Value>,
    reason: Option<String>,
}

async fn put_config(
    State(s): S,
    ctx: Ctx,
    PathParam(key): PathParam<String>,
    Body(b): Body<V1Put>,
) -> Answer {
    let Some(value) = b.value else {
        return Err(Refused::bad("value: required").into());
    };
    // v1 made the reason optional; the audit trail still says where the change came from.
    let why = reason(b.reason, false)?.or_else(|| Some("(v1 request without a reason)".into()));
    let c = settings::set(&s, &key, value, ctx.actor(why)).await?;
    ok(json!({"key": key, "old_value": c.old, "new_value": c.new}))
}

async fn audit_changes(State(s): S, Params(q): Params<AuditQuery>) -> Answer {
    let page = audit::changes(&s, q).await?;
    ok(json!({"logs": page.items, "pagination": audit::pagination(&page)}))
}

async fn audit_logs(State(s): S, Params(q): Params<EventQuery>) -> Answer {
    let page = audit::events(&s, q).await?;
    ok(json!({"logs": page.items, "pagination": audit::pagination(&page)}))
}
