//! `mutt`: one binary, one subcommand per role. [`run`] parses the command line and the
//! settings, starts telemetry, and wires the roles (`app`); each role is a crate of its own.
//! A library so that `muttdev up` runs the very same MUTT from its own build
//! (`muttdev mutt …`), with nothing else to build.
//!
//! # Layout
//!
//! - `app`: connecting to the dependencies, starting the roles and the process's control
//!   link and ops listener, draining on shutdown.
//! - `upgrade`: `mutt migrate --from-v2-queues`, what MUTT v2 left in its Redis lists moved
//!   into the streams.

mod app;
mod upgrade;

use std::path::PathBuf;

use anyhow::Context;
use app::Role;
use clap::{Parser, Subcommand};
use mutt_core::settings::{LogFormat, Settings, Sources};
use mutt_telemetry::otel::OtelSettings;
use tokio_util::sync::CancellationToken;

/// MUTT: routes syslog, SNMP traps and webhook events into audited alerts, on Redis Streams.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML file with settings (keys: the environment names without MUTT_, in lower
    /// case). The environment wins over the file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The ingest HTTP API.
    Ingest,
    /// The rule engine: events in, audit rows and alerts out.
    Alerter,
    /// Sends alerts to the webhook.
    Forwarder,
    /// The control-plane API: rules, settings, audit, dead letters, keys.
    Control,
    /// Every long-running role in one process; creates and migrates the database first.
    All,
    /// Creates the database if needed and applies the migrations in sql/ (a MUTT v2.x
    /// database is upgraded in place).
    Migrate {
        /// Then move what MUTT v2 left in its Redis lists (queues, in-flight lists, dead
        /// letters) into the streams, and report the counts. Stop every v2 process first.
        #[arg(long)]
        from_v2_queues: bool,
        /// The key prefix of MUTT v2's lists.
        #[arg(long, value_name = "PREFIX", default_value = "mutt", requires = "from_v2_queues", value_parser = non_empty)]
        v2_prefix: String,
    },
    /// One data-retention pass, then exit: partitions ahead, whole months of event audit
    /// into the archive, old archive, config audit and parked dead letters removed.
    Retention {
        /// Report what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also write each archived month and each removed set of dead letters to this
        /// directory (gzip, with a SHA256SUMS manifest) before removing them.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
}

/// A flag value that must not be empty.
fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// Runs `mutt` with these arguments (the first is the program's name), to its end.
pub fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let text = match &cli.config {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("--config {}", p.display()))?)
        }
        None => None,
    };
    let path = cli.config.as_ref().map(|p| p.display().to_string());
    let file = match (&path, &text) {
        (Some(p), Some(t)) => Some((p.as_str(), t.as_str())),
        _ => None,
    };
    // The default consumer name is the host name and pid; HOSTNAME is not always exported.
    let env = |k: &str| {
        std::env::var(k).ok().or_else(|| {
            (k == "HOSTNAME").then(|| gethostname::gethostname().to_string_lossy().into_owned())
        })
    };
    let settings = Sources::new(env, file)
        .and_then(|s| Settings::load(&s))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Inside the runtime: the gRPC span exporter needs one.
        let service = match &cli.command {
            Command::Ingest => "mutt-ingest",
            Command::Alerter => "mutt-alerter",
            Command::Forwarder => "mutt-forwarder",
            Command::Control => "mutt-control",
            Command::All | Command::Migrate { .. } => "mutt",
            Command::Retention { .. } => "mutt-retention",
        };
        let otel = settings
            .otel_endpoint
            .as_ref()
            .map(|endpoint| OtelSettings {
                endpoint: endpoint.clone(),
                http: settings.otel_http,
                service_name: settings
                    .otel_service_name
                    .clone()
                    .unwrap_or_else(|| service.to_string()),
                instance_id: settings.consumer.clone(),
                sample_ratio: settings.trace_sample_ratio,
            });
        let telemetry = mutt_telemetry::init(
            &settings.hot.log_level,
            settings.log_format == LogFormat::Json,
            otel.as_ref(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let log = telemetry.log.clone();
        let shutdown = CancellationToken::new();
        mutt_worker::shutdown::on_signal(shutdown.clone());
        let r = match cli.command {
            Command::Migrate {
                from_v2_queues,
                v2_prefix,
            } => match app::migrate(&settings).await {
                Ok(()) if from_v2_queues => upgrade::move_v2_queues(&settings, &v2_prefix).await,
                r => r,
            },
            Command::Retention { dry_run, export } => {
                let opts = mutt_control::retention::Options { dry_run, export };
                app::retention(&settings, opts).await
            }
            Command::Ingest => app::run(&[Role::Ingest], settings, false, log, shutdown).await,
            Command::Alerter => app::run(&[Role::Alerter], settings, false, log, shutdown).await,
            Command::Forwarder => {
                app::run(&[Role::Forwarder], settings, false, log, shutdown).await
            }
            Command::Control => app::run(&[Role::Control], settings, false, log, shutdown).await,
            Command::All => app::run(app::ALL, settings, true, log, shutdown).await,
        };
        if let Err(e) = &r {
            tracing::error!(error = %format!("{e:#}"), "mutt failed");
        }
        telemetry.shutdown();
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrate(args: &[&str]) -> Result<(bool, String), clap::Error> {
        let cli = Cli::try_parse_from(["mutt", "migrate"].iter().chain(args))?;
        match cli.command {
            Command::Migrate {
                from_v2_queues,
                v2_prefix,
            } => Ok((from_v2_queues, v2_prefix)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn migrate_flags() {
        assert_eq!(migrate(&[]).unwrap(), (false, "mutt".into()));
        assert_eq!(
            migrate(&["--from-v2-queues"]).unwrap(),
            (true, "mutt".into())
        );
        assert_eq!(
            migrate(&["--from-v2-queues", "--v2-prefix", "old"]).unwrap(),
            (true, "old".into())
        );
        // The prefix alone would do nothing: refused, as is an empty one.
        assert!(migrate(&["--v2-prefix", "old"]).is_err());
        assert!(migrate(&["--from-v2-queues", "--v2-prefix", ""]).is_err());
    }
}
