//! `muttdev`: drives a local MUTT stack (seed rules, send load, receive alerts, status).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mutt_devkit::bench::{self, BenchPlan};
use mutt_devkit::{load, samples, sink};
use mutt_store::Store;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(version, about = "MUTT developer CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates and migrates the database, then adds the sample rules, development hosts
    /// and device teams (rules only when the table is empty).
    Seed {
        /// PostgreSQL URL.
        #[arg(
            long,
            env = "MUTT_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/mutt"
        )]
        database_url: String,
    },
    /// Posts sample events to ingest and reports the accepted rate.
    Load(load::LoadPlan),
    /// Runs a whole stack on this machine under load and measures it (see BENCHMARKS.md).
    Bench(BenchPlan),
    /// Runs a webhook receiver that counts alerts by external_id (GET /stats).
    Sink {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
    },
    /// Prints the Prometheus recording rules and burn-rate alerts of MUTT's SLOs
    /// (ops/prometheus/mutt-slo.rules.yml is this output).
    SloRules,
    /// Shows the health and readiness of a MUTT process.
    Status {
        /// The process's ops address.
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        ops: String,
    },
}

/// mimalloc: under MUTT's many short-lived allocations (entries, JSON values, strings)
/// glibc's allocator took a third of the alerter's CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Seed { database_url } => {
            Store::create_database_if_missing(&database_url).await?;
            let store = Store::connect(&database_url, 2).await?;
            store.migrate().await?;
            let seeded = samples::seed(&store).await?;
            if seeded.rules > 0 {
                println!("added {} sample rules", seeded.rules);
            } else {
                println!("rules exist already; left as they are");
            }
            println!("development hosts and device teams set");
        }
        Command::Load(plan) => {
            let r = load::run(&plan).await?;
            println!(
                "accepted {} rejected {} failed {} (shed requests {}) in {:.2}s: {:.0} events/s",
                r.accepted,
                r.rejected,
                r.failed,
                r.shed_requests,
                r.elapsed.as_secs_f64(),
                r.rate()
            );
            if r.shed_requests > 0 {
                println!(
                    "refusals (429/503) answered in p50 {:.1} ms, p99 {:.1} ms",
                    r.shed_percentile(0.5),
                    r.shed_percentile(0.99)
                );
            }
        }
        Command::Sink { listen } => {
            let stop = CancellationToken::new();
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let s = sink::Sink::start(listener, false, stop.clone())?;
            println!("webhook sink on {} (GET http://{}/stats)", s.url(), s.addr);
            let mut last = 0;
            // SIGTERM too: as a container's PID 1 the sink must stop on `docker stop`.
            let stopping = CancellationToken::new();
            mutt_worker::shutdown::on_signal(stopping.clone());
            loop {
                tokio::select! {
                    _ = stopping.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let unique = s.unique();
                if unique != last {
                    println!("alerts: {unique} unique, {} duplicates", s.duplicates());
                    last = unique;
                }
            }
            stop.cancel();
        }
        Command::Bench(plan) => {
            let report = bench::run(&plan).await?;
            println!("{}", report.render(&plan));
        }
        Command::SloRules => print!("{}", mutt_telemetry::slo::prometheus_rules()),
        Command::Status { ops } => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?;
            for path in ["health", "ready"] {
                let url = format!("{}/{path}", ops.trim_end_matches('/'));
                match client.get(&url).send().await {
                    Ok(r) => println!(
                        "{path}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ),
                    Err(e) => println!("{path}: unreachable ({e})"),
                }
            }
        }
    }
    Ok(())
}
