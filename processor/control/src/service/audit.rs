//! The two audit trails, queried: config changes (who, what, when, why) and the event
//! decisions of the alerters.

use mutt_store::Page;
use mutt_store::config_audit::{AuditFilter, AuditLogRow};
use mutt_store::event_audit::{EventAuditRow, EventFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Refused;
use crate::ControlState;
use crate::extract::{Paging, time_param};

/// Filters of `GET /audit`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
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
    "CREATE", "UPDATE", "DELETE", "REPLAY", "PURGE", "ROTATE", "REVOKE", "EXPIRE", "RETAIN", "PARK",
];

/// A page of the config audit trail, newest first.
pub async fn changes(s: &ControlState, q: AuditQuery) -> Result<Page<AuditLogRow>, Refused> {
    let paging = Paging::new(q.page, q.limit)?;
    if let Some(op) = &q.operation
        && !OPERATIONS.contains(&op.as_str())
    {
        return Err(Refused::invalid(
            "operation",
            format!("one of {}", OPERATIONS.join(", ")),
        ));
    }
    let filter = AuditFilter {
        changed_by: q.changed_by,
        operation: q.operation,
        table_name: q.table_name,
        record_id: q.record_id,
        record_key: q.record_key,
        start: time_param(&q.start_date, "start_date")?,
        end: time_param(&q.end_date, "end_date")?,
    };
    Ok(s.store
        .query_audit(&filter, paging.page, paging.limit)
        .await?)
}

/// Filters of `GET /events`.
#[derive(Debug, Default, Deserialize)]
pub struct EventQuery {
    hostname: Option<String>,
    rule_id: Option<i32>,
    event_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<u32>,
    limit: Option<u32>,
}

/// A page of the event audit log, newest event first.
pub async fn events(s: &ControlState, q: EventQuery) -> Result<Page<EventAuditRow>, Refused> {
    let paging = Paging::new(q.page, q.limit)?;
    let filter = EventFilter {
        hostname: q.hostname,
        rule_id: q.rule_id,
        event_id: q.event_id,
        start: time_param(&q.start_date, "start_date")?,
        end: time_param(&q.end_date, "end_date")?,
    };
    Ok(s.store
        .query_events(&filter, paging.page, paging.limit)
        .await?)
}

/// The `pagination` object of a page.
pub fn pagination<T>(page: &Page<T>) -> Value {
    let pages = (page.total + i64::from(page.limit) - 1) / i64::from(page.limit);
    json!({"page": page.page, "limit": page.limit, "total": page.total, "pages": pages})
}
