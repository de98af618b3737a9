//! The forwarder: consumer group `forwarder` on `{p}:alerts`, delivering to the webhook.
//!
//! Deliveries run concurrently, one alert per request or batched (`{"events": [...]}`). A
//! failed delivery is scheduled again with exponential backoff and full jitter (honouring
//! `Retry-After`) without holding up the others. Two guards are shared by every replica
//! through Redis: a rate limit (alerts over it wait, none is dropped) and a circuit
//! breaker (while it is open nothing is sent, no attempt is spent, and reading pauses;
//! after the open period one probe decides). An alert is acknowledged only after a 2xx,
//! or after it was moved to the DLQ: refused with a 4xx, or out of attempts.
//!
//! # Layout
//!
//! - this file: the forwarder and its loop, which owns all the state below (one task, no
//!   locks): what arrives is taken into hand, what is ready is dispatched, what returns
//!   is settled.
//! - [`read`]: reading alerts while there is room in hand and the circuit is closed.
//! - [`book`]: the alerts in hand, their schedule, the deliveries in flight.
//! - [`gate`]: what may be sent now (circuit, rate limit, slots, batches) and sending it.
//! - [`settle`]: a delivery's outcome: acknowledged, retried with jitter, dead-lettered.
//! - [`webhook`]: the HTTP request and what its answer means.

pub mod book;
pub mod gate;
pub mod read;
pub mod settle;
pub mod webhook;

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mutt_bus::guard::CircuitState;
use mutt_bus::names::FORWARDER_GROUP;
use mutt_bus::{Bus, StreamEntry};
use mutt_core::event::Limits;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::book::{Book, Running};
use self::gate::Gate;
use self::read::{Capacity, read_loop};
use self::webhook::Webhook;
use mutt_worker::consumer::{Consumer, Started};
use mutt_worker::{Hot, Leases, Stream};

/// Everything the forwarder needs.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// Redis.
    pub bus: Bus,
    /// The webhook.
    pub webhook: Webhook,
    /// Webhook requests in flight at once.
    pub concurrency: usize,
    /// Hot settings.
    pub hot: Hot,
    /// Alert limits (re-checked on decode).
    pub limits: Limits,
    /// This consumer's name (also the payload's `agent_location`).
    pub consumer: String,
    /// XREADGROUP block time.
    pub read_block: Duration,
    /// The entries in hand.
    pub leases: Leases,
}

impl Forwarder {
    /// Runs until `shutdown`; then finishes the deliveries in flight and returns. Alerts
    /// read but not yet sent stay pending for a later delivery.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let consumer = Consumer {
            bus: self.bus.clone(),
            place: Stream {
                stream: self.bus.names().alerts(),
                group: FORWARDER_GROUP.into(),
                consumer: self.consumer.clone(),
            },
            hot: self.hot.clone(),
            leases: self.leases.clone(),
            read_block: self.read_block,
            role: "forwarder",
        };
        let Started {
            reader,
            reclaimed: mut claimed_rx,
            mut lost,
            background,
        } = consumer.start(&shutdown).await?;
        // Alerts held at once: enough to keep every delivery slot busy plus a read batch.
        let capacity = self.concurrency * 2 + self.hot.borrow().forwarder_batch as usize;
        let permits = Arc::new(Semaphore::new(capacity));
        let paused = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = mpsc::channel::<(StreamEntry, OwnedSemaphorePermit)>(capacity);
        let read_task = tokio::spawn(read_loop(
            reader,
            self.hot.clone(),
            Capacity {
                permits,
                size: capacity,
                in_flight: self.concurrency,
                owed: 0,
            },
            paused.clone(),
            tx,
            shutdown.clone(),
        ));
        tracing::info!(consumer = %self.consumer, "forwarder started");

        let mut book = Book::default();
        let mut running = Running::default();
        let mut gate = Gate {
            state: CircuitState::Closed,
            checked: None,
            failures: 0,
            probing: false,
            blocked_until: None,
            auth_logged: None,
        };
        let (mut reading, mut claiming) = (true, true);
        loop {
            let hot = self.hot.borrow().clone();
            let stopping = shutdown.is_cancelled();
            let mut wake: Option<Instant> = book.later.peek().map(|Reverse((t, _))| *t);
            if !stopping
                && let Some(w) = self
                    .dispatch(&hot, &mut book, &mut gate, &mut running)
                    .await
            {
                wake = Some(wake.map_or(w, |x| x.min(w)));
            }
            // Reading pauses while the circuit is not closed, but only with alerts in hand
            // to probe it with: if every replica paused empty-handed, none would probe.
            paused.store(
                gate.state != CircuitState::Closed && !book.ready.is_empty(),
                Ordering::Relaxed,
            );
            if stopping && running.is_empty() {
                break;
            }
            if !reading && !claiming && book.held.is_empty() && running.is_empty() {
                break;
            }
            let sleep_until = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                got = rx.recv(), if reading && !stopping => match got {
                    Some((entry, permit)) => self.take(entry, Some(permit), &mut book),
                    None => reading = false,
                },
                got = claimed_rx.recv(), if claiming && !stopping => match got {
                    Some(entries) => for (e, _) in entries { self.take(e, None, &mut book) },
                    None => claiming = false,
                },
                Some(lost) = lost.recv() => {
                    for id in lost {
                        book.held.remove(&id);
                    }
                    book.ready.retain(|id| book.held.contains_key(id));
                }
                Some(done) = running.tasks.join_next_with_id(), if !running.is_empty() => {
                    let mut results = vec![running.finished(done)];
                    while let Some(more) = running.tasks.try_join_next_with_id() {
                        results.push(running.finished(more));
                    }
                    for (ids, d, took) in results {
                        self.settle(&hot, ids, d, took, &mut book, &mut gate).await;
                    }
                }
                _ = tokio::time::sleep_until(sleep_until), if !stopping => {
                    let now = Instant::now();
                    while let Some(Reverse((t, _))) = book.later.peek() {
                        if *t > now { break; }
                        if let Some(Reverse((_, id))) = book.later.pop()
                            && let Some(h) = book.held.get_mut(&id)
                        {
                            h.ready_at = now;
                            book.ready.push_back(id);
                        }
                    }
                }
                _ = shutdown.cancelled(), if !stopping => {}
            }
            self.flush(&mut book, &shutdown).await;
        }
        self.flush(&mut book, &CancellationToken::new()).await;
        drop(rx);
        let _ = read_task.await;
        background.stop().await;
        tracing::info!(consumer = %self.consumer, left_pending = book.held.len(), "forwarder stopped");
        Ok(())
    }
}
