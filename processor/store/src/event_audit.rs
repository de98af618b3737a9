//! `event_audit_log`: one row per decision of the alerters (each handled event, each
//! meta-alert). The writer is idempotent by event id; the query serves the events API.

use serde::Serialize;
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;

use crate::db::Store;
use crate::error::StoreError;
use crate::page::{Page, paginate};

/// One decision to audit.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// The idempotency key: the event id, or the meta-alert id.
    pub event_id: String,
    /// The event's own time (the partition key).
    pub event_timestamp: OffsetDateTime,
    /// The event's host.
    pub hostname: String,
    /// The rule that matched (none for a meta-alert).
    pub matched_rule_id: Option<i32>,
    /// The handling applied (`Page_and_ticket`, `Ignore`, …, or `unhandled_meta_alert`).
    pub handling_decision: String,
    /// Whether an alert went to the alerts stream for the webhook.
    pub forwarded: bool,
    /// The whole event as JSON text.
    pub raw_message: String,
    /// The request's correlation id.
    pub correlation_id: String,
    /// The team of the alert.
    pub team_assignment: String,
}

impl Store {
    /// Writes a batch of audit rows in one statement. Rows whose event id is already
    /// audited are skipped, so writing a redelivered batch again adds nothing. Returns how
    /// many rows were new.
    pub async fn insert_event_audit(&self, rows: &[AuditRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let n = rows.len();
        let mut ids = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut hosts = Vec::with_capacity(n);
        let mut rule_ids = Vec::with_capacity(n);
        let mut decisions = Vec::with_capacity(n);
        let mut forwarded = Vec::with_capacity(n);
        let mut raws = Vec::with_capacity(n);
        let mut correlations = Vec::with_capacity(n);
        let mut teams = Vec::with_capacity(n);
        for r in rows {
            ids.push(r.event_id.as_str());
            times.push(r.event_timestamp);
            hosts.push(r.hostname.as_str());
            rule_ids.push(r.matched_rule_id);
            decisions.push(r.handling_decision.as_str());
            forwarded.push(r.forwarded);
            raws.push(r.raw_message.as_str());
            correlations.push(r.correlation_id.as_str());
            teams.push(r.team_assignment.as_str());
        }
        let done = sqlx::query(
            "INSERT INTO event_audit_log
                (event_id, event_timestamp, hostname, matched_rule_id, handling_decision,
                 forwarded_to_moog, raw_message, correlation_id, team_assignment)
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::int[], $5::text[],
                                  $6::bool[], $7::text[], $8::text[], $9::text[])
             ON CONFLICT (event_id, event_timestamp) DO NOTHING",
        )
        .bind(&ids)
        .bind(&times)
        .bind(&hosts)
        .bind(&rule_ids)
        .bind(&decisions)
        .bind(&forwarded)
        .bind(&raws)
        .bind(&correlations)
        .bind(&teams)
        .execute(&self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

/// One event audit row, as the query returns it.
#[derive(Debug, Clone, Serialize)]
pub struct EventAuditRow {
    /// Row id.
    pub id: i64,
    /// The event id.
    pub event_id: Option<String>,
    /// The event's time.
    #[serde(with = "time::serde::rfc3339")]
    pub event_timestamp: OffsetDateTime,
    /// Host.
    pub hostname: String,
    /// Rule.
    pub matched_rule_id: Option<i32>,
    /// Handling.
    pub handling_decision: Option<String>,
    /// Forwarded.
    pub forwarded_to_moog: Option<bool>,
    /// Team.
    pub team_assignment: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// The event.
    pub raw_message: Option<Value>,
}

/// A row as stored: `raw_message` is text (MUTT v2 rows may hold text that is not JSON).
#[derive(sqlx::FromRow)]
struct StoredEventRow {
    id: i64,
    event_id: Option<String>,
    event_timestamp: OffsetDateTime,
    hostname: String,
    matched_rule_id: Option<i32>,
    handling_decision: Option<String>,
    forwarded_to_moog: Option<bool>,
    team_assignment: Option<String>,
    correlation_id: Option<String>,
    raw_message: Option<String>,
}

impl From<StoredEventRow> for EventAuditRow {
    fn from(r: StoredEventRow) -> Self {
        Self {
            id: r.id,
            event_id: r.event_id,
            event_timestamp: r.event_timestamp,
            hostname: r.hostname,
            matched_rule_id: r.matched_rule_id,
            handling_decision: r.handling_decision,
            forwarded_to_moog: r.forwarded_to_moog,
            team_assignment: r.team_assignment,
            correlation_id: r.correlation_id,
            // Text that is not JSON is kept as a string.
            raw_message: r
                .raw_message
                .map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))),
        }
    }
}

/// Filters of the event audit query.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Exact host.
    pub hostname: Option<String>,
    /// Exact rule.
    pub rule_id: Option<i32>,
    /// Exact event id.
    pub event_id: Option<String>,
    /// From (inclusive).
    pub start: Option<OffsetDateTime>,
    /// To (exclusive).
    pub end: Option<OffsetDateTime>,
}

impl Store {
    /// The event audit log, newest event first.
    pub async fn query_events(
        &self,
        f: &EventFilter,
        page: u32,
        limit: u32,
    ) -> Result<Page<EventAuditRow>, StoreError> {
        let filters = |q: &mut QueryBuilder<'_, Postgres>| {
            q.push(" WHERE true");
            if let Some(v) = &f.hostname {
                q.push(" AND hostname = ").push_bind(v.clone());
            }
            if let Some(v) = f.rule_id {
                q.push(" AND matched_rule_id = ").push_bind(v);
            }
            if let Some(v) = &f.event_id {
                q.push(" AND event_id = ").push_bind(v.clone());
            }
            if let Some(v) = f.start {
                q.push(" AND event_timestamp >= ").push_bind(v);
            }
            if let Some(v) = f.end {
                q.push(" AND event_timestamp < ").push_bind(v);
            }
        };
        let mut count = QueryBuilder::new("SELECT count(*) FROM event_audit_log");
        filters(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool()).await?;
        let mut q = QueryBuilder::new(
            "SELECT id, event_id, event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog,
                    team_assignment, correlation_id, raw_message FROM event_audit_log",
        );
        filters(&mut q);
        q.push(" ORDER BY event_timestamp DESC, id DESC");
        paginate(&mut q, page, limit);
        let rows: Vec<StoredEventRow> = q.build_query_as().fetch_all(&self.pool()).await?;
        Ok(Page {
            items: rows.into_iter().map(Into::into).collect(),
            page,
            limit,
            total,
        })
    }
}
