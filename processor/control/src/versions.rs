//! The API's versions: v2 current, v1 deprecated with a sunset, and what v2 removed. Both
//! routers and `GET /version` read these; no router imports the other.

use serde_json::{Value, json};

/// Endpoints that need no key.
pub(super) const PUBLIC: &[&str] = &["/api/v2/version", "/api/v1/version", "/api/v2/openapi.yaml"];

/// When v1 was deprecated: 2026-11-01T00:00:00Z (RFC 9745 wants a Unix time).
pub(super) const DEPRECATED_AT: i64 = 1_793_491_200;
/// The same, for humans.
pub(super) const DEPRECATED_AT_RFC3339: &str = "2026-11-01T00:00:00Z";
/// When v1 goes away.
pub(super) const SUNSET: &str = "Wed, 30 Jun 2027 23:59:59 GMT";
/// The same, for humans.
pub(super) const SUNSET_RFC3339: &str = "2027-06-30T23:59:59Z";
/// v1 endpoints that v2 removed, with their replacement.
pub(super) const REMOVED: &[(&str, &str)] = &[
    ("/api/v1/metrics", "/metrics on the ops listener"),
    (
        "/api/v1/config/history",
        "/api/v2/audit?table_name=dynamic_config",
    ),
    (
        "/api/v1/slo",
        "/api/v2/slo (one shape for every objective, with burn rates)",
    ),
];

/// `GET /api/v2/version`.
pub(super) fn v2() -> Value {
    json!({
        "current": "v2",
        "service_version": env!("CARGO_PKG_VERSION"),
        "versions": [
            {"version": "v2", "status": "current", "path": "/api/v2", "docs": "/api/v2/openapi.yaml"},
            {"version": "v1", "status": "deprecated", "path": "/api/v1",
             "deprecated_at": DEPRECATED_AT_RFC3339, "sunset": SUNSET_RFC3339,
             "removed_endpoints": REMOVED},
        ],
    })
}

/// `GET /api/v1/version`, in v1's shape.
pub(super) fn v1() -> Value {
    json!({
        "current_version": "2.0",
        "default_version": "2.0",
        "supported_versions": ["2.0", "1.0"],
        "deprecated_versions": ["1.0"],
        "sunset": SUNSET_RFC3339,
    })
}
