//! `muttdev rules|hosts|teams|doctor` and `POST /api/v2/rules/test` against running
//! processes: each rule-semantics case of DESIGN.md explained as the alerter then decides
//! it, through the endpoint and the CLI; rules, hosts and teams round-tripped with `--json`;
//! `doctor` failing an evicting Redis and a missing partition, passing a healthy setup.

use std::process::Output;
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// `muttdev ARGS` with only PATH, `NO_COLOR` and `env` in its environment.
async fn muttdev(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut cmd = tokio::process::Command::new(muttdev_binary()?);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(tokio::time::timeout(Duration::from_secs(60), cmd.output()).await??)
}

/// `muttdev ARGS` against the control API at `control` with `key`.
async fn cli(control: &str, key: &str, args: &[&str]) -> anyhow::Result<Output> {
    muttdev(
        args,
        &[("MUTT_CONTROL_URL", control), ("MUTT_API_KEY", key)],
    )
    .await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON a command printed, which must have succeeded.
fn json_of(o: &Output) -> anyhow::Result<Value> {
    anyhow::ensure!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).map_err(|e| anyhow::anyhow!("not JSON ({e}): {}", stdout(o)))
}

fn ev(case: &str, host: &str, msg: &str, extra: Value) -> Value {
    let mut e = json!({"hostname": host, "message": msg, "timestamp": "2026-11-26T10:00:00Z", "case": case});
    if let (Value::Object(m), Value::Object(x)) = (&mut e, extra) {
        m.extend(x);
    }
    e
}

