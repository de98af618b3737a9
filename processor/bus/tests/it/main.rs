//! The bus against a real Redis (`REDIS_URL`, default the local one), each test under its
//! own key prefix.

use std::time::Duration;

use mutt_bus::dlq::{self, DeadLetter};
use mutt_bus::unhandled::FingerprintCount;
use mutt_bus::{Bus, NewEntry, TraceContext};

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn bus() -> anyhow::Result<Bus> {
    let prefix = format!("bus-test-{}", uuid::Uuid::new_v4().simple());
    Ok(Bus::connect(&url(), &prefix).await?)
}

fn entry(payload: &str) -> NewEntry {
    NewEntry::new(
        payload.as_bytes().to_vec(),
        TraceContext {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: None,
        },
    )
}

async fn raw(bus: &Bus) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let _ = bus;
    Ok(redis::Client::open(url())?
        .get_multiplexed_async_connection()
        .await?)
}

#[tokio::test]
async fn append_read_ack_and_backlog_cursor() -> anyhow::Result<()> {
    let bus = bus().await?;
    let s = bus.names().events();
    bus.ensure_group(&s, "g").await?;
    bus.ensure_group(&s, "g").await?; // idempotent
    let ids = bus
        .append(&s, &[entry("a"), entry("b"), entry("c")])
        .await?;
    assert_eq!(ids.len(), 3);

    let mut r = bus
        .reader(&s, "g", "c1", Duration::from_millis(100))
        .await?;
    let got = r.read(2).await?; // backlog (empty) → switches to new entries on the next read
    assert!(got.is_empty());
    let got = r.read(2).await?;
    assert_eq!(
        got.iter().map(|e| e.payload().unwrap()).collect::<Vec<_>>(),
        [b"a", b"b"]
    );
    assert_eq!(
        got[0].trace().traceparent.as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );

    // A new reader under the same name gets its pending entries back, each once, then new ones.
    let mut again = bus
        .reader(&s, "g", "c1", Duration::from_millis(100))
        .await?;
    let first = again.read(1).await?;
    let second = again.read(1).await?;
    let third = again.read(1).await?;
    assert_eq!(first[0].id, ids[0]);
    assert_eq!(second[0].id, ids[1]);
    assert!(third.is_empty(), "backlog done");
    let fourth = again.read(10).await?;
    assert_eq!(fourth.len(), 1);
    assert_eq!(fourth[0].id, ids[2]);

    assert_eq!(bus.ack(&s, "g", &ids).await?, 3);
    assert_eq!(bus.ack(&s, "g", &ids).await?, 0);
    assert_eq!(bus.len(&s).await?, 3);
    Ok(())
}

#[tokio::test]
async fn ack_and_append_is_one_transaction() -> anyhow::Result<()> {
    let bus = bus().await?;
    let (events, alerts) = (bus.names().events(), bus.names().alerts());
    bus.ensure_group(&events, "g").await?;
    bus.append(&events, &[entry("e1"), entry("e2")]).await?;
    let mut r = bus
        .reader(&events, "g", "c", Duration::from_millis(50))
        .await?;
    r.read(10).await?;
    let got = r.read(10).await?;
    let ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
    bus.ack_and_append(&events, "g", &ids, &alerts, &[entry("alert")])
        .await?;
    assert_eq!(bus.len(&alerts).await?, 1);
    let by_id = bus.entries_by_id(&alerts, &Vec::<String>::new()).await?;
    assert!(by_id.is_empty());
    let mut c = raw(&bus).await?;
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&events)
        .arg("g")
        .query_async(&mut c)
        .await?;
    match pending {
        redis::Value::Array(a) => assert_eq!(a[0], redis::Value::Int(0)),
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn dead_letters_keep_fields_and_provenance() -> anyhow::Result<()> {
    let bus = bus().await?;
    let s = bus.names().events();
    bus.ensure_group(&s, "alerter").await?;
    bus.append(&s, &[entry("poison")]).await?;
    let mut r = bus
        .reader(&s, "alerter", "c", Duration::from_millis(50))
        .await?;
    r.read(10).await?;
    let got = r.read(10).await?;
    let letter = DeadLetter {
        entry: &got[0],
        source_stream: &s,
        group: "alerter",
        consumer: "c",
        delivery_count: 4,
        last_error: "undecodable",
        first_failure_ms: 1,
        last_failure_ms: 2,
    };
    bus.move_to_dlq(&[letter]).await?;
    let dlq = bus.names().dlq("alerter");
    let mut c = raw(&bus).await?;
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(&dlq)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await?;
    let text = format!("{v:?}");
    for needle in [
        "poison",
        "traceparent",
        "source_stream",
        "alerter",
        "undecodable",
        &got[0].id,
    ] {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }
    let entries = bus.entries_by_id(&dlq, &Vec::new()).await?;
    assert!(entries.is_empty());
    // The source entry is acknowledged by the same transaction.
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&s)
        .arg("alerter")
        .query_async(&mut c)
        .await?;
    assert!(matches!(pending, redis::Value::Array(ref a) if a[0] == redis::Value::Int(0)));
    let all: redis::Value = redis::cmd("XRANGE")
        .arg(&dlq)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await?;
    let parsed = match all {
        redis::Value::Array(a) => a.len(),
        _ => 0,
    };
    assert_eq!(parsed, 1);
    assert_eq!(dlq::original_fields(&got[0]).count(), 2);
    Ok(())
}

