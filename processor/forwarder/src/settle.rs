//! What follows a delivery: the circuit told, the alerts acknowledged, scheduled again with
//! backoff and jitter, or dead-lettered; then all of it written in as few round trips as
//! possible.

use std::cmp::Reverse;
use std::time::Duration;

use mutt_bus::dlq::DeadLetter;
use mutt_bus::guard::WEBHOOK;
use mutt_core::hot::HotConfig;
use mutt_telemetry::metrics;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Forwarder;
use crate::book::Book;
use crate::gate::{Gate, circuit_outcome};
use crate::webhook::Delivery;
use mutt_bus::guard::CircuitState;
use mutt_bus::names::FORWARDER_GROUP;
use mutt_worker::retry;

/// Full jitter: a uniform delay in `[0, min(max, base·2^attempt)]`, at least the server's
/// `Retry-After` when it gave one (capped by `max`).
pub(crate) fn retry_delay(h: &HotConfig, attempt: u64, retry_after: Option<Duration>) -> Duration {
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

impl Forwarder {
    /// Records the outcome of one request.
    pub(crate) async fn settle(
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
    pub(crate) async fn flush(&self, book: &mut Book, shutdown: &CancellationToken) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn jitter_stays_within_the_exponential_ceiling() {
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