/// The outcome of rule `id` in an explanation.
fn outcome(x: &Value, id: i64) -> String {
    x["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|t| t["id"] == id))
        .map_or_else(
            || format!("rule {id} not listed"),
            |t| t["outcome"].as_str().unwrap_or("").to_string(),
        )
}

/// The explanation of `event` through the endpoint, and the same through the CLI (which
/// must agree).
async fn explained(api: &Api, control: &str, event: &Value) -> anyhow::Result<Value> {
    let (status, x, _) = api
        .call(
            "POST",
            "/api/v2/rules/test",
            Some(json!({ "event": event })),
        )
        .await?;
    anyhow::ensure!(status == 200, "{status}: {x}");
    let by_cli = json_of(
        &cli(
            control,
            "test-key",
            &["rules", "test", "--event", &event.to_string(), "--json"],
        )
        .await?,
    )?;
    for field in [
        "verdict",
        "rule_id",
        "handling",
        "forwarded",
        "team",
        "host",
        "webhook_severity",
        "fingerprint",
        "rules",
    ] {
        assert_eq!(x[field], by_cli[field], "{field}: endpoint and CLI differ");
    }
    Ok(x)
}

/// DESIGN.md's rule semantics, case by case (the cases of `semantics.rs`): each is
/// explained by the endpoint and by `muttdev rules test`, then sent through the pipeline,
/// and the alerter decides exactly what the explanation said. Nothing the tests ask is
/// appended, sent or audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_test_explains_each_design_case_as_the_alerter_decides() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    // Ids 1 … 6, in this order.
    crate::semantics::design_rules(&env).await?;
    let mutt = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_UNHANDLED_THRESHOLD", "5")
            .set("MUTT_UNHANDLED_WINDOW", "1h"),
    )
    .await?;
    let api = Api::new(&mutt.control_url, "test-key");
    let control = mutt.control_url.as_str();
    let audits_before = env.count("SELECT count(*) FROM config_audit_log").await?;

    let cases = crate::semantics::design_events();
    let mut x = std::collections::HashMap::new();
    for e in &cases {
        x.insert(
            e["case"].as_str().unwrap().to_string(),
            explained(&api, control, e).await?,
        );
    }
    let handled = |c: &str, rule: i64, team: &str, forwarded: bool| {
        let v = &x[c];
        assert_eq!(v["verdict"], "handled", "case {c}: {v:#}");
        assert_eq!(
            (
                v["rule_id"].as_i64(),
                v["team"].as_str(),
                v["forwarded"].as_bool()
            ),
            (Some(rule), Some(team), Some(forwarded)),
            "case {c}: {v:#}"
        );
        assert_eq!(outcome(v, rule), "matched", "case {c}");
    };
    // Every rule is listed, the inactive one first (priority 0), in the alerter's order.
    let order: Vec<i64> = x["a"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [6, 5, 3, 1, 2, 4]);
    for v in x.values() {
        assert_eq!(outcome(v, 6), "inactive");
    }
    // OID on whole arcs; a leading dot is ignored.
    handled("a", 1, "OID", true);
    assert_eq!(outcome(&x["a"], 2), "not_reached");
    handled("c", 1, "OID", true);
    // 1.3.6.1.41 is not under 1.3.6.1.4; the text rule (no OID) still applies.
    assert_eq!(outcome(&x["b"], 1), "oid_arc_mismatch");
    handled("b", 2, "Text", true);
    // An exact severity filter: names map to numbers; a wrong severity falls through.
    handled("d", 3, "Crit", true);
    assert_eq!(x["d"]["webhook_severity"], 5);
    assert_eq!(outcome(&x["e"], 3), "severity_mismatch");
    assert_eq!(outcome(&x["e"], 1), "no_text_test");
    handled("e", 2, "Text", true);
    assert_eq!(x["e"]["webhook_severity"], 4);
    // Regex search, case-insensitive; contains is a substring test.
    assert_eq!(outcome(&x["f"], 2), "contains_no_match");
    handled("f", 4, "Fan", true);
    assert_eq!(x["f"]["webhook_severity"], 3);
    // A development host gets dev_handling (Ignore: audited only).
    handled("g", 2, "Text", false);
    assert_eq!(x["g"]["host"], "development");
    assert_eq!(x["g"]["handling"], "Ignore");
    // Ignore wins by priority and is audited only; the text rule would match too.
    handled("h", 5, "Nobody", false);
    let h2 = x["h"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == 2)
        .unwrap()
        .clone();
    assert_eq!(
        (h2["outcome"].as_str(), h2["would_match"].as_bool()),
        (Some("not_reached"), Some(true))
    );
    // No rule: unhandled, with its fingerprint and the default team.
    assert_eq!(x["i"]["verdict"], "unhandled");
    assert_eq!(outcome(&x["i"], 1), "oid_arc_mismatch");
    assert_eq!(outcome(&x["i"], 2), "contains_no_match");
    assert_eq!(
        (x["i"]["team"].as_str(), x["i"]["team_from"].as_str()),
        (Some("NETO"), Some("default"))
    );
    assert_eq!(x["i"]["counter"]["count"], 0);
    assert_eq!(x["i"]["counter"]["threshold"], 5);

    // The CLI reads the same for people: each rule, then the verdict.
    let o = cli(
        control,
        "test-key",
        &["rules", "test", "--event", &cases[4].to_string()],
    )
    .await?;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("severity mismatch"), "{text}");
    assert!(text.contains("skipped: inactive"), "{text}");
    assert!(text.contains("handled by rule 2"), "{text}");
    // A sample event, and events in a file.
    let o = json_of(
        &cli(
            control,
            "test-key",
            &["rules", "test", "--sample", "trap-1", "--json"],
        )
        .await?,
    )?;
    assert_eq!(o["hostname"], "core-router-01.dc1.example.com");
    let file = env.dir.join("events.json");
    std::fs::write(&file, json!([cases[0], cases[8]]).to_string())?;
    let o = json_of(
        &cli(
            control,
            "test-key",
            &["rules", "test", "--file", file.to_str().unwrap(), "--json"],
        )
        .await?,
    )?;
    assert_eq!(o[0]["verdict"], "handled");
    assert_eq!(o[1]["verdict"], "unhandled");

    // Nothing was appended, sent or audited by all that.
    assert_eq!(read_stream(&env, "events").await?.len(), 0);
    assert_eq!(sink.unique(), 0);
    assert_eq!(
        env.count("SELECT count(*) FROM config_audit_log").await?,
        audits_before
    );
    assert_eq!(env.count("SELECT count(*) FROM event_audit_log").await?, 0);

    // Now the alerter decides the same events: what was explained is what happens.
    let mut batch = cases.to_vec();
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
    let alerts = sink.seen().events.clone();
    for (case, v) in &x {
        let alert = alerts.iter().find(|a| a["custom_info"]["case"] == *case);
        let expect_alert = v["verdict"] == "handled" && v["forwarded"] == true;
        assert_eq!(alert.is_some(), expect_alert, "case {case}: {v:#}");
        if let Some(a) = alert {
            assert_eq!(a["class"], v["team"], "case {case}");
            assert_eq!(a["severity"], v["webhook_severity"], "case {case}");
        }
    }
    // The handled-but-ignored cases are audited with the explained rule and handling.
    let mut db = env.db().await?;
    let rows: Vec<(String, Option<i32>, String)> = sqlx::query_as(
        "SELECT raw_message::json->>'case', matched_rule_id, handling_decision FROM event_audit_log
         WHERE raw_message::json->>'case' IN ('g', 'h') ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await?;
    assert_eq!(
        rows,
        [
            ("g".to_string(), Some(2), "Ignore".to_string()),
            ("h".to_string(), Some(5), "Ignore".to_string())
        ]
    );

    // The counters: four of five for other-host's fingerprint; flood-host's reached the
    // threshold, made its meta-alert (to its device team), and is silent now.
    let few = ev("few", "other-host", "disk 9 error at 10.0.0.9", json!({}));
    let counted = wait_until(
        "the unhandled events counted",
        Duration::from_secs(20),
        || {
            let api = api.clone();
            let few = few.clone();
            async move {
                let (_, v, _) = api
                    .call("POST", "/api/v2/rules/test", Some(json!({ "event": few })))
                    .await
                    .ok()?;
                (v["counter"]["count"] == 4).then_some(v)
            }
        },
    )
    .await?;
    assert_eq!(counted["counter"]["silenced"], false);
    assert!(counted["counter"]["window_left_ms"].as_u64().unwrap() <= 3_600_000);
    let flood = explained(
        &api,
        control,
        &ev("flood", "Flood-Host", "disk 7 error at 10.0.0.7", json!({})),
    )
    .await?;
    assert_eq!(flood["verdict"], "unhandled");
    assert_eq!(
        (flood["team"].as_str(), flood["team_from"].as_str()),
        (Some("FloodTeam"), Some("device_teams"))
    );
    assert_eq!(flood["fingerprint"], counted["fingerprint"]);
    assert_eq!(flood["counter"]["silenced"], true, "{flood:#}");
    let meta = alerts
        .iter()
        .find(|a| a["type"] == "unhandled")
        .expect("a meta-alert");
    assert_eq!(meta["class"], flood["team"]);

    drop(mutt);
    stop.cancel();
    env.cleanup().await
}

