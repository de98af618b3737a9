//! SLOs through a real Prometheus scraping the processes, and the metrics exposition
//! checked by promtool.

use std::process::Command;
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slo_endpoint_reports_what_prometheus_measures() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    env.insert_rules(&[forward_everything()]).await?;
    // Prometheus needs the ops port before the process starts: pick it here.
    let ops_port = free_port();
    let prom = PrometheusServer::start(&[format!("127.0.0.1:{ops_port}")]).await?;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_OPS_LISTEN", &format!("127.0.0.1:{ops_port}"))
            .set("MUTT_PROMETHEUS_URL", &prom.url)
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s"),
    )
    .await?;
    let admin = Api::new(&all.control_url, "test-key");
    // Traffic starts once Prometheus scrapes the process (its discovery takes a few
    // seconds): increases before the first scrape are invisible to rate().
    let up = format!("{}/api/v1/query?query=up", prom.url);
    wait_until(
        "prometheus scraping mutt",
        Duration::from_secs(30),
        || async {
            let v: Value = reqwest::get(&up).await.ok()?.json().await.ok()?;
            (v["data"]["result"][0]["value"][1] == "1").then_some(())
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        2_000,
        100,
        Duration::from_millis(20),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(accepted.len(), 2_000);
    let sink_ref = &sink;
    wait_until(
        "the first alerts delivered",
        Duration::from_secs(30),
        || async { (sink_ref.unique() == 2_000).then_some(()) },
    )
    .await?;
    // Some alerts refused by the webhook spend the forwarder's budget.
    sink.set_behaviour(Behaviour::Fail(422, None));
    let refused = send_all(
        vec![all.ingest_url.clone()],
        20,
        20,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(refused.len(), 20);
    let slo = wait_until(
        "prometheus to have the numbers",
        Duration::from_secs(60),
        || async {
            // Each answer costs Prometheus 25 queries: ask once a second, not 20 times.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = admin.get("/api/v2/slo").await.ok()?;
            let by = |n: &str| {
                s["slos"]
                    .as_array()?
                    .iter()
                    .find(|o| o["name"] == n)
                    .cloned()
            };
            let fwd = by("forwarder_success")?;
            let ingest = by("ingest_availability")?;
            // 20 dead-lettered of 2,020: every one of them counted.
            (fwd["actual"].as_f64()? < 0.991 && ingest["actual"].is_number()).then_some(s)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", prom.diagnostics()))?;
    eprintln!("{}", serde_json::to_string_pretty(&slo)?);
    let by = |n: &str| {
        slo["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == n)
            .cloned()
            .unwrap()
    };
    let names: Vec<&str> = slo["slos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ingest_availability",
            "ingest_latency_p99",
            "delivery_latency_p99",
            "forwarder_success",
            "alerter_processing_success"
        ]
    );
    let ingest = by("ingest_availability");
    assert_eq!(ingest["actual"], 1.0);
    assert_eq!(ingest["status"], "ok");
    assert_eq!(ingest["error_budget_remaining"], 1.0);
    let fwd = by("forwarder_success");
    let actual = fwd["actual"].as_f64().unwrap();
    assert!(actual > 0.985 && actual < 0.991, "{actual}");
    assert!(fwd["burn_rate"]["1h"].as_f64().unwrap() > 1.0);
    assert_eq!(
        fwd["status"], "critical",
        "1 % refused burns a 0.1 % budget 10x too fast"
    );
    assert!(fwd["error_budget_remaining"].as_f64().unwrap() < 0.0);
    let latency = by("ingest_latency_p99");
    assert!(latency["p99_seconds"].as_f64().unwrap() < 0.25);
    for o in slo["slos"].as_array().unwrap() {
        for w in ["1h", "6h", "24h"] {
            assert!(
                o["burn_rate"][w].is_number() || o["burn_rate"][w].is_null(),
                "{o}"
            );
        }
        assert!(o["target"].as_f64().unwrap() > 0.9);
    }
    // The recording rules work on the same series.
    let q: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/query", prom.url))
        .query(&[(
            "query",
            "mutt:slo_error_ratio:rate5m{slo=\"forwarder_success\"}",
        )])
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(q["status"], "success");
    drop(all);
    stop.cancel();
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_exposition_passes_promtool() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_CLAIM_INTERVAL", "200ms"),
    )
    .await?;
    send_all(
        vec![all.ingest_url.clone()],
        100,
        100,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    let wanted = [
        "mutt_ingest_requests_total",
        "mutt_stream_group_lag",
        "mutt_stream_group_pending",
        "mutt_config_version_applied",
        "mutt_build_info",
        "mutt_end_to_end_latency_seconds",
    ];
    let url = format!("{}/metrics", all.ops_url);
    let text = wait_until("every metric family", Duration::from_secs(10), || async {
        let t = reqwest::get(&url).await.ok()?.text().await.ok()?;
        wanted.iter().all(|m| t.contains(m)).then_some(t)
    })
    .await?;
    let promtool =
        which("promtool").expect("promtool is missing: install the Debian package prometheus");
    let path = env.dir.join("metrics.txt");
    std::fs::write(&path, &text)?;
    let out = Command::new(promtool)
        .arg("check")
        .arg("metrics")
        .stdin(std::fs::File::open(&path)?)
        .output()?;
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(all);
    stop.cancel();
    env.cleanup().await
}
