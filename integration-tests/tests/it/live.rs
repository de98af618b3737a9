//! Every hot setting changes while MUTT runs, and the change shows in what MUTT does.
//!
//! Each setting is changed through the control API ([`set_live`]) and its effect is
//! observed from the outside: what the webhook receives, what ingest answers, what is left
//! in the streams, what the metrics and logs say. A setting that no code reads, or that a
//! worker read once at start, fails here (and `docs::every_hot_setting_is_read_and_tested_live`
//! fails when a setting of the registry has no `set_live` call in this file).

use std::collections::HashSet;
use std::time::Duration;

use mutt_core::rules::{MatchType, Rule};
use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Sets a hot setting through the control API and waits until every process applied it
/// (every process that reported in the last 6 s: they report every 5 s, so one that
/// stopped drops out).
async fn set_live(api: &Api, key: &str, value: &str) -> anyhow::Result<()> {
    let (status, body, _) = api
        .call(
            "PUT",
            &format!("/api/v2/config/{key}"),
            Some(json!({"value": value, "reason": "live settings test"})),
        )
        .await?;
    anyhow::ensure!(status == 200, "PUT config/{key}: {status} {body}");
    let version = body["version"].as_i64().unwrap_or(0);
    wait_until(
        &format!("{key} = {value} applied everywhere"),
        Duration::from_secs(10),
        || async {
            let v = api.get("/api/v2/config/versions").await.ok()?;
            let now = mutt_core::now_ms();
            v["consumers"]
                .as_array()?
                .iter()
                .filter(|c| c["seen_ms"].as_i64().is_some_and(|t| now - t <= 6_000))
                .all(|c| c["version"].as_i64() >= Some(version))
                .then_some(())
        },
    )
    .await
}

/// A stack for one test: a fresh prefix and database, a sink, and a control API client.
struct Stack {
    env: TestEnv,
    stop: CancellationToken,
    sink: Sink,
}

impl Stack {
    async fn new(rules: &[Rule]) -> anyhow::Result<Self> {
        let env = TestEnv::new().await?;
        let stop = CancellationToken::new();
        let sink = start_sink(&stop).await?;
        env.migrate().await?;
        env.insert_rules(rules).await?;
        Ok(Self { env, stop, sink })
    }

    fn cfg(&self, role: &str) -> MuttConfig {
        MuttConfig::new(role)
            .webhook(self.sink.url())
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s")
    }

    async fn send(&self, ingest_url: &str, events: &[Value]) -> anyhow::Result<()> {
        let r = post_events(&reqwest::Client::new(), ingest_url, &json!(events)).await?;
        anyhow::ensure!(r.status() == 202, "ingest answered {}", r.status());
        Ok(())
    }

    fn requests(&self) -> u64 {
        self.sink.seen().requests
    }

    async fn finish(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.env.cleanup().await
    }
}

