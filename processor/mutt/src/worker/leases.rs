//! Leases on the entries a worker holds.
//!
//! Reclamation takes entries idle longer than the claim timeout. An entry a worker is still
//! working on (a batch waiting for PostgreSQL to come back, an alert waiting for its retry)
//! must not look idle, or a second worker would process it too. The lease keeper resets the
//! idle time of every entry in hand every third of the claim timeout.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mutt_bus::Bus;
use mutt_telemetry::metrics;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Hot, Stream};

/// The ids a worker holds.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    ids: Arc<Mutex<HashSet<String>>>,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        match self.ids.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Starts holding `ids`.
    pub fn hold<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let mut g = self.lock();
        for id in ids {
            g.insert(id.clone());
        }
    }

    /// Stops holding `ids` (acknowledged, dead-lettered, or lost).
    pub fn release<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let mut g = self.lock();
        for id in ids {
            g.remove(id);
        }
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// Renews the leases until `shutdown`. Entries another consumer took meanwhile are
    /// released and, if `lost` is given, reported there.
    pub async fn keep(
        self,
        bus: Bus,
        stream: Stream,
        hot: Hot,
        lost: Option<mpsc::UnboundedSender<Vec<String>>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let every = (hot.borrow().claim_timeout / 3).max(Duration::from_millis(100));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let ids = self.snapshot();
            if ids.is_empty() {
                continue;
            }
            match bus
                .renew(&stream.stream, &stream.group, &stream.consumer, &ids)
                .await
            {
                Ok(gone) if !gone.is_empty() => {
                    tracing::warn!(count = gone.len(), group = %stream.group, "entries in hand were reclaimed by another consumer");
                    metrics()
                        .leases_lost
                        .with_label_values(&[&stream.group])
                        .inc_by(gone.len() as u64);
                    self.release(&gone);
                    if let Some(tx) = &lost {
                        let _ = tx.send(gone);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "renewing leases failed; retrying at the next interval")
                }
            }
        }
    }
}
