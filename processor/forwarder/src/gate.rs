//! What may be sent now, and sending it: the shared circuit breaker and rate limit as
//! this replica knows them, delivery slots, batches and their linger.

use std::time::Duration;

use mutt_bus::guard::{CircuitState, WEBHOOK};
use mutt_core::hot::HotConfig;
use mutt_telemetry::{metrics, otel};
use tokio::time::Instant;

use crate::Forwarder;
use crate::book::{Book, Running};
use crate::webhook::{Delivery, batch_body};
use mutt_worker::trace::entry_span;

/// How long a closed circuit is trusted without asking Redis again.
pub(crate) const CIRCUIT_CACHE: Duration = Duration::from_millis(250);

/// What the delivery loop knows of the shared guards.
#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) state: CircuitState,
    pub(crate) checked: Option<Instant>,
    /// Consecutive failures last seen (a success must reset them in Redis).
    pub(crate) failures: u64,
    /// A half-open probe of ours is in flight.
    pub(crate) probing: bool,
    /// Nothing is sent before this (an open circuit, the rate limit).
    pub(crate) blocked_until: Option<Instant>,
    /// When refused credentials were last logged (once a minute is enough to be seen).
    pub(crate) auth_logged: Option<Instant>,
}

impl Forwarder {
    /// Starts deliveries while slots, the circuit and the rate limit allow. Returns when
    /// it wants to be woken to try again (an open circuit, the rate limit, the linger of a
    /// partial batch).
    pub(crate) async fn dispatch(
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

    pub(crate) fn note_state(&self, gate: &mut Gate, state: CircuitState) {
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
}

/// What a delivery says about the webhook, for the shared circuit: `Some(true)` it is up,
/// `Some(false)` it failed, `None` nothing. Failures reaching the server (or not reaching
/// it at all) count against the circuit, and so do refused credentials (401/403 arrive as
/// retries). A refusal of the content (another 4xx) means the webhook is up: it says
/// nothing while the circuit is closed, but it ends a half-open probe as a success, so
/// the probe is released at once instead of holding every replica until its lease ends.
pub(crate) fn circuit_outcome(d: &Delivery, was_probe: bool) -> Option<bool> {
    match d {
        Delivery::Delivered => Some(true),
        Delivery::Retry { .. } => Some(false),
        Delivery::Rejected { .. } => was_probe.then_some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn a_refused_probe_releases_the_circuit() {
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
}
