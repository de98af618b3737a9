//! Bad input gets a clear error, and nothing accepted is lost.

use std::time::Duration;

use mutt_core::rules::{MatchType, Rule};
use mutt_integration_tests::*;
use serde_json::{Value, json};

fn good(n: usize) -> Value {
    json!({"hostname": "h1", "message": format!("ok event {n}"), "timestamp": "2026-11-26T10:00:00.1234567Z", "n": n})
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    ct: Option<&str>,
    key: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client.post(url).body(body);
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let r = req.send().await.expect("ingest answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_accepted_events_all_arrive() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[Rule {
        id: 0,
        match_string: Some("ok event".into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 1,
        prod_handling: "Page_only".into(),
        dev_handling: "Page_only".into(),
        team_assignment: "T".into(),
        is_active: true,
    }])
    .await?;
    let mutt = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_INGEST_MAX_BODY_BYTES", "1048576")
            .set("MUTT_INGEST_MAX_BATCH", "100"),
    )
    .await?;
    let c = reqwest::Client::new();
    let v2 = format!("{}/api/v2/ingest", mutt.ingest_url);
    let json_ct = Some("application/json");
    let key = Some("test-key");
    let mut accepted = 0usize;

    // (name, content type, API key, body, expected status, expected error code)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        ("no key", json_ct, None, b"{}".to_vec(), 401, "unauthorized"),
        (
            "wrong key",
            json_ct,
            Some("nope"),
            b"{}".to_vec(),
            401,
            "unauthorized",
        ),
        (
            "malformed",
            json_ct,
            key,
            b"{\"hostname\":".to_vec(),
            400,
            "malformed_body",
        ),
        (
            "invalid utf-8",
            json_ct,
            key,
            b"{\"hostname\":\"\xff\xfe\",\"message\":\"m\",\"timestamp\":\"2026-01-01T00:00:00Z\"}"
                .to_vec(),
            400,
            "malformed_body",
        ),
        (
            "empty array",
            json_ct,
            key,
            b"[]".to_vec(),
            400,
            "empty_batch",
        ),
        (
            "text/plain",
            Some("text/plain"),
            key,
            b"hello".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            key,
            serde_json::to_vec(&good(0))?,
            415,
            "unsupported_media_type",
        ),
        (
            "wrong type",
            json_ct,
            key,
            br#"{"hostname": 5, "message": "m", "timestamp": "2026-01-01T00:00:00Z"}"#.to_vec(),
            400,
            "invalid_event",
        ),
        (
            "missing field",
            json_ct,
            key,
            br#"{"hostname": "h", "timestamp": "2026-01-01T00:00:00Z"}"#.to_vec(),
            400,
            "invalid_event",
        ),
        (
            "bad timestamp",
            json_ct,
            key,
            br#"{"hostname": "h", "message": "m", "timestamp": "26/11/2026"}"#.to_vec(),
            400,
            "invalid_event",
        ),
        (
            "huge field",
            json_ct,
            key,
            serde_json::to_vec(
                &json!({"hostname": "h", "message": "x".repeat(20_000), "timestamp": "2026-01-01T00:00:00Z"}),
            )?,
            400,
            "invalid_event",
        ),
        (
            "too many",
            json_ct,
            key,
            serde_json::to_vec(&(0..101).map(good).collect::<Vec<_>>())?,
            413,
            "too_many_events",
        ),
        (
            "a scalar",
            json_ct,
            key,
            b"42".to_vec(),
            400,
            "invalid_event",
        ),
        (
            "all invalid",
            json_ct,
            key,
            b"[1, 2]".to_vec(),
            400,
            "invalid_events",
        ),
    ];
    for (name, ct, k, body, want_status, want_code) in cases {
        let (status, body, headers) = send(&c, &v2, ct, k, body).await;
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["error"]["code"], want_code, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert!(headers.contains_key("x-correlation-id"), "{name}");
        assert_eq!(
            body["correlation_id"],
            headers["x-correlation-id"].to_str()?,
            "{name}"
        );
    }
    // A body over the limit is refused on its declared length, before it is read: the
    // client gets the 413 even if it has not finished sending (read here over raw TCP,
    // since an HTTP client still writing the body may see the connection close first).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = mutt.ingest_url.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.write_all(
            b"POST /api/v2/ingest HTTP/1.1\r\nHost: x\r\nX-API-Key: test-key\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{\"hostname\"",
        )
        .await?;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("body_too_large"), "{answer}");
    }
    let (_, body, _) = send(
        &c,
        &v2,
        json_ct,
        key,
        br#"{"hostname": 5, "message": "m", "timestamp": "2026-01-01T00:00:00Z"}"#.to_vec(),
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "hostname");
    assert_eq!(body["errors"][0]["code"], "wrong_type");

    // A mixed batch: the valid items are accepted, the others named by index.
    let mixed = json!([good(1), {"hostname": "h"}, good(2), "nope", good(3)]);
    let r = c
        .post(&v2)
        .header("x-api-key", "test-key")
        .header("x-correlation-id", "my-corr-1")
        .json(&mixed)
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-correlation-id"], "my-corr-1");
    let b: Value = r.json().await?;
    assert_eq!(
        (b["accepted"].as_u64(), b["rejected"].as_u64()),
        (Some(3), Some(2))
    );
    let idx: Vec<u64> = b["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [1, 3]);
    accepted += 3;

    // NDJSON, with a broken line among good ones.
    let nd = format!(
        "{}\n{{broken\n\n{}\r\n",
        serde_json::to_string(&good(4))?,
        serde_json::to_string(&good(5))?
    );
    let (status, b, _) = send(&c, &v2, Some("application/x-ndjson"), key, nd.into_bytes()).await;
    assert_eq!(status, 202, "{b}");
    assert_eq!(
        (b["accepted"].as_u64(), b["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(b["errors"][0]["index"], 1);
    accepted += 2;

    // One object.
    let (status, b, _) = send(&c, &v2, json_ct, key, serde_json::to_vec(&good(6))?).await;
    assert_eq!(status, 202);
    assert!(b["event_id"].as_str().is_some());
    accepted += 1;

    // v1: one object, v1 shape, deprecation headers; arrays are refused.
    let v1 = format!("{}/api/v1/ingest", mutt.ingest_url);
    let (status, b, h) = send(&c, &v1, json_ct, key, serde_json::to_vec(&good(7))?).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["status"], "queued");
    assert!(h.contains_key("deprecation") && h.contains_key("sunset") && h.contains_key("link"));
    accepted += 1;
    let (status, b, h) = send(&c, &v1, json_ct, key, b"[{}]".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(b["status"], "error");
    assert!(h.contains_key("deprecation"));

    // Everything accepted arrives, once; the refused never do.
    wait_until(
        "accepted events at the webhook",
        Duration::from_secs(30),
        || async { (sink.unique() >= accepted).then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ns: Vec<u64> = sink
        .seen()
        .events
        .iter()
        .map(|e| e["custom_info"]["n"].as_u64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, [1, 2, 3, 4, 5, 6, 7]);
    let mut db = env.db().await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM event_audit_log")
        .fetch_one(&mut db)
        .await?;
    assert_eq!(n as usize, accepted);
    drop(mutt);
    stop.cancel();
    env.cleanup().await
}

/// Messages built to make the fingerprint scanner restart at every byte (16,000 colons:
/// every position looked like the start of an IPv6 address and was scanned to the end of
/// the line) must not stall the alerter: an event a rule forwards, sent behind 300 of
/// them, arrives within seconds. Before the scanner was bounded it had not arrived after
/// 15 seconds, and the batch's leases went unrenewed on the busy runtime threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_messages_do_not_stall_the_alerter() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[Rule {
        id: 0,
        match_string: Some("FORWARD-ME".into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 1,
        prod_handling: "Page_and_ticket".into(),
        dev_handling: "Page_and_ticket".into(),
        team_assignment: "NOC".into(),
        is_active: true,
    }])
    .await?;
    let all = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v2/ingest", all.ingest_url);
    let colons = ":".repeat(16_000);
    for _ in 0..3 {
        let batch: Vec<Value> = (0..100)
            .map(|i| json!({"hostname": format!("h{i}"), "message": colons, "timestamp": "2026-11-26T10:00:00Z"}))
            .collect();
        let (status, body, _) = send(
            &client,
            &url,
            Some("application/json"),
            Some("test-key"),
            serde_json::to_vec(&batch)?,
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body, _) = send(
        &client,
        &url,
        Some("application/json"),
        Some("test-key"),
        serde_json::to_vec(&json!({"hostname": "core-1", "message": "FORWARD-ME now", "timestamp": "2026-11-26T10:00:00Z"}))?,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_until(
        "the forwarded event behind them",
        Duration::from_secs(8),
        || async { (sink.unique() == 1).then_some(()) },
    )
    .await?;
    drop(all);
    stop.cancel();
    env.cleanup().await
}
