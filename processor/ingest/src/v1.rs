//! `POST /api/v1/ingest` (and MUTT v2.5's `/ingest`): one JSON object, answered in the v1
//! shape for existing senders, marked deprecated (RFC 9745 `Deprecation`, RFC 8594
//! `Sunset`).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mutt_telemetry::{metrics, otel};
use mutt_worker::http::{ApiError, CorrelationId};
use serde_json::{Value, json};

use crate::accept::{append, item_value, keyed, mark_replayed, prepare};
use crate::admission::{admit, read_body, unread, within_rate};
use crate::body::{BodyKind, body_kind};
use crate::{IngestState, Refused, answer, refuse, trace_context};

/// When v1 was deprecated (RFC 9745 `Deprecation`, a Unix time): 2026-11-01T00:00:00Z.
pub(crate) const V1_DEPRECATED_AT: i64 = 1_793_491_200;
/// When v1 goes away (RFC 8594 `Sunset`).
pub(crate) const V1_SUNSET: &str = "Wed, 30 Jun 2027 23:59:59 GMT";
/// Where v1 clients should look.
pub(crate) const V1_LINK: &str =
    "</api/v2/ingest>; rel=\"successor-version\", </docs/api/ingest>; rel=\"deprecation\"";

pub(crate) fn deprecated(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        "deprecation",
        HeaderValue::from_str(&format!("@{V1_DEPRECATED_AT}")).expect("ascii"),
    );
    h.insert("sunset", HeaderValue::from_static(V1_SUNSET));
    h.insert(header::LINK, HeaderValue::from_static(V1_LINK));
    resp
}

/// v1 errors keep the v1 fields (`status`, `message`) next to the v2 error object.
pub(crate) fn v1_error(
    reason: &'static str,
    status: StatusCode,
    code: &'static str,
    message: String,
) -> Refused {
    let e = ApiError::new(status, code, message.clone())
        .details(json!({"status": "error", "message": message}));
    refuse(reason, e)
}

pub(crate) async fn ingest_v1(
    State(state): State<Arc<IngestState>>,
    Extension(CorrelationId(cid)): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let resp = answer("POST /api/v1/ingest", &cid, &headers, |span| {
        handle_v1(&state, &cid, &headers, body, span)
    })
    .await;
    deprecated(resp)
}

pub(crate) async fn handle_v1(
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
    if body_kind(ct) != Some(BodyKind::Json) {
        let refused = v1_error(
            "content_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "v1 accepts one JSON object with Content-Type application/json".into(),
        );
        return Err(unread(state, body, refused).await);
    }
    let read = read_body(state, headers, body).await?;
    let keyed = keyed(headers, &caller, &read.bytes)?;
    let raw = serde_json::from_slice::<&serde_json::value::RawValue>(&read.bytes).map_err(|e| {
        v1_error(
            "json",
            StatusCode::BAD_REQUEST,
            "malformed_body",
            format!("not valid JSON: {e}"),
        )
    })?;
    let item = match item_value(raw, state) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Err(v1_error(
                "json",
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "v1 accepts one JSON object; send arrays to /api/v2/ingest".into(),
            ));
        }
        Err(e) => {
            return Err(v1_error(
                "validation",
                StatusCode::BAD_REQUEST,
                "invalid_event",
                e.to_string(),
            ));
        }
    };
    // Entries carry this request's span, so the alerter's span is its child.
    let trace = otel::carrier_of(&span, &trace_context(headers));
    let id = keyed.as_ref().map(|k| k.event_id(0));
    let (id, entry, _) =
        prepare(state, item, id, cid, mutt_core::now_ms(), &trace).map_err(|e| {
            metrics()
                .ingest_events
                .with_label_values(&["http", "rejected"])
                .inc();
            v1_error(
                "validation",
                StatusCode::BAD_REQUEST,
                "invalid_event",
                e.to_string(),
            )
        })?;
    within_rate(state, &caller, 1).await?;
    let replayed = append(state, std::slice::from_ref(&entry), keyed.as_ref(), cid).await?;
    metrics()
        .ingest_requests
        .with_label_values(&["success", ""])
        .inc();
    metrics()
        .ingest_events
        .with_label_values(&["http", if replayed { "replayed" } else { "accepted" }])
        .inc();
    // v1 reported the queue depth; a slow answer is not worth delaying the client for.
    let depth = tokio::time::timeout(Duration::from_millis(500), state.bus.len(&state.stream))
        .await
        .ok()
        .and_then(Result::ok);
    Ok(mark_replayed(
        (
            StatusCode::OK,
            axum::Json(json!({"status": "queued", "correlation_id": cid, "event_id": id, "queue_depth": depth})),
        )
            .into_response(),
        replayed,
    ))
}
