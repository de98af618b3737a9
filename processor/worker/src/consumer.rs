//! One consumer of a consumer group, the skeleton the alerter and the forwarder share.
//!
//! Starting a consumer creates its group (idempotent), opens its reader, and starts the two
//! background tasks every consumer needs: the lease keeper (entries in hand never look
//! idle to the other replicas) and the reclaimer (entries another consumer left idle are
//! taken over, or dead-lettered past the delivery limit). The role keeps only what is its
//! own: what it does with an entry.

use std::time::Duration;

use mutt_bus::{Bus, GroupReader, StreamEntry};
use mutt_telemetry::metrics;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Hot, Leases, Reclaimer, Stream, backoff, retry, sleep_or_shutdown};

/// Entries reclaimed from idle consumers, with their delivery counts.
pub type Reclaimed = Vec<(StreamEntry, u64)>;

/// One consumer of a group: where it reads, and what it holds.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Redis.
    pub bus: Bus,
    /// The stream, group and consumer name.
    pub place: Stream,
    /// Hot settings (lease and reclaim intervals, delivery limit).
    pub hot: Hot,
    /// The entries in hand.
    pub leases: Leases,
    /// How long one read blocks waiting for entries.
    pub read_block: Duration,
    /// The role, for metrics (`dependency_errors{role}`) and logs.
    pub role: &'static str,
}

/// A started consumer: its reader, what the background tasks hand over, and the tasks.
/// The parts are separate so that the reader can run in a task of its own (a blocking
/// read must never be cancelled half-way: its entries would be delivered and dropped).
#[derive(Debug)]
pub struct Started {
    /// Reads new entries.
    pub reader: Reader,
    /// Entries reclaimed from consumers that left them idle; closed at shutdown.
    pub reclaimed: mpsc::Receiver<Reclaimed>,
    /// Entries in hand that another consumer reclaimed meanwhile (already released).
    pub lost: mpsc::UnboundedReceiver<Vec<String>>,
    /// The lease keeper, the reclaimer, and whatever the role adds.
    pub background: Background,
}

/// The background tasks of a consumer.
#[derive(Debug)]
pub struct Background {
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Background {
    /// Runs another task of the role's (say, a reload loop) until [`Background::stop`];
    /// it is given the token that stops it.
    pub fn spawn<F>(&mut self, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task(self.stop.clone()));
    }

    /// Stops the tasks and waits for them. Call it once the last entry in hand has been
    /// settled: until then its lease must be renewed.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Consumer {
    /// Creates the group, opens the reader and starts the lease keeper and the
    /// reclaimer. The reclaimer stops at `shutdown`; the lease keeper runs until
    /// [`Background::stop`], so that entries are renewed for as long as they are in hand.
    pub async fn start(&self, shutdown: &CancellationToken) -> anyhow::Result<Started> {
        let Stream {
            stream,
            group,
            consumer,
        } = &self.place;
        retry("create consumer group", shutdown, || {
            self.bus.ensure_group(stream, group)
        })
        .await?;
        let reader = retry("open reader", shutdown, || {
            self.bus.reader(stream, group, consumer, self.read_block)
        })
        .await?;
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let (lost_tx, lost) = mpsc::unbounded_channel();
        tasks.spawn(self.leases.clone().keep(
            self.bus.clone(),
            self.place.clone(),
            self.hot.clone(),
            Some(lost_tx),
            stop.clone(),
        ));
        let (reclaimed_tx, reclaimed) = mpsc::channel(1);
        let reclaimer = Reclaimer {
            bus: self.bus.clone(),
            stream: self.place.clone(),
            hot: self.hot.clone(),
            leases: self.leases.clone(),
        };
        tasks.spawn(reclaimer.run(reclaimed_tx, shutdown.clone()));
        Ok(Started {
            reader: Reader {
                reader,
                leases: self.leases.clone(),
                role: self.role,
                attempt: 0,
            },
            reclaimed,
            lost,
            background: Background { tasks, stop },
        })
    }
}

/// Reads new entries for one consumer, holding what it reads.
#[derive(Debug)]
pub struct Reader {
    reader: GroupReader,
    leases: Leases,
    role: &'static str,
    attempt: u32,
}

impl Reader {
    /// Reads up to `count` new entries and holds them. An empty batch means none arrived
    /// within the block time, or a read failed (counted, logged, and backed off here, so
    /// that every role backs off alike). None: `shutdown` came first.
    pub async fn read(
        &mut self,
        count: usize,
        shutdown: &CancellationToken,
    ) -> Option<Vec<StreamEntry>> {
        if shutdown.is_cancelled() {
            return None;
        }
        match self.reader.read(count).await {
            Ok(entries) => {
                self.attempt = 0;
                self.leases.hold(entries.iter().map(|e| &e.id));
                Some(entries)
            }
            Err(e) => {
                metrics()
                    .dependency_errors
                    .with_label_values(&[self.role, "redis"])
                    .inc();
                tracing::warn!(role = self.role, error = %e, "reading the stream failed; retrying");
                if sleep_or_shutdown(backoff(self.attempt), shutdown).await {
                    return None;
                }
                self.attempt = self.attempt.saturating_add(1);
                Some(Vec::new())
            }
        }
    }
}
