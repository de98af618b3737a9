//! The whole pipeline on the sample data: what reaches the webhook and the audit log is
//! exactly what the rules say.

use std::collections::HashMap;
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// What the sample rule set must do with an event, worked out here from the rules' text
/// (priority order, case-insensitive contains, OID arcs), independently of the engine.
/// Returns (team, handling, forwarded) or None for unhandled.
pub(crate) fn expected(e: &Value) -> Option<(&'static str, &'static str, bool)> {
    let msg = e["message"].as_str().unwrap_or("").to_lowercase();
    let host = e["hostname"].as_str().unwrap_or("").to_lowercase();
    let oid = e.get("trap_oid").and_then(Value::as_str);
    let under =
        |prefix: &str| oid.is_some_and(|o| o == prefix || o.starts_with(&format!("{prefix}.")));
    let dev = host == "dhcp-server-15.internal.example.com";
    let pick = |team, handling: &'static str| {
        let forwarded = !dev && handling != "Ignore";
        Some((team, if dev { "Ignore" } else { handling }, forwarded))
    };
    // Priorities: 10 FRU; 15 both OID rules (ids 8, 9 after 1..7); 20 BGP (id 2), OOM (id 3);
    // 30 DOWN (4), Disk (5); 40 FANTRAY (6), SQL (7); 90 CONFIG_I (10), DHCPACK (11).
    // A rule with an OID only applies to events with an OID; text rules apply to all.
    if msg.contains("fru_ps_fail") {
        return pick("NetOps", "Page_and_ticket");
    }
    if under("1.3.6.1.6.3.1.1.5") {
        return pick("NetOps", "Page_and_ticket");
    }
    if under("1.3.6.1.4.1.9.9.41.2") {
        return pick("NetOps", "Ticket_only");
    }
    let bgp = regex::Regex::new(r"(?i)%bgp-\d-notification").unwrap();
    if bgp.is_match(&msg) {
        return pick("NetOps", "Page_and_ticket");
    }
    if msg.contains("out of memory") {
        return pick("Linux", "Page_and_ticket");
    }
    if msg.contains(" is down") {
        return pick("AppOps", "Page_and_ticket");
    }
    if msg.contains("disk in slot") {
        return pick("Storage", "Ticket_only");
    }
    if msg.contains("fantray_bad") {
        return pick("NetOps", "Ticket_only");
    }
    if msg.contains("sql injection") {
        return pick("SecOps", "Page_only");
    }
    if msg.contains("%sys-5-config_i") {
        return pick("NetOps", "Ignore");
    }
    if msg.contains("dhcpack") {
        return pick("Systems", "Ignore");
    }
    None
}

/// The webhook severity DESIGN.md prescribes for an event.
pub(crate) fn expected_severity(e: &Value) -> u64 {
    let by_syslog = |n: u64| match n {
        0..=2 => 5,
        3 => 4,
        4 => 3,
        5 => 2,
        _ => 1,
    };
    let by_name = |s: &str| match s.to_lowercase().as_str() {
        "emergency" | "emerg" | "alert" | "critical" | "crit" => Some(5),
        "error" | "err" => Some(4),
        "warning" | "warn" => Some(3),
        "notice" => Some(2),
        "informational" | "info" | "debug" => Some(1),
        "major" => Some(4),
        "minor" => Some(2),
        "clear" => Some(0),
        _ => None,
    };
    match e.get("syslog_severity") {
        Some(Value::Number(n)) => by_syslog(n.as_u64().unwrap_or(9)),
        Some(Value::String(s)) => by_name(s).unwrap_or(3),
        _ => e
            .get("severity")
            .and_then(Value::as_str)
            .and_then(by_name)
            .unwrap_or(3),
    }
}

