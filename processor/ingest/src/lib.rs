//! The ingest HTTP API.
//!
//! `POST /api/v2/ingest` takes one event, a JSON array or NDJSON; every item is validated
//! on its own, the valid ones are appended to `{p}:events` in one pipeline, and the answer
//! lists what was refused and why. `POST /api/v1/ingest` (and MUTT v2.5's `/ingest`) keep
//! the v1 contract for existing senders, marked deprecated.

pub mod body;
pub mod idempotency;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, middleware};
use mutt_bus::{Bus, NewEntry, TraceContext};
use mutt_core::codec;
use mutt_core::event::{Envelope, ValidationError, validate};
use mutt_core::settings::IngestSettings;
use mutt_telemetry::{metrics, otel};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use self::body::{BodyError, BodyKind, Budget, Parsed, ReadBody, ReadError, body_kind};
use mutt_worker::auth::{Caller, KeyRing, Scope};
use mutt_worker::http::{ApiError, CorrelationId, correlation, json_errors, presented_key};

/// When v1 was deprecated (RFC 9745 `Deprecation`, a Unix time): 2026-11-01T00:00:00Z.
const V1_DEPRECATED_AT: i64 = 1_793_491_200;
/// When v1 goes away (RFC 8594 `Sunset`).
const V1_SUNSET: &str = "Wed, 30 Jun 2027 23:59:59 GMT";
/// Where v1 clients should look.
const V1_LINK: &str =
    "</api/v2/ingest>; rel=\"successor-version\", </docs/api/ingest>; rel=\"deprecation\"";

/// Seconds a client should wait before retrying when Redis is unavailable.
const RETRY_AFTER_UNAVAILABLE: u64 = 2;

/// What the handlers share.
#[derive(Debug)]
pub struct IngestState {
    /// Redis.
    pub bus: Bus,
    /// Accepted API keys.
    pub keys: KeyRing,
    /// Limits and timeouts.
    pub settings: IngestSettings,
    /// `{p}:events`.
    pub stream: String,
    /// Hot settings (rate limits, lag caps).
    pub hot: mutt_worker::Hot,
    /// Events not yet delivered to the alerters, as last measured.
    pub lag: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The bytes of the request bodies in flight (`MUTT_INGEST_MAX_INFLIGHT_BYTES`).
    pub budget: Budget,
}

/// Measures the alerters' lag every 200 ms until `shutdown`, for admission control.
pub async fn watch_lag(
    bus: Bus,
    stream: String,
    lag: std::sync::Arc<std::sync::atomic::AtomicU64>,
    shutdown: CancellationToken,
) {
    loop {
        let measured = match bus.group_stats(&stream).await {
            // The group furthest behind; Redis cannot always tell the lag (after deletions),
            // and then the stream's length is the safe upper bound.
            Ok(groups) if !groups.is_empty() => {
                let mut worst = 0;
                for g in groups {
                    worst = worst.max(match g.lag {
                        Some(l) => l,
                        None => bus.len(&stream).await.unwrap_or(0),
                    });
                }
                Some(worst)
            }
            Ok(_) => Some(0),
            Err(e) => {
                tracing::debug!(error = %e, "measuring lag");
                None
            }
        };
        if let Some(l) = measured {
            lag.store(l, std::sync::atomic::Ordering::Relaxed);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Seconds a client should wait when MUTT is behind.
const RETRY_AFTER_OVERLOADED: u64 = 5;

/// Admission by lag: past the cap the whole request is refused before its body is read,
/// so that refusing stays cheap however hard clients push.
fn admit(state: &IngestState) -> Result<(), Refused> {
    let cap = state.hot.borrow().ingest_max_lag;
    let lag = state.lag.load(std::sync::atomic::Ordering::Relaxed);
    if cap > 0 && lag > cap {
        return Err(refuse(
            "overloaded",
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("{lag} events wait for processing (the cap is {cap}); retry later"),
            )
            .retry_after(RETRY_AFTER_OVERLOADED),
        ));
    }
    Ok(())
}

/// Whether low-severity events are refused now.
fn shedding_low_severity(state: &IngestState) -> bool {
    let at = state.hot.borrow().ingest_shed_low_severity_lag;
    at > 0 && state.lag.load(std::sync::atomic::Ordering::Relaxed) > at
}

/// The shared rate limits (all clients, and this key): `n` events or a 429.
async fn within_rate(state: &IngestState, caller: &Caller, n: u64) -> Result<(), Refused> {
    let (global, per_key) = {
        let h = state.hot.borrow();
        (h.ingest_rate_limit, h.ingest_key_rate_limit)
    };
    // The key's own limit first: a key over it must not spend the shared budget.
    for (name, rate, reason) in [
        (format!("ingest:{}", caller.name), per_key, "key_rate_limit"),
        ("ingest".to_string(), global, "rate_limit"),
    ] {
        if rate == 0 {
            continue;
        }
        let whose = if reason == "key_rate_limit" {
            " for this key"
        } else {
            ""
        };
        // The burst is one second's worth: a request larger than that could only pass by
        // borrowing from the future, which would let any key push a whole batch whatever
        // its rate. It is refused for its size (a resend would be refused again).
        if n > rate {
            metrics().ingest_shed.with_label_values(&[reason]).inc_by(n);
            return Err(refuse(
                reason,
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "batch_over_rate_limit",
                    format!(
                        "{n} events in one request, more than the limit of {rate} events/s{whose} \
                         allows at once; send batches of at most {rate}"
                    ),
                ),
            ));
        }
        let wait = match state.bus.rate_take(&name, rate, rate, n).await {
            Ok(w) => w,
            // The limiter is a protection, not a dependency: without Redis the append
            // fails anyway, with its own answer.
            Err(_) => continue,
        };
        if !wait.is_zero() {
            metrics().ingest_shed.with_label_values(&[reason]).inc_by(n);
            return Err(refuse(
                reason,
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("over the limit of {rate} events/s{whose}"),
                )
                .retry_after(wait.as_secs_f64().ceil().max(1.0) as u64),
            ));
        }
    }
    Ok(())
}

