//! A webhook receiver that stands in for Moogsoft: it accepts the payloads MUTT sends
//! (one event, or `{"events": [...]}`), counts them by `external_id`, and can be told to
//! fail or hang, to rehearse outages — in code ([`Sink::set_behaviour`]) or over HTTP
//! (`PUT /behaviour`), so that a test outside the process (the compose stack's) can too.
//!
//! Routes: `POST /` and `POST /<any path>` receive; `GET /stats` counts; `GET /events`
//! lists the kept payloads (`muttdev sink --keep`); `PUT /behaviour` takes
//! `{"mode": "accept"}`, `{"mode": "fail", "status": 503, "retry_after": 5}` or
//! `{"mode": "hang", "ms": 2000}`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How the sink answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 for everything.
    Accept,
    /// This status for everything (with `Retry-After` if given); nothing is recorded.
    Fail(u16, Option<u64>),
    /// Waits this long before answering 200 (a client timeout makes it a failure).
    Hang(Duration),
    /// This status, with the request's URI and `Authorization` header echoed in the body
    /// (as careless servers do): what MUTT keeps of it must not hold a credential.
    Echo(u16),
}

/// What the sink has seen.
#[derive(Debug)]
pub struct Seen {
    /// Requests received (any outcome).
    pub requests: u64,
    /// Deliveries per `external_id` (only accepted ones).
    pub by_external_id: HashMap<String, u32>,
    /// Accepted events in arrival order, when kept.
    pub events: Vec<Value>,
    /// When each kept event arrived, ms since the epoch (same order as `events`).
    pub arrivals_ms: Vec<i64>,
    /// Events per accepted request, in arrival order (when kept).
    pub batch_sizes: Vec<usize>,
    /// `Authorization` header of the last request.
    pub last_authorization: Option<String>,
    /// `traceparent` headers seen.
    pub traceparents: Vec<String>,
    keep_events: bool,
    behaviour: Behaviour,
    /// When not empty, only requests with one of these bearer tokens are accepted (401
    /// otherwise): a webhook in the middle of a token rotation accepts two.
    pub accept_tokens: Vec<String>,
    /// Requests refused with 401.
    pub unauthorized: u64,
    /// Requests per bearer token presented (accepted or not).
    pub presented_tokens: HashMap<String, u64>,
    /// Accepted requests per token (by position in `accept_tokens` at the time).
    pub accepted_by_token: HashMap<String, u64>,
    /// Ingest-to-webhook latency of each accepted alert, in ms (when recording).
    pub latencies_ms: Vec<u32>,
    record_latency: bool,
}

/// When ingest accepted the event behind an `external_id`: its UUIDv7 says, in ms.
fn accepted_at_ms(external_id: &str) -> Option<i64> {
    let id = external_id
        .strip_prefix("unhandled-")
        .unwrap_or(external_id);
    let (s, n) = uuid::Uuid::parse_str(id).ok()?.get_timestamp()?.to_unix();
    Some(s as i64 * 1000 + i64::from(n / 1_000_000))
}

/// A running sink.
#[derive(Debug, Clone)]
pub struct Sink {
    seen: Arc<Mutex<Seen>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Sink {
    /// Starts a sink on `listener`; `keep_events` keeps every payload (tests), otherwise
    /// only the counts (benchmarks).
    pub fn start(
        listener: tokio::net::TcpListener,
        keep_events: bool,
        stop: CancellationToken,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen {
            requests: 0,
            by_external_id: HashMap::new(),
            events: Vec::new(),
            arrivals_ms: Vec::new(),
            batch_sizes: Vec::new(),
            last_authorization: None,
            traceparents: Vec::new(),
            keep_events,
            behaviour: Behaviour::Accept,
            accept_tokens: Vec::new(),
            unauthorized: 0,
            presented_tokens: HashMap::new(),
            accepted_by_token: HashMap::new(),
            latencies_ms: Vec::new(),
            record_latency: false,
        }));
        let app = Router::new()
            .route("/stats", get(stats))
            // `/events` is also where MUTT is told to deliver (`Sink::url`).
            .route("/events", get(events).post(receive))
            .route("/behaviour", put(behaviour))
            .route("/{*path}", post(receive))
            .route("/", post(receive))
            .with_state(seen.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Self { seen, addr })
    }

    /// The URL to give MUTT as `MUTT_WEBHOOK_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// What it has seen.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records the ingest-to-webhook latency of every alert from now on.
    pub fn record_latencies(&self) {
        self.seen().record_latency = true;
    }

    /// Changes how it answers.
    pub fn set_behaviour(&self, b: Behaviour) {
        self.seen().behaviour = b;
    }

    /// Accepts only these bearer tokens from now on (none: any request).
    pub fn accept_tokens(&self, tokens: &[&str]) {
        self.seen().accept_tokens = tokens.iter().map(|t| t.to_string()).collect();
    }

    /// Distinct `external_id`s accepted.
    pub fn unique(&self) -> usize {
        self.seen().by_external_id.len()
    }

    /// Accepted deliveries beyond the first per `external_id`.
    pub fn duplicates(&self) -> u64 {
        self.seen()
            .by_external_id
            .values()
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum()
    }
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    match seen.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

async fn stats(State(seen): State<Arc<Mutex<Seen>>>) -> Response {
    let s = lock(&seen);
    let dup: u64 = s
        .by_external_id
        .values()
        .map(|&n| u64::from(n.saturating_sub(1)))
        .sum();
    axum::Json(json!({"requests": s.requests, "unique": s.by_external_id.len(), "duplicates": dup}))
        .into_response()
}

