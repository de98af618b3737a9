//! The webhook client: one POST of a Moogsoft payload, classified.

use std::time::Duration;

use mutt_core::secret::Secret;
use mutt_telemetry::metrics;
use reqwest::StatusCode;

use mutt_worker::credentials::StateRx;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};

/// Most of a refusing response body read: the excerpt plus room for tokens scrubbed out.
const READ_LIMIT: usize = 16 * 1024;
/// Longest excerpt of a refusing response body kept for the DLQ, in characters.
const EXCERPT_BYTES: usize = 512;

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx.
    Delivered,
    /// Worth retrying: 408, 429, 5xx, timeout, connection error, and 401/403 (refused
    /// credentials are wrong for every alert: an outage to wait out, not a verdict on one).
    Retry {
        /// Short reason for metrics (`http_503`, `timeout`, `connect`, …).
        reason: String,
        /// The server's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// Refused for good (another 4xx, 3xx): goes to the DLQ with the status and an excerpt.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        excerpt: String,
    },
}

/// A webhook endpoint.
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    /// The bearer token's state (active and, during a rotation, fallback).
    token: Option<StateRx>,
    /// Credentials carried by the URL itself (user-info, query values), in every form a
    /// refusing server might echo them: never to reach a dead letter's `last_error`.
    url_secrets: Vec<Secret>,
}

// By hand: the URL may carry credentials.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &mutt_core::url::redact(&self.url))
            .finish_non_exhaustive()
    }
}

/// The secrets a webhook URL carries: the password of its user-info (also as
/// `user:password` and in the Basic-auth form reqwest sends it in), and the value of every
/// query parameter (`?api_key=…`, `?token=…`), each as written and percent-decoded.
fn url_secrets(url: &str) -> Vec<Secret> {
    use base64::Engine;
    let Ok(u) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    let decode = mutt_core::url::percent_decode;
    let mut out: Vec<String> = Vec::new();
    if let Some(password) = u.password() {
        let user = decode(u.username());
        let plain = decode(password);
        let pair = format!("{user}:{plain}");
        out.push(base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
        out.push(pair);
        out.push(format!("{}:{password}", u.username()));
        out.push(password.to_string());
        out.push(plain);
    }
    for (_, v) in u.query_pairs() {
        out.push(v.to_string());
    }
    if let Some(q) = u.query() {
        for pair in q.split('&') {
            if let Some((_, v)) = pair.split_once('=') {
                out.push(v.to_string());
            }
        }
    }
    // Longest first: a secret containing another must be replaced whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    // Two characters are no credential, and replacing them everywhere would only garble
    // the excerpt.
    out.into_iter()
        .filter(|s| s.len() >= 3)
        .map(Secret::new)
        .collect()
}

impl Webhook {
    /// A client for `url`, keeping up to `concurrency` idle connections, authenticating
    /// with the token state `token` follows.
    pub fn new(
        url: &str,
        token: Option<StateRx>,
        concurrency: usize,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(concurrency)
            // Redirects would resend the bearer token to wherever they point.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mutt/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url: url.to_string(),
            token,
            url_secrets: url_secrets(url),
        })
    }

    /// POSTs a JSON body; a request that takes longer than `timeout` has failed. During a
    /// token rotation, a 401 or 403 with the active token is retried once at once with the
    /// other accepted token: the webhook may not have switched yet, or may have already.
    pub async fn post(
        &self,
        body: Vec<u8>,
        traceparent: Option<&str>,
        timeout: Duration,
    ) -> Delivery {
        let state = self.token.as_ref().and_then(|t| t.borrow().clone());
        let (active, fallback) = match &state {
            Some(s) => (Some(s.active()), s.fallback()),
            None => (None, None),
        };
        let body = bytes::Bytes::from(body);
        let first = self.send(body.clone(), active, traceparent, timeout).await;
        let refused = matches!(&first, Ok(r) if matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN));
        let outcome = match (refused, fallback) {
            (true, Some(other)) => {
                let second = self.send(body, Some(other), traceparent, timeout).await;
                let took = matches!(&second, Ok(r) if r.status().is_success());
                metrics()
                    .webhook_token_fallbacks
                    .with_label_values(&[if took { "accepted" } else { "refused" }])
                    .inc();
                second
            }
            _ => first,
        };
        let mut secrets: Vec<&Secret> = state.as_ref().map(|s| s.accepted()).unwrap_or_default();
        secrets.extend(&self.url_secrets);
        match outcome {
            Ok(resp) => classify(resp, &secrets).await,
            Err(e) => Delivery::Retry {
                reason: if e.is_timeout() {
                    "timeout".into()
                } else if e.is_connect() {
                    "connect".into()
                } else {
                    "transport".into()
                },
                retry_after: None,
            },
        }
    }
}

