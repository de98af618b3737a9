//! A load generator: posts sample events to ingest in batches, at a given concurrency and
//! (optionally) rate, and reports what was accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

/// What to send (the arguments of `muttdev load`).
#[derive(Debug, Clone, clap::Args)]
pub struct LoadPlan {
    /// Ingest base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key.
    #[arg(long, env = "MUTT_API_KEY")]
    pub api_key: String,
    /// Events to send.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Events per request.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Offered rate, events per second (default: as fast as ingest answers).
    #[arg(long)]
    pub rate: Option<f64>,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Events accepted (202).
    pub accepted: u64,
    /// Events refused by validation.
    pub rejected: u64,
    /// Events whose request failed (429/503/transport), not retried.
    pub failed: u64,
    /// Requests answered 429 or 503.
    pub shed_requests: u64,
    /// How long each 429/503 answer took, in ms, sorted: refusing must stay cheap however
    /// hard clients push (a figure for benchmarks, not an assertion of the tests).
    pub shed_ms: Vec<f64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Accepted events per second.
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th fraction (0–1) of the refusal times, in ms (0 without refusals).
    pub fn shed_percentile(&self, p: f64) -> f64 {
        let n = self.shed_ms.len();
        if n == 0 {
            return 0.0;
        }
        self.shed_ms[((n as f64 * p) as usize).min(n - 1)]
    }
}

/// Builds `n` events from the samples, each stamped with the current time and a sequence
/// number (`seq`), so that every event is distinct and lands in the current partition.
pub fn build_events(n: u64) -> Vec<Value> {
    let samples = super::samples::all_events();
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    (0..n)
        .map(|i| {
            let mut e = samples[(i as usize) % samples.len()].clone();
            if let Value::Object(m) = &mut e {
                m.insert("timestamp".into(), Value::String(now.clone()));
                m.insert("seq".into(), Value::from(i));
            }
            e
        })
        .collect()
}

/// Request bodies built ahead, so that building them is not part of what is measured.
#[derive(Debug, Clone)]
pub struct Prepared {
    bodies: Arc<Vec<bytes::Bytes>>,
    sizes: Arc<Vec<u64>>,
}

/// Builds the request bodies of a plan.
pub fn prepare(plan: &LoadPlan) -> Prepared {
    let events = build_events(plan.events);
    let chunks = events.chunks(plan.batch.max(1));
    Prepared {
        bodies: Arc::new(
            chunks
                .clone()
                .map(|c| bytes::Bytes::from(serde_json::to_vec(c).unwrap_or_default()))
                .collect(),
        ),
        sizes: Arc::new(chunks.map(|c| c.len() as u64).collect()),
    }
}

/// Posts `plan.events` events and waits for every answer.
pub async fn run(plan: &LoadPlan) -> anyhow::Result<LoadReport> {
    send(plan, &prepare(plan)).await
}

/// Posts prepared bodies and waits for every answer.
pub async fn send(plan: &LoadPlan, prepared: &Prepared) -> anyhow::Result<LoadReport> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let bodies = prepared.bodies.clone();
    let sizes = prepared.sizes.clone();
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let shed = Arc::new(AtomicU64::new(0));
    let shed_ms = Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = format!("{}/api/v2/ingest", plan.url.trim_end_matches('/'));
    let start = Instant::now();
    // Progress and the live rate on stderr, when it is a terminal.
    let total: u64 = sizes.iter().sum();
    let bar = crate::cli::progress(total, "events");
    let ticker = {
        let (bar, accepted, rejected, failed) = (
            bar.clone(),
            accepted.clone(),
            rejected.clone(),
            failed.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let a = accepted.load(Ordering::Relaxed);
                let done = a + rejected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
                bar.set_position(done);
                let secs = start.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!("{:.0} events/s accepted", a as f64 / secs));
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (client, bodies, next, url, key) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            url.clone(),
            plan.api_key.clone(),
        );
        let (accepted, rejected, failed, shed, shed_ms, sizes) = (
            accepted.clone(),
            rejected.clone(),
            failed.clone(),
            shed.clone(),
            shed_ms.clone(),
            sizes.clone(),
        );
        let rate = plan.rate;
        let batch = plan.batch.max(1) as f64;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= bodies.len() {
                    return;
                }
                if let Some(r) = rate {
                    // Request i is due when i·batch events have been offered at rate r.
                    let due = start + Duration::from_secs_f64(i as f64 * batch / r);
                    tokio::time::sleep_until(due).await;
                }
                let sent = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-api-key", &key)
                    .body(bodies[i].clone())
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        accepted.fetch_add(v["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        rejected.fetch_add(v["rejected"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    }
                    Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {
                        let ms = sent.elapsed().as_secs_f64() * 1000.0;
                        if let Ok(mut v) = shed_ms.lock() {
                            v.push(ms);
                        }
                        shed.fetch_add(1, Ordering::Relaxed);
                        failed.fetch_add(sizes[i], Ordering::Relaxed);
                    }
                    Ok(r) if r.status().as_u16() == 400 => {
                        rejected.fetch_add(sizes[i], Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(sizes[i], Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    ticker.abort();
    bar.finish_and_clear();
    let mut shed_ms = match shed_ms.lock() {
        Ok(v) => v.clone(),
        Err(p) => p.into_inner().clone(),
    };
    shed_ms.sort_by(f64::total_cmp);
    Ok(LoadReport {
        shed_ms,
        accepted: accepted.load(Ordering::Relaxed),
        rejected: rejected.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        shed_requests: shed.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    })
}
