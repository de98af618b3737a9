//! What a request must pass before its events are looked at, cheapest first: its key, the
//! alerters' lag, the declared length, the bytes in flight; after validation, the rate
//! limits. A refused request costs no more than what was read to refuse it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use mutt_bus::Bus;
use mutt_telemetry::metrics;
use mutt_worker::auth::{Caller, Scope};
use mutt_worker::http::{ApiError, presented_key};
use tokio_util::sync::CancellationToken;

use crate::body::{self, ReadBody, ReadError};
use crate::{IngestState, Refused, refuse};

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
pub(crate) const RETRY_AFTER_OVERLOADED: u64 = 5;

/// What every request passes before its body is read, so that refusing stays cheap
/// however hard clients push: its key, then the alerters' lag. Returns the caller and the
/// declared content type.
pub(crate) fn admit<'h>(
    state: &IngestState,
    headers: &'h HeaderMap,
) -> Result<(Caller, Option<&'h str>), Refused> {
    let caller = check_key(state, headers)?;
    within_lag(state)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    Ok((caller, ct))
}

/// Admission by lag: past the cap the whole request is refused.
fn within_lag(state: &IngestState) -> Result<(), Refused> {
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
pub(crate) fn shedding_low_severity(state: &IngestState) -> bool {
    let at = state.hot.borrow().ingest_shed_low_severity_lag;
    at > 0 && state.lag.load(std::sync::atomic::Ordering::Relaxed) > at
}

/// The shared rate limits (all clients, and this key): `n` events or a 429.
pub(crate) async fn within_rate(
    state: &IngestState,
    caller: &Caller,
    n: u64,
) -> Result<(), Refused> {
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

/// Refuses a body whose declared length is over the limit before reading any of it, so
/// that the client gets its 413 at once instead of after uploading the whole body. (A body
/// without a length, or lying about it, is still cut at the limit while it is read.)
pub(crate) async fn declared_length(
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

/// `refused`, answered only after what the client still sends of `body` was read and
/// thrown away (bounded): a refusal made before the body is read must reach a client that
/// is still uploading, not as a connection reset (see [`body::discard`]). A caller
/// without a valid key gets no such courtesy: its answer comes at once, and its bytes are
/// never read.
pub(crate) async fn unread(state: &IngestState, body: Body, refused: Refused) -> Refused {
    if refused.reason != "auth" {
        body::discard(body.into_data_stream(), state.settings.max_body_bytes).await;
    }
    refused
}

/// Seconds a client should wait when the bytes in flight are over the budget.
pub(crate) const RETRY_AFTER_BUSY: u64 = 1;

/// Reads the body, after the caller checked the key and admission: a refused request
/// costs no more than its headers.
pub(crate) async fn read_body(
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
