//! Talking to the processes and reading back what they did: posting events, the control
//! API, metrics, streams and consumer groups, the webhook sink.

use std::time::Duration;

use anyhow::bail;
use mutt_devkit::sink::Sink;
use serde_json::Value;
use tokio::time::Instant;

use crate::env::TestEnv;

/// Posts a JSON body to ingest v2 with the test key.
pub async fn post_events(
    client: &reqwest::Client,
    ingest_url: &str,
    body: &Value,
) -> anyhow::Result<reqwest::Response> {
    Ok(client
        .post(format!("{ingest_url}/api/v2/ingest"))
        .header("x-api-key", "test-key")
        .json(body)
        .send()
        .await?)
}

/// Starts a webhook sink on a free port that keeps every payload.
pub async fn start_sink(stop: &tokio_util::sync::CancellationToken) -> anyhow::Result<Sink> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(Sink::start(l, true, stop.clone())?)
}

/// A rule that forwards every event (fault tests count alerts one to one with events).
pub fn forward_everything() -> mutt_core::rules::Rule {
    use mutt_core::rules::{MatchType, Rule};
    Rule {
        dev_handling: "Page_and_ticket".into(),
        ..Rule::new(
            MatchType::Regex,
            Some("."),
            None,
            1,
            "Page_and_ticket",
            "All",
        )
    }
}

/// Sends `n` sample events (with `seq` 0..n) in batches, retrying a batch until ingest
/// accepts it (503s and refused connections during an outage are expected). `pace`
/// spaces the batches. Returns the sequence numbers accepted (all of them, unless the
/// deadline passed).
pub async fn send_all(
    ingest_urls: Vec<String>,
    n: u64,
    batch: usize,
    pace: Duration,
    deadline: Duration,
) -> std::collections::HashSet<u64> {
    let events = mutt_devkit::load::build_events(n);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let end = Instant::now() + deadline;
    let mut accepted = std::collections::HashSet::new();
    for (i, chunk) in events.chunks(batch).enumerate() {
        loop {
            if Instant::now() > end {
                return accepted;
            }
            let url = &ingest_urls[i % ingest_urls.len()];
            match post_events(&client, url, &Value::Array(chunk.to_vec())).await {
                Ok(r) if r.status() == 202 => {
                    accepted.extend(chunk.iter().filter_map(|e| e["seq"].as_u64()));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    accepted
}

/// A control API client with a key.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// A client for the control API at `base` with `key`.
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        }
    }

    /// Sends `method path` with an optional JSON body; returns (status, body, headers).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value, reqwest::header::HeaderMap)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", &self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body, headers))
    }

    /// GET, expecting 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body, _) = self.call("GET", path, None).await?;
        if status != 200 {
            bail!("GET {path}: {status} {body}");
        }
        Ok(body)
    }
}

/// The `seq` of every event whose alert the sink received.
pub fn delivered_seqs(sink: &Sink) -> std::collections::HashSet<u64> {
    sink.seen()
        .events
        .iter()
        .filter_map(|e| e["custom_info"]["seq"].as_u64())
        .collect()
}

/// The sum of a metric's samples (all label sets) on a process's `/metrics`.
pub async fn metric(ops_url: &str, name: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("{ops_url}/metrics")).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A stream entry as read back by a test: its id and its fields.
pub type RawEntry = (String, std::collections::HashMap<String, Vec<u8>>);

/// Entries in a stream of the test's prefix (`dlq:alerter`, `events`, …), as (id, fields).
pub async fn read_stream(env: &TestEnv, name: &str) -> anyhow::Result<Vec<RawEntry>> {
    let mut r = env.redis().await?;
    type Fields = Vec<(String, Vec<u8>)>;
    let v: Vec<(String, Fields)> = redis::cmd("XRANGE")
        .arg(format!("{}:{name}", env.prefix))
        .arg("-")
        .arg("+")
        .query_async(&mut r)
        .await?;
    Ok(v.into_iter()
        .map(|(id, f)| (id, f.into_iter().collect()))
        .collect())
}

/// Waits (up to 30 s) until the DLQ of `group` holds exactly `n` dead letters.
pub async fn wait_for_dead_letters(env: &TestEnv, group: &str, n: usize) -> anyhow::Result<()> {
    let stream = format!("dlq:{group}");
    crate::wait::wait_until(
        &format!("{n} dead letters in {stream}"),
        Duration::from_secs(30),
        || async { (read_stream(env, &stream).await.ok()?.len() == n).then_some(()) },
    )
    .await
}
