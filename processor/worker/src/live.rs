//! Live configuration: how a running process follows the control plane.
//!
//! Every process listens to `{p}:control` and also polls the snapshot every second, so an
//! announcement it missed (a reconnect, a partition) costs at most a second. A new snapshot
//! is applied whole: the hot settings are rebuilt from the start values plus the snapshot's
//! overrides and swapped in one `watch` send; work in progress finishes with the values it
//! started with. Each process reports the version it applied, which is how an operator sees
//! that a change reached every pod, with its readiness and its counters (the console's
//! overview reads these heartbeats instead of every process's ops listener).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mutt_bus::Bus;
use mutt_bus::control::{Announcement, Applied};
use mutt_core::hot::HotConfig;
use mutt_telemetry::metrics::{by_result, counter_total, gauge_values};
use mutt_telemetry::{LogHandle, metrics};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::KeyRing;
use crate::credentials::Credentials;
use crate::ops::OpsState;

/// How often the snapshot version is polled.
const POLL: Duration = Duration::from_secs(1);
/// How often the applied version is reported even without a change (a heartbeat).
const REPORT: Duration = Duration::from_secs(5);

/// A process's link to the control plane.
#[derive(Debug)]
pub struct Live {
    /// Redis.
    pub bus: Bus,
    /// The hot settings at start (environment, file, defaults): every snapshot applies to these.
    pub base: HotConfig,
    /// Where the current hot settings are published to the roles.
    pub hot: watch::Sender<Arc<HotConfig>>,
    /// The roles of this process.
    pub roles: Vec<String>,
    /// This process's consumer name.
    pub consumer: String,
    /// Changes the log level.
    pub log: LogHandle,
    /// Notified when rules, hosts or teams changed (the alerter reloads them at once).
    pub rules_changed: Option<Arc<tokio::sync::Notify>>,
    /// The API keys, to reload on announcement.
    pub keys: Option<KeyRing>,
    /// The credentials, to follow rotations; their generations are reported with the
    /// version.
    pub credentials: Credentials,
    /// What `/ready` checks: the heartbeat reports the same readiness.
    pub ops: OpsState,
}

impl Live {
    /// Follows the control plane until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let bus = self.bus.clone();
        let listener = tokio::spawn(async move { bus.listen_control(tx).await });
        let mut version = 0i64;
        let mut last_report = tokio::time::Instant::now() - REPORT;
        let mut generations = self.credentials.generations();
        loop {
            self.sync(&mut version).await;
            self.follow_secrets().await;
            if generations.has_changed().unwrap_or(false) {
                // A credential step applied here: say so now, not at the next heartbeat,
                // so that the operator waiting to retire the old value sees it.
                last_report = tokio::time::Instant::now() - REPORT;
                generations.mark_unchanged();
            }
            if let Some(keys) = &self.keys
                && let Err(e) = keys.reload(&self.bus).await
            {
                tracing::debug!(error = %e, "reloading API keys");
            }
            if last_report.elapsed() >= REPORT {
                self.report(version).await;
                last_report = tokio::time::Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
                // A credential applied in the background (a new database pool): report it.
                Ok(()) = generations.changed() => {
                    last_report = tokio::time::Instant::now() - REPORT;
                }
                Some(a) = rx.recv() => match a {
                    Announcement::Config { .. } => {}
                    Announcement::Rules => {
                        if let Some(r) = &self.rules_changed {
                            r.notify_one();
                        }
                    }
                    Announcement::Keys => {}
                    Announcement::Secrets { name, generation } => {
                        tracing::debug!(secret = %name, generation, "secret rotation announced");
                    }
                },
            }
        }
        listener.abort();
    }

    /// Applies the stored snapshot if it is newer than `version`.
    async fn sync(&self, version: &mut i64) {
        let snapshot = match self.bus.snapshot().await {
            Ok(Some(s)) if s.version > *version => s,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "reading the config snapshot");
                return;
            }
        };
        let (cfg, errors) = HotConfig::with_overrides(
            &self.base,
            snapshot
                .values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        for e in errors {
            tracing::warn!(error = %e, version = snapshot.version, "snapshot value not applied");
        }
        let previous = self.hot.borrow().clone();
        if cfg.log_level != previous.log_level
            && let Err(e) = self.log.set_level(&cfg.log_level)
        {
            tracing::warn!(error = %e, "log level not applied");
        }
        self.hot.send_replace(Arc::new(cfg));
        *version = snapshot.version;
        metrics().config_version.set(snapshot.version);
        tracing::info!(version = snapshot.version, "configuration applied");
        self.report(snapshot.version).await;
    }

    /// Adopts newer secret states from the store, and changed secret files.
    async fn follow_secrets(&self) {
        if let Err(e) = self.credentials.sync(&self.bus).await {
            tracing::debug!(error = %e, "reading the secret store");
        }
        let (_, api_key_changed) = self.credentials.check_files();
        if api_key_changed && let (Some(keys), Some(k)) = (&self.keys, self.credentials.api_key()) {
            keys.rotate_bootstrap(&k, self.credentials.file_overlap());
        }
    }

    async fn report(&self, version: i64) {
        let (ready, checks) = self.ops.readiness().await;
        let applied = Applied {
            consumer: self.consumer.clone(),
            roles: self.roles.clone(),
            version,
            generations: self.credentials.generations().borrow().clone(),
            seen_ms: mutt_core::now_ms(),
            ready: Some(ready),
            checks,
            stats: stats(&self.roles),
        };
        if let Err(e) = self.bus.report_applied(&applied).await {
            tracing::debug!(error = %e, "reporting the applied version");
        }
    }
}

