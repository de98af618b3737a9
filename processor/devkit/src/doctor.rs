//! `muttdev doctor`: checks of the servers, the database and the processes, each a row
//! with a verdict (`ok`, `warn`, `fail`), what was found and how to fix it. Exits 1 when
//! any check fails; `--json` prints the rows as `[{"check", "verdict", "detail", "fix"}]`.
//!
//! Redis: its version (6.2 for `XAUTOCLAIM`), persistence (a warning without AOF), the
//! eviction policy (`noeviction`, or streams are evicted), and what its ACL user may run
//! (`ACL DRYRUN`, Redis 7.0+). PostgreSQL: its version, the migrations of this build, the
//! monthly audit partitions ahead (`retention_partitions_ahead`), and the grants of
//! `mutt_app`. The webhook: reachable (`HEAD` only, never an event). The processes,
//! through the control API when it answers: their clocks against Redis `TIME` and the
//! settings version each applied. Redis and PostgreSQL are asked through the bus's and
//! the store's verbs; nothing is written anywhere.
//!
//! # Layout
//!
//! - `redis`: version, persistence, eviction policy, ACL rights.
//! - `postgres`: version, migrations, partitions ahead, the application role's grants.
//! - `webhook`: reachable, by `HEAD`.
//! - `processes`: clocks and settings of the processes, through the control API.

mod postgres;
mod processes;
mod redis;
#[cfg(test)]
mod tests;
mod webhook;

use postgres::*;
use processes::*;
use redis::*;
use webhook::*;

use std::process::ExitCode;
use std::time::Duration;

use mutt_bus::Bus;
use mutt_bus::server::{DryRun, ServerInfo};
use mutt_store::Store;
use mutt_store::health::{APP_ROLE, MigrationStatus, RoleGrants};
use mutt_store::retention::{Partition, Partitioned};
use serde::Serialize;
use serde_json::Value;
use time::{Date, OffsetDateTime};

use crate::cli::{Control, ControlArgs, Output, Tone};
use crate::local::DEFAULT_REDIS_URL;

/// MUTT's default database (the `MUTT_DATABASE_URL` default of every process).
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/mutt";

/// How long one server may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What `doctor` checks.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Redis, as the processes reach it.
    #[arg(long, env = "MUTT_REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    redis_url: String,
    /// PostgreSQL, as the processes reach it.
    #[arg(long, env = "MUTT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    database_url: String,
    /// The webhook alerts are POSTed to (checked with HEAD only).
    #[arg(long, env = "MUTT_WEBHOOK_URL", hide_env_values = true)]
    webhook_url: Option<String>,
    /// The deployment's Redis key prefix.
    #[arg(long, env = "MUTT_PREFIX", default_value = "mutt")]
    prefix: String,
    #[command(flatten)]
    control: ControlArgs,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// As it should be.
    Ok,
    /// Works, but worth fixing (or could not be checked).
    Warn,
    /// MUTT cannot work correctly like this.
    Fail,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty when there is nothing to fix).
    pub fix: String,
}

fn row(check: &str, verdict: Verdict, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check: check.into(),
        verdict,
        detail: detail.into(),
        fix: fix.into(),
    }
}

fn ok(check: &str, detail: impl Into<String>) -> Check {
    row(check, Verdict::Ok, detail, "")
}

/// Runs the checks and prints them.
pub async fn run(a: DoctorArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(a.control.json);
    let checks = checks(&a).await;
    if out.json {
        out.print_json(&serde_json::to_value(&checks)?);
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                let tone = match c.verdict {
                    Verdict::Ok => Tone::Good,
                    Verdict::Warn => Tone::Warn,
                    Verdict::Fail => Tone::Bad,
                };
                vec![
                    c.check.clone(),
                    out.paint(c.verdict.as_str(), tone),
                    c.detail.clone(),
                    c.fix.clone(),
                ]
            })
            .collect();
        out.table(&["check", "verdict", "detail", "fix"], &rows);
        let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
        let warned = checks.iter().filter(|c| c.verdict == Verdict::Warn).count();
        println!();
        println!(
            "{} checks: {} failed, {} warnings",
            checks.len(),
            failed,
            warned
        );
    }
    Ok(if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Every check, in order.
pub async fn checks(a: &DoctorArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    let control = control_view(&a.control).await;

    let bus = match tokio::time::timeout(TIMEOUT, Bus::connect(&a.redis_url, &a.prefix)).await {
        Ok(Ok(bus)) => Some(bus),
        Ok(Err(e)) => {
            checks.push(unreachable_redis(&a.redis_url, &e.to_string()));
            None
        }
        Err(_) => {
            checks.push(unreachable_redis(&a.redis_url, "no answer within 5 s"));
            None
        }
    };
    if let Some(bus) = &bus {
        redis_checks(bus, &a.redis_url, &mut checks).await;
    }

    match tokio::time::timeout(TIMEOUT, Store::connect(&a.database_url, 2)).await {
        Ok(Ok(store)) => {
            postgres_checks(&store, control.as_ref(), &mut checks).await;
            store.close().await;
        }
        Ok(Err(e)) => checks.push(unreachable_postgres(&a.database_url, &e.to_string())),
        Err(_) => checks.push(unreachable_postgres(
            &a.database_url,
            "no answer within 5 s",
        )),
    }

    checks.push(webhook_check(a.webhook_url.as_deref()).await);
    process_checks(bus.as_ref(), control.as_ref(), &a.control, &mut checks).await;
    checks
}
