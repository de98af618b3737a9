//! Floods of unhandled events: a meta-alert needs the true count of distinct events.

use std::time::Duration;

use mutt_core::rules::{MatchType, Rule};
use mutt_integration_tests::*;
use serde_json::{Value, json};
use sqlx::Connection;

fn unhandled(n: usize) -> Value {
    json!({"hostname": "edge-7", "message": format!("%SYS-5-CONFIG_I: Configured from console by vty{n}"), "timestamp": "2026-11-26T10:00:00Z"})
}

/// Meta-alerts the sink received.
fn meta_alerts(sink: &Sink) -> usize {
    sink.seen()
        .by_external_id
        .keys()
        .filter(|id| id.starts_with("unhandled-"))
        .count()
}

/// An alerter killed with -9 after counting a batch of unhandled events but before
/// acknowledging it: another alerter processes the batch again. Before the counter was a
/// set of event ids, the 30 events were counted twice and a meta-alert with a threshold of
/// 50 fired at 30 distinct events; now it fires at the 50th, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_batch_is_not_counted_twice() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[Rule {
        id: 0,
        match_string: Some("HANDLED-ONE".into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 1,
        prod_handling: "Page_and_ticket".into(),
        dev_handling: "Page_and_ticket".into(),
        team_assignment: "NOC".into(),
        is_active: true,
    }])
    .await?;
    let cfg = |role: &str| {
        MuttConfig::new(role)
            .webhook(sink.url())
            .set("MUTT_UNHANDLED_THRESHOLD", "50")
            .set("MUTT_CLAIM_TIMEOUT", "2s")
            .set("MUTT_CLAIM_INTERVAL", "300ms")
    };
    let ingest = Mutt::start(&env, &cfg("ingest")).await?;
    let forwarder = Mutt::start(&env, &cfg("forwarder")).await?;
    let client = reqwest::Client::new();
    // One batch: 30 unhandled events of one fingerprint and one handled event, whose audit
    // row cannot be written while the test holds a lock on the audit table.
    let mut batch: Vec<Value> = (0..30).map(unhandled).collect();
    batch.push(json!({"hostname": "edge-7", "message": "HANDLED-ONE", "timestamp": "2026-11-26T10:00:00Z"}));
    assert_eq!(
        post_events(&client, &ingest.ingest_url, &json!(batch))
            .await?
            .status(),
        202
    );
    let mut lock = env.db().await?;
    let mut tx = lock.begin().await?;
    sqlx::query("LOCK TABLE event_audit_log IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let mut a1 = Mutt::start(&env, &cfg("alerter").consumer("a1")).await?;
    wait_until("the batch counted", Duration::from_secs(20), || async {
        (metric(&a1.ops_url, "mutt_alerter_events_processed_total").await >= 31.0).then_some(())
    })
    .await?;
    a1.kill9()?;
    tx.rollback().await?;
    // Another alerter reclaims the batch and processes it again.
    let a2 = Mutt::start(&env, &cfg("alerter").consumer("a2")).await?;
    wait_until(
        "the handled event delivered",
        Duration::from_secs(30),
        || async { (sink.unique() >= 1).then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(meta_alerts(&sink), 0, "30 distinct events are below 50");

    // 19 more: 49 distinct, still below.
    let more: Vec<Value> = (30..49).map(unhandled).collect();
    assert_eq!(
        post_events(&client, &ingest.ingest_url, &json!(more))
            .await?
            .status(),
        202
    );
    wait_until("the 19 processed", Duration::from_secs(20), || async {
        (metric(&a2.ops_url, "mutt_alerter_events_processed_total").await >= 31.0 + 19.0)
            .then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(meta_alerts(&sink), 0, "49 distinct events are below 50");
    // The 50th.
    assert_eq!(
        post_events(&client, &ingest.ingest_url, &unhandled(49))
            .await?
            .status(),
        202
    );
    wait_until(
        "the meta-alert at the 50th",
        Duration::from_secs(20),
        || async { (meta_alerts(&sink) == 1).then_some(()) },
    )
    .await?;
    drop((ingest, forwarder, a2));
    stop.cancel();
    env.cleanup().await
}
