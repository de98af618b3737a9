//! The alerter's rule cache: the last good [`RuleSet`], replaced whole on reload.

use mutt_core::rules::RuleSet;
use mutt_store::Store;
use mutt_telemetry::metrics;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Shared, swappable rules. Readers take an `Arc` to the current set and keep using it for
/// the whole batch, so a reload never changes the rules in the middle of a batch.
#[derive(Debug, Clone, Default)]
pub struct RuleCache {
    current: Arc<RwLock<Arc<RuleSet>>>,
    reload: Arc<Notify>,
}

impl RuleCache {
    /// The current rules.
    pub fn get(&self) -> Arc<RuleSet> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc: the value
        // inside is still a whole RuleSet.
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, rules: RuleSet) {
        let m = metrics();
        m.alerter_rules.set(rules.len() as i64);
        m.alerter_dev_hosts.set(rules.dev_host_count() as i64);
        m.alerter_teams.set(rules.team_count() as i64);
        let new = Arc::new(rules);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
    }

    /// What wakes the reloader at once (the process's control-plane link notifies it
    /// when rules, hosts or teams change).
    pub fn reload_signal(&self) -> Arc<Notify> {
        self.reload.clone()
    }

    /// Loads once. On failure the previous rules stay in use.
    pub async fn load(&self, store: &Store) -> Result<(), mutt_store::StoreError> {
        match store.load_rule_set().await {
            Ok(rules) => {
                for (id, err) in rules.rejected() {
                    tracing::warn!(rule_id = id, error = %err, "rule skipped: it cannot be compiled");
                }
                tracing::debug!(
                    rules = rules.len(),
                    dev_hosts = rules.dev_host_count(),
                    teams = rules.team_count(),
                    "rules loaded"
                );
                self.set(rules);
                metrics().alerter_reloads.inc();
                Ok(())
            }
            Err(e) => {
                metrics().alerter_reload_failures.inc();
                Err(e)
            }
        }
    }

    /// Reloads every `rule_reload_interval`, or at once when asked, until `shutdown`.
    pub async fn reload_loop(
        self,
        store: Store,
        hot: mutt_worker::Hot,
        shutdown: CancellationToken,
    ) {
        loop {
            let since = tokio::time::Instant::now();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = mutt_worker::wait_interval(&hot, since, |h| h.rule_reload_interval, &shutdown) => {}
                _ = self.reload.notified() => {}
            }
            if let Err(e) = self.load(&store).await {
                tracing::warn!(error = %e, "rule reload failed; keeping the last good rules");
            }
        }
    }
}
