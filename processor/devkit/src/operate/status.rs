//! `muttdev status`: one view of a running MUTT, and a verdict.
//!
//! From the control API: every process that reports a config version (role, consumer,
//! version applied, whether it converged; `GET /api/v2/config/versions`), the DLQs (depth,
//! oldest age, parked; `GET /api/v2/dlq`), the SLOs (`GET /api/v2/slo`; "unavailable", not
//! a failure, when no Prometheus answers) and retention (`GET /api/v2/retention`).
//!
//! The control API does not know the processes' ops listeners, so their readiness, and
//! what only their metrics say (group lag and pending per stream,
//! `mutt_stream_group_lag`/`mutt_stream_group_pending`; the circuit breaker,
//! `mutt_circuit_breaker_state`), come from the ops listeners given with `--ops URL`
//! (repeatable; none by default).
//!
//! Exits 1 when the control API does not answer (or refuses the key), when a process
//! given with `--ops` is down or not ready, or when the processes have not all applied
//! the config version in force. `--json` prints one object: `ok`, `problems`, `control`,
//! `config`, `processes`, `ops`, `streams`, `dlqs`, `breakers`, `slo`, `retention`.
//!
//! # Layout
//!
//! - `metrics`: the samples MUTT's `/metrics` expositions hold, parsed.
//! - `render`: the human view of a status.

mod metrics;
mod render;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use super::cell;
use crate::cli::{Control, ControlArgs, Output};
pub use metrics::{Sample, parse_metrics};
use render::{HumanView, print_human};

/// `muttdev status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The control API and output.
    #[command(flatten)]
    pub control: ControlArgs,
    /// The ops listener (`/health`, `/ready`, `/metrics`) of a process to check, e.g.
    /// `http://127.0.0.1:9464`; repeatable. The control API does not know where these
    /// listeners are, so none is checked unless given: readiness, group lag and pending,
    /// and the breaker state come only from the processes named here.
    #[arg(long = "ops", value_name = "URL")]
    pub ops: Vec<String>,
}

/// What one ops listener said.
#[derive(Debug, Clone)]
struct Probe {
    url: String,
    /// `/health` answered.
    up: bool,
    error: Option<String>,
    consumer: Option<String>,
    roles: Vec<String>,
    /// `/ready` said ready (None when it did not answer).
    ready: Option<bool>,
    checks: Value,
    samples: Vec<Sample>,
}

const METRICS: &[&str] = &[
    "mutt_stream_group_lag",
    "mutt_stream_group_pending",
    "mutt_circuit_breaker_state",
];

async fn probe(client: &reqwest::Client, url: &str) -> Probe {
    let base = url.trim_end_matches('/').to_string();
    let mut p = Probe {
        url: base.clone(),
        up: false,
        error: None,
        consumer: None,
        roles: Vec::new(),
        ready: None,
        checks: Value::Null,
        samples: Vec::new(),
    };
    match client.get(format!("{base}/health")).send().await {
        Ok(r) if r.status().is_success() => {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            p.up = true;
            p.consumer = v["consumer"].as_str().map(str::to_string);
            p.roles = v["roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
        }
        Ok(r) => {
            p.error = Some(format!("/health answered {}", r.status()));
            return p;
        }
        Err(e) => {
            p.error = Some(format!("does not answer ({})", root_cause(&e)));
            return p;
        }
    }
    match client.get(format!("{base}/ready")).send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            p.checks = r.json::<Value>().await.map_or(Value::Null, |v| {
                v.get("checks").cloned().unwrap_or(Value::Null)
            });
            p.ready = Some(ok);
        }
        Err(e) => p.error = Some(format!("/ready does not answer ({})", root_cause(&e))),
    }
    if let Ok(r) = client.get(format!("{base}/metrics")).send().await
        && let Ok(text) = r.text().await
    {
        p.samples = parse_metrics(&text, METRICS);
    }
    p
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The answer of one control API read: the body, or why there is none.
#[derive(Debug)]
enum Read {
    Ok(Value),
    /// The API answered with this status and message.
    Refused(u16, String),
    /// It did not answer.
    Down(String),
}

async fn read(control: &Control, path: &str) -> Read {
    match control.call(reqwest::Method::GET, path, None).await {
        Ok((status, v)) if (200..300).contains(&status) => Read::Ok(v),
        Ok((status, v)) => {
            let message = v["error"]["message"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_string);
            Read::Refused(status, message)
        }
        Err(e) => Read::Down(format!("{e:#}")),
    }
}

