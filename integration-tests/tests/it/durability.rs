//! Acknowledgement after replication (`MUTT_INGEST_MIN_REPLICAS`): a private master and
//! replica on loopback; the replica is killed and started again.

use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::json;
use tokio::time::Instant;

async fn xlen(url: &str, key: &str) -> anyhow::Result<u64> {
    let c = redis::Client::open(url)?;
    let mut conn = c.get_multiplexed_async_connection().await?;
    Ok(redis::cmd("XLEN").arg(key).query_async(&mut conn).await?)
}

async fn inform(port: u16) -> bool {
    tokio::process::Command::new("snmpinform")
        .args(["-v", "2c", "-c", "public", "-t", "1", "-r", "0"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["", "1.3.6.1.6.3.1.1.5.1"])
        .kill_on_drop(true)
        .output()
        .await
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// With `MUTT_INGEST_MIN_REPLICAS=1`, a 202 (and an inform's Response) means the replica
/// holds the events; without the replica, ingest answers 503 `not_replicated` after
/// `MUTT_INGEST_REPLICA_TIMEOUT`, and the resend with the same Idempotency-Key is
/// appended once. An ingest with the default (0) acknowledges from the master alone.
#[tokio::test]
async fn ingest_acknowledges_what_a_replica_holds() -> anyhow::Result<()> {
    anyhow::ensure!(
        which("snmpinform").is_some(),
        "net-snmp's snmpinform is needed"
    );
    let env = TestEnv::new().await?;
    let master = RedisServer::start(false).await?;
    let mut replica = RedisServer::start_replica_of(&master).await?;
    let snmp = free_port();
    let on_master = |role: &str| MuttConfig {
        redis_url: Some(master.url()),
        ..MuttConfig::new(role)
    };
    let m = Mutt::start(
        &env,
        &on_master("ingest")
            .set("MUTT_INGEST_MIN_REPLICAS", "1")
            .set("MUTT_INGEST_REPLICA_TIMEOUT", "300ms")
            .set("MUTT_SNMP_LISTEN", &format!("127.0.0.1:{snmp}"))
            .set("MUTT_SNMP_COMMUNITIES", "public"),
    )
    .await?;
    let plain = Mutt::start(&env, &on_master("ingest")).await?;
    let stream = format!("{}:events", env.prefix);
    let client = reqwest::Client::new();
    let event = |msg: &str| json!({"hostname": "edge-01", "message": msg, "timestamp": "2026-12-07T10:00:00Z"});

    // With the replica there a 503 is only a slow acknowledgement (a loaded machine): a
    // client resends after Retry-After, as here.
    let keyed = |key: &'static str, msg: &'static str| {
        let client = client.clone();
        let url = format!("{}/api/v2/ingest", m.ingest_url);
        let body = event(msg);
        async move {
            client
                .post(url)
                .header("x-api-key", "test-key")
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
        }
    };
    let until_202 = |key: &'static str, msg: &'static str| async move {
        wait_until(
            &format!("202 for {msg:?}"),
            Duration::from_secs(15),
            || async {
                let r = keyed(key, msg).await.ok()?;
                (r.status() == 202).then_some(r)
            },
        )
        .await
    };
    until_202("first", "replicated").await?;
    // The replica holds the event when the answer arrives.
    assert!(xlen(&replica.url(), &stream).await? >= 1);
    wait_until(
        "an inform answered while the replica is there",
        Duration::from_secs(10),
        || async { inform(snmp).await.then_some(()) },
    )
    .await?;

    replica.kill();
    let started = Instant::now();
    let r = keyed("resend-me", "keyed").await?;
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await?;
    assert_eq!(body["error"]["code"], "not_replicated", "{body}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "answered after {took:?}, MUTT_INGEST_REPLICA_TIMEOUT is 300ms"
    );
    // The default acknowledges from the master alone.
    let r = post_events(&client, &plain.ingest_url, &event("unreplicated")).await?;
    assert_eq!(r.status(), 202);
    assert!(!inform(snmp).await, "no Response while no replica confirms");
    // The listener holds (it reads nothing until the replica confirms): a burst of
    // datagrams overflows the socket's receive buffer, and the kernel's drops are counted.
    let burst = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let junk = [0x30u8; 512];
    for _ in 0..40_000 {
        burst.send_to(&junk, ("127.0.0.1", snmp)).await?;
    }
    wait_until(
        "the kernel's drops counted",
        Duration::from_secs(10),
        || async {
            (metric(&m.ops_url, "mutt_ingest_udp_kernel_drops_total").await > 0.0).then_some(())
        },
    )
    .await?;

    replica = RedisServer::start_replica_of(&master).await?;
    let r = until_202("resend-me", "keyed").await?;
    assert_eq!(
        r.headers().get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..]),
        "the resend appended nothing again"
    );
    wait_until(
        "an inform answered again",
        Duration::from_secs(15),
        || async { inform(snmp).await.then_some(()) },
    )
    .await?;
    assert!(metric(&m.ops_url, "mutt_ingest_unreplicated_total").await >= 1.0);
    assert!(xlen(&replica.url(), &stream).await? >= 4);
    drop((m, plain));
    env.cleanup().await
}
