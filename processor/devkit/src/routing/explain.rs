//! `muttdev rules test`: which rule an event matches and why, asked of the control plane
//! (`POST /api/v2/rules/test`, which runs the alerters' own matcher and changes nothing),
//! shown rule by rule, then the verdict.
//!
//! The event is given as JSON (`--event`), as one of the sample events (`--sample
//! syslog-3`, `--sample trap-12`, or its number among all 430), or in a file (`--file
//! PATH`, `-` for stdin) holding one event or an array of them.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use mutt_core::rules::explain::TrialOutcome;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{Control, ControlArgs, Output, Tone};
use crate::operate::cell;
use crate::samples;

/// `muttdev rules test`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["event", "sample", "file"])))]
pub struct TestArgs {
    /// The event, as ingest takes it: '{"hostname": …, "message": …, "timestamp": …}'.
    #[arg(long, value_name = "JSON")]
    event: Option<String>,
    /// A sample event: syslog-1 … syslog-330, trap-1 … trap-100, or 1 … 430.
    #[arg(long, value_name = "ID")]
    sample: Option<String>,
    /// A file with one event or an array of events (`-`: standard input).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    #[command(flatten)]
    control: ControlArgs,
}

/// The sample event `id`: `syslog-N`, `trap-N` (from 1) or `N` among all of them.
pub fn sample_event(id: &str) -> anyhow::Result<Value> {
    let id = id.trim().to_ascii_lowercase();
    let pick = |events: Vec<Value>, n: &str| -> Option<Value> {
        let n: usize = n.parse().ok()?;
        events.into_iter().nth(n.checked_sub(1)?)
    };
    let found = if let Some(n) = id.strip_prefix("syslog-") {
        pick(samples::syslog_events(), n)
    } else if let Some(n) = id.strip_prefix("trap-") {
        pick(samples::trap_events(), n)
    } else {
        pick(samples::all_events(), &id)
    };
    found.with_context(|| {
        format!(
            "no sample {id:?}: the samples are syslog-1 … syslog-{}, trap-1 … trap-{}, or 1 … {}",
            samples::syslog_events().len(),
            samples::trap_events().len(),
            samples::all_events().len()
        )
    })
}

/// The events to test, from the arguments.
fn events(a: &TestArgs) -> anyhow::Result<Vec<Value>> {
    let parsed = if let Some(e) = &a.event {
        serde_json::from_str(e).context("--event is not JSON")?
    } else if let Some(id) = &a.sample {
        sample_event(id)?
    } else if let Some(path) = &a.file {
        let mut text = String::new();
        if path.as_os_str() == "-" {
            std::io::stdin().read_to_string(&mut text)?;
        } else {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .with_context(|| format!("{} is not JSON", path.display()))?
    } else {
        bail!("give --event, --sample or --file");
    };
    Ok(match parsed {
        Value::Array(v) => v,
        one => vec![one],
    })
}

/// Runs `muttdev rules test`.
pub async fn run(a: TestArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(a.control.json);
    let events = events(&a)?;
    if events.is_empty() {
        bail!("no event to test");
    }
    let api = Control::new(&a.control)?;
    let mut answers = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let x = api
            .change(
                Method::POST,
                "/api/v2/rules/test",
                Some(&json!({ "event": event })),
            )
            .await
            .with_context(|| format!("event {}", i + 1))?;
        if !out.json {
            if i > 0 {
                println!();
            }
            print!("{}", render(&out, &x));
        }
        answers.push(x);
    }
    if out.json {
        let v = if answers.len() == 1 {
            answers.pop().unwrap_or_default()
        } else {
            Value::Array(answers)
        };
        out.print_json(&v);
    }
    Ok(ExitCode::SUCCESS)
}

/// The tone of a rule's outcome.
fn tone(outcome: &str) -> Option<Tone> {
    match outcome {
        "matched" => Some(Tone::Good),
        "invalid" => Some(Tone::Bad),
        "inactive" => Some(Tone::Warn),
        _ => None,
    }
}

/// The human label of an outcome (`severity_mismatch` → `severity mismatch`).
fn label(outcome: &str) -> String {
    serde_json::from_value::<TrialOutcome>(json!(outcome))
        .map_or_else(|_| outcome.to_string(), |o| o.label().to_string())
}

/// What a rule looks for, in a cell.
fn test_of(r: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(s) = r["match_string"].as_str().filter(|s| !s.is_empty()) {
        parts.push(if r["match_type"] == "regex" {
            format!("/{s}/")
        } else {
            format!("\"{s}\"")
        });
    }
    if let Some(o) = r["trap_oid"].as_str().filter(|s| !s.trim().is_empty()) {
        parts.push(format!("oid {o}"));
    }
    if let Some(s) = r["syslog_severity"].as_i64() {
        parts.push(format!("severity {s}"));
    }
    parts.join(", ")
}

