//! What a forwarder holds: the alerts in hand with their attempts and schedule, what is
//! to be acknowledged or dead-lettered, and the deliveries in flight.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use mutt_bus::StreamEntry;
use mutt_core::alert::Alert;
use mutt_core::codec;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Forwarder;
use crate::webhook::Delivery;

/// One alert in hand.
#[derive(Debug)]
pub(crate) struct InHand {
    pub(crate) entry: StreamEntry,
    /// The decoded alert; None for an entry that is not a valid alert (on its way to the DLQ).
    pub(crate) alert: Option<Alert>,
    /// The webhook event for this alert.
    /// The webhook event, serialised once when the alert is taken into hand.
    pub(crate) payload: Vec<u8>,
    pub(crate) attempts: u64,
    pub(crate) first_failure_ms: Option<i64>,
    pub(crate) last_error: String,
    /// Send alone: a batch holding it was refused, so it is tried by itself to find the
    /// one alert the webhook refuses.
    pub(crate) solo: bool,
    pub(crate) ready_at: Instant,
    /// Released when the alert leaves our hands: bounds what is held. Reclaimed alerts
    /// come without one.
    pub(crate) _permit: Option<OwnedSemaphorePermit>,
}

/// The delivery loop's state.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub(crate) held: HashMap<String, InHand>,
    pub(crate) ready: VecDeque<String>,
    pub(crate) later: BinaryHeap<Reverse<(Instant, String)>>,
    pub(crate) acks: Vec<String>,
    pub(crate) dead: Vec<String>,
    /// (ids, error) to record in the failure registry.
    pub(crate) failures: Vec<(Vec<String>, String)>,
}

/// What a delivery task returns: the alerts it carried, the outcome, how long it took.
pub(crate) type Delivered = (Vec<String>, Delivery, Duration);

/// The deliveries in flight, with the alerts each carries: a task that panics has lost its
/// return value, and its alerts must not be stranded in hand (renewed forever, never sent).
#[derive(Debug, Default)]
pub(crate) struct Running {
    pub(crate) tasks: JoinSet<Delivered>,
    pub(crate) ids: HashMap<tokio::task::Id, Vec<String>>,
}

impl Running {
    pub(crate) fn spawn(
        &mut self,
        ids: Vec<String>,
        delivery: impl Future<Output = Delivered> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(delivery);
        self.ids.insert(handle.id(), ids);
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The result of a finished task; a panicked one is a failed delivery of its alerts,
    /// retried like any other failure.
    pub(crate) fn finished(
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
    /// Takes a read or reclaimed entry into hand, or marks it for the DLQ if it is not an alert.
    pub(crate) fn take(
        &self,
        entry: StreamEntry,
        permit: Option<OwnedSemaphorePermit>,
        book: &mut Book,
    ) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    pub(crate) async fn a_delivery_task_that_panics_fails_its_alerts() {
        let mut running = Running::default();
        let ids = vec!["1-0".to_string(), "2-0".to_string()];
        running.spawn(ids.clone(), async { panic!("a bug in a delivery") });
        let done = running.tasks.join_next_with_id().await.unwrap();
        let (back, d, _) = running.finished(done);
        assert_eq!(back, ids, "its alerts are known, not stranded");
        assert!(matches!(d, Delivery::Retry { .. }));
        assert!(running.ids.is_empty());
    }
}
