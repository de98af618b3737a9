//! Rule semantics through the running processes: OID arcs, priorities, severities,
//! development hosts, teams, unhandled meta-alerts.

use std::time::Duration;

use mutt_core::rules::{MatchType, Rule};
use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn rule(
    mt: MatchType,
    s: Option<&str>,
    oid: Option<&str>,
    sev: Option<i32>,
    prio: i32,
    prod: &str,
    team: &str,
) -> Rule {
    Rule {
        syslog_severity: sev,
        ..Rule::new(mt, s, oid, prio, prod, team)
    }
}

fn ev(case: &str, host: &str, msg: &str, extra: Value) -> Value {
    let mut e = json!({"hostname": host, "message": msg, "timestamp": "2026-11-26T10:00:00Z", "case": case});
    if let (Value::Object(m), Value::Object(x)) = (&mut e, extra) {
        m.extend(x);
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_apply_as_designed() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    design_rules(&env).await?;
    let mutt = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_UNHANDLED_THRESHOLD", "5")
            .set("MUTT_UNHANDLED_WINDOW", "1h"),
    )
    .await?;

    let mut batch = design_events();
    for n in 1..=6 {
        batch.push(ev(
            "flood",
            "flood-host",
            &format!("disk {n} error at 10.0.0.{n}"),
            json!({"n": n}),
        ));
    }
    for n in 1..=4 {
        batch.push(ev(
            "few",
            "other-host",
            &format!("disk {n} error at 10.0.0.{n}"),
            json!({}),
        ));
    }
    let client = reqwest::Client::new();
    let r = post_events(&client, &mutt.ingest_url, &json!(batch)).await?;
    assert_eq!(r.status(), 202);

    wait_until("seven alerts", Duration::from_secs(30), || async {
        (sink.unique() >= 7).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let events = sink.seen().events.clone();
    assert_eq!(events.len(), 7, "{events:#?}");
    let by_case = |c: &str| {
        events
            .iter()
            .find(|e| e["custom_info"]["case"] == c)
            .cloned()
            .unwrap_or_else(|| panic!("no alert for case {c}"))
    };
    // OID on whole arcs; a leading dot is ignored.
    assert_eq!(by_case("a")["class"], "OID");
    assert_eq!(by_case("c")["class"], "OID");
    // 1.3.6.1.41 is not under 1.3.6.1.4; the text rule (no OID) still applies.
    assert_eq!(by_case("b")["class"], "Text");
    // Priority 5 with an exact severity filter beats priority 20; names map to numbers.
    assert_eq!(by_case("d")["class"], "Crit");
    assert_eq!(by_case("d")["severity"], 5);
    assert_eq!(by_case("e")["class"], "Text");
    assert_eq!(by_case("e")["severity"], 4);
    // Regex search, case-insensitive; handling names are case-insensitive.
    assert_eq!(by_case("f")["class"], "Fan");
    assert_eq!(by_case("f")["severity"], 3);
    // One meta-alert for the flood, at the fifth event, to the host's team.
    let meta = by_case("flood");
    assert_eq!(meta["class"], "FloodTeam");
    assert_eq!(meta["type"], "unhandled");
    assert_eq!(meta["custom_info"]["n"], 5);
    assert!(
        meta["external_id"]
            .as_str()
            .unwrap()
            .starts_with("unhandled-")
    );

    let mut db = env.db().await?;
    let rows: Vec<(String, Option<i32>, String, bool)> = sqlx::query_as(
        "SELECT raw_message::json->>'case', matched_rule_id, handling_decision, forwarded_to_moog
         FROM event_audit_log ORDER BY raw_message::json->>'case'",
    )
    .fetch_all(&mut db)
    .await?;
    let audited: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(audited, ["a", "b", "c", "d", "e", "f", "flood", "g", "h"]);
    let g = rows.iter().find(|r| r.0 == "g").unwrap();
    assert_eq!(
        (g.2.as_str(), g.3),
        ("Ignore", false),
        "dev host gets dev_handling"
    );
    let h = rows.iter().find(|r| r.0 == "h").unwrap();
    assert_eq!((h.1, h.3), (Some(5), false), "Ignore is audited only");
    let flood = rows.iter().find(|r| r.0 == "flood").unwrap();
    assert_eq!((flood.1, flood.2.as_str()), (None, "unhandled_meta_alert"));

    drop(mutt);
    stop.cancel();
    env.cleanup().await
}

/// The rules, development host and device team of DESIGN.md's rule-semantics cases (rule
/// ids 1 … 6, in this order; the sixth inactive).
pub(crate) async fn design_rules(env: &TestEnv) -> anyhow::Result<()> {
    use MatchType::*;
    env.insert_rules(&[
        rule(
            OidPrefix,
            None,
            Some("1.3.6.1.4"),
            None,
            10,
            "Page_only",
            "OID",
        ),
        rule(
            Contains,
            Some("link"),
            None,
            None,
            20,
            "Page_and_ticket",
            "Text",
        ),
        rule(
            Contains,
            Some("link down"),
            None,
            Some(2),
            5,
            "Page_and_ticket",
            "Crit",
        ),
        rule(
            Regex,
            Some(r"^fan \d+ failed$"),
            None,
            None,
            30,
            "ticket_only",
            "Fan",
        ),
        rule(Contains, Some("ignored"), None, None, 1, "Ignore", "Nobody"),
        rule(
            Contains,
            Some("never"),
            None,
            None,
            0,
            "Page_only",
            "Inactive",
        ),
    ])
    .await?;
    env.exec(
        "UPDATE alert_rules SET is_active = false WHERE team_assignment = 'Inactive';
         INSERT INTO development_hosts (hostname) VALUES ('Lab-01');
         INSERT INTO device_teams (hostname, team_assignment) VALUES ('flood-host', 'FloodTeam');",
    )
    .await?;
    Ok(())
}

/// DESIGN.md's rule-semantics cases, one event each (`case` names it).
pub(crate) fn design_events() -> Vec<Value> {
    vec![
        ev("a", "r1", "x", json!({"trap_oid": "1.3.6.1.4.1.9"})),
        ev("b", "r1", "link", json!({"trap_oid": "1.3.6.1.41"})),
        ev("c", "r1", "x", json!({"trap_oid": ".1.3.6.1.4"})),
        ev(
            "d",
            "r1",
            "LINK DOWN on ge-0",
            json!({"syslog_severity": "critical"}),
        ),
        ev("e", "r1", "link down", json!({"syslog_severity": 3})),
        ev("f", "r1", "Fan 3 failed", json!({})),
        ev("g", "LAB-01", "link flap", json!({})),
        ev("h", "r1", "this is ignored link", json!({})),
        ev(
            "i",
            "r1",
            "never matches anything",
            json!({"trap_oid": "1.3.7"}),
        ),
    ]
}