impl Webhook {
    async fn send(
        &self,
        body: bytes::Bytes,
        token: Option<&Secret>,
        traceparent: Option<&str>,
        timeout: Duration,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut req = self
            .client
            .post(&self.url)
            .timeout(timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some(t) = token
            && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
        {
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        req.send().await
    }
}

/// `text` with every occurrence of the secrets replaced: a refusing webhook may echo the
/// token, and the excerpt goes to the DLQ.
fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.expose(), "[redacted]");
        // As a JSON string would quote it (`/` and `"` escaped).
        let quoted = serde_json::to_string(s.expose()).unwrap_or_default();
        let inner = quoted.trim_matches('"');
        for form in [inner.to_string(), inner.replace('/', "\\/")] {
            if !form.is_empty() {
                out = out.replace(&form, "[redacted]");
            }
        }
    }
    out
}

async fn classify(resp: reqwest::Response, secrets: &[&Secret]) -> Delivery {
    let status = resp.status();
    if status.is_success() {
        return Delivery::Delivered;
    }
    // 401 and 403 outside a rotation (or with both tokens of one refused) mean MUTT's
    // credentials are wrong for every alert: dead-lettering each one at full rate would
    // empty the stream into the DLQ. They count against the circuit like an outage, and
    // the alerts wait until the webhook accepts the credentials again.
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || status.is_server_error()
    {
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        return Delivery::Retry {
            reason: format!("http_{}", status.as_u16()),
            retry_after,
        };
    }
    // Enough for the excerpt even once tokens are cut out of it; no more (a refusing
    // server may answer with anything).
    let mut bytes = Vec::new();
    let mut resp = resp;
    while bytes.len() < READ_LIMIT {
        match resp.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c),
            _ => break,
        }
    }
    bytes.truncate(READ_LIMIT);
    // Scrubbed whole, then cut: a cut could split a token and leave part of it.
    let text = scrub(&String::from_utf8_lossy(&bytes), secrets);
    let text: String = text.chars().take(EXCERPT_BYTES).collect();
    Delivery::Rejected {
        status: status.as_u16(),
        excerpt: text,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// `{"events":[…]}` from events serialised already.
pub(crate) fn batch_body<'a>(events: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(4096);
    body.extend_from_slice(br#"{"events":["#);
    for (i, e) in events.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.extend_from_slice(b"]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_scrubbed_of_tokens_in_any_quoting() {
        let t = Secret::new("tok/en\"1");
        let body = format!(
            "bad token tok/en\"1; json: {}; escaped: tok\\/en\\\"1",
            serde_json::to_string(t.expose()).unwrap()
        );
        let out = scrub(&body, &[&t]);
        assert!(
            !out.contains("tok/en") && !out.contains("tok\\/en"),
            "{out}"
        );
        assert!(out.starts_with("bad token [redacted]"), "{out}");
    }

    #[test]
    fn url_credentials_are_scrubbed_in_every_form() {
        let url = "https://mutt:p%40ss%2Fw0rd@moog.example.com/events?api_key=K3y-123&x=a%26b";
        let secrets = url_secrets(url);
        let refs: Vec<&Secret> = secrets.iter().collect();
        let basic = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode("mutt:p@ss/w0rd")
        };
        let body = format!(
            "refused {url}; Authorization: Basic {basic}; password p@ss/w0rd or p%40ss%2Fw0rd; \
             key K3y-123; x a&b"
        );
        let out = scrub(&body, &refs);
        for leaked in [
            "p@ss/w0rd",
            "p%40ss%2Fw0rd",
            basic.as_str(),
            "K3y-123",
            "a&b",
            "a%26b",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert!(out.contains("moog.example.com/events"), "{out}");
        assert!(url_secrets("http://host/events").is_empty());
        assert!(!format!("{:?}", Webhook::new(url, None, 1).unwrap()).contains("w0rd"));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn a_batch_body_is_the_events_array() {
        let parts: [&[u8]; 2] = [br#"{"a":1}"#, br#"{"b":[2]}"#];
        let v: serde_json::Value = serde_json::from_slice(&batch_body(parts.into_iter())).unwrap();
        assert_eq!(v, serde_json::json!({"events": [{"a": 1}, {"b": [2]}]}));
        let v: serde_json::Value = serde_json::from_slice(&batch_body(std::iter::empty())).unwrap();
        assert_eq!(v, serde_json::json!({"events": []}));
    }
}
