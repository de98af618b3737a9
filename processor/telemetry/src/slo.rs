//! The service-level objectives, defined once: the SLO endpoint evaluates them against
//! Prometheus, and the Prometheus recording rules and burn-rate alerts in `ops/prometheus/`
//! are generated from them (`muttdev slo-rules`; a test keeps the committed file equal).
//!
//! Every SLO is an error ratio over a window: the share of bad events among all events.
//! Latency objectives count the requests slower than a threshold as bad, so that every
//! SLO has an error budget and a burn rate in the same terms (SRE workbook, chapter 5).

use std::fmt::Write;

/// One objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// Stable name (`ingest_availability`).
    pub name: &'static str,
    /// What it promises.
    pub description: &'static str,
    /// The good share to keep (0.999).
    pub target: f64,
    /// PromQL of the error ratio over a window written `{W}` (a range such as `1h`).
    pub error_ratio: &'static str,
    /// For latency objectives: the histogram, to report the p99 next to the ratio.
    pub latency_histogram: Option<&'static str>,
}

/// MUTT's objectives.
pub const SLOS: &[Slo] = &[
    Slo {
        name: "ingest_availability",
        description: "Ingest requests not refused for a server-side reason (Redis unavailable, overloaded)",
        target: 0.999,
        error_ratio: r#"(sum(rate(mutt_ingest_requests_total{status="fail",reason=~"redis|overloaded"}[{W}])) or vector(0)) / sum(rate(mutt_ingest_requests_total[{W}]))"#,
        latency_histogram: None,
    },
    Slo {
        name: "ingest_latency_p99",
        description: "Ingest requests answered within 250 ms (p99 at most 250 ms)",
        target: 0.99,
        error_ratio: r#"1 - (sum(rate(mutt_ingest_latency_seconds_bucket{le="0.25"}[{W}])) / sum(rate(mutt_ingest_latency_seconds_count[{W}])))"#,
        latency_histogram: Some("mutt_ingest_latency_seconds"),
    },
    Slo {
        name: "delivery_latency_p99",
        description: "Alerts at the webhook within 5 s of ingest (p99 at most 5 s)",
        target: 0.99,
        error_ratio: r#"1 - (sum(rate(mutt_end_to_end_latency_seconds_bucket{le="5"}[{W}])) / sum(rate(mutt_end_to_end_latency_seconds_count[{W}])))"#,
        latency_histogram: Some("mutt_end_to_end_latency_seconds"),
    },
    Slo {
        name: "forwarder_success",
        description: "Alerts delivered to the webhook rather than dead-lettered",
        target: 0.999,
        error_ratio: r#"(sum(rate(mutt_moog_alerts_processed_total{status="dlq"}[{W}])) or vector(0)) / sum(rate(mutt_moog_alerts_processed_total[{W}]))"#,
        latency_histogram: None,
    },
    Slo {
        name: "alerter_processing_success",
        description: "Events processed (handled or unhandled) rather than failed or dead-lettered",
        target: 0.999,
        error_ratio: r#"(sum(rate(mutt_alerter_events_processed_total{status=~"poison|error"}[{W}])) or vector(0)) / sum(rate(mutt_alerter_events_processed_total[{W}]))"#,
        latency_histogram: None,
    },
];

/// The window of the error budget.
pub const BUDGET_WINDOW: &str = "30d";
/// The windows whose burn rates the endpoint reports.
pub const BURN_WINDOWS: &[&str] = &["1h", "6h", "24h"];

/// Multi-window, multi-burn-rate alerts (SRE workbook, table 5-8): severity, long window,
/// short window, burn rate.
pub const ALERT_WINDOWS: &[(&str, &str, &str, f64)] = &[
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "1d", "2h", 3.0),
    ("ticket", "3d", "6h", 1.0),
];

impl Slo {
    /// The error-ratio query over `window`.
    pub fn query(&self, window: &str) -> String {
        self.error_ratio.replace("{W}", window)
    }

    /// The p99 query over `window`, for latency objectives.
    pub fn p99(&self, window: &str) -> Option<String> {
        self.latency_histogram
            .map(|h| format!("histogram_quantile(0.99, sum(rate({h}_bucket[{window}])) by (le))"))
    }
}

