//! One v2 list item read and planned: where it goes in MUTT's streams, or why it stays.

#[cfg(test)]
mod tests;

use mutt_alerter::META_ALERT_HANDLING;
use mutt_bus::legacy::{Destination, LegacyLetter, LegacyQueue};
use mutt_bus::names::{ALERTER_GROUP, FORWARDER_GROUP};
use mutt_bus::{Names, NewEntry, TraceContext};
use mutt_core::alert::Alert;
use mutt_core::codec;
use mutt_core::event::{Envelope, Event, Limits, ValidationError, validate};
use mutt_core::fingerprint::fingerprint;
use mutt_store::AuditRow;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::*;

/// What to do with one item.
#[derive(Debug)]
pub(super) enum Plan {
    /// Move it, writing the audit row first if there is one.
    Move {
        to: Destination,
        audit: Option<Box<AuditRow>>,
    },
    /// Leave it in its list, for this reason.
    Keep(String),
}

/// Where `item` of the list `key`, which holds `queue`, goes.
pub(super) fn plan(
    key: &str,
    queue: &LegacyQueue,
    item: &[u8],
    names: &Names,
    now_ms: i64,
) -> Plan {
    let event_to_stream = |payload: Vec<u8>| Plan::Move {
        to: Destination::Stream {
            stream: names.events(),
            entry: NewEntry::new(payload, TraceContext::default()),
        },
        audit: None,
    };
    let letter = |group: &str, payload: Vec<u8>, retries: Option<u64>, last_error: String| {
        let source_stream = if group == FORWARDER_GROUP {
            names.alerts()
        } else {
            names.events()
        };
        Destination::DeadLetter(LegacyLetter {
            group: group.to_string(),
            source_stream,
            payload,
            delivery_count: retries.unwrap_or(0),
            last_error,
        })
    };
    let dead = |group: &str, payload, v2: &V2Fields, what: &str| Plan::Move {
        to: letter(
            group,
            payload,
            v2.retries,
            dead_letter_reason(key, what, v2),
        ),
        audit: None,
    };
    match queue {
        LegacyQueue::Events => match read_event(item, now_ms) {
            (Ok((_, payload)), _) => event_to_stream(payload),
            (Err(e), v2) => Plan::Move {
                to: letter(
                    ALERTER_GROUP,
                    item.to_vec(),
                    v2.retries,
                    format!("MUTT v2 event from {key} that MUTT cannot read: {e}"),
                ),
                audit: None,
            },
        },
        LegacyQueue::Alerts => match read_alert(item, now_ms) {
            (Read::Event(payload), _) => event_to_stream(payload),
            (Read::MetaAlert(alert, payload), _) => Plan::Move {
                audit: meta_audit(&alert),
                to: Destination::Stream {
                    stream: names.alerts(),
                    entry: NewEntry::new(payload, TraceContext::default()),
                },
            },
            (Read::Unreadable(e, bytes), v2) => Plan::Move {
                to: letter(
                    FORWARDER_GROUP,
                    bytes,
                    v2.retries,
                    format!("MUTT v2 alert from {key} that MUTT cannot read: {e}"),
                ),
                audit: None,
            },
            (Read::Keep(why), _) => Plan::Keep(why),
        },
        LegacyQueue::DeadLetters(name) if name == "moog" => match read_alert(item, now_ms) {
            (Read::MetaAlert(alert, payload), v2) => Plan::Move {
                audit: meta_audit(&alert),
                to: letter(
                    FORWARDER_GROUP,
                    payload,
                    v2.retries,
                    dead_letter_reason(key, "", &v2),
                ),
            },
            (Read::Event(payload), v2) => dead(
                ALERTER_GROUP,
                payload,
                &v2,
                " (a rule alert: a replay sends its event to the alerters again)",
            ),
            (Read::Unreadable(e, bytes), v2) => dead(
                FORWARDER_GROUP,
                bytes,
                &v2,
                &format!(", which MUTT cannot read: {e}"),
            ),
            (Read::Keep(why), _) => Plan::Keep(why),
        },
        LegacyQueue::DeadLetters(_) => match read_event(item, now_ms) {
            (Ok((_, payload)), v2) => dead(ALERTER_GROUP, payload, &v2, ""),
            (Err(e), v2) => dead(
                ALERTER_GROUP,
                item.to_vec(),
                &v2,
                &format!(", which MUTT cannot read: {e}"),
            ),
        },
    }
}

/// The `last_error` of a dead letter MUTT v2 made: where it was, and `what` else to say.
pub(super) fn dead_letter_reason(key: &str, what: &str, v2: &V2Fields) -> String {
    let mut s = format!("MUTT v2 dead letter from {key}{what}");
    if let Some(r) = &v2.shedding_reason {
        s.push_str(&format!("; shed by v2: {r}"));
    }
    s
}

/// The audit row MUTT writes for a meta-alert (as the alerter does). The event validated,
/// so its time parses.
pub(super) fn meta_audit(alert: &Alert) -> Option<Box<AuditRow>> {
    let e = &alert.event;
    Some(Box::new(AuditRow {
        event_id: alert.id.clone(),
        event_timestamp: e.time().ok()?,
        hostname: e.hostname.clone(),
        matched_rule_id: None,
        handling_decision: META_ALERT_HANDLING.into(),
        forwarded: true,
        raw_message: e.to_json().to_string(),
        correlation_id: e.correlation_id.clone(),
        team_assignment: alert.team.clone(),
    }))
}

