//! Data retention: one pass over the event audit (partitions ahead, rows out of the
//! DEFAULT partition, whole months into the archive, archived months dropped), the config
//! audit and the parked dead letters, under one PostgreSQL advisory lock so that a
//! CronJob's `mutt retention` and every control replica's schedule never run at once.
//! Each run that changes something is recorded (`retention_runs`, and a config audit row
//! by `retention`); `--dry-run` reports what a run would do and changes nothing.
//!
//! # Layout
//!
//! - `export`: gzip copies of what is removed, with a `SHA256SUMS` manifest.

mod export;

use std::path::PathBuf;
use std::time::Duration;

use mutt_bus::Bus;
use mutt_bus::dlq::Shelf;
use mutt_core::hot::HotConfig;
use mutt_store::retention::{Partition, Partitioned};
use mutt_store::{Store, StoreError};
use mutt_telemetry::metrics;
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::service::dlq::GROUPS;
use export::ExportFile;
pub use export::Exported;

const DAY: Duration = Duration::from_secs(86_400);

/// What a run keeps, from the hot settings.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Policy {
    /// Days of event audit kept in `event_audit_log`.
    pub event_audit_days: u64,
    /// Days an archived month is kept (never fewer than the event audit's).
    pub archive_days: u64,
    /// Days of config audit kept.
    pub config_audit_days: u64,
    /// Days a parked dead letter is kept.
    pub parked_letter_days: u64,
    /// Monthly partitions kept ready beyond the current month.
    pub partitions_ahead: u64,
}