fn group<'a>(host: &'a str, fp: &str, ids: &[&'a str]) -> FingerprintCount<'a> {
    FingerprintCount {
        hostname: host.into(),
        fingerprint: fp.into(),
        event_ids: ids.to_vec(),
    }
}

#[tokio::test]
async fn unhandled_counter_triggers_once_per_window_and_survives_redelivery() -> anyhow::Result<()>
{
    let bus = bus().await?;
    let w = Duration::from_millis(400);
    // 3 + 2 crosses a threshold of 4 at the fourth event, "e4".
    let r = bus
        .count_unhandled(
            &[
                group("h", "fp", &["e1", "e2", "e3"]),
                group("h", "other", &["x1"]),
            ],
            4,
            w,
        )
        .await?;
    assert_eq!(r, [None, None]);
    // A redelivered batch below the threshold counts nothing again: before the counter was
    // a set of event ids, this crossed the threshold with 3 distinct events.
    let r = bus
        .count_unhandled(&[group("h", "fp", &["e1", "e2", "e3"])], 4, w)
        .await?;
    assert_eq!(r, [None]);
    let r = bus
        .count_unhandled(&[group("h", "fp", &["e4", "e5"])], 4, w)
        .await?;
    assert_eq!(r, [Some("e4".to_string())]);
    // Silent for the window...
    let r = bus
        .count_unhandled(&[group("h", "fp", &["e6", "e7", "e8", "e9"])], 4, w)
        .await?;
    assert_eq!(r, [None]);
    // ...except for a redelivery of the batch that triggered, which gets the same answer.
    let r = bus
        .count_unhandled(&[group("H", "fp", &["e4", "e5"])], 4, w)
        .await?;
    assert_eq!(r, [Some("e4".to_string())]);
    // After the window, counting starts again.
    tokio::time::sleep(w + Duration::from_millis(100)).await;
    let r = bus
        .count_unhandled(&[group("h", "fp", &["f1", "f2", "f3", "f4", "f5"])], 4, w)
        .await?;
    assert_eq!(r, [Some("f4".to_string())]);
    Ok(())
}

#[tokio::test]
async fn trimming_keeps_everything_a_group_has_not_delivered_or_acknowledged() -> anyhow::Result<()>
{
    let bus = bus().await?;
    let s = bus.names().events();
    bus.ensure_group(&s, "g1").await?;
    bus.ensure_group(&s, "g2").await?;
    let entries: Vec<NewEntry> = (0..1000).map(|i| entry(&format!("e{i}"))).collect();
    let ids = bus.append(&s, &entries).await?;
    // g1 has everything delivered but only the first 500 acknowledged.
    let mut r1 = bus.reader(&s, "g1", "c", Duration::from_millis(50)).await?;
    r1.read(1).await?;
    let got = r1.read(1000).await?;
    assert_eq!(got.len(), 1000);
    bus.ack(&s, "g1", &ids[..500]).await?;
    // g2 has delivered and acknowledged 700.
    let mut r2 = bus.reader(&s, "g2", "c", Duration::from_millis(50)).await?;
    r2.read(1).await?;
    let got = r2.read(700).await?;
    assert_eq!(got.len(), 700);
    bus.ack(&s, "g2", &ids[..700]).await?;
    assert_eq!(bus.safe_trim_point(&s).await?, Some(ids[500].clone()));
    bus.trim_acknowledged(&s).await?;
    let left = bus.entries_by_id(&s, ids[500..].iter()).await?;
    assert_eq!(left.len(), 500, "nothing g1 holds was removed");
    assert!(bus.len(&s).await? >= 500);
    // g1 acknowledges the rest: now g2's undelivered entries (700..) are the bound.
    bus.ack(&s, "g1", &ids[500..]).await?;
    let point = bus.safe_trim_point(&s).await?.unwrap();
    let (ms, seq) = ids[699].split_once('-').unwrap();
    assert_eq!(point, format!("{ms}-{}", seq.parse::<u64>()? + 1));
    bus.trim_acknowledged(&s).await?;
    assert_eq!(bus.entries_by_id(&s, ids[700..].iter()).await?.len(), 300);
    // A stream without groups is never trimmed.
    let lonely = format!("{}:lonely", bus.names().prefix());
    bus.append(&lonely, &[entry("x")]).await?;
    assert_eq!(bus.trim_acknowledged(&lonely).await?, None);
    Ok(())
}

#[tokio::test]
async fn only_idle_consumers_holding_nothing_are_removed() -> anyhow::Result<()> {
    let bus = bus().await?;
    let s = bus.names().events();
    bus.ensure_group(&s, "g").await?;
    let ids = bus.append(&s, &[entry("a")]).await?;
    let mut holder = bus
        .reader(&s, "g", "holder", Duration::from_millis(50))
        .await?;
    holder.read(1).await?;
    assert_eq!(holder.read(1).await?.len(), 1);
    let mut idle = bus
        .reader(&s, "g", "idle", Duration::from_millis(50))
        .await?;
    idle.read(1).await?;
    idle.read(1).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let removed = bus
        .remove_idle_consumers(&s, "g", Duration::from_millis(50), "me")
        .await?;
    assert_eq!(removed, ["idle"]);
    // The holder keeps its entry; renewing works for it, and reports it lost to anyone else.
    assert_eq!(
        bus.delivery_counts(&s, "g", &ids).await?.get(&ids[0]),
        Some(&1)
    );
    assert!(bus.renew(&s, "g", "holder", &ids).await?.is_empty());
    assert_eq!(bus.renew(&s, "g", "someone-else", &ids).await?, ids);
    Ok(())
}

#[tokio::test]
async fn the_circuit_opens_lets_one_probe_through_and_closes() -> anyhow::Result<()> {
    use mutt_bus::guard::CircuitState;
    let bus = bus().await?;
    let open = Duration::from_millis(300);
    let lease = Duration::from_secs(5);
    for _ in 0..2 {
        bus.circuit_record("w", false, 3).await?;
    }
    assert!(bus.circuit_allow("w", open, lease, "a").await?.allowed);
    let r = bus.circuit_record("w", false, 3).await?;
    assert_eq!(
        (r.previous, r.state),
        (CircuitState::Closed, CircuitState::Open)
    );
    let a = bus.circuit_allow("w", open, lease, "a").await?;
    assert!(!a.allowed && a.retry_in > Duration::ZERO);
    tokio::time::sleep(open + Duration::from_millis(50)).await;
    // One probe, whoever asks first; the others wait.
    let first = bus.circuit_allow("w", open, lease, "a").await?;
    let second = bus.circuit_allow("w", open, lease, "b").await?;
    assert!(first.allowed && first.state == CircuitState::HalfOpen);
    assert!(!second.allowed);
    // A failed probe re-opens; a successful one closes.
    assert_eq!(
        bus.circuit_record("w", false, 3).await?.state,
        CircuitState::Open
    );
    tokio::time::sleep(open + Duration::from_millis(50)).await;
    assert!(bus.circuit_allow("w", open, lease, "b").await?.allowed);
    assert_eq!(
        bus.circuit_record("w", true, 3).await?.state,
        CircuitState::Closed
    );
    assert!(bus.circuit_allow("w", open, lease, "a").await?.allowed);
    Ok(())
}

#[tokio::test]
async fn the_rate_limit_is_shared_and_bursts_are_bounded() -> anyhow::Result<()> {
    let bus = bus().await?;
    let other = Bus::connect(&url(), bus.names().prefix()).await?;
    // 100/s with bursts of 10: ten at once, then the eleventh waits about 10 ms.
    assert_eq!(bus.rate_take("w", 100, 10, 6).await?, Duration::ZERO);
    assert_eq!(other.rate_take("w", 100, 10, 4).await?, Duration::ZERO);
    let wait = bus.rate_take("w", 100, 10, 1).await?;
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(11),
        "{wait:?}"
    );
    tokio::time::sleep(wait).await;
    assert_eq!(other.rate_take("w", 100, 10, 1).await?, Duration::ZERO);
    assert_eq!(
        bus.rate_take("w", 0, 1, 1000).await?,
        Duration::ZERO,
        "0 means no limit"
    );
    Ok(())
}