/// The endpoint needs only the read scope; a bad event is a 400 naming the field, through
/// the API and the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_test_needs_read_and_names_a_bad_field() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    env.migrate().await?;
    let cfg = MuttConfig::new("control");
    let mutt = Mutt::start(&env, &cfg).await?;
    let admin = Api::new(&mutt.control_url, &cfg.api_key);
    let mut keys = Vec::new();
    for (name, scope) in [("reader", "read"), ("sender", "ingest")] {
        let (status, body, _) = admin
            .call(
                "POST",
                "/api/v2/keys",
                Some(json!({"name": name, "scopes": [scope]})),
            )
            .await?;
        assert_eq!(status, 201, "{body}");
        keys.push(body["key"].as_str().unwrap().to_string());
    }
    let event =
        json!({"hostname": "r1", "message": "link down", "timestamp": "2026-11-26T10:00:00Z"});
    // Keys reach the process within a poll.
    let reader = Api::new(&mutt.control_url, &keys[0]);
    let answer = wait_until("the read key to work", Duration::from_secs(10), || {
        let reader = reader.clone();
        let event = event.clone();
        async move {
            let (s, v, _) = reader
                .call(
                    "POST",
                    "/api/v2/rules/test",
                    Some(json!({ "event": event })),
                )
                .await
                .ok()?;
            (s == 200).then_some(v)
        }
    })
    .await?;
    assert_eq!(answer["verdict"], "unhandled");
    assert_eq!(answer["rules"], json!([]));
    let (status, _, _) = reader
        .call("POST", "/api/v2/rules", Some(json!({"match_string": "x"})))
        .await?;
    assert_eq!(status, 403, "writing still needs write");
    let (status, body, _) = Api::new(&mutt.control_url, &keys[1])
        .call(
            "POST",
            "/api/v2/rules/test",
            Some(json!({ "event": event })),
        )
        .await?;
    assert_eq!(status, 403, "{body}");

    for (bad, field) in [
        (json!({"hostname": "r1", "message": "x"}), "event.timestamp"),
        (
            json!({"hostname": "r1", "message": "x", "timestamp": "2026-11-26T10:00:00Z",
                   "syslog_severity": "loud"}),
            "event.syslog_severity",
        ),
        (
            json!({"hostname": "", "message": "x", "timestamp": "2026-11-26T10:00:00Z"}),
            "event.hostname",
        ),
        (
            json!({"hostname": "r1", "message": "x", "timestamp": "2026-11-26T10:00:00Z",
                   "trap_oid": "1.x"}),
            "event.trap_oid",
        ),
    ] {
        let (status, body, _) = reader
            .call("POST", "/api/v2/rules/test", Some(json!({ "event": bad })))
            .await?;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], field, "{body}");
        assert_eq!(body["error"]["code"], "invalid");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    let (status, body, _) = reader
        .call("POST", "/api/v2/rules/test", Some(json!({"evnt": event})))
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let o = cli(
        &mutt.control_url,
        &keys[0],
        &[
            "rules",
            "test",
            "--event",
            r#"{"hostname": "r1", "message": "x"}"#,
        ],
    )
    .await?;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("event.timestamp"), "{}", stderr(&o));
    // A usage error is 2.
    let o = cli(&mutt.control_url, &keys[0], &["rules", "test"]).await?;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    drop(mutt);
    env.cleanup().await
}

