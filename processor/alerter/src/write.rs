//! Writing what a batch produced, in the order that loses nothing: dead letters, audit
//! rows (held while PostgreSQL refuses every write), then alerts and acknowledgements in
//! one step.

use std::collections::HashMap;

use mutt_bus::StreamEntry;
use mutt_bus::dlq::DeadLetter;
use mutt_bus::names::ALERTER_GROUP;
use mutt_core::codec;
use mutt_store::AuditRow;
use mutt_store::error::{OutageKind, Refusal};
use mutt_telemetry::metrics;
use mutt_worker::ops::Flag;
use mutt_worker::{backoff, retry, sleep_or_shutdown};
use tokio_util::sync::CancellationToken;

use crate::{Alerter, Outputs};

impl Alerter {
    /// Writes what a batch produced: dead letters, audit rows, then alerts and
    /// acknowledgements in one transaction.
    pub(crate) async fn write(
        &self,
        mut out: Outputs,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let stream = self.bus.names().events();
        let now = mutt_core::now_ms();
        if !out.poison.is_empty() {
            let moved = self
                .dead_letter(
                    &stream,
                    out.poison.iter().map(|(entry, why)| (entry, why.as_str())),
                    now,
                    shutdown,
                )
                .await?;
            metrics()
                .alerter_events
                .with_label_values(&["poison"])
                .inc_by(moved);
            metrics()
                .dlq_moved
                .with_label_values(&[ALERTER_GROUP, "undecodable"])
                .inc_by(moved);
            for (entry, why) in &out.poison {
                tracing::warn!(entry_id = %entry.id, error = %why, "undecodable event moved to the dead-letter queue");
            }
        }
        if !out.audit.is_empty() {
            let audit_spans: Vec<tracing::Span> = out
                .spans
                .iter()
                .map(|s| tracing::info_span!(parent: s, "audit.write", otel.name = "audit.write", rows = out.audit.len()))
                .collect();
            let refused = self.write_audit(&out.audit, shutdown).await?;
            drop(audit_spans);
            if !refused.is_empty() {
                out = self.drop_refused(out, refused, shutdown).await?;
            }
        }
        let alerts_stream = self.bus.names().alerts();
        retry("append alerts", shutdown, || {
            self.bus.ack_and_append(
                &stream,
                ALERTER_GROUP,
                &out.ack,
                &alerts_stream,
                &out.alerts,
            )
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Inserts the audit rows. While PostgreSQL refuses every row (unreachable, read-only
    /// after a failover, a refused password or grant, a lock timeout, a missing table), the
    /// batch is held: retried with backoff, its leases renewed, readiness false, and
    /// `mutt_writes_held` says why; nothing goes to the DLQ for an outage. Only when the
    /// server refuses the batch because of a row's data are rows written one by one, and
    /// the indexes (into `ack`) of the rows it refuses for good are returned.
    pub(crate) async fn write_audit(
        &self,
        audit: &[(AuditRow, usize)],
        shutdown: &CancellationToken,
    ) -> Result<Vec<(usize, String)>, String> {
        let rows: Vec<AuditRow> = audit.iter().map(|(r, _)| r.clone()).collect();
        let mut attempt = 0;
        let mut one_by_one = false;
        // Rows already settled in one-by-one mode (written, or refused for good).
        let mut refused = Vec::new();
        let mut next = 0;
        let mut hold: Option<Hold> = None;
        loop {
            let error = if one_by_one {
                let mut outage = None;
                while next < audit.len() {
                    let (row, idx) = &audit[next];
                    match self
                        .store
                        .insert_event_audit(std::slice::from_ref(row))
                        .await
                    {
                        Ok(n) => metrics().audit_rows.inc_by(n),
                        Err(e) if e.is_row_refusal() => {
                            refused.push((*idx, format!("audit row refused: {e}")))
                        }
                        Err(e) => {
                            outage = Some(e);
                            break;
                        }
                    }
                    next += 1;
                }
                match outage {
                    None => return Ok(refused),
                    Some(e) => e,
                }
            } else {
                let timer = metrics().audit_write_latency.start_timer();
                match self.store.insert_event_audit(&rows).await {
                    Ok(n) => {
                        timer.observe_duration();
                        metrics().audit_rows.inc_by(n);
                        return Ok(Vec::new());
                    }
                    Err(e) if e.is_row_refusal() => {
                        tracing::warn!(error = %e, sqlstate = %e.sqlstate().unwrap_or_default(), "audit batch refused for a row's data; writing rows one by one");
                        one_by_one = true;
                        continue;
                    }
                    Err(e) => e,
                }
            };
            let Refusal::Outage(kind) = error.refusal() else {
                unreachable!("row refusals are handled above");
            };
            metrics()
                .dependency_errors
                .with_label_values(&["alerter", "postgres"])
                .inc();
            let held = hold.get_or_insert_with(|| Hold::new(&self.audit_writes, kind));
            held.set(kind);
            tracing::warn!(
                error = %error,
                sqlstate = %error.sqlstate().unwrap_or_default(),
                reason = %kind.as_str(),
                attempt,
                rows = audit.len(),
                "PostgreSQL refuses audit writes; holding the batch and retrying"
            );
            // A read-only server is a replica now: its connections will never write again.
            if kind == OutageKind::ReadOnly
                && let Err(e) = self.store.reconnect().await
            {
                tracing::debug!(error = %e, "reconnecting to PostgreSQL");
            }
            if sleep_or_shutdown(backoff(attempt), shutdown).await {
                return Err(format!("audit write: {error}"));
            }
            attempt += 1;
        }
    }

    /// Moves the entries whose audit rows were refused to the DLQ and takes them and
    /// their alerts out of the batch.
    pub(crate) async fn drop_refused(
        &self,
        mut out: Outputs,
        refused: Vec<(usize, String)>,
        shutdown: &CancellationToken,
    ) -> Result<Outputs, String> {
        let stream = self.bus.names().events();
        let now = mutt_core::now_ms();
        let refused_ids: HashMap<String, String> = refused
            .into_iter()
            .filter_map(|(idx, why)| out.ack.get(idx).map(|id| (id.clone(), why)))
            .collect();
        // The entries are re-read by id to dead-letter them with their original fields.
        let entries = self
            .bus
            .entries_by_id(&stream, refused_ids.keys())
            .await
            .map_err(|e| e.to_string())?;
        let moved = self
            .dead_letter(
                &stream,
                entries.iter().map(|entry| {
                    let why = refused_ids
                        .get(&entry.id)
                        .map_or("audit refused", String::as_str);
                    (entry, why)
                }),
                now,
                shutdown,
            )
            .await?;
        metrics()
            .dlq_moved
            .with_label_values(&[ALERTER_GROUP, "audit_refused"])
            .inc_by(moved);
        // Alerts of refused events are dropped with them: an alert is only sent for an
        // audited decision. They are recognisable by the event id they carry.
        let refused_event_ids: Vec<String> = entries
            .iter()
            .filter_map(|e| {
                e.payload()
                    .and_then(|p| codec::decode_event(p, &self.limits).ok())
            })
            .map(|e| e.id)
            .collect();
        out.alerts.retain(|a| {
            codec::decode_alert(&a.payload, &self.limits)
                .map_or(true, |al| !refused_event_ids.contains(&al.event.id))
        });
        out.ack.retain(|id| !refused_ids.contains_key(id));
        metrics()
            .alerter_events
            .with_label_values(&["error"])
            .inc_by(moved);
        Ok(out)
    }

    /// Moves entries of `stream` to the alerter group's DLQ, each with why it failed at
    /// `now` (the alerter gives up on its first delivery). Returns how many were moved.
    async fn dead_letter<'e>(
        &self,
        stream: &str,
        failed: impl Iterator<Item = (&'e StreamEntry, &'e str)>,
        now: i64,
        shutdown: &CancellationToken,
    ) -> Result<u64, String> {
        let letters: Vec<DeadLetter<'_>> = failed
            .map(|(entry, why)| DeadLetter {
                entry,
                source_stream: stream,
                group: ALERTER_GROUP,
                consumer: &self.consumer,
                delivery_count: 1,
                last_error: why,
                first_failure_ms: now,
                last_failure_ms: now,
            })
            .collect();
        retry("dead-letter", shutdown, || self.bus.move_to_dlq(&letters))
            .await
            .map_err(|e| e.to_string())?;
        Ok(letters.len() as u64)
    }
}

/// A batch held because PostgreSQL refuses every write: blocks readiness and counts in
/// `mutt_writes_held` for as long as it lives.
pub(crate) struct Hold {
    pub(crate) _blocked: mutt_worker::ops::Blocked,
    pub(crate) kind: OutageKind,
}

impl Hold {
    pub(crate) fn new(flag: &Flag, kind: OutageKind) -> Self {
        Self::count(kind, 1);
        Self {
            _blocked: flag.block(),
            kind,
        }
    }

    pub(crate) fn count(kind: OutageKind, delta: i64) {
        metrics()
            .writes_held
            .with_label_values(&["alerter", "postgres", kind.as_str()])
            .add(delta);
    }

    /// The reason changed (read-only, then a refused password, …).
    pub(crate) fn set(&mut self, kind: OutageKind) {
        if kind != self.kind {
            Self::count(self.kind, -1);
            Self::count(kind, 1);
            self.kind = kind;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        Self::count(self.kind, -1);
    }
}
