//! What v2 and v1 share once a request is admitted: each item validated and encoded under
//! its event id, and the valid ones appended to `{p}:events` (once per `Idempotency-Key`).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mutt_bus::{NewEntry, TraceContext};
use mutt_core::codec;
use mutt_core::event::{Envelope, ValidationError, validate};
use mutt_telemetry::metrics;
use mutt_worker::auth::Caller;
use mutt_worker::http::ApiError;
use serde_json::{Value, json};

use crate::idempotency;
use crate::{IngestState, Refused, refuse};

/// Seconds a client should wait before retrying when Redis is unavailable.
pub(crate) const RETRY_AFTER_UNAVAILABLE: u64 = 2;

/// Parses one raw item into a JSON value, refusing it unread when it is larger than any
/// event can be (twice the encoded-event limit leaves room for JSON's spaces and escapes).
pub(crate) fn item_value(
    raw: &serde_json::value::RawValue,
    state: &IngestState,
) -> Result<Value, ValidationError> {
    let max = state.settings.limits.max_event_bytes.saturating_mul(2);
    let text = raw.get();
    if text.len() > max {
        return Err(ValidationError::new(
            "event",
            "too_large",
            format!(
                "the event's JSON takes {} bytes; the limit is {max}",
                text.len()
            ),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        ValidationError::new("event", "malformed_json", format!("not valid JSON: {e}"))
    })
}

/// Validates and encodes one item, under `id` (derived from the request's
/// `Idempotency-Key`) or a new UUIDv7.
pub(crate) fn prepare(
    state: &IngestState,
    item: Value,
    id: Option<String>,
    cid: &str,
    now_ms: i64,
    trace: &TraceContext,
) -> Result<(String, NewEntry, Option<u8>), ValidationError> {
    let id = id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let envelope = Envelope {
        id: id.clone(),
        correlation_id: cid.to_string(),
        received_at_ms: now_ms,
    };
    let event = validate(item, envelope, &state.settings.limits)?;
    let payload = codec::encode_event(&event)
        .map_err(|e| ValidationError::new("event", "invalid_value", e.to_string()))?;
    if payload.len() > state.settings.limits.max_event_bytes {
        return Err(ValidationError::new(
            "event",
            "too_large",
            format!(
                "the event takes {} bytes; the limit is {}",
                payload.len(),
                state.settings.limits.max_event_bytes
            ),
        ));
    }
    Ok((
        id,
        NewEntry::new(payload, trace.clone()),
        event.syslog_severity,
    ))
}

pub(crate) fn item_error(index: usize, e: &ValidationError) -> Value {
    json!({"index": index, "field": e.field, "code": e.code, "message": e.message})
}

/// The request's `Idempotency-Key` identity, if it sent one.
pub(crate) fn keyed(
    headers: &HeaderMap,
    caller: &Caller,
    body: &[u8],
) -> Result<Option<idempotency::Request>, Refused> {
    let key = headers.get(idempotency::HEADER).map(HeaderValue::as_bytes);
    idempotency::Request::of(&caller.name, key, body).map_err(|e| {
        refuse(
            "validation",
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                e.to_string(),
            ),
        )
    })
}

/// Appends the entries; a keyed request is appended at most once per window. Returns
/// whether this was a resend of a request appended before (nothing appended now).
pub(crate) async fn append(
    state: &IngestState,
    entries: &[NewEntry],
    keyed: Option<&idempotency::Request>,
    cid: &str,
) -> Result<bool, Refused> {
    let bus = state.append_bus();
    let generation = state.generation();
    let appended = match keyed {
        None => bus.append(&state.stream, entries).await.map(|_| false),
        Some(k) => bus
            .append_once(
                &state.stream,
                &k.member(),
                state.settings.idempotency_window,
                entries,
            )
            .await
            .map(|ids| ids.is_none()),
    };
    let replayed = appended.map_err(|e| {
        tracing::warn!(error = %e, correlation_id = cid, "ingest: cannot append to redis");
        metrics()
            .dependency_errors
            .with_label_values(&["ingest", "redis"])
            .inc();
        // A timeout may come after Redis applied the append: say so, and how to resend
        // safely, instead of claiming that nothing was accepted.
        refuse(
            "redis",
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the event store did not confirm the append, so the events may or may not have \
                 been accepted; resend the same request later, with an Idempotency-Key header so \
                 that it is appended at most once",
            )
            .retry_after(RETRY_AFTER_UNAVAILABLE),
        )
    })?;
    // Acknowledged only once the replicas hold it (MUTT_INGEST_MIN_REPLICAS). A resend
    // with the same Idempotency-Key appends nothing twice and waits again.
    state.replicated(generation).await.map_err(|short| {
        metrics().ingest_unreplicated.inc();
        tracing::warn!(correlation_id = cid, "ingest: {short}");
        refuse(
            "replication",
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_replicated",
                format!(
                    "the events were appended, but {short} (MUTT_INGEST_MIN_REPLICAS): they \
                     may be lost if the server fails now; resend the same request later, with \
                     an Idempotency-Key header so that it is appended at most once"
                ),
            )
            .retry_after(RETRY_AFTER_UNAVAILABLE),
        )
    })?;
    Ok(replayed)
}

/// Marks the answer to a resend that was not appended again.
pub(crate) fn mark_replayed(mut resp: Response, replayed: bool) -> Response {
    if replayed {
        resp.headers_mut()
            .insert(idempotency::REPLAYED, HeaderValue::from_static("true"));
    }
    resp
}

pub(crate) fn accepted(body: Value) -> Response {
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}
