//! Hold, never divert: a dependency that refuses every write is an outage, and events wait
//! for it to end instead of being dead-lettered. Only what is wrong with one event's own
//! data sets that event aside.

use std::collections::HashSet;
use std::time::Duration;

use mutt_integration_tests::*;

/// The harness's [`Rig`], without automatic dead-letter replays (dead letters stay put).
async fn rig() -> anyhow::Result<Rig> {
    Ok(Rig::start().await?.set("MUTT_DLQ_REPLAY_INTERVAL", "0s"))
}

/// `/ready` of a process: its status code and its `checks` object.
async fn readiness(ops_url: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let r = reqwest::get(format!("{ops_url}/ready")).await?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await?;
    Ok((status, body["checks"].clone()))
}

/// A database that turns read-only while events flow (a failover that left MUTT on a
/// replica) refuses every audit row with SQLSTATE 25006. Before the fix, every one of
/// those events was dead-lettered and none delivered after the database was writable
/// again; now batches are held (readiness false, `mutt_writes_held` says why) and every
/// event arrives once writes are accepted again, without anyone restarting MUTT or
/// cutting its connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_holds_events_and_dead_letters_none() -> anyhow::Result<()> {
    let rig = rig().await?;
    let all = Mutt::start(&rig.env, &rig.cfg("all")).await?;
    let ingest = vec![all.ingest_url.clone()];
    let first = send_all(
        ingest.clone(),
        100,
        50,
        Duration::ZERO,
        Duration::from_secs(30),
    )
    .await;
    wait_until(
        "the first 100 delivered",
        Duration::from_secs(30),
        || async { (delivered_seqs(&rig.sink).len() == 100).then_some(()) },
    )
    .await?;

    rig.env
        .admin_exec("ALTER DATABASE {db} SET default_transaction_read_only = on")
        .await?;
    rig.env.terminate_backends().await?;
    // Events keep coming; ingest needs only Redis.
    let events = mutt_devkit::load::build_events(400);
    let client = reqwest::Client::new();
    for chunk in events[100..].chunks(100) {
        let r = post_events(
            &client,
            &all.ingest_url,
            &serde_json::Value::Array(chunk.to_vec()),
        )
        .await?;
        assert_eq!(r.status(), 202);
    }
    wait_until(
        "the alerter to hold its batches",
        Duration::from_secs(20),
        || async { (metric(&all.ops_url, "mutt_writes_held").await >= 1.0).then_some(()) },
    )
    .await?;
    let (status, checks) = readiness(&all.ops_url).await?;
    assert_eq!(status, 503, "not ready while holding: {checks}");
    assert_eq!(checks["audit_writes"], "held", "{checks}");
    wait_until("the log to say why", Duration::from_secs(5), || async {
        all.log_text().contains("reason=read_only").then_some(())
    })
    .await?;
    // Held, not diverted: give it time to do the wrong thing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rig.dlq_len("alerter").await?, 0, "nothing dead-lettered");
    assert_eq!(
        delivered_seqs(&rig.sink).len(),
        100,
        "nothing new delivered"
    );

    // Writable again; nobody touches MUTT's connections: it must find out by itself.
    rig.env
        .admin_exec("ALTER DATABASE {db} RESET default_transaction_read_only")
        .await?;
    let all_seqs: HashSet<u64> = (0..400).collect();
    wait_until("all 400 delivered", Duration::from_secs(60), || async {
        delivered_seqs(&rig.sink)
            .is_superset(&all_seqs)
            .then_some(())
    })
    .await?;
    assert!(first.len() == 100);
    assert_eq!(rig.dlq_len("alerter").await?, 0);
    assert_eq!(
        rig.env
            .count("SELECT count(*) FROM event_audit_log")
            .await?,
        400
    );
    wait_until("ready again", Duration::from_secs(10), || async {
        let (status, _) = readiness(&all.ops_url).await.ok()?;
        (status == 200).then_some(())
    })
    .await?;
    assert_eq!(metric(&all.ops_url, "mutt_writes_held").await, 0.0);
    drop(all);
    rig.finish().await
}

/// A row PostgreSQL refuses because of its own data (here a check constraint an operator
/// added) is the only one set aside: the rest of its batch is audited and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_row_refused_for_its_own_data_is_dead_lettered() -> anyhow::Result<()> {
    let rig = rig().await?;
    rig.env
        .exec("ALTER TABLE event_audit_log ADD CONSTRAINT no_poison_host CHECK (hostname <> 'poison-host')")
        .await?;
    let all = Mutt::start(&rig.env, &rig.cfg("all")).await?;
    let mut events = mutt_devkit::load::build_events(50);
    events[17]["hostname"] = serde_json::json!("poison-host");
    let r = post_events(
        &reqwest::Client::new(),
        &all.ingest_url,
        &serde_json::Value::Array(events),
    )
    .await?;
    assert_eq!(r.status(), 202);
    wait_until("49 delivered", Duration::from_secs(30), || async {
        (delivered_seqs(&rig.sink).len() == 49).then_some(())
    })
    .await?;
    wait_until("one dead letter", Duration::from_secs(10), || async {
        (rig.dlq_len("alerter").await.ok()? == 1).then_some(())
    })
    .await?;
    let dlq = read_stream(&rig.env, "dlq:alerter").await?;
    let error = String::from_utf8_lossy(&dlq[0].1["last_error"]).to_string();
    assert!(error.contains("no_poison_host"), "{error}");
    assert!(!delivered_seqs(&rig.sink).contains(&17));
    drop(all);
    rig.finish().await
}

