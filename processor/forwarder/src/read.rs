//! Reading alerts: as many as there is room for in hand, none while the circuit is open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mutt_bus::StreamEntry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use mutt_worker::consumer::Reader;
use mutt_worker::{Hot, sleep_or_shutdown};

/// Reads alerts while there is room in hand and the circuit is closed. Runs in its own
/// task so that a blocking read is never cancelled half-way.
pub(crate) async fn read_loop(
    mut reader: Reader,
    hot: Hot,
    mut capacity: Capacity,
    paused: Arc<AtomicBool>,
    tx: mpsc::Sender<(StreamEntry, OwnedSemaphorePermit)>,
    shutdown: CancellationToken,
) {
    let mut changes = hot.clone();
    while !shutdown.is_cancelled() {
        // An open circuit: reading more would only fill memory with alerts that wait.
        if paused.load(Ordering::Relaxed) {
            if sleep_or_shutdown(Duration::from_millis(100), &shutdown).await {
                return;
            }
            continue;
        }
        capacity.follow(changes.borrow_and_update().forwarder_batch as usize);
        let permits = &capacity.permits;
        // Wait for room for at least one alert, then take what is free up to a batch; a
        // change of the settings (a larger batch makes room) is looked at while waiting.
        let mut pool = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let batch = hot.borrow().forwarder_batch as usize;
        let extra = permits.available_permits().min(batch.saturating_sub(1));
        if extra > 0
            && let Ok(more) = permits.clone().try_acquire_many_owned(extra as u32)
        {
            pool.merge(more);
        }
        let Some(entries) = reader.read(pool.num_permits(), &shutdown).await else {
            return;
        };
        for entry in entries {
            // The read asked for at most as many entries as there are permits.
            let Some(permit) = pool.split(1) else { return };
            if tx.send((entry, permit)).await.is_err() {
                return;
            }
        }
    }
}

/// How many alerts a forwarder holds at once: enough to keep every delivery slot busy plus
/// a read batch (`forwarder_batch`, a hot setting: the size follows it).
#[derive(Debug)]
pub(crate) struct Capacity {
    pub(crate) permits: Arc<Semaphore>,
    /// The size now.
    pub(crate) size: usize,
    /// Delivery slots (2 alerts each in hand: one in flight, one ready).
    pub(crate) in_flight: usize,
    /// Permits still to take away after a shrink: those in use come back first.
    pub(crate) owed: usize,
}

impl Capacity {
    pub(crate) fn follow(&mut self, batch: usize) {
        let want = self.in_flight * 2 + batch;
        if want > self.size {
            let grow = want - self.size;
            // Growth first pays what a shrink still owes.
            let paid = grow.min(self.owed);
            self.owed -= paid;
            self.permits.add_permits(grow - paid);
        } else {
            self.owed += self.size - want;
        }
        self.size = want;
        if self.owed > 0 {
            self.owed -= self.permits.forget_permits(self.owed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn the_capacity_follows_the_batch_setting() {
        let permits = Arc::new(Semaphore::new(2 * 2 + 10));
        let mut c = Capacity {
            permits: permits.clone(),
            size: 14,
            in_flight: 2,
            owed: 0,
        };
        c.follow(20);
        assert_eq!(permits.available_permits(), 24);
        // Shrinking while 20 are in hand: the 4 free go at once, the rest as they return.
        let held = permits.clone().try_acquire_many_owned(20).unwrap();
        c.follow(4);
        assert_eq!((permits.available_permits(), c.owed), (0, 12));
        drop(held);
        c.follow(4);
        assert_eq!((permits.available_permits(), c.owed), (8, 0));
        c.follow(10);
        assert_eq!(permits.available_permits(), 14);
    }
}
