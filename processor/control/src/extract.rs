//! Extractors that answer bad requests in MUTT's error shape (a client mistake is a 400
//! naming what is wrong, never a 500 or a plain-text rejection).

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use mutt_store::Actor;

use super::service::Refused;
use mutt_worker::auth::Caller;
use mutt_worker::http::{ApiError, CorrelationId};

/// The request's context: its correlation id and the authenticated caller.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Correlation id.
    pub cid: String,
    /// Caller (`anonymous` on public endpoints).
    pub caller: Caller,
}

impl Ctx {
    /// The actor of a change made for this request: who (the key's name), why, under
    /// which request.
    pub fn actor(&self, reason: Option<String>) -> Actor {
        Actor {
            who: self.caller.name.clone(),
            reason,
            correlation_id: self.cid.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let cid = parts
            .extensions
            .get::<CorrelationId>()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        let caller = parts.extensions.get::<Caller>().cloned().unwrap_or(Caller {
            name: "anonymous".into(),
            scopes: Vec::new(),
        });
        Ok(Self { cid, caller })
    }
}

/// A JSON body; a malformed one is a 400 with serde's explanation.
#[derive(Debug)]
pub(super) struct Body<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Parsed to a value first: text with a NUL character is refused here, clearly,
        // rather than by PostgreSQL later (which cannot store it).
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => {
                if has_nul(&v) {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_body",
                        "text must not contain NUL characters",
                    ));
                }
                serde_json::from_value(v).map(Self).map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_body",
                        format!("Failed to deserialize the JSON body into the target type: {e}"),
                    )
                })
            }
            Err(r) => {
                let status = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else if r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                } else {
                    StatusCode::BAD_REQUEST
                };
                Err(ApiError::new(status, "invalid_body", r.body_text()))
            }
        }
    }
}

fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Path parameters; malformed ones (invalid UTF-8, NUL) are a 400 in MUTT's shape.
#[derive(Debug)]
pub(super) struct PathParam<T>(pub(super) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.path().to_ascii_lowercase().contains("%00") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                "the path must not contain NUL characters",
            ));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text()))
    }
}

/// Query parameters; malformed ones are a 400.
#[derive(Debug)]
pub(super) struct Params<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts
            .uri
            .query()
            .is_some_and(|q| q.to_ascii_lowercase().contains("%00"))
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "query values must not contain NUL characters",
            ));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))
    }
}

/// A page request: `page` from 1, `limit` up to 200.
#[derive(Debug, Clone, Copy)]
pub(super) struct Paging {
    /// Page.
    pub(super) page: u32,
    /// Rows per page.
    pub(super) limit: u32,
}

impl Paging {
    /// Validates page and limit (defaults 1 and 50).
    pub(super) fn new(page: Option<u32>, limit: Option<u32>) -> Result<Self, Refused> {
        let page = page.unwrap_or(1);
        let limit = limit.unwrap_or(50);
        if page == 0 || page > 1_000_000 {
            return Err(Refused::query("page: from 1 to 1000000"));
        }
        if limit == 0 || limit > 200 {
            return Err(Refused::query("limit: from 1 to 200"));
        }
        Ok(Self { page, limit })
    }
}

/// Parses an optional RFC 3339 query value.
pub(super) fn time_param(
    v: &Option<String>,
    name: &'static str,
) -> Result<Option<time::OffsetDateTime>, Refused> {
    match v {
        None => Ok(None),
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(Some)
            .map_err(|_| Refused::query(format!("{name}: {s:?} is not an RFC 3339 time"))),
    }
}

/// A reason: required ones must be 1–1000 characters.
pub(super) fn reason(r: Option<String>, required: bool) -> Result<Option<String>, Refused> {
    let r = r.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    match &r {
        None if required => Err(Refused::bad("reason: a reason is required for this change")),
        Some(s) if s.chars().count() > 1000 => Err(Refused::bad("reason: at most 1000 characters")),
        _ => Ok(r),
    }
}
