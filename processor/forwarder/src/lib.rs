//! The forwarder: consumer group `forwarder` on `{p}:alerts`, delivering to the webhook.
//!
//! Deliveries run concurrently, one alert per request or batched (`{"events": [...]}`). A
//! failed delivery is scheduled again with exponential backoff and full jitter (honouring
//! `Retry-After`) without holding up the others. Two guards are shared by every replica
//! through Redis: a rate limit (alerts over it wait, none is dropped) and a circuit
//! breaker (while it is open nothing is sent, no attempt is spent, and reading pauses;
//! after the open period one probe decides). An alert is acknowledged only after a 2xx,
//! or after it was moved to the DLQ: refused with a 4xx, or out of attempts.

pub mod webhook;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mutt_bus::dlq::DeadLetter;
use mutt_bus::guard::{CircuitState, WEBHOOK};
use mutt_bus::names::FORWARDER_GROUP;
use mutt_bus::{Bus, StreamEntry};
use mutt_core::alert::Alert;
use mutt_core::codec;
use mutt_core::event::Limits;
use mutt_core::hot::HotConfig;
use mutt_telemetry::{metrics, otel};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::webhook::{Delivery, Webhook};
use mutt_worker::consumer::{Consumer, Reader, Started};
use mutt_worker::trace::entry_span;
use mutt_worker::{Hot, Leases, Stream, retry, sleep_or_shutdown};

/// How long a closed circuit is trusted without asking Redis again.
const CIRCUIT_CACHE: Duration = Duration::from_millis(250);

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

/// One alert in hand.
#[derive(Debug)]
struct InHand {
    entry: StreamEntry,
    /// The decoded alert; None for an entry that is not a valid alert (on its way to the DLQ).
    alert: Option<Alert>,
    /// The webhook event for this alert.
    /// The webhook event, serialised once when the alert is taken into hand.
    payload: Vec<u8>,
    attempts: u64,
    first_failure_ms: Option<i64>,
    last_error: String,
    /// Send alone: a batch holding it was refused, so it is tried by itself to find the
    /// one alert the webhook refuses.
    solo: bool,
    ready_at: Instant,
    /// Released when the alert leaves our hands: bounds what is held. Reclaimed alerts
    /// come without one.
    _permit: Option<OwnedSemaphorePermit>,
}

/// Full jitter: a uniform delay in `[0, min(max, base·2^attempt)]`, at least the server's
/// `Retry-After` when it gave one (capped by `max`).
fn retry_delay(h: &HotConfig, attempt: u64, retry_after: Option<Duration>) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(20) as u32).unwrap_or(u32::MAX);
    let ceiling = h
        .forwarder_retry_base
        .saturating_mul(factor)
        .min(h.forwarder_retry_max);
    let jittered = ceiling.mul_f64(fastrand::f64());
    match retry_after {
        Some(ra) => jittered.max(ra.min(h.forwarder_retry_max)),
        None => jittered,
    }
}

/// What the delivery loop knows of the shared guards.
#[derive(Debug)]
struct Gate {
    state: CircuitState,
    checked: Option<Instant>,
    /// Consecutive failures last seen (a success must reset them in Redis).
    failures: u64,
    /// A half-open probe of ours is in flight.
    probing: bool,
    /// Nothing is sent before this (an open circuit, the rate limit).
    blocked_until: Option<Instant>,
    /// When refused credentials were last logged (once a minute is enough to be seen).
    auth_logged: Option<Instant>,
}

/// The delivery loop's state.
#[derive(Debug, Default)]
struct Book {
    held: HashMap<String, InHand>,
    ready: VecDeque<String>,
    later: BinaryHeap<Reverse<(Instant, String)>>,
    acks: Vec<String>,
    dead: Vec<String>,
    /// (ids, error) to record in the failure registry.
    failures: Vec<(Vec<String>, String)>,
}

