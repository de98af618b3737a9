//! Fault tests: workers killed, Redis restarted, PostgreSQL unreachable, the webhook
//! failing or hanging, poison entries, several workers sharing a group. Each is bounded in
//! time; each checks that every accepted event reached the webhook, counts duplicates, and
//! checks the dead-letter queues.

use std::time::Duration;

use mutt_integration_tests::*;

/// The harness's [`Rig`], with the streams trimmed every second.
async fn rig() -> anyhow::Result<Rig> {
    Ok(Rig::start().await?.set("MUTT_TRIM_INTERVAL", "1s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alerter_killed_mid_run_loses_nothing() -> anyhow::Result<()> {
    let rig = rig().await?;
    let ingest = Mutt::start(&rig.env, &rig.cfg("ingest")).await?;
    let forwarder = Mutt::start(&rig.env, &rig.cfg("forwarder")).await?;
    let mut a1 = Mutt::start(&rig.env, &rig.cfg("alerter").consumer("a1")).await?;
    let sender = tokio::spawn(send_all(
        vec![ingest.ingest_url.clone()],
        20_000,
        250,
        Duration::from_millis(10),
        Duration::from_secs(60),
    ));
    wait_until("the alerter at work", Duration::from_secs(20), || async {
        (rig.sink.unique() > 2_000).then_some(())
    })
    .await?;
    a1.kill9()?;
    let a2 = Mutt::start(&rig.env, &rig.cfg("alerter").consumer("a2")).await?;
    // The killed one comes back under its own name too.
    let a1b = Mutt::start(&rig.env, &rig.cfg("alerter").consumer("a1")).await?;
    let accepted = sender.await?;
    assert_eq!(accepted.len(), 20_000);
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(60))
        .await?;
    eprintln!(
        "alerter kill: delivered {}, duplicates {dups}",
        accepted.len()
    );
    // Alerts are appended and acknowledged in one transaction: a crash cannot duplicate.
    assert_eq!(dups, 0);
    assert_eq!(rig.dlq_len("alerter").await?, 0);
    assert_eq!(
        rig.env
            .count("SELECT count(*) FROM event_audit_log")
            .await?,
        20_000
    );
    drop((ingest, forwarder, a2, a1b));
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_killed_mid_run_loses_nothing() -> anyhow::Result<()> {
    let rig = rig().await?;
    let all = Mutt::start(&rig.env, &rig.cfg("ingest")).await?;
    let alerter = Mutt::start(&rig.env, &rig.cfg("alerter")).await?;
    let mut f1 = Mutt::start(&rig.env, &rig.cfg("forwarder").consumer("f1")).await?;
    let sender = tokio::spawn(send_all(
        vec![all.ingest_url.clone()],
        20_000,
        250,
        Duration::from_millis(10),
        Duration::from_secs(60),
    ));
    wait_until("the forwarder at work", Duration::from_secs(20), || async {
        (rig.sink.unique() > 2_000).then_some(())
    })
    .await?;
    f1.kill9()?;
    let f2 = Mutt::start(&rig.env, &rig.cfg("forwarder").consumer("f2")).await?;
    let accepted = sender.await?;
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(60))
        .await?;
    eprintln!(
        "forwarder kill: delivered {}, duplicates {dups}",
        accepted.len()
    );
    // Only alerts delivered but not yet acknowledged when the process died come twice: at
    // most what one forwarder holds (concurrency 32 × 2 + a read batch of 200).
    assert!(dups <= 264, "{dups} duplicates");
    assert_eq!(rig.dlq_len("forwarder").await?, 0);
    drop((all, alerter, f2));
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_aof_loses_nothing() -> anyhow::Result<()> {
    let rig = rig().await?;
    let mut redis = RedisServer::start(true).await?;
    let mut cfg = rig.cfg("all");
    cfg.redis_url = Some(redis.url());
    let all = Mutt::start(&rig.env, &cfg).await?;
    let sender = tokio::spawn(send_all(
        vec![all.ingest_url.clone()],
        10_000,
        200,
        Duration::from_millis(20),
        Duration::from_secs(60),
    ));
    wait_until("some alerts", Duration::from_secs(20), || async {
        (rig.sink.unique() > 1_000).then_some(())
    })
    .await?;
    redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await?;
    let accepted = sender.await?;
    assert_eq!(
        accepted.len(),
        10_000,
        "every batch is accepted once Redis is back"
    );
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(60))
        .await?;
    eprintln!(
        "redis restart: delivered {}, duplicates {dups}",
        accepted.len()
    );
    assert!(dups <= 264, "{dups} duplicates");
    let mut r = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let dlq: u64 = redis::cmd("XLEN")
        .arg(format!("{}:dlq:alerter", rig.env.prefix))
        .query_async(&mut r)
        .await?;
    assert_eq!(dlq, 0);
    drop(all);
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_for_twenty_seconds_loses_nothing() -> anyhow::Result<()> {
    let rig = rig().await?;
    let pg = Proxy::start("127.0.0.1:5432").await?;
    let via_proxy =
        rig.env
            .database_url
            .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", pg.port), 1);
    assert_ne!(
        via_proxy, rig.env.database_url,
        "the test database URL goes through 127.0.0.1:5432"
    );
    let all = Mutt::start(
        &rig.env,
        &rig.cfg("all").set("MUTT_DATABASE_URL", &via_proxy),
    )
    .await?;
    let sender = tokio::spawn(send_all(
        vec![all.ingest_url.clone()],
        8_000,
        200,
        Duration::from_millis(60),
        Duration::from_secs(90),
    ));
    wait_until("some alerts", Duration::from_secs(20), || async {
        (rig.sink.unique() > 500).then_some(())
    })
    .await?;
    pg.cut();
    tokio::time::sleep(Duration::from_secs(20)).await;
    // Ingest went on accepting; nothing was audited or alerted meanwhile, and the alerter
    // held its batch instead of giving it up.
    let during = rig.sink.unique();
    pg.restore();
    let accepted = sender.await?;
    assert_eq!(accepted.len(), 8_000);
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(60))
        .await?;
    eprintln!(
        "postgres outage: {during} delivered before and during, {} in all, duplicates {dups}",
        accepted.len()
    );
    assert_eq!(dups, 0);
    assert_eq!(
        rig.dlq_len("alerter").await?,
        0,
        "an outage is not a reason to dead-letter"
    );
    assert_eq!(
        rig.env
            .count("SELECT count(*) FROM event_audit_log")
            .await?,
        8_000
    );
    drop(all);
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_failing_for_thirty_seconds_then_recovering_loses_nothing() -> anyhow::Result<()>
{
    let rig = rig().await?;
    let all = Mutt::start(&rig.env, &rig.cfg("all")).await?;
    rig.sink.set_behaviour(Behaviour::Fail(503, None));
    let sender = tokio::spawn(send_all(
        vec![all.ingest_url.clone()],
        3_000,
        100,
        Duration::from_millis(50),
        Duration::from_secs(60),
    ));
    tokio::time::sleep(Duration::from_secs(15)).await;
    rig.sink.set_behaviour(Behaviour::Fail(500, Some(1)));
    tokio::time::sleep(Duration::from_secs(15)).await;
    // The circuit opened instead of burning every alert's attempts.
    assert!(metric(&all.ops_url, "mutt_circuit_breaker_state_changes_total").await >= 2.0);
    let requests_during_outage = rig.sink.seen().requests;
    assert!(
        requests_during_outage < 1_000,
        "{requests_during_outage} requests while the circuit was open"
    );
    rig.sink.set_behaviour(Behaviour::Accept);
    let accepted = sender.await?;
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(60))
        .await?;
    eprintln!(
        "webhook outage: {requests_during_outage} requests during 30 s, delivered {}, duplicates {dups}",
        accepted.len()
    );
    assert_eq!(dups, 0);
    assert_eq!(
        rig.dlq_len("forwarder").await?,
        0,
        "an open circuit is not a reason to dead-letter"
    );
    drop(all);
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_hanging_past_the_timeout_loses_nothing() -> anyhow::Result<()> {
    let rig = rig().await?;
    let all = Mutt::start(
        &rig.env,
        &rig.cfg("all").set("MUTT_WEBHOOK_TIMEOUT", "300ms"),
    )
    .await?;
    rig.sink
        .set_behaviour(Behaviour::Hang(Duration::from_secs(3)));
    let sender = tokio::spawn(send_all(
        vec![all.ingest_url.clone()],
        2_000,
        100,
        Duration::from_millis(20),
        Duration::from_secs(60),
    ));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(metric(&all.ops_url, "mutt_moog_requests_total").await > 0.0);
    rig.sink.set_behaviour(Behaviour::Accept);
    let accepted = sender.await?;
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(60))
        .await?;
    eprintln!(
        "webhook hang: delivered {}, duplicates {dups}",
        accepted.len()
    );
    assert_eq!(rig.dlq_len("forwarder").await?, 0);
    drop(all);
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_entries_go_to_the_dlq_with_provenance() -> anyhow::Result<()> {
    let rig = rig().await?;
    let all = Mutt::start(&rig.env, &rig.cfg("all")).await?;
    let mut r = rig.env.redis().await?;
    let events = format!("{}:events", rig.env.prefix);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // Garbage, no payload, valid MessagePack of the wrong shape, an event with a broken invariant.
    let wrong_shape = rmp_serde::to_vec_named(&serde_json::json!({"hello": "world"}))?;
    let broken = rmp_serde::to_vec_named(&serde_json::json!({
        "id": "x", "correlation_id": "c", "received_at_ms": 1, "hostname": "", "message": "m", "timestamp": "2026-01-01T00:00:00Z"
    }))?;
    let mut poison_ids = Vec::new();
    for fields in [
        vec![
            ("payload", b"\xc1garbage".to_vec()),
            ("traceparent", tp.as_bytes().to_vec()),
        ],
        vec![("something", b"else".to_vec())],
        vec![("payload", wrong_shape)],
        vec![("payload", broken)],
    ] {
        let id: String = redis::cmd("XADD")
            .arg(&events)
            .arg("*")
            .arg(fields)
            .query_async(&mut r)
            .await?;
        poison_ids.push(id);
    }
    // And a poison alert for the forwarder.
    let alert_id: String = redis::cmd("XADD")
        .arg(format!("{}:alerts", rig.env.prefix))
        .arg("*")
        .arg("payload")
        .arg(b"not an alert".to_vec())
        .query_async(&mut r)
        .await?;
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        500,
        100,
        Duration::ZERO,
        Duration::from_secs(30),
    )
    .await;
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(30))
        .await?;
    assert_eq!(dups, 0);

    let dlq = wait_until("four dead letters", Duration::from_secs(10), || async {
        read_stream(&rig.env, "dlq:alerter")
            .await
            .ok()
            .filter(|d| d.len() >= 4)
    })
    .await?;
    assert_eq!(dlq.len(), 4, "exactly the poison entries");
    let text = |f: &std::collections::HashMap<String, Vec<u8>>, k: &str| {
        String::from_utf8_lossy(f.get(k).map_or(&[][..], |v| v)).into_owned()
    };
    let mut sources: Vec<String> = dlq.iter().map(|(_, f)| text(f, "source_id")).collect();
    sources.sort();
    poison_ids.sort();
    assert_eq!(sources, poison_ids);
    for (_, f) in &dlq {
        assert_eq!(text(f, "source_stream"), events);
        assert_eq!(text(f, "group"), "alerter");
        assert!(!text(f, "consumer").is_empty());
        assert!(text(f, "delivery_count").parse::<u64>()? >= 1);
        assert!(!text(f, "last_error").is_empty());
        assert!(text(f, "first_failure_ms").parse::<i64>()? > 0);
        assert!(
            text(f, "last_failure_ms").parse::<i64>()?
                >= text(f, "first_failure_ms").parse::<i64>()?
        );
    }
    let garbage = dlq
        .iter()
        .find(|(_, f)| text(f, "source_id") == poison_ids[0])
        .or_else(|| dlq.iter().find(|(_, f)| f.contains_key("traceparent")));
    assert_eq!(
        garbage.map(|(_, f)| text(f, "traceparent")),
        Some(tp.to_string()),
        "trace context kept"
    );

    let fdlq = read_stream(&rig.env, "dlq:forwarder").await?;
    assert_eq!(fdlq.len(), 1);
    assert_eq!(text(&fdlq[0].1, "source_id"), alert_id);
    assert_eq!(rig.env.pending("events", "alerter").await?, 0);
    assert_eq!(rig.env.pending("alerts", "forwarder").await?, 0);
    drop(all);
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_past_the_delivery_limit_is_dead_lettered_by_reclaim() -> anyhow::Result<()> {
    let rig = rig().await?;
    let ingest = Mutt::start(&rig.env, &rig.cfg("ingest")).await?;
    let accepted = send_all(
        vec![ingest.ingest_url.clone()],
        3,
        3,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(accepted.len(), 3);
    // A consumer that keeps crashing: it reads the entries, never acknowledges, and they are
    // delivered again and again (each claim counts a delivery).
    let mut r = rig.env.redis().await?;
    let events = format!("{}:events", rig.env.prefix);
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&events)
        .arg("alerter")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut r)
        .await
        .or_else(|e| {
            if e.code() == Some("BUSYGROUP") {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("alerter")
        .arg("ghost")
        .arg("STREAMS")
        .arg(&events)
        .arg(">")
        .query_async(&mut r)
        .await?;
    let ids = read_stream(&rig.env, "events").await?;
    for _ in 0..6 {
        for (id, _) in &ids {
            let _: redis::Value = redis::cmd("XCLAIM")
                .arg(&events)
                .arg("alerter")
                .arg("ghost")
                .arg(0)
                .arg(id)
                .query_async(&mut r)
                .await?;
        }
    }
    let alerter = Mutt::start(
        &rig.env,
        &rig.cfg("alerter").set("MUTT_MAX_DELIVERIES", "5"),
    )
    .await?;
    let dlq = wait_until("dead letters", Duration::from_secs(15), || async {
        read_stream(&rig.env, "dlq:alerter")
            .await
            .ok()
            .filter(|d| d.len() >= 3)
    })
    .await?;
    assert_eq!(dlq.len(), 3);
    for (_, f) in &dlq {
        let err = String::from_utf8_lossy(&f["last_error"]).into_owned();
        assert!(err.contains("delivered") && err.contains("times"), "{err}");
        assert!(String::from_utf8_lossy(&f["delivery_count"]).parse::<u64>()? > 5);
        assert!(
            f.contains_key("payload"),
            "the event travels with its dead letter"
        );
    }
    assert_eq!(rig.env.pending("events", "alerter").await?, 0);
    assert_eq!(rig.sink.unique(), 0, "dead letters are not processed");
    drop((ingest, alerter));
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_alerters_and_two_forwarders_share_the_work() -> anyhow::Result<()> {
    let rig = rig().await?;
    let i1 = Mutt::start(&rig.env, &rig.cfg("ingest")).await?;
    let i2 = Mutt::start(&rig.env, &rig.cfg("ingest")).await?;
    let a1 = Mutt::start(
        &rig.env,
        &rig.cfg("alerter").set("MUTT_ALERTER_BATCH", "100"),
    )
    .await?;
    let a2 = Mutt::start(
        &rig.env,
        &rig.cfg("alerter").set("MUTT_ALERTER_BATCH", "100"),
    )
    .await?;
    let f1 = Mutt::start(
        &rig.env,
        &rig.cfg("forwarder").set("MUTT_FORWARDER_BATCH", "50"),
    )
    .await?;
    let f2 = Mutt::start(
        &rig.env,
        &rig.cfg("forwarder").set("MUTT_FORWARDER_BATCH", "50"),
    )
    .await?;
    let accepted = send_all(
        vec![i1.ingest_url.clone(), i2.ingest_url.clone()],
        20_000,
        200,
        Duration::from_millis(5),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(accepted.len(), 20_000);
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(60))
        .await?;
    assert_eq!(dups, 0);
    let (h1, h2) = (
        metric(&a1.ops_url, "mutt_alerter_events_processed_total").await,
        metric(&a2.ops_url, "mutt_alerter_events_processed_total").await,
    );
    let (s1, s2) = (
        metric(&f1.ops_url, "mutt_moog_alerts_processed_total").await,
        metric(&f2.ops_url, "mutt_moog_alerts_processed_total").await,
    );
    eprintln!("alerters {h1} + {h2}, forwarders {s1} + {s2}");
    assert_eq!(h1 + h2, 20_000.0);
    assert_eq!(s1 + s2, 20_000.0);
    assert!(
        h1 > 0.0 && h2 > 0.0 && s1 > 0.0 && s2 > 0.0,
        "every worker took a share"
    );
    drop((i1, i2, a1, a2, f1, f2));
    rig.finish().await
}

/// 200,000 events while a worker is killed with SIGKILL every 5 seconds (alternately an
/// alerter and a forwarder, each replaced by a new one at once). Every event is forwarded,
/// so every accepted event must show up at the webhook as one distinct `external_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_events_with_a_worker_killed_every_five_seconds() -> anyhow::Result<()>
{
    const EVENTS: u64 = 200_000;
    // Counts only: keeping 200,000 payloads would measure the test, not MUTT.
    let rig = Rig::counting().await?.set("MUTT_TRIM_INTERVAL", "1s");
    let cfg = |role: &str| {
        rig.cfg(role)
            .set("MUTT_WEBHOOK_BATCH", "50")
            .set("MUTT_WEBHOOK_LINGER", "10ms")
    };
    let ingest = Mutt::start(&rig.env, &cfg("ingest")).await?;
    let mut alerters = vec![
        Mutt::start(&rig.env, &cfg("alerter")).await?,
        Mutt::start(&rig.env, &cfg("alerter")).await?,
    ];
    let mut forwarders = vec![
        Mutt::start(&rig.env, &cfg("forwarder")).await?,
        Mutt::start(&rig.env, &cfg("forwarder")).await?,
    ];

    let sender = tokio::spawn(send_all(
        vec![ingest.ingest_url.clone()],
        EVENTS,
        1_000,
        Duration::from_millis(80),
        Duration::from_secs(120),
    ));
    let mut kills = 0;
    while !sender.is_finished() || kills < 4 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let pool = if kills % 2 == 0 {
            &mut alerters
        } else {
            &mut forwarders
        };
        let role = if kills % 2 == 0 {
            "alerter"
        } else {
            "forwarder"
        };
        let victim = kills / 2 % pool.len();
        pool[victim].kill9()?;
        pool[victim] = Mutt::spawn(&rig.env, &cfg(role))?;
        kills += 1;
    }
    let accepted = sender.await?;
    assert_eq!(accepted.len() as u64, EVENTS);
    for m in alerters.iter_mut().chain(forwarders.iter_mut()) {
        m.wait_ready(Duration::from_secs(30)).await?;
    }
    let sink = &rig.sink;
    wait_until(
        "every event at the webhook",
        Duration::from_secs(120),
        || async { (sink.unique() as u64 >= EVENTS).then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (unique, dups) = (sink.unique() as u64, sink.duplicates());
    let (dlq_a, dlq_f) = (
        rig.dlq_len("alerter").await?,
        rig.dlq_len("forwarder").await?,
    );
    eprintln!(
        "chaos: {kills} workers killed; accepted {EVENTS}, delivered {unique} distinct, duplicates {dups}, dead-lettered {}",
        dlq_a + dlq_f
    );
    assert_eq!(unique, EVENTS, "one distinct alert per accepted event");
    assert_eq!(dlq_a + dlq_f, 0);
    assert_eq!(
        rig.env
            .count("SELECT count(DISTINCT event_id) FROM event_audit_log")
            .await? as u64,
        EVENTS
    );
    // Each forwarder kill can repeat at most what that forwarder held.
    assert!(dups <= (kills as u64 / 2 + 1) * 1_000, "{dups} duplicates");
    drop((ingest, alerters, forwarders));
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_rate_limit_delays_alerts_and_drops_none() -> anyhow::Result<()> {
    let rig = rig().await?;
    let cfg = |role: &str| {
        rig.cfg(role)
            .set("MUTT_WEBHOOK_RATE_LIMIT", "200")
            .set("MUTT_WEBHOOK_RATE_BURST", "20")
    };
    let ingest = Mutt::start(&rig.env, &cfg("ingest")).await?;
    let alerter = Mutt::start(&rig.env, &cfg("alerter")).await?;
    // Two forwarders share one limit.
    let f1 = Mutt::start(&rig.env, &cfg("forwarder")).await?;
    let f2 = Mutt::start(&rig.env, &cfg("forwarder")).await?;
    let started = tokio::time::Instant::now();
    let accepted = send_all(
        vec![ingest.ingest_url.clone()],
        1_000,
        500,
        Duration::ZERO,
        Duration::from_secs(20),
    )
    .await;
    let dups = rig
        .all_delivered(&accepted, Duration::from_secs(30))
        .await?;
    let took = started.elapsed();
    eprintln!("rate limit: 1000 alerts at 200/s took {took:?}, duplicates {dups}");
    // 980 alerts beyond the burst at 200/s take at least 4.9 s, whatever the replicas.
    assert!(took >= Duration::from_millis(4_500), "{took:?}");
    assert_eq!(dups, 0);
    let waits = metric(&f1.ops_url, "mutt_moog_rate_limit_hits_total").await
        + metric(&f2.ops_url, "mutt_moog_rate_limit_hits_total").await;
    assert!(waits > 0.0);
    assert_eq!(rig.dlq_len("forwarder").await?, 0);
    drop((ingest, alerter, f1, f2));
    rig.finish().await
}

/// With batching the rate limit still holds: in any window of length t the webhook sees at
/// most rate × t + burst alerts (plus the alerts of a tenth of a second, for the time a
/// request takes to arrive). Before a request took as many tokens as alerts, a batch of 50
/// went out on 5 tokens: rate 20/s, burst 5 delivered 300 alerts in the first 12 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_for_batched_requests() -> anyhow::Result<()> {
    let rig = rig().await?;
    let (rate, burst) = (20.0, 5.0);
    let all = Mutt::start(
        &rig.env,
        &rig.cfg("all")
            .set("MUTT_WEBHOOK_RATE_LIMIT", "20")
            .set("MUTT_WEBHOOK_RATE_BURST", "5")
            .set("MUTT_WEBHOOK_BATCH", "50"),
    )
    .await?;
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        150,
        150,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    rig.all_delivered(&accepted, Duration::from_secs(30))
        .await?;
    let (t, batch_sizes) = {
        let seen = rig.sink.seen();
        (seen.arrivals_ms.clone(), seen.batch_sizes.clone())
    };
    assert_eq!(t.len(), 150);
    let mut worst = (0.0f64, 0usize, 0i64);
    for i in 0..t.len() {
        for j in i..t.len() {
            let window = (t[j] - t[i]) as f64 / 1000.0;
            let allowed = burst + rate * (window + 0.1);
            let count = j - i + 1;
            if count as f64 - allowed > worst.0 {
                worst = (count as f64 - allowed, count, t[j] - t[i]);
            }
        }
    }
    assert!(
        worst.0 <= 0.0,
        "{} alerts arrived within {} ms (rate {rate}/s, burst {burst})",
        worst.1,
        worst.2
    );
    assert!(
        batch_sizes.iter().all(|&n| n as f64 <= burst),
        "no request carries more than the burst: {batch_sizes:?}"
    );
    drop(all);
    rig.finish().await
}

/// A webhook URL carrying credentials (user-info, an `api_key` query parameter), at a
/// server that echoes the request in its refusal: the dead letter's excerpt and MUTT's log
/// hold none of them, in any form (the Basic-auth header reqwest derives from the
/// user-info included). Before, only the bearer token was scrubbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_webhook_url_never_reach_a_dead_letter() -> anyhow::Result<()> {
    let rig = rig().await?;
    rig.sink.set_behaviour(Behaviour::Echo(400));
    let (password, api_key) = ("S3cr3t-pw", "Qk3y-abcdef");
    let url = format!(
        "http://mutt:{password}@{}/events?api_key={api_key}&tenant=7",
        rig.sink.addr
    );
    let all = Mutt::start(&rig.env, &rig.cfg("all").webhook(url)).await?;
    send_all(
        vec![all.ingest_url.clone()],
        2,
        2,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    wait_until("two dead letters", Duration::from_secs(20), || async {
        (rig.dlq_len("forwarder").await.ok()? == 2).then_some(())
    })
    .await?;
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("mutt:{password}"))
    };
    for (_, fields) in read_stream(&rig.env, "dlq:forwarder").await? {
        let error = String::from_utf8_lossy(&fields["last_error"]).to_string();
        assert!(
            error.contains("refused /events"),
            "the excerpt is kept: {error}"
        );
        assert!(error.contains("[redacted]"), "{error}");
        for secret in [password, api_key, basic.as_str()] {
            assert!(!error.contains(secret), "{secret} in {error}");
        }
    }
    let log = all.log_text();
    for secret in [password, api_key, basic.as_str()] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    drop(all);
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_alert_goes_to_the_dlq_with_the_status_and_an_excerpt() -> anyhow::Result<()> {
    let rig = rig().await?;
    let all = Mutt::start(&rig.env, &rig.cfg("all").set("MUTT_WEBHOOK_BATCH", "5")).await?;
    rig.sink.set_behaviour(Behaviour::Fail(422, None));
    let refused = send_all(
        vec![all.ingest_url.clone()],
        3,
        3,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    let dlq = wait_until(
        "refused alerts dead-lettered",
        Duration::from_secs(20),
        || async {
            read_stream(&rig.env, "dlq:forwarder")
                .await
                .ok()
                .filter(|d| d.len() >= 3)
        },
    )
    .await?;
    assert_eq!(refused.len(), 3);
    assert_eq!(
        dlq.len(),
        3,
        "each alert of the refused batch was tried alone, then dead-lettered"
    );
    for (_, f) in &dlq {
        let err = String::from_utf8_lossy(&f["last_error"]).into_owned();
        assert!(
            err.contains("422") && err.contains("sink told to fail"),
            "{err}"
        );
        assert_eq!(String::from_utf8_lossy(&f["group"]), "forwarder");
    }
    // A 4xx says the webhook is up: the circuit stays closed and the next alerts flow.
    rig.sink.set_behaviour(Behaviour::Accept);
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        10,
        10,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    let sink = &rig.sink;
    wait_until(
        "later alerts delivered",
        Duration::from_secs(20),
        || async { (sink.unique() >= accepted.len()).then_some(()) },
    )
    .await?;
    assert_eq!(
        metric(&all.ops_url, "mutt_circuit_breaker_state").await,
        0.0
    );
    drop(all);
    rig.finish().await
}
