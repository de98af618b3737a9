//! Upgrading a MUTT v2.x installation in place: its database (`mutt migrate` on the v2.5
//! schema keeps every row, v2's INSERTs still work, the pipeline routes with the old rules)
//! and what it left in Redis (`mutt migrate --from-v2-queues` moves its lists into the
//! streams, and the pipeline takes it from there).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use mutt_core::codec;
use mutt_core::event::Limits;
use mutt_integration_tests::*;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// MUTT v2.5's schema with data (see the file's header).
const V25_SCHEMA: &str = include_str!("fixtures/mutt_v25_schema.sql");

/// (rows, digest) of `cols` of `table`: what v2 wrote, compared before and after.
async fn digest(
    db: &mut PgConnection,
    table: &str,
    cols: &str,
    order: &str,
) -> anyhow::Result<(i64, String)> {
    // Identifiers cannot be bound; these are the test's own constants.
    let sql = format!(
        "SELECT count(*), coalesce(md5(string_agg(row({cols})::text, '|' ORDER BY {order})), '') FROM {table}"
    );
    Ok(sqlx::query_as(&sql).fetch_one(db).await?)
}

/// v2's columns of each v2 table, and the table that holds them after the upgrade (v2.5's
/// plain archive is kept as `event_audit_log_archive_v2`). The audit rows' partitions are
/// part of what must not change.
const V2_TABLES: &[(&str, &str, &str, &str)] = &[
    (
        "alert_rules",
        "alert_rules",
        "id, match_string, trap_oid, syslog_severity, match_type, priority, prod_handling, dev_handling, team_assignment, is_active",
        "id",
    ),
    (
        "development_hosts",
        "development_hosts",
        "hostname",
        "hostname",
    ),
    (
        "device_teams",
        "device_teams",
        "hostname, team_assignment",
        "hostname",
    ),
    (
        "event_audit_log",
        "event_audit_log",
        "id, event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog, raw_message, tableoid::regclass::text",
        "id",
    ),
    (
        "event_audit_log_archive",
        "event_audit_log_archive_v2",
        "id, event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog, raw_message, archived_at, archived_from_partition, original_id, original_partition_timestamp",
        "id",
    ),
    (
        "config_audit_log",
        "config_audit_log",
        "id, changed_at, changed_by, operation, table_name, record_id, old_values, new_values, reason, correlation_id",
        "id",
    ),
];

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The v2.5 database of a server in New York (its partitions' bounds are New York
/// midnights), migrated in place: every row kept where it was, the foreign key gone, a
/// DEFAULT partition, partitions that meet v2's, v2's INSERTs (ids included) accepted, and
/// events routed by the v2 rules (and a rule inserted the v2 way) to their teams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v25_database_upgrades_in_place_and_routes_with_its_rules() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let sink = start_sink(&stop).await?;
    {
        let mut db = env.db().await?;
        // v2 gave its partitions date bounds, read in the server's time zone; MUTT's are UTC
        // (west of UTC, MUTT's next month used to overlap v2's last one).
        sqlx::raw_sql("SET TIME ZONE 'America/New_York'")
            .execute(&mut db)
            .await?;
        sqlx::raw_sql(V25_SCHEMA).execute(&mut db).await?;
        db.close().await?;
    }
    let mut db = env.db().await?;
    let mut before = Vec::new();
    for (table, _, cols, order) in V2_TABLES {
        before.push(digest(&mut db, table, cols, order).await?);
    }
    let counts: Vec<i64> = before.iter().map(|(n, _)| *n).collect();
    assert_eq!(counts, [6, 3, 4, 7, 3, 4], "the fixture's rows");
    let v2_partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'event_audit_log'::regclass ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await?;
    assert_eq!(v2_partitions.len(), 4);
    db.close().await?;

    env.migrate().await?;

    let mut db = env.db().await?;
    for ((table, now_in, cols, order), was) in V2_TABLES.iter().zip(&before) {
        let is = digest(&mut db, now_in, cols, order).await?;
        assert_eq!(&is, was, "{table}'s rows, now in {now_in}");
    }
    // The new archive is partitioned like its source, and empty.
    let archive_kind: String = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = 'event_audit_log_archive'::regclass",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(archive_kind, "p");
    let fks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'event_audit_log'::regclass AND contype = 'f'",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(fks, 0, "v2's foreign key to alert_rules is dropped");
    // v2's partitions are still there; MUTT's meet them, with no gap or overlap, and the
    // DEFAULT partition takes anything beyond.
    let parts: Vec<(String, OffsetDateTime, OffsetDateTime)> =
        sqlx::query_as("SELECT name, lo, hi FROM mutt_partitions('event_audit_log')")
            .fetch_all(&mut db)
            .await?;
    let names: BTreeSet<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    for p in &v2_partitions {
        assert!(names.contains(p.as_str()), "{p} kept: {parts:?}");
    }
    assert!(parts.len() > v2_partitions.len(), "{parts:?}");
    for w in parts.windows(2) {
        assert_eq!(w[0].2, w[1].1, "{} meets {}", w[0].0, w[1].0);
    }
    assert!(
        parts.iter().any(|p| p.1.hour() != 0),
        "v2's bounds are New York's: {parts:?}"
    );
    let default: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'event_audit_log'::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(default, 1);

    // MUTT v2's own statements, ids included.
    sqlx::raw_sql(
        "INSERT INTO alert_rules (id, match_string, trap_oid, syslog_severity, match_type, priority,
                                  prod_handling, dev_handling, team_assignment, is_active)
         VALUES (100, 'BGP-5-ADJCHANGE', NULL, 5, 'contains', 30, 'Page_and_ticket', 'Ignore', 'Routing', true);
         INSERT INTO event_audit_log (id, event_timestamp, hostname, matched_rule_id, handling_decision,
                                      forwarded_to_moog, raw_message)
         VALUES (1000, now(), 'router1.prod.example.com', 6, 'Page_and_ticket', true,
                 '{\"hostname\": \"router1.prod.example.com\", \"message\": \"DEPRECATED\"}');
         INSERT INTO config_audit_log (changed_by, operation, table_name, record_id, old_values,
                                       new_values, reason, correlation_id)
         VALUES ('webui_api:abcd1234', 'CREATE', 'alert_rules', 100, NULL,
                 '{\"match_string\": \"BGP-5-ADJCHANGE\"}', 'added by v2', 'd4e5f6a7-b8c9-0123-def0-234567890123');",
    )
    .execute(&mut db)
    .await?;
    // v2 refused this (ON DELETE RESTRICT); the audit row keeps the rule's id.
    sqlx::query("DELETE FROM alert_rules WHERE id = 6")
        .execute(&mut db)
        .await?;
    let kept: Option<i32> =
        sqlx::query_scalar("SELECT matched_rule_id FROM event_audit_log WHERE id = 1000")
            .fetch_one(&mut db)
            .await?;
    assert_eq!(kept, Some(6));

    let mutt = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    let now = now_rfc3339();
    let ev = |seq: u64, host: &str, message: &str| json!({"hostname": host, "message": message, "timestamp": now, "seq": seq});
    let mut trap = ev(4, "switch1.prod.example.com", "cpu threshold trap");
    trap["trap_oid"] = json!("1.3.6.1.4.1.9.9.41.2.0.1");
    let mut bgp = ev(
        5,
        "router1.prod.example.com",
        "%BGP-5-ADJCHANGE: neighbor 10.0.0.1 Up",
    );
    bgp["syslog_severity"] = json!("Notice");
    let events = json!([
        ev(1, "router1.prod.example.com", "Interface Gi0/1 LINK-DOWN"),
        ev(2, "firewall1.prod.example.com", "CRITICAL: fan failure"),
        ev(3, "switch1.prod.example.com", "ERROR in module 3"),
        trap,
        bgp,
        ev(
            6,
            "server1.prod.example.com",
            "DOT1X-FIRMWARE-RUNNING on port 4"
        ),
        ev(7, "dev-router1", "ERROR in module 1"),
        ev(8, "router1.prod.example.com", "DEPRECATED feature used"),
    ]);
    let client = reqwest::Client::new();
    let r = post_events(&client, &mutt.ingest_url, &events).await?;
    assert_eq!(r.status(), 202);
    // seq → (team, rule id): v2's rules by priority; the OID rule despite its leading dot,
    // the severity filter with a severity name (v2 matched neither); 7 is a development
    // host (Ignore: audited only), 8 matches only the deleted rule.
    let want: BTreeMap<u64, (&str, i64)> = [
        (1, ("NetOps", 3)),
        (2, ("NETO", 1)),
        (3, ("NETO", 2)),
        (4, ("NetOps", 5)),
        (5, ("Routing", 100)),
        (6, ("Security", 4)),
    ]
    .into();
    wait_until(
        "the alerts at the webhook",
        Duration::from_secs(30),
        || async { (sink.unique() >= want.len()).then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: BTreeMap<u64, (String, i64)> = sink
        .seen()
        .events
        .iter()
        .map(|e| {
            (
                e["custom_info"]["seq"].as_u64().unwrap_or(0),
                (
                    e["class"].as_str().unwrap_or("").to_string(),
                    e["custom_info"]["mutt"]["rule_id"].as_i64().unwrap_or(0),
                ),
            )
        })
        .collect();
    let want_owned: BTreeMap<u64, (String, i64)> = want
        .iter()
        .map(|(k, (t, r))| (*k, (t.to_string(), *r)))
        .collect();
    assert_eq!(got, want_owned, "alerts by seq: (team, rule)");
    assert_eq!(sink.seen().events.len(), want.len());

    // Audited in v2's partitions: the six alerts and the development host's Ignore.
    let rows: Vec<(String, Option<i32>, bool, String)> = wait_until(
        "the audit rows",
        Duration::from_secs(10),
        || async {
            let mut db = env.db().await.ok()?;
            let rows: Vec<(String, Option<i32>, bool, String)> = sqlx::query_as(
                "SELECT handling_decision, matched_rule_id, forwarded_to_moog, tableoid::regclass::text
                 FROM event_audit_log WHERE event_id IS NOT NULL ORDER BY matched_rule_id",
            )
            .fetch_all(&mut db)
            .await
            .ok()?;
            (rows.len() >= 7).then_some(rows)
        },
    )
    .await?;
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.2).count(), 6);
    assert!(
        rows.iter()
            .any(|r| r.0 == "Ignore" && r.1 == Some(2) && !r.2),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.3 != "event_audit_log_default"),
        "{rows:?}"
    );
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM event_audit_log")
        .fetch_one(&mut db)
        .await?;
    assert_eq!(audit, 7 + 1 + 7, "v2's rows, v2's insert, MUTT's rows");
    db.close().await?;
    drop(mutt);
    stop.cancel();
    env.cleanup().await
}

