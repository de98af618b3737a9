//! Live configuration: how a running process follows the control plane.
//!
//! Every process listens to `{p}:control` and also polls the snapshot every second, so an
//! announcement it missed (a reconnect, a partition) costs at most a second. A new snapshot
//! is applied whole: the hot settings are rebuilt from the start values plus the snapshot's
//! overrides and swapped in one `watch` send; work in progress finishes with the values it
//! started with. Each process reports the version it applied, which is how an operator sees
//! that a change reached every pod.

use std::sync::Arc;
use std::time::Duration;

use mutt_bus::Bus;
use mutt_bus::control::{Announcement, Applied};
use mutt_core::hot::HotConfig;
use mutt_telemetry::{LogHandle, metrics};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::KeyRing;
use crate::credentials::Credentials;

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
        let applied = Applied {
            consumer: self.consumer.clone(),
            roles: self.roles.clone(),
            version,
            generations: self.credentials.generations().borrow().clone(),
            seen_ms: mutt_core::now_ms(),
        };
        if let Err(e) = self.bus.report_applied(&applied).await {
            tracing::debug!(error = %e, "reporting the applied version");
        }
    }
}