/// An alert item as read.
#[derive(Debug)]
pub(super) enum Read {
    /// The encoding of its event.
    Event(Vec<u8>),
    /// A meta-alert, and its encoding.
    MetaAlert(Box<Alert>, Vec<u8>),
    /// Unreadable: why, and the bytes to keep (without v2's Moog API key).
    Unreadable(String, Vec<u8>),
    /// To be left in its list, for this reason.
    Keep(String),
}

/// MUTT v2's bookkeeping fields, taken out of an item.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct V2Fields {
    /// `_correlation_id`.
    correlation_id: Option<String>,
    /// `_retry_count` (alerter) or `_moog_retry_count` (forwarder).
    retries: Option<u64>,
    /// `shedding_reason` (events v2 shed to its DLQ).
    shedding_reason: Option<String>,
}

pub(super) fn take_v2_fields(obj: &mut Map<String, Value>) -> V2Fields {
    let count = |v: Option<Value>| match v {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let retries = count(obj.remove("_retry_count"));
    let moog_retries = count(obj.remove("_moog_retry_count"));
    V2Fields {
        correlation_id: match obj.remove("_correlation_id") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        retries: moog_retries.or(retries),
        shedding_reason: match obj.remove("shedding_reason") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
    }
}

/// A stable event id for an item: a UUIDv8 from the SHA-256 of its bytes.
pub(super) fn item_id(item: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"mutt-v2-queue-item\0");
    h.update(item);
    let d: [u8; 32] = h.finalize().into();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

/// Whether a v2 correlation id can be kept (as ingest accepts `X-Correlation-ID`: 1–64
/// letters, digits, `-`, `_`, `.`, `:`).
pub(super) fn acceptable_correlation(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Validates `value` as ingest does and encodes it as ingest does.
pub(super) fn event_of(
    value: Value,
    id: String,
    correlation_id: Option<String>,
    now_ms: i64,
) -> Result<(Event, Vec<u8>), ValidationError> {
    let limits = Limits::default();
    let correlation_id = correlation_id
        .filter(|c| acceptable_correlation(c))
        .unwrap_or_else(|| id.clone());
    let envelope = Envelope {
        id,
        correlation_id,
        received_at_ms: now_ms,
    };
    let event = validate(value, envelope, &limits)?;
    let payload = codec::encode_event(&event)
        .map_err(|e| ValidationError::new("event", "invalid_value", e.to_string()))?;
    if payload.len() > limits.max_event_bytes {
        return Err(ValidationError::new(
            "event",
            "too_large",
            format!(
                "the event takes {} bytes; the limit is {}",
                payload.len(),
                limits.max_event_bytes
            ),
        ));
    }
    Ok((event, payload))
}

/// Reads a v2 event item (the client's JSON plus v2's bookkeeping fields): the event and
/// its encoding, or why it cannot be read.
pub(super) fn read_event(item: &[u8], now_ms: i64) -> (Result<(Event, Vec<u8>), String>, V2Fields) {
    let mut value: Value = match serde_json::from_slice(item) {
        Ok(v) => v,
        Err(e) => return (Err(format!("not JSON: {e}")), V2Fields::default()),
    };
    let v2 = value
        .as_object_mut()
        .map(take_v2_fields)
        .unwrap_or_default();
    let read = event_of(value, item_id(item), v2.correlation_id.clone(), now_ms)
        .map_err(|e| e.to_string());
    (read, v2)
}

/// Reads a v2 alert item: a meta-alert when it maps faithfully, else its event (see the
/// module's docs), or why it cannot be read.
pub(super) fn read_alert(item: &[u8], now_ms: i64) -> (Read, V2Fields) {
    let mut alert = match serde_json::from_slice::<Value>(item) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return (
                Read::Unreadable("a MUTT v2 alert is a JSON object".into(), item.to_vec()),
                V2Fields::default(),
            );
        }
        Err(_) => {
            return (
                Read::Keep(
                    "an alert that is not JSON may hold MUTT v2's Moog API key, which cannot be \
                     removed from it: it is not copied"
                        .into(),
                ),
                V2Fields::default(),
            );
        }
    };
    alert.remove("api_key");
    let scrubbed = serde_json::to_vec(&alert).unwrap_or_default();
    let v2 = take_v2_fields(&mut alert);
    let mut raw = match alert.remove("raw_json") {
        // Some writers stored the event as JSON text.
        Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Some(v) => v,
        None => Value::Null,
    };
    let inner = raw.as_object_mut().map(take_v2_fields).unwrap_or_default();
    let correlation_id = inner.correlation_id.or(v2.correlation_id.clone());
    let (event, payload) = match event_of(raw, item_id(item), correlation_id, now_ms) {
        Ok(ok) => ok,
        Err(e) => {
            return (
                Read::Unreadable(format!("its event (raw_json): {e}"), scrubbed),
                v2,
            );
        }
    };
    let text = |k: &str| alert.get(k).and_then(Value::as_str);
    let team = text("team_assignment")
        .filter(|t| !t.trim().is_empty() && t.chars().count() <= MAX_TEAM_CHARS);
    match (
        text("hostname") == Some(META_HOST),
        team,
        text("message_body"),
    ) {
        (true, Some(team), Some(description)) => {
            let mut meta =
                Alert::for_unhandled(&event, &fingerprint(&event.message), team, 0, 0, now_ms);
            description.clone_into(&mut meta.description);
            match codec::encode_alert(&meta) {
                Ok(p) => (Read::MetaAlert(Box::new(meta), p), v2),
                Err(e) => (Read::Unreadable(e.to_string(), scrubbed), v2),
            }
        }
        _ => (Read::Event(payload), v2),
    }
}
