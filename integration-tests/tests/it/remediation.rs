//! The self-healing DLQ: dead letters replayed by the control plane on its own when their
//! downstream is healthy, an open circuit probed with one real alert in a quiet system,
//! letters that can never succeed parked at once, and two control replicas replaying each
//! letter once.

use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::Value;

/// The forwarder side of a stack whose outages dead-letter alerts at once, as passing
/// failures, and whose control plane replays every second.
fn cfg(role: &str, sink: &Sink) -> MuttConfig {
    MuttConfig::new(role)
        .webhook(sink.url())
        .set("MUTT_FORWARDER_MAX_ATTEMPTS", "2")
        .set("MUTT_FORWARDER_RETRY_BASE", "10ms")
        .set("MUTT_FORWARDER_RETRY_MAX", "50ms")
        .set("MUTT_BREAKER_THRESHOLD", "1000000")
        .set("MUTT_BREAKER_OPEN", "1s")
        .set("MUTT_DLQ_REPLAY_INTERVAL", "0s")
}

async fn send(ingest_url: &str, events: &[Value]) -> anyhow::Result<()> {
    let r = post_events(
        &reqwest::Client::new(),
        ingest_url,
        &serde_json::json!(events),
    )
    .await?;
    anyhow::ensure!(r.status() == 202, "ingest answered {}", r.status());
    Ok(())
}

async fn set(api: &Api, key: &str, value: &str) -> anyhow::Result<()> {
    let (status, body, _) = api
        .call(
            "PUT",
            &format!("/api/v2/config/{key}"),
            Some(serde_json::json!({"value": value, "reason": "remediation test"})),
        )
        .await?;
    anyhow::ensure!(status == 200, "PUT config/{key}: {status} {body}");
    Ok(())
}

/// A webhook outage dead-letters alerts and leaves the circuit open; once the webhook is
/// back, with no new traffic to probe it, the DLQ drains with no operator action: one
/// replayed alert is the probe that closes the circuit, the rest follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_outage_drains_by_itself_in_a_quiet_system() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    // One attempt: the failure that opens the circuit also dead-letters its alert, so
    // that nothing is left in the forwarder's hands to probe the circuit.
    let all = Mutt::start(
        &env,
        &cfg("all", &sink).set("MUTT_FORWARDER_MAX_ATTEMPTS", "1"),
    )
    .await?;
    let api = Api::new(&all.control_url, &MuttConfig::new("all").api_key);
    sink.set_behaviour(Behaviour::Fail(503, None));
    send(&all.ingest_url, &mutt_devkit::load::build_events(20)).await?;
    wait_for_dead_letters(&env, "forwarder", 20).await?;
    // The circuit opens at the next failure: one more alert.
    set(&api, "breaker_threshold", "2").await?;
    send(&all.ingest_url, &mutt_devkit::load::build_events(21)[20..]).await?;
    wait_for_dead_letters(&env, "forwarder", 21).await?;
    wait_until("the circuit open", Duration::from_secs(10), || async {
        (metric(&all.ops_url, "mutt_circuit_breaker_state_changes_total").await >= 1.0)
            .then_some(())
    })
    .await?;

    sink.set_behaviour(Behaviour::Accept);
    set(&api, "dlq_replay_interval", "1s").await?;
    wait_until("every alert delivered", Duration::from_secs(60), || async {
        (sink.unique() == 21).then_some(())
    })
    .await?;
    assert_eq!(sink.duplicates(), 0);
    wait_until("the DLQ empty", Duration::from_secs(10), || async {
        read_stream(&env, "dlq:forwarder")
            .await
            .ok()?
            .is_empty()
            .then_some(())
    })
    .await?;
    assert!(read_stream(&env, "dlq:forwarder:parked").await?.is_empty());
    assert!(metric(&all.ops_url, "mutt_remediation_replayed_total").await >= 21.0);
    // Each automatic replay is audited.
    assert!(
        env.count("SELECT count(*) FROM config_audit_log WHERE changed_by = 'mutt-remediation' AND operation = 'REPLAY'")
            .await?
            >= 2
    );
    drop(all);
    stop.cancel();
    env.cleanup().await
}

