//! `GET /api/v2/slo`: every objective of `mutt_telemetry::slo`, evaluated by Prometheus.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use mutt_telemetry::slo::{self, BUDGET_WINDOW, BURN_WINDOWS, SLOS};
use serde_json::{Value, json};

use super::extract::Ctx;
use super::{ControlState, ok};
use crate::http::ApiError;

/// Asks Prometheus one instant query; `None` when it has no sample (no data yet) or the
/// value is not a number (a ratio over zero traffic).
async fn query(client: &reqwest::Client, base: &str, q: &str) -> Result<Option<f64>, String> {
    let resp = client
        .get(format!("{}/api/v1/query", base.trim_end_matches('/')))
        .query(&[("query", q)])
        .send()
        .await
        .map_err(|e| format!("prometheus unreachable: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("prometheus answered {}", resp.status()));
    }
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("prometheus answer: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("prometheus refused the query: {}", body["error"]));
    }
    let value = body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok());
    Ok(value.filter(|v| v.is_finite()))
}

pub(super) async fn slo(
    State(s): State<Arc<ControlState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
                &ctx.cid,
            )
        })?;
    let base = &s.prometheus_url;
    let unavailable = |e: String| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e, &ctx.cid).retry_after(5)
    };
    let mut out = Vec::new();
    for o in SLOS {
        let window_ratio = query(&client, base, &o.query(BUDGET_WINDOW))
            .await
            .map_err(unavailable)?;
        let mut burns = serde_json::Map::new();
        let mut b = Vec::new();
        for w in BURN_WINDOWS {
            let r = query(&client, base, &o.query(w))
                .await
                .map_err(unavailable)?;
            let burn = r.map(|r| slo::burn_rate(r, o.target));
            b.push(burn);
            burns.insert((*w).to_string(), json!(burn));
        }
        let p99 = match o.p99(BUDGET_WINDOW) {
            Some(q) => query(&client, base, &q).await.map_err(unavailable)?,
            None => None,
        };
        let status = slo::status(window_ratio, b[0], b[1], b[2], o.target);
        out.push(json!({
            "name": o.name,
            "description": o.description,
            "target": o.target,
            "actual": window_ratio.map(|r| 1.0 - r),
            "p99_seconds": p99,
            "error_budget_remaining": window_ratio.map(|r| 1.0 - slo::burn_rate(r, o.target)),
            "burn_rate": burns,
            "status": status.as_str(),
        }));
    }
    Ok(ok(json!({
        "window": BUDGET_WINDOW,
        "evaluated_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "slos": out,
    })))
}
