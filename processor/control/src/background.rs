//! What the control plane does on its own: publishing the newest snapshot and the live
//! keys to Redis (so a Redis that lost them, or a change whose publication failed, is
//! repaired within seconds), expiring rotated keys, and replaying dead letters when the
//! downstream is healthy (with a budget, and parking letters that keep failing), and
//! running data retention on its schedule.

use std::sync::Arc;
use std::time::Duration;

use mutt_bus::guard::{CircuitState, WEBHOOK};
use mutt_bus::names::{ALERTER_GROUP, FORWARDER_GROUP};
use mutt_telemetry::metrics;
use tokio_util::sync::CancellationToken;

use super::ControlState;
use super::retention::{self, Options, Outcome, Policy, Retention};
use super::service::dlq::{GROUPS, auto_replay};
use super::service::{keys, settings};

const SYNC_EVERY: Duration = Duration::from_secs(5);
// Expiring keys promptly matters: the end of a rotation overlap is audited by this loop.
const KEYS_EVERY: Duration = Duration::from_secs(5);
/// How soon a failed retention run is tried again (or the interval, if shorter).
const RETENTION_RETRY: Duration = Duration::from_secs(600);

/// The control plane's background work.
#[derive(Debug)]
pub struct Background {
    /// Shared with the API.
    pub state: Arc<ControlState>,
    /// This process's consumer name (the lock owner).
    pub consumer: String,
}

impl Background {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::join!(self.upkeep(&shutdown), self.retention(&shutdown));
    }

    /// Runs retention when it is due: `retention_interval` after the last run of any
    /// replica or CronJob finished (so restarts do not run it again), one replica at a
    /// time (the run's lock). A run takes as long as it takes, beside the upkeep loop.
    async fn retention(&self, shutdown: &CancellationToken) {
        let s = &self.state;
        let r = Retention {
            store: s.store.clone(),
            bus: s.bus.clone(),
            run_by: format!("control {}", self.consumer),
        };
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            let hot = s.hot.borrow().clone();
            let due = match s.store.retention_runs(1).await {
                Ok(runs) => {
                    let last = runs.first().map(|r| r.finished_at);
                    if let Some(t) = last {
                        metrics().retention_last_run.set(t.unix_timestamp());
                    }
                    let next = retention::next_run(last, hot.retention_interval);
                    next <= time::OffsetDateTime::now_utc()
                }
                Err(e) => {
                    tracing::debug!(error = %e, "reading the last retention run");
                    false
                }
            };
            let waiting = retry_at.is_some_and(|t| tokio::time::Instant::now() < t);
            if hot.retention_enabled && due && !waiting {
                match r
                    .run_once(&Policy::from_hot(&hot), &Options::default())
                    .await
                {
                    Ok(Outcome::Ran(report)) => {
                        retry_at = None;
                        tracing::info!(
                            archived = report.archived.len(),
                            archive_dropped = report.archive_dropped.len(),
                            config_audits_deleted = report.config_audits_deleted,
                            partitions_created = report.partitions_created.len(),
                            "retention run"
                        );
                    }
                    Ok(Outcome::Busy) => {
                        tracing::debug!("another retention run holds the lock")
                    }
                    Err(e) => {
                        retry_at = Some(
                            tokio::time::Instant::now()
                                + RETENTION_RETRY.min(hot.retention_interval),
                        );
                        tracing::warn!(error = %e, "retention run failed; it will be tried again");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SYNC_EVERY.min(hot.retention_interval)) => {}
            }
        }
    }

    /// Publishing, key expiry, DLQ gauges and automatic replay, every few seconds.
    async fn upkeep(&self, shutdown: &CancellationToken) {
        let s = &self.state;
        let mut last_keys = tokio::time::Instant::now() - KEYS_EVERY;
        let mut last_replay = tokio::time::Instant::now();
        loop {
            settings::republish(s).await;
            if last_keys.elapsed() >= KEYS_EVERY {
                last_keys = tokio::time::Instant::now();
                match s.store.audit_expired_keys().await {
                    Ok(expired) if !expired.is_empty() => {
                        tracing::info!(keys = ?expired, "API keys expired at the end of their overlap")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "expiring API keys"),
                }
                if let Err(e) = keys::sync(s).await {
                    tracing::warn!(error = ?e, "publishing API keys");
                }
            }
            let hot = s.hot.borrow().clone();
            if let Ok(infos) = s.bus.dlq_info(GROUPS).await {
                let now = mutt_core::now_ms();
                for i in infos {
                    metrics().observe_dlq(&i.group, i.depth, i.oldest_age_secs(now));
                }
            }
            if !hot.dlq_replay_interval.is_zero()
                && last_replay.elapsed() >= hot.dlq_replay_interval
            {
                last_replay = tokio::time::Instant::now();
                self.remediate(
                    hot.dlq_replay_batch as usize,
                    hot.dlq_max_replays,
                    hot.dlq_replay_interval,
                )
                .await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SYNC_EVERY) => {}
            }
        }
    }

    /// One round of automatic replay, by one control replica at a time.
    async fn remediate(&self, batch: usize, max_replays: u64, interval: Duration) {
        let s = &self.state;
        match s
            .bus
            .try_lock("remediation", &self.consumer, interval)
            .await
        {
            Ok(true) => {}
            _ => return,
        }
        for g in [ALERTER_GROUP, FORWARDER_GROUP] {
            // Alerts go back only when the webhook's circuit is closed: replaying into an
            // outage would only send them back here.
            if g == FORWARDER_GROUP {
                match s.bus.circuit_state(WEBHOOK).await {
                    Ok(CircuitState::Closed) => {}
                    Ok(state) => {
                        tracing::info!(
                            state = state.as_str(),
                            "webhook circuit not closed; dead letters wait"
                        );
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "circuit state unknown; dead letters wait");
                        continue;
                    }
                }
            }
            match auto_replay(s, g, batch, max_replays).await {
                Ok((0, 0)) => {}
                Ok((replayed, parked)) => {
                    tracing::info!(group = g, replayed, parked, "automatic dead-letter replay")
                }
                Err(e) => tracing::warn!(error = %e, group = g, "automatic replay failed"),
            }
        }
    }
}
