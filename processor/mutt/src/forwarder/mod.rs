//! The forwarder: consumer group `forwarder` on `{p}:alerts`, delivering to the webhook.
//!
//! Deliveries run concurrently. A failed delivery is scheduled again with exponential
//! backoff and full jitter (honouring `Retry-After`) without holding up the others; an
//! alert is acknowledged only after a 2xx, or after it was moved to the DLQ (a 4xx
//! refusal, or the attempts exhausted). Reading pauses while the deliveries in hand are
//! at the limit, so memory stays bounded whatever the backlog.

pub mod webhook;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use mutt_bus::dlq::DeadLetter;
use mutt_bus::names::FORWARDER_GROUP;
use mutt_bus::{Bus, GroupReader, StreamEntry};
use mutt_core::alert::Alert;
use mutt_core::codec;
use mutt_core::event::Limits;
use mutt_core::settings::ForwarderSettings;
use mutt_telemetry::metrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::webhook::{Delivery, Webhook};
use crate::alerter::{retry, sleep_or_shutdown};

/// Everything the forwarder needs.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// Redis.
    pub bus: Bus,
    /// The webhook.
    pub webhook: Webhook,
    /// Settings.
    pub settings: ForwarderSettings,
    /// Alert limits (re-checked on decode).
    pub limits: Limits,
    /// This consumer's name (also the payload's `agent_location`).
    pub consumer: String,
    /// XREADGROUP block time.
    pub read_block: Duration,
}

/// One alert in hand.
#[derive(Debug)]
struct InHand {
    entry: StreamEntry,
    /// None for an entry that is not a valid alert (on its way to the DLQ).
    alert: Option<Alert>,
    body: Arc<Vec<u8>>,
    attempts: u32,
    first_failure_ms: Option<i64>,
    last_error: String,
    /// Released when the alert leaves our hands: bounds what is held.
    _permit: OwnedSemaphorePermit,
}

/// Full jitter: a uniform delay in `[0, min(max, base·2^attempt)]`, at least the server's
/// `Retry-After` when it gave one (capped by `max`).
fn retry_delay(s: &ForwarderSettings, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = s
        .retry_base
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(s.retry_max);
    let jittered = ceiling.mul_f64(fastrand::f64());
    match retry_after {
        Some(ra) => jittered.max(ra.min(s.retry_max)),
        None => jittered,
    }
}

impl Forwarder {
    /// Runs until `shutdown`; then finishes the deliveries in flight and returns. Alerts
    /// read but not yet sent stay pending for a later delivery.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let stream = self.bus.names().alerts();
        retry("create consumer group", &shutdown, || {
            self.bus.ensure_group(&stream, FORWARDER_GROUP)
        })
        .await?;
        let reader = retry("open reader", &shutdown, || {
            self.bus
                .reader(&stream, FORWARDER_GROUP, &self.consumer, self.read_block)
        })
        .await?;
        // Alerts held at once: enough to keep every delivery slot busy plus a batch.
        let capacity = self.settings.concurrency * 2 + self.settings.batch_size;
        let permits = Arc::new(Semaphore::new(capacity));
        let (tx, mut rx) = mpsc::channel::<(StreamEntry, OwnedSemaphorePermit)>(capacity);
        let read_task = tokio::spawn(read_loop(
            reader,
            self.settings.batch_size,
            permits,
            tx,
            shutdown.clone(),
        ));
        tracing::info!(consumer = %self.consumer, "forwarder started");

        let me = Arc::new(self);
        let mut held: HashMap<String, InHand> = HashMap::new();
        let mut ready: VecDeque<String> = VecDeque::new();
        let mut later: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::new();
        let mut running: JoinSet<(String, Delivery, Duration)> = JoinSet::new();
        let mut acks: Vec<String> = Vec::new();
        let mut dead: Vec<String> = Vec::new();
        let mut reading = true;