fn breaker_name(v: f64) -> &'static str {
    match v as i64 {
        0 => "closed",
        1 => "open",
        2 => "half-open",
        _ => "unknown",
    }
}

/// Worse first: open, half-open, closed.
fn breaker_rank(v: f64) -> u8 {
    match v as i64 {
        1 => 3,
        2 => 2,
        0 => 1,
        _ => 0,
    }
}

/// Runs `muttdev status`.
pub async fn run(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(a.control.json);
    let control = Control::new(&a.control)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let (probes, versions, dlqs, slo, retention) = tokio::join!(
        probe_all(&client, &a.ops),
        read(&control, "/api/v2/config/versions"),
        read(&control, "/api/v2/dlq"),
        read(&control, "/api/v2/slo"),
        read(&control, "/api/v2/retention"),
    );
    let now = mutt_core::now_ms();
    let mut problems: Vec<String> = Vec::new();

    // The control API and the processes it knows.
    let mut control_json = json!({"url": control.base(), "reachable": true});
    let mut config_json = Value::Null;
    let mut processes: Vec<Value> = Vec::new();
    match &versions {
        Read::Ok(v) => {
            let version = v["version"].as_i64().unwrap_or(0);
            let mut lagging = Vec::new();
            for c in v["consumers"].as_array().into_iter().flatten() {
                let consumer = c["consumer"].as_str().unwrap_or_default().to_string();
                let applied = c["version"].as_i64().unwrap_or(0);
                let converged = applied >= version;
                if !converged {
                    lagging.push(format!("{consumer} (version {applied})"));
                }
                let probe = probes
                    .iter()
                    .find(|p| p.consumer.as_deref() == Some(consumer.as_str()));
                processes.push(json!({
                    "consumer": consumer,
                    "roles": c["roles"],
                    "version": applied,
                    "converged": converged,
                    "seen_seconds_ago": c["seen_ms"].as_i64().map(|s| (now - s).max(0) / 1000),
                    "ready": probe.and_then(|p| p.ready),
                    "ops": probe.map(|p| p.url.clone()),
                }));
            }
            let converged = lagging.is_empty();
            if !converged {
                problems.push(format!(
                    "not every process applied config version {version}: {}",
                    lagging.join(", ")
                ));
            }
            config_json = json!({"version": version, "converged": converged});
        }
        Read::Refused(status, m) => {
            control_json = json!({"url": control.base(), "reachable": true, "error": format!("{status}: {m}")});
            problems.push(format!(
                "the control API at {} refused GET /api/v2/config/versions: {status}: {m}",
                control.base()
            ));
        }
        Read::Down(e) => {
            control_json = json!({"url": control.base(), "reachable": false, "error": e.clone()});
            problems.push(e.clone());
        }
    }

    // The ops listeners given.
    let ops_json: Vec<Value> = probes
        .iter()
        .map(|p| {
            let state = match (p.up, p.ready) {
                (false, _) => "down",
                (true, Some(true)) => "ready",
                (true, Some(false)) => "not_ready",
                (true, None) => "unknown",
            };
            json!({
                "url": p.url, "state": state, "consumer": p.consumer, "roles": p.roles,
                "checks": p.checks, "error": p.error,
            })
        })
        .collect();
    for p in &probes {
        let who = p
            .consumer
            .as_deref()
            .map_or_else(String::new, |c| format!(" ({c})"));
        if !p.up {
            problems.push(format!(
                "the process at {} is down: {}",
                p.url,
                p.error.as_deref().unwrap_or("no answer")
            ));
        } else if p.ready != Some(true) {
            let failing: Vec<String> = p
                .checks
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.as_str() != Some("ok"))
                .map(|(k, v)| format!("{k}: {}", cell(v)))
                .collect();
            problems.push(format!(
                "the process at {}{who} is not ready{}",
                p.url,
                if failing.is_empty() {
                    p.error
                        .clone()
                        .map_or_else(String::new, |e| format!(": {e}"))
                } else {
                    format!(": {}", failing.join(", "))
                }
            ));
        }
    }

    // Lag and pending per stream and group, from the metrics (the highest any process
    // reported: every worker publishes its stream's groups).
    let mut streams: BTreeMap<(String, String), (Option<f64>, Option<f64>)> = BTreeMap::new();
    let mut breakers: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
    for p in &probes {
        let who = p.consumer.clone().unwrap_or_else(|| p.url.clone());
        for s in &p.samples {
            match s.name.as_str() {
                "mutt_stream_group_lag" | "mutt_stream_group_pending" => {
                    let key = (
                        s.labels.get("stream").cloned().unwrap_or_default(),
                        s.labels.get("group").cloned().unwrap_or_default(),
                    );
                    let e = streams.entry(key).or_default();
                    let slot = if s.name == "mutt_stream_group_lag" {
                        &mut e.0
                    } else {
                        &mut e.1
                    };
                    *slot = Some(slot.map_or(s.value, |v| v.max(s.value)));
                }
                "mutt_circuit_breaker_state" => {
                    let name = s.labels.get("name").cloned().unwrap_or_default();
                    let e = breakers.entry(name).or_insert((s.value, Vec::new()));
                    if breaker_rank(s.value) > breaker_rank(e.0) {
                        e.0 = s.value;
                    }
                    e.1.push(who.clone());
                }
                _ => {}
            }
        }
    }
    let streams_json: Vec<Value> = streams
        .iter()
        .map(|((stream, group), (lag, pending))| {
            json!({"stream": stream, "group": group,
                   "lag": lag.map(|v| v as i64), "pending": pending.map(|v| v as i64)})
        })
        .collect();
    let breakers_json: Vec<Value> = breakers
        .iter()
        .map(|(name, (v, by))| json!({"name": name, "state": breaker_name(*v), "reported_by": by}))
        .collect();

    let dlqs_json = match &dlqs {
        Read::Ok(v) => v["dlqs"].clone(),
        Read::Refused(s, m) => json!({"error": format!("{s}: {m}")}),
        Read::Down(e) => json!({"error": e}),
    };
    let slo_json = match &slo {
        Read::Ok(v) => json!({"available": true, "slos": v["slos"], "window": v["window"]}),
        Read::Refused(s, m) => json!({"available": false, "reason": format!("{s}: {m}")}),
        Read::Down(e) => json!({"available": false, "reason": e}),
    };
    let retention_json = match &retention {
        Read::Ok(v) => json!({
            "enabled": v["enabled"], "interval": v["interval"],
            "last_run_at": v["last_run_at"], "next_run_at": v["next_run_at"],
        }),
        Read::Refused(s, m) => json!({"error": format!("{s}: {m}")}),
        Read::Down(e) => json!({"error": e}),
    };

    let ok = problems.is_empty();
    if out.json {
        out.print_json(&json!({
            "ok": ok,
            "problems": problems,
            "control": control_json,
            "config": config_json,
            "processes": processes,
            "ops": ops_json,
            "streams": streams_json,
            "dlqs": dlqs_json,
            "breakers": breakers_json,
            "slo": slo_json,
            "retention": retention_json,
        }));
    } else {
        print_human(
            &out,
            &HumanView {
                control: &control_json,
                config: &config_json,
                processes: &processes,
                ops: &ops_json,
                ops_given: !probes.is_empty(),
                streams: &streams_json,
                dlqs: &dlqs_json,
                breakers: &breakers_json,
                slo: &slo_json,
                retention: &retention_json,
                problems: &problems,
            },
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Probes every ops listener at once; in the order given.
async fn probe_all(client: &reqwest::Client, urls: &[String]) -> Vec<Probe> {
    let mut set = tokio::task::JoinSet::new();
    for (i, u) in urls.iter().enumerate() {
        let (client, u) = (client.clone(), u.clone());
        set.spawn(async move { (i, probe(&client, &u).await) });
    }
    let mut out: Vec<(usize, Probe)> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_is_parsed_with_labels() {
        let text = "# HELP mutt_stream_group_lag x\n# TYPE mutt_stream_group_lag gauge\n\
            mutt_stream_group_lag{group=\"alerter\",stream=\"mutt:events\"} 12\n\
            mutt_stream_group_pending{group=\"forwarder\",stream=\"a\\\"b,c}\"} 3\n\
            mutt_circuit_breaker_state{name=\"webhook\"} 1\n\
            mutt_other 5\n";
        let s = parse_metrics(text, METRICS);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].labels["stream"], "mutt:events");
        assert_eq!(s[0].value, 12.0);
        assert_eq!(s[1].labels["stream"], "a\"b,c}");
        assert_eq!(s[1].labels["group"], "forwarder");
        assert_eq!(breaker_name(s[2].value), "open");
    }
}
