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

use crate::{Hot, Stream};

/// Releases its ids when dropped (see [`Leases::release_on_drop`]).
#[derive(Debug)]
pub struct Release {
    leases: Leases,
    ids: Vec<String>,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.leases.release(&self.ids);
    }
}

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

    /// Starts holding those of `ids` not held yet, and returns whether each was new: an
    /// entry already in hand (a reclaim can return it when a renewal was late) must not be
    /// processed a second time alongside the first.
    pub fn hold_new<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Vec<bool> {
        let mut g = self.lock();
        ids.into_iter().map(|id| g.insert(id.clone())).collect()
    }

    /// Releases `ids` when the returned guard is dropped: at the end of the work, or when
    /// the task doing it panics, so that a crashed task's entries are not renewed forever
    /// (they become idle and are reclaimed).
    pub fn release_on_drop(&self, ids: Vec<String>) -> Release {
        Release {
            leases: self.clone(),
            ids,
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
            let since = tokio::time::Instant::now();
            let every = |h: &mutt_core::hot::HotConfig| {
                (h.claim_timeout / 3).max(Duration::from_millis(100))
            };
            if !crate::wait_interval(&hot, since, every, &shutdown).await {
                return;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_ids_are_taken() {
        let l = Leases::default();
        let (a, b) = ("1-0".to_string(), "2-0".to_string());
        assert_eq!(l.hold_new([&a]), [true]);
        assert_eq!(l.hold_new([&a, &b]), [false, true]);
        assert_eq!(l.len(), 2);
    }

    #[tokio::test]
    async fn a_task_that_panics_releases_its_leases() {
        let l = Leases::default();
        let ids = vec!["1-0".to_string(), "2-0".to_string()];
        l.hold(&ids);
        let guard = l.release_on_drop(ids);
        let task = tokio::spawn(async move {
            let _guard = guard;
            panic!("a bug while processing");
        });
        assert!(task.await.is_err());
        assert!(l.is_empty(), "the panic released the leases");
    }
}
