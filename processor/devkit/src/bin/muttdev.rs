//! `muttdev`: one command to a running stack (`up`, `down`, `logs`), the operator's CLI over
//! the control API (`status`, `config`, `rules`, `dlq`, `keys`, `secrets`, `retention`),
//! `doctor`, and the developer's tools (seed, load, bench, sink, SLO rules). Exit codes: 0
//! all is well, 1 a problem was found (or the command failed), 2 a usage error.

use std::net::SocketAddr;
use std::time::Duration;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mutt_devkit::bench::{self, BenchPlan};
use mutt_devkit::{doctor, load, operate, routing, samples, sink, stack};
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
    /// Runs a webhook receiver that counts alerts by external_id (GET /stats), and can be
    /// told to fail or hang (PUT /behaviour).
    Sink {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Keep every payload, listed by GET /events (tests; memory grows with traffic).
        #[arg(long)]
        keep: bool,
    },
    /// Prints the Prometheus recording rules and burn-rate alerts of MUTT's SLOs
    /// (ops/prometheus/mutt-slo.rules.yml is this output).
    SloRules,
    /// Starts, stops and follows a local stack.
    #[command(flatten)]
    Stack(stack::Command),
    /// What the control API does, from the command line.
    #[command(flatten)]
    Operate(operate::Command),
    /// Rules, hosts and teams.
    #[command(flatten)]
    Routing(routing::Command),
    /// Checks the servers, the database and the processes, each with a verdict and a fix.
    Doctor(doctor::DoctorArgs),
    /// Prints a shell completion script (bash, zsh, fish).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Runs MUTT itself from this build (`muttdev mutt all` is `mutt all`): what `up`
    /// starts, so that one `cargo run` builds everything a stack needs.
    #[command(hide = true)]
    Mutt {
        /// `mutt`'s arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// mimalloc: under MUTT's many short-lived allocations (entries, JSON values, strings)
/// glibc's allocator took a third of the alerter's CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // clap exits 2 on a usage error by itself.
    let cli = Cli::parse();
    let result = match cli.command {
        // MUTT builds its own runtime.
        Command::Mutt { args } => {
            mutt::run(std::iter::once("mutt".into()).chain(args)).map(|()| ExitCode::SUCCESS)
        }
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(dispatch(command))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
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
        Command::Sink { listen, keep } => {
            let stop = CancellationToken::new();
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let s = sink::Sink::start(listener, keep, stop.clone())?;
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
        Command::Stack(c) => return stack::run(c).await,
        Command::Operate(c) => return operate::run(c).await,
        Command::Routing(c) => return routing::run(c).await,
        Command::Doctor(a) => return doctor::run(a).await,
        Command::Mutt { .. } => anyhow::bail!("muttdev mutt runs outside the runtime"),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "muttdev",
                &mut std::io::stdout(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
