//! `muttdev bench`: a whole stack on this machine under a load generator, measured.
//!
//! It creates a scratch database and key prefix, seeds the sample rule set (about one
//! event in eight forwarded), starts the `mutt` processes next to `muttdev`, a webhook sink
//! that records each alert's ingest-to-webhook latency, and offers the sample events at
//! the given rate. It reports the accepted rate, the processed rate (until every group has
//! nothing left and every alert arrived), latency percentiles, each process's peak RSS,
//! and — in the same run — the raw ceiling of Redis for the same work without MUTT.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use mutt_bus::Bus;
use mutt_store::Store;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::local::{try_free_port, with_database};
use super::{load, samples, sink};

/// What to run (the arguments of `muttdev bench`).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchPlan {
    /// Events to send.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Offered rate, events per second (default: as fast as ingest answers).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Events per request.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// One process per role (ingest, alerters, forwarder) instead of `mutt all`.
    #[arg(long)]
    pub split: bool,
    /// Alerter processes in split mode.
    #[arg(long, default_value_t = 1)]
    pub alerters: usize,
    /// Alerts per webhook request.
    #[arg(long, default_value_t = 50)]
    pub webhook_batch: usize,
    /// Redis.
    #[arg(long, env = "MUTT_REDIS_URL", default_value = super::local::DEFAULT_REDIS_URL)]
    pub redis_url: String,
    /// PostgreSQL server (a scratch database is created next to it).
    #[arg(long, default_value = super::local::DEFAULT_POSTGRES_SERVER_URL)]
    pub postgres_url: String,
    /// Extra settings for the processes, KEY=VALUE.
    #[arg(long = "set", value_parser = parse_kv)]
    pub extra: Vec<(String, String)>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Events accepted by ingest.
    pub accepted: u64,
    /// Accepted events per second (load phase).
    pub accepted_per_s: f64,
    /// Events per second from the first request until the groups were empty and every
    /// alert had arrived.
    pub processed_per_s: f64,
    /// Events per second from the first request until the alerter group had nothing left
    /// (every event evaluated, audited and its alert appended).
    pub alerted_per_s: f64,
    /// Alerts delivered.
    pub alerts: u64,
    /// Ingest-to-webhook latency percentiles, ms.
    pub p50_ms: u32,
    /// p99.
    pub p99_ms: u32,
    /// p99.9.
    pub p999_ms: u32,
    /// Peak RSS per process, MB.
    pub rss_mb: Vec<(String, f64)>,
    /// CPU time per accepted event during the run, µs, per process (and `redis`, and
    /// `muttdev` — the load generator and webhook sink).
    pub cpu_us_per_event: Vec<(String, f64)>,
    /// Raw Redis: appends per second of entries of the same size.
    pub raw_append_per_s: f64,
    /// Raw Redis: relays (read through a group, append, acknowledge) per second.
    pub raw_relay_per_s: f64,
    /// Encoded event size used for the raw runs, bytes.
    pub payload_bytes: usize,
}

impl BenchReport {
    /// A human report.
    pub fn render(&self, plan: &BenchPlan) -> String {
        let rss: Vec<String> = self
            .rss_mb
            .iter()
            .map(|(r, m)| format!("{r} {m:.0} MB"))
            .collect();
        let cpu: Vec<String> = self
            .cpu_us_per_event
            .iter()
            .map(|(r, us)| format!("{r} {us:.1}"))
            .collect();
        format!(
            "events {} (offered {}), accepted {}\n\
             accepted        {:>10.0} events/s\n\
             through alerter {:>10.0} events/s  (ingest → alerter → audit, until the events group is drained)\n\
             processed       {:>10.0} events/s  (ingest → alerter → audit → forwarder → webhook, until lag 0)\n\
             alerts          {:>10}\n\
             latency         p50 {} ms, p99 {} ms, p99.9 {} ms (ingest accepted → webhook received)\n\
             peak RSS        {}\n\
             CPU µs/event    {}\n\
             raw redis       append {:.0}/s, relay {:.0}/s ({} B entries)\n\
             ratio           accepted/append {:.2}, processed/relay {:.2}",
            plan.events,
            plan.rate
                .map_or_else(|| "unlimited".to_string(), |r| format!("{r:.0}/s")),
            self.accepted,
            self.accepted_per_s,
            self.alerted_per_s,
            self.processed_per_s,
            self.alerts,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            rss.join(", "),
            cpu.join(", "),
            self.raw_append_per_s,
            self.raw_relay_per_s,
            self.payload_bytes,
            self.accepted_per_s / self.raw_append_per_s.max(1.0),
            self.processed_per_s / self.raw_relay_per_s.max(1.0),
        )
    }
}

