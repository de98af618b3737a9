//! Reclamation and upkeep of one stream and group.
//!
//! Every claim interval a worker takes over entries idle beyond the claim timeout
//! (`XAUTOCLAIM`): the work of a consumer that crashed or hangs. An entry delivered more
//! than the maximum number of times is not processed again: it moves to the group's DLQ
//! with its provenance. Then, with a lock so that one replica does it at a time, the
//! worker removes consumers that are gone (idle and holding nothing) and trims the stream
//! below what every group has delivered and acknowledged.

use std::time::Duration;

use mutt_bus::dlq::DeadLetter;
use mutt_bus::{Bus, StreamEntry};
use mutt_telemetry::metrics;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Hot, Leases};

/// Entries claimed per page, and pages per cycle: bounds what one cycle takes into hand.
const PAGE: usize = 100;
const PAGES_PER_CYCLE: usize = 10;
/// A consumer idle this long (and holding nothing) is considered gone.
const GONE_AFTER: Duration = Duration::from_secs(3600);

/// One worker's place: a stream, its group, the worker's consumer name.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The stream.
    pub stream: String,
    /// The group.
    pub group: String,
    /// This consumer.
    pub consumer: String,
}

/// Reclaims for one worker.
#[derive(Debug)]
pub struct Reclaimer {
    /// Redis.
    pub bus: Bus,
    /// Where.
    pub stream: Stream,
    /// Hot settings (claim timeout, interval, max deliveries, trim interval).
    pub hot: Hot,
    /// The worker's leases (claimed entries are held from the moment they are claimed).
    pub leases: Leases,
}

impl Reclaimer {
    /// Runs until `shutdown`, handing reclaimed entries (with their delivery counts) to `tx`.
    pub async fn run(self, tx: mpsc::Sender<Vec<(StreamEntry, u64)>>, shutdown: CancellationToken) {
        let mut last_upkeep = tokio::time::Instant::now();
        loop {
            let since = tokio::time::Instant::now();
            if !crate::wait_interval(&self.hot, since, |h| h.claim_interval, &shutdown).await {
                return;
            }
            if let Err(e) = self.cycle(&tx, &shutdown).await {
                tracing::warn!(error = %e, group = %self.stream.group, "reclaim cycle failed");
            }
            self.observe().await;
            let trim_every = self.hot.borrow().trim_interval;
            if last_upkeep.elapsed() >= trim_every {
                last_upkeep = tokio::time::Instant::now();
                self.upkeep(trim_every).await;
            }
        }
    }

