//! Rules, development hosts, device teams, and the two audit queries.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use mutt_bus::control::Announcement;
use mutt_core::rules::{MatchType, Rule};
use mutt_store::control::{Actor, AuditFilter, EventFilter, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Ctx, Paging, Params, PathParam, reason, time_param};
use super::{ControlState, created, ok, store_error};
use crate::http::ApiError;

fn actor(ctx: &Ctx, reason: Option<String>) -> Actor {
    Actor {
        who: ctx.caller.name.clone(),
        reason,
        correlation_id: ctx.cid.clone(),
    }
}

/// A rule as a client sends it (every field optional: creation fills defaults, an update
/// keeps what is not given).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleBody {
    #[serde(default, deserialize_with = "present")]
    match_string: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    trap_oid: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    syslog_severity: Option<Option<Value>>,
    match_type: Option<String>,
    priority: Option<i32>,
    prod_handling: Option<String>,
    dev_handling: Option<String>,
    team_assignment: Option<String>,
    is_active: Option<bool>,
    reason: Option<String>,
}

/// Tells "absent" (None: keep) from "null" (Some(None): clear).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn bad(field: &str, message: impl Into<String>, cid: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid",
        format!("{field}: {}", message.into()),
        cid,
    )
    .details(json!({"field": field}))
}

impl RuleBody {
    /// Applies the body to `base` (a new rule's defaults, or the stored rule).
    pub(super) fn apply(
        self,
        mut base: Rule,
        cid: &str,
    ) -> Result<(Rule, Option<String>), ApiError> {
        if let Some(v) = self.match_string {
            base.match_string = v;
        }
        if let Some(v) = self.trap_oid {
            base.trap_oid = v;
        }
        if let Some(v) = self.syslog_severity {
            base.syslog_severity = match v {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(
                    n.as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .ok_or_else(|| bad("syslog_severity", "not an integer from 0 to 7", cid))?,
                ),
                Some(Value::String(s)) => Some(
                    mutt_core::severity::SyslogSeverity::parse(&s)
                        .ok_or_else(|| {
                            bad(
                                "syslog_severity",
                                format!("{s:?} is neither 0–7 nor a syslog name"),
                                cid,
                            )
                        })?
                        .number()
                        .into(),
                ),
                Some(_) => return Err(bad("syslog_severity", "a number or a syslog name", cid)),
            };
        }
        if let Some(v) = self.match_type {
            base.match_type = v
                .parse::<MatchType>()
                .map_err(|e| bad("match_type", e.message, cid))?;
        }
        if let Some(v) = self.priority {
            base.priority = v;
        }
        if let Some(v) = self.prod_handling {
            base.prod_handling = v;
        }
        if let Some(v) = self.dev_handling {
            base.dev_handling = v;
        }
        if let Some(v) = self.team_assignment {
            base.team_assignment = v;
        }
        if let Some(v) = self.is_active {
            base.is_active = v;
        }
        if let Some(s) = &base.match_string
            && s.chars().count() > 1000
        {
            return Err(bad("match_string", "at most 1000 characters", cid));
        }
        base.validate().map_err(|e| bad(e.field, e.message, cid))?;
        let r = reason(self.reason, false, cid)?;
        Ok((base, r))
    }
}

/// The defaults of a new rule (MUTT v2's).
pub(super) fn new_rule() -> Rule {
    Rule {
        id: 0,
        match_string: None,
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 100,
        prod_handling: String::new(),
        dev_handling: String::new(),
        team_assignment: String::new(),
        is_active: true,
    }
}

/// Parses a numeric path id.
pub(super) fn rule_id(raw: &str, cid: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("id: {raw:?} is not a rule id"),
            cid,
        )
    })
}

fn rule_not_found(id: i32, cid: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no rule {id}"),
        cid,
    )
}

pub(super) async fn list_rules(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let rules = s
        .store
        .list_rules()
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    Ok(ok(json!({ "rules": rules })))
}

pub(super) async fn get_rule(
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
        None => Err(rule_not_found(id, &ctx.cid)),
    }
}

