//! Dead-letter replays deliver each letter once, whoever replays it and however the
//! replays and purges race.

use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Rig {
    env: TestEnv,
    stop: CancellationToken,
    sink: Sink,
    all: Mutt,
    admin: Api,
}

/// A stack whose webhook refused `n` alerts (400): `n` forwarder dead letters; the webhook
/// accepts again afterwards.
async fn with_dead_letters(n: u64) -> anyhow::Result<Rig> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s"),
    )
    .await?;
    let admin = Api::new(&all.control_url, "test-key");
    sink.set_behaviour(Behaviour::Fail(400, None));
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        n,
        n as usize,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(accepted.len() as u64, n);
    wait_until("the dead letters", Duration::from_secs(30), || async {
        (read_stream(&env, "dlq:forwarder").await.ok()?.len() as u64 == n).then_some(())
    })
    .await?;
    sink.set_behaviour(Behaviour::Accept);
    Ok(Rig {
        env,
        stop,
        sink,
        all,
        admin,
    })
}

impl Rig {
    async fn call(&self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, body, _) = self.admin.call(method, path, Some(body)).await?;
        anyhow::ensure!(status == 200, "{method} {path}: {status} {body}");
        Ok(body)
    }

    async fn finish(self) -> anyhow::Result<()> {
        drop(self.all);
        self.stop.cancel();
        self.env.cleanup().await
    }
}

/// Two replay-all calls at the same moment over 50 letters: before the replay checked that
/// it removed the letter, both appended every letter and every `external_id` reached the
/// webhook twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_replays_deliver_each_letter_once() -> anyhow::Result<()> {
    let rig = with_dead_letters(50).await?;
    let all = json!({"all": true, "reason": "webhook fixed"});
    let (a, b) = tokio::join!(
        rig.call("POST", "/api/v2/dlq/forwarder/replay", all.clone()),
        rig.call("POST", "/api/v2/dlq/forwarder/replay", all.clone()),
    );
    let (a, b) = (a?, b?);
    let replayed = a["replayed"].as_u64().unwrap_or(0) + b["replayed"].as_u64().unwrap_or(0);
    assert_eq!(
        replayed, 50,
        "between them the two calls replayed each letter once: {a} {b}"
    );
    wait_until("50 delivered", Duration::from_secs(30), || async {
        (rig.sink.unique() == 50).then_some(())
    })
    .await?;
    // A late duplicate would show up now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rig.sink.duplicates(), 0, "an alert was delivered twice");
    assert!(read_stream(&rig.env, "dlq:forwarder").await?.is_empty());
    rig.finish().await
}

/// A purge racing a replay: every letter is either replayed (and delivered once) or purged
/// (and never delivered), never resurrected by the replay after the purge removed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_racing_a_replay_is_never_undone() -> anyhow::Result<()> {
    let rig = with_dead_letters(50).await?;
    let all = json!({"all": true, "reason": "race"});
    let (replay, purge) = tokio::join!(
        rig.call("POST", "/api/v2/dlq/forwarder/replay", all.clone()),
        rig.call("POST", "/api/v2/dlq/forwarder/purge", all.clone()),
    );
    let replayed = replay?["replayed"].as_u64().unwrap_or(0);
    let purged = purge?["purged"].as_u64().unwrap_or(0);
    assert_eq!(
        replayed + purged,
        50,
        "replayed {replayed}, purged {purged}"
    );
    wait_until(
        "the replayed delivered",
        Duration::from_secs(30),
        || async { (rig.sink.unique() as u64 == replayed).then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        rig.sink.unique() as u64,
        replayed,
        "a purged letter was delivered"
    );
    assert_eq!(rig.sink.duplicates(), 0);
    assert!(read_stream(&rig.env, "dlq:forwarder").await?.is_empty());
    rig.finish().await
}