fn rule(text: &str, team: &str) -> Rule {
    Rule {
        id: 0,
        match_string: Some(text.into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 10,
        prod_handling: "Page_and_ticket".into(),
        dev_handling: "Page_and_ticket".into(),
        team_assignment: team.into(),
        is_active: true,
    }
}

fn event(host: &str, message: &str) -> Value {
    json!({"hostname": host, "message": message, "timestamp": "2026-11-26T10:00:00Z"})
}

/// A metric's value on a process, by its full sample line prefix (name and labels).
async fn sample(ops_url: &str, prefix: &str) -> f64 {
    let text = match reqwest::get(format!("{ops_url}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0.0,
    };
    text.lines()
        .filter(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The alerter's settings: log level, rule reload, batch size, meta-alerts (threshold,
/// window, default team) and backpressure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerter_settings_apply_live() -> anyhow::Result<()> {
    let s = Stack::new(&[rule("FORWARD-ME", "NOC")]).await?;
    let all = Mutt::start(
        &s.env,
        &s.cfg("all")
            .set("MUTT_RULE_RELOAD_INTERVAL", "1h")
            .set("MUTT_BREAKER_OPEN", "1s"),
    )
    .await?;
    let api = Api::new(&all.control_url, "test-key");

    // log_level: debug lines appear.
    assert!(!all.log_text().contains(" DEBUG "));
    set_live(&api, "log_level", "debug").await?;
    s.send(&all.ingest_url, &[event("h1", "FORWARD-ME one")])
        .await?;
    wait_until("debug lines", Duration::from_secs(10), || async {
        all.log_text().contains(" DEBUG ").then_some(())
    })
    .await?;
    set_live(&api, "log_level", "info").await?;

    // rule_reload_interval: a rule written straight into the database (no announcement)
    // is picked up at the new interval, not in an hour.
    s.env.insert_rules(&[rule("LATE-RULE", "NOC")]).await?;
    set_live(&api, "rule_reload_interval", "1s").await?;
    wait_until("the new rule loaded", Duration::from_secs(10), || async {
        (metric(&all.ops_url, "mutt_alerter_cache_rules").await == 2.0).then_some(())
    })
    .await?;

    // alerter_batch: 100 events queued while the alerter reads 5 at a time take at least
    // 20 batches.
    set_live(&api, "alerter_batch", "5").await?;
    let batches = "mutt_alerter_processing_latency_seconds_count";
    let before = metric(&all.ops_url, batches).await;
    let many: Vec<Value> = (0..100)
        .map(|i| event("h2", &format!("FORWARD-ME {i}")))
        .collect();
    s.send(&all.ingest_url, &many).await?;
    wait_until("101 delivered", Duration::from_secs(20), || async {
        (s.sink.unique() >= 101).then_some(())
    })
    .await?;
    assert!(metric(&all.ops_url, batches).await - before >= 20.0);
    set_live(&api, "alerter_batch", "1000").await?;

    // unhandled_threshold, unhandled_default_team, unhandled_window: 3 unmatched events of
    // one fingerprint make a meta-alert for the live default team; after a window of one
    // second, 3 more make another (with 100 and 24h, none would).
    set_live(&api, "unhandled_threshold", "3").await?;
    set_live(&api, "unhandled_default_team", "LIVE-TEAM").await?;
    set_live(&api, "unhandled_window", "1s").await?;
    let metas = || -> Vec<Value> {
        s.sink
            .seen()
            .events
            .iter()
            .filter(|e| {
                e["external_id"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("unhandled-"))
            })
            .cloned()
            .collect()
    };
    let noise: Vec<Value> = (0..3)
        .map(|i| event("edge-9", &format!("fan {i} slow")))
        .collect();
    s.send(&all.ingest_url, &noise).await?;
    wait_until("a meta-alert at 3", Duration::from_secs(10), || async {
        (metas().len() == 1).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.send(&all.ingest_url, &noise).await?;
    wait_until(
        "another after the window",
        Duration::from_secs(10),
        || async { (metas().len() == 2).then_some(()) },
    )
    .await?;
    assert!(
        metas().iter().all(|m| m["class"] == "LIVE-TEAM"),
        "{:?}",
        metas()
    );

    // alerter_max_alert_lag: the webhook fails, the cap drops to 50: the alerter pauses.
    s.sink.set_behaviour(Behaviour::Fail(503, None));
    set_live(&api, "alerter_max_alert_lag", "50").await?;
    let flood: Vec<Value> = (0..500)
        .map(|i| event("h3", &format!("FORWARD-ME flood {i}")))
        .collect();
    s.send(&all.ingest_url, &flood).await?;
    wait_until("the alerter paused", Duration::from_secs(20), || async {
        (metric(&all.ops_url, "mutt_alerter_paused").await == 1.0).then_some(())
    })
    .await?;
    s.sink.set_behaviour(Behaviour::Accept);
    set_live(&api, "alerter_max_alert_lag", "0").await?;
    wait_until("the flood delivered", Duration::from_secs(60), || async {
        (s.sink.unique() >= 101 + 500).then_some(())
    })
    .await?;
    assert_eq!(metric(&all.ops_url, "mutt_alerter_paused").await, 0.0);
    drop(all);
    s.finish().await
}

/// The forwarder's retries: the backoff's base and ceiling, the attempts an alert has, and
/// the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_retry_settings_apply_live() -> anyhow::Result<()> {
    let s = Stack::new(&[forward_everything()]).await?;
    let all = Mutt::start(
        &s.env,
        &s.cfg("all")
            .set("MUTT_FORWARDER_RETRY_BASE", "30s")
            .set("MUTT_FORWARDER_RETRY_MAX", "30s")
            .set("MUTT_FORWARDER_MAX_ATTEMPTS", "1000")
            .set("MUTT_BREAKER_THRESHOLD", "1000000")
            .set("MUTT_WEBHOOK_TIMEOUT", "30s"),
    )
    .await?;
    let api = Api::new(&all.control_url, "test-key");
    s.sink.set_behaviour(Behaviour::Fail(503, None));
    let events = mutt_devkit::load::build_events(4);

    // forwarder_retry_max: retries at most 20 ms apart instead of up to 30 s.
    set_live(&api, "forwarder_retry_max", "20ms").await?;
    let before = s.requests();
    s.send(&all.ingest_url, &events[..1]).await?;
    wait_until("many retries", Duration::from_secs(5), || async {
        (s.requests() - before >= 10).then_some(())
    })
    .await?;
    set_live(&api, "forwarder_retry_max", "30s").await?;

    // forwarder_retry_base: with a ceiling of 30 s again, a base of 1 ms still retries a
    // new alert several times within a second (1, 2, 4, 8, 16, 32 ms ceilings).
    set_live(&api, "forwarder_retry_base", "1ms").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = s.requests();
    s.send(&all.ingest_url, &events[1..2]).await?;
    wait_until("quick retries", Duration::from_secs(5), || async {
        (s.requests() - before >= 6).then_some(())
    })
    .await?;

    // forwarder_max_attempts: a new alert is dead-lettered after 2 attempts.
    set_live(&api, "forwarder_max_attempts", "2").await?;
    s.send(&all.ingest_url, &events[2..3]).await?;
    let twice = |fields: &std::collections::HashMap<String, Vec<u8>>| {
        fields.get("delivery_count").map(|v| v.as_slice()) == Some(b"2".as_slice())
    };
    wait_until(
        "dead-lettered after 2 attempts",
        Duration::from_secs(10),
        || async {
            read_stream(&s.env, "dlq:forwarder")
                .await
                .ok()?
                .iter()
                .any(|(_, f)| twice(f))
                .then_some(())
        },
    )
    .await?;
    set_live(&api, "forwarder_max_attempts", "1000").await?;

    // webhook_timeout: a webhook that takes 2 s times out at 100 ms.
    s.sink
        .set_behaviour(Behaviour::Hang(Duration::from_secs(2)));
    set_live(&api, "webhook_timeout", "100ms").await?;
    let timeouts = "mutt_moog_requests_total{reason=\"timeout\",status=\"fail\"}";
    s.send(&all.ingest_url, &events[3..4]).await?;
    wait_until("a timeout", Duration::from_secs(5), || async {
        (sample(&all.ops_url, timeouts).await >= 1.0).then_some(())
    })
    .await?;
    s.sink.set_behaviour(Behaviour::Accept);
    drop(all);
    s.finish().await
}

/// How alerts go out: batching and its linger, the shared rate limit and its burst, and
/// how many alerts a forwarder takes into hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_shaping_applies_live() -> anyhow::Result<()> {
    let s = Stack::new(&[forward_everything()]).await?;
    let all = Mutt::start(
        &s.env,
        &s.cfg("all")
            .set("MUTT_FORWARDER_CONCURRENCY", "1")
            .set("MUTT_FORWARDER_BATCH", "5")
            .set("MUTT_WEBHOOK_TIMEOUT", "1s")
            .set("MUTT_BREAKER_THRESHOLD", "1000000")
            .set("MUTT_FORWARDER_RETRY_BASE", "10ms")
            .set("MUTT_FORWARDER_RETRY_MAX", "50ms"),
    )
    .await?;
    let api = Api::new(&all.control_url, "test-key");
    let events = mutt_devkit::load::build_events(300);

    // webhook_batch and webhook_linger: 3 alerts wait 2 s for company, then go together.
    set_live(&api, "webhook_batch", "10").await?;
    set_live(&api, "webhook_linger", "2s").await?;
    s.send(&all.ingest_url, &events[..3]).await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(s.sink.unique(), 0, "still lingering");
    wait_until("one request of 3", Duration::from_secs(5), || async {
        (s.sink.unique() == 3).then_some(())
    })
    .await?;
    assert_eq!(s.sink.seen().batch_sizes, [3]);
    set_live(&api, "webhook_batch", "1").await?;
    set_live(&api, "webhook_linger", "20ms").await?;

    // webhook_rate_limit and webhook_rate_burst: at 2/s with a burst of 2, 20 alerts trickle;
    // a burst of 30 lets the rest through at once.
    set_live(&api, "webhook_rate_limit", "2").await?;
    set_live(&api, "webhook_rate_burst", "2").await?;
    s.send(&all.ingest_url, &events[3..23]).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let trickled = s.sink.unique() - 3;
    assert!(
        trickled <= 6,
        "{trickled} delivered in 1.5 s at 2/s, burst 2"
    );
    set_live(&api, "webhook_rate_burst", "30").await?;
    wait_until("the rest at once", Duration::from_secs(3), || async {
        (s.sink.unique() == 23).then_some(())
    })
    .await?;
    set_live(&api, "webhook_rate_limit", "0").await?;

    // forwarder_batch: with the webhook hanging, a forwarder holds 2 × 1 + forwarder_batch
    // alerts; raising the batch raises what it holds.
    s.sink
        .set_behaviour(Behaviour::Hang(Duration::from_secs(30)));
    s.send(&all.ingest_url, &events[23..300]).await?;
    let held = || async {
        let (_, pending) = s.env.group_state("alerts", "forwarder").await.ok()?;
        Some(pending)
    };
    wait_until("7 in hand", Duration::from_secs(10), || async {
        (held().await? == 7).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(held().await, Some(7));
    set_live(&api, "forwarder_batch", "50").await?;
    wait_until("52 in hand", Duration::from_secs(10), || async {
        (held().await? == 52).then_some(())
    })
    .await?;
    s.sink.set_behaviour(Behaviour::Accept);
    let all_seqs: HashSet<u64> = (0..300).collect();
    wait_until("all 300 delivered", Duration::from_secs(60), || async {
        delivered_seqs(&s.sink).is_superset(&all_seqs).then_some(())
    })
    .await?;
    drop(all);
    s.finish().await
}

/// The circuit breaker: how many failures open it, how long it stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_settings_apply_live() -> anyhow::Result<()> {
    let s = Stack::new(&[forward_everything()]).await?;
    let all = Mutt::start(
        &s.env,
        &s.cfg("all")
            .set("MUTT_BREAKER_THRESHOLD", "1000000")
            .set("MUTT_BREAKER_OPEN", "1h")
            .set("MUTT_FORWARDER_RETRY_BASE", "10ms")
            .set("MUTT_FORWARDER_RETRY_MAX", "50ms")
            .set("MUTT_FORWARDER_MAX_ATTEMPTS", "1000"),
    )
    .await?;
    let api = Api::new(&all.control_url, "test-key");
    let state = "mutt_circuit_breaker_state{name=\"webhook\"}";
    s.sink.set_behaviour(Behaviour::Fail(503, None));
    s.send(&all.ingest_url, &mutt_devkit::load::build_events(5))
        .await?;
    wait_until("many failures", Duration::from_secs(5), || async {
        (s.requests() >= 20).then_some(())
    })
    .await?;
    assert_eq!(
        sample(&all.ops_url, state).await,
        0.0,
        "closed below a threshold of a million"
    );

    // breaker_threshold: 3 failures open it.
    set_live(&api, "breaker_threshold", "3").await?;
    wait_until("the circuit open", Duration::from_secs(5), || async {
        (sample(&all.ops_url, state).await == 1.0).then_some(())
    })
    .await?;
    // breaker_open: open for an hour, nothing is sent...
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = s.requests();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.requests(), before, "no request while open");
    // ...open for 200 ms, a probe goes out, succeeds, and everything follows.
    s.sink.set_behaviour(Behaviour::Accept);
    set_live(&api, "breaker_open", "200ms").await?;
    wait_until("all 5 delivered", Duration::from_secs(10), || async {
        (s.sink.unique() == 5).then_some(())
    })
    .await?;
    drop(all);
    s.finish().await
}

/// Reclaiming: how long an entry may sit idle, how often workers look, how many
/// deliveries an entry gets, how often streams are trimmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaim_settings_apply_live() -> anyhow::Result<()> {
    let s = Stack::new(&[forward_everything()]).await?;
    let ingest = Mutt::start(&s.env, &s.cfg("ingest")).await?;
    let r = s.env.redis().await?;
    let events_key = format!("{}:events", s.env.prefix);
    // Entries that a consumer took and will never acknowledge (it crashed).
    let ghost = |n: usize| {
        let (key, mut r) = (events_key.clone(), r.clone());
        async move {
            let _: redis::Value = redis::cmd("XREADGROUP")
                .arg(&["GROUP", "alerter", "ghost", "COUNT"][..])
                .arg(n)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .query_async(&mut r)
                .await?;
            anyhow::Ok(())
        }
    };
    let events = mutt_devkit::load::build_events(1_020);
    s.send(&ingest.ingest_url, &events[..10]).await?;
    ghost(10).await?;
    let all = Mutt::start(
        &s.env,
        &s.cfg("all")
            .set("MUTT_CLAIM_TIMEOUT", "1h")
            .set("MUTT_CLAIM_INTERVAL", "1h")
            .set("MUTT_TRIM_INTERVAL", "1h"),
    )
    .await?;
    let api = Api::new(&all.control_url, "test-key");

    // claim_interval and claim_timeout: nothing is reclaimed until workers look often
    // enough and the entries count as idle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.sink.unique(), 0);
    set_live(&api, "claim_interval", "200ms").await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(s.sink.unique(), 0, "idle for less than an hour");
    set_live(&api, "claim_timeout", "500ms").await?;
    wait_until(
        "the ghost's 10 delivered",
        Duration::from_secs(10),
        || async { (s.sink.unique() == 10).then_some(()) },
    )
    .await?;

    // max_deliveries: at 1, a reclaimed entry (its second delivery) is dead-lettered.
    set_live(&api, "max_deliveries", "1").await?;
    // Stop the alerter from taking them first: the ghost reads them as they arrive.
    drop(all);
    s.send(&ingest.ingest_url, &events[10..20]).await?;
    ghost(10).await?;
    let all = Mutt::start(&s.env, &s.cfg("all").set("MUTT_TRIM_INTERVAL", "1h")).await?;
    wait_until("10 dead letters", Duration::from_secs(10), || async {
        (read_stream(&s.env, "dlq:alerter").await.ok()?.len() == 10).then_some(())
    })
    .await?;
    let dlq = read_stream(&s.env, "dlq:alerter").await?;
    assert!(String::from_utf8_lossy(&dlq[0].1["last_error"]).contains("delivered 2 times"));

    // trim_interval: 1,000 processed events stay in the stream until trimming runs.
    let len = || async {
        let mut r = s.env.redis().await.ok()?;
        let n: u64 = redis::cmd("XLEN")
            .arg(&events_key)
            .query_async(&mut r)
            .await
            .ok()?;
        Some(n)
    };
    s.send(&ingest.ingest_url, &events[20..]).await?;
    wait_until("1,010 delivered", Duration::from_secs(30), || async {
        (s.sink.unique() == 1_010).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        len().await >= Some(1_000),
        "not trimmed within an hour's interval"
    );
    set_live(&api_of(&all), "trim_interval", "200ms").await?;
    wait_until("trimmed", Duration::from_secs(10), || async {
        (len().await? < 500).then_some(())
    })
    .await?;
    drop((ingest, all));
    s.finish().await
}

fn api_of(m: &Mutt) -> Api {
    Api::new(&m.control_url, "test-key")
}

/// Automatic dead-letter replay: how often, how many per round, and when a letter is
/// parked for an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_replay_settings_apply_live() -> anyhow::Result<()> {
    let s = Stack::new(&[forward_everything()]).await?;
    // One attempt and no circuit: an outage dead-letters each alert at once, as a
    // passing failure (a refusal of the alert's content would be parked instead).
    let cfg = s
        .cfg("all")
        .set("MUTT_FORWARDER_MAX_ATTEMPTS", "1")
        .set("MUTT_BREAKER_THRESHOLD", "1000000");
    let all = Mutt::start(&s.env, &cfg).await?;
    let api = Api::new(&all.control_url, "test-key");
    s.sink.set_behaviour(Behaviour::Fail(503, None));
    s.send(&all.ingest_url, &mutt_devkit::load::build_events(20))
        .await?;
    wait_for_dead_letters(&s.env, "forwarder", 20).await?;
    s.sink.set_behaviour(Behaviour::Accept);

    // dlq_replay_batch 5 and a round every second: five per round, until all are back.
    set_live(&api, "dlq_replay_batch", "5").await?;
    set_live(&api, "dlq_replay_interval", "1s").await?;
    wait_until("a first round", Duration::from_secs(15), || async {
        (s.sink.unique() > 0).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.sink.unique(), 5, "one round replays five");
    wait_until("all 20 replayed", Duration::from_secs(40), || async {
        (s.sink.unique() == 20).then_some(())
    })
    .await?;

    // dlq_max_replays 0: every letter is parked at the next round, none replayed.
    set_live(&api, "dlq_replay_interval", "0s").await?;
    s.sink.set_behaviour(Behaviour::Fail(503, None));
    let more: Vec<Value> = mutt_devkit::load::build_events(30).split_off(20);
    s.send(&all.ingest_url, &more).await?;
    wait_for_dead_letters(&s.env, "forwarder", 10).await?;
    s.sink.set_behaviour(Behaviour::Accept);
    set_live(&api, "dlq_max_replays", "0").await?;
    set_live(&api, "dlq_replay_interval", "1s").await?;
    wait_until("ten parked", Duration::from_secs(20), || async {
        (read_stream(&s.env, "dlq:forwarder:parked")
            .await
            .ok()?
            .len()
            == 10)
            .then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.sink.unique(), 20, "parked letters are not replayed");
    assert!(read_stream(&s.env, "dlq:forwarder").await?.is_empty());
    drop(all);
    s.finish().await
}

/// Ingest's protections: the shared and per-key rate limits, admission by lag, shedding
/// low-severity events first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_settings_apply_live() -> anyhow::Result<()> {
    let s = Stack::new(&[]).await?;
    // Ingest and control, no alerter: the lag grows with every event.
    let ingest = Mutt::start(&s.env, &s.cfg("ingest")).await?;
    let control = Mutt::start(&s.env, &s.cfg("control")).await?;
    let api = Api::new(&control.control_url, "test-key");
    let c = reqwest::Client::new();
    let post = |events: Vec<Value>| {
        let (c, url) = (c.clone(), ingest.ingest_url.clone());
        async move {
            let r = post_events(&c, &url, &json!(events)).await?;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or_default();
            anyhow::Ok((status, body))
        }
    };
    let batch = |n: usize| -> Vec<Value> { (0..n).map(|i| event("h", &format!("e{i}"))).collect() };

    for key in ["ingest_rate_limit", "ingest_key_rate_limit"] {
        set_live(&api, key, "20").await?;
        assert_eq!(post(batch(20)).await?.0, 202, "{key}: a second's worth");
        assert_eq!(
            post(batch(20)).await?.0,
            429,
            "{key}: the next second's worth waits"
        );
        set_live(&api, key, "0").await?;
    }

    // ingest_max_lag: 40 events wait for alerters; a cap of 30 refuses the next request.
    set_live(&api, "ingest_max_lag", "30").await?;
    let (status, body) = wait_until("admission refuses", Duration::from_secs(5), || async {
        post(batch(1))
            .await
            .ok()
            .filter(|(status, _)| *status == 503)
    })
    .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("overloaded"))
    );
    set_live(&api, "ingest_max_lag", "0").await?;

    // ingest_shed_low_severity_lag: past 30, informational events are shed, critical kept.
    set_live(&api, "ingest_shed_low_severity_lag", "30").await?;
    let mixed = vec![
        json!({"hostname": "h", "message": "fyi", "timestamp": "2026-11-26T10:00:00Z", "syslog_severity": "informational"}),
        json!({"hostname": "h", "message": "down", "timestamp": "2026-11-26T10:00:00Z", "syslog_severity": "critical"}),
    ];
    let (status, body) = post(mixed).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["errors"][0]["code"], "shed");
    drop((ingest, control));
    s.finish().await
}