/// A webhook refusing MUTT's credentials (401 outside any rotation) refuses every alert: it
/// is an outage to wait out, not a verdict on each alert. Before, all 200 alerts were
/// dead-lettered at full rate and none arrived in the minute after the webhook accepted
/// the token again; now they are held behind the circuit and all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_hold_alerts_until_the_webhook_accepts_them() -> anyhow::Result<()> {
    let rig = rig().await?;
    rig.sink.set_behaviour(Behaviour::Fail(401, None));
    let refusing = tokio::time::Instant::now();
    let all = Mutt::start(&rig.env, &rig.cfg("all")).await?;
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        200,
        10,
        Duration::from_millis(100),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(accepted.len(), 200);
    wait_until("the refusal logged", Duration::from_secs(10), || async {
        all.log_text()
            .contains("the webhook refuses MUTT's credentials")
            .then_some(())
    })
    .await?;
    // 20 seconds of refusals: many times the attempts an alert has.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(refusing.elapsed())).await;
    assert_eq!(
        rig.dlq_len("forwarder").await?,
        0,
        "nothing dead-lettered while refused"
    );
    assert!(rig.sink.seen().requests > 0);
    rig.sink.set_behaviour(Behaviour::Accept);
    wait_until("all 200 delivered", Duration::from_secs(60), || async {
        delivered_seqs(&rig.sink)
            .is_superset(&accepted)
            .then_some(())
    })
    .await?;
    assert_eq!(rig.dlq_len("forwarder").await?, 0);
    drop(all);
    rig.finish().await
}

/// Entries in `{p}:failures:<group>`.
async fn failures(env: &TestEnv, group: &str) -> anyhow::Result<i64> {
    let mut r = env.redis().await?;
    Ok(redis::cmd("HLEN")
        .arg(format!("{}:failures:{group}", env.prefix))
        .query_async(&mut r)
        .await?)
}

/// Redis refusing the alerts' append (the alerts stream replaced by a string) leaves the
/// events pending with their failure recorded, instead of acknowledging them with their
/// alerts lost; once the stream works again they are delivered and the failure registry is
/// empty. Before, the alerter never cleared what it recorded there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_holds_events_and_the_failure_registry_empties() -> anyhow::Result<()> {
    let rig = rig().await?;
    let all = Mutt::start(&rig.env, &rig.cfg("all")).await?;
    let mut r = rig.env.redis().await?;
    let alerts = format!("{}:alerts", rig.env.prefix);
    let _: () = redis::cmd("DEL").arg(&alerts).query_async(&mut r).await?;
    let _: () = redis::cmd("SET")
        .arg(&alerts)
        .arg("not a stream")
        .query_async(&mut r)
        .await?;
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        20,
        20,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    wait_until("the failure recorded", Duration::from_secs(10), || async {
        (failures(&rig.env, "alerter").await.ok()? == 20).then_some(())
    })
    .await?;
    assert_eq!(
        rig.env.pending("events", "alerter").await?,
        20,
        "not acknowledged"
    );
    let _: () = redis::cmd("DEL").arg(&alerts).query_async(&mut r).await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&alerts)
        .arg("forwarder")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut r)
        .await?;
    wait_until("all 20 delivered", Duration::from_secs(30), || async {
        delivered_seqs(&rig.sink)
            .is_superset(&accepted)
            .then_some(())
    })
    .await?;
    assert_eq!(failures(&rig.env, "alerter").await?, 0, "registry emptied");
    assert_eq!(failures(&rig.env, "forwarder").await?, 0);
    assert_eq!(rig.dlq_len("alerter").await?, 0);
    drop(all);
    rig.finish().await
}

/// Every worker publishes the depth and the oldest age of its group's DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_queues_report_depth_and_age() -> anyhow::Result<()> {
    let rig = rig().await?;
    let alerter = Mutt::start(&rig.env, &rig.cfg("alerter")).await?;
    let mut r = rig.env.redis().await?;
    let _: String = redis::cmd("XADD")
        .arg(format!("{}:events", rig.env.prefix))
        .arg("*")
        .arg("payload")
        .arg("junk")
        .query_async(&mut r)
        .await?;
    wait_until("depth 1 and an age", Duration::from_secs(15), || async {
        let text = reqwest::get(format!("{}/metrics", alerter.ops_url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let age = text
            .lines()
            .find(|l| l.starts_with("mutt_dlq_oldest_age_seconds{group=\"alerter\"}"))?
            .rsplit(' ')
            .next()?
            .parse::<f64>()
            .ok()?;
        (text.contains("mutt_dlq_depth{group=\"alerter\"} 1") && age >= 1.0).then_some(())
    })
    .await?;
    drop(alerter);
    rig.finish().await
}