/// The ingest router.
pub fn app(state: Arc<IngestState>) -> Router {
    let limit = state.settings.max_body_bytes;
    let timeout = state.settings.request_timeout;
    Router::new()
        .route("/api/v2/ingest", post(ingest_v2))
        .route("/api/v1/ingest", post(ingest_v1))
        .route("/ingest", post(ingest_v1))
        .layer(middleware::from_fn_with_state(limit, declared_length))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(correlation))
        .with_state(state)
}

/// Refuses a body whose declared length is over the limit before reading any of it, so
/// that the client gets its 413 at once instead of after uploading the whole body. (A body
/// without a length, or lying about it, is still cut at the limit while it is read.)
async fn declared_length(
    State(limit): State<usize>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return refuse(
            "too_large",
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {limit} bytes; send smaller batches"),
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Serves ingest until `shutdown`; requests in flight are answered first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<IngestState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// A refused request: the error answer and the reason it is counted under.
#[derive(Debug)]
struct Refused {
    reason: &'static str,
    error: Box<ApiError>,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        metrics()
            .ingest_requests
            .with_label_values(&["fail", self.reason])
            .inc();
        self.error.into_response()
    }
}

fn refuse(reason: &'static str, error: ApiError) -> Refused {
    Refused {
        reason,
        error: Box::new(error),
    }
}

fn check_key(state: &IngestState, headers: &HeaderMap) -> Result<Caller, Refused> {
    let Some(key) = presented_key(headers) else {
        return Err(refuse(
            "auth",
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing X-API-Key header",
            ),
        ));
    };
    match state.keys.verify(key) {
        None => Err(refuse(
            "auth",
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key"),
        )),
        Some(c) if !c.may(Scope::Ingest) => Err(refuse(
            "auth",
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("the key {:?} has no ingest scope", c.name),
            ),
        )),
        Some(c) => Ok(c),
    }
}

/// Seconds a client should wait when the bytes in flight are over the budget.
const RETRY_AFTER_BUSY: u64 = 1;

/// Reads the body, after the caller checked the key and admission: a refused request
/// costs no more than its headers.
async fn read_body(
    state: &IngestState,
    headers: &HeaderMap,
    body: Body,
) -> Result<ReadBody, Refused> {
    let limit = state.settings.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    body::read(body, declared, limit, &state.budget)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => refuse(
                "too_large",
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body exceeds {limit} bytes; send smaller batches"),
                ),
            ),
            ReadError::Busy => refuse(
                "busy",
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "ingest holds as many request bytes as it may (MUTT_INGEST_MAX_INFLIGHT_BYTES); retry shortly",
                )
                .retry_after(RETRY_AFTER_BUSY),
            ),
            ReadError::Broken(m) => refuse(
                "json",
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", m),
            ),
        })
}

