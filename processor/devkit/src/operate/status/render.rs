//! The human view of a status: tables and verdicts, coloured on a terminal.

use serde_json::Value;

use super::super::{cell, cut, human_age};
use crate::cli::{Output, Tone};

pub(super) struct HumanView<'a> {
    pub(super) control: &'a Value,
    pub(super) config: &'a Value,
    pub(super) processes: &'a [Value],
    pub(super) ops: &'a [Value],
    pub(super) ops_given: bool,
    pub(super) streams: &'a [Value],
    pub(super) dlqs: &'a Value,
    pub(super) breakers: &'a [Value],
    pub(super) slo: &'a Value,
    pub(super) retention: &'a Value,
    pub(super) problems: &'a [String],
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |f| format!("{:.3}%", f * 100.0))
}

pub(super) fn print_human(out: &Output, v: &HumanView<'_>) {
    let url = cell(&v.control["url"]);
    if v.control["reachable"] == false {
        println!("control {url}: {}", out.paint("does not answer", Tone::Bad));
    } else if let Some(e) = v.control["error"].as_str() {
        println!("control {url}: {}", out.paint(e, Tone::Bad));
    } else {
        let conv = if v.config["converged"] == true {
            out.paint("converged", Tone::Good)
        } else {
            out.paint("not converged", Tone::Bad)
        };
        println!(
            "control {url}: config version {}, {conv}",
            cell(&v.config["version"])
        );
    }

    if !v.processes.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = v
            .processes
            .iter()
            .map(|p| {
                let applied = if p["converged"] == true {
                    out.paint("yes", Tone::Good)
                } else {
                    out.paint("no", Tone::Bad)
                };
                let ready = match p["ready"].as_bool() {
                    Some(true) => out.paint("ready", Tone::Good),
                    Some(false) => out.paint("not ready", Tone::Bad),
                    None => "-".into(),
                };
                vec![
                    cell(&p["consumer"]),
                    cell(&p["roles"]),
                    cell(&p["version"]),
                    applied,
                    p["seen_seconds_ago"]
                        .as_i64()
                        .map_or_else(|| "-".into(), |s| format!("{} ago", human_age(s))),
                    ready,
                ]
            })
            .collect();
        out.table(
            &["process", "roles", "version", "applied", "seen", "ready"],
            &rows,
        );
    }

    println!();
    if v.ops_given {
        let rows: Vec<Vec<String>> = v
            .ops
            .iter()
            .map(|o| {
                let state = match o["state"].as_str() {
                    Some("ready") => out.paint("ready", Tone::Good),
                    Some(s) => out.paint(s, Tone::Bad),
                    None => "-".into(),
                };
                vec![
                    cell(&o["url"]),
                    cell(&o["consumer"]),
                    state,
                    o["error"].as_str().map_or_else(String::new, |e| cut(e, 60)),
                ]
            })
            .collect();
        out.table(&["ops listener", "consumer", "state", "detail"], &rows);
    } else {
        println!(
            "readiness, lag, pending and the breaker: give the processes' ops listeners with --ops URL"
        );
    }

    if !v.streams.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = v
            .streams
            .iter()
            .map(|s| {
                vec![
                    cell(&s["stream"]),
                    cell(&s["group"]),
                    cell(&s["lag"]),
                    cell(&s["pending"]),
                ]
            })
            .collect();
        out.table(&["stream", "group", "lag", "pending"], &rows);
    } else if v.ops_given {
        println!("no group lag or pending reported by the --ops processes");
    }

    println!();
    match v.dlqs.as_array() {
        Some(list) => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    let depth = d["depth"].as_i64().unwrap_or(0);
                    let depth_cell = if depth > 0 {
                        out.paint(&depth.to_string(), Tone::Warn)
                    } else {
                        depth.to_string()
                    };
                    vec![
                        cell(&d["name"]),
                        depth_cell,
                        d["oldest_age_seconds"]
                            .as_i64()
                            .map_or_else(|| "-".into(), human_age),
                        cell(&d["parked"]),
                    ]
                })
                .collect();
            out.table(&["dlq", "depth", "oldest", "parked"], &rows);
        }
        None => println!("dlqs: {}", cell(&v.dlqs["error"])),
    }

    if !v.breakers.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = v
            .breakers
            .iter()
            .map(|b| {
                let state = cell(&b["state"]);
                let tone = if state == "closed" {
                    Tone::Good
                } else {
                    Tone::Bad
                };
                vec![
                    cell(&b["name"]),
                    out.paint(&state, tone),
                    cell(&b["reported_by"]),
                ]
            })
            .collect();
        out.table(&["breaker", "state", "reported by"], &rows);
    }

    println!();
    if v.slo["available"] == true {
        let rows: Vec<Vec<String>> = v.slo["slos"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let status = cell(&s["status"]);
                let tone = match status.as_str() {
                    "ok" => Tone::Good,
                    "no_data" | "warning" => Tone::Warn,
                    _ => Tone::Bad,
                };
                vec![
                    cell(&s["name"]),
                    pct(&s["target"]),
                    pct(&s["actual"]),
                    pct(&s["error_budget_remaining"]),
                    out.paint(&status, tone),
                ]
            })
            .collect();
        out.table(&["slo", "target", "actual", "budget left", "status"], &rows);
    } else {
        println!(
            "slo: {} ({})",
            out.paint("unavailable", Tone::Warn),
            cut(&cell(&v.slo["reason"]), 100)
        );
    }

    println!();
    if let Some(e) = v.retention["error"].as_str() {
        println!("retention: {}", cut(e, 100));
    } else {
        let enabled = if v.retention["enabled"] == true {
            format!("on, every {}", cell(&v.retention["interval"]))
        } else {
            "off".into()
        };
        println!(
            "retention: {enabled}; last run {}, next {}",
            cell(&v.retention["last_run_at"]),
            cell(&v.retention["next_run_at"])
        );
    }

    println!();
    if v.problems.is_empty() {
        println!("{}", out.paint("all is well", Tone::Good));
    } else {
        println!("{}", out.paint("problems:", Tone::Bad));
        for p in v.problems {
            println!("  - {p}");
        }
    }
}