/// What a delivery task returns: the alerts it carried, the outcome, how long it took.
type Delivered = (Vec<String>, Delivery, Duration);

/// The deliveries in flight, with the alerts each carries: a task that panics has lost its
/// return value, and its alerts must not be stranded in hand (renewed forever, never sent).
#[derive(Debug, Default)]
struct Running {
    tasks: JoinSet<Delivered>,
    ids: HashMap<tokio::task::Id, Vec<String>>,
}

impl Running {
    fn spawn(
        &mut self,
        ids: Vec<String>,
        delivery: impl Future<Output = Delivered> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(delivery);
        self.ids.insert(handle.id(), ids);
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The result of a finished task; a panicked one is a failed delivery of its alerts,
    /// retried like any other failure.
    fn finished(
        &mut self,
        r: Result<(tokio::task::Id, Delivered), tokio::task::JoinError>,
    ) -> Delivered {
        match r {
            Ok((id, done)) => {
                self.ids.remove(&id);
                done
            }
            Err(e) => {
                let ids = self.ids.remove(&e.id()).unwrap_or_default();
                tracing::error!(error = %e, alerts = ids.len(), "delivery task failed; its alerts are retried");
                (
                    ids,
                    Delivery::Retry {
                        reason: "task_failed".into(),
                        retry_after: None,
                    },
                    Duration::ZERO,
                )
            }
        }
    }
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

    /// Takes a read or reclaimed entry into hand, or marks it for the DLQ if it is not an alert.
    fn take(&self, entry: StreamEntry, permit: Option<OwnedSemaphorePermit>, book: &mut Book) {
        if book.held.contains_key(&entry.id) {
            return;
        }
        let decoded = match entry.payload() {
            None if entry.is_deleted() => Err("entry was deleted while pending".to_string()),
            None => Err("entry has no payload field".to_string()),
            Some(p) => codec::decode_alert(p, &self.limits).map_err(|e| e.to_string()),
        };
        let (alert, payload, error) = match decoded {
            Ok(alert) => {
                let payload = alert.webhook_body(&self.consumer);
                (Some(alert), payload, None)
            }
            Err(why) => (None, Vec::new(), Some(why)),
        };
        let id = entry.id.clone();
        self.leases.hold(std::iter::once(&id));
        let poison = error.is_some();
        book.held.insert(
            id.clone(),
            InHand {
                entry,
                alert,
                payload,
                attempts: 0,
                first_failure_ms: None,
                last_error: error.unwrap_or_default(),
                solo: false,
                ready_at: Instant::now(),
                _permit: permit,
            },
        );
        if poison {
            book.dead.push(id);
        } else {
            book.ready.push_back(id);
        }
    }

    /// Starts deliveries while slots, the circuit and the rate limit allow. Returns when
    /// it wants to be woken to try again (an open circuit, the rate limit, the linger of a
    /// partial batch).
    async fn dispatch(
        &self,
        hot: &HotConfig,
        book: &mut Book,
        gate: &mut Gate,
        running: &mut Running,
    ) -> Option<Instant> {
        let now = Instant::now();
        if let Some(t) = gate.blocked_until {
            if t > now {
                return Some(t);
            }
            gate.blocked_until = None;
        }
        while running.len() < self.concurrency && !book.ready.is_empty() {
            // Solo alerts go alone; otherwise a batch fills up or waits out its linger.
            let front_solo = book
                .ready
                .front()
                .and_then(|id| book.held.get(id))
                .is_some_and(|h| h.solo);
            let want = if front_solo {
                1
            } else {
                hot.webhook_batch as usize
            };
            let n = book
                .ready
                .iter()
                .take(want)
                .take_while(|id| book.held.get(*id).is_some_and(|h| h.solo == front_solo))
                .count()
                .max(1);
            if n < want && !front_solo {
                let oldest = book
                    .ready
                    .front()
                    .and_then(|id| book.held.get(id))
                    .map_or(now, |h| h.ready_at);
                let due = oldest + hot.webhook_linger;
                if due > now {
                    return Some(due);
                }
            }
            // The circuit: trust a closed state for a moment, ask Redis otherwise.
            let fresh = gate.checked.is_some_and(|t| t.elapsed() < CIRCUIT_CACHE);
            if gate.probing {
                return Some(now + Duration::from_millis(100));
            }
            if !(fresh && gate.state == CircuitState::Closed) {
                let lease = hot.webhook_timeout + Duration::from_secs(1);
                match self
                    .bus
                    .circuit_allow(WEBHOOK, hot.breaker_open, lease, &self.consumer)
                    .await
                {
                    Ok(a) => {
                        gate.checked = Some(Instant::now());
                        self.note_state(gate, a.state);
                        if !a.allowed {
                            let wait = a
                                .retry_in
                                .clamp(Duration::from_millis(50), Duration::from_secs(1));
                            gate.blocked_until = Some(Instant::now() + wait);
                            return gate.blocked_until;
                        }
                        if a.state == CircuitState::HalfOpen {
                            gate.probing = true;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "circuit breaker unavailable; holding deliveries");
                        gate.blocked_until = Some(Instant::now() + Duration::from_millis(500));
                        return gate.blocked_until;
                    }
                }
            }
            let mut n = if gate.probing { 1 } else { n };
            // The shared rate limit: one token per alert, taken for exactly the alerts this
            // request carries. A request never carries more than the burst, so a batch
            // larger than the burst goes out in parts, each when its tokens are there.
            if hot.webhook_rate_limit > 0 {
                n = n.min(hot.webhook_rate_burst.max(1) as usize);
                match self
                    .bus
                    .rate_take(
                        WEBHOOK,
                        hot.webhook_rate_limit,
                        hot.webhook_rate_burst,
                        n as u64,
                    )
                    .await
                {
                    Ok(wait) if wait.is_zero() => {}
                    Ok(wait) => {
                        metrics().rate_limit_waits.inc();
                        gate.probing = false;
                        gate.blocked_until = Some(Instant::now() + wait);
                        return gate.blocked_until;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "rate limit unavailable; holding deliveries");
                        gate.probing = false;
                        gate.blocked_until = Some(Instant::now() + Duration::from_millis(500));
                        return gate.blocked_until;
                    }
                }
            }
            let ids: Vec<String> = book.ready.drain(..n.min(book.ready.len())).collect();
            let body = if hot.webhook_batch <= 1 || front_solo {
                ids.first()
                    .and_then(|id| book.held.get(id))
                    .map(|h| h.payload.clone())
                    .unwrap_or_default()
            } else {
                batch_body(
                    ids.iter()
                        .filter_map(|id| book.held.get(id))
                        .map(|h| &h.payload[..]),
                )
            };
            // The delivery's client span: a child of the first alert's trace, linked to
            // the others of a batch; its context goes to the webhook as `traceparent`.
            let first = ids.first().and_then(|id| book.held.get(id));
            let span = first.and_then(|h| entry_span("forwarder.deliver", "client", &h.entry));
            if let Some(sp) = &span {
                for other in ids.iter().skip(1).filter_map(|id| book.held.get(id)) {
                    otel::add_link(sp, &other.entry.trace());
                }
            }
            let incoming = first.map(|h| h.entry.trace()).unwrap_or_default();
            let traceparent = match &span {
                Some(sp) => otel::carrier_of(sp, &incoming).traceparent,
                None => incoming.traceparent,
            };
            let wh = self.webhook.clone();
            let timeout = hot.webhook_timeout;
            running.spawn(ids.clone(), async move {
                let started = Instant::now();
                let d = wh.post(body, traceparent.as_deref(), timeout).await;
                if let Some(sp) = &span {
                    let outcome = match &d {
                        Delivery::Delivered => "delivered".to_string(),
                        Delivery::Retry { reason, .. } => format!("retry: {reason}"),
                        Delivery::Rejected { status, .. } => format!("rejected: {status}"),
                    };
                    sp.record("outcome", outcome.as_str());
                }
                (ids, d, started.elapsed())
            });
            if gate.probing {
                break;
            }
        }
        None
    }