        loop {
            let stopping = shutdown.is_cancelled();
            while !stopping && running.len() < me.settings.concurrency {
                let Some(id) = ready.pop_front() else { break };
                let Some(h) = held.get(&id) else { continue };
                let wh = me.webhook.clone();
                let body = h.body.clone();
                let tp = h.entry.trace().traceparent;
                running.spawn(async move {
                    let started = Instant::now();
                    let d = wh.post(body.to_vec(), tp.as_deref()).await;
                    (id, d, started.elapsed())
                });
            }
            if stopping && running.is_empty() {
                break;
            }
            let next_due = later.peek().map(|Reverse((t, _))| *t);
            tokio::select! {
                got = rx.recv(), if reading && !stopping => match got {
                    Some((entry, permit)) => me.take(entry, permit, &mut held, &mut ready, &mut dead),
                    None => reading = false,
                },
                Some(done) = running.join_next(), if !running.is_empty() => {
                    let mut results = vec![done];
                    while let Some(more) = running.try_join_next() {
                        results.push(more);
                    }
                    for r in results {
                        match r {
                            Ok((id, d, took)) => me.settle(id, d, took, &mut held, &mut later, &mut acks, &mut dead),
                            Err(e) => tracing::error!(error = %e, "delivery task failed"),
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if next_due.is_some() && !stopping => {
                    let now = Instant::now();
                    while let Some(Reverse((t, _))) = later.peek() {
                        if *t > now { break; }
                        if let Some(Reverse((_, id))) = later.pop() { ready.push_back(id); }
                    }
                }
                _ = shutdown.cancelled(), if !stopping => {}
            }
            me.flush(&mut acks, &mut dead, &mut held, &shutdown).await;
            if !reading && held.is_empty() && running.is_empty() {
                break;
            }
        }
        me.flush(&mut acks, &mut dead, &mut held, &CancellationToken::new())
            .await;
        drop(rx);
        let _ = read_task.await;
        tracing::info!(consumer = %me.consumer, left_pending = held.len(), "forwarder stopped");
        Ok(())
    }

    /// Takes a freshly read entry into hand, or dead-letters it if it is not an alert.
    fn take(
        &self,
        entry: StreamEntry,
        permit: OwnedSemaphorePermit,
        held: &mut HashMap<String, InHand>,
        ready: &mut VecDeque<String>,
        dead: &mut Vec<String>,
    ) {
        if held.contains_key(&entry.id) {
            return;
        }
        let decoded = match entry.payload() {
            None if entry.is_deleted() => Err("entry was deleted while pending".to_string()),
            None => Err("entry has no payload field".to_string()),
            Some(p) => codec::decode_alert(p, &self.limits).map_err(|e| e.to_string()),
        };
        let (alert, body, error) = match decoded.and_then(|alert| {
            serde_json::to_vec(&alert.webhook_payload(&self.consumer))
                .map(|body| (alert, body))
                .map_err(|e| e.to_string())
        }) {
            Ok((alert, body)) => (Some(alert), body, None),
            Err(why) => (None, Vec::new(), Some(why)),
        };
        let id = entry.id.clone();
        let poison = error.is_some();
        held.insert(
            id.clone(),
            InHand {
                entry,
                alert,
                body: Arc::new(body),
                attempts: 0,
                first_failure_ms: None,
                last_error: error.unwrap_or_default(),
                _permit: permit,
            },
        );
        if poison {
            dead.push(id);
        } else {
            ready.push_back(id);
        }
    }

    /// Records the outcome of one attempt.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        id: String,
        d: Delivery,
        took: Duration,
        held: &mut HashMap<String, InHand>,
        later: &mut BinaryHeap<Reverse<(Instant, String)>>,
        acks: &mut Vec<String>,
        dead: &mut Vec<String>,
    ) {
        let m = metrics();
        m.moog_latency.observe(took.as_secs_f64());
        let Some(h) = held.get_mut(&id) else { return };
        let alert_id = h.alert.as_ref().map_or("", |a| a.id.as_str()).to_string();
        match d {
            Delivery::Delivered => {
                m.moog_requests.with_label_values(&["success", ""]).inc();
                if let Some(a) = &h.alert {
                    let e2e = (mutt_core::now_ms() - a.event.received_at_ms).max(0) as f64 / 1000.0;
                    m.end_to_end_latency.observe(e2e);
                }
                acks.push(id);
            }
            Delivery::Retry {
                reason,
                retry_after,
            } => {
                m.moog_requests.with_label_values(&["fail", &reason]).inc();
                h.attempts += 1;
                let now = mutt_core::now_ms();
                h.first_failure_ms.get_or_insert(now);
                h.last_error = format!("webhook: {reason}");
                if h.attempts >= self.settings.max_attempts {
                    tracing::warn!(alert_id = %alert_id, attempts = h.attempts, reason = %reason, "alert undeliverable: attempts exhausted");
                    dead.push(id);
                } else {
                    let delay = retry_delay(&self.settings, h.attempts - 1, retry_after);
                    tracing::debug!(alert_id = %alert_id, attempts = h.attempts, reason = %reason, delay_ms = delay.as_millis() as u64, "delivery failed; will retry");
                    later.push(Reverse((Instant::now() + delay, id)));
                }
            }
            Delivery::Rejected { status, excerpt } => {
                m.moog_requests
                    .with_label_values(&["fail", &format!("http_{status}")])
                    .inc();
                let now = mutt_core::now_ms();
                h.attempts += 1;
                h.first_failure_ms.get_or_insert(now);
                h.last_error = format!("webhook refused with {status}: {excerpt}");
                tracing::warn!(alert_id = %alert_id, status, "alert refused by the webhook; moving it to the dead-letter queue");
                dead.push(id);
            }
        }
    }

    /// Acknowledges delivered alerts and dead-letters refused ones, releasing them.
    async fn flush(
        &self,
        acks: &mut Vec<String>,
        dead: &mut Vec<String>,
        held: &mut HashMap<String, InHand>,
        shutdown: &CancellationToken,
    ) {
        let stream = self.bus.names().alerts();
        if !acks.is_empty() {
            match retry("acknowledge alerts", shutdown, || {
                self.bus.ack(&stream, FORWARDER_GROUP, acks)
            })
            .await
            {
                Ok(_) => {
                    metrics()
                        .moog_alerts
                        .with_label_values(&["success"])
                        .inc_by(acks.len() as u64);
                    for id in acks.drain(..) {
                        held.remove(&id);
                    }
                }
                // Unacknowledged deliveries are redelivered later: a duplicate with the
                // same external_id, which the webhook deduplicates. Never a loss.
                Err(e) => {
                    tracing::warn!(error = %e, count = acks.len(), "cannot acknowledge delivered alerts");
                    for id in acks.drain(..) {
                        held.remove(&id);
                    }
                }
            }
        }
        if !dead.is_empty() {
            let now = mutt_core::now_ms();
            let letters: Vec<DeadLetter<'_>> = dead
                .iter()
                .filter_map(|id| held.get(id))
                .map(|h| DeadLetter {
                    entry: &h.entry,
                    source_stream: &stream,
                    group: FORWARDER_GROUP,
                    consumer: &self.consumer,
                    delivery_count: u64::from(h.attempts.max(1)),
                    last_error: &h.last_error,
                    first_failure_ms: h.first_failure_ms.unwrap_or(now),
                    last_failure_ms: now,
                })
                .collect();
            let n = letters.len() as u64;
            let moved = retry("dead-letter alerts", shutdown, || {
                self.bus.move_to_dlq(&letters)
            })
            .await;
            drop(letters);
            if moved.is_ok() {
                metrics().moog_alerts.with_label_values(&["dlq"]).inc_by(n);
            }
            for id in dead.drain(..) {
                held.remove(&id);
            }
        }
    }
}

/// Reads alerts while there is room in hand. Runs in its own task so that a blocking read
/// is never cancelled half-way.
async fn read_loop(
    mut reader: GroupReader,
    batch: usize,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<(StreamEntry, OwnedSemaphorePermit)>,
    shutdown: CancellationToken,
) {
    let mut attempt = 0u32;
    while !shutdown.is_cancelled() {
        // Wait for room for at least one alert, then take what is free up to a batch.
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let mut pool = first;
        let extra = permits.available_permits().min(batch.saturating_sub(1));
        if extra > 0
            && let Ok(more) = permits.clone().try_acquire_many_owned(extra as u32)
        {
            pool.merge(more);
        }
        match reader.read(pool.num_permits()).await {
            Ok(entries) => {
                attempt = 0;
                for entry in entries {
                    // The read asked for at most as many entries as there are permits.
                    let Some(permit) = pool.split(1) else { return };
                    if tx.send((entry, permit)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                metrics()
                    .dependency_errors
                    .with_label_values(&["forwarder", "redis"])
                    .inc();
                tracing::warn!(error = %e, "reading alerts failed; retrying");
                drop(pool);
                if sleep_or_shutdown(Duration::from_millis(100u64 << attempt.min(5)), &shutdown)
                    .await
                {
                    return;
                }
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ForwarderSettings {
        ForwarderSettings {
            batch_size: 10,
            concurrency: 4,
            webhook_timeout: Duration::from_secs(1),
            max_attempts: 5,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
        }
    }

    #[test]
    fn jitter_stays_within_the_exponential_ceiling() {
        let s = settings();
        for attempt in 0..30 {
            let ceiling = Duration::from_millis(100 << attempt.min(20)).min(Duration::from_secs(2));
            for _ in 0..50 {
                assert!(retry_delay(&s, attempt, None) <= ceiling);
            }
        }
        // Retry-After is honoured, but capped.
        assert!(retry_delay(&s, 0, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
        assert!(retry_delay(&s, 0, Some(Duration::from_secs(100))) <= Duration::from_secs(2));
    }
}
