//! Every objective of `mutt_telemetry::slo`, evaluated by the Prometheus that scrapes MUTT.

use mutt_telemetry::slo::{self, BUDGET_WINDOW, BURN_WINDOWS, SLOS};
use serde_json::{Value, json};

use super::Refused;
use crate::ControlState;
use crate::state::Prometheus;

impl Prometheus {
    /// One instant query; `None` when it has no sample (no data yet) or the value is not a
    /// number (a ratio over zero traffic).
    async fn query(&self, q: &str) -> Result<Option<f64>, String> {
        let resp = self
            .client
            .get(format!("{}/api/v1/query", self.url))
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
}

/// Each objective: target, actual, error budget left, burn rates, status.
pub async fn evaluate(s: &ControlState) -> Result<Vec<Value>, Refused> {
    let p = &s.prometheus;
    let unavailable = |e: String| Refused::Unavailable {
        message: e,
        retry_after: 5,
    };
    let mut out = Vec::new();
    for o in SLOS {
        let window_ratio = p
            .query(&o.query(BUDGET_WINDOW))
            .await
            .map_err(unavailable)?;
        let mut burns = serde_json::Map::new();
        let mut b = Vec::new();
        for w in BURN_WINDOWS {
            let r = p.query(&o.query(w)).await.map_err(unavailable)?;
            let burn = r.map(|r| slo::burn_rate(r, o.target));
            b.push(burn);
            burns.insert((*w).to_string(), json!(burn));
        }
        let p99 = match o.p99(BUDGET_WINDOW) {
            Some(q) => p.query(&q).await.map_err(unavailable)?,
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
    Ok(out)
}