/// MUTT v2's Moog API key, in every v2 alert: it must reach no stream.
const MOOG_KEY: &str = "moog-key-0f3b9c";

/// `mutt migrate --from-v2-queues --v2-prefix <v2>` for the env: (succeeded, stdout and
/// stderr).
fn migrate_v2_queues(env: &TestEnv, v2: &str) -> anyhow::Result<(bool, String)> {
    let out = Command::new(mutt_binary()?)
        .args(["migrate", "--from-v2-queues", "--v2-prefix", v2])
        .env("MUTT_DATABASE_URL", &env.database_url)
        .env("MUTT_REDIS_URL", &env.redis_url)
        .env("MUTT_PREFIX", &env.prefix)
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// The JSON report in the output (the lines from `{` to `}`).
fn report(out: &str) -> anyhow::Result<Value> {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "{")
        .ok_or_else(|| anyhow::anyhow!("no report in {out}"))?;
    let end = start
        + lines[start..]
            .iter()
            .position(|l| *l == "}")
            .ok_or_else(|| anyhow::anyhow!("no end of the report in {out}"))?;
    Ok(serde_json::from_str(&lines[start..=end].join("\n"))?)
}

/// A v2 queue item: the client's event plus v2's correlation id.
fn v2_event(seq: u64, now: &str) -> Value {
    json!({"hostname": format!("v2-host-{seq}"), "message": format!("v2 event {seq}"),
           "timestamp": now, "syslog_severity": "Error", "seq": seq,
           "_correlation_id": format!("v2-corr-{seq}")})
}

