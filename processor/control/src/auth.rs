//! Who may call what: `X-API-Key` verified against the process's key ring, and the scope
//! each endpoint needs (reading, writing, administering keys and secrets).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ControlState;
use super::versions::PUBLIC;
use mutt_worker::auth::Scope;
use mutt_worker::http::{ApiError, presented_key};

/// POST endpoints that change nothing: `read` is enough.
const READ_ONLY_POSTS: &[&str] = &["/api/v2/rules/test"];

/// The scope a request needs (None: public).
pub(super) fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    // The console's files hold no data: whoever opens them still signs in with a key,
    // which every API call then presents.
    if PUBLIC.contains(&path) || path == "/ui" || path.starts_with("/ui/") {
        return None;
    }
    if method == Method::POST && READ_ONLY_POSTS.contains(&path) {
        return Some(Scope::Read);
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
pub(super) async fn authenticate(
    State(state): State<Arc<ControlState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(scope) = required_scope(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let Some(key) = presented_key(req.headers()) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing X-API-Key header",
        )
        .into_response();
    };
    let Some(caller) = state.keys.verify(key) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key")
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
        )
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_method_and_path() {
        assert_eq!(required_scope(&Method::GET, "/api/v2/version"), None);
        assert_eq!(required_scope(&Method::GET, "/ui/app.js"), None);
        assert_eq!(
            required_scope(&Method::GET, "/uix"),
            Some(Scope::Read),
            "only the console's own paths are public"
        );
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
        // Testing an event against the rules changes nothing: read is enough.
        assert_eq!(
            required_scope(&Method::POST, "/api/v2/rules/test"),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v2/rules"),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope(&Method::PUT, "/api/v2/rules/test"),
            Some(Scope::Write)
        );
    }
}