pub(super) async fn create_rule(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Body(body): Body<RuleBody>,
) -> Result<Response, ApiError> {
    let (rule, why) = body.apply(new_rule(), &ctx.cid)?;
    let stored = s
        .store
        .create_rule(&rule, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    s.announce(Announcement::Rules).await;
    Ok(created(json!(stored)))
}

pub(super) async fn update_rule(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
    Body(body): Body<RuleBody>,
) -> Result<Response, ApiError> {
    let id = rule_id(&id, &ctx.cid)?;
    let current = s
        .store
        .get_rule(id)
        .await
        .map_err(|e| store_error(e, &ctx.cid))?
        .ok_or_else(|| rule_not_found(id, &ctx.cid))?;
    let (rule, why) = body.apply(current.rule, &ctx.cid)?;
    let stored = s
        .store
        .update_rule(id, &rule, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?
        .ok_or_else(|| rule_not_found(id, &ctx.cid))?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!(stored)))
}

/// An optional reason, in the query string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ReasonQuery {
    reason: Option<String>,
}

impl ReasonQuery {
    /// The reason given.
    pub(super) fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

pub(super) async fn delete_rule(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(id): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Result<Response, ApiError> {
    let id = rule_id(&id, &ctx.cid)?;
    let why = reason(q.reason, false, &ctx.cid)?;
    let old = s
        .store
        .delete_rule(id, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?
        .ok_or_else(|| rule_not_found(id, &ctx.cid))?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({ "deleted": old })))
}

pub(super) fn check_host(h: &str, cid: &str) -> Result<(), ApiError> {
    if h.trim().is_empty() || h.len() > 255 || h.chars().any(char::is_control) {
        return Err(bad(
            "hostname",
            "1–255 characters without control characters",
            cid,
        ));
    }
    Ok(())
}

pub(super) fn check_team(t: &str, cid: &str) -> Result<(), ApiError> {
    if t.trim().is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
        return Err(bad(
            "team_assignment",
            "1–100 characters without control characters",
            cid,
        ));
    }
    Ok(())
}

fn outcome(o: Outcome, what: &str, cid: &str) -> Result<(), ApiError> {
    match o {
        Outcome::Done => Ok(()),
        Outcome::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
            cid,
        )),
        Outcome::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the {what} exists already"),
            cid,
        )),
    }
}

/// A development host.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HostBody {
    hostname: String,
    reason: Option<String>,
}

pub(super) async fn list_dev_hosts(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let hosts = s
        .store
        .list_dev_hosts()
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    let hosts: Vec<Value> = hosts.into_iter().map(|h| json!({"hostname": h})).collect();
    Ok(ok(json!({ "hosts": hosts })))
}

pub(super) async fn create_dev_host(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Body(b): Body<HostBody>,
) -> Result<Response, ApiError> {
    check_host(&b.hostname, &ctx.cid)?;
    let why = reason(b.reason, false, &ctx.cid)?;
    let o = s
        .store
        .create_dev_host(b.hostname.trim(), &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "development host", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(created(json!({"hostname": b.hostname.trim()})))
}

pub(super) async fn delete_dev_host(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(host): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Result<Response, ApiError> {
    check_host(&host, &ctx.cid)?;
    let why = reason(q.reason, false, &ctx.cid)?;
    let o = s
        .store
        .delete_dev_host(&host, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "development host", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({"deleted": host})))
}

/// A device team.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamBody {
    hostname: String,
    team_assignment: String,
    reason: Option<String>,
}

/// A team change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamUpdate {
    team_assignment: String,
    reason: Option<String>,
}

pub(super) async fn list_teams(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let teams = s
        .store
        .list_teams()
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    let teams: Vec<Value> = teams
        .into_iter()
        .map(|(h, t)| json!({"hostname": h, "team_assignment": t}))
        .collect();
    Ok(ok(json!({ "teams": teams })))
}

