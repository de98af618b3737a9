//! What the control plane does on its own: publishing the newest snapshot and the live
//! keys to Redis (so a Redis that lost them, or a change whose publication failed, is
//! repaired within seconds), expiring rotated keys, and replaying dead letters when the
//! downstream is healthy (with a budget, and parking letters that keep failing).

use std::sync::Arc;
use std::time::Duration;

use mutt_bus::guard::{CircuitState, WEBHOOK};
use mutt_bus::names::{ALERTER_GROUP, FORWARDER_GROUP};
use mutt_telemetry::metrics;
use tokio_util::sync::CancellationToken;

use super::ControlState;
use super::service::dlq::{GROUPS, auto_replay};
use super::service::{keys, settings};

const SYNC_EVERY: Duration = Duration::from_secs(5);
// Expiring keys promptly matters: the end of a rotation overlap is audited by this loop.
const KEYS_EVERY: Duration = Duration::from_secs(5);

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
