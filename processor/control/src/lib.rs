//! The control plane's HTTP API (`MUTT_CONTROL_LISTEN`) and its background work.
//!
//! Every mutation is audited in the same transaction as the change ("who" is the API key's
//! name) and announced on `{p}:control`. `/api/v2` is current; `/api/v1` keeps MUTT v1's
//! paths and shapes, marked deprecated.
//!
//! # Layout
//!
//! - `service`: the operations, one module per resource (rules, hosts, teams, settings,
//!   keys, dlq, secrets, slo, audit, overview), and why one was
//!   [`Refused`](service::Refused).
//! - `v2`, `v1`: the routers and their handlers, adapters over the services.
//! - `versions`: the API versions, deprecation and sunset, what v2 removed.
//! - `auth`: the key and the scope each endpoint needs.
//! - `extract`: request extractors answering in MUTT's error shape; [`Ctx`] and its actor.
//! - `state`: [`ControlState`], and the Prometheus client of the SLO endpoint.
//! - `background`: publishing snapshots and keys, expiring keys, automatic DLQ replay,
//!   retention on its schedule.
//! - `ui`: the console, compiled in and served at `/ui/` under a strict
//!   Content-Security-Policy.
//! - [`retention`]: one retention pass (partitions, archive, config audit, parked dead
//!   letters) under its lock; `mutt retention` runs it too.

mod auth;
mod background;
mod extract;
pub mod retention;
pub mod service;
mod state;
mod ui;
mod v1;
mod v2;
mod versions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::ServiceBuilderExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::MakeRequestUuid;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use self::background::Background;
pub use self::extract::Ctx;
pub use self::state::{ControlState, Prometheus};
pub use self::v2::OPENAPI;
use mutt_worker::http::{ApiError, correlation, json_errors};

/// Largest request body of the control API.
const MAX_BODY: usize = 1 << 20;
/// Longest a control request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The control router.
pub fn app(state: Arc<ControlState>) -> Router {
    Router::new()
        .nest("/api/v2", v2::router())
        .nest("/api/v1", v1::router())
        .merge(ui::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(
            ServiceBuilder::new()
                .set_x_request_id(MakeRequestUuid)
                .sensitive_request_headers(
                    [
                        header::AUTHORIZATION,
                        header::COOKIE,
                        "x-api-key".parse().expect("header name"),
                    ]
                    .into(),
                )
                .layer(TraceLayer::new_for_http())
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error",
                    )
                    .into_response()
                }))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    TIMEOUT,
                ))
                .layer(RequestBodyLimitLayer::new(MAX_BODY))
                .propagate_x_request_id(),
        )
        // Outermost: every answer, including those of the layers above, has a
        // correlation id and MUTT's error shape.
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(correlation))
        .with_state(state)
}

/// Serves the control API until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ControlState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_parses() {
        assert!(OPENAPI.starts_with("openapi: 3.1"));
    }
}