struct Proc {
    role: String,
    child: Child,
    ops: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds a process has used (user + system, all threads).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th
    // fields overall, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Runs the benchmark.
pub async fn run(plan: &BenchPlan) -> anyhow::Result<BenchReport> {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let prefix = format!("bench-{id}");
    let db_name = format!("mutt_bench_{id}");
    let db_url = with_database(&plan.postgres_url, &db_name);
    Store::create_database_if_missing(&db_url).await?;
    let store = Store::connect(&db_url, 2).await?;
    store.migrate().await?;
    samples::seed(&store).await?;
    store.close().await;

    let stop = CancellationToken::new();
    let webhook = sink::Sink::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        false,
        stop.clone(),
    )?;
    webhook.record_latencies();
    let bin = std::env::current_exe()?
        .parent()
        .context("muttdev has no directory")?
        .join("mutt");
    if !bin.exists() {
        bail!("{} is missing: cargo build --release --bins", bin.display());
    }
    let key = format!("bench-{id}");
    let ingest_port = try_free_port()?;
    let roles: Vec<String> = if plan.split {
        let mut r = vec!["ingest".to_string()];
        r.extend((0..plan.alerters.max(1)).map(|_| "alerter".to_string()));
        r.push("forwarder".into());
        r
    } else {
        vec!["all".into()]
    };
    let mut procs = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        let ops = try_free_port()?;
        let mut cmd = Command::new(&bin);
        cmd.arg(role)
            .env("MUTT_REDIS_URL", &plan.redis_url)
            .env("MUTT_DATABASE_URL", &db_url)
            .env("MUTT_PREFIX", &prefix)
            .env("MUTT_API_KEY", &key)
            .env("MUTT_WEBHOOK_URL", webhook.url())
            .env("MUTT_WEBHOOK_BATCH", plan.webhook_batch.to_string())
            .env("MUTT_INGEST_LISTEN", format!("127.0.0.1:{ingest_port}"))
            .env("MUTT_OPS_LISTEN", format!("127.0.0.1:{ops}"))
            .env(
                "MUTT_CONTROL_LISTEN",
                format!("127.0.0.1:{}", try_free_port()?),
            )
            .env("MUTT_CONSUMER", format!("{role}-{i}"))
            .env("MUTT_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &plan.extra {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting mutt {role}"))?;
        procs.push(Proc {
            role: role.clone(),
            child,
            ops: format!("http://127.0.0.1:{ops}"),
        });
    }
    let client = reqwest::Client::new();
    for p in &procs {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client
                .get(format!("{}/ready", p.ops))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("mutt {} did not become ready", p.role);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Peak RSS, sampled every 100 ms.
    let pids: Vec<(String, u32)> = procs
        .iter()
        .map(|p| (p.role.clone(), p.child.id()))
        .collect();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pids, sampling) = (pids.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut peak = vec![0u64; pids.len()];
            while sampling.load(Ordering::Relaxed) {
                for (i, (_, pid)) in pids.iter().enumerate() {
                    peak[i] = peak[i].max(rss_kb(*pid));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };

    let bus = Bus::connect(&plan.redis_url, &prefix).await?;
    let cpu_now = |bus: &Bus| {
        let pids = pids.clone();
        let bus = bus.clone();
        async move {
            let mut v: Vec<(String, f64)> = pids
                .iter()
                .map(|(r, pid)| (r.clone(), cpu_seconds(&pid.to_string())))
                .collect();
            v.push((
                "redis".into(),
                bus.server_cpu_seconds().await.unwrap_or(0.0),
            ));
            v.push(("muttdev".into(), cpu_seconds("self")));
            v
        }
    };
    let load_plan = load::LoadPlan {
        url: format!("http://127.0.0.1:{ingest_port}"),
        api_key: key.clone(),
        events: plan.events,
        batch: plan.batch,
        concurrency: plan.concurrency,
        rate: plan.rate,
    };
    let bodies = load::prepare(&load_plan);
    let cpu_before = cpu_now(&bus).await;
    let started = Instant::now();
    let load = load::send(&load_plan, &bodies).await?;
    drop(bodies);
    // Done when no group has anything undelivered or unacknowledged and the webhook has
    // stopped receiving.
    let (events, alerts) = (bus.names().events(), bus.names().alerts());
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = (0usize, Instant::now());
    let mut alerted: Option<Instant> = None;
    let finished = loop {
        let idle = |s: Vec<mutt_bus::trim::GroupStats>| {
            !s.is_empty() && s.iter().all(|g| g.pending == 0 && g.lag == Some(0))
        };
        let events_idle = idle(bus.group_stats(&events).await?);
        if events_idle && alerted.is_none() {
            alerted = Some(Instant::now());
        }
        let quiet = events_idle && idle(bus.group_stats(&alerts).await?);
        let unique = webhook.unique();
        if unique != last.0 {
            last = (unique, Instant::now());
        }
        if quiet && last.1.elapsed() > Duration::from_millis(300) {
            break last.1;
        }
        if Instant::now() > deadline {
            bail!("the stack did not drain within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let processed_s = (finished - started).as_secs_f64();
    let cpu_after = cpu_now(&bus).await;
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await.unwrap_or_default();
    let mut lat = webhook.seen().latencies_ms.clone();
    lat.sort_unstable();
    let alerts_delivered = webhook.unique() as u64;
    drop(procs);
    stop.cancel();

    // The raw ceiling, with entries of the size MUTT writes.
    let sample = load::build_events(1).remove(0);
    let ev = mutt_core::event::validate(
        sample,
        mutt_core::event::Envelope {
            id: uuid::Uuid::now_v7().to_string(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
            received_at_ms: mutt_core::now_ms(),
        },
        &mutt_core::event::Limits::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = mutt_core::codec::encode_event(&ev)?;
    let raw_in = format!("{prefix}:raw-in");
    let raw_out = format!("{prefix}:raw-out");
    let n = plan.events as usize;
    let append = crate::relay::append(&bus, &raw_in, n, &payload, plan.batch).await?;
    let (relayed, relay) = crate::relay::relay(&bus, &raw_in, &raw_out, plan.batch).await?;
    bus.delete_keys(&[raw_in, raw_out]).await?;
    bus.delete_prefix().await?;
    drop_database(&plan.postgres_url, &db_name).await;

    Ok(BenchReport {
        accepted: load.accepted,
        accepted_per_s: load.rate(),
        processed_per_s: load.accepted as f64 / processed_s.max(1e-9),
        alerted_per_s: load.accepted as f64
            / alerted
                .map_or(processed_s, |t| (t - started).as_secs_f64())
                .max(1e-9),
        alerts: alerts_delivered,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        p999_ms: percentile(&lat, 0.999),
        rss_mb: pids
            .iter()
            .zip(peak)
            .map(|((r, _), kb)| (r.clone(), kb as f64 / 1024.0))
            .collect(),
        cpu_us_per_event: cpu_before
            .iter()
            .zip(&cpu_after)
            .map(|((r, a), (_, b))| (r.clone(), (b - a) * 1e6 / load.accepted.max(1) as f64))
            .collect(),
        raw_append_per_s: n as f64 / append.as_secs_f64().max(1e-9),
        raw_relay_per_s: relayed as f64 / relay.as_secs_f64().max(1e-9),
        payload_bytes: payload.len(),
    })
}

async fn drop_database(server: &str, name: &str) {
    if let Ok(admin) = Store::connect(server, 1).await {
        let _ = admin.drop_database(name).await;
        admin.close().await;
    }
}
