//! The control API the console reads: the overview (every process with its readiness and
//! counters, the streams, the DLQs), who the calling key is, and the DLQ filters with
//! their dry runs.

use std::collections::HashSet;
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};

/// The process of `overview` that runs `role`.
fn process<'a>(overview: &'a Value, role: &str) -> Option<&'a Value> {
    overview["processes"].as_array()?.iter().find(|p| {
        p["roles"]
            .as_array()
            .is_some_and(|r| r.contains(&json!(role)))
    })
}

/// A stream of `overview` (`events`, `alerts`).
fn stream<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

fn total(overview: &Value, key: &str) -> f64 {
    overview["totals"][key].as_f64().unwrap_or(0.0)
}

/// MUTT as four processes: the overview lists each, ready, with the counters of its roles
/// only; they move as events flow; the streams show their groups' lag and pending, and the
/// DLQs their depth. `whoami` says what an admin key and a read-only key may do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_every_process_stream_and_dlq() -> anyhow::Result<()> {
    let rig = Rig::start().await?;
    let mut procs = Vec::new();
    for role in ["control", "ingest", "alerter", "forwarder"] {
        // No automatic replay: the dead letters below stay where the test put them.
        let cfg = rig.cfg(role).set("MUTT_DLQ_REPLAY_INTERVAL", "0s");
        procs.push(Mutt::start(&rig.env, &cfg).await?);
    }
    let (control, ingest) = (&procs[0], &procs[1]);
    let admin = Api::new(&control.control_url, "test-key");

    // Every process reports within one heartbeat (5 s), ready.
    let overview = wait_until("four ready processes", Duration::from_secs(20), || async {
        let o = admin.get("/api/v2/overview").await.ok()?;
        let ps = o["processes"].as_array()?;
        (ps.len() == 4 && ps.iter().all(|p| p["ready"] == true)).then_some(o)
    })
    .await?;
    assert_eq!(overview["config"], json!({"version": 0, "converged": true}));
    assert!(overview["time_ms"].as_i64().unwrap() > 0);
    for (role, keys) in [
        ("control", vec![]),
        (
            "ingest",
            vec!["events_accepted", "events_rejected", "events_shed"],
        ),
        (
            "alerter",
            vec!["alerts_raised", "events_processed", "writes_held"],
        ),
        (
            "forwarder",
            vec![
                "alerts_dead_lettered",
                "alerts_delivered",
                "breaker_open",
                "rate_limit_hits",
            ],
        ),
    ] {
        let p = process(&overview, role).unwrap_or_else(|| panic!("{role} in {overview}"));
        let got: Vec<&str> = p["stats"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(got, keys, "{role}'s counters: {p}");
        assert_eq!(p["converged"], true);
        assert_eq!(p["checks"]["redis"], "ok", "{p}");
    }
    let alerter = process(&overview, "alerter").unwrap();
    assert_eq!(alerter["checks"]["postgres"], "ok");
    assert_eq!(alerter["checks"]["rules_loaded"], "ok");
    assert_eq!(
        process(&overview, "forwarder").unwrap()["checks"].get("postgres"),
        None
    );

    // Events flow: the counters move, in the processes and in the totals.
    let accepted = send_all(
        vec![ingest.ingest_url.clone()],
        20,
        10,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(accepted.len(), 20);
    let overview = wait_until(
        "the counters of 20 events",
        Duration::from_secs(30),
        || async {
            let o = admin.get("/api/v2/overview").await.ok()?;
            let moved = [
                "events_accepted",
                "events_processed",
                "alerts_raised",
                "alerts_delivered",
            ]
            .iter()
            .all(|k| total(&o, k) >= 20.0);
            moved.then_some(o)
        },
    )
    .await?;
    assert_eq!(
        process(&overview, "ingest").unwrap()["stats"]["events_accepted"],
        json!(20.0)
    );
    assert_eq!(total(&overview, "breaker_open"), 0.0);
    let events = stream(&overview, "events");
    assert_eq!(events["key"], format!("{}:events", rig.env.prefix));
    assert!(events["entries_added"].as_u64().unwrap() >= 20, "{events}");
    let group = &events["groups"][0];
    assert_eq!(group["name"], "alerter");
    assert!(group["consumers"].as_u64().unwrap() >= 1, "{group}");
    assert!(group["entries_read"].as_u64().unwrap() >= 20, "{group}");
    // Everything was delivered to the alerters (null: Redis cannot tell).
    assert!(group["lag"] == 0 || group["lag"].is_null(), "{group}");
    assert_eq!(
        stream(&overview, "alerts")["groups"][0]["name"],
        "forwarder"
    );

    // The webhook fails (503, retried): the alerts wait in the forwarders' hands.
    rig.sink.set_behaviour(Behaviour::Fail(503, None));
    let more = send_all(
        vec![ingest.ingest_url.clone()],
        5,
        5,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(more.len(), 5);
    wait_until("alerts pending", Duration::from_secs(20), || async {
        let o = admin.get("/api/v2/overview").await.ok()?;
        let g = &stream(&o, "alerts")["groups"][0];
        (g["pending"].as_u64()? + g["lag"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await?;
    // Refused for good (400): the alerts go to the DLQ, which the overview shows.
    rig.sink.set_behaviour(Behaviour::Fail(400, None));
    wait_for_dead_letters(&rig.env, "forwarder", 5).await?;
    let overview = wait_until(
        "the dead letters counted",
        Duration::from_secs(20),
        || async {
            let o = admin.get("/api/v2/overview").await.ok()?;
            (total(&o, "alerts_dead_lettered") >= 5.0).then_some(o)
        },
    )
    .await?;
    let dlq = overview["dlqs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "forwarder")
        .unwrap();
    assert_eq!(dlq["depth"], 5, "{dlq}");
    assert!(dlq["oldest_age_seconds"].as_i64().unwrap() >= 0);

    // Who is calling: the bootstrap key may do everything.
    let me = admin.get("/api/v2/whoami").await?;
    assert_eq!(me["name"], "bootstrap");
    assert_eq!(me["allows"], json!(["ingest", "read", "write", "admin"]));
    // A read-only key, once every process knows it, may read and nothing else.
    let (status, created, _) = admin
        .call(
            "POST",
            "/api/v2/keys",
            Some(json!({"name": "viewer", "scopes": ["read"], "reason": "console"})),
        )
        .await?;
    assert_eq!(status, 201, "{created}");
    let viewer = Api::new(&control.control_url, created["key"].as_str().unwrap());
    let me = wait_until("the new key accepted", Duration::from_secs(10), || async {
        viewer.get("/api/v2/whoami").await.ok()
    })
    .await?;
    assert_eq!(
        me,
        json!({"name": "viewer", "scopes": ["read"], "allows": ["read"]})
    );
    viewer.get("/api/v2/overview").await?;
    let (status, body, _) = viewer
        .call(
            "POST",
            "/api/v2/dlq/forwarder/replay",
            Some(json!({"all": true, "dry_run": true})),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        Api::new(&control.control_url, "wrong")
            .call("GET", "/api/v2/whoami", None)
            .await?
            .0,
        401
    );

    drop(procs);
    rig.finish().await
}

/// The ids of every letter of a filtered listing, paging `limit` at a time.
async fn listed(api: &Api, query: &str, limit: u32) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut after = String::new();
    for _ in 0..100 {
        let page = api
            .get(&format!(
                "/api/v2/dlq/forwarder?limit={limit}&{query}{after}"
            ))
            .await?;
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= limit as usize);
        ids.extend(
            entries
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(n) => after = format!("&after={n}"),
            None => return Ok(ids),
        }
    }
    anyhow::bail!("no end to the pages of {query}")
}

async fn dlq_audit_rows(env: &TestEnv) -> anyhow::Result<i64> {
    env.count("SELECT count(*) FROM config_audit_log WHERE table_name = 'dlq'")
        .await
}

/// Dead letters of two kinds and two ages: the filters of the listing, of a dry run and
/// of a purge select the same letters, a dry run changes and audits nothing, and a bad age
/// is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_filtered_counted_and_purged_by_age() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s"),
    )
    .await?;
    let admin = Api::new(&all.control_url, "test-key");
    let send = |n: u64| {
        send_all(
            vec![all.ingest_url.clone()],
            n,
            n as usize,
            Duration::ZERO,
            Duration::from_secs(10),
        )
    };
    // Four old letters refused with 400, then, 3 s later, five refused with 422.
    sink.set_behaviour(Behaviour::Fail(400, None));
    assert_eq!(send(4).await.len(), 4);
    wait_for_dead_letters(&env, "forwarder", 4).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    sink.set_behaviour(Behaviour::Fail(422, None));
    assert_eq!(send(5).await.len(), 5);
    wait_for_dead_letters(&env, "forwarder", 9).await?;

    let letters = admin.get("/api/v2/dlq/forwarder?limit=200").await?;
    let letters = letters["entries"].as_array().unwrap().clone();
    let ids_where = |code: &str| -> HashSet<String> {
        letters
            .iter()
            .filter(|l| l["last_error"].as_str().unwrap().contains(code))
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (old, new) = (ids_where("with 400"), ids_where("with 422"));
    assert_eq!((old.len(), new.len()), (4, 5));
    // The age between the two kinds: the old ones first failed before it, the new after.
    let first_failure = |ids: &HashSet<String>| -> Vec<i64> {
        letters
            .iter()
            .filter(|l| ids.contains(l["id"].as_str().unwrap()))
            .map(|l| l["first_failure_ms"].as_i64().unwrap())
            .collect()
    };
    let cut = (first_failure(&old).into_iter().max().unwrap()
        + first_failure(&new).into_iter().min().unwrap())
        / 2;
    let older_than = format!("{}ms", mutt_core::now_ms() - cut);

    // Listing: each filter, paged two at a time, every page of matching letters.
    let set = |v: Vec<String>| v.into_iter().collect::<HashSet<_>>();
    assert_eq!(
        set(listed(&admin, "error_contains=with%20422", 2).await?),
        new
    );
    assert_eq!(
        set(listed(&admin, &format!("older_than={older_than}"), 2).await?),
        old
    );
    assert!(listed(&admin, "older_than=1h", 50).await?.is_empty());
    let one = letters[0]["source_id"].as_str().unwrap();
    assert_eq!(
        listed(&admin, &format!("source_id={one}"), 50).await?,
        vec![letters[0]["id"].as_str().unwrap().to_string()]
    );
    let (status, body, _) = admin
        .call("GET", "/api/v2/dlq/forwarder?older_than=soon", None)
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );

    // A dry run says how many, without a reason, and changes and audits nothing.
    let audited = dlq_audit_rows(&env).await?;
    let (status, body, _) = admin
        .call(
            "POST",
            "/api/v2/dlq/forwarder/replay",
            Some(json!({"error_contains": "with 422", "dry_run": true})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["dry_run"].as_bool(), body["count"].as_u64()),
        (Some(true), Some(5))
    );
    let ids: HashSet<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, new);
    let (status, body, _) = admin
        .call(
            "POST",
            "/api/v2/dlq/forwarder/purge",
            Some(json!({"older_than": older_than, "dry_run": true})),
        )
        .await?;
    assert_eq!((status, body["count"].as_u64()), (200, Some(4)), "{body}");
    assert_eq!(read_stream(&env, "dlq:forwarder").await?.len(), 9);
    assert_eq!(dlq_audit_rows(&env).await?, audited);

    // Without dry_run a reason is still required, and a bad age is a 400 naming it.
    let (status, _, _) = admin
        .call(
            "POST",
            "/api/v2/dlq/forwarder/purge",
            Some(json!({"older_than": older_than})),
        )
        .await?;
    assert_eq!(status, 400);
    let (status, body, _) = admin
        .call(
            "POST",
            "/api/v2/dlq/forwarder/purge",
            Some(json!({"older_than": "soon", "reason": "old", "dry_run": true})),
        )
        .await?;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("older_than")),
        "{body}"
    );

    // The purge takes exactly what its dry run counted.
    let (status, body, _) = admin
        .call(
            "POST",
            "/api/v2/dlq/forwarder/purge",
            Some(json!({"older_than": older_than, "reason": "too old to matter"})),
        )
        .await?;
    assert_eq!((status, body["purged"].as_u64()), (200, Some(4)), "{body}");
    let left: HashSet<String> = read_stream(&env, "dlq:forwarder")
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, new);
    assert_eq!(dlq_audit_rows(&env).await?, audited + 1);

    drop(all);
    stop.cancel();
    env.cleanup().await
}