/// Retention's policy, its schedule and its switch: set while the schedule is off, then
/// switched on; every effect is one the defaults would not have had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_settings_apply_live() -> anyhow::Result<()> {
    use crate::retention::{audit_counts, letters, partitions, seed, seeded_config_audit};
    let env = TestEnv::new().await?;
    env.migrate().await?;
    let seeded = seed(&env).await?;
    let cfg = MuttConfig::new("control");
    let control = Mutt::start(&env, &cfg).await?;
    let api = Api::new(&control.control_url, &cfg.api_key);
    set_live(&api, "retention_event_audit_days", "30").await?;
    set_live(&api, "retention_archive_days", "365").await?;
    set_live(&api, "retention_config_audit_days", "400").await?;
    set_live(&api, "retention_parked_letter_days", "10").await?;
    set_live(&api, "retention_partitions_ahead", "5").await?;
    set_live(&api, "retention_interval", "2s").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.count("SELECT count(*) FROM retention_runs").await?,
        0,
        "the harness starts with retention off"
    );

    set_live(&api, "retention_enabled", "on").await?;
    // Two runs: the second comes retention_interval after the first.
    wait_until("two scheduled runs", Duration::from_secs(30), || async {
        (env.count("SELECT count(*) FROM retention_runs")
            .await
            .ok()?
            >= 2)
            .then_some(())
    })
    .await?;
    let now = time::OffsetDateTime::now_utc();
    let days = |n: u64| Duration::from_secs(n * 86_400);
    // 30 days of event audit: months the default 90 would keep are archived.
    let live_parts = partitions(&env, "event_audit_log").await?;
    assert!(
        live_parts.iter().all(|(_, hi)| *hi > now - days(30)),
        "{live_parts:?}"
    );
    let archive = partitions(&env, "event_audit_log_archive").await?;
    assert!(
        archive.iter().any(|(_, hi)| *hi > now - days(90)),
        "{archive:?}"
    );
    // 365 days of archive: the oldest months are gone (7 years would keep them).
    assert!(
        archive.iter().all(|(_, hi)| *hi > now - days(365)),
        "{archive:?}"
    );
    let (live, archived, _) = audit_counts(&env).await?;
    assert!(live + archived < seeded.audit_rows);
    // 400 days of config audit: the 380-day row stays (365 would delete it).
    assert_eq!(seeded_config_audit(&env).await?, ["380d", "10d"]);
    // Parked letters past 10 days go (30 would keep the 20-day one).
    assert_eq!(letters(&env, "dlq:forwarder:parked").await?, ["parked-5d"]);
    assert_eq!(letters(&env, "dlq:forwarder").await?, ["fresh-40d"]);
    // Five months ahead (three by default).
    let five = now.date().replace_day(1).unwrap() + days(5 * 31);
    let name = format!(
        "event_audit_log_{:04}_{:02}",
        five.year(),
        u8::from(five.month())
    );
    assert!(
        live_parts.iter().any(|(n, _)| *n == name),
        "{name}: {live_parts:?}"
    );
    // What the runs did is counted where they ran.
    let m = |name: &'static str| metric(&control.ops_url, name);
    assert!(m("mutt_retention_runs_total").await >= 2.0);
    assert!(m("mutt_retention_events_archived_total").await > 0.0);
    assert!(m("mutt_retention_events_deleted_total").await > 0.0);
    assert!(m("mutt_retention_default_rows_moved_total").await > 0.0);
    assert_eq!(m("mutt_retention_config_audits_deleted_total").await, 1.0);
    assert_eq!(m("mutt_retention_dead_letters_deleted_total").await, 2.0);
    assert!(m("mutt_retention_last_run_timestamp").await > 1.7e9);
    assert!(m("mutt_retention_enforcement_duration_seconds_count").await >= 2.0);
    drop(control);
    env.cleanup().await
}
