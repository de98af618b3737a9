//! Retention's verbs on the database: the run lock, event-audit partitions (ahead, out of
//! the DEFAULT partition, into the archive, dropped), deleting old config audit, exporting
//! a month, and the record of each run. The privileged steps go through the SECURITY
//! DEFINER functions of `sql/0005_retention.sql`, which enforce MUTT's minimums themselves.

use futures_util::StreamExt;
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use time::OffsetDateTime;

use crate::config_audit::{self, Actor, Change};
use crate::db::Store;
use crate::error::StoreError;

/// The advisory-lock key of retention runs (`'mutt-retention'` hashed once, fixed here so
/// that every version agrees).
const LOCK_KEY: i64 = 0x6d75_7474_7265_7465;

/// A table whose monthly partitions retention manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioned {
    /// `event_audit_log`.
    EventAudit,
    /// `event_audit_log_archive`.
    Archive,
}

impl Partitioned {
    /// The table's name.
    pub fn table(self) -> &'static str {
        match self {
            Self::EventAudit => "event_audit_log",
            Self::Archive => "event_audit_log_archive",
        }
    }
}

/// One monthly partition.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Partition {
    /// Its table (`event_audit_log_2026_01`).
    pub name: String,
    /// First instant it holds.
    #[serde(with = "time::serde::rfc3339")]
    pub lo: OffsetDateTime,
    /// First instant it does not hold.
    #[serde(with = "time::serde::rfc3339")]
    pub hi: OffsetDateTime,
    /// PostgreSQL's estimate of its rows (from the last ANALYZE; -1 before any).
    pub rows_estimate: i64,
}

/// One recorded run.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RetentionRun {
    /// Its id.
    pub id: i64,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Who ran it (`mutt retention`, or the control replica).
    pub run_by: String,
    /// What it did.
    pub report: Value,
}

/// The retention lock, held on a connection of its own; released by [`RetentionLock::release`]
/// or, should the process die, by PostgreSQL when the connection closes.
#[derive(Debug)]
pub struct RetentionLock {
    conn: PgConnection,
}

impl RetentionLock {
    /// Releases the lock and closes its connection.
    pub async fn release(mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut self.conn)
            .await?;
        self.conn.close().await?;
        Ok(())
    }
}

impl Store {
    /// Takes the retention lock if no other run holds it.
    pub async fn try_retention_lock(&self) -> Result<Option<RetentionLock>, StoreError> {
        let mut conn = self.pool().acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(RetentionLock { conn }))
        } else {
            conn.close().await?;
            Ok(None)
        }
    }

    /// Whether this database user may run retention (a member of `mutt_retention`, or the
    /// owner): the privilege of its archiving step, checked rather than assumed.
    pub async fn may_run_retention(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT has_function_privilege('mutt_archive_event_audit_partition(text)', 'EXECUTE')",
        )
        .fetch_one(&self.pool())
        .await?)
    }

    /// The monthly partitions of `table`, oldest first (the DEFAULT partition excluded).
    pub async fn partitions(&self, table: Partitioned) -> Result<Vec<Partition>, StoreError> {
        Ok(
            sqlx::query_as("SELECT name, lo, hi, rows_estimate FROM mutt_partitions($1::regclass)")
                .bind(table.table())
                .fetch_all(&self.pool())
                .await?,
        )
    }

    /// The months (their first day, UTC) of the rows in the DEFAULT partition, with their
    /// row counts, oldest first.
    pub async fn default_rows_by_month(&self) -> Result<Vec<(time::Date, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT date_trunc('month', event_timestamp AT TIME ZONE 'UTC')::date AS m, count(*)
             FROM event_audit_log_default GROUP BY m ORDER BY m",
        )
        .fetch_all(&self.pool())
        .await?)
    }

    /// Creates the partition of `month` (any day in it), moving into it the rows the
    /// DEFAULT partition holds for that month. Returns its name.
    pub async fn ensure_month_partition(&self, month: time::Date) -> Result<String, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT mutt_ensure_event_audit_partition($1)")
                .bind(month)
                .fetch_one(&self.pool())
                .await?,
        )
    }

    /// Makes sure the current month's partition and the next `ahead` exist; returns the
    /// names of all of them.
    pub async fn ensure_partitions_ahead(&self, ahead: u32) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT mutt_ensure_event_audit_partitions(0, $1)")
                .bind(i32::try_from(ahead).unwrap_or(i32::MAX))
                .fetch_all(&self.pool())
                .await?,
        )
    }

    /// Moves a whole month of event audit into the archive; returns its rows.
    pub async fn archive_partition(&self, name: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT mutt_archive_event_audit_partition($1)")
                .bind(name)
                .fetch_one(&self.pool())
                .await?,
        )
    }

    /// Drops an archived month; returns the rows it held.
    pub async fn drop_archived_partition(&self, name: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT mutt_drop_event_audit_archive_partition($1)")
                .bind(name)
                .fetch_one(&self.pool())
                .await?,
        )
    }

    /// Exact rows of one partition (counts are checked and recorded, not estimated).
    pub async fn partition_rows(&self, p: &Partition) -> Result<i64, StoreError> {
        // The name comes from the catalogue, and is quoted as an identifier all the same.
        let sql = format!("SELECT count(*) FROM \"{}\"", p.name.replace('"', "\"\""));
        Ok(sqlx::query_scalar(&sql).fetch_one(&self.pool()).await?)
    }

    /// Config audit rows changed before `cutoff`.
    pub async fn count_config_audit_before(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM config_audit_log WHERE changed_at < $1")
                .bind(cutoff)
                .fetch_one(&self.pool())
                .await?,
        )
    }

    /// Deletes config audit rows changed before `cutoff` (the table's trigger allows it to
    /// members of `mutt_retention` only, and only past 365 days).
    pub async fn delete_config_audit_before(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM config_audit_log WHERE changed_at < $1")
                .bind(cutoff)
                .execute(&self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Writes a month's rows to `out` as CSV with a header (`COPY … TO STDOUT`); returns
    /// the bytes written. `out` is written as the rows arrive, so a month never sits in
    /// memory whole.
    pub async fn export_partition(
        &self,
        name: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "COPY \"{}\" TO STDOUT WITH (FORMAT csv, HEADER true)",
            name.replace('"', "\"\"")
        );
        let mut conn = self.pool().acquire().await?;
        let mut stream = conn.copy_out_raw(&sql).await?;
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            out.write_all(&chunk)
                .map_err(|e| StoreError::Invalid(format!("writing the export of {name}: {e}")))?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }

    /// Records a run, and its config audit row (who: `retention`), in one transaction.
    pub async fn record_retention_run(
        &self,
        started_at: OffsetDateTime,
        run_by: &str,
        report: &Value,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO retention_runs (started_at, run_by, report)
             VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(started_at)
        .bind(run_by)
        .bind(report)
        .fetch_one(&mut *tx)
        .await?;
        let actor = Actor {
            who: "retention".into(),
            reason: Some(format!("retention run by {run_by}")),
            correlation_id: String::new(),
        };
        config_audit::commit(
            tx,
            &actor,
            &Change {
                operation: "RETAIN",
                table: "retention_runs",
                record_id: i32::try_from(id).ok(),
                record_key: None,
                old: None,
                new: Some(report.clone()),
            },
        )
        .await?;
        Ok(id)
    }

    /// The latest runs, newest first.
    pub async fn retention_runs(&self, limit: i64) -> Result<Vec<RetentionRun>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, started_at, finished_at, run_by, report
             FROM retention_runs ORDER BY finished_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool())
        .await?)
    }
}
