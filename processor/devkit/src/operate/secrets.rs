//! `muttdev secrets status|rotate`: secret rotation over `/api/v2/secrets` (admin scope):
//! `redis_password`, `database_password`, `webhook_token` move through stage → promote →
//! retire (or rollback), one step per command.
//!
//! After a step, `rotate` polls `GET /api/v2/secrets` and prints each process as it
//! applies the step's generation, until all did (exit 0) or `--timeout` passed (exit 1,
//! naming those that did not). A staged value is read from a file (`--value-file`, `-` for
//! stdin) or an environment variable (`--value-env`), never from the command line, where
//! shell history and `ps` would keep it; it is sent to the control API and printed
//! nowhere. `--json`: `status` prints the API's `{secrets}`; `rotate` prints `{secret,
//! converged, processes}`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{cell, encode, parse_duration};
use crate::cli::{Control, ControlArgs, Output, Tone};

/// A rotation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    /// Every process learns the new value; both are accepted.
    Stage,
    /// The new value is used for everything new; the old one is still accepted.
    Promote,
    /// The old value is dropped and refused from then on.
    Retire,
    /// Back to the value before the stage.
    Rollback,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stage => "stage",
            Self::Promote => "promote",
            Self::Retire => "retire",
            Self::Rollback => "rollback",
        }
    }
}

