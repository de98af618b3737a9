//! `POST /api/v2/ingest`: one event, a JSON array or NDJSON. Every item is validated on
//! its own; the valid ones are appended in one go and the answer lists what was refused
//! and why.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use mutt_core::event::ValidationError;
use mutt_telemetry::{metrics, otel};
use mutt_worker::http::{ApiError, CorrelationId};
use serde_json::json;

use crate::accept::{accepted, append, item_error, item_value, keyed, mark_replayed, prepare};
use crate::admission::{
    RETRY_AFTER_OVERLOADED, admit, read_body, shedding_low_severity, unread, within_rate,
};
use crate::body::{self, BodyError, Parsed, body_kind};
use crate::{IngestState, Refused, answer, refuse, trace_context};

pub(crate) async fn ingest_v2(
    State(state): State<Arc<IngestState>>,
    Extension(CorrelationId(cid)): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer("POST /api/v2/ingest", &cid, &headers, |span| {
        handle_v2(&state, &cid, &headers, body, span)
    })
    .await
}

pub(crate) async fn handle_v2(
    state: &IngestState,
    cid: &str,
    headers: &HeaderMap,
    body: Body,
    span: tracing::Span,
) -> Result<Response, Refused> {
    let (caller, ct) = match admit(state, headers) {
        Ok(a) => a,
        Err(r) => return Err(unread(state, body, r).await),
    };
    let Some(kind) = body_kind(ct) else {
        let refused = refuse(
            "content_type",
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {:?} is not accepted; use application/json (an object or an array) \
                     or application/x-ndjson",
                    ct.unwrap_or("(none)")
                ),
            ),
        );
        return Err(unread(state, body, refused).await);
    };
    let read = read_body(state, headers, body).await?;
    let keyed = keyed(headers, &caller, &read.bytes)?;
    let parsed =
        body::parse(&read.bytes, kind, state.settings.max_batch_items).map_err(|e| match e {
            BodyError::Malformed(m) => refuse(
                "json",
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", m),
            ),
            BodyError::Empty => refuse(
                "validation",
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "empty_batch",
                    "the body holds no events",
                ),
            ),
            BodyError::TooMany { max } => refuse(
                "too_large",
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_events",
                    format!("more than {max} events in one request; at most {max} are accepted"),
                ),
            ),
        })?;
    let now = mutt_core::now_ms();
    // Entries carry this request's span, so the alerter's span is its child.
    let trace = otel::carrier_of(&span, &trace_context(headers));
    // One object is a batch of one; only the answer's shape differs.
    let (single, items) = match parsed {
        Parsed::Single(raw) => (true, vec![Ok(raw)]),
        Parsed::Batch(items) => (false, items),
    };
    let total = items.len();
    let shed_low = shedding_low_severity(state);
    let mut entries = Vec::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    let mut errors = Vec::new();
    let mut first_error = None;
    let mut shed = 0u64;
    for (i, item) in items.into_iter().enumerate() {
        let r = item
            .map_err(|m| ValidationError::new("event", "malformed_json", m))
            .and_then(|raw| item_value(raw, state))
            .and_then(|v| {
                let id = keyed.as_ref().map(|k| k.event_id(i));
                prepare(state, v, id, cid, now, &trace)
            });
        match r {
            // Behind: informational and debug events go first; critical ones never do.
            Ok((_, _, Some(sev))) if shed_low && sev >= 6 => {
                shed += 1;
                errors.push(json!({"index": i, "field": "syslog_severity", "code": "shed",
                    "message": "MUTT is behind: informational and debug events are refused for now; retry later"}));
            }
            Ok((id, entry, _)) => {
                ids.push(id);
                entries.push(entry);
            }
            Err(e) => {
                errors.push(item_error(i, &e));
                first_error.get_or_insert(e);
            }
        }
    }
    let n = entries.len();
    metrics()
        .ingest_events
        .with_label_values(&["http", "rejected"])
        .inc_by(errors.len() as u64);
    metrics()
        .ingest_shed
        .with_label_values(&["low_severity"])
        .inc_by(shed);
    let rejected = errors.len();
    if n == 0 {
        let details = json!({"accepted": 0, "rejected": rejected, "errors": errors});
        return Err(if shed > 0 {
            refuse(
                "overloaded",
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shed",
                    "MUTT is behind: low-severity events are refused for now",
                )
                .retry_after(RETRY_AFTER_OVERLOADED)
                .details(details),
            )
        } else if single {
            let message =
                first_error.map_or_else(|| "invalid event".to_string(), |e| e.to_string());
            refuse(
                "validation",
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", message).details(details),
            )
        } else {
            refuse(
                "validation",
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_events",
                    format!("none of the {total} events is valid"),
                )
                .details(details),
            )
        });
    }
    within_rate(state, &caller, n as u64).await?;
    let replayed = append(state, &entries, keyed.as_ref(), cid).await?;
    metrics()
        .ingest_requests
        .with_label_values(&["success", ""])
        .inc();
    metrics()
        .ingest_events
        .with_label_values(&["http", if replayed { "replayed" } else { "accepted" }])
        .inc_by(n as u64);
    let mut body =
        json!({"accepted": n, "rejected": rejected, "errors": errors, "correlation_id": cid});
    if single {
        body["event_id"] = json!(ids.first());
    }
    let mut resp = mark_replayed(accepted(body), replayed);
    if shed > 0 {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER_OVERLOADED),
        );
    }
    Ok(resp)
}