/// Rules, hosts and teams round-trip through the CLI; every read command's `--json` parses
/// and has the documented fields, and every change is audited with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_hosts_and_teams_round_trip_through_the_cli() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    env.migrate().await?;
    let cfg = MuttConfig::new("control");
    let mutt = Mutt::start(&env, &cfg).await?;
    let c = mutt.control_url.as_str();
    let key = cfg.api_key.as_str();
    const RULE_FIELDS: &[&str] = &[
        "id",
        "priority",
        "match_type",
        "match_string",
        "trap_oid",
        "syslog_severity",
        "prod_handling",
        "dev_handling",
        "team_assignment",
        "is_active",
    ];

    let added = json_of(
        &cli(
            c,
            key,
            &[
                "rules",
                "add",
                "--match",
                "link down",
                "--severity",
                "critical",
                "--priority",
                "-5",
                "--prod",
                "Page_and_ticket",
                "--team",
                "NetOps",
                "--reason",
                "outages page",
                "--json",
            ],
        )
        .await?,
    )?;
    for f in RULE_FIELDS {
        assert!(added.get(*f).is_some(), "{f} in {added}");
    }
    assert_eq!(
        (
            added["syslog_severity"].as_i64(),
            added["priority"].as_i64(),
            added["dev_handling"].as_str()
        ),
        (Some(2), Some(-5), Some("Ignore"))
    );
    let id = added["id"].as_i64().unwrap().to_string();
    let oid = json_of(
        &cli(
            c,
            key,
            &[
                "rules",
                "add",
                "--type",
                "oid_prefix",
                "--oid",
                ".1.3.6.1.4",
                "--prod",
                "Ticket_only",
                "--team",
                "Traps",
                "--inactive",
                "--reason",
                "traps",
                "--json",
            ],
        )
        .await?,
    )?;
    assert_eq!(
        (oid["match_type"].as_str(), oid["is_active"].as_bool()),
        (Some("oid_prefix"), Some(false))
    );

    let edited = json_of(
        &cli(
            c,
            key,
            &[
                "rules",
                "edit",
                &id,
                "--priority",
                "7",
                "--clear-severity",
                "--team",
                "Core",
                "--reason",
                "one team",
                "--json",
            ],
        )
        .await?,
    )?;
    assert_eq!(
        (
            edited["priority"].as_i64(),
            edited["syslog_severity"].is_null(),
            edited["team_assignment"].as_str()
        ),
        (Some(7), true, Some("Core"))
    );
    let listed = json_of(&cli(c, key, &["rules", "list", "--json"]).await?)?;
    let rules = listed["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    for r in rules {
        for f in RULE_FIELDS {
            assert!(r.get(*f).is_some(), "{f} in {r}");
        }
    }
    let o = cli(c, key, &["rules", "list"]).await?;
    assert!(
        stdout(&o).contains("link down") && stdout(&o).contains("1.3.6.1.4"),
        "{}",
        stdout(&o)
    );
    // A bad regex is refused by the API, naming the field: exit 1.
    let o = cli(
        c,
        key,
        &[
            "rules",
            "add",
            "--type",
            "regex",
            "--match",
            "(",
            "--prod",
            "Page_only",
            "--team",
            "T",
            "--reason",
            "r",
        ],
    )
    .await?;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("match_string"), "{}", stderr(&o));
    // A change without a reason is a usage error.
    let o = cli(c, key, &["rules", "rm", &id]).await?;
    assert_eq!(o.status.code(), Some(2));

    // Hosts and teams.
    let h = json_of(
        &cli(
            c,
            key,
            &["hosts", "add", "Lab-01", "--reason", "lab", "--json"],
        )
        .await?,
    )?;
    assert_eq!(h["hostname"], "Lab-01");
    let hosts = json_of(&cli(c, key, &["hosts", "list", "--json"]).await?)?;
    assert_eq!(hosts, json!({"hosts": [{"hostname": "Lab-01"}]}));
    json_of(&cli(c, key, &["teams", "set", "core 1", "NetOps", "--json"]).await?)?;
    let t = json_of(
        &cli(
            c,
            key,
            &[
                "teams", "set", "core 1", "Core", "--reason", "moved", "--json",
            ],
        )
        .await?,
    )?;
    assert_eq!(t["team_assignment"], "Core");
    let teams = json_of(&cli(c, key, &["teams", "list", "--json"]).await?)?;
    assert_eq!(
        teams,
        json!({"teams": [{"hostname": "core 1", "team_assignment": "Core"}]})
    );
    // The explanation sees them.
    let x = json_of(
        &cli(
            c,
            key,
            &[
                "rules",
                "test",
                "--event",
                r#"{"hostname": "LAB-01", "message": "LINK DOWN", "timestamp": "2026-11-26T10:00:00Z"}"#,
                "--json",
            ],
        )
        .await?,
    )?;
    for f in [
        "hostname",
        "host",
        "webhook_severity",
        "rules",
        "verdict",
        "team",
        "event",
    ] {
        assert!(x.get(f).is_some(), "{f} in {x}");
    }
    assert_eq!(
        (
            x["host"].as_str(),
            x["rule_id"].as_i64(),
            x["handling"].as_str()
        ),
        (Some("development"), added["id"].as_i64(), Some("Ignore"))
    );
    let x = json_of(
        &cli(
            c,
            key,
            &[
                "rules",
                "test",
                "--event",
                r#"{"hostname": "Core 1", "message": "fan", "timestamp": "2026-11-26T10:00:00Z"}"#,
                "--json",
            ],
        )
        .await?,
    )?;
    assert_eq!(
        (x["verdict"].as_str(), x["team"].as_str()),
        (Some("unhandled"), Some("Core"))
    );
    for f in ["count", "threshold", "window", "silenced"] {
        assert!(x["counter"].get(f).is_some(), "{f} in {x}");
    }

    json_of(
        &cli(
            c,
            key,
            &["teams", "rm", "core 1", "--reason", "gone", "--json"],
        )
        .await?,
    )?;
    json_of(&cli(c, key, &["hosts", "rm", "Lab-01", "--json"]).await?)?;
    let deleted =
        json_of(&cli(c, key, &["rules", "rm", &id, "--reason", "done", "--json"]).await?)?;
    assert_eq!(deleted["deleted"]["id"].as_i64(), added["id"].as_i64());
    assert_eq!(
        json_of(&cli(c, key, &["teams", "list", "--json"]).await?)?,
        json!({"teams": []})
    );
    let o = cli(c, key, &["rules", "rm", &id, "--reason", "again"]).await?;
    assert_eq!(o.status.code(), Some(1), "a missing rule is a failure");

    let mut db = env.db().await?;
    let audited: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT operation, table_name, reason FROM config_audit_log ORDER BY id")
            .fetch_all(&mut db)
            .await?;
    let rules_audit: Vec<(&str, Option<&str>)> = audited
        .iter()
        .filter(|a| a.1 == "alert_rules")
        .map(|a| (a.0.as_str(), a.2.as_deref()))
        .collect();
    assert_eq!(
        rules_audit,
        [
            ("CREATE", Some("outages page")),
            ("CREATE", Some("traps")),
            ("UPDATE", Some("one team")),
            ("DELETE", Some("done")),
        ]
    );
    assert!(
        audited
            .iter()
            .any(|a| a.1 == "device_teams" && a.2.as_deref() == Some("moved"))
    );

    drop(mutt);
    env.cleanup().await
}

