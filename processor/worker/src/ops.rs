//! The ops listener of every process: liveness, readiness, metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mutt_bus::Bus;
use mutt_store::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A condition a role reports for readiness (rules loaded, audit writes flowing, …). It
/// holds when it is set and nothing blocks it: several tasks may block one flag at once
/// (each held batch), and it holds again only when the last of them lets go.
#[derive(Debug, Clone)]
pub struct Flag {
    name: &'static str,
    value: Arc<AtomicBool>,
    blockers: Arc<AtomicUsize>,
}

impl Flag {
    /// A flag, initially false.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            value: Arc::new(AtomicBool::new(false)),
            blockers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sets it.
    pub fn set(&self, v: bool) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// Whether it holds: set, and blocked by nobody.
    pub fn get(&self) -> bool {
        self.value.load(Ordering::Relaxed) && self.blockers.load(Ordering::Relaxed) == 0
    }

    /// Blocks the flag until the returned guard is dropped.
    pub fn block(&self) -> Blocked {
        self.blockers.fetch_add(1, Ordering::Relaxed);
        Blocked {
            blockers: self.blockers.clone(),
        }
    }

    fn state(&self) -> &'static str {
        if !self.value.load(Ordering::Relaxed) {
            "pending"
        } else if self.blockers.load(Ordering::Relaxed) > 0 {
            "held"
        } else {
            "ok"
        }
    }
}

/// Keeps a [`Flag`] from holding while it lives.
#[derive(Debug)]
pub struct Blocked {
    blockers: Arc<AtomicUsize>,
}

impl Drop for Blocked {
    fn drop(&mut self) {
        self.blockers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What `/ready` checks.
#[derive(Debug, Clone)]
pub struct OpsState {
    /// The roles this process runs.
    pub roles: Vec<&'static str>,
    /// The consumer name.
    pub consumer: String,
    /// Redis, checked with PING.
    pub bus: Option<Bus>,
    /// PostgreSQL, checked with `SELECT 1`.
    pub store: Option<Store>,
    /// Role conditions.
    pub flags: Vec<Flag>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer of a dependency check: `ok`, or why not.
async fn check<E: std::fmt::Display>(
    probe: impl std::future::Future<Output = Result<(), E>>,
) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".to_string(),
    }
}

impl OpsState {
    /// Whether this process is ready, and each check: Redis and PostgreSQL (`ok` or
    /// `error: …`) and the role flags (`ok`, `pending`, `held`). `/ready` answers it and the
    /// heartbeat reports it, so that the console and the probes never disagree.
    pub async fn readiness(&self) -> (bool, BTreeMap<String, String>) {
        let mut checks = BTreeMap::new();
        if let Some(bus) = &self.bus {
            checks.insert("redis".to_string(), check(bus.ping()).await);
        }
        if let Some(store) = &self.store {
            checks.insert("postgres".to_string(), check(store.ping()).await);
        }
        let mut ok = checks.values().all(|v| v == "ok");
        for f in &self.flags {
            ok &= f.get();
            checks.insert(f.name.into(), f.state().into());
        }
        (ok, checks)
    }
}

async fn health(State(s): State<Arc<OpsState>>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "service": "mutt",
        "roles": s.roles,
        "consumer": s.consumer,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn ready(State(s): State<Arc<OpsState>>) -> Response {
    let (ok, checks) = s.readiness().await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"status": if ok { "ready" } else { "not_ready" }, "checks": checks})),
    )
        .into_response()
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        mutt_telemetry::metrics().render(),
    )
        .into_response()
}

/// The ops router.
pub fn app(state: OpsState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(state))
}

/// Serves the ops router on `addr` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: OpsState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Binds `addr`, naming the setting in the error.
pub async fn bind(addr: SocketAddr, setting: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{setting}: cannot listen on {addr}: {e}"))
}
