//! Resending a request whose answer was lost is safe with an `Idempotency-Key`.

use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

async fn post_keyed(
    client: &reqwest::Client,
    ingest_url: &str,
    key: &str,
    events: &[Value],
) -> anyhow::Result<reqwest::Response> {
    Ok(client
        .post(format!("{ingest_url}/api/v2/ingest"))
        .header("x-api-key", "test-key")
        .header("idempotency-key", key)
        .json(&events)
        .send()
        .await?)
}

/// Redis applies an append but its reply never reaches ingest (a proxy drops the
/// replies): ingest answers 503 and the client resends. Before requests could carry an
/// `Idempotency-Key`, the resend appended the events again under new ids (new audit rows,
/// new `external_id`s at the webhook); now the resend is recognised and appended no second
/// time, and every event is audited and delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_after_a_lost_reply_appends_nothing_twice() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    env.insert_rules(&[forward_everything()]).await?;
    let proxy = Proxy::start(env.redis_url.trim_start_matches("redis://")).await?;
    let mut through_proxy = MuttConfig::new("ingest");
    through_proxy.redis_url = Some(proxy.redis_url());
    let ingest = Mutt::start(&env, &through_proxy).await?;
    let workers = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    let events = mutt_devkit::load::build_events(100);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let r = post_keyed(&client, &ingest.ingest_url, "batch-1", &events[..50]).await?;
    assert_eq!(r.status(), 202);

    // The append of the second batch reaches Redis; its reply does not.
    proxy.mute();
    let r = post_keyed(&client, &ingest.ingest_url, "batch-2", &events[50..]).await?;
    assert_eq!(r.status(), 503, "no reply from Redis within its timeout");
    let body: Value = r.json().await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Idempotency-Key"),
        "the answer says how to resend safely: {body}"
    );
    proxy.restore();
    // The client resends, as told; the events were in fact accepted the first time.
    let r = wait_until(
        "ingest answering again",
        Duration::from_secs(20),
        || async {
            let r = post_keyed(&client, &ingest.ingest_url, "batch-2", &events[50..])
                .await
                .ok()?;
            (r.status() == 202).then_some(r)
        },
    )
    .await?;
    assert_eq!(
        r.headers().get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(b"true".as_slice()),
        "recognised as a resend"
    );
    let body: Value = r.json().await?;
    assert_eq!(body["accepted"], 50, "answered like the original: {body}");
    // A resend of the first batch, long after, is recognised too.
    let r = post_keyed(&client, &ingest.ingest_url, "batch-1", &events[..50]).await?;
    assert_eq!(r.status(), 202);
    assert!(r.headers().contains_key("idempotent-replayed"));

    wait_until("100 alerts delivered", Duration::from_secs(30), || async {
        (sink.unique() == 100).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.unique(), 100, "no event under a second id");
    assert_eq!(sink.duplicates(), 0);
    assert_eq!(delivered_seqs(&sink).len(), 100);
    assert_eq!(
        env.count("SELECT count(*) FROM event_audit_log").await?,
        100
    );
    // The 503'd append is counted nowhere (ingest could not know it had succeeded); the
    // resends are counted as replayed.
    let metrics = reqwest::get(format!("{}/metrics", ingest.ops_url))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("mutt_ingest_events_total{result=\"replayed\",source=\"http\"} 100"),
        "{metrics}"
    );
    drop((ingest, workers));
    stop.cancel();
    env.cleanup().await
}

/// The same key with a different body is a different request: both are appended, so a
/// client that reuses keys by mistake loses nothing. A malformed key is refused clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_identifies_the_request_with_its_body() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let ingest = Mutt::start(&env, &MuttConfig::new("ingest")).await?;
    let client = reqwest::Client::new();
    let events = mutt_devkit::load::build_events(4);
    let a = post_keyed(&client, &ingest.ingest_url, "k", &events[..2]).await?;
    let b = post_keyed(&client, &ingest.ingest_url, "k", &events[2..]).await?;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
    assert!(!b.headers().contains_key("idempotent-replayed"));
    assert_eq!(read_stream(&env, "events").await?.len(), 4);
    let r = client
        .post(format!("{}/api/v2/ingest", ingest.ingest_url))
        .header("x-api-key", "test-key")
        .header("idempotency-key", "x".repeat(300))
        .json(&events[..1])
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "invalid_idempotency_key");
    drop(ingest);
    env.cleanup().await
}