pub(super) async fn create_team(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Body(b): Body<TeamBody>,
) -> Result<Response, ApiError> {
    check_host(&b.hostname, &ctx.cid)?;
    check_team(&b.team_assignment, &ctx.cid)?;
    let why = reason(b.reason, false, &ctx.cid)?;
    let (h, t) = (b.hostname.trim(), b.team_assignment.trim());
    let o = s
        .store
        .put_team(h, t, true, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "device team", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(created(json!({"hostname": h, "team_assignment": t})))
}

pub(super) async fn update_team(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(host): PathParam<String>,
    Body(b): Body<TeamUpdate>,
) -> Result<Response, ApiError> {
    check_host(&host, &ctx.cid)?;
    check_team(&b.team_assignment, &ctx.cid)?;
    let why = reason(b.reason, false, &ctx.cid)?;
    let t = b.team_assignment.trim();
    let o = s
        .store
        .put_team(&host, t, false, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "device team", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({"hostname": host, "team_assignment": t})))
}

pub(super) async fn delete_team(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    PathParam(host): PathParam<String>,
    Params(q): Params<ReasonQuery>,
) -> Result<Response, ApiError> {
    check_host(&host, &ctx.cid)?;
    let why = reason(q.reason, false, &ctx.cid)?;
    let o = s
        .store
        .delete_team(&host, &actor(&ctx, why))
        .await
        .map_err(|e| store_error(e, &ctx.cid))?;
    outcome(o, "device team", &ctx.cid)?;
    s.announce(Announcement::Rules).await;
    Ok(ok(json!({"deleted": host})))
}

/// Filters of `GET /audit`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditQuery {
    changed_by: Option<String>,
    operation: Option<String>,
    table_name: Option<String>,
    record_id: Option<i32>,
    record_key: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<u32>,
    limit: Option<u32>,
}

const OPERATIONS: &[&str] = &[
    "CREATE", "UPDATE", "DELETE", "REPLAY", "PURGE", "ROTATE", "REVOKE", "EXPIRE",
];

pub(super) async fn audit_page(
    s: &ControlState,
    q: AuditQuery,
    cid: &str,
) -> Result<Value, ApiError> {
    let paging = Paging::new(q.page, q.limit, cid)?;
    if let Some(op) = &q.operation
        && !OPERATIONS.contains(&op.as_str())
    {
        return Err(bad(
            "operation",
            format!("one of {}", OPERATIONS.join(", ")),
            cid,
        ));
    }
    let filter = AuditFilter {
        changed_by: q.changed_by,
        operation: q.operation,
        table_name: q.table_name,
        record_id: q.record_id,
        record_key: q.record_key,
        start: time_param(&q.start_date, "start_date", cid)?,
        end: time_param(&q.end_date, "end_date", cid)?,
    };
    let page = s
        .store
        .query_audit(&filter, paging.page, paging.limit)
        .await
        .map_err(|e| store_error(e, cid))?;
    let pages = (page.total + i64::from(page.limit) - 1) / i64::from(page.limit);
    Ok(json!({
        "logs": page.items,
        "pagination": {"page": page.page, "limit": page.limit, "total": page.total, "pages": pages},
    }))
}

pub(super) async fn audit(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Params(q): Params<AuditQuery>,
) -> Result<Response, ApiError> {
    Ok(ok(audit_page(&s, q, &ctx.cid).await?))
}

/// Filters of `GET /events`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct EventQuery {
    hostname: Option<String>,
    rule_id: Option<i32>,
    event_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<u32>,
    limit: Option<u32>,
}

pub(super) async fn events_page(
    s: &ControlState,
    q: EventQuery,
    cid: &str,
) -> Result<(Value, Value), ApiError> {
    let paging = Paging::new(q.page, q.limit, cid)?;
    let filter = EventFilter {
        hostname: q.hostname,
        rule_id: q.rule_id,
        event_id: q.event_id,
        start: time_param(&q.start_date, "start_date", cid)?,
        end: time_param(&q.end_date, "end_date", cid)?,
    };
    let page = s
        .store
        .query_events(&filter, paging.page, paging.limit)
        .await
        .map_err(|e| store_error(e, cid))?;
    let pages = (page.total + i64::from(page.limit) - 1) / i64::from(page.limit);
    Ok((
        json!(page.items),
        json!({"page": page.page, "limit": page.limit, "total": page.total, "pages": pages}),
    ))
}

pub(super) async fn events(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
    Params(q): Params<EventQuery>,
) -> Result<Response, ApiError> {
    let (items, pagination) = events_page(&s, q, &ctx.cid).await?;
    Ok(ok(json!({"events": items, "pagination": pagination})))
}