impl Policy {
    /// The policy of these hot settings.
    pub fn from_hot(h: &HotConfig) -> Self {
        Self {
            event_audit_days: h.retention_event_audit_days,
            archive_days: h.retention_archive_days.max(h.retention_event_audit_days),
            config_audit_days: h.retention_config_audit_days,
            parked_letter_days: h.retention_parked_letter_days,
            partitions_ahead: h.retention_partitions_ahead,
        }
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Report only.
    pub dry_run: bool,
    /// Write what is archived or removed to this directory first.
    pub export: Option<PathBuf>,
}

/// One month moved or dropped.
#[derive(Debug, Clone, Serialize)]
pub struct Month {
    /// The partition.
    pub partition: String,
    /// Its rows (exact).
    pub rows: i64,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Partitions created for the months ahead.
    pub partitions_created: Vec<String>,
    /// Months whose rows left the DEFAULT partition for a partition of their own.
    pub default_moved: Vec<Month>,
    /// Months moved from `event_audit_log` to `event_audit_log_archive`.
    pub archived: Vec<Month>,
    /// Archived months dropped.
    pub archive_dropped: Vec<Month>,
    /// Config audit rows deleted.
    pub config_audits_deleted: i64,
    /// Parked dead letters removed, by group.
    pub dead_letters_deleted: Vec<(String, u64)>,
    /// Files written with `--export`.
    pub exported: Vec<Exported>,
}

/// Why a run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// PostgreSQL refused a step (the run stops there; what is done is done, each step
    /// being whole on its own).
    #[error("retention: {0}")]
    Store(#[from] StoreError),
    /// Redis refused a step.
    #[error("retention: {0}")]
    Bus(#[from] mutt_bus::BusError),
    /// An export could not be written (nothing was removed without its copy).
    #[error("retention export: {0}")]
    Export(#[from] std::io::Error),
}

/// What became of a run.
#[derive(Debug)]
pub enum Outcome {
    /// It ran.
    Ran(Report),
    /// Another run holds the lock.
    Busy,
}

/// Runs retention against one database and one Redis.
#[derive(Debug, Clone)]
pub struct Retention {
    /// The database.
    pub store: Store,
    /// Redis (the DLQs).
    pub bus: Bus,
    /// Who runs it, for the record (`mutt retention`, or the control replica).
    pub run_by: String,
}

impl Retention {
    /// One pass. Skips (`Busy`) when another run holds the lock.
    pub async fn run_once(
        &self,
        policy: &Policy,
        opts: &Options,
    ) -> Result<Outcome, RetentionError> {
        let Some(lock) = self.store.try_retention_lock().await? else {
            metrics()
                .retention_runs
                .with_label_values(&["skipped"])
                .inc();
            return Ok(Outcome::Busy);
        };
        let started = OffsetDateTime::now_utc();
        let timer = metrics().retention_duration.start_timer();
        let result = self.pass(policy, opts, started).await;
        drop(timer);
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "releasing the retention lock (it ends with the connection)");
        }
        let outcome = match &result {
            Ok(_) if opts.dry_run => "dry_run",
            Ok(_) => "done",
            Err(_) => "failed",
        };
        metrics().retention_runs.with_label_values(&[outcome]).inc();
        result.map(Outcome::Ran)
    }

    async fn pass(
        &self,
        policy: &Policy,
        opts: &Options,
        started: OffsetDateTime,
    ) -> Result<Report, RetentionError> {
        let dry = opts.dry_run;
        let export = if dry { None } else { opts.export.as_deref() };
        let mut r = Report {
            dry_run: dry,
            ..Report::default()
        };
        let m = metrics();

        // Rows that fell into DEFAULT first: their months then count as partitions below
        // (in a dry run, as the partitions they would become).
        let mut would_be = Vec::new();
        for (month, rows) in self.store.default_rows_by_month().await? {
            let partition = if dry {
                let (lo, hi) = month_range(month);
                would_be.push(Partition {
                    name: partition_name(month),
                    lo,
                    hi,
                    rows_estimate: rows,
                });
                partition_name(month)
            } else {
                let name = self.store.ensure_month_partition(month).await?;
                m.retention_default_rows_moved.inc_by(rows.max(0) as u64);
                name
            };
            r.default_moved.push(Month { partition, rows });
        }

        let mut before = self.store.partitions(Partitioned::EventAudit).await?;
        before.extend(would_be.iter().cloned());
        before.sort_by_key(|p| p.lo);
        let ahead = u32::try_from(policy.partitions_ahead).unwrap_or(u32::MAX);
        let wanted = months_from(started.date(), ahead);
        r.partitions_created = if dry {
            wanted
                .iter()
                .map(|d| partition_name(*d))
                .filter(|n| !before.iter().any(|p| &p.name == n))
                .collect()
        } else {
            self.store
                .ensure_partitions_ahead(ahead)
                .await?
                .into_iter()
                .filter(|n| !before.iter().any(|p| &p.name == n))
                .collect()
        };

        let cutoff = started - DAY * days(policy.event_audit_days);
        for p in before.iter().filter(|p| p.hi <= cutoff) {
            let mut rows = match would_be.iter().find(|w| w.name == p.name) {
                Some(w) => w.rows_estimate,
                None => self.store.partition_rows(p).await?,
            };
            if let Some(dir) = export {
                r.exported.push(self.export_month(dir, p).await?);
            }
            if !dry {
                rows = self.store.archive_partition(&p.name).await?;
                m.retention_events_archived.inc_by(rows.max(0) as u64);
            }
            r.archived.push(Month {
                partition: p.name.clone(),
                rows,
            });
        }

        let cutoff = started - DAY * days(policy.archive_days);
        for p in self.store.partitions(Partitioned::Archive).await? {
            if p.hi > cutoff {
                continue;
            }
            let rows = if dry {
                self.store.partition_rows(&p).await?
            } else {
                let rows = self.store.drop_archived_partition(&p.name).await?;
                m.retention_archive_rows_dropped.inc_by(rows.max(0) as u64);
                rows
            };
            r.archive_dropped.push(Month {
                partition: p.name,
                rows,
            });
        }

        let cutoff = started - DAY * days(policy.config_audit_days);
        r.config_audits_deleted = if dry {
            self.store.count_config_audit_before(cutoff).await?
        } else {
            let n = self.store.delete_config_audit_before(cutoff).await?;
            m.retention_config_audits_deleted.inc_by(n);
            i64::try_from(n).unwrap_or(i64::MAX)
        };

        let cutoff_ms = (started - DAY * days(policy.parked_letter_days)).unix_timestamp() * 1000;
        for g in GROUPS {
            let n = self.remove_parked(g, cutoff_ms, dry, export).await?;
            if !dry {
                m.retention_dead_letters_deleted
                    .with_label_values(&[g])
                    .inc_by(n);
            }
            r.dead_letters_deleted.push((g.to_string(), n));
        }

        if !dry {
            let report = serde_json::to_value(&r).unwrap_or_default();
            self.store
                .record_retention_run(started, &self.run_by, &report)
                .await?;
        }
        if !dry {
            m.retention_last_run
                .set(OffsetDateTime::now_utc().unix_timestamp());
        }
        Ok(r)
    }

    async fn export_month(
        &self,
        dir: &std::path::Path,
        p: &Partition,
    ) -> Result<Exported, RetentionError> {
        let mut f = ExportFile::create(dir, &format!("{}.csv.gz", p.name))?;
        self.store.export_partition(&p.name, f.writer()).await?;
        Ok(f.finish(dir)?)
    }

    /// Removes `group`'s parked letters parked before `cutoff_ms`, exported first when
    /// asked; returns how many (would be) removed.
    async fn remove_parked(
        &self,
        group: &str,
        cutoff_ms: i64,
        dry: bool,
        export: Option<&std::path::Path>,
    ) -> Result<u64, RetentionError> {
        let mut doomed = Vec::new();
        let mut after: Option<String> = None;
        'pages: loop {
            let page = self
                .bus
                .dlq_entries(group, Shelf::Parked, after.as_deref(), 500)
                .await?;
            let n = page.len();
            after = page.last().map(|e| e.id.clone());
            for e in page {
                // A parked letter's id starts with the millisecond it was parked.
                let ms: i64 =
                    e.id.split('-')
                        .next()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(i64::MAX);
                if ms >= cutoff_ms {
                    break 'pages;
                }
                doomed.push(e);
            }
            if n < 500 {
                break;
            }
        }
        if doomed.is_empty() || dry {
            return Ok(doomed.len() as u64);
        }
        if let Some(dir) = export {
            let stamp = OffsetDateTime::now_utc().unix_timestamp();
            let mut f = ExportFile::create(dir, &format!("dlq_{group}_parked_{stamp}.ndjson.gz"))?;
            for e in &doomed {
                serde_json::to_writer(&mut *f.writer(), &letter_json(e))
                    .map_err(std::io::Error::from)?;
                f.writer().write_all(b"\n")?;
            }
            f.finish(dir)?;
        }
        let ids: Vec<String> = doomed.into_iter().map(|e| e.id).collect();
        Ok(self.bus.dlq_purge(group, Shelf::Parked, &ids).await?)
    }
}