/// Pending entries of `group` on `stream`.
async fn pending(bus: &Bus, stream: &str, group: &str) -> anyhow::Result<i64> {
    let mut r = raw(bus).await?;
    let v: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(&mut r)
        .await?;
    Ok(v.0)
}

/// An append that Redis refuses at run time must not let the acknowledgement commit. In a
/// MULTI/EXEC transaction a failing XADD does not stop the XACK after it, so the events
/// were acknowledged and their alerts lost; the script stops at the error instead.
#[tokio::test]
async fn a_refused_append_leaves_the_entries_pending() -> anyhow::Result<()> {
    let bus = bus().await?;
    let (events, alerts) = (bus.names().events(), bus.names().alerts());
    bus.ensure_group(&events, "alerter").await?;
    bus.append(&events, &[entry("a"), entry("b")]).await?;
    let mut r = bus
        .reader(&events, "alerter", "c1", Duration::from_millis(100))
        .await?;
    r.read(10).await?;
    let ids: Vec<String> = r.read(10).await?.into_iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 2);
    // The alerts stream is not a stream: every XADD to it fails with WRONGTYPE.
    let mut c = raw(&bus).await?;
    let _: () = redis::cmd("SET")
        .arg(&alerts)
        .arg("oops")
        .query_async(&mut c)
        .await?;
    let refused = bus
        .ack_and_append(&events, "alerter", &ids, &alerts, &[entry("x"), entry("y")])
        .await;
    assert!(refused.is_err(), "the append was refused");
    assert_eq!(
        pending(&bus, &events, "alerter").await?,
        2,
        "nothing acknowledged"
    );
    // Once the alerts stream works again, the same call succeeds.
    let _: () = redis::cmd("DEL").arg(&alerts).query_async(&mut c).await?;
    bus.ack_and_append(&events, "alerter", &ids, &alerts, &[entry("x"), entry("y")])
        .await?;
    assert_eq!(pending(&bus, &events, "alerter").await?, 0);
    assert_eq!(bus.len(&alerts).await?, 2);

    // The same for a dead letter: the DLQ refusing the append leaves the entry pending.
    bus.append(&events, &[entry("c")]).await?;
    let got = r.read(10).await?;
    let dlq = bus.names().dlq("alerter");
    let _: () = redis::cmd("SET")
        .arg(&dlq)
        .arg("oops")
        .query_async(&mut c)
        .await?;
    let letter = DeadLetter {
        entry: &got[0],
        source_stream: &events,
        group: "alerter",
        consumer: "c1",
        delivery_count: 1,
        last_error: "poison",
        first_failure_ms: 1,
        last_failure_ms: 2,
    };
    assert!(
        bus.move_to_dlq(std::slice::from_ref(&letter))
            .await
            .is_err()
    );
    assert_eq!(pending(&bus, &events, "alerter").await?, 1);
    let _: () = redis::cmd("DEL").arg(&dlq).query_async(&mut c).await?;
    bus.move_to_dlq(std::slice::from_ref(&letter)).await?;
    assert_eq!(pending(&bus, &events, "alerter").await?, 0);
    assert_eq!(bus.len(&dlq).await?, 1);
    Ok(())
}

