//! The control plane's HTTP API (`MUTT_CONTROL_LISTEN`): rules, development hosts and
//! teams, hot settings and the versions applied, the config audit trail, the event audit,
//! dead-letter queues, API keys, API versions.
//!
//! Every mutation is audited in the same transaction as the change ("who" is the API key's
//! name) and announced on `{p}:control`. `/api/v2` is current; `/api/v1` keeps MUTT v1's
//! paths and shapes, marked deprecated.

mod background;
mod config;
mod dlq;
mod extract;
mod records;
mod secrets;
mod slo;
mod v1;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use mutt_bus::Bus;
use mutt_bus::control::Announcement;
use mutt_store::Store;
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
use crate::auth::{KeyRing, Scope};
use crate::http::{ApiError, CorrelationId, correlation, json_errors, presented_key};
use crate::worker::Hot;

/// The OpenAPI document of this API, served at `/api/v2/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../../schemas/control.openapi.yaml");

/// Largest request body of the control API.
const MAX_BODY: usize = 1 << 20;
/// Longest a control request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share.
#[derive(Debug)]
pub struct ControlState {
    /// Redis.
    pub bus: Bus,
    /// PostgreSQL.
    pub store: Store,
    /// Accepted keys.
    pub keys: KeyRing,
    /// The current hot settings of this process.
    pub hot: Hot,
    /// The Prometheus the SLO endpoint asks.
    pub prometheus_url: String,
    /// This process's credentials (the starting point of a first rotation).
    pub credentials: crate::credentials::Credentials,
}

impl ControlState {
    /// Announces a change; a lost announcement is caught up by polling, so it is logged,
    /// never failed.
    pub async fn announce(&self, a: Announcement) {
        if let Err(e) = self.bus.announce(&a).await {
            tracing::warn!(error = %e, announcement = ?a, "announcement not sent; processes catch up by polling");
        }
    }
}

/// The control router.
pub fn app(state: Arc<ControlState>) -> Router {
    let v2 = Router::new()
        .route("/version", get(config::version))
        .route("/openapi.yaml", get(openapi))
        .route(
            "/rules",
            get(records::list_rules).post(records::create_rule),
        )
        .route(
            "/rules/{id}",
            get(records::get_rule)
                .put(records::update_rule)
                .delete(records::delete_rule),
        )
        .route(
            "/dev-hosts",
            get(records::list_dev_hosts).post(records::create_dev_host),
        )
        .route("/dev-hosts/{hostname}", delete(records::delete_dev_host))
        .route(
            "/teams",
            get(records::list_teams).post(records::create_team),
        )
        .route(
            "/teams/{hostname}",
            axum::routing::put(records::update_team).delete(records::delete_team),
        )
        .route("/config", get(config::list))
        .route("/config/versions", get(config::versions))
        .route("/config/{key}", get(config::get_one).put(config::put))
        .route("/audit", get(records::audit))
        .route("/events", get(records::events))
        .route("/dlq", get(dlq::list))
        .route("/dlq/{name}", get(dlq::entries))
        .route("/dlq/{name}/replay", post(dlq::replay))
        .route("/dlq/{name}/purge", post(dlq::purge))
        .route("/dlq/{name}/{id}", delete(dlq::purge_one))
        .route("/keys", get(config::list_keys).post(config::create_key))
        .route("/keys/{name}", delete(config::revoke_key))
        .route("/keys/{name}/rotate", post(config::rotate_key))
        .route("/secrets", get(secrets::list))
        .route("/secrets/{name}/rotate", post(secrets::rotate))
        .route("/slo", get(slo::slo));
    Router::new()
        .nest("/api/v2", v2)
        .nest("/api/v1", v1::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
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
                        "",
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

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn not_found(
    axum::Extension(CorrelationId(cid)): axum::Extension<CorrelationId>,
) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint", &cid).into_response()
}

/// The scope a request needs.
fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    let public = ["/api/v2/version", "/api/v1/version", "/api/v2/openapi.yaml"];
    if public.contains(&path) {
        return None;
    }
    if path.starts_with("/api/v2/keys") || path.starts_with("/api/v2/secrets") {
        return Some(Scope::Admin);
    }
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        Some(Scope::Read)
    } else {
        Some(Scope::Write)
    }
}

/// Authenticates `X-API-Key` and checks the scope; the caller goes into the extensions.
async fn authenticate(
    State(state): State<Arc<ControlState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let cid = req
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let Some(scope) = required_scope(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let Some(key) = presented_key(req.headers()) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing X-API-Key header",
            &cid,
        )
        .into_response();
    };
    let Some(caller) = state.keys.verify(key) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid API key",
            &cid,
        )
        .into_response();
    };
    if !caller.may(scope) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the key {:?} lacks the {} scope",
                caller.name,
                scope.as_str()
            ),
            &cid,
        )
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// 201 with a JSON body.
fn created(body: serde_json::Value) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// 200 with a JSON body.
fn ok(body: serde_json::Value) -> Response {
    axum::Json(body).into_response()
}

/// A store failure as an answer: a client mistake the store caught is a 400 naming it;
/// anything else is 503 (the database is unavailable), never a bare 500.
fn store_error(e: mutt_store::StoreError, cid: &str) -> ApiError {
    match e {
        mutt_store::StoreError::Invalid(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid", m, cid)
        }
        e => {
            tracing::warn!(error = %e, "control: database error");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable; retry later",
                cid,
            )
            .retry_after(2)
        }
    }
}

/// A Redis failure as an answer.
fn bus_error(e: mutt_bus::BusError, cid: &str) -> ApiError {
    tracing::warn!(error = %e, "control: redis error");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "redis is unavailable; retry later",
        cid,
    )
    .retry_after(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_method_and_path() {
        assert_eq!(required_scope(&Method::GET, "/api/v2/version"), None);
        assert_eq!(
            required_scope(&Method::GET, "/api/v2/rules"),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope(&Method::PUT, "/api/v2/config/x"),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v2/keys"),
            Some(Scope::Admin)
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v2/secrets/redis/rotate"),
            Some(Scope::Admin)
        );
    }

    #[test]
    fn the_openapi_document_parses() {
        assert!(OPENAPI.starts_with("openapi: 3.1"));
    }
}