/// Parses one raw item into a JSON value, refusing it unread when it is larger than any
/// event can be (twice the encoded-event limit leaves room for JSON's spaces and escapes).
fn item_value(
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

fn trace_context(headers: &HeaderMap) -> TraceContext {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 512)
            .map(str::to_string)
    };
    TraceContext {
        traceparent: text("traceparent"),
        tracestate: text("tracestate"),
    }
}

/// Validates and encodes one item, under `id` (derived from the request's
/// `Idempotency-Key`) or a new UUIDv7.
fn prepare(
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

fn item_error(index: usize, e: &ValidationError) -> Value {
    json!({"index": index, "field": e.field, "code": e.code, "message": e.message})
}

/// The request's `Idempotency-Key` identity, if it sent one.
fn keyed(
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
async fn append(
    state: &IngestState,
    entries: &[NewEntry],
    keyed: Option<&idempotency::Request>,
    cid: &str,
) -> Result<bool, Refused> {
    let appended = match keyed {
        None => state
            .bus
            .append(&state.stream, entries)
            .await
            .map(|_| false),
        Some(k) => state
            .bus
            .append_once(
                &state.stream,
                &k.member(),
                state.settings.idempotency_window,
                entries,
            )
            .await
            .map(|ids| ids.is_none()),
    };
    appended.map_err(|e| {
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
    })
}

/// Marks the answer to a resend that was not appended again.
fn mark_replayed(mut resp: Response, replayed: bool) -> Response {
    if replayed {
        resp.headers_mut()
            .insert(idempotency::REPLAYED, HeaderValue::from_static("true"));
    }
    resp
}

async fn ingest_v2(
    State(state): State<Arc<IngestState>>,
    Extension(CorrelationId(cid)): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let timer = metrics().ingest_latency.start_timer();
    let span = request_span("POST /api/v2/ingest", &cid, &headers);
    let resp = handle_v2(&state, &cid, &headers, body, &span)
        .instrument(span.clone())
        .await
        .unwrap_or_else(IntoResponse::into_response);
    span.record("http.response.status_code", resp.status().as_u16());
    timer.observe_duration();
    resp
}

/// The server span of an ingest request, a child of the caller's `traceparent` if any.
fn request_span(name: &'static str, cid: &str, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "ingest",
        otel.name = name,
        otel.kind = "server",
        correlation_id = %cid,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    otel::set_parent(&span, &trace_context(headers));
    span
}

async fn handle_v2(
    state: &IngestState,
    cid: &str,
    headers: &HeaderMap,
    body: Body,
    span: &tracing::Span,
) -> Result<Response, Refused> {
    let caller = check_key(state, headers)?;
    admit(state)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(kind) = body_kind(ct) else {
        return Err(refuse(
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
        ));
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
    let trace = otel::carrier_of(span, &trace_context(headers));
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
        .with_label_values(&["rejected"])
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
        .with_label_values(&[if replayed { "replayed" } else { "accepted" }])
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

fn accepted(body: Value) -> Response {
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

fn deprecated(mut resp: Response) -> Response {
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
fn v1_error(
    reason: &'static str,
    status: StatusCode,
    code: &'static str,
    message: String,
) -> Refused {
    let e = ApiError::new(status, code, message.clone())
        .details(json!({"status": "error", "message": message}));
    refuse(reason, e)
}

async fn ingest_v1(
    State(state): State<Arc<IngestState>>,
    Extension(CorrelationId(cid)): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let timer = metrics().ingest_latency.start_timer();
    let span = request_span("POST /api/v1/ingest", &cid, &headers);
    let resp = deprecated(
        handle_v1(&state, &cid, &headers, body, &span)
            .instrument(span.clone())
            .await
            .unwrap_or_else(IntoResponse::into_response),
    );
    span.record("http.response.status_code", resp.status().as_u16());
    timer.observe_duration();
    resp
}

async fn handle_v1(
    state: &IngestState,
    cid: &str,
    headers: &HeaderMap,
    body: Body,
    span: &tracing::Span,
) -> Result<Response, Refused> {
    let caller = check_key(state, headers)?;
    admit(state)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if body_kind(ct) != Some(BodyKind::Json) {
        return Err(v1_error(
            "content_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "v1 accepts one JSON object with Content-Type application/json".into(),
        ));
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
    let trace = otel::carrier_of(span, &trace_context(headers));
    let id = keyed.as_ref().map(|k| k.event_id(0));
    let (id, entry, _) =
        prepare(state, item, id, cid, mutt_core::now_ms(), &trace).map_err(|e| {
            metrics()
                .ingest_events
                .with_label_values(&["rejected"])
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
        .with_label_values(&[if replayed { "replayed" } else { "accepted" }])
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
