//! Overload: far more than MUTT may take is offered; what is refused is refused quickly
//! with 429/503 and `Retry-After`, what is accepted is all processed, memory stays bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_the_rate_limit_is_refused_quickly_and_what_is_accepted_arrives()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink = Sink::start(listener, false, stop.clone())?;
    env.migrate().await?;
    env.insert_rules(&[forward_everything()]).await?;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_INGEST_RATE_LIMIT", "2000")
            .set("MUTT_WEBHOOK_BATCH", "50"),
    )
    .await?;
    // 8 senders, 100 events a request, as fast as answers come, for 4 seconds.
    let events = Arc::new(mutt::muttdev::load::build_events(100));
    let (accepted, limited, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let refusal_ms = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let end = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (events, accepted, limited, other, refusal_ms, url) = (
            events.clone(),
            accepted.clone(),
            limited.clone(),
            other.clone(),
            refusal_ms.clone(),
            all.ingest_url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            while Instant::now() < end {
                let t = Instant::now();
                let r = post_events(&c, &url, &Value::Array(events.to_vec())).await;
                let took = t.elapsed().as_secs_f64() * 1000.0;
                match r {
                    Ok(r) if r.status() == 202 => {
                        let b: Value = r.json().await.unwrap_or_default();
                        accepted.fetch_add(b["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    }
                    Ok(r) if r.status() == 429 => {
                        assert!(
                            r.headers().contains_key("retry-after"),
                            "429 without Retry-After"
                        );
                        limited.fetch_add(1, Ordering::Relaxed);
                        refusal_ms.lock().unwrap().push(took);
                    }
                    _ => {
                        other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut peak_kb = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        peak_kb = peak_kb.max(rss_kb(all.pid(), "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.await?;
    }
    let accepted = accepted.load(Ordering::Relaxed);
    let limited = limited.load(Ordering::Relaxed);
    let mut ms = refusal_ms.lock().unwrap().clone();
    ms.sort_by(f64::total_cmp);
    let p99 = ms.get(ms.len() * 99 / 100).copied().unwrap_or(0.0);
    eprintln!(
        "overload: accepted {accepted} events, {limited} requests refused (p99 {p99:.1} ms), {} other answers, peak RSS {} MB",
        other.load(Ordering::Relaxed),
        peak_kb / 1024
    );
    // 4 s at 2,000 events/s plus one second of burst, give or take a request in flight.
    assert!(accepted <= 10_000 + 800, "{accepted} accepted");
    assert!(accepted >= 6_000, "{accepted} accepted");
    assert!(limited > 50, "{limited}");
    assert_eq!(other.load(Ordering::Relaxed), 0);
    assert!(p99 < 50.0, "refusals p99 {p99} ms");
    assert!(peak_kb < 200 * 1024, "peak RSS {peak_kb} kB");
    assert!(metric(&all.ops_url, "mutt_ingest_shed_events_total").await >= (limited * 100) as f64);
    // Everything accepted is processed.
    wait_until(
        "every accepted event delivered",
        Duration::from_secs(60),
        || async { (sink.unique() as u64 >= accepted).then_some(()) },
    )
    .await?;
    assert_eq!(sink.unique() as u64, accepted);
    drop(all);
    stop.cancel();
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_pipeline_sheds_low_severity_first_then_everything_then_recovers()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    env.insert_rules(&[forward_everything()]).await?;
    // Ingest alone: nothing drains the stream, so the lag grows with every event.
    let ingest = Mutt::start(
        &env,
        &MuttConfig::new("ingest")
            .set("MUTT_INGEST_SHED_LOW_SEVERITY_LAG", "500")
            .set("MUTT_INGEST_MAX_LAG", "1000"),
    )
    .await?;
    let c = reqwest::Client::new();
    // Every 202 counts, including those of the polls below that came too early.
    let counted = AtomicU64::new(0);
    let post = |body: Value| {
        let (c, url, counted) = (&c, &ingest.ingest_url, &counted);
        async move {
            let r = post_events(c, url, &body).await.ok()?;
            let status = r.status().as_u16();
            let retry = r.headers().contains_key("retry-after");
            let b: Value = r.json().await.unwrap_or_default();
            counted.fetch_add(b["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            Some((status, retry, b))
        }
    };
    let ev = |sev: &str, n: usize| json!({"hostname": "h", "message": format!("event {n}"), "timestamp": "2026-11-26T10:00:00Z", "syslog_severity": sev, "n": n});
    let batch: Vec<Value> = (0..600).map(|n| ev("warning", n)).collect();
    assert_eq!(post(json!(batch)).await.map(|r| r.0), Some(202));
    // Past 500: informational and debug events are refused, critical ones taken.
    let mixed = json!([
        ev("informational", 1000),
        ev("critical", 1001),
        ev("debug", 1002),
        ev("warning", 1003)
    ]);
    let body = wait_until("low-severity shedding", Duration::from_secs(5), || async {
        let (_, retry, b) = post(mixed.clone()).await?;
        (b["rejected"] == 2 && retry).then_some(b)
    })
    .await?;
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["shed", "shed"]);
    assert_eq!(body["accepted"], 2);
    // Past 1,000: everything is refused before its body is read.
    let more: Vec<Value> = (2000..2500).map(|n| ev("error", n)).collect();
    assert_eq!(post(json!(more)).await.map(|r| r.0), Some(202));
    let (_, retry, b) = wait_until("admission refuses", Duration::from_secs(5), || async {
        post(json!([ev("critical", 9999)]))
            .await
            .filter(|r| r.0 == 503)
    })
    .await?;
    assert!(retry);
    assert_eq!(b["error"]["code"], "overloaded");
    // Workers start: the lag drains, ingest accepts again, and all that was accepted arrives.
    let workers = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    wait_until(
        "ingest accepting again",
        Duration::from_secs(30),
        || async {
            post(json!([ev("informational", 7777)]))
                .await
                .filter(|r| r.0 == 202)
                .map(|_| ())
        },
    )
    .await?;
    let accepted = counted.load(Ordering::Relaxed);
    wait_until(
        "every accepted event delivered",
        Duration::from_secs(30),
        || async { (sink.unique() as u64 >= accepted).then_some(()) },
    )
    .await?;
    assert_eq!(sink.unique() as u64, accepted);
    assert!(metric(&ingest.ops_url, "mutt_ingest_shed_events_total").await >= 2.0);
    drop((ingest, workers));
    stop.cancel();
    env.cleanup().await
}
