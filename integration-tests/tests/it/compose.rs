//! The compose stack, from outside: tests that reach it only through its published ports
//! (ingest, control, the stand-in webhook, Prometheus) and Docker's own commands (kill,
//! scale, network disconnect). They need the stack `compose/ci/up.sh` starts, so they are
//! ignored in the main suite; `.ci/run` runs them after it:
//!
//! ```sh
//! compose/ci/up.sh && cargo nextest run -p mutt-integration-tests --run-ignored only -E 'test(/^compose::/)'
//! ```
//!
//! The stack is shared: each test marks its events with a run tag of its own and counts
//! only those at the webhook.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How long a test waits for the stack to deliver what it accepted (a reclaim after a
/// kill takes up to `MUTT_CLAIM_TIMEOUT`, 30 s by default, plus its interval).
const DELIVERY: Duration = Duration::from_secs(120);

/// The stack `compose/ci/up.sh` started, as it described it in `stack.env`.
struct Stack {
    env: BTreeMap<String, String>,
    http: reqwest::Client,
}

impl Stack {
    fn load() -> anyhow::Result<Self> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root")
            .to_path_buf();
        let file = root.join("target/compose-ci/stack.env");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; start the stack with compose/ci/up.sh",
                file.display()
            )
        })?;
        let env = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Ok(Self {
            env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    fn get(&self, k: &str) -> &str {
        self.env
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing from stack.env"))
    }

    fn control(&self) -> Api {
        Api::new(self.get("CONTROL_URL"), self.get("API_KEY"))
    }

    /// Runs `docker-compose` against the stack's project (its files and variables come
    /// from stack.env, as up.sh used them).
    async fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = tokio::process::Command::new("docker-compose");
        cmd.envs(&self.env).args(args);
        run(cmd, "docker-compose", args).await
    }

    async fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = tokio::process::Command::new("docker");
        cmd.args(args);
        run(cmd, "docker", args).await
    }

    /// The running containers of `service`.
    async fn containers(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let out = self
            .docker(&[
                "ps",
                "-q",
                "--filter",
                &format!(
                    "label=com.docker.compose.project={}",
                    self.get("COMPOSE_PROJECT")
                ),
                "--filter",
                &format!("label=com.docker.compose.service={service}"),
            ])
            .await?;
        Ok(out.split_whitespace().map(str::to_string).collect())
    }

    /// Posts `n` events tagged `run` (each with its `seq`) in batches, each batch retried
    /// until ingest accepts it or `deadline` passes; `pace` between batches. Returns the
    /// accepted seqs.
    async fn send(&self, run: &str, message: &str, n: u64, pace: Duration) -> HashSet<u64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let mut accepted = HashSet::new();
        let seqs: Vec<u64> = (0..n).collect();
        for batch in seqs.chunks(25) {
            let body: Vec<Value> = batch
                .iter()
                .map(|&seq| {
                    json!({
                        "hostname": format!("compose-{}", seq % 7),
                        "message": format!("{message} #{seq}"),
                        "syslog_severity": 3,
                        "timestamp": now(),
                        "run": run,
                        "seq": seq,
                    })
                })
                .collect();
            loop {
                let r = self
                    .http
                    .post(format!("{}/api/v2/ingest", self.get("INGEST_URL")))
                    .header("x-api-key", self.get("API_KEY"))
                    .json(&body)
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == 202) {
                    accepted.extend(batch);
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return accepted;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(pace).await;
        }
        accepted
    }

    /// The alerts of `run` the webhook accepted: seq → how many times.
    async fn delivered(&self, run: &str) -> anyhow::Result<HashMap<u64, u32>> {
        let v: Value = self
            .http
            .get(format!("{}/events", self.get("SINK_URL")))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut out = HashMap::new();
        for e in v["events"].as_array().into_iter().flatten() {
            if e["custom_info"]["run"] == run
                && let Some(seq) = e["custom_info"]["seq"].as_u64()
            {
                *out.entry(seq).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// The alerts of `run` themselves.
    async fn alerts(&self, run: &str) -> anyhow::Result<Vec<Value>> {
        let v: Value = self
            .http
            .get(format!("{}/events", self.get("SINK_URL")))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["custom_info"]["run"] == run)
            .cloned()
            .collect())
    }

    /// Waits until every accepted seq of `run` was delivered; returns the duplicates.
    async fn all_delivered(&self, run: &str, accepted: &HashSet<u64>) -> anyhow::Result<u64> {
        wait_until(
            &format!("{} alerts of {run} delivered", accepted.len()),
            DELIVERY,
            || async {
                let d = self.delivered(run).await.ok()?;
                accepted.iter().all(|s| d.contains_key(s)).then_some(())
            },
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let d = self.delivered(run).await?;
        let extra: Vec<_> = d.keys().filter(|s| !accepted.contains(s)).collect();
        assert!(
            extra.is_empty(),
            "alerts of events never accepted: {extra:?}"
        );
        Ok(d.values().map(|&n| u64::from(n - 1)).sum())
    }

    async fn set_sink(&self, behaviour: Value) -> anyhow::Result<()> {
        self.http
            .put(format!("{}/behaviour", self.get("SINK_URL")))
            .json(&behaviour)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn prometheus(&self, query: &str) -> anyhow::Result<Vec<Value>> {
        let v: Value = self
            .http
            .get(format!("{}/api/v1/query", self.get("PROMETHEUS_URL")))
            .query(&[("query", query)])
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(v["status"] == "success", "{query}: {v}");
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// A rule that forwards the events whose message contains `token`, to `team`
    /// (created once; the stack is shared).
    async fn forwarding_rule(&self, token: &str, team: &str) -> anyhow::Result<i64> {
        let api = self.control();
        let rules = api.get("/api/v2/rules").await?;
        if let Some(r) = rules["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["match_string"] == token)
        {
            return Ok(r["id"].as_i64().unwrap_or_default());
        }
        let (status, body, _) = api
            .call(
                "POST",
                "/api/v2/rules",
                Some(json!({
                    "match_string": token, "match_type": "contains", "priority": 1,
                    "prod_handling": "Page_and_ticket", "dev_handling": "Page_and_ticket",
                    "team_assignment": team, "reason": "compose test",
                })),
            )
            .await?;
        anyhow::ensure!(status == 201, "creating the rule: {status} {body}");
        Ok(body["id"].as_i64().unwrap_or_default())
    }
}

async fn run(
    mut cmd: tokio::process::Command,
    what: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.kill_on_drop(true).output())
        .await
        .map_err(|_| anyhow::anyhow!("{what} {args:?} took over 120 s"))??;
    anyhow::ensure!(
        out.status.success(),
        "{what} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Now, as ingest wants an event's timestamp.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a timestamp")
}

fn tag(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The token every forwarded compose-test event carries, and its rule's team.
const TOKEN: &str = "compose-test-forward";
const TEAM: &str = "COMPOSE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: compose/ci/up.sh"]
async fn events_reach_the_webhook_with_the_routing_the_rules_give() -> anyhow::Result<()> {
    let stack = Stack::load()?;
    let api = stack.control();
    // One of the seeded sample rules, found through the API: an event with its text is
    // routed as the rule tester says, by the alerters in their containers.
    let rules = api.get("/api/v2/rules").await?;
    let sample = rules["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["match_type"] == "contains"
                && r["is_active"] == true
                && r["match_string"]
                    .as_str()
                    .is_some_and(|m| !m.starts_with("compose-"))
        })
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no seeded contains rule: {rules}"))?;
    let text = sample["match_string"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let run = tag("routing");
    let host = format!("compose-{run}");
    let event = json!({"hostname": host, "message": format!("{text} on port 3"),
        "syslog_severity": 2, "timestamp": now(), "run": run, "seq": 0});
    let (status, expected, _) = api
        .call("POST", "/api/v2/rules/test", Some(json!({"event": event})))
        .await?;
    assert_eq!(status, 200, "{expected}");
    let r = stack
        .http
        .post(format!("{}/api/v2/ingest", stack.get("INGEST_URL")))
        .header("x-api-key", stack.get("API_KEY"))
        .json(&event)
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    if expected["forwarded"] == true {
        let alert = wait_until("the routed alert", DELIVERY, || async {
            stack.alerts(&run).await.ok()?.into_iter().next()
        })
        .await?;
        assert_eq!(alert["class"], expected["team"], "{alert}");
        assert_eq!(alert["severity"], expected["webhook_severity"], "{alert}");
    }
    // Audited with the rule the tester named, whatever its handling.
    let host_events = wait_until("the event audit row", DELIVERY, || async {
        let page = api
            .get(&format!("/api/v2/events?hostname={host}&limit=100"))
            .await
            .ok()?;
        page["events"]
            .as_array()?
            .iter()
            .find(|e| e["matched_rule_id"] == expected["rule_id"])
            .cloned()
    })
    .await?;
    assert!(host_events["matched_rule_id"].is_i64(), "{expected}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: compose/ci/up.sh"]
async fn a_rule_and_a_setting_changed_through_the_api_take_effect() -> anyhow::Result<()> {
    let stack = Stack::load()?;
    let api = stack.control();
    let team = format!(
        "COMPOSE_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let token = format!("compose-rule-{}", team.to_lowercase());
    stack.forwarding_rule(&token, &team).await?;
    let run = tag("rule");
    // The alerters reload rules on the announcement; events are sent until one is routed
    // by the new rule.
    let alert = wait_until("an alert routed by the new rule", DELIVERY, || async {
        stack.send(&run, &token, 1, Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stack
            .alerts(&run)
            .await
            .ok()?
            .into_iter()
            .find(|a| a["class"] == team.as_str())
    })
    .await?;
    assert_eq!(alert["class"], team.as_str());

    // A hot setting reaches every process in every container.
    let before = api.get("/api/v2/config/unhandled_threshold").await?;
    let next = before["value"].as_str().unwrap_or("100").parse::<u64>()? + 1;
    let (status, body, _) = api
        .call(
            "PUT",
            "/api/v2/config/unhandled_threshold",
            Some(json!({"value": next.to_string(), "reason": "compose test"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].as_i64().unwrap_or_default();
    let v = wait_until(
        "every process to apply it",
        Duration::from_secs(30),
        || async {
            let v = api.get("/api/v2/config/versions").await.ok()?;
            let all = v["consumers"].as_array()?;
            (all.len() >= 4 && all.iter().all(|c| c["version"].as_i64() >= Some(version)))
                .then_some(v)
        },
    )
    .await?;
    let roles: HashSet<&str> = v["consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["roles"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    for r in ["ingest", "alerter", "forwarder", "control"] {
        assert!(roles.contains(r), "{r} reported its version: {v}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: compose/ci/up.sh"]
async fn a_dlq_filled_while_the_webhook_fails_is_replayed_through_the_api() -> anyhow::Result<()> {
    let stack = Stack::load()?;
    let api = stack.control();
    stack.forwarding_rule(TOKEN, TEAM).await?;
    let run = tag("dlq");
    let depth = || async {
        let v = api.get("/api/v2/dlq").await.ok()?;
        v["dlqs"]
            .as_array()?
            .iter()
            .find(|d| d["name"] == "forwarder")?["depth"]
            .as_u64()
    };
    let start = depth().await.unwrap_or(0);
    // 400: refused for their content, dead-lettered at once (a 5xx would be retried).
    stack
        .set_sink(json!({"mode": "fail", "status": 400}))
        .await?;
    let accepted = stack.send(&run, TOKEN, 30, Duration::ZERO).await;
    let filled = wait_until("30 dead letters", DELIVERY, || async {
        depth().await.filter(|d| *d >= start + 30)
    })
    .await;
    stack.set_sink(json!({"mode": "accept"})).await?;
    filled?;
    assert_eq!(accepted.len(), 30);
    let (status, body, _) = api
        .call(
            "POST",
            "/api/v2/dlq/forwarder/replay",
            Some(json!({"all": true, "reason": "compose test: the webhook is back"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let dups = stack.all_delivered(&run, &accepted).await?;
    assert_eq!(dups, 0, "a replayed letter was delivered twice");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: compose/ci/up.sh"]
async fn prometheus_scrapes_every_role_and_the_slo_endpoint_answers_from_it() -> anyhow::Result<()>
{
    let stack = Stack::load()?;
    let up = wait_until("every MUTT target up", Duration::from_secs(60), || async {
        let r = stack.prometheus("up").await.ok()?;
        let jobs: HashMap<String, f64> = r
            .iter()
            .map(|s| {
                (
                    format!(
                        "{}/{}",
                        s["metric"]["job"].as_str().unwrap_or(""),
                        s["metric"]["instance"].as_str().unwrap_or("")
                    ),
                    s["value"][1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0.0),
                )
            })
            .collect();
        let roles_up = ["ingest", "alerter", "forwarder", "control"]
            .iter()
            .all(|role| {
                jobs.iter()
                    .any(|(k, v)| k.starts_with(&format!("{role}/")) && *v == 1.0)
            });
        let none_down = jobs.values().all(|v| *v == 1.0);
        (roles_up && none_down).then_some(jobs)
    })
    .await?;
    assert!(up.len() >= 5, "{up:?}");
    let api = stack.control();
    let slo = wait_until("the SLO endpoint", Duration::from_secs(30), || async {
        let (status, body, _) = api.call("GET", "/api/v2/slo", None).await.ok()?;
        (status == 200).then_some(body)
    })
    .await?;
    assert!(
        slo["slos"].as_array().is_some_and(|o| !o.is_empty()),
        "{slo}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: compose/ci/up.sh"]
async fn one_trace_spans_ingest_alerter_and_forwarder_containers() -> anyhow::Result<()> {
    let stack = Stack::load()?;
    stack.forwarding_rule(TOKEN, TEAM).await?;
    let stop = CancellationToken::new();
    let (collector, _) = http_collector_on(stack.get("OTLP_BIND"), &stop).await?;
    // Exporters that failed while no receiver listened keep trying; events are sent until
    // one trace holds the spans of the three roles.
    let services = wait_until("one trace across the roles", DELIVERY, || async {
        let trace = uuid::Uuid::new_v4().simple().to_string();
        let r = stack
            .http
            .post(format!("{}/api/v2/ingest", stack.get("INGEST_URL")))
            .header("x-api-key", stack.get("API_KEY"))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .json(
                &json!({"hostname": "compose-traced", "message": format!("{TOKEN} traced"),
                "syslog_severity": 3, "timestamp": now()}),
            )
            .send()
            .await
            .ok()?;
        if r.status() != 202 {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let id = trace_bytes(&trace);
        let services: HashSet<String> = collector
            .spans()
            .into_iter()
            .filter(|g| g.span.trace_id == id)
            .map(|g| g.service)
            .collect();
        ["mutt-ingest", "mutt-alerter", "mutt-forwarder"]
            .iter()
            .all(|s| services.contains(*s))
            .then_some(services)
    })
    .await?;
    stop.cancel();
    assert!(services.len() >= 3, "{services:?}");
    Ok(())
}

/// A trace id's bytes, as the spans carry it.
fn trace_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: compose/ci/up.sh"]
async fn killing_an_alerter_container_loses_nothing() -> anyhow::Result<()> {
    let stack = Stack::load()?;
    stack.forwarding_rule(TOKEN, TEAM).await?;
    let alerters = stack.containers("alerter").await?;
    anyhow::ensure!(!alerters.is_empty(), "no alerter container");
    let run = tag("kill");
    // Events flow for about 7 s; the kill lands in the middle of it.
    let sending = stack.send(&run, TOKEN, 1500, Duration::from_millis(100));
    let killing = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stack.docker(&["kill", &alerters[0]]).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        // `docker kill` counts as a manual stop for the restart policy: start it again,
        // as an orchestrator would.
        stack.docker(&["start", &alerters[0]]).await
    };
    let (accepted, killed) = tokio::join!(sending, killing);
    killed?;
    assert_eq!(accepted.len(), 1500, "ingest accepted every batch");
    let dups = stack.all_delivered(&run, &accepted).await?;
    println!("kill -9 of one alerter: 1500 accepted, 1500 delivered, {dups} duplicates");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: compose/ci/up.sh"]
async fn scaling_out_shares_the_work_and_loses_nothing() -> anyhow::Result<()> {
    let stack = Stack::load()?;
    stack.forwarding_rule(TOKEN, TEAM).await?;
    let api = stack.control();
    let run = tag("scale");
    // Events flow for about 15 s; the new replicas join after the first second.
    let sending = stack.send(&run, TOKEN, 3000, Duration::from_millis(100));
    let scaling = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stack
            .compose(&[
                "up",
                "-d",
                "--no-build",
                "--no-recreate",
                "--scale",
                "alerter=3",
                "--scale",
                "forwarder=2",
                "alerter",
                "forwarder",
            ])
            .await
    };
    let (accepted, scaled) = tokio::join!(sending, scaling);
    scaled?;
    assert_eq!(accepted.len(), 3000);
    let dups = stack.all_delivered(&run, &accepted).await?;
    assert_eq!(stack.containers("alerter").await?.len(), 3);
    assert_eq!(stack.containers("forwarder").await?.len(), 2);
    // Every consumer did part of the work: its own counters, from its heartbeat.
    let per = wait_until(
        "every consumer's counters",
        Duration::from_secs(30),
        || async {
            let o = api.get("/api/v2/overview").await.ok()?;
            let mut per: Vec<(String, String, f64)> = Vec::new();
            for p in o["processes"].as_array()? {
                let roles: Vec<&str> = p["roles"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let (role, key) = if roles.contains(&"alerter") {
                    ("alerter", "events_processed")
                } else if roles.contains(&"forwarder") {
                    ("forwarder", "alerts_delivered")
                } else {
                    continue;
                };
                per.push((
                    role.into(),
                    p["consumer"].as_str()?.into(),
                    p["stats"][key].as_f64().unwrap_or(0.0),
                ));
            }
            let count = |r: &str| per.iter().filter(|p| p.0 == r).count();
            (count("alerter") >= 3 && count("forwarder") >= 2 && per.iter().all(|p| p.2 > 0.0))
                .then_some(per)
        },
    )
    .await?;
    println!(
        "scaled to 3 alerters and 2 forwarders: 3000 accepted, 3000 delivered, {dups} duplicates; per consumer: {per:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: compose/ci/up.sh"]
async fn a_network_cut_between_a_worker_and_redis_loses_nothing() -> anyhow::Result<()> {
    let stack = Stack::load()?;
    stack.forwarding_rule(TOKEN, TEAM).await?;
    let network = stack.get("COMPOSE_NETWORK").to_string();
    let forwarder = stack
        .containers("forwarder")
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no forwarder container"))?;
    let run = tag("netcut");
    // Events flow for about 16 s, through the whole cut.
    let sending = stack.send(&run, TOKEN, 2000, Duration::from_millis(200));
    let cutting = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stack
            .docker(&["network", "disconnect", &network, &forwarder])
            .await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        reconnect(&stack, &network, &forwarder).await
    };
    let (accepted, cut) = tokio::join!(sending, cutting);
    if cut.is_err() {
        // Never leave the worker off the network for the tests after this one.
        let _ = reconnect(&stack, &network, &forwarder).await;
    }
    cut?;
    assert_eq!(accepted.len(), 2000);
    let dups = stack.all_delivered(&run, &accepted).await?;
    println!("10 s network cut of one forwarder: 2000 accepted, 2000 delivered, {dups} duplicates");
    Ok(())
}

/// Puts the container back on the network under its service's name, as compose had it
/// (Prometheus finds the replicas by that name).
async fn reconnect(stack: &Stack, network: &str, container: &str) -> anyhow::Result<String> {
    stack
        .docker(&[
            "network",
            "connect",
            "--alias",
            "forwarder",
            network,
            container,
        ])
        .await
}