/// A v2 alert (§1.6 of the reference) for `event`.
fn v2_alert(host: &str, team: &str, event: Value) -> Value {
    let body = if host == "MUTT_Alerter" {
        format!(
            "[MUTT] Detected 100 unhandled messages in 86400s from '{}'. Sample message: {}",
            event["hostname"].as_str().unwrap_or(""),
            event["message"].as_str().unwrap_or("")
        )
    } else {
        event["message"].as_str().unwrap_or("").to_string()
    };
    json!({"api_key": MOOG_KEY, "hostname": host, "team_assignment": team, "severity": "Warning",
           "message_body": body, "_correlation_id": event["_correlation_id"], "raw_json": event})
}

/// LPUSHes `items` to `key`, oldest first (v2 pushed on the left).
async fn lpush(env: &TestEnv, key: &str, items: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut r = env.redis().await?;
    for i in items {
        let _: i64 = redis::cmd("LPUSH")
            .arg(key)
            .arg(i)
            .query_async(&mut r)
            .await?;
    }
    Ok(())
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The `seq` of an encoded event or alert payload.
fn seq_of_event(payload: &[u8]) -> Option<u64> {
    codec::decode_event(payload, &Limits::default())
        .ok()?
        .attributes
        .get("seq")?
        .as_u64()
}

/// What MUTT v2 left in Redis, under the same prefix as MUTT's (both default to `mutt`, so
/// v2's list `mutt:dlq:alerter` has the name of MUTT's DLQ stream), moved by `mutt migrate
/// --from-v2-queues`: refused while a v2 worker is alive; then every item in its stream or
/// DLQ with provenance, the lists empty except what is not v2's, v2's Moog key nowhere, a
/// second run a no-op; the pipeline then forwards the migrated events and meta-alert, and
/// the migrated dead letters replay like MUTT's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_queues_move_into_the_streams_and_on_to_the_webhook() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let v2 = env.prefix.clone();
    let now = now_rfc3339();
    let ev = |seq| v2_event(seq, &now);
    let with = |mut v: Value, k: &str, x: Value| {
        v[k] = x;
        v
    };
    let key = |rest: &str| format!("{v2}:{rest}");
    lpush(
        &env,
        &key("ingest_queue"),
        &[
            bytes(&ev(1)),
            bytes(&ev(2)),
            br#"{"hostname": "no-time", "message": "m", "_correlation_id": "c"}"#.to_vec(),
            bytes(&ev(3)),
            b"\x00not json".to_vec(),
        ],
    )
    .await?;
    lpush(
        &env,
        &key("processing:alerter:pod-a"),
        &[bytes(&with(ev(4), "_retry_count", json!(1)))],
    )
    .await?;
    let meta = v2_alert("MUTT_Alerter", "NetOps", ev(6));
    lpush(
        &env,
        &key("alert_queue"),
        &[
            bytes(&v2_alert("v2-host-5", "NETO", ev(5))),
            format!("{{\"api_key\": \"{MOOG_KEY}\", \"hostname\": \"cut").into_bytes(),
            bytes(&meta),
        ],
    )
    .await?;
    lpush(
        &env,
        &key("processing:moog:pod-b"),
        &[bytes(&with(
            v2_alert("v2-host-7", "NETO", ev(7)),
            "_moog_retry_count",
            json!(2),
        ))],
    )
    .await?;
    lpush(
        &env,
        &key("dlq:alerter"),
        &[
            bytes(&with(ev(8), "_retry_count", json!(4))),
            bytes(&with(
                ev(9),
                "shedding_reason",
                json!("queue_depth_exceeded:2500>2000"),
            )),
        ],
    )
    .await?;
    lpush(
        &env,
        &key("dlq:moog"),
        &[
            bytes(&with(
                v2_alert("v2-host-10", "NETO", ev(10)),
                "_moog_retry_count",
                json!(6),
            )),
            bytes(&v2_alert("MUTT_Alerter", "Security", ev(11))),
        ],
    )
    .await?;
    lpush(&env, &key("dlq:dead"), &[bytes(&ev(12))]).await?;
    lpush(&env, &key("dlq:custom"), &[b"someone else's".to_vec()]).await?;

    // A live v2 worker: refused, nothing touched.
    let mut r = env.redis().await?;
    let heartbeat = key("heartbeat:alerter:pod-a");
    let _: () = redis::cmd("SET")
        .arg(&heartbeat)
        .arg("alive")
        .arg("EX")
        .arg(30)
        .query_async(&mut r)
        .await?;
    let (ok, out) = migrate_v2_queues(&env, &v2)?;
    assert!(!ok && out.contains("still running"), "{out}");
    let queued: i64 = redis::cmd("LLEN")
        .arg(key("ingest_queue"))
        .query_async(&mut r)
        .await?;
    assert_eq!(queued, 5);
    let _: i64 = redis::cmd("DEL")
        .arg(&heartbeat)
        .query_async(&mut r)
        .await?;

    let (ok, out) = migrate_v2_queues(&env, &v2)?;
    assert!(ok, "{out}");
    let rep = report(&out)?;
    // Events: 1–3, 4 (in flight), and the events of the rule alerts 5 and 7. Alerts: the
    // meta-alert 6. Alerter DLQ: the two unreadable items, 8, 9, 12, and the rule alert
    // 10's event; forwarder DLQ: the meta-alert 11. Left: the alert that is not JSON, and
    // the list that is not v2's.
    for (k, n) in [
        ("events", 6),
        ("alerts", 1),
        ("dlq_alerter", 6),
        ("dlq_forwarder", 1),
        ("left", 2),
    ] {
        assert_eq!(rep[k], n, "{k} in {rep:#}");
    }

    let events = read_stream(&env, "events").await?;
    let seqs: BTreeSet<u64> = events
        .iter()
        .filter_map(|(_, f)| seq_of_event(f.get("payload")?))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 7].into());
    for (_, f) in &events {
        let e = codec::decode_event(&f["payload"], &Limits::default())?;
        let seq = e.attributes["seq"].as_u64().unwrap_or(0);
        assert_eq!(e.correlation_id, format!("v2-corr-{seq}"));
        assert!(
            e.attributes.keys().all(|k| k == "seq"),
            "v2's fields dropped: {:?}",
            e.attributes
        );
    }
    let alerts = read_stream(&env, "alerts").await?;
    assert_eq!(alerts.len(), 1);
    let a = codec::decode_alert(&alerts[0].1["payload"], &Limits::default())?;
    assert_eq!(a.team, "NetOps");
    assert_eq!(a.description, meta["message_body"].as_str().unwrap_or(""));
    assert_eq!(a.event.hostname, "v2-host-6");
    assert_eq!(a.id, format!("unhandled-{}", a.event.id));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_audit_log WHERE event_id = $1 AND handling_decision = 'unhandled_meta_alert'",
    )
    .bind(&a.id)
    .fetch_one(&mut env.db().await?)
    .await?;
    assert_eq!(audited, 1, "the meta-alert is audited, as MUTT's are");

    let text = |f: &std::collections::HashMap<String, Vec<u8>>, k: &str| {
        String::from_utf8_lossy(f.get(k).map_or(&[][..], |v| v)).into_owned()
    };
    let letters = read_stream(&env, "dlq:alerter").await?;
    assert_eq!(letters.len(), 6);
    let mut by_seq = BTreeMap::new();
    let mut unreadable = 0;
    for (_, f) in &letters {
        assert_eq!(text(f, "source_stream"), format!("{}:events", env.prefix));
        assert_eq!(text(f, "group"), "alerter");
        assert_eq!(text(f, "consumer"), "mutt migrate --from-v2-queues");
        assert!(text(f, "v2_list").starts_with(&format!("{v2}:")));
        match seq_of_event(&f["payload"]) {
            Some(seq) => {
                by_seq.insert(seq, (text(f, "delivery_count"), text(f, "last_error")));
            }
            None => {
                unreadable += 1;
                assert!(text(f, "last_error").contains("cannot read"), "{f:?}");
            }
        }
    }
    assert_eq!(unreadable, 2);
    assert_eq!(by_seq.keys().copied().collect::<Vec<_>>(), [8, 9, 10, 12]);
    assert_eq!(by_seq[&8].0, "4");
    assert!(by_seq[&9].1.contains("queue_depth_exceeded"), "{by_seq:?}");
    assert_eq!(by_seq[&10].0, "6");
    assert!(by_seq[&12].1.contains(":dlq:dead"), "{by_seq:?}");
    let fwd = read_stream(&env, "dlq:forwarder").await?;
    assert_eq!(fwd.len(), 1);
    assert_eq!(
        text(&fwd[0].1, "source_stream"),
        format!("{}:alerts", env.prefix)
    );
    let m = codec::decode_alert(&fwd[0].1["payload"], &Limits::default())?;
    assert_eq!(
        (m.team.as_str(), m.event.hostname.as_str()),
        ("Security", "v2-host-11")
    );

    // The lists: gone, the DLQ's name now MUTT's stream; what stays is reported.
    for rest in [
        "ingest_queue",
        "processing:alerter:pod-a",
        "processing:moog:pod-b",
        "dlq:moog",
        "dlq:dead",
        "upgrading:dlq:alerter",
    ] {
        let n: i64 = redis::cmd("EXISTS")
            .arg(key(rest))
            .query_async(&mut r)
            .await?;
        assert_eq!(n, 0, "{rest}");
    }
    let kind: String = redis::cmd("TYPE")
        .arg(key("dlq:alerter"))
        .query_async(&mut r)
        .await?;
    assert_eq!(kind, "stream");
    for rest in ["alert_queue", "dlq:custom"] {
        let n: i64 = redis::cmd("LLEN")
            .arg(key(rest))
            .query_async(&mut r)
            .await?;
        assert_eq!(n, 1, "{rest}");
    }
    // v2's Moog key reached no stream.
    for s in ["events", "alerts", "dlq:alerter", "dlq:forwarder"] {
        for (_, f) in read_stream(&env, s).await? {
            for v in f.values() {
                assert!(
                    !String::from_utf8_lossy(v).contains(MOOG_KEY),
                    "the Moog key in {s}"
                );
            }
        }
    }

    // A second run finds nothing more to move.
    let (ok, out) = migrate_v2_queues(&env, &v2)?;
    assert!(ok, "{out}");
    let again = report(&out)?;
    for (k, n) in [
        ("events", 0),
        ("alerts", 0),
        ("dlq_alerter", 0),
        ("dlq_forwarder", 0),
        ("left", 2),
    ] {
        assert_eq!(again[k], n, "{k} in {again:#}");
    }
    assert_eq!(read_stream(&env, "events").await?.len(), 6);

    // The pipeline takes it from there: the six events to "All", the meta-alert to its
    // team; then the migrated dead letters, replayed like MUTT's own.
    let mutt = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s"),
    )
    .await?;
    let delivered = || -> BTreeMap<u64, String> {
        sink.seen()
            .events
            .iter()
            .map(|e| {
                (
                    e["custom_info"]["seq"].as_u64().unwrap_or(0),
                    e["class"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    wait_until(
        "the migrated work at the webhook",
        Duration::from_secs(30),
        || async { (delivered().len() >= 7).then_some(()) },
    )
    .await?;
    let want: BTreeMap<u64, String> = [1, 2, 3, 4, 5, 7]
        .into_iter()
        .map(|s| (s, "All".to_string()))
        .chain([(6, "NetOps".to_string())])
        .collect();
    assert_eq!(delivered(), want);
    {
        let seen = sink.seen();
        let first = seen
            .events
            .iter()
            .find(|e| e["custom_info"]["seq"] == 1)
            .cloned()
            .unwrap_or_default();
        assert_eq!(first["custom_info"]["mutt"]["correlation_id"], "v2-corr-1");
        let meta_seen = seen
            .events
            .iter()
            .find(|e| e["custom_info"]["seq"] == 6)
            .cloned()
            .unwrap_or_default();
        assert_eq!(meta_seen["external_id"], a.id.as_str());
        assert_eq!(meta_seen["description"], a.description.as_str());
    }

    let api = Api::new(&mutt.control_url, "test-key");
    for group in ["alerter", "forwarder"] {
        let (status, body, _) = api
            .call(
                "POST",
                &format!("/api/v2/dlq/{group}/replay"),
                Some(json!({"all": true, "reason": "migrated from MUTT v2"})),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
    }
    wait_until(
        "the replayed dead letters at the webhook",
        Duration::from_secs(30),
        || async { (delivered().len() >= 12).then_some(()) },
    )
    .await?;
    let all = delivered();
    assert_eq!(
        all.keys().copied().collect::<Vec<_>>(),
        (1..=12).collect::<Vec<u64>>()
    );
    assert_eq!(all[&11], "Security");
    drop(mutt);
    stop.cancel();
    env.cleanup().await
}