    async fn cycle(
        &self,
        tx: &mpsc::Sender<Vec<(StreamEntry, u64)>>,
        shutdown: &CancellationToken,
    ) -> Result<(), mutt_bus::BusError> {
        let s = &self.stream;
        let (timeout, max_deliveries) = {
            let h = self.hot.borrow();
            (h.claim_timeout, h.max_deliveries)
        };
        let mut start = "0-0".to_string();
        for _ in 0..PAGES_PER_CYCLE {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let page = self
                .bus
                .claim_idle(&s.stream, &s.group, &s.consumer, timeout, &start, PAGE)
                .await?;
            if !page.deleted.is_empty() {
                tracing::warn!(count = page.deleted.len(), group = %s.group, "pending entries no longer in the stream (deleted by hand?)");
                metrics()
                    .reclaimed
                    .with_label_values(&[&s.group, "deleted"])
                    .inc_by(page.deleted.len() as u64);
            }
            // Entries still in our hands (their renewal came late) are being worked on:
            // they are neither handed out again nor dead-lettered.
            let fresh = self.leases.hold_new(page.entries.iter().map(|e| &e.id));
            let mut fresh = fresh.into_iter();
            let entries: Vec<StreamEntry> = page
                .entries
                .into_iter()
                .filter(|_| fresh.next().unwrap_or(false))
                .collect();
            if !entries.is_empty() {
                let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
                let counts = self.bus.delivery_counts(&s.stream, &s.group, &ids).await?;
                let (dead, alive): (Vec<_>, Vec<_>) = entries
                    .into_iter()
                    .map(|e| {
                        let n = counts.get(&e.id).copied().unwrap_or(1);
                        (e, n)
                    })
                    .partition(|(_, n)| *n > max_deliveries);
                metrics()
                    .reclaimed
                    .with_label_values(&[&s.group, "claimed"])
                    .inc_by(alive.len() as u64);
                if !dead.is_empty() {
                    self.dead_letter(&dead).await?;
                }
                if !alive.is_empty() {
                    tracing::info!(count = alive.len(), group = %s.group, "reclaimed idle entries");
                    if tx.send(alive).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if page.next == "0-0" {
                break;
            }
            start = page.next;
        }
        Ok(())
    }

    async fn dead_letter(&self, dead: &[(StreamEntry, u64)]) -> Result<(), mutt_bus::BusError> {
        let s = &self.stream;
        let ids: Vec<String> = dead.iter().map(|(e, _)| e.id.clone()).collect();
        let failures = self.bus.failures(&s.group, &ids).await?;
        let now = mutt_core::now_ms();
        let errors: Vec<String> = dead
            .iter()
            .zip(&failures)
            .map(|((_, n), f)| match f {
                Some(f) => format!(
                    "delivered {n} times without acknowledgement; last error: {}",
                    f.last_error
                ),
                None => format!(
                    "delivered {n} times without acknowledgement (its consumers stopped or crashed)"
                ),
            })
            .collect();
        let letters: Vec<DeadLetter<'_>> = dead
            .iter()
            .zip(&failures)
            .zip(&errors)
            .map(|(((entry, n), f), why)| DeadLetter {
                entry,
                source_stream: &s.stream,
                group: &s.group,
                consumer: &s.consumer,
                delivery_count: *n,
                last_error: why,
                first_failure_ms: f.as_ref().map_or(now, |f| f.first_ms),
                last_failure_ms: f.as_ref().map_or(now, |f| f.last_ms),
            })
            .collect();
        self.bus.move_to_dlq(&letters).await?;
        self.leases.release(&ids);
        metrics()
            .dlq_moved
            .with_label_values(&[&s.group, "max_deliveries"])
            .inc_by(ids.len() as u64);
        tracing::warn!(count = ids.len(), group = %s.group, "entries past the delivery limit moved to the dead-letter queue");
        Ok(())
    }

    /// Publishes the stream's length, every group's lag and pending count, and the depth
    /// and oldest age of this group's DLQ (every worker does, so they are known without a
    /// control plane).
    async fn observe(&self) {
        let s = &self.stream.stream;
        if let Ok(infos) = self.bus.dlq_info(&[&self.stream.group]).await {
            let now = mutt_core::now_ms();
            for i in infos {
                metrics().observe_dlq(&i.group, i.depth, i.oldest_age_secs(now));
            }
        }
        if let Ok(groups) = self.bus.group_stats(s).await {
            for g in groups {
                metrics()
                    .group_pending
                    .with_label_values(&[s, &g.name])
                    .set(g.pending as i64);
                if let Some(lag) = g.lag {
                    metrics()
                        .group_lag
                        .with_label_values(&[s, &g.name])
                        .set(lag as i64);
                }
            }
        }
        if let Ok(n) = self.bus.len(s).await {
            metrics()
                .stream_length
                .with_label_values(&[s])
                .set(n as i64);
        }
    }

    /// Removes gone consumers and trims, once per interval across all replicas.
    async fn upkeep(&self, interval: Duration) {
        let s = &self.stream;
        match self
            .bus
            .try_lock(
                &format!("upkeep:{}:{}", s.stream, s.group),
                &s.consumer,
                interval,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(error = %e, "upkeep lock");
                return;
            }
        }
        match self
            .bus
            .remove_idle_consumers(&s.stream, &s.group, GONE_AFTER, &s.consumer)
            .await
        {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(consumers = ?gone, group = %s.group, "removed consumers that are gone");
                metrics()
                    .consumers_removed
                    .with_label_values(&[&s.group])
                    .inc_by(gone.len() as u64);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing gone consumers failed"),
        }
        match self.bus.trim_acknowledged(&s.stream).await {
            Ok(Some(t)) if t.removed > 0 => {
                tracing::debug!(stream = %s.stream, removed = t.removed, below = %t.min_id, "trimmed");
                metrics()
                    .trimmed
                    .with_label_values(&[&s.stream])
                    .inc_by(t.removed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "trimming failed"),
        }
        if let Ok(n) = self.bus.len(&s.stream).await {
            metrics()
                .stream_length
                .with_label_values(&[&s.stream])
                .set(n as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutt_bus::{NewEntry, TraceContext};
    use mutt_core::hot::HotConfig;
    use std::sync::Arc;

    /// Reclaiming must never hand out, nor dead-letter, an entry this worker still holds:
    /// when a lease renewal comes late, the entry looks idle to our own reclaimer, and it
    /// would be processed a second time alongside the first.
    #[tokio::test]
    async fn entries_in_hand_are_not_reclaimed_again() -> anyhow::Result<()> {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("reclaim-test-{}", uuid::Uuid::new_v4().simple());
        let bus = Bus::connect(&url, &prefix).await?;
        let stream = bus.names().events();
        bus.ensure_group(&stream, "alerter").await?;
        bus.append(
            &stream,
            &[NewEntry::new(b"x".to_vec(), TraceContext::default())],
        )
        .await?;
        let mut reader = bus
            .reader(&stream, "alerter", "c1", Duration::from_millis(50))
            .await?;
        reader.read(10).await?;
        let entries = reader.read(10).await?;
        assert_eq!(entries.len(), 1);
        let leases = Leases::default();
        leases.hold(entries.iter().map(|e| &e.id));
        let (hot_tx, hot) = tokio::sync::watch::channel(Arc::new(HotConfig {
            claim_timeout: Duration::from_millis(500),
            max_deliveries: 1,
            ..HotConfig::default()
        }));
        let reclaimer = Reclaimer {
            bus: bus.clone(),
            stream: Stream {
                stream: stream.clone(),
                group: "alerter".into(),
                consumer: "c1".into(),
            },
            hot,
            leases: leases.clone(),
        };
        let (tx, mut rx) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        tokio::time::sleep(Duration::from_millis(600)).await;
        reclaimer.cycle(&tx, &shutdown).await?;
        assert!(rx.try_recv().is_err(), "handed out again while in hand");
        assert_eq!(
            bus.len(&bus.names().dlq("alerter")).await?,
            0,
            "dead-lettered while in hand"
        );
        // Once released (the work was abandoned), it is reclaimed as it should be.
        leases.release(entries.iter().map(|e| &e.id));
        hot_tx.send_modify(|h| Arc::make_mut(h).max_deliveries = 10);
        tokio::time::sleep(Duration::from_millis(600)).await;
        reclaimer.cycle(&tx, &shutdown).await?;
        let got = rx.try_recv()?;
        assert_eq!(got[0].0.id, entries[0].id);
        Ok(())
    }
}
