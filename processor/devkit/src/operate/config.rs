//! `muttdev config list|get|set|history`: the hot settings (`/api/v2/config`), and their
//! history from the config audit (`GET /api/v2/audit?table_name=dynamic_config`).
//!
//! `set` stores a new snapshot version, then waits (up to `--wait`, 30 s) until every
//! process reports that version (`GET /api/v2/config/versions`) and prints who applied
//! it; it exits 1 when some did not in time. `--json` on `set` prints
//! `{key, old_value, new_value, version, converged, processes}`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::{cell, cut, encode, human_age, parse_duration};
use crate::cli::{Control, ControlArgs, Output, Tone};

/// `muttdev config …`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Every hot setting: value, default, whether overridden, the roles that read it.
    List {
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// One hot setting, with its description.
    Get {
        /// The setting (`breaker_threshold`; `MUTT_BREAKER_THRESHOLD` is taken too).
        key: String,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Changes a hot setting, then waits until every process applied it.
    Set {
        /// The setting (`breaker_threshold`; `MUTT_BREAKER_THRESHOLD` is taken too).
        key: String,
        /// The new value (`30s`, `500`, `on`).
        value: String,
        /// Why (kept in the config audit).
        #[arg(long)]
        reason: String,
        /// How long to wait for every process to apply it (`0s`: do not wait).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        wait: Duration,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Changes to the hot settings, newest first: who, when, old and new value, why.
    History {
        /// Only this setting.
        key: Option<String>,
        /// Most changes shown (1–1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// A setting's API key from what an operator may type: `breaker_threshold` or
/// `MUTT_BREAKER_THRESHOLD`.
pub fn normalize_key(k: &str) -> String {
    let lower = k.trim().to_lowercase();
    if let Some(k) = lower.strip_prefix("mutt_") {
        return k.to_string();
    }
    lower
}

/// Runs one `config` command.
pub async fn run(c: ConfigCommand) -> anyhow::Result<ExitCode> {
    match c {
        ConfigCommand::List { control } => list(&control).await,
        ConfigCommand::Get { key, control } => get(&control, &normalize_key(&key)).await,
        ConfigCommand::Set {
            key,
            value,
            reason,
            wait,
            control,
        } => set(&control, &normalize_key(&key), &value, &reason, wait).await,
        ConfigCommand::History {
            key,
            limit,
            control,
        } => history(&control, key.as_deref().map(normalize_key), limit).await,
    }
}

async fn list(args: &ControlArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let v = Control::new(args)?.get("/api/v2/config").await?;
    if out.json {
        out.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = v["settings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let value = cell(&s["value"]);
            vec![
                cell(&s["key"]),
                if s["overridden"] == true {
                    out.paint(&value, Tone::Warn)
                } else {
                    value
                },
                cell(&s["default"]),
                if s["overridden"] == true {
                    "yes".into()
                } else {
                    String::new()
                },
                cell(&s["roles"]),
            ]
        })
        .collect();
    out.table(&["key", "value", "default", "overridden", "roles"], &rows);
    println!("\nconfig version {}", cell(&v["version"]));
    Ok(ExitCode::SUCCESS)
}

async fn get(args: &ControlArgs, key: &str) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let v = Control::new(args)?
        .get(&format!("/api/v2/config/{}", encode(key)))
        .await?;
    if out.json {
        out.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    for (label, field) in [
        ("key", "key"),
        ("value", "value"),
        ("default", "default"),
        ("overridden", "overridden"),
        ("type", "type"),
        ("read by", "roles"),
        ("description", "description"),
    ] {
        println!("{label:<12} {}", cell(&v[field]));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether every process reported at least `version`, and each process as JSON.
fn convergence(v: &Value, version: i64) -> (bool, Vec<Value>) {
    let processes: Vec<Value> = v["consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let applied = c["version"].as_i64().unwrap_or(0);
            json!({
                "consumer": c["consumer"], "roles": c["roles"], "version": applied,
                "converged": applied >= version,
            })
        })
        .collect();
    (processes.iter().all(|p| p["converged"] == true), processes)
}

/// Polls `GET /api/v2/config/versions` until every process applied `version`, or
/// `wait` passed; prints each process as it converges (on stderr, unless `quiet`).
/// Returns whether all did and the processes.
pub async fn wait_for_version(
    control: &Control,
    version: i64,
    wait: Duration,
    quiet: bool,
) -> anyhow::Result<(bool, Vec<Value>)> {
    let start = Instant::now();
    let mut announced: Vec<String> = Vec::new();
    loop {
        let v = control.get("/api/v2/config/versions").await?;
        let (all, processes) = convergence(&v, version);
        if !quiet {
            for p in &processes {
                let c = cell(&p["consumer"]);
                if p["converged"] == true && !announced.contains(&c) {
                    eprintln!(
                        "  {c} ({}) applied version {} after {:.1}s",
                        cell(&p["roles"]),
                        cell(&p["version"]),
                        start.elapsed().as_secs_f64()
                    );
                    announced.push(c);
                }
            }
        }
        if all || start.elapsed() >= wait {
            return Ok((all, processes));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn set(
    args: &ControlArgs,
    key: &str,
    value: &str,
    reason: &str,
    wait: Duration,
) -> anyhow::Result<ExitCode> {
    if reason.trim().is_empty() {
        bail!("--reason must say why");
    }
    let out = Output::new(args.json);
    let control = Control::new(args)?;
    let changed = control
        .change(
            reqwest::Method::PUT,
            &format!("/api/v2/config/{}", encode(key)),
            Some(&json!({"value": value, "reason": reason})),
        )
        .await?;
    let version = changed["version"].as_i64().unwrap_or(0);
    if !out.json {
        println!(
            "{key}: {} -> {} (config version {version})",
            cell(&changed["old_value"]),
            cell(&changed["new_value"])
        );
    }
    let (all, processes) = if wait.is_zero() {
        let v = control.get("/api/v2/config/versions").await?;
        convergence(&v, version)
    } else {
        wait_for_version(&control, version, wait, out.json).await?
    };
    if out.json {
        out.print_json(&json!({
            "key": changed["key"], "old_value": changed["old_value"],
            "new_value": changed["new_value"], "version": version,
            "converged": all, "processes": processes,
        }));
    } else {
        let rows: Vec<Vec<String>> = processes
            .iter()
            .map(|p| {
                vec![
                    cell(&p["consumer"]),
                    cell(&p["roles"]),
                    cell(&p["version"]),
                    if p["converged"] == true {
                        out.paint("applied", Tone::Good)
                    } else {
                        out.paint("not yet", Tone::Bad)
                    },
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no process reports a config version");
        } else {
            out.table(&["process", "roles", "version", "state"], &rows);
        }
        if all {
            println!(
                "{}",
                out.paint(
                    &format!("every process applied version {version}"),
                    Tone::Good
                )
            );
        } else if wait.is_zero() {
            println!("not waiting (--wait 0s)");
        } else {
            println!(
                "{}",
                out.paint(
                    &format!(
                        "not every process applied version {version} within {}",
                        human_age(wait.as_secs() as i64)
                    ),
                    Tone::Bad
                )
            );
        }
    }
    Ok(if all || wait.is_zero() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn history(args: &ControlArgs, key: Option<String>, limit: u32) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let mut path = format!("/api/v2/audit?table_name=dynamic_config&limit={limit}");
    if let Some(k) = &key {
        path.push_str(&format!("&record_key={}", encode(k)));
    }
    let v = Control::new(args)?.get(&path).await?;
    if out.json {
        out.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = v["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            vec![
                cell(&l["changed_at"]),
                cell(&l["record_key"]),
                cell(&l["old_values"]["value"]),
                cell(&l["new_values"]["value"]),
                cell(&l["new_values"]["version"]),
                cell(&l["changed_by"]),
                cut(&cell(&l["reason"]), 60),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no changes recorded");
    } else {
        out.table(
            &["when", "key", "old", "new", "version", "by", "reason"],
            &rows,
        );
        let total = v["pagination"]["total"].as_i64().unwrap_or(0);
        if total > rows.len() as i64 {
            println!("\n{} of {total} shown (--limit)", rows.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_as_settings_or_variables() {
        assert_eq!(normalize_key("breaker_threshold"), "breaker_threshold");
        assert_eq!(normalize_key("MUTT_BREAKER_THRESHOLD"), "breaker_threshold");
    }

    #[test]
    fn convergence_needs_every_process_at_the_version() {
        let v = json!({"consumers": [
            {"consumer": "a", "roles": ["all"], "version": 3},
            {"consumer": "b", "roles": ["ingest"], "version": 2},
        ]});
        assert!(!convergence(&v, 3).0);
        assert!(convergence(&v, 2).0);
        assert!(convergence(&json!({"consumers": []}), 9).0);
    }
}
