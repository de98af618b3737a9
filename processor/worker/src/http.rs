//! What every HTTP API of MUTT shares: the error body, correlation ids, the auth check.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The header carrying the correlation id, in and out.
pub static CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// The header carrying the API key.
pub static API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The correlation id of a request, in its extensions.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

tokio::task_local! {
    /// The correlation id of the request being answered: set once by [`correlation`], read
    /// by [`ApiError`] when it becomes an answer, so that no handler passes it along.
    static CORRELATION: String;
}

/// The correlation id of the request being answered (empty outside a request).
pub fn correlation_id() -> String {
    CORRELATION.try_with(Clone::clone).unwrap_or_default()
}

/// Whether a client-supplied correlation id is safe to echo and store: 1–64 characters
/// of letters, digits, `-`, `_`, `.`, `:`.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Middleware: takes `X-Correlation-ID` from the request (or makes one), makes it
/// available to handlers and sets it on the response.
pub async fn correlation(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let mut resp = CORRELATION.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(CORRELATION_ID.clone(), v);
    }
    resp
}

/// Middleware: turns the error answers that layers and the router make themselves (a
/// timeout's empty 408, a body limit's plain-text 413, a 405, a rejected path) into MUTT's
/// JSON error shape, keeping their status and headers. Runs inside [`correlation`].
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// An error answer: `{"error": {"code", "message"}, "correlation_id"}` (the correlation
/// id is the request's, added when the error becomes an answer).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// A sentence for humans; never contains secrets.
    pub message: String,
    /// Seconds after which a retry makes sense (429/503).
    pub retry_after: Option<u64>,
    /// Extra fields merged into the body (per-item errors, …).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    /// With a `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// With extra body fields.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "error": {"code": self.code, "message": self.message},
            "correlation_id": correlation_id(),
        });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (&self.details, body.as_object_mut())
        {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The API key presented in `X-API-Key`, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers.get(&API_KEY).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_are_restricted() {
        assert!(acceptable("abc-123_x.y:z"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable(&"a".repeat(65)));
        assert!(!acceptable("<script>"));
    }

    #[test]
    fn error_body_shape() {
        let e =
            ApiError::new(StatusCode::BAD_REQUEST, "bad", "nope").details(json!({"rejected": 2}));
        let b = CORRELATION.sync_scope("c1".to_string(), || e.body());
        assert_eq!(b["error"]["code"], "bad");
        assert_eq!(b["correlation_id"], "c1");
        assert_eq!(b["rejected"], 2);
    }
}