/// The kept payloads, in arrival order (409 when the sink only counts).
async fn events(State(seen): State<Arc<Mutex<Seen>>>) -> Response {
    let s = lock(&seen);
    if !s.keep_events {
        return (
            StatusCode::CONFLICT,
            "this sink only counts: start it with --keep to list payloads",
        )
            .into_response();
    }
    axum::Json(json!({"events": s.events})).into_response()
}

/// How the sink should answer from now on, as `PUT /behaviour` takes it.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
enum BehaviourBody {
    Accept,
    Fail {
        status: u16,
        retry_after: Option<u64>,
    },
    Hang {
        ms: u64,
    },
}

async fn behaviour(State(seen): State<Arc<Mutex<Seen>>>, body: Bytes) -> Response {
    let b = match serde_json::from_slice::<BehaviourBody>(&body) {
        Ok(BehaviourBody::Accept) => Behaviour::Accept,
        Ok(BehaviourBody::Fail {
            status,
            retry_after,
        }) if (400..600).contains(&status) => Behaviour::Fail(status, retry_after),
        Ok(BehaviourBody::Fail { status, .. }) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("status {status}: a failure is 400 to 599"),
            )
                .into_response();
        }
        Ok(BehaviourBody::Hang { ms }) => Behaviour::Hang(Duration::from_millis(ms)),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "{e}: send {{\"mode\": \"accept\"}}, {{\"mode\": \"fail\", \"status\": 503}} or {{\"mode\": \"hang\", \"ms\": 2000}}"
                ),
            )
                .into_response();
        }
    };
    lock(&seen).behaviour = b;
    StatusCode::NO_CONTENT.into_response()
}

async fn receive(
    State(seen): State<Arc<Mutex<Seen>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let behaviour = {
        let mut s = lock(&seen);
        s.requests += 1;
        s.last_authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            s.traceparents.push(tp.to_string());
        }
        let presented = s
            .last_authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::to_string);
        if let Some(p) = &presented {
            *s.presented_tokens.entry(p.clone()).or_default() += 1;
        }
        if !s.accept_tokens.is_empty() {
            match presented.filter(|p| s.accept_tokens.contains(p)) {
                Some(p) => *s.accepted_by_token.entry(p).or_default() += 1,
                None => {
                    s.unauthorized += 1;
                    return (StatusCode::UNAUTHORIZED, "bad token").into_response();
                }
            }
        }
        s.behaviour.clone()
    };
    match behaviour {
        Behaviour::Fail(code, retry_after) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = (status, "sink told to fail").into_response();
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.into());
            }
            return r;
        }
        Behaviour::Hang(d) => tokio::time::sleep(d).await,
        Behaviour::Echo(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            return (status, format!("refused {uri} with Authorization: {auth}")).into_response();
        }
        Behaviour::Accept => {}
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let events = match v {
        Value::Object(mut o) if o.contains_key("events") => match o.remove("events") {
            Some(Value::Array(a)) => a,
            _ => return (StatusCode::BAD_REQUEST, "events must be an array").into_response(),
        },
        other => vec![other],
    };
    let mut s = lock(&seen);
    let now = mutt_core::now_ms();
    if s.keep_events {
        s.batch_sizes.push(events.len());
    }
    for e in events {
        let Some(id) = e.get("external_id").and_then(Value::as_str) else {
            return (StatusCode::BAD_REQUEST, "external_id missing").into_response();
        };
        *s.by_external_id.entry(id.to_string()).or_default() += 1;
        if s.record_latency
            && let Some(at) = accepted_at_ms(id)
        {
            let ms = (mutt_core::now_ms() - at).clamp(0, i64::from(u32::MAX)) as u32;
            s.latencies_ms.push(ms);
        }
        if s.keep_events {
            s.events.push(e);
            s.arrivals_ms.push(now);
        }
    }
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn started(keep: bool) -> (Sink, CancellationToken, String) {
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Sink::start(listener, keep, stop.clone()).unwrap();
        let base = format!("http://{}", sink.addr);
        (sink, stop, base)
    }

    #[tokio::test]
    async fn told_over_http_to_fail_then_to_accept() {
        let (sink, stop, base) = started(true).await;
        let http = reqwest::Client::new();
        let put = |body: Value| http.put(format!("{base}/behaviour")).json(&body).send();
        let alert = json!({"external_id": "e-1", "description": "x"});

        let r = put(json!({"mode": "fail", "status": 503, "retry_after": 2}))
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = http.post(sink.url()).json(&alert).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "2");
        assert_eq!(sink.unique(), 0);

        for bad in [
            json!({"mode": "fail", "status": 200}),
            json!({"mode": "explode"}),
        ] {
            let r = put(bad.clone()).await.unwrap();
            assert_eq!(r.status(), 400, "{bad}");
        }

        assert_eq!(put(json!({"mode": "accept"})).await.unwrap().status(), 204);
        let r = http.post(sink.url()).json(&alert).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let listed: Value = http
            .get(format!("{base}/events"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["events"][0]["external_id"], "e-1");
        stop.cancel();
    }

    #[tokio::test]
    async fn a_counting_sink_lists_no_payloads() {
        let (_sink, stop, base) = started(false).await;
        let r = reqwest::get(format!("{base}/events")).await.unwrap();
        assert_eq!(r.status(), 409);
        stop.cancel();
    }
}