async fn seed_samples(env: &TestEnv) -> anyhow::Result<()> {
    env.migrate().await?;
    let ids = env.insert_rules(&samples::rules()).await?;
    assert_eq!(ids, (1..=11).collect::<Vec<i32>>());
    let mut db = env.db().await?;
    for h in samples::dev_hosts() {
        sqlx::query("INSERT INTO development_hosts (hostname) VALUES ($1)")
            .bind(h)
            .execute(&mut db)
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sample_events_reach_the_webhook_as_the_rules_say() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    seed_samples(&env).await?;
    let mutt = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;

    let events = mutt_devkit::load::build_events(10_000);
    let client = reqwest::Client::new();
    for chunk in events.chunks(500) {
        let r = post_events(&client, &mutt.ingest_url, &json!(chunk)).await?;
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await?;
        assert_eq!(body["accepted"], chunk.len());
        assert_eq!(body["rejected"], 0);
    }

    // Expected outcome of every event, by its sequence number.
    let mut want_forward: HashMap<u64, (&str, u64)> = HashMap::new();
    let mut want_audit = 0usize;
    for e in &events {
        if let Some((team, _, fwd)) = expected(e) {
            want_audit += 1;
            if fwd {
                want_forward.insert(e["seq"].as_u64().unwrap(), (team, expected_severity(e)));
            }
        }
    }
    assert!(
        want_forward.len() > 900 && want_forward.len() < 1500,
        "{}",
        want_forward.len()
    );

    wait_until(
        "every alert at the webhook",
        Duration::from_secs(60),
        || async { (sink.unique() >= want_forward.len()).then_some(()) },
    )
    .await?;
    // Give stragglers (there must be none) a moment to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let seen = sink.seen();
        assert_eq!(
            seen.by_external_id.len(),
            want_forward.len(),
            "alerts at the webhook"
        );
        assert!(
            seen.by_external_id.values().all(|&n| n == 1),
            "an external_id arrived twice"
        );
        let mut got_seqs = HashMap::new();
        for ev in &seen.events {
            let seq = ev["custom_info"]["seq"]
                .as_u64()
                .expect("custom_info carries the event");
            let (team, sev) = want_forward
                .get(&seq)
                .unwrap_or_else(|| panic!("unexpected alert for seq {seq}: {ev}"));
            assert_eq!(ev["class"], *team, "team of seq {seq}");
            assert_eq!(ev["severity"], *sev, "severity of seq {seq}: {ev}");
            assert_eq!(ev["external_id"], ev["custom_info"]["mutt"]["event_id"]);
            assert_eq!(ev["manager"], "MUTT");
            assert!(ev["agent_time"].as_i64().unwrap() > 1_700_000_000);
            got_seqs.insert(seq, ());
        }
        assert_eq!(got_seqs.len(), want_forward.len());
    }

    // The audit log holds one row per handled event, matching the webhook.
    let audit = wait_until("audit rows", Duration::from_secs(10), || async {
        let n = env
            .count("SELECT count(*) FROM event_audit_log")
            .await
            .ok()?;
        (n as usize >= want_audit).then_some(n)
    })
    .await?;
    let mut db = env.db().await?;
    assert_eq!(audit as usize, want_audit);
    let forwarded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_audit_log WHERE forwarded_to_moog")
            .fetch_one(&mut db)
            .await?;
    assert_eq!(forwarded as usize, want_forward.len());
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM event_audit_log")
        .fetch_one(&mut db)
        .await?;
    assert_eq!(distinct, audit);
    let seen_ids: Vec<String> = sink.seen().by_external_id.keys().cloned().collect();
    let audited_fwd: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_audit_log WHERE forwarded_to_moog AND event_id = ANY($1)",
    )
    .bind(&seen_ids)
    .fetch_one(&mut db)
    .await?;
    assert_eq!(
        audited_fwd as usize,
        seen_ids.len(),
        "every delivered alert has its audit row"
    );
    let dev_forwarded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_audit_log WHERE hostname = 'dhcp-server-15.internal.example.com' AND forwarded_to_moog",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(dev_forwarded, 0);

    // Nothing is left pending.
    assert_eq!(env.pending("events", "alerter").await?, 0);
    assert_eq!(env.pending("alerts", "forwarder").await?, 0);
    drop(mutt);
    stop.cancel();
    env.cleanup().await
}