    fn note_state(&self, gate: &mut Gate, state: CircuitState) {
        if gate.state != state {
            metrics()
                .breaker_changes
                .with_label_values(&[WEBHOOK, gate.state.as_str(), state.as_str()])
                .inc();
            tracing::info!(
                from = gate.state.as_str(),
                to = state.as_str(),
                "webhook circuit changed"
            );
        }
        gate.state = state;
        metrics()
            .breaker_state
            .with_label_values(&[WEBHOOK])
            .set(state.gauge());
    }

    /// Records the outcome of one request.
    async fn settle(
        &self,
        hot: &HotConfig,
        ids: Vec<String>,
        d: Delivery,
        took: Duration,
        book: &mut Book,
        gate: &mut Gate,
    ) {
        let m = metrics();
        m.moog_latency.observe(took.as_secs_f64());
        let was_probe = std::mem::take(&mut gate.probing);
        let now_ms = mutt_core::now_ms();
        let circuit = circuit_outcome(&d, was_probe);
        if let Some(success) = circuit
            && (!success || gate.failures > 0 || gate.state != CircuitState::Closed || was_probe)
        {
            match self
                .bus
                .circuit_record(WEBHOOK, success, hot.breaker_threshold)
                .await
            {
                Ok(r) => {
                    gate.failures = r.failures;
                    gate.checked = Some(Instant::now());
                    self.note_state(gate, r.state);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record the webhook outcome on the circuit")
                }
            }
        }
        match d {
            Delivery::Delivered => {
                m.moog_requests.with_label_values(&["success", ""]).inc();
                for id in ids {
                    if let Some(a) = book.held.get(&id).and_then(|h| h.alert.as_ref()) {
                        let e2e = (now_ms - a.event.received_at_ms).max(0) as f64 / 1000.0;
                        m.end_to_end_latency.observe(e2e);
                    }
                    book.acks.push(id);
                }
            }
            Delivery::Retry {
                reason,
                retry_after,
            } => {
                m.moog_requests.with_label_values(&["fail", &reason]).inc();
                if matches!(reason.as_str(), "http_401" | "http_403")
                    && gate
                        .auth_logged
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    gate.auth_logged = Some(Instant::now());
                    tracing::error!(
                        reason = %reason,
                        "the webhook refuses MUTT's credentials; alerts are held and retried until it \
                         accepts them (check MUTT_WEBHOOK_TOKEN, or rotate it through the control plane)"
                    );
                }
                let error = format!("webhook: {reason}");
                let mut to_record = Vec::new();
                for id in ids {
                    let Some(h) = book.held.get_mut(&id) else {
                        continue;
                    };
                    // A failed probe is the circuit's failure, not the alert's: whichever
                    // alert happens to probe an outage must not run out of attempts for it.
                    if !was_probe {
                        h.attempts += 1;
                    }
                    h.first_failure_ms.get_or_insert(now_ms);
                    h.last_error.clone_from(&error);
                    to_record.push(id.clone());
                    if h.attempts >= hot.forwarder_max_attempts {
                        tracing::warn!(entry_id = %id, attempts = h.attempts, reason = %reason, "alert undeliverable: attempts exhausted");
                        book.dead.push(id);
                    } else {
                        let delay = retry_delay(hot, h.attempts.saturating_sub(1), retry_after);
                        book.later.push(Reverse((Instant::now() + delay, id)));
                    }
                }
                book.failures.push((to_record, error));
            }
            Delivery::Rejected { status, excerpt } => {
                m.moog_requests
                    .with_label_values(&["fail", &format!("http_{status}")])
                    .inc();
                if ids.len() > 1 {
                    // One alert of the batch may be the culprit: try each alone.
                    for id in ids.iter().rev() {
                        if let Some(h) = book.held.get_mut(id) {
                            h.solo = true;
                            book.ready.push_front(id.clone());
                        }
                    }
                    return;
                }
                for id in ids {
                    let Some(h) = book.held.get_mut(&id) else {
                        continue;
                    };
                    h.attempts += 1;
                    h.first_failure_ms.get_or_insert(now_ms);
                    h.last_error = format!("webhook refused with {status}: {excerpt}");
                    tracing::warn!(entry_id = %id, status, "alert refused by the webhook; moving it to the dead-letter queue");
                    book.dead.push(id);
                }
            }
        }
    }

    /// Acknowledges delivered alerts, dead-letters refused ones, records failures.
    async fn flush(&self, book: &mut Book, shutdown: &CancellationToken) {
        let stream = self.bus.names().alerts();
        if !book.acks.is_empty() {
            let acks = std::mem::take(&mut book.acks);
            match retry("acknowledge alerts", shutdown, || {
                self.bus.ack(&stream, FORWARDER_GROUP, &acks)
            })
            .await
            {
                Ok(_) => metrics()
                    .moog_alerts
                    .with_label_values(&["success"])
                    .inc_by(acks.len() as u64),
                // Unacknowledged deliveries are redelivered later: a duplicate with the
                // same external_id, which the webhook deduplicates. Never a loss.
                Err(e) => {
                    tracing::warn!(error = %e, count = acks.len(), "cannot acknowledge delivered alerts")
                }
            }
            for id in &acks {
                book.held.remove(id);
            }
            self.leases.release(&acks);
        }
        for (ids, error) in std::mem::take(&mut book.failures) {
            if let Err(e) = self
                .bus
                .record_failures(FORWARDER_GROUP, &ids, &error, mutt_core::now_ms())
                .await
            {
                tracing::debug!(error = %e, "recording failures");
            }
        }
        if !book.dead.is_empty() {
            let dead = std::mem::take(&mut book.dead);
            let now = mutt_core::now_ms();
            let letters: Vec<DeadLetter<'_>> = dead
                .iter()
                .filter_map(|id| book.held.get(id))
                .map(|h| DeadLetter {
                    entry: &h.entry,
                    source_stream: &stream,
                    group: FORWARDER_GROUP,
                    consumer: &self.consumer,
                    delivery_count: h.attempts.max(1),
                    last_error: &h.last_error,
                    first_failure_ms: h.first_failure_ms.unwrap_or(now),
                    last_failure_ms: now,
                })
                .collect();
            let n = letters.len() as u64;
            let reasons: Vec<&'static str> = letters
                .iter()
                .map(|l| {
                    if l.last_error.starts_with("webhook refused") {
                        "rejected"
                    } else if l.last_error.starts_with("webhook:") {
                        "attempts_exhausted"
                    } else {
                        "undecodable"
                    }
                })
                .collect();
            let moved = retry("dead-letter alerts", shutdown, || {
                self.bus.move_to_dlq(&letters)
            })
            .await;
            drop(letters);
            match moved {
                Ok(()) => {
                    metrics().moog_alerts.with_label_values(&["dlq"]).inc_by(n);
                    for r in reasons {
                        metrics()
                            .dlq_moved
                            .with_label_values(&[FORWARDER_GROUP, r])
                            .inc();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot dead-letter alerts; they stay pending")
                }
            }
            for id in &dead {
                book.held.remove(id);
            }
            self.leases.release(&dead);
        }
    }
}

