//! `muttdev`: drives a local MUTT stack (seed rules, send load, receive alerts, status).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mutt_devkit::{load, local, samples, sink};
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
    Load {
        /// Ingest base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API key.
        #[arg(long, env = "MUTT_API_KEY")]
        api_key: String,
        /// Events to send.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Events per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Offered rate, events per second (default: as fast as ingest answers).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Runs a whole stack on this machine under load and measures it (see BENCHMARKS.md).
    Bench {
        /// Events to send.
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Offered rate, events per second (default: as fast as ingest answers).
        #[arg(long)]
        rate: Option<f64>,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Events per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// One process per role (ingest, alerters, forwarder) instead of `mutt all`.
        #[arg(long)]
        split: bool,
        /// Alerter processes in split mode.
        #[arg(long, default_value_t = 1)]
        alerters: usize,
        /// Alerts per webhook request.
        #[arg(long, default_value_t = 50)]
        webhook_batch: usize,
        /// Redis.
        #[arg(long, env = "MUTT_REDIS_URL", default_value = local::DEFAULT_REDIS_URL)]
        redis_url: String,
        /// PostgreSQL server (a scratch database is created next to it).
        #[arg(long, default_value = local::DEFAULT_POSTGRES_SERVER_URL)]
        postgres_url: String,
        /// Extra settings for the processes, KEY=VALUE.
        #[arg(long = "set", value_parser = parse_kv)]
        extra: Vec<(String, String)>,
    },
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

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

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
        Command::Load {
            url,
            api_key,
            events,
            batch,
            concurrency,
            rate,
        } => {
            let plan = load::LoadPlan {
                url,
                api_key,
                events,
                batch,
                concurrency,
                rate,
            };
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
        Command::Bench {
            events,
            rate,
            concurrency,
            batch,
            split,
            alerters,
            webhook_batch,
            redis_url,
            postgres_url,
            extra,
        } => {
            let plan = mutt_devkit::bench::BenchPlan {
                events,
                rate,
                concurrency,
                batch,
                split,
                alerters,
                webhook_batch,
                redis_url,
                postgres_url,
                extra,
            };
            let report = mutt_devkit::bench::run(&plan).await?;
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
