//! Backpressure between the roles: when the forwarders cannot deliver, the alerters stop
//! filling `{p}:alerts` and events wait in `{p}:events`, where ingest's admission sees them.

use std::collections::HashSet;
use std::time::Duration;

use mutt_integration_tests::*;
use tokio_util::sync::CancellationToken;

/// The webhook answers 503 while 20,000 forwarded events arrive, with the alerts backlog
/// capped at 1,000: the alerts stream stays near the cap (at most the batches in flight
/// beyond it) while the events stream holds the rest; after the webhook recovers every
/// event is delivered and nothing is dead-lettered. Before `alerter_max_alert_lag` was read
/// by any code, the alerts backlog grew to 20,000 and the events backlog stayed at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_outage_keeps_the_alerts_backlog_near_its_cap() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    env.insert_rules(&[forward_everything()]).await?;
    sink.set_behaviour(Behaviour::Fail(503, None));
    let cap = 1_000u64;
    let batch = 100u64;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_ALERTER_MAX_ALERT_LAG", &cap.to_string())
            .set("MUTT_ALERTER_BATCH", &batch.to_string())
            .set("MUTT_FORWARDER_RETRY_BASE", "50ms")
            .set("MUTT_FORWARDER_RETRY_MAX", "500ms")
            .set("MUTT_BREAKER_THRESHOLD", "5")
            .set("MUTT_BREAKER_OPEN", "500ms")
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s"),
    )
    .await?;
    let sampling = CancellationToken::new();
    let sampler = {
        let (key, redis, sampling) = (
            format!("{}:alerts", env.prefix),
            env.redis_url.clone(),
            sampling.clone(),
        );
        tokio::spawn(async move {
            let mut worst = 0u64;
            while !sampling.is_cancelled() {
                if let Ok((lag, pending)) = group_state(&redis, &key, "forwarder").await {
                    worst = worst.max(lag + pending);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            worst
        })
    };
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        20_000,
        500,
        Duration::ZERO,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(accepted.len(), 20_000);
    // The alerters paused with the rest of the events waiting for them.
    wait_until(
        "events waiting in {p}:events",
        Duration::from_secs(20),
        || async {
            let (lag, _) = env.group_state("events", "alerter").await.ok()?;
            (lag >= 20_000 - 4 * cap).then_some(())
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(metric(&all.ops_url, "mutt_alerter_paused").await == 1.0);
    assert!(metric(&all.ops_url, "mutt_alerter_backpressure_total").await >= 1.0);
    sampling.cancel();
    let worst = sampler.await?;
    // Read one batch at a time per slot: at most concurrency (4) + the read channel (2) + the
    // batch being read beyond the cap.
    let bound = cap + 7 * batch;
    eprintln!("worst alerts backlog during the outage: {worst} (cap {cap}, bound {bound})");
    assert!(worst <= bound, "alerts backlog {worst} > {bound}");
    assert!(worst >= cap, "the cap was reached ({worst})");

    sink.set_behaviour(Behaviour::Accept);
    let all_seqs: HashSet<u64> = accepted;
    wait_until("all 20,000 delivered", Duration::from_secs(120), || async {
        delivered_seqs(&sink).is_superset(&all_seqs).then_some(())
    })
    .await?;
    assert_eq!(read_stream(&env, "dlq:forwarder").await?.len(), 0);
    assert_eq!(read_stream(&env, "dlq:alerter").await?.len(), 0);
    assert_eq!(metric(&all.ops_url, "mutt_alerter_paused").await, 0.0);
    drop(all);
    stop.cancel();
    env.cleanup().await
}