/// A request appended once within its window is not appended again; another request is.
#[tokio::test]
async fn append_once_remembers_requests_for_their_window() -> anyhow::Result<()> {
    let bus = bus().await?;
    let s = bus.names().events();
    let w = Duration::from_millis(300);
    let first = bus
        .append_once(&s, "req-1", w, &[entry("a"), entry("b")])
        .await?;
    assert_eq!(first.map(|ids| ids.len()), Some(2));
    assert_eq!(
        bus.append_once(&s, "req-1", w, &[entry("a"), entry("b")])
            .await?,
        None
    );
    assert!(
        bus.append_once(&s, "req-2", w, &[entry("c")])
            .await?
            .is_some()
    );
    assert_eq!(bus.len(&s).await?, 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        bus.append_once(&s, "req-1", w, &[entry("a")])
            .await?
            .is_some(),
        "forgotten after its window"
    );
    Ok(())
}

/// A key set read before a revocation can never replace the set published after it.
#[tokio::test]
async fn an_older_key_set_never_replaces_a_newer_one() -> anyhow::Result<()> {
    use mutt_bus::control::KeyRecord;
    let bus = bus().await?;
    let key = |name: &str| KeyRecord {
        digest: format!("{name:0>64}"),
        name: name.into(),
        scopes: vec!["ingest".into()],
        expires_ms: None,
    };
    assert_eq!(bus.publish_keys(7, &[key("a")]).await?, 7);
    // A slow publisher that read the keys at version 6, when "revoked" was still live.
    assert_eq!(bus.publish_keys(6, &[key("a"), key("revoked")]).await?, 7);
    let names: Vec<String> = bus.keys().await?.into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(bus.publish_keys(8, &[key("b")]).await?, 8);
    let names: Vec<String> = bus.keys().await?.into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["b"]);
    Ok(())
}