/// A dead letter as one JSON object: text fields as text, binary ones (the MessagePack
/// payload) in base64.
fn letter_json(e: &mutt_bus::entry::StreamEntry) -> serde_json::Value {
    use base64::Engine;
    let fields: serde_json::Map<String, serde_json::Value> = e
        .fields
        .iter()
        .map(|(k, v)| {
            let v = match std::str::from_utf8(v) {
                Ok(t) => serde_json::Value::String(t.to_string()),
                Err(_) => serde_json::json!({
                    "base64": base64::engine::general_purpose::STANDARD.encode(v)
                }),
            };
            (k.clone(), v)
        })
        .collect();
    serde_json::json!({"id": e.id, "fields": fields})
}

/// When the scheduled run is due after one that finished at `last` (now when none did).
pub fn next_run(last: Option<OffsetDateTime>, interval: Duration) -> OffsetDateTime {
    last.map_or_else(OffsetDateTime::now_utc, |t| t + interval)
}

fn days(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `event_audit_log_YYYY_MM`, as `mutt_ensure_event_audit_partition` names it.
fn partition_name(month: Date) -> String {
    format!(
        "event_audit_log_{:04}_{:02}",
        month.year(),
        u8::from(month.month())
    )
}

/// The range of a month, as its partition holds it (UTC).
fn month_range(month: Date) -> (OffsetDateTime, OffsetDateTime) {
    let first = month.replace_day(1).unwrap_or(month);
    let next = months_from(first, 1)[1];
    (first.midnight().assume_utc(), next.midnight().assume_utc())
}

/// The first days of `today`'s month and the `ahead` months after it.
fn months_from(today: Date, ahead: u32) -> Vec<Date> {
    let mut d = today.replace_day(1).unwrap_or(today);
    let mut out = vec![d];
    for _ in 0..ahead {
        let (y, m) = (d.year(), d.month());
        d = Date::from_calendar_date(
            if m == time::Month::December { y + 1 } else { y },
            m.next(),
            1,
        )
        .unwrap_or(d);
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_ahead_cross_the_year() {
        let d = time::macros::date!(2026 - 11 - 30);
        let names: Vec<String> = months_from(d, 3).into_iter().map(partition_name).collect();
        assert_eq!(
            names,
            [
                "event_audit_log_2026_11",
                "event_audit_log_2026_12",
                "event_audit_log_2027_01",
                "event_audit_log_2027_02"
            ]
        );
    }

    #[test]
    fn the_archive_is_kept_at_least_as_long_as_the_audit() {
        let mut h = HotConfig::default();
        h.set("retention_event_audit_days", "3000").unwrap();
        assert_eq!(Policy::from_hot(&h).archive_days, 3000);
        assert_eq!(Policy::from_hot(&HotConfig::default()).archive_days, 2557);
    }
}