/// Alerts the webhook refuses for their content (400) can never succeed: they are parked
/// at the first round, visible with why, counted, and never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_letters_are_parked_not_replayed() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let all = Mutt::start(
        &env,
        &cfg("all", &sink).set("MUTT_DLQ_REPLAY_INTERVAL", "1s"),
    )
    .await?;
    let api = Api::new(&all.control_url, &MuttConfig::new("all").api_key);
    sink.set_behaviour(Behaviour::Fail(400, None));
    send(&all.ingest_url, &mutt_devkit::load::build_events(10)).await?;
    wait_until("ten parked", Duration::from_secs(30), || async {
        (read_stream(&env, "dlq:forwarder:parked").await.ok()?.len() == 10).then_some(())
    })
    .await?;
    let requests = sink.seen().requests;
    sink.set_behaviour(Behaviour::Accept);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink.seen().requests,
        requests,
        "parked letters are never replayed"
    );
    assert_eq!(sink.unique(), 0);
    assert!(read_stream(&env, "dlq:forwarder").await?.is_empty());
    wait_until("the parked gauge", Duration::from_secs(15), || async {
        (metric(&all.ops_url, "mutt_dlq_parked").await == 10.0).then_some(())
    })
    .await?;
    assert_eq!(
        metric(&all.ops_url, "mutt_remediation_parked_total").await,
        10.0
    );
    assert!(metric(&all.ops_url, "mutt_remediation_rounds_total").await >= 1.0);
    assert!(metric(&all.ops_url, "mutt_remediation_last_round_timestamp").await > 1.7e9);
    // Parking is audited, and found by its operation (the filter once refused PARK).
    let parks = api.get("/api/v2/audit?operation=PARK").await?;
    assert!(
        !parks["logs"].as_array().expect("logs").is_empty(),
        "{parks}"
    );
    let page = api.get("/api/v2/dlq/forwarder?parked=true").await?;
    let entries = page["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 10);
    assert_eq!(
        entries[0]["parked_reason"],
        "the webhook refused its content"
    );
    let list = api.get("/api/v2/dlq").await?;
    let forwarder = list["dlqs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "forwarder")
        .unwrap()
        .clone();
    assert_eq!(forwarder["parked"], 10);
    assert_eq!(forwarder["depth"], 0);

    // An operator may still replay them: they reach the webhook once it accepts.
    let (status, body, _) = api
        .call(
            "POST",
            "/api/v2/dlq/forwarder/replay",
            Some(serde_json::json!({"all": true, "parked": true, "reason": "fixed the mapping"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], 10);
    wait_until("the ten delivered", Duration::from_secs(30), || async {
        (sink.unique() == 10).then_some(())
    })
    .await?;
    drop(all);
    stop.cancel();
    env.cleanup().await
}

/// Two control replicas with remediation on: every letter is replayed, and delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_replicas_replay_each_letter_once() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let workers = Mutt::start(&env, &cfg("all", &sink).consumer("workers")).await?;
    sink.set_behaviour(Behaviour::Fail(503, None));
    send(&workers.ingest_url, &mutt_devkit::load::build_events(200)).await?;
    wait_for_dead_letters(&env, "forwarder", 200).await?;
    sink.set_behaviour(Behaviour::Accept);
    let replicas = [
        Mutt::start(
            &env,
            &cfg("control", &sink)
                .consumer("control-a")
                .set("MUTT_DLQ_REPLAY_INTERVAL", "1s")
                .set("MUTT_DLQ_REPLAY_BATCH", "20"),
        )
        .await?,
        Mutt::start(
            &env,
            &cfg("control", &sink)
                .consumer("control-b")
                .set("MUTT_DLQ_REPLAY_INTERVAL", "1s")
                .set("MUTT_DLQ_REPLAY_BATCH", "20"),
        )
        .await?,
    ];
    wait_until("all 200 delivered", Duration::from_secs(90), || async {
        (sink.unique() == 200).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.duplicates(), 0, "a letter was replayed twice");
    let replayed: f64 = {
        let mut n = 0.0;
        for r in &replicas {
            n += metric(&r.ops_url, "mutt_remediation_replayed_total").await;
        }
        n
    };
    assert_eq!(replayed, 200.0);
    drop(replicas);
    drop(workers);
    stop.cancel();
    env.cleanup().await
}
