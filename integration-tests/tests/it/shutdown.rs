//! SIGTERM drains: what a process holds is finished or left pending, never lost, never
//! delivered twice.

use std::collections::HashSet;
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_without_losing_or_duplicating() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let cfg = MuttConfig::new("all")
        .webhook(sink.url())
        .consumer("drain-1");
    let mut first = Mutt::start(&env, &cfg).await?;

    // Senders keep posting while the process is told to stop.
    let events = mutt_devkit::load::build_events(6_000);
    let chunks: Vec<Vec<Value>> = events.chunks(200).map(<[Value]>::to_vec).collect();
    let url = first.ingest_url.clone();
    let sender = tokio::spawn(async move {
        let c = reqwest::Client::new();
        let mut accepted = HashSet::new();
        for chunk in chunks {
            match post_events(&c, &url, &json!(chunk)).await {
                Ok(r) if r.status() == 202 => {
                    for e in &chunk {
                        accepted.insert(e["seq"].as_u64().unwrap());
                    }
                }
                // Refused or not answered: not accepted, so not owed.
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        accepted
    });
    wait_until("some alerts delivered", Duration::from_secs(30), || async {
        (sink.unique() > 500).then_some(())
    })
    .await?;
    first.terminate()?;
    assert!(
        first.wait_exit(Duration::from_secs(20)).await?,
        "exit status after SIGTERM"
    );
    let log = first.log_text();
    assert!(log.contains("forwarder stopped"), "{log}");
    let accepted = sender.await?;
    assert!(!accepted.is_empty());

    // A new process under the same consumer name finishes the rest.
    let second = Mutt::start(&env, &cfg).await?;
    wait_until(
        "every accepted event delivered",
        Duration::from_secs(60),
        || async { (sink.unique() >= accepted.len()).then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let seen = sink.seen();
        let seqs: HashSet<u64> = seen
            .events
            .iter()
            .map(|e| e["custom_info"]["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, accepted, "delivered = accepted");
        let dups: Vec<_> = seen
            .by_external_id
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect();
        assert!(
            dups.is_empty(),
            "duplicates after a graceful stop: {dups:?}"
        );
    }
    let mut db = env.db().await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM event_audit_log")
        .fetch_one(&mut db)
        .await?;
    assert_eq!(n as usize, accepted.len());
    drop(second);
    stop.cancel();
    env.cleanup().await
}