/// A private `redis-server` on a free loopback port, killed on drop.
struct Private {
    child: std::process::Child,
    port: u16,
}

impl Private {
    async fn start(replica_of: Option<u16>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = std::process::Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        if let Some(m) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
        }
        let s = Self {
            child: cmd.spawn()?,
            port,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let up = async {
                let mut c = redis::Client::open(s.url())?
                    .get_multiplexed_async_connection()
                    .await?;
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut c)
                    .await?;
                Ok::<_, anyhow::Error>(
                    replica_of.is_none() || info.contains("master_link_status:up"),
                )
            };
            if up.await.unwrap_or(false) {
                return Ok(s);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "redis on {port} not up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()?
            .success();
        anyhow::ensure!(ok, "kill {sig}");
        Ok(())
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wait_replicas` confirms what the master acknowledged on any connection: a `WAIT` on
/// a connection that made no write of its own (one replaced by a reconnect after the
/// append) would answer at once with every attached replica, holding the append or not.
#[tokio::test]
async fn waiting_for_replicas_covers_writes_made_on_another_connection() -> anyhow::Result<()> {
    let master = Private::start(None).await?;
    let replica = Private::start(Some(master.port)).await?;
    let writer = Bus::connect(&master.url(), "bus-test-wait").await?;
    let waiter = writer.with_own_connection().await?;
    let s = writer.names().events();
    // The replica stays attached but applies nothing.
    replica.signal("-STOP")?;
    writer
        .append(&s, &[entry("held by the master only")])
        .await?;
    assert_eq!(
        waiter.wait_replicas(1, Duration::from_millis(300)).await?,
        0,
        "a stopped replica cannot have confirmed the append"
    );
    replica.signal("-CONT")?;
    assert_eq!(waiter.wait_replicas(1, Duration::from_secs(5)).await?, 1);
    assert_eq!(
        writer.master_generation(),
        0,
        "no failover without Sentinel"
    );
    Ok(())
}