/// Runs `muttdev doctor --json` and returns (exit code, checks by name → verdict).
async fn doctor(args: &[&str], key: &str) -> anyhow::Result<(i32, Vec<Value>)> {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let o = muttdev(&all, &[("MUTT_API_KEY", key)]).await?;
    let checks: Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| anyhow::anyhow!("not JSON ({e}): {}{}", stdout(&o), stderr(&o)))?;
    let checks = checks.as_array().cloned().unwrap_or_default();
    for c in &checks {
        let mut keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["check", "detail", "fix", "verdict"], "{c}");
        assert!(
            ["ok", "warn", "fail"].contains(&c["verdict"].as_str().unwrap()),
            "{c}"
        );
    }
    Ok((o.status.code().unwrap_or(-1), checks))
}

fn verdict<'a>(checks: &'a [Value], name: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .and_then(|c| c["verdict"].as_str())
        .unwrap_or("absent")
}

/// `doctor` passes a healthy setup (only warnings), and fails, exit 1, a Redis that evicts
/// keys and a database missing a month's partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_setup_and_flags_eviction_and_a_missing_partition()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    let cfg = MuttConfig::new("control").webhook(sink.url());
    let mutt = Mutt::start(&env, &cfg).await?;
    let nothing = format!("http://127.0.0.1:{}", free_port());
    let common = |redis: String, control: String| -> Vec<String> {
        vec![
            "--redis-url".into(),
            redis,
            "--database-url".into(),
            env.database_url.clone(),
            "--prefix".into(),
            env.prefix.clone(),
            "--webhook-url".into(),
            sink.url(),
            "--control".into(),
            control,
        ]
    };

    // Healthy: nothing fails (the local Redis runs without AOF: a warning).
    let args = common(env.redis_url.clone(), mutt.control_url.clone());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, checks) = doctor(&refs, &cfg.api_key).await?;
    assert_eq!(code, 0, "{checks:#?}");
    for name in [
        "redis version",
        "redis maxmemory-policy",
        "redis ACL",
        "postgres version",
        "migrations",
        "partitions ahead",
        "application role",
        "webhook",
        "clocks",
        "settings",
    ] {
        assert_eq!(verdict(&checks, name), "ok", "{name}: {checks:#?}");
    }
    assert!(checks.iter().all(|c| c["verdict"] != "fail"));
    // The human table says the same.
    let o = muttdev(
        &[
            "doctor",
            "--redis-url",
            &env.redis_url,
            "--database-url",
            &env.database_url,
            "--control",
            &nothing,
        ],
        &[],
    )
    .await?;
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("partitions ahead"), "{}", stdout(&o));
    drop(mutt);

    // A Redis that evicts keys (streams included) fails.
    let redis = RedisServer::start(false).await?;
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut conn)
        .await?;
    let args = common(redis.url(), nothing.clone());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, checks) = doctor(&refs, &cfg.api_key).await?;
    assert_eq!(code, 1, "{checks:#?}");
    assert_eq!(
        verdict(&checks, "redis maxmemory-policy"),
        "fail",
        "{checks:#?}"
    );
    assert_eq!(verdict(&checks, "partitions ahead"), "ok");
    assert_eq!(
        verdict(&checks, "settings"),
        "warn",
        "not checked without the control API"
    );

    // A month missing among the partitions ahead fails.
    let mut db = env.db().await?;
    let month: String = sqlx::query_scalar(
        "SELECT name FROM mutt_partitions('event_audit_log')
         WHERE lo <= now() + interval '2 months' AND hi > now() + interval '2 months'",
    )
    .fetch_one(&mut db)
    .await?;
    sqlx::raw_sql(&format!("DROP TABLE \"{month}\""))
        .execute(&mut db)
        .await?;
    let args = common(env.redis_url.clone(), nothing.clone());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, checks) = doctor(&refs, &cfg.api_key).await?;
    assert_eq!(code, 1, "{checks:#?}");
    assert_eq!(verdict(&checks, "redis maxmemory-policy"), "ok");
    let partitions = checks
        .iter()
        .find(|c| c["check"] == "partitions ahead")
        .unwrap();
    assert_eq!(partitions["verdict"], "fail", "{partitions}");
    let shown = format!("{}-{}", &month[16..20], &month[21..23]);
    assert!(
        partitions["detail"].as_str().unwrap().contains(&shown),
        "{shown}: {partitions}"
    );
    assert!(!partitions["fix"].as_str().unwrap().is_empty());

    stop.cancel();
    env.cleanup().await
}
