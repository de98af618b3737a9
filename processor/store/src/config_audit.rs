//! `config_audit_log`: who changed what, when and why. Every mutation of the other tables
//! writes its row here in its own transaction ([`write`]); changes that live outside
//! PostgreSQL (DLQ replays, secret rotation steps) write theirs alone
//! ([`Store::record_change`]). The query serves the audit API.

use serde::Serialize;
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder, Transaction};
use time::OffsetDateTime;

use crate::db::Store;
use crate::error::StoreError;
use crate::page::{Page, paginate};

/// Who changes something, why, and under which request.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The API key's name (never the key).
    pub who: String,
    /// The reason given.
    pub reason: Option<String>,
    /// The request's correlation id.
    pub correlation_id: String,
}

/// A config audit row to write.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// CREATE, UPDATE, DELETE, REPLAY, PURGE, ROTATE, REVOKE, EXPIRE.
    pub operation: &'static str,
    /// What kind of record (`alert_rules`, `dynamic_config`, `dlq`, …).
    pub table: &'static str,
    /// Its numeric id, if it has one.
    pub record_id: Option<i32>,
    /// Its key, if it is named (a setting, a host, a DLQ, a key name).
    pub record_key: Option<&'a str>,
    /// Before.
    pub old: Option<Value>,
    /// After.
    pub new: Option<Value>,
}

/// One row of the config audit trail.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditLogRow {
    /// Row id.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
    /// Who.
    pub changed_by: String,
    /// What kind of change.
    pub operation: String,
    /// What kind of record.
    pub table_name: String,
    /// Its id.
    pub record_id: Option<i32>,
    /// Its key.
    pub record_key: Option<String>,
    /// Before.
    pub old_values: Option<Value>,
    /// After.
    pub new_values: Option<Value>,
    /// Why.
    pub reason: Option<String>,
    /// The request.
    pub correlation_id: Option<String>,
}

/// Filters of the audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Part of the actor's name (case-insensitive).
    pub changed_by: Option<String>,
    /// Exact operation.
    pub operation: Option<String>,
    /// Exact table.
    pub table_name: Option<String>,
    /// Exact record id.
    pub record_id: Option<i32>,
    /// Exact record key.
    pub record_key: Option<String>,
    /// From (inclusive).
    pub start: Option<OffsetDateTime>,
    /// To (exclusive).
    pub end: Option<OffsetDateTime>,
}

/// Writes the audit row of a change inside the transaction that makes it.
pub(crate) async fn write(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    c: &Change<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO config_audit_log
            (changed_by, operation, table_name, record_id, record_key, old_values, new_values, reason, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&actor.who)
    .bind(c.operation)
    .bind(c.table)
    .bind(c.record_id)
    .bind(c.record_key)
    .bind(&c.old)
    .bind(&c.new)
    .bind(&actor.reason)
    .bind(&actor.correlation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the audit row of a change and commits the transaction that makes it: the
/// change happens audited or not at all.
pub(crate) async fn commit(
    mut tx: Transaction<'_, Postgres>,
    actor: &Actor,
    c: &Change<'_>,
) -> Result<(), StoreError> {
    write(&mut tx, actor, c).await?;
    tx.commit().await?;
    Ok(())
}

impl Store {
    /// Writes one config audit row on its own (changes that live outside PostgreSQL: DLQ
    /// replays and purges, secret rotation steps).
    pub async fn record_change(
        &self,
        actor: &Actor,
        change: &Change<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        write(&mut tx, actor, change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The config audit trail, newest first.
    pub async fn query_audit(
        &self,
        f: &AuditFilter,
        page: u32,
        limit: u32,
    ) -> Result<Page<AuditLogRow>, StoreError> {
        let filters = |q: &mut QueryBuilder<'_, Postgres>| {
            q.push(" WHERE true");
            if let Some(v) = &f.changed_by {
                q.push(" AND changed_by ILIKE ")
                    .push_bind(format!("%{}%", v.replace('%', "\\%").replace('_', "\\_")));
            }
            if let Some(v) = &f.operation {
                q.push(" AND operation = ").push_bind(v.clone());
            }
            if let Some(v) = &f.table_name {
                q.push(" AND table_name = ").push_bind(v.clone());
            }
            if let Some(v) = f.record_id {
                q.push(" AND record_id = ").push_bind(v);
            }
            if let Some(v) = &f.record_key {
                q.push(" AND record_key = ").push_bind(v.clone());
            }
            if let Some(v) = f.start {
                q.push(" AND changed_at >= ").push_bind(v);
            }
            if let Some(v) = f.end {
                q.push(" AND changed_at < ").push_bind(v);
            }
        };
        let mut count = QueryBuilder::new("SELECT count(*) FROM config_audit_log");
        filters(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool()).await?;
        let mut q = QueryBuilder::new(
            "SELECT id, changed_at, changed_by, operation, table_name, record_id, record_key, old_values, new_values,
                    reason, correlation_id FROM config_audit_log",
        );
        filters(&mut q);
        q.push(" ORDER BY changed_at DESC, id DESC");
        paginate(&mut q, page, limit);
        let items = q.build_query_as().fetch_all(&self.pool()).await?;
        Ok(Page {
            items,
            page,
            limit,
            total,
        })
    }
}
