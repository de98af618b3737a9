//! The alerter: consumer group `alerter` on `{p}:events`.
//!
//! Per batch: decode and check every entry (undecodable ones go to the DLQ at once),
//! evaluate the rules, count unhandled fingerprints, write the audit rows (idempotent by
//! event id), then append the alerts and acknowledge the batch in one transaction. An
//! entry is acknowledged only after its audit row is committed and its alert appended;
//! until then it stays pending and is redelivered, and redelivery adds no second row and
//! no second alert identity.
//!
//! # Layout
//!
//! - this file: the alerter, its loop (batches processed concurrently) and one batch's
//!   course from evaluation to write.
//! - [`read`]: reading events, paused while the forwarders are behind (backpressure).
//! - [`evaluate`]: decoding, checking and matching a batch: pure CPU, on the blocking pool.
//! - [`meta`]: counting unhandled events and raising meta-alerts for floods.
//! - [`write`](mod@write): dead letters, audit rows (held through outages), alerts and acks.
//! - [`rules`]: the rule set in memory and its reloads.

pub mod evaluate;
pub mod meta;
pub mod read;
pub mod rules;
pub mod write;

use std::time::Duration;

use mutt_bus::names::{ALERTER_GROUP, FORWARDER_GROUP};
use mutt_bus::{Bus, NewEntry, StreamEntry};
use mutt_core::event::Limits;
use mutt_store::{AuditRow, Store};
use mutt_telemetry::metrics;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::evaluate::{Evaluated, evaluate};
use self::read::{Backpressure, read_loop};
pub use self::rules::RuleCache;
use mutt_worker::consumer::{Consumer, Started};
use mutt_worker::ops::Flag;
use mutt_worker::{Hot, Leases, Stream, retry, retry_store};

/// The handling recorded for a meta-alert's audit row.
pub const META_ALERT_HANDLING: &str = "unhandled_meta_alert";

/// Everything the alerter needs.
#[derive(Debug, Clone)]
pub struct Alerter {
    /// Redis.
    pub bus: Bus,
    /// PostgreSQL.
    pub store: Store,
    /// Hot settings.
    pub hot: Hot,
    /// Event limits (re-checked on decode).
    pub limits: Limits,
    /// This consumer's name.
    pub consumer: String,
    /// XREADGROUP block time.
    pub read_block: Duration,
    /// The rules.
    pub rules: RuleCache,
    /// Set once rules are loaded.
    pub ready: Flag,
    /// Holds while audit writes flow; blocked while a batch is held by a database that
    /// refuses every write.
    pub audit_writes: Flag,
    /// The entries in hand.
    pub leases: Leases,
    /// Batches processed at once.
    pub concurrency: usize,
}

/// A batch read from the stream.
#[derive(Debug)]
pub(crate) struct Batch {
    entries: Vec<StreamEntry>,
}

/// What processing a batch produces, before anything is written.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    /// Entries acknowledged with the alerts (processed, or deleted while pending).
    ack: Vec<String>,
    /// Audit rows, with the index into `ack` of the entry that caused each.
    audit: Vec<(AuditRow, usize)>,
    /// Alerts to append.
    alerts: Vec<NewEntry>,
    /// Undecodable entries, with why.
    poison: Vec<(StreamEntry, String)>,
    /// The processing span of each traced event (only sampled traces have one); they end
    /// when the batch is written.
    spans: Vec<tracing::Span>,
}

impl Alerter {
    /// Runs until `shutdown`; then finishes the batches already read and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let alerts = self.bus.names().alerts();
        // The forwarders' group exists before the first alert does, so that none is
        // appended where no group would deliver it.
        retry("create consumer group", &shutdown, || {
            self.bus.ensure_group(&alerts, FORWARDER_GROUP)
        })
        .await?;
        retry_store("load rules", &shutdown, || self.rules.load(&self.store)).await?;
        let consumer = Consumer {
            bus: self.bus.clone(),
            place: Stream {
                stream: self.bus.names().events(),
                group: ALERTER_GROUP.into(),
                consumer: self.consumer.clone(),
            },
            hot: self.hot.clone(),
            leases: self.leases.clone(),
            read_block: self.read_block,
            role: "alerter",
        };
        let Started {
            reader,
            reclaimed: mut claimed_rx,
            lost: _,
            mut background,
        } = consumer.start(&shutdown).await?;
        let (rules, store, hot) = (self.rules.clone(), self.store.clone(), self.hot.clone());
        background.spawn(|stop| rules.reload_loop(store, hot, stop));
        self.ready.set(true);
        self.audit_writes.set(true);
        tracing::info!(consumer = %self.consumer, rules = self.rules.get().len(), "alerter started");