/// `muttdev secrets …`.
#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Each secret's phase and generation, and whether every process applied it (never a
    /// value).
    Status {
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Takes one rotation step of a secret and shows it reach every process.
    Rotate {
        /// The secret: redis_password, database_password or webhook_token.
        name: String,
        /// The step.
        #[arg(long, value_enum)]
        step: Step,
        /// Why (kept in the config audit).
        #[arg(long)]
        reason: String,
        /// The new value (stage only), read from this file (`-`: stdin); one trailing
        /// newline is dropped.
        #[arg(long, value_name = "FILE")]
        value_file: Option<PathBuf>,
        /// The new value (stage only), read from this environment variable.
        #[arg(long, value_name = "VAR", conflicts_with = "value_file")]
        value_env: Option<String>,
        /// Take the step even though some process has not applied the previous one.
        #[arg(long)]
        force: bool,
        /// redis_password only: leave the Redis ACL user's passwords to you (MUTT adds
        /// and removes them by default).
        #[arg(long)]
        no_manage_acl: bool,
        /// How long to wait for every process to apply the step.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Runs one `secrets` command.
pub async fn run(c: SecretsCommand) -> anyhow::Result<ExitCode> {
    match c {
        SecretsCommand::Status { control } => status(&control).await,
        SecretsCommand::Rotate {
            name,
            step,
            reason,
            value_file,
            value_env,
            force,
            no_manage_acl,
            timeout,
            control,
        } => {
            if reason.trim().is_empty() {
                bail!("--reason must say why");
            }
            let value = read_value(value_file.as_deref(), value_env.as_deref())?;
            match (step, &value) {
                (Step::Stage, None) => bail!(
                    "stage needs the new value: --value-file FILE (- for stdin) or --value-env VAR"
                ),
                (s, Some(_)) if s != Step::Stage => bail!("a value is given with stage only"),
                _ => {}
            }
            let mut body = json!({"step": step.as_str(), "reason": reason});
            if let Some(v) = value {
                body["value"] = json!(v);
            }
            if force {
                body["force"] = json!(true);
            }
            if no_manage_acl {
                body["manage_acl"] = json!(false);
            }
            rotate(&control, &name, step, &body, timeout).await
        }
    }
}

/// The staged value from a file, stdin or a variable; None when neither is given.
fn read_value(file: Option<&std::path::Path>, var: Option<&str>) -> anyhow::Result<Option<String>> {
    let raw = match (file, var) {
        (Some(p), _) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the value from stdin")?;
            s
        }
        (Some(p), _) => std::fs::read_to_string(p)
            .with_context(|| format!("reading the value from {}", p.display()))?,
        (None, Some(v)) => std::env::var(v).with_context(|| format!("${v} is not set"))?,
        (None, None) => return Ok(None),
    };
    let value = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(&raw)
        .to_string();
    if value.is_empty() {
        bail!("the new value is empty");
    }
    Ok(Some(value))
}

async fn status(args: &ControlArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let v = Control::new(args)?.get("/api/v2/secrets").await?;
    if out.json {
        out.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = v["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            if s["configured"] == false {
                return vec![
                    cell(&s["name"]),
                    "not configured".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ];
            }
            let generation = s["generation"].as_i64().unwrap_or(0);
            let procs = s["processes"].as_array().cloned().unwrap_or_default();
            let applied = procs
                .iter()
                .filter(|p| p["generation"].as_i64().is_some_and(|g| g >= generation))
                .count();
            let conv = format!("{applied}/{}", procs.len());
            vec![
                cell(&s["name"]),
                cell(&s["phase"]),
                generation.to_string(),
                cell(&s["next_step"]),
                cell(&s["changed_at"]),
                if s["converged"] == true {
                    out.paint(&conv, Tone::Good)
                } else {
                    out.paint(&conv, Tone::Warn)
                },
            ]
        })
        .collect();
    out.table(
        &[
            "secret",
            "phase",
            "generation",
            "next step",
            "changed",
            "applied",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// Each process of secret `name`'s entry in `GET /api/v2/secrets`, with whether it
/// applied `generation`.
fn processes(list: &Value, name: &str, generation: i64) -> Vec<Value> {
    list["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == name)
        .flat_map(|s| s["processes"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            let g = p["generation"].as_i64();
            json!({
                "consumer": p["consumer"], "roles": p["roles"], "generation": g,
                "applied": g.is_some_and(|g| g >= generation),
            })
        })
        .collect()
}

async fn rotate(
    args: &ControlArgs,
    name: &str,
    step: Step,
    body: &Value,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let control = Control::new(args)?;
    let secret = control
        .change(
            reqwest::Method::POST,
            &format!("/api/v2/secrets/{}/rotate", encode(name)),
            Some(body),
        )
        .await?;
    let generation = secret["generation"].as_i64().unwrap_or(0);
    if !out.json {
        println!(
            "{name}: {} taken: phase {}, generation {generation}",
            step.as_str(),
            cell(&secret["phase"])
        );
        println!("waiting for every process to apply generation {generation}…");
    }
    let start = Instant::now();
    let mut announced: Vec<String> = Vec::new();
    let (all, procs) = loop {
        let list = control.get("/api/v2/secrets").await?;
        let procs = processes(&list, name, generation);
        if !out.json {
            for p in &procs {
                let c = cell(&p["consumer"]);
                if p["applied"] == true && !announced.contains(&c) {
                    eprintln!(
                        "  {} {c} ({}) after {:.1}s",
                        out.paint("applied", Tone::Good),
                        cell(&p["roles"]),
                        start.elapsed().as_secs_f64()
                    );
                    announced.push(c);
                }
            }
        }
        let all = procs.iter().all(|p| p["applied"] == true);
        if all || start.elapsed() >= timeout {
            break (all, procs);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if out.json {
        out.print_json(&json!({"secret": secret, "converged": all, "processes": procs}));
    } else if all {
        println!(
            "{}",
            out.paint(
                &format!(
                    "every process ({}) applied generation {generation}",
                    procs.len()
                ),
                Tone::Good
            )
        );
        let next = secret["next_step"].as_str().unwrap_or_default();
        if step != Step::Rollback && !next.is_empty() && next != "stage" {
            println!("next: muttdev secrets rotate {name} --step {next} --reason …");
        }
    } else {
        let lagging: Vec<String> = procs
            .iter()
            .filter(|p| p["applied"] != true)
            .map(|p| {
                format!(
                    "{} (generation {})",
                    cell(&p["consumer"]),
                    cell(&p["generation"])
                )
            })
            .collect();
        println!(
            "{}: {}",
            out.paint(
                &format!("not applied within {}s", timeout.as_secs()),
                Tone::Bad
            ),
            lagging.join(", ")
        );
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convergence_is_per_secret_and_generation() {
        let list = json!({"secrets": [
            {"name": "webhook_token", "processes": [
                {"consumer": "a", "roles": ["all"], "generation": 3},
                {"consumer": "b", "roles": ["forwarder"], "generation": 2},
                {"consumer": "c", "roles": ["ingest"], "generation": null},
            ]},
            {"name": "redis_password", "processes": [{"consumer": "a", "generation": 1}]},
        ]});
        let p = processes(&list, "webhook_token", 3);
        let applied: Vec<bool> = p.iter().map(|p| p["applied"] == true).collect();
        assert_eq!(applied, [true, false, false]);
        assert_eq!(processes(&list, "redis_password", 1).len(), 1);
    }

    #[test]
    fn values_come_from_a_file_or_a_variable() {
        let dir = std::env::temp_dir().join(format!("muttdev-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("v");
        std::fs::write(&f, "n3w\n").unwrap();
        assert_eq!(read_value(Some(&f), None).unwrap().as_deref(), Some("n3w"));
        std::fs::write(&f, "\n").unwrap();
        assert!(read_value(Some(&f), None).is_err());
        assert_eq!(read_value(None, None).unwrap(), None);
        assert!(read_value(None, Some("MUTTDEV_SURELY_UNSET_VARIABLE")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