/// What the numbers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Within target, budget burning slowly.
    Ok,
    /// Burning fast enough to exhaust the budget within days (ticket).
    Warning,
    /// Burning fast enough to exhaust the budget within hours (page).
    Critical,
    /// The budget of the window is spent.
    Breaching,
    /// Prometheus has no data for it yet.
    NoData,
}

impl Status {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::Breaching => "breaching",
            Self::NoData => "no_data",
        }
    }
}

/// Burn rate: how many times faster than sustainable the budget is spent.
pub fn burn_rate(error_ratio: f64, target: f64) -> f64 {
    error_ratio / (1.0 - target)
}

/// The status from the budget-window error ratio and the 1h/6h/24h burn rates.
pub fn status(
    window_error_ratio: Option<f64>,
    burn_1h: Option<f64>,
    burn_6h: Option<f64>,
    burn_24h: Option<f64>,
    target: f64,
) -> Status {
    let Some(err) = window_error_ratio else {
        return Status::NoData;
    };
    if burn_1h.is_some_and(|b| b >= 14.4) || burn_6h.is_some_and(|b| b >= 6.0) {
        return Status::Critical;
    }
    if 1.0 - err < target {
        return Status::Breaching;
    }
    if burn_24h.is_some_and(|b| b >= 3.0) {
        return Status::Warning;
    }
    Status::Ok
}

/// The Prometheus rule file: recording rules of every SLO's error ratio over every window
/// the alerts use, and the multi-window, multi-burn-rate alerts.
pub fn prometheus_rules() -> String {
    let windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", BUDGET_WINDOW];
    let mut out = String::new();
    out.push_str(
        "# Generated by `muttdev slo-rules` from processor/telemetry/src/slo.rs. Do not edit:\n",
    );
    out.push_str(
        "# change the SLO definitions and regenerate (a test compares this file with them).\n",
    );
    out.push_str("groups:\n  - name: mutt-slo-recording\n    interval: 30s\n    rules:\n");
    for slo in SLOS {
        for w in &windows {
            let _ = write!(
                out,
                "      - record: mutt:slo_error_ratio:rate{}\n        labels:\n          slo: {}\n        expr: '{}'\n",
                w,
                slo.name,
                slo.query(w).replace('\'', "''")
            );
        }
    }
    out.push_str("  - name: mutt-slo-burn-rate\n    rules:\n");
    for slo in SLOS {
        let budget = 1.0 - slo.target;
        for (severity, long, short, rate) in ALERT_WINDOWS {
            // Rounded: 6 × (1 − 0.999) must read 0.006, not 0.006000000000000005.
            let threshold = format!("{:.6}", rate * budget)
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string();
            let _ = write!(
                out,
                "      - alert: MuttErrorBudgetBurn\n        expr: 'mutt:slo_error_ratio:rate{long}{{slo=\"{name}\"}} > {threshold} and mutt:slo_error_ratio:rate{short}{{slo=\"{name}\"}} > {threshold}'\n        for: 2m\n        labels:\n          severity: {severity}\n          slo: {name}\n          long_window: {long}\n        annotations:\n          summary: 'MUTT is burning the {name} error budget {rate}x too fast ({long} and {short} windows)'\n          description: 'Objective: {desc} (target {target}).'\n",
                name = slo.name,
                desc = slo.description,
                target = slo.target,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status(None, None, None, None, 0.999), Status::NoData);
        assert_eq!(
            status(Some(0.0), Some(0.0), Some(0.0), Some(0.0), 0.999),
            Status::Ok
        );
        assert_eq!(
            status(Some(0.0005), Some(20.0), None, None, 0.999),
            Status::Critical
        );
        assert_eq!(
            status(Some(0.002), Some(1.0), Some(1.0), Some(1.0), 0.999),
            Status::Breaching
        );
        assert_eq!(
            status(Some(0.0001), Some(1.0), Some(1.0), Some(4.0), 0.999),
            Status::Warning
        );
        assert!((burn_rate(0.01, 0.99) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn queries_have_their_window() {
        for s in SLOS {
            assert!(!s.query("1h").contains("{W}"));
            assert!(s.query("1h").contains("[1h]"));
        }
        let rules = prometheus_rules();
        assert!(rules.contains("mutt:slo_error_ratio:rate5m"));
        assert_eq!(
            rules.matches("alert: MuttErrorBudgetBurn").count(),
            SLOS.len() * ALERT_WINDOWS.len()
        );
    }
}