        let (tx, mut rx) = mpsc::channel::<Batch>(2);
        let read_task = tokio::spawn(read_loop(
            reader,
            Backpressure {
                bus: self.bus.clone(),
                alerts,
                paused: false,
            },
            self.hot.clone(),
            tx,
            shutdown.clone(),
        ));
        // Batches are independent (idempotent audit rows, one transaction each), so several
        // are processed at once: a batch spends most of its time waiting on Redis and
        // PostgreSQL, and one at a time would leave the machine idle.
        let me = std::sync::Arc::new(self);
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(me.concurrency.max(1)));
        let mut working = tokio::task::JoinSet::new();
        let (mut reading, mut claiming) = (true, true);
        while reading || claiming {
            let batch = tokio::select! {
                b = rx.recv(), if reading => match b {
                    Some(b) => b,
                    None => { reading = false; continue; }
                },
                c = claimed_rx.recv(), if claiming => match c {
                    Some(c) => Batch { entries: c.into_iter().map(|(e, _)| e).collect() },
                    None => { claiming = false; continue; }
                },
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (me2, shutdown) = (me.clone(), shutdown.clone());
            working.spawn(async move {
                me2.process(batch, &shutdown).await;
                drop(slot);
            });
            while working.try_join_next().is_some() {}
        }
        while working.join_next().await.is_some() {}
        let _ = read_task.await;
        background.stop().await;
        tracing::info!(consumer = %me.consumer, "alerter stopped");
        Ok(())
    }

    /// Processes one batch completely, retrying transient failures until it is done or a
    /// shutdown interrupts (the entries then stay pending: nothing is lost).
    async fn process(&self, batch: Batch, shutdown: &CancellationToken) {
        let timer = metrics().alerter_batch_latency.start_timer();
        let rules = self.rules.get();
        let hot = self.hot.borrow().clone();
        let ids: Vec<String> = batch.entries.iter().map(|e| e.id.clone()).collect();
        // Released when this batch is done with, however it ends (a panic included).
        let _release = self.leases.release_on_drop(ids.clone());
        // Decoding, rules and fingerprints are pure CPU, and a batch can be large: they run
        // on the blocking pool so that the runtime's threads stay free for what must not
        // wait (renewing leases, reading, serving /ready).
        let limits = self.limits.clone();
        let now = mutt_core::now_ms();
        let evaluated = {
            let (rules, span) = (rules.clone(), tracing::Span::current());
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| evaluate(batch.entries, &rules, &limits, now))
            })
            .await
        };
        let outcome = match evaluated {
            Ok(Evaluated {
                mut out,
                unhandled,
                entries,
            }) => match retry("count unhandled", shutdown, || {
                self.meta_alerts(&out.ack, &unhandled, &entries, &rules, &hot, now)
            })
            .await
            {
                Ok(meta) => {
                    for (alert, row) in meta {
                        out.alerts.push(alert);
                        out.audit.push(row);
                    }
                    self.write(out, shutdown).await
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(format!("evaluating the batch failed: {e}")),
        };
        match outcome {
            Ok(()) => timer.observe_duration(),
            Err(why) if !shutdown.is_cancelled() => {
                // Left pending: reclamation retries it, and the delivery limit ends a
                // batch that can never succeed in the DLQ, with this error.
                tracing::error!(error = %why, entries = ids.len(), "batch failed; left pending for redelivery");
                metrics()
                    .alerter_events
                    .with_label_values(&["error"])
                    .inc_by(ids.len() as u64);
                if let Err(e) = self
                    .bus
                    .record_failures(ALERTER_GROUP, &ids, &why, mutt_core::now_ms())
                    .await
                {
                    tracing::warn!(error = %e, "cannot record the failure");
                }
            }
            Err(_) => {}
        }
    }
}