/// Reads alerts while there is room in hand and the circuit is closed. Runs in its own
/// task so that a blocking read is never cancelled half-way.
async fn read_loop(
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

/// What a delivery says about the webhook, for the shared circuit: `Some(true)` it is up,
/// `Some(false)` it failed, `None` nothing. Failures reaching the server (or not reaching
/// it at all) count against the circuit, and so do refused credentials (401/403 arrive as
/// retries). A refusal of the content (another 4xx) means the webhook is up: it says
/// nothing while the circuit is closed, but it ends a half-open probe as a success, so
/// the probe is released at once instead of holding every replica until its lease ends.
fn circuit_outcome(d: &Delivery, was_probe: bool) -> Option<bool> {
    match d {
        Delivery::Delivered => Some(true),
        Delivery::Retry { .. } => Some(false),
        Delivery::Rejected { .. } => was_probe.then_some(true),
    }
}

/// How many alerts a forwarder holds at once: enough to keep every delivery slot busy plus
/// a read batch (`forwarder_batch`, a hot setting: the size follows it).
#[derive(Debug)]
struct Capacity {
    permits: Arc<Semaphore>,
    /// The size now.
    size: usize,
    /// Delivery slots (2 alerts each in hand: one in flight, one ready).
    in_flight: usize,
    /// Permits still to take away after a shrink: those in use come back first.
    owed: usize,
}

impl Capacity {
    fn follow(&mut self, batch: usize) {
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

/// `{"events":[…]}` from events serialised already.
fn batch_body<'a>(events: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(4096);
    body.extend_from_slice(br#"{"events":["#);
    for (i, e) in events.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.extend_from_slice(b"]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_batch_body_is_the_events_array() {
        let parts: [&[u8]; 2] = [br#"{"a":1}"#, br#"{"b":[2]}"#];
        let v: Value = serde_json::from_slice(&batch_body(parts.into_iter())).unwrap();
        assert_eq!(v, serde_json::json!({"events": [{"a": 1}, {"b": [2]}]}));
        let v: Value = serde_json::from_slice(&batch_body(std::iter::empty())).unwrap();
        assert_eq!(v, serde_json::json!({"events": []}));
    }

    #[test]
    fn the_capacity_follows_the_batch_setting() {
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

    #[tokio::test]
    async fn a_delivery_task_that_panics_fails_its_alerts() {
        let mut running = Running::default();
        let ids = vec!["1-0".to_string(), "2-0".to_string()];
        running.spawn(ids.clone(), async { panic!("a bug in a delivery") });
        let done = running.tasks.join_next_with_id().await.unwrap();
        let (back, d, _) = running.finished(done);
        assert_eq!(back, ids, "its alerts are known, not stranded");
        assert!(matches!(d, Delivery::Retry { .. }));
        assert!(running.ids.is_empty());
    }

    #[test]
    fn a_refused_probe_releases_the_circuit() {
        let rejected = Delivery::Rejected {
            status: 400,
            excerpt: String::new(),
        };
        let unauthorized = Delivery::Retry {
            reason: "http_401".into(),
            retry_after: None,
        };
        assert_eq!(circuit_outcome(&rejected, true), Some(true));
        assert_eq!(circuit_outcome(&rejected, false), None);
        assert_eq!(circuit_outcome(&unauthorized, true), Some(false));
        assert_eq!(circuit_outcome(&unauthorized, false), Some(false));
        assert_eq!(circuit_outcome(&Delivery::Delivered, false), Some(true));
    }

    #[test]
    fn jitter_stays_within_the_exponential_ceiling() {
        let h = HotConfig {
            forwarder_retry_base: Duration::from_millis(100),
            forwarder_retry_max: Duration::from_secs(2),
            ..HotConfig::default()
        };
        for attempt in 0..30u64 {
            let ceiling = Duration::from_millis(100 << attempt.min(20)).min(Duration::from_secs(2));
            for _ in 0..50 {
                assert!(retry_delay(&h, attempt, None) <= ceiling);
            }
        }
        // Retry-After is honoured, but capped.
        assert!(retry_delay(&h, 0, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
        assert!(retry_delay(&h, 0, Some(Duration::from_secs(100))) <= Duration::from_secs(2));
    }
}
