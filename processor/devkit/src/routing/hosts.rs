//! `muttdev hosts list|add|rm` (`/api/v2/dev-hosts`) and `muttdev teams list|set|rm`
//! (`/api/v2/teams`).

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{Value, json};

use super::reason_query;
use crate::cli::{Control, ControlArgs, Output};
use crate::operate::{cell, encode};

/// `muttdev hosts …`.
#[derive(Debug, clap::Subcommand)]
pub enum HostsCommand {
    /// The development hosts (`--json`: `{"hosts": [{"hostname"}]}`).
    List {
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Makes a host a development host (exact name, case-insensitive).
    Add {
        /// The host name.
        hostname: String,
        /// Why (kept in the config audit trail).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Makes a development host a production host again.
    Rm {
        /// The host name.
        hostname: String,
        /// Why (kept in the config audit trail).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// `muttdev teams …`.
#[derive(Debug, clap::Subcommand)]
pub enum TeamsCommand {
    /// The device teams (`--json`: `{"teams": [{"hostname", "team_assignment"}]}`).
    List {
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Sets the team of a host's meta-alerts (adds the host or changes its team).
    Set {
        /// The host name.
        hostname: String,
        /// The team.
        team: String,
        /// Why (kept in the config audit trail).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Removes a host's team (its meta-alerts go to the default team).
    Rm {
        /// The host name.
        hostname: String,
        /// Why (kept in the config audit trail).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Runs a `hosts` command.
pub async fn run_hosts(c: HostsCommand) -> anyhow::Result<ExitCode> {
    match c {
        HostsCommand::List { control } => {
            let out = Output::new(control.json);
            let body = Control::new(&control)?.get("/api/v2/dev-hosts").await?;
            if out.json {
                out.print_json(&body);
            } else {
                let rows: Vec<Vec<String>> = body["hosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| vec![cell(&h["hostname"])])
                    .collect();
                if rows.is_empty() {
                    println!("no development hosts: every host gets prod_handling");
                } else {
                    out.table(&["hostname"], &rows);
                }
            }
        }
        HostsCommand::Add {
            hostname,
            reason,
            control,
        } => {
            let out = Output::new(control.json);
            let body = json!({"hostname": hostname, "reason": reason});
            let answer = Control::new(&control)?
                .change(Method::POST, "/api/v2/dev-hosts", Some(&body))
                .await?;
            done(&out, &answer, || {
                format!("{} is a development host", cell(&answer["hostname"]))
            });
        }
        HostsCommand::Rm {
            hostname,
            reason,
            control,
        } => {
            let said = format!("{hostname} is no longer a development host");
            remove("dev-hosts", &hostname, reason.as_deref(), &control, said).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `teams` command.
pub async fn run_teams(c: TeamsCommand) -> anyhow::Result<ExitCode> {
    match c {
        TeamsCommand::List { control } => {
            let out = Output::new(control.json);
            let body = Control::new(&control)?.get("/api/v2/teams").await?;
            if out.json {
                out.print_json(&body);
            } else {
                let rows: Vec<Vec<String>> = body["teams"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| vec![cell(&t["hostname"]), cell(&t["team_assignment"])])
                    .collect();
                if rows.is_empty() {
                    println!("no device teams: meta-alerts go to the default team");
                } else {
                    out.table(&["hostname", "team"], &rows);
                }
            }
        }
        TeamsCommand::Set {
            hostname,
            team,
            reason,
            control,
        } => {
            let out = Output::new(control.json);
            let api = Control::new(&control)?;
            // A change of an existing host's team, else a new one.
            let (status, answer) = api
                .call(
                    Method::PUT,
                    &format!("/api/v2/teams/{}", encode(&hostname)),
                    Some(&json!({"team_assignment": team, "reason": reason})),
                )
                .await?;
            let answer = if status == 404 {
                api.change(
                    Method::POST,
                    "/api/v2/teams",
                    Some(&json!({"hostname": hostname, "team_assignment": team, "reason": reason})),
                )
                .await?
            } else if (200..300).contains(&status) {
                answer
            } else {
                let message = answer["error"]["message"]
                    .as_str()
                    .map_or_else(|| answer.to_string(), str::to_string);
                anyhow::bail!("{status}: {message}");
            };
            done(&out, &answer, || {
                format!(
                    "meta-alerts of {} go to {}",
                    cell(&answer["hostname"]),
                    cell(&answer["team_assignment"])
                )
            });
        }
        TeamsCommand::Rm {
            hostname,
            reason,
            control,
        } => {
            let said = format!("{hostname} has no device team now");
            remove("teams", &hostname, reason.as_deref(), &control, said).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the API's answer (`--json`) or a sentence.
/// `DELETE /api/v2/<collection>/<hostname>?reason=…`, then what it did.
async fn remove(
    collection: &str,
    hostname: &str,
    reason: Option<&str>,
    control: &ControlArgs,
    said: String,
) -> anyhow::Result<()> {
    let path = format!(
        "/api/v2/{collection}/{}{}",
        encode(hostname),
        reason_query(reason)
    );
    let answer = Control::new(control)?
        .change(Method::DELETE, &path, None)
        .await?;
    done(&Output::new(control.json), &answer, || said);
    Ok(())
}

fn done(out: &Output, answer: &Value, sentence: impl FnOnce() -> String) {
    if out.json {
        out.print_json(answer);
    } else {
        println!("{}", sentence());
    }
}
