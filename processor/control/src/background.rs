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
        let mut told = false;
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
            let allowed = hot.retention_enabled
                && due
                && !waiting
                && {
                    // A deployment may leave retention to a CronJob with its own database user:
                    // then this one lacks the privilege, and the schedule says so once.
                    let may = s.store.may_run_retention().await.unwrap_or(false);
                    if !may && !told {
                        tracing::info!(
                            "retention is not run here: this database user is not a member of mutt_retention (a `mutt retention` CronJob runs it)"
                        );
                        told = true;
                    }
                    if !may {
                        retry_at = Some(tokio::time::Instant::now() + hot.retention_interval);
                    }
                    may
                };
            if allowed {
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
        let mut pace = Pace::default();
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
            if let Ok(parked) = s.bus.parked_depths(GROUPS).await {
                for (g, n) in parked {
                    metrics()
                        .dlq_parked
                        .with_label_values(&[&g])
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            if !hot.dlq_replay_interval.is_zero()
                && last_replay.elapsed() >= hot.dlq_replay_interval
            {
                last_replay = tokio::time::Instant::now();
                self.remediate(
                    &mut pace,
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

    /// One round of automatic replay per DLQ, by one control replica at a time (a lease
    /// as long as the interval). Each DLQ has its health gate, and backs off while what it
    /// replays comes back.
    async fn remediate(&self, pace: &mut Pace, batch: usize, max_replays: u64, interval: Duration) {
        let s = &self.state;
        match s
            .bus
            .try_lock("remediation", &self.consumer, interval)
            .await
        {
            Ok(true) => {}
            _ => return,
        }
        let m = metrics();
        m.remediation_last_round
            .set(time::OffsetDateTime::now_utc().unix_timestamp());
        for g in [ALERTER_GROUP, FORWARDER_GROUP] {
            if pace.waiting(g) {
                m.remediation_rounds
                    .with_label_values(&[g, "backoff"])
                    .inc();
                continue;
            }
            let budget = match self.gate(g).await {
                Gate::Healthy => batch,
                Gate::Probe => 1,
                Gate::Shut(why) => {
                    tracing::info!(group = g, why, "dead letters wait");
                    m.remediation_rounds.with_label_values(&[g, "gated"]).inc();
                    continue;
                }
            };
            match auto_replay(s, g, budget, max_replays).await {
                Ok(round) => {
                    pace.after(g, &round, interval);
                    let outcome = if round.replayed > 0 {
                        "replayed"
                    } else {
                        "idle"
                    };
                    m.remediation_rounds.with_label_values(&[g, outcome]).inc();
                    m.remediation_replayed
                        .with_label_values(&[g])
                        .inc_by(round.replayed as u64);
                    if round.replayed + round.parked > 0 {
                        tracing::info!(
                            group = g,
                            replayed = round.replayed,
                            parked = round.parked,
                            returned = round.returned,
                            probe = budget == 1,
                            "automatic dead-letter replay"
                        );
                    }
                }
                Err(e) => {
                    m.remediation_rounds.with_label_values(&[g, "failed"]).inc();
                    tracing::warn!(error = %e, group = g, "automatic replay failed");
                }
            }
        }
    }

    /// Whether the downstream of `g`'s letters can take them now.
    async fn gate(&self, g: &str) -> Gate {
        let s = &self.state;
        if g == FORWARDER_GROUP {
            // A closed circuit means the webhook answers. An open one after an outage
            // stays open in a quiet system until a request probes it: one replayed alert
            // (a real one) is that probe, and its success closes the circuit for the rest.
            return match s.bus.circuit_state(WEBHOOK).await {
                Ok(CircuitState::Closed) => Gate::Healthy,
                Ok(_) => Gate::Probe,
                Err(_) => Gate::Shut("the circuit's state is unknown"),
            };
        }
        // Alerter letters need PostgreSQL to take their audit rows.
        match s.store.accepts_writes().await {
            Ok(true) => Gate::Healthy,
            _ => Gate::Shut("PostgreSQL does not accept writes"),
        }
    }
}

/// What a DLQ's downstream allows this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Replay up to the batch.
    Healthy,
    /// Replay one letter, as the probe of an open circuit.
    Probe,
    /// Replay nothing.
    Shut(&'static str),
}

/// Rounds per DLQ back off exponentially (up to 64 intervals) while the letters they
/// replay come back, and return to every interval once a round sees none come back.
#[derive(Debug, Default)]
struct Pace {
    /// (doublings, not before) per DLQ.
    groups: std::collections::HashMap<String, (u32, tokio::time::Instant)>,
}

impl Pace {
    fn waiting(&self, g: &str) -> bool {
        self.groups
            .get(g)
            .is_some_and(|(_, at)| tokio::time::Instant::now() < *at)
    }

    fn after(&mut self, g: &str, round: &super::service::dlq::Round, interval: Duration) {
        let entry = self
            .groups
            .entry(g.to_string())
            .or_insert((0, tokio::time::Instant::now()));
        if round.returned > 0 {
            entry.0 = (entry.0 + 1).min(6);
            // The next regular round comes one interval from now; the backoff adds to it.
            entry.1 = tokio::time::Instant::now() + interval * ((1 << entry.0) - 1);
        } else {
            *entry = (0, tokio::time::Instant::now());
        }
    }
}
