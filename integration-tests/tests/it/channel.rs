//! The control channel: every process follows `{p}:control` and polls the snapshot, so an
//! announcement it missed costs at most the poll interval (1 s), and a Redis restart or a
//! failover (see `failover`) ends with every process on the newest snapshot. A private
//! Redis, so that killing its pub/sub clients touches no other test.

use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Three processes on `redis`: the control plane, an ingest and an alerter.
async fn processes(env: &TestEnv, redis: &RedisServer) -> anyhow::Result<Vec<Mutt>> {
    env.migrate().await?;
    let mut all = Vec::new();
    for role in ["control", "ingest", "alerter"] {
        let cfg = MuttConfig {
            redis_url: Some(redis.url()),
            ..MuttConfig::new(role)
        };
        all.push(Mutt::start(env, &cfg).await?);
    }
    Ok(all)
}

/// Changes a hot setting through the control API; returns the new snapshot version.
async fn change(api: &Api, value: u64) -> anyhow::Result<i64> {
    let (status, body, _) = api
        .call(
            "PUT",
            "/api/v2/config/webhook_rate_limit",
            Some(json!({"value": value, "reason": "control channel test"})),
        )
        .await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    body["version"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no version in {body}"))
}

/// Waits until the three processes report `version`; returns how long that took.
async fn converged(api: &Api, version: i64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    wait_until(
        &format!("every process on version {version}"),
        Duration::from_secs(15),
        || async {
            let v = api.get("/api/v2/config/versions").await.ok()?;
            let consumers = v["consumers"].as_array()?;
            (consumers.len() == 3
                && consumers
                    .iter()
                    .all(|c| c["version"].as_i64() == Some(version)))
            .then_some(())
        },
    )
    .await?;
    Ok(t.elapsed())
}

/// Kills every pub/sub connection of `redis` every 5 ms until `stop`: the subscribers,
/// which wait 200 ms before resubscribing, are disconnected almost all the time.
fn keep_killing_subscribers(url: String, stop: CancellationToken) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut killed = 0;
        let Ok(mut conn) = async {
            redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await
        }
        .await
        else {
            return killed;
        };
        while !stop.is_cancelled() {
            let n: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut conn)
                .await
                .unwrap_or(0);
            killed += n;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        killed
    })
}

/// A change published while every subscriber is disconnected still reaches every
/// process, by the snapshot poll; it is then announced normally again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_announcement_is_caught_up_by_the_poll() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let redis = RedisServer::start(false).await?;
    let ps = processes(&env, &redis).await?;
    let api = Api::new(&ps[0].control_url, "test-key");
    let first = change(&api, 1000).await?;
    converged(&api, first).await?;

    let stop = CancellationToken::new();
    let killer = keep_killing_subscribers(redis.url(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let missed = change(&api, 2000).await?;
    let took = converged(&api, missed).await?;
    stop.cancel();
    let killed = killer.await?;
    eprintln!(
        "missed announcement: every process applied it in {took:?} ({killed} subscriber connections killed)"
    );
    assert!(killed >= 3, "the subscribers were connected and killed");

    // Subscribed again, the next change is announced and applied.
    let next = change(&api, 3000).await?;
    converged(&api, next).await?;
    drop(ps);
    env.cleanup().await
}

/// Redis restarts (AOF keeps the snapshot): every process reconnects, resubscribes and
/// applies the next change; none stays on an old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_every_process_is_on_the_newest_snapshot() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let mut redis = RedisServer::start(true).await?;
    let ps = processes(&env, &redis).await?;
    let api = Api::new(&ps[0].control_url, "test-key");
    let before = change(&api, 1000).await?;
    converged(&api, before).await?;

    redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await?;
    let after = wait_until(
        "the control plane to accept a change again",
        Duration::from_secs(20),
        || async { change(&api, 4000).await.ok() },
    )
    .await?;
    assert!(after > before);
    let took = converged(&api, after).await?;
    eprintln!("after a Redis restart: every process applied the next change in {took:?}");
    let cfg = api.get("/api/v2/config/webhook_rate_limit").await?;
    assert_eq!(cfg["value"].as_str(), Some("4000"), "{cfg}");
    drop(ps);
    env.cleanup().await
}
