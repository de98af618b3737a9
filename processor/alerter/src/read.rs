//! Reading events, and not reading them while the forwarders are behind (backpressure).

use std::time::Duration;

use mutt_bus::Bus;
use mutt_bus::names::FORWARDER_GROUP;
use mutt_telemetry::metrics;
use mutt_worker::consumer::Reader;
use mutt_worker::{Hot, sleep_or_shutdown};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Batch;

/// The alerters' side of backpressure: while the forwarders' backlog on `{p}:alerts` (lag
/// plus pending) is over `alerter_max_alert_lag`, no new events are read. They wait in
/// `{p}:events`, where ingest's admission control sees them and sheds load as configured,
/// instead of piling up as alerts in Redis while the webhook is down.
#[derive(Debug)]
pub(crate) struct Backpressure {
    pub(crate) bus: Bus,
    pub(crate) alerts: String,
    pub(crate) paused: bool,
}

/// How often a paused alerter looks at the forwarders' backlog again.
pub(crate) const BACKPRESSURE_POLL: Duration = Duration::from_millis(200);

impl Backpressure {
    /// Returns when a batch may be read (at once when the cap is off or the forwarders
    /// keep up), or false when `shutdown` came first. The backlog is measured before every
    /// read, so the alerts stream overshoots the cap by at most the batches in flight.
    pub(crate) async fn wait(&mut self, hot: &Hot, shutdown: &CancellationToken) -> bool {
        loop {
            let cap = hot.borrow().alerter_max_alert_lag;
            if cap == 0 {
                self.set(false, 0, cap);
                return true;
            }
            match self.bus.group_backlog(&self.alerts, FORWARDER_GROUP).await {
                Ok(backlog) if backlog > cap => {
                    self.set(true, backlog, cap);
                    if sleep_or_shutdown(BACKPRESSURE_POLL, shutdown).await {
                        return false;
                    }
                }
                Ok(backlog) => {
                    self.set(false, backlog, cap);
                    return true;
                }
                // Not knowing the backlog is no reason to stop: the read itself will fail
                // and back off if Redis is gone.
                Err(e) => {
                    tracing::debug!(error = %e, "measuring the forwarders' backlog");
                    return true;
                }
            }
        }
    }

    pub(crate) fn set(&mut self, paused: bool, backlog: u64, cap: u64) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        metrics().alerter_paused.set(i64::from(paused));
        if paused {
            metrics().alerter_backpressure.inc();
            tracing::info!(backlog, cap, "forwarders behind: reading events paused");
        } else {
            tracing::info!(backlog, cap, "forwarders caught up: reading events again");
        }
    }
}

/// Reads batches until `shutdown`, handing them to the processor. Reading runs in its own
/// task so that a blocking read is never cancelled half-way (its entries would be
/// delivered to us and then dropped).
pub(crate) async fn read_loop(
    mut reader: Reader,
    mut backpressure: Backpressure,
    hot: Hot,
    tx: mpsc::Sender<Batch>,
    shutdown: CancellationToken,
) {
    loop {
        if !backpressure.wait(&hot, &shutdown).await {
            return;
        }
        let count = hot.borrow().alerter_batch as usize;
        match reader.read(count, &shutdown).await {
            None => return,
            Some(entries) if entries.is_empty() => {}
            Some(entries) => {
                if tx.send(Batch { entries }).await.is_err() {
                    return;
                }
            }
        }
    }
}
