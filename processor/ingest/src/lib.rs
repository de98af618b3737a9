//! Ingest: the HTTP API, and the native syslog and SNMP listeners.
//!
//! `POST /api/v2/ingest` takes one event, a JSON array or NDJSON; every item is validated
//! on its own, the valid ones are appended to `{p}:events` in one pipeline, and the answer
//! lists what was refused and why. `POST /api/v1/ingest` (and MUTT v2.5's `/ingest`) keep
//! the v1 contract for existing senders, marked deprecated.
//!
//! # Layout
//!
//! - this file: the router, the state the handlers share, the refusal type, the request's
//!   span.
//! - [`admission`]: key, lag, declared length, bytes in flight, rate limits.
//! - [`body`]: reading the body within its limits and splitting it into items unparsed.
//! - [`accept`]: validating and encoding items, appending them (once per key).
//! - [`idempotency`]: the `Idempotency-Key` identity of a request and its events.
//! - [`v2`]: `POST /api/v2/ingest`.
//! - [`v1`]: `POST /api/v1/ingest` and `/ingest`, deprecated.
//! - [`intake`]: what the socket listeners share with the HTTP API (validation,
//!   admission, trace start, an append retried until it succeeds).
//! - [`native`]: binding the socket listeners from their settings, and serving them.
//! - [`syslog`]: syslog over UDP, TCP and TLS.
//! - [`snmp`]: SNMP traps and informs.
//! - [`udp`]: datagram sockets and the kernel's drops.

pub mod accept;
pub mod admission;
pub mod body;
pub mod idempotency;
pub mod intake;
pub mod native;
pub mod snmp;
pub mod syslog;
pub mod udp;
pub mod v1;
pub mod v2;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mutt_bus::{Bus, TraceContext};
use mutt_core::settings::IngestSettings;
use mutt_telemetry::{metrics, otel};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

pub use self::admission::watch_lag;
use self::body::Budget;
use mutt_worker::auth::KeyRing;
use mutt_worker::http::{ApiError, correlation, json_errors};

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
    /// With `MUTT_INGEST_MIN_REPLICAS` > 0: where appends go and how many replicas must
    /// hold them before they are acknowledged.
    pub replication: Option<Replication>,
}

/// Acknowledgement after replication (`MUTT_INGEST_MIN_REPLICAS`, ADR 0021).
#[derive(Debug, Clone)]
pub struct Replication {
    /// A connection of its own: `WAIT` blocks it, and counts the writes made on it.
    pub bus: Bus,
    /// Replicas that must hold the entries.
    pub min: usize,
    /// How long to wait for them.
    pub timeout: std::time::Duration,
}

impl IngestState {
    /// The connection appends go through: the replicated one when acknowledgement waits
    /// for replicas.
    pub(crate) fn append_bus(&self) -> &Bus {
        self.replication.as_ref().map_or(&self.bus, |r| &r.bus)
    }

    /// The master's generation now: taken before an append, it is what
    /// [`IngestState::replicated`] checks the append against.
    pub(crate) fn generation(&self) -> u64 {
        self.append_bus().master_generation()
    }

    /// Waits until the replicas hold what was appended under the master of `generation`;
    /// `Err` with how many did, or because the master changed since (its replicas say
    /// nothing about an append made on the old one).
    pub(crate) async fn replicated(&self, generation: u64) -> Result<(), ReplicationShort> {
        let Some(r) = &self.replication else {
            return Ok(());
        };
        let acked = match r.bus.wait_replicas(r.min, r.timeout).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "WAIT failed");
                0
            }
        };
        if r.bus.master_generation() != generation {
            return Err(ReplicationShort::MasterMoved);
        }
        if acked >= r.min as u64 {
            Ok(())
        } else {
            Err(ReplicationShort::Unconfirmed {
                acked,
                wanted: r.min,
                timeout: r.timeout,
            })
        }
    }
}

/// Why an append is not confirmed as replicated.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum ReplicationShort {
    /// Fewer replicas than `MUTT_INGEST_MIN_REPLICAS` confirmed it in time.
    #[error("{acked} of {wanted} replicas confirmed the append within {timeout:?}")]
    Unconfirmed {
        /// How many did.
        acked: u64,
        /// How many must.
        wanted: usize,
        /// How long they had.
        timeout: std::time::Duration,
    },
    /// The master changed (a failover) after the append: it may be lost with the old one.
    #[error("the Redis master changed after the append (a failover)")]
    MasterMoved,
}

/// The ingest router.
pub fn app(state: Arc<IngestState>) -> Router {
    let limit = state.settings.max_body_bytes;
    let timeout = state.settings.request_timeout;
    Router::new()
        .route("/api/v2/ingest", post(v2::ingest_v2))
        .route("/api/v1/ingest", post(v1::ingest_v1))
        .route("/ingest", post(v1::ingest_v1))
        .layer(middleware::from_fn_with_state(
            limit,
            admission::declared_length,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(correlation))
        .with_state(state)
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
pub(crate) struct Refused {
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

pub(crate) fn refuse(reason: &'static str, error: ApiError) -> Refused {
    Refused {
        reason,
        error: Box::new(error),
    }
}

pub(crate) fn trace_context(headers: &HeaderMap) -> TraceContext {
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

/// Runs one request's handler inside its server span, timed, and answers with what it
/// returned or the refusal it ended with.
pub(crate) async fn answer<F>(
    name: &'static str,
    cid: &str,
    headers: &HeaderMap,
    handle: impl FnOnce(tracing::Span) -> F,
) -> Response
where
    F: Future<Output = Result<Response, Refused>>,
{
    let timer = metrics().ingest_latency.start_timer();
    let span = request_span(name, cid, headers);
    let resp = handle(span.clone())
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
