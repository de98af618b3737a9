//! `muttdev retention status|run`.
//!
//! `status` reads `GET /api/v2/retention`: whether it is on and how often it runs, the
//! policy, the last runs (of any control replica or `mutt retention`), the next scheduled
//! run and every partition with its row estimate; `--json` prints the API's document.
//!
//! `run` makes one pass by running `mutt retention [--dry-run] [--export DIR]` as a child
//! process with muttdev's environment: a pass needs the database credentials
//! (`MUTT_DATABASE_URL`, a member of `mutt_retention`), which the control API does not
//! give out. It is this muttdev's own build of MUTT (`muttdev mutt retention`), unless
//! `--mutt PATH` or `MUTT_BINARY` choose a `mutt` binary; its output is passed through and
//! its failure is muttdev's (exit 1).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use super::cell;
use crate::cli::{Control, ControlArgs, Output, Tone};

/// `muttdev retention …`.
#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// The policy, the last runs, the next run and the partitions.
    Status {
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// One retention pass now, by `mutt retention` with this environment (it needs the
    /// database credentials).
    Run {
        /// Report what a pass would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also write each archived month and removed set of dead letters to this
        /// directory first (gzip, with a SHA256SUMS manifest).
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// A settings file for mutt (`mutt --config FILE`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A mutt binary to run instead of this muttdev's own build of MUTT.
        #[arg(long, value_name = "PATH", env = "MUTT_BINARY")]
        mutt: Option<PathBuf>,
    },
}

/// Runs one `retention` command.
pub async fn run(c: RetentionCommand) -> anyhow::Result<ExitCode> {
    match c {
        RetentionCommand::Status { control } => status(&control).await,
        RetentionCommand::Run {
            dry_run,
            export,
            config,
            mutt,
        } => {
            // This muttdev's own MUTT (`muttdev mutt …`), unless a binary is given.
            let (bin, mut cmd) = match mutt {
                Some(b) => (b.clone(), tokio::process::Command::new(b)),
                None => {
                    let exe = std::env::current_exe()?;
                    let mut c = tokio::process::Command::new(&exe);
                    c.arg("mutt");
                    (exe, c)
                }
            };
            if let Some(c) = &config {
                cmd.arg("--config").arg(c);
            }
            cmd.arg("retention");
            if dry_run {
                cmd.arg("--dry-run");
            }
            if let Some(d) = &export {
                cmd.arg("--export").arg(d);
            }
            let status = cmd
                .status()
                .await
                .with_context(|| format!("running {} retention", bin.display()))?;
            if status.success() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: {} retention {status}", bin.display());
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// What a recorded run did, in a few words.
fn summary(report: &Value) -> String {
    let n = |k: &str| report[k].as_array().map_or(0, Vec::len);
    let letters: u64 = report["dead_letters_deleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p[1].as_u64())
        .sum();
    let mut parts = vec![
        format!("{} partitions created", n("partitions_created")),
        format!("{} months archived", n("archived")),
        format!("{} archived months dropped", n("archive_dropped")),
        format!(
            "{} config audit rows deleted",
            report["config_audits_deleted"].as_i64().unwrap_or(0)
        ),
        format!("{letters} parked letters removed"),
    ];
    if n("default_moved") > 0 {
        parts.push(format!(
            "{} months moved out of DEFAULT",
            n("default_moved")
        ));
    }
    if report["dry_run"] == true {
        parts.insert(0, "dry run".into());
    }
    parts.join(", ")
}

async fn status(args: &ControlArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let v = Control::new(args)?.get("/api/v2/retention").await?;
    if out.json {
        out.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    if v["enabled"] == true {
        println!(
            "retention: {}, every {}",
            out.paint("on", Tone::Good),
            cell(&v["interval"])
        );
    } else {
        println!(
            "retention: {} (MUTT_RETENTION_ENABLED)",
            out.paint("off", Tone::Warn)
        );
    }
    let p = &v["policy"];
    println!(
        "policy: event audit {} days, archive {} days, config audit {} days, parked letters {} days, {} partitions ahead",
        cell(&p["event_audit_days"]),
        cell(&p["archive_days"]),
        cell(&p["config_audit_days"]),
        cell(&p["parked_letter_days"]),
        cell(&p["partitions_ahead"]),
    );
    println!(
        "last run: {}; next run: {}",
        cell(&v["last_run_at"]),
        cell(&v["next_run_at"])
    );
    let runs: Vec<Vec<String>> = v["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                cell(&r["id"]),
                cell(&r["started_at"]),
                cell(&r["finished_at"]),
                cell(&r["run_by"]),
                summary(&r["report"]),
            ]
        })
        .collect();
    println!();
    if runs.is_empty() {
        println!("no runs recorded");
    } else {
        out.table(&["run", "started", "finished", "by", "what"], &runs);
    }
    let mut parts: Vec<Vec<String>> = Vec::new();
    for table in ["event_audit_log", "event_audit_log_archive"] {
        for p in v["partitions"][table].as_array().into_iter().flatten() {
            let rows = p["rows_estimate"].as_i64().unwrap_or(-1);
            parts.push(vec![
                table.to_string(),
                cell(&p["name"]),
                cell(&p["lo"]),
                cell(&p["hi"]),
                if rows < 0 {
                    "not analysed".into()
                } else {
                    rows.to_string()
                },
            ]);
        }
    }
    println!();
    if parts.is_empty() {
        println!("no partitions");
    } else {
        out.table(&["table", "partition", "from", "to", "rows (est.)"], &parts);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_summarised() {
        let r = serde_json::json!({
            "dry_run": false, "partitions_created": ["a", "b"], "default_moved": [],
            "archived": [{"year": 2026, "month": 1}], "archive_dropped": [],
            "config_audits_deleted": 7, "dead_letters_deleted": [["forwarder", 3], ["alerter", 1]],
        });
        assert_eq!(
            summary(&r),
            "2 partitions created, 1 months archived, 0 archived months dropped, 7 config audit rows deleted, 4 parked letters removed"
        );
    }
}
