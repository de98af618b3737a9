//! The control plane: the API, the audit trail, API keys, versioning, hot reload.

use std::collections::HashSet;
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn rule(s: &str, prio: i32, team: &str) -> Value {
    json!({"match_string": s, "match_type": "regex", "priority": prio, "prod_handling": "Page_only",
           "dev_handling": "Page_only", "team_assignment": team})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_validates_audits_and_versions() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    let all = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    let admin = Api::new(&all.control_url, "test-key");
    let anon = Api::new(&all.control_url, "");

    // Version: public. Everything else needs a key with the right scope.
    let v = anon.get("/api/v2/version").await?;
    assert_eq!(v["current"], "v2");
    let (status, body, headers) = anon.call("GET", "/api/v2/rules", None).await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert!(headers.contains_key("x-correlation-id") && headers.contains_key("x-request-id"));
    let (status, body, _) = admin
        .call(
            "POST",
            "/api/v2/keys",
            Some(json!({"name": "viewer", "scopes": ["read"], "reason": "dashboards"})),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let viewer_key = body["key"].as_str().unwrap().to_string();
    let viewer = Api::new(&all.control_url, &viewer_key);
    assert!(
        viewer.get("/api/v2/rules").await?["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _, _) = viewer
        .call("POST", "/api/v2/rules", Some(rule("x", 1, "T")))
        .await?;
    assert_eq!(status, 403);
    let (status, _, _) = viewer.call("GET", "/api/v2/keys", None).await?;
    assert_eq!(status, 403, "keys need admin");
    let listed = admin.get("/api/v2/keys").await?;
    assert!(
        !listed.to_string().contains(&viewer_key),
        "keys are never listed back"
    );

    // Client mistakes are 400s naming the field.
    for (bad, field) in [
        (
            json!({"match_string": "(", "match_type": "regex", "prod_handling": "P", "dev_handling": "D", "team_assignment": "T"}),
            "match_string",
        ),
        (
            json!({"match_string": "x", "match_type": "fuzzy", "prod_handling": "P", "dev_handling": "D", "team_assignment": "T"}),
            "match_type",
        ),
        (
            json!({"match_string": "x", "syslog_severity": 9, "prod_handling": "P", "dev_handling": "D", "team_assignment": "T"}),
            "syslog_severity",
        ),
        (
            json!({"trap_oid": "1.3.x", "match_type": "oid_prefix", "prod_handling": "P", "dev_handling": "D", "team_assignment": "T"}),
            "trap_oid",
        ),
        (
            json!({"match_string": "x", "prod_handling": "P", "dev_handling": "D"}),
            "team_assignment",
        ),
    ] {
        let (status, body, _) = admin.call("POST", "/api/v2/rules", Some(bad)).await?;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{field}: {body}"
        );
    }
    let (status, body, _) = admin
        .call("POST", "/api/v2/rules", Some(json!({"nonsense": 1})))
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (status, _, _) = admin.call("GET", "/api/v2/rules/abc", None).await?;
    assert_eq!(status, 400);
    let (status, _, _) = admin.call("GET", "/api/v2/rules/999", None).await?;
    assert_eq!(status, 404);

    // A rule's life, audited with its reason.
    let (status, created, _) = admin
        .call("POST", "/api/v2/rules", Some(json!({"match_string": "fan", "prod_handling": "Page_and_ticket",
            "dev_handling": "Ignore", "team_assignment": "Hardware", "syslog_severity": "critical", "reason": "new fan alarms"})))
        .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["syslog_severity"], 2);
    assert_eq!(created["priority"], 100);
    let id = created["id"].as_i64().unwrap();
    let (status, updated, _) = admin
        .call(
            "PUT",
            &format!("/api/v2/rules/{id}"),
            Some(json!({"priority": 5, "reason": "more urgent"})),
        )
        .await?;
    assert_eq!((status, updated["priority"].as_i64()), (200, Some(5)));
    assert_eq!(
        updated["team_assignment"], "Hardware",
        "an update keeps what it does not name"
    );
    // An event is audited under the rule; deleting the rule keeps that row.
    let r = post_events(&reqwest::Client::new(), &all.ingest_url, &json!({"hostname": "sw1", "message": "fan 2 failed", "timestamp": "2026-11-26T10:00:00Z", "syslog_severity": 2})).await?;
    assert_eq!(r.status(), 202);
    wait_until("the event audited", Duration::from_secs(10), || async {
        (env.count("SELECT count(*) FROM event_audit_log")
            .await
            .ok()?
            == 1)
            .then_some(())
    })
    .await?;
    let (status, _, _) = admin
        .call(
            "DELETE",
            &format!("/api/v2/rules/{id}?reason=replaced"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        admin
            .call("GET", &format!("/api/v2/rules/{id}"), None)
            .await?
            .0,
        404
    );
    let events = admin.get("/api/v2/events?hostname=sw1").await?;
    assert_eq!(events["events"][0]["matched_rule_id"], id);
    assert_eq!(events["pagination"]["total"], 1);

    // Hosts and teams.
    assert_eq!(
        admin
            .call(
                "POST",
                "/api/v2/dev-hosts",
                Some(json!({"hostname": "lab-1"}))
            )
            .await?
            .0,
        201
    );
    assert_eq!(
        admin
            .call(
                "POST",
                "/api/v2/dev-hosts",
                Some(json!({"hostname": "LAB-1"}))
            )
            .await?
            .0,
        409
    );
    assert_eq!(
        admin
            .call("DELETE", "/api/v2/dev-hosts/lab-1", None)
            .await?
            .0,
        200
    );
    assert_eq!(
        admin
            .call("DELETE", "/api/v2/dev-hosts/lab-1", None)
            .await?
            .0,
        404
    );
    assert_eq!(
        admin
            .call(
                "POST",
                "/api/v2/teams",
                Some(json!({"hostname": "r1", "team_assignment": "Net"}))
            )
            .await?
            .0,
        201
    );
    assert_eq!(
        admin
            .call(
                "PUT",
                "/api/v2/teams/r1",
                Some(json!({"team_assignment": "NetOps"}))
            )
            .await?
            .0,
        200
    );
    assert_eq!(
        admin.get("/api/v2/teams").await?["teams"][0]["team_assignment"],
        "NetOps"
    );
    assert_eq!(
        admin
            .call(
                "PUT",
                "/api/v2/teams/nobody",
                Some(json!({"team_assignment": "X"}))
            )
            .await?
            .0,
        404
    );

    // Hot settings need a reason and a valid value.
    let (status, body, _) = admin
        .call(
            "PUT",
            "/api/v2/config/webhook_rate_limit",
            Some(json!({"value": 50})),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    let (status, body, _) = admin
        .call(
            "PUT",
            "/api/v2/config/webhook_rate_limit",
            Some(json!({"value": "lots", "reason": "x"})),
        )
        .await?;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhook_rate_limit")
    );
    assert_eq!(
        admin
            .call(
                "PUT",
                "/api/v2/config/no_such_thing",
                Some(json!({"value": 1, "reason": "x"}))
            )
            .await?
            .0,
        404
    );
    let (status, body, _) = admin
        .call(
            "PUT",
            "/api/v2/config/webhook_rate_limit",
            Some(json!({"value": 500, "reason": "moogsoft asked"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["old_value"].as_str(), body["new_value"].as_str()),
        (Some("0"), Some("500"))
    );
    let version = body["version"].as_i64().unwrap();
    wait_until("the process applies it", Duration::from_secs(5), || async {
        let v = admin.get("/api/v2/config/versions").await.ok()?;
        (v["converged"] == true
            && v["consumers"]
                .as_array()?
                .iter()
                .all(|c| c["version"].as_i64() == Some(version)))
        .then_some(())
    })
    .await?;
    let cfg = admin.get("/api/v2/config/webhook_rate_limit").await?;
    assert_eq!(
        (cfg["value"].as_str(), cfg["overridden"].as_bool()),
        (Some("500"), Some(true))
    );

    // The audit trail: who, what, why; filtered and paginated.
    let rules_audit = admin.get("/api/v2/audit?table_name=alert_rules").await?;
    let ops: Vec<&str> = rules_audit["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["DELETE", "UPDATE", "CREATE"]);
    let logs = rules_audit["logs"].as_array().unwrap();
    assert!(
        logs.iter()
            .all(|l| l["changed_by"] == "bootstrap" && l["record_id"] == id)
    );
    assert_eq!(logs[2]["reason"], "new fan alarms");
    assert_eq!(logs[1]["old_values"], json!({"priority": 100}));
    assert_eq!(logs[1]["new_values"], json!({"priority": 5}));
    let page = admin.get("/api/v2/audit?limit=2&page=2").await?;
    assert_eq!(page["pagination"]["limit"], 2);
    assert!(page["pagination"]["total"].as_i64().unwrap() >= 9);
    let cfg_audit = admin
        .get("/api/v2/audit?table_name=dynamic_config&record_key=webhook_rate_limit")
        .await?;
    assert_eq!(cfg_audit["logs"][0]["reason"], "moogsoft asked");
    let created_by_bootstrap = admin
        .get("/api/v2/audit?operation=CREATE&changed_by=boot")
        .await?;
    assert!(created_by_bootstrap["logs"].as_array().unwrap().len() >= 3);
    assert_eq!(
        admin
            .call("GET", "/api/v2/audit?operation=EXPLODE", None)
            .await?
            .0,
        400
    );
    assert_eq!(
        admin
            .call("GET", "/api/v2/audit?start_date=yesterday", None)
            .await?
            .0,
        400
    );
    let text = admin.get("/api/v2/audit?limit=200").await?.to_string();
    assert!(
        !text.contains("test-key"),
        "no key material in the audit trail"
    );

    // v1: old paths and shapes, deprecated; removed endpoints answer 410.
    let (status, body, headers) = admin.call("GET", "/api/v1/rules", None).await?;
    assert_eq!(status, 200);
    assert!(body["rules"].is_array());
    for h in ["deprecation", "sunset", "link"] {
        assert!(headers.contains_key(h), "{h}");
    }
    let (status, body, _) = admin
        .call("POST", "/api/v1/rules", Some(rule("v1", 50, "Old")))
        .await?;
    assert_eq!(
        (status, body["message"].as_str()),
        (201, Some("Rule created successfully"))
    );
    let (status, body, headers) = admin.call("GET", "/api/v1/metrics", None).await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("gone"))
    );
    assert!(headers.contains_key("sunset"));
    assert_eq!(
        admin.get("/api/v1/config").await?["config"]["webhook_rate_limit"],
        "500"
    );

    // Keys: an ingest key works at ingest; revoked, it stops working.
    let (_, body, _) = admin
        .call(
            "POST",
            "/api/v2/keys",
            Some(json!({"name": "sender", "scopes": ["ingest"]})),
        )
        .await?;
    let sender_key = body["key"].as_str().unwrap().to_string();
    let ev = json!({"hostname": "h", "message": "m", "timestamp": "2026-11-26T10:00:00Z"});
    let send = |k: String| {
        let url = format!("{}/api/v2/ingest", all.ingest_url);
        let ev = ev.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-api-key", k)
                .json(&ev)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    wait_until(
        "the new key accepted by ingest",
        Duration::from_secs(5),
        || async { (send(sender_key.clone()).await == 202).then_some(()) },
    )
    .await?;
    assert_eq!(
        send(viewer_key.clone()).await,
        403,
        "a read key cannot ingest"
    );
    assert_eq!(
        admin
            .call("DELETE", "/api/v2/keys/sender?reason=leaked", None)
            .await?
            .0,
        200
    );
    wait_until(
        "the revoked key refused",
        Duration::from_secs(5),
        || async { (send(sender_key.clone()).await == 401).then_some(()) },
    )
    .await?;
    let keys_audit = admin.get("/api/v2/audit?table_name=api_keys").await?;
    let ops: Vec<&str> = keys_audit["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["REVOKE", "CREATE", "CREATE"]);

    drop(all);
    stop.cancel();
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_paged_replayed_and_purged() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s"),
    )
    .await?;
    let admin = Api::new(&all.control_url, "test-key");
    // Three alerts refused by the webhook, one undecodable event.
    sink.set_behaviour(Behaviour::Fail(400, None));
    let accepted = send_all(
        vec![all.ingest_url.clone()],
        3,
        3,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    let mut r = env.redis().await?;
    let _: String = redis::cmd("XADD")
        .arg(format!("{}:events", env.prefix))
        .arg("*")
        .arg("payload")
        .arg("junk")
        .query_async(&mut r)
        .await?;
    wait_until("four dead letters", Duration::from_secs(20), || async {
        let d = admin.get("/api/v2/dlq").await.ok()?;
        let depth: u64 = d["dlqs"]
            .as_array()?
            .iter()
            .filter_map(|q| q["depth"].as_u64())
            .sum();
        (depth == 4).then_some(())
    })
    .await?;
    let list = admin.get("/api/v2/dlq").await?;
    let fwd = list["dlqs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "forwarder")
        .unwrap()
        .clone();
    assert_eq!(fwd["depth"], 3);
    assert!(fwd["oldest_age_seconds"].as_i64().unwrap() >= 0);

    let page1 = admin.get("/api/v2/dlq/forwarder?limit=2").await?;
    assert_eq!(page1["entries"].as_array().unwrap().len(), 2);
    let next = page1["next"].as_str().unwrap();
    let page2 = admin
        .get(&format!("/api/v2/dlq/forwarder?limit=2&after={next}"))
        .await?;
    assert_eq!(page2["entries"].as_array().unwrap().len(), 1);
    let e = &page1["entries"][0];
    assert_eq!(e["group"], "forwarder");
    assert!(e["last_error"].as_str().unwrap().contains("400"));
    assert!(e["payload"]["alert_id"].is_string() && e["payload"]["event"]["hostname"].is_string());
    let junk = admin.get("/api/v2/dlq/alerter").await?;
    assert!(junk["entries"][0]["payload_error"].is_string());
    assert!(junk["entries"][0]["payload_base64"].is_string());
    assert_eq!(admin.call("GET", "/api/v2/dlq/nope", None).await?.0, 404);

    // Replay needs a reason and a selection; the webhook accepts now.
    assert_eq!(
        admin
            .call(
                "POST",
                "/api/v2/dlq/forwarder/replay",
                Some(json!({"all": true}))
            )
            .await?
            .0,
        400
    );
    assert_eq!(
        admin
            .call(
                "POST",
                "/api/v2/dlq/forwarder/replay",
                Some(json!({"reason": "fixed"}))
            )
            .await?
            .0,
        400
    );
    sink.set_behaviour(Behaviour::Accept);
    let (status, body, _) = admin
        .call(
            "POST",
            "/api/v2/dlq/forwarder/replay",
            Some(json!({"all": true, "reason": "webhook fixed"})),
        )
        .await?;
    assert_eq!(
        (status, body["replayed"].as_u64()),
        (200, Some(3)),
        "{body}"
    );
    wait_until(
        "replayed alerts delivered",
        Duration::from_secs(20),
        || async { (delivered_seqs(&sink) == accepted).then_some(()) },
    )
    .await?;
    assert_eq!(
        admin.get("/api/v2/dlq/forwarder").await?["entries"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Purge one, with a reason.
    let id = junk["entries"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        admin
            .call("DELETE", &format!("/api/v2/dlq/alerter/{id}"), None)
            .await?
            .0,
        400
    );
    assert_eq!(
        admin
            .call(
                "DELETE",
                &format!("/api/v2/dlq/alerter/{id}?reason=garbage"),
                None
            )
            .await?
            .0,
        200
    );
    assert_eq!(
        admin
            .call(
                "DELETE",
                &format!("/api/v2/dlq/alerter/{id}?reason=garbage"),
                None
            )
            .await?
            .0,
        404
    );
    let audit = admin.get("/api/v2/audit?table_name=dlq").await?;
    let ops: Vec<&str> = audit["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["PURGE", "REPLAY"]);
    assert_eq!(audit["logs"][1]["new_values"]["count"], 3);
    assert_eq!(audit["logs"][1]["reason"], "webhook fixed");
    drop(all);
    stop.cancel();
    env.cleanup().await
}

/// The "done when" of the control plane: settings and rules change while 50,000 events
/// flow through separate ingest, alerter, forwarder and control processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_and_a_rule_change_while_fifty_thousand_events_flow() -> anyhow::Result<()> {
    const EVENTS: u64 = 50_000;
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink = Sink::start(listener, true, stop.clone())?;
    env.migrate().await?;
    let cfg = |role: &str| {
        MuttConfig::new(role)
            .webhook(sink.url())
            .set("MUTT_WEBHOOK_BATCH", "50")
    };
    let control = Mutt::start(&env, &cfg("control")).await?;
    let admin = Api::new(&control.control_url, "test-key");
    let (status, _, _) = admin.call("POST", "/api/v2/rules", Some(json!({"match_string": ".", "match_type": "regex", "priority": 10,
        "prod_handling": "Page_only", "dev_handling": "Page_only", "team_assignment": "Everyone", "reason": "baseline"}))).await?;
    assert_eq!(status, 201);
    let ingest = Mutt::start(&env, &cfg("ingest")).await?;
    let workers = vec![
        Mutt::start(&env, &cfg("alerter")).await?,
        Mutt::start(&env, &cfg("alerter")).await?,
        Mutt::start(&env, &cfg("forwarder")).await?,
        Mutt::start(&env, &cfg("forwarder")).await?,
    ];

    // Every event carries a marker word; the new rule routes it to another team.
    let sender = tokio::spawn(send_all(
        vec![ingest.ingest_url.clone()],
        EVENTS,
        500,
        Duration::from_millis(40),
        Duration::from_secs(120),
    ));
    wait_until("traffic flowing", Duration::from_secs(30), || async {
        (sink.unique() > 5_000).then_some(())
    })
    .await?;

    let (status, body, _) = admin
        .call(
            "PUT",
            "/api/v2/config/webhook_rate_limit",
            Some(json!({"value": "1000000", "reason": "raise the cap for the migration"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].as_i64().unwrap();
    let changed = tokio::time::Instant::now();
    let took = wait_until(
        "every process on the new version",
        Duration::from_secs(10),
        || async {
            let v = admin.get("/api/v2/config/versions").await.ok()?;
            let consumers = v["consumers"].as_array()?;
            (consumers.len() >= 6
                && consumers
                    .iter()
                    .all(|c| c["version"].as_i64() >= Some(version)))
            .then(|| changed.elapsed())
        },
    )
    .await?;
    eprintln!("hot reload: every process applied version {version} in {took:?}");
    assert!(took <= Duration::from_secs(2), "{took:?}");

    let (status, created, _) = admin.call("POST", "/api/v2/rules", Some(json!({"match_string": "%BGP-", "priority": 1,
        "prod_handling": "Page_and_ticket", "dev_handling": "Page_and_ticket", "team_assignment": "Routing", "reason": "BGP to the routing team"}))).await?;
    assert_eq!(status, 201, "{created}");
    let rule_id = created["id"].as_i64().unwrap();
    // Events sent from now on were ingested after the rule existed.
    let boundary = tokio::time::Instant::now();
    let accepted: HashSet<u64> = sender.await?;
    assert_eq!(accepted.len() as u64, EVENTS);
    wait_until(
        "every alert delivered",
        Duration::from_secs(120),
        || async { (sink.unique() as u64 >= EVENTS).then_some(()) },
    )
    .await?;
    let _ = boundary;

    let seen = sink.seen().events.clone();
    assert_eq!(sink.unique() as u64, EVENTS, "nothing lost");
    assert_eq!(sink.duplicates(), 0);
    // The new rule applies to events ingested after it: every BGP event received by
    // ingest after the rule's creation went to Routing.
    let created_at = time::OffsetDateTime::parse(
        created["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )?;
    let created_ms = (created_at.unix_timestamp_nanos() / 1_000_000) as i64 + 1_000;
    let mut after = 0;
    for e in &seen {
        let msg = e["custom_info"]["message"].as_str().unwrap_or("");
        let received = ingest_time_ms(e);
        if msg.contains("%BGP-") && received > created_ms {
            after += 1;
            assert_eq!(e["class"], "Routing", "{e}");
            assert_eq!(e["custom_info"]["mutt"]["rule_id"], rule_id);
        }
        if !msg.contains("%BGP-") {
            assert_eq!(e["class"], "Everyone");
        }
    }
    assert!(after > 100, "{after} BGP events after the rule");
    // The audit trail shows both changes with their reasons.
    let audit = admin.get("/api/v2/audit?limit=200").await?;
    let logs = audit["logs"].as_array().unwrap();
    assert!(logs.iter().any(|l| l["table_name"] == "dynamic_config"
        && l["record_key"] == "webhook_rate_limit"
        && l["reason"] == "raise the cap for the migration"));
    assert!(logs.iter().any(|l| l["table_name"] == "alert_rules"
        && l["operation"] == "CREATE"
        && l["record_id"] == rule_id
        && l["reason"] == "BGP to the routing team"));
    drop((control, ingest, workers));
    stop.cancel();
    env.cleanup().await
}

/// When ingest accepted an event: the UUIDv7 event id carries it (ms since the epoch).
fn ingest_time_ms(alert: &Value) -> i64 {
    let id = alert["custom_info"]["mutt"]["event_id"]
        .as_str()
        .unwrap_or("");
    uuid::Uuid::parse_str(id)
        .ok()
        .and_then(|u| u.get_timestamp())
        .map(|t| {
            let (s, n) = t.to_unix();
            s as i64 * 1000 + i64::from(n / 1_000_000)
        })
        .unwrap_or(0)
}