/// An explanation for people: the event, each rule with its outcome, the verdict.
pub fn render(out: &Output, x: &Value) -> String {
    let mut s = String::new();
    let e = &x["event"];
    let host_kind = match x["host"].as_str() {
        Some("development") => "development host: dev_handling",
        _ => "production host: prod_handling",
    };
    s.push_str(&format!(
        "event     {} ({host_kind}), syslog severity {}, trap_oid {}\n",
        cell(&x["hostname"]),
        cell(&e["syslog_severity"]),
        cell(&e["trap_oid"]),
    ));
    s.push_str(&format!("message   {}\n\n", cell(&e["message"])));
    let rules = x["rules"].as_array().cloned().unwrap_or_default();
    if rules.is_empty() {
        s.push_str("no rules\n");
    } else {
        let rows: Vec<Vec<String>> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let outcome = r["outcome"].as_str().unwrap_or("");
                let shown = label(outcome);
                let shown = match tone(outcome) {
                    Some(t) => out.paint(&shown, t),
                    None => shown,
                };
                vec![
                    (i + 1).to_string(),
                    cell(&r["id"]),
                    cell(&r["priority"]),
                    cell(&r["match_type"]),
                    test_of(r),
                    shown,
                    cell(&r["detail"]),
                ]
            })
            .collect();
        s.push_str(&crate::cli::render_table(
            &[
                "#",
                "rule",
                "priority",
                "type",
                "looks for",
                "outcome",
                "why",
            ],
            &rows,
        ));
    }
    s.push('\n');
    s.push_str(&verdict(out, x));
    s
}

/// The verdict line(s).
fn verdict(out: &Output, x: &Value) -> String {
    if x["verdict"] == "handled" {
        let forwarded = x["forwarded"].as_bool().unwrap_or(false);
        let what = if forwarded {
            out.paint("an alert goes to the webhook", Tone::Good)
        } else {
            out.paint("audited only, nothing is forwarded", Tone::Warn)
        };
        return format!(
            "verdict   handled by rule {}: {} → {what}; team {}, webhook severity {}\n",
            cell(&x["rule_id"]),
            cell(&x["handling"]),
            cell(&x["team"]),
            cell(&x["webhook_severity"]),
        );
    }
    let c = &x["counter"];
    let mut s = format!(
        "verdict   {}: no rule matches; fingerprint {} ({:?})\n",
        out.paint("unhandled", Tone::Warn),
        cell(&x["fingerprint"]),
        x["normalized_message"].as_str().unwrap_or(""),
    );
    let team_from = if x["team_from"] == "device_teams" {
        "its device team"
    } else {
        "the default team"
    };
    if c["silenced"].as_bool().unwrap_or(false) {
        s.push_str(&format!(
            "counter   silent after a meta-alert for another {}; then counted again toward {} within {}\n",
            ms(&c["silence_left_ms"]),
            cell(&c["threshold"]),
            cell(&c["window"]),
        ));
    } else {
        let left = if c["window_left_ms"].is_u64() {
            format!(" (this window ends in {})", ms(&c["window_left_ms"]))
        } else {
            String::new()
        };
        s.push_str(&format!(
            "counter   {} of {} within {} for {}{left}\n",
            cell(&c["count"]),
            cell(&c["threshold"]),
            cell(&c["window"]),
            cell(&x["hostname"]),
        ));
    }
    s.push_str(&format!(
        "meta      at the threshold one meta-alert goes to {} ({team_from}), webhook severity {}\n",
        cell(&x["team"]),
        cell(&x["webhook_severity"]),
    ));
    s
}

/// Milliseconds as `1h 2m 3s`.
fn ms(v: &Value) -> String {
    let Some(ms) = v.as_u64() else {
        return "-".into();
    };
    let s = ms / 1000;
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, _) => format!("{m}m {sec}s"),
        _ => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_id() {
        assert_eq!(
            sample_event("syslog-1").unwrap()["hostname"],
            "wireless-controller-12.campus.example.com"
        );
        assert!(sample_event("trap-1").unwrap()["trap_oid"].is_string());
        assert_eq!(
            sample_event("331").unwrap(),
            sample_event("TRAP-1").unwrap()
        );
        for bad in ["0", "syslog-0", "syslog-331", "trap-101", "x", "431"] {
            let e = sample_event(bad).unwrap_err().to_string();
            assert!(e.contains("syslog-330"), "{e}");
        }
    }

    #[test]
    fn an_explanation_reads_rule_by_rule() {
        let out = Output::new(true);
        let x = json!({
            "hostname": "r1", "host": "production", "webhook_severity": 3,
            "event": {"hostname": "r1", "message": "disk 3 error", "timestamp": "t"},
            "rules": [{"id": 2, "priority": 1, "match_type": "contains", "match_string": "link",
                       "trap_oid": null, "syslog_severity": null, "outcome": "contains_no_match",
                       "detail": "the message does not contain \"link\""}],
            "verdict": "unhandled", "fingerprint": "0123456789abcdef",
            "normalized_message": "disk <n> error", "team": "NETO", "team_from": "default",
            "counter": {"count": 3, "threshold": 100, "window": "24h", "window_left_ms": 3_600_000,
                        "silenced": false, "silence_left_ms": null},
        });
        let text = render(&out, &x);
        assert!(text.contains("contains: no match"), "{text}");
        assert!(text.contains("3 of 100 within 24h"), "{text}");
        assert!(text.contains("ends in 1h 0m"), "{text}");
        assert!(text.contains("NETO (the default team)"), "{text}");
    }
}