/// This process's counters for its heartbeat, only those of the roles it runs: a key is
/// present exactly when the process produces it, so the console sums a key over processes
/// without counting a zero of a process that cannot move it.
fn stats(roles: &[String]) -> BTreeMap<String, f64> {
    let m = metrics();
    let has = |r: &str| roles.iter().any(|x| x == r);
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: u64| {
        out.insert(k.to_string(), v as f64);
    };
    if has("ingest") {
        put("events_accepted", by_result(&m.ingest_events, "accepted"));
        put("events_rejected", by_result(&m.ingest_events, "rejected"));
        put("events_shed", counter_total(&m.ingest_shed));
    }
    if has("alerter") {
        put("events_processed", counter_total(&m.alerter_events));
        put("alerts_raised", counter_total(&m.alerter_alerts));
        // Outages hold batches (they never dead-letter them): how many are held now.
        put(
            "writes_held",
            gauge_values(&m.writes_held).iter().sum::<i64>().max(0) as u64,
        );
    }
    if has("forwarder") {
        // An alert counts as delivered once its 2xx was acknowledged (`success`), and as
        // dead-lettered once it is in the DLQ (`dlq`): the two final outcomes.
        put(
            "alerts_delivered",
            m.moog_alerts.with_label_values(&["success"]).get(),
        );
        put(
            "alerts_dead_lettered",
            m.moog_alerts.with_label_values(&["dlq"]).get(),
        );
        put("rate_limit_hits", m.rate_limit_waits.get());
        // The breaker gauge is 0 closed, 1 open, 2 half-open: only open stops deliveries.
        put(
            "breaker_open",
            u64::from(gauge_values(&m.breaker_state).contains(&1)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_those_of_the_roles_run() {
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let keys = |r: &[&str]| stats(&roles(r)).into_keys().collect::<Vec<_>>();
        assert_eq!(
            keys(&["ingest", "control"]),
            ["events_accepted", "events_rejected", "events_shed"]
        );
        assert_eq!(
            keys(&["alerter"]),
            ["alerts_raised", "events_processed", "writes_held"]
        );
        assert_eq!(
            keys(&["forwarder"]),
            [
                "alerts_dead_lettered",
                "alerts_delivered",
                "breaker_open",
                "rate_limit_hits"
            ]
        );
        assert!(keys(&["control"]).is_empty());
        metrics()
            .moog_alerts
            .with_label_values(&["success"])
            .inc_by(3);
        assert!(stats(&roles(&["forwarder"]))["alerts_delivered"] >= 3.0);
    }
}
