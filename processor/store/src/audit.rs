//! The event audit writer.

use time::OffsetDateTime;

use crate::db::Store;
use crate::error::StoreError;

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
