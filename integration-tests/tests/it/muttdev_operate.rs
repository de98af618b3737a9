//! `muttdev`'s operator commands, run as the binary an operator runs, against a real
//! stack: `status` (zero when healthy, non-zero when a process dies), `config set` reaching
//! every process, `dlq show|replay|purge` (a DLQ drained, a bulk purge refused without a
//! terminal to confirm on), `keys`, `secrets status` and `retention`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use mutt_integration_tests::*;
use serde_json::Value;

/// What one `muttdev` run did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `muttdev args…` against the control API at `control`, with the test key, stdin
/// not a terminal, and only the environment given (plus `PATH`).
async fn muttdev(control: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Run> {
    let mut cmd = tokio::process::Command::new(muttdev_binary()?);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUTT_API_KEY", MuttConfig::new("all").api_key)
        .env("MUTT_CONTROL_URL", control)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .context("muttdev did not finish in 120 s")??;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `status` exits 0 on a healthy stack and shows every process; once a process given
/// with `--ops` is killed it exits 1 and says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_zero_when_healthy_and_one_when_a_process_is_down() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let all = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    let mut ingest = Mutt::start(&env, &MuttConfig::new("ingest")).await?;
    let ingest_ops = ingest.ops_url.clone();
    let args = [
        "status",
        "--ops",
        &all.ops_url,
        "--ops",
        &ingest_ops,
        "--json",
    ];
    // Healthy once every process reported and the workers published their groups' lag
    // and pending (each reclaim round does).
    let mut s = Value::Null;
    for _ in 0..60 {
        let r = muttdev(&all.control_url, &args, &[]).await?;
        s = r.json();
        let published = ["alerter", "forwarder"].iter().all(|group| {
            s["streams"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g["group"] == *group))
        });
        if r.code == 0 && published {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["config"]["converged"], true);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas/muttdev-status.schema.json"),
    )?)?;
    let violations = violations(&schema, &s, "$");
    assert!(
        violations.is_empty(),
        "status --json against its schema: {violations:?}\n{s}"
    );
    let consumers: Vec<&str> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["consumer"].as_str())
        .collect();
    assert!(
        consumers.contains(&all.consumer.as_str()) && consumers.contains(&ingest.consumer.as_str()),
        "{consumers:?}"
    );
    let ops = s["ops"].as_array().unwrap();
    assert!(ops.iter().all(|o| o["state"] == "ready"), "{ops:?}");
    // The DLQs and retention come from the control API; without a Prometheus the SLOs
    // are unavailable, which is not a failure.
    assert_eq!(s["dlqs"].as_array().map(Vec::len), Some(2), "{s}");
    assert!(s["slo"]["available"].is_boolean());
    assert!(s["retention"]["enabled"].is_boolean(), "{s}");
    // The alerter and forwarder of `all` publish their groups' lag and pending.
    assert!(
        s["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "alerter"),
        "{s}"
    );
    // The human view says the same.
    let human = muttdev(&all.control_url, &args[..5], &[]).await?;
    assert_eq!(human.code, 0, "{human:?}");
    assert!(human.stdout.contains(&all.consumer), "{}", human.stdout);

    ingest.kill9()?;
    let r = muttdev(&all.control_url, &args, &[]).await?;
    assert_eq!(r.code, 1, "{r:?}");
    let s = r.json();
    assert_eq!(s["ok"], false);
    let problems = s["problems"].to_string();
    assert!(problems.contains(&ingest_ops), "{problems}");
    assert!(
        s["ops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["url"] == ingest_ops.as_str() && o["state"] == "down")
    );

    // No control API at all: exit 1 too.
    let r = muttdev("http://127.0.0.1:9", &["status", "--json"], &[]).await?;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["control"]["reachable"], false);

    drop(all);
    stop.cancel();
    env.cleanup().await
}

/// `config set` changes a hot setting, waits until every process applied the new
/// version, and says so; the control API agrees, and `get` and `history` show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_reaches_every_process() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let all = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    let fwd = Mutt::start(&env, &MuttConfig::new("forwarder").webhook(sink.url())).await?;
    let api = Api::new(&all.control_url, &MuttConfig::new("all").api_key);
    // Both processes report before the change, so that both are waited for.
    wait_until(
        "two processes reporting",
        Duration::from_secs(20),
        || async {
            let v = api.get("/api/v2/config/versions").await.ok()?;
            (v["consumers"].as_array()?.len() == 2).then_some(())
        },
    )
    .await?;

    let r = muttdev(
        &all.control_url,
        &[
            "config",
            "set",
            "MUTT_BREAKER_THRESHOLD",
            "7",
            "--reason",
            "muttdev test",
            "--json",
        ],
        &[],
    )
    .await?;
    assert_eq!(r.code, 0, "{r:?}");
    let set = r.json();
    assert_eq!(set["new_value"], "7");
    assert_eq!(set["converged"], true, "{set}");
    let version = set["version"].as_i64().unwrap();
    let procs = set["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2, "{set}");
    assert!(procs.iter().all(|p| p["converged"] == true));

    let v = api.get("/api/v2/config/versions").await?;
    assert_eq!(v["version"], version);
    assert_eq!(v["converged"], true, "{v}");
    for c in v["consumers"].as_array().unwrap() {
        assert!(c["version"].as_i64().unwrap() >= version, "{v}");
    }
    assert!(
        v["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["consumer"] == fwd.consumer.as_str())
    );
    assert_eq!(
        api.get("/api/v2/config/breaker_threshold").await?["value"],
        "7"
    );

    let got = muttdev(
        &all.control_url,
        &["config", "get", "breaker_threshold", "--json"],
        &[],
    )
    .await?;
    assert_eq!(got.json()["value"], "7", "{got:?}");
    let hist = muttdev(
        &all.control_url,
        &["config", "history", "breaker_threshold", "--json"],
        &[],
    )
    .await?;
    let h = hist.json();
    assert_eq!(h["logs"][0]["new_values"]["value"], "7", "{h}");
    assert_eq!(h["logs"][0]["reason"], "muttdev test");
    let list = muttdev(&all.control_url, &["config", "list"], &[]).await?;
    assert_eq!(list.code, 0);
    assert!(list.stdout.contains("breaker_threshold"));

    // A value the setting refuses: exit 1, with the API's message.
    let bad = muttdev(
        &all.control_url,
        &[
            "config",
            "set",
            "breaker_threshold",
            "lots",
            "--reason",
            "x",
        ],
        &[],
    )
    .await?;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.starts_with("error:"), "{bad:?}");

    drop((all, fwd));
    stop.cancel();
    env.cleanup().await
}

/// The fields of a `DeadLetter` the OpenAPI document requires.
fn documented_dead_letter_fields() -> Vec<String> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/control.openapi.yaml"),
    )
    .expect("the control OpenAPI document");
    let lines: Vec<&str> = doc.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == "    DeadLetter:")
        .expect("DeadLetter in the document");
    let req = start
        + lines[start..]
            .iter()
            .position(|l| l.trim() == "required:")
            .expect("its required fields");
    lines[req + 1..]
        .iter()
        .map_while(|l| l.trim().strip_prefix("- "))
        .map(str::to_string)
        .collect()
}

/// Dead letters made by a failing webhook: `dlq show --json` lists them with the
/// documented fields, a bulk purge without `--yes` and no terminal is refused and purges
/// nothing, and `dlq replay --all --yes` drains the DLQ once the webhook accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_show_purge_refusal_and_replay() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let cfg = MuttConfig::new("all")
        .webhook(sink.url())
        .set("MUTT_FORWARDER_MAX_ATTEMPTS", "1")
        .set("MUTT_BREAKER_THRESHOLD", "1000000")
        .set("MUTT_DLQ_REPLAY_INTERVAL", "0s");
    let all = Mutt::start(&env, &cfg).await?;
    sink.set_behaviour(Behaviour::Fail(503, None));
    let r = post_events(
        &reqwest::Client::new(),
        &all.ingest_url,
        &Value::Array(mutt_devkit::load::build_events(20)),
    )
    .await?;
    assert_eq!(r.status(), 202);
    wait_for_dead_letters(&env, "forwarder", 20).await?;
    let c = all.control_url.as_str();

    // list and show.
    let list = muttdev(c, &["dlq", "list", "--json"], &[]).await?.json();
    let fwd = list["dlqs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "forwarder")
        .cloned()
        .unwrap();
    assert_eq!(fwd["depth"], 20, "{list}");
    let show = muttdev(c, &["dlq", "show", "forwarder", "--json"], &[]).await?;
    assert_eq!(show.code, 0, "{show:?}");
    let s = show.json();
    assert_eq!(
        (s["dlq"].as_str(), s["count"].as_u64()),
        (Some("forwarder"), Some(20))
    );
    assert_eq!(s["more"], false);
    let fields = documented_dead_letter_fields();
    assert!(
        fields.len() >= 10 && fields.contains(&"last_error".to_string()),
        "{fields:?}"
    );
    for e in s["entries"].as_array().unwrap() {
        for f in &fields {
            assert!(e.get(f).is_some(), "{f} missing in {e}");
        }
        assert_eq!(e["group"], "forwarder");
        assert!(e["last_error"].as_str().unwrap().contains("503"), "{e}");
    }
    let limited = muttdev(
        c,
        &["dlq", "show", "forwarder", "--limit", "5", "--json"],
        &[],
    )
    .await?
    .json();
    assert_eq!(
        (limited["count"].as_u64(), &limited["more"]),
        (Some(5), &Value::Bool(true))
    );
    let none = muttdev(
        c,
        &["dlq", "show", "forwarder", "--older-than", "1h", "--json"],
        &[],
    )
    .await?
    .json();
    assert_eq!(none["count"], 0, "nothing is an hour old: {none}");
    let by_error = muttdev(
        c,
        &[
            "dlq",
            "show",
            "forwarder",
            "--error",
            "no such error",
            "--json",
        ],
        &[],
    )
    .await?
    .json();
    assert_eq!(by_error["count"], 0);

    // A bulk purge with nobody to confirm it: refused, nothing purged.
    let purge = muttdev(
        c,
        &["dlq", "purge", "forwarder", "--all", "--reason", "cleanup"],
        &[],
    )
    .await?;
    assert_eq!(purge.code, 1, "{purge:?}");
    assert!(purge.stderr.contains("--yes"), "{purge:?}");
    assert_eq!(read_stream(&env, "dlq:forwarder").await?.len(), 20);
    // Selecting without --reason is a usage error.
    let usage = muttdev(c, &["dlq", "replay", "forwarder", "--all"], &[]).await?;
    assert_eq!(usage.code, 2, "{usage:?}");

    // The webhook is back: replay everything.
    sink.set_behaviour(Behaviour::Accept);
    let replay = muttdev(
        c,
        &[
            "dlq",
            "replay",
            "forwarder",
            "--all",
            "--yes",
            "--reason",
            "webhook back",
            "--json",
        ],
        &[],
    )
    .await?;
    assert_eq!(replay.code, 0, "{replay:?}");
    let rj = replay.json();
    assert_eq!(
        (rj["selected"].as_u64(), rj["done"].as_u64()),
        (Some(20), Some(20)),
        "{rj}"
    );
    wait_until("every alert delivered", Duration::from_secs(30), || async {
        (sink.unique() == 20).then_some(())
    })
    .await?;
    wait_until("the DLQ empty", Duration::from_secs(10), || async {
        read_stream(&env, "dlq:forwarder")
            .await
            .ok()?
            .is_empty()
            .then_some(())
    })
    .await?;
    let after = muttdev(c, &["dlq", "show", "forwarder", "--json"], &[])
        .await?
        .json();
    assert_eq!(after["count"], 0);
    // The replay is audited with its reason.
    assert!(
        env.count("SELECT count(*) FROM config_audit_log WHERE operation = 'REPLAY' AND reason = 'webhook back'")
            .await?
            >= 1
    );

    drop(all);
    stop.cancel();
    env.cleanup().await
}

/// `keys create` prints a working key once and `keys list` shows it; `keys revoke`
/// ends it; `secrets status` and `retention status` print JSON that parses; `retention
/// run --dry-run` runs `mutt retention` with muttdev's environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_secrets_and_retention() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    // A webhook token at start: a secret that was never configured has nothing to rotate.
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_WEBHOOK_TOKEN", "initial-token-0123456789"),
    )
    .await?;
    let c = all.control_url.as_str();

    let created = muttdev(
        c,
        &[
            "keys",
            "create",
            "ci-bot",
            "--scope",
            "read,ingest",
            "--reason",
            "ci",
            "--json",
        ],
        &[],
    )
    .await?;
    assert_eq!(created.code, 0, "{created:?}");
    assert!(created.stderr.contains("shown once"), "{created:?}");
    let k = created.json();
    let key = k["key"].as_str().expect("the key").to_string();
    assert!(key.starts_with("mutt_"), "{k}");
    let as_bot = Api::new(c, &key);
    wait_until("the new key accepted", Duration::from_secs(10), || async {
        as_bot.get("/api/v2/dlq").await.ok()
    })
    .await?;
    let list = muttdev(c, &["keys", "list", "--json"], &[]).await?;
    let keys = list.json();
    let bot = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci-bot")
        .cloned()
        .unwrap_or_else(|| panic!("ci-bot not listed: {keys}"));
    let mut scopes: Vec<&str> = bot["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["ingest", "read"]);
    assert!(!list.stdout.contains(&key), "a key is never listed back");
    let revoked = muttdev(c, &["keys", "revoke", "ci-bot", "--reason", "ci done"], &[]).await?;
    assert_eq!(revoked.code, 0, "{revoked:?}");
    wait_until("the key refused", Duration::from_secs(10), || async {
        let (status, _, _) = as_bot.call("GET", "/api/v2/dlq", None).await.ok()?;
        (status == 401).then_some(())
    })
    .await?;

    let secrets = muttdev(c, &["secrets", "status", "--json"], &[]).await?;
    assert_eq!(secrets.code, 0, "{secrets:?}");
    assert!(secrets.json()["secrets"].is_array());

    // A key rotated: the new one works at once.
    let made = muttdev(
        c,
        &[
            "keys", "create", "ci-rot", "--scope", "read", "--reason", "ci", "--json",
        ],
        &[],
    )
    .await?;
    assert_eq!(made.code, 0, "{made:?}");
    let rotated = muttdev(
        c,
        &[
            "keys",
            "rotate",
            "ci-rot",
            "--reason",
            "ci rotation",
            "--json",
        ],
        &[],
    )
    .await?;
    assert_eq!(rotated.code, 0, "{rotated:?}");
    let new_key = rotated.json()["key"]
        .as_str()
        .expect("the new key")
        .to_string();
    assert_ne!(new_key, made.json()["key"].as_str().unwrap_or_default());
    let as_rotated = Api::new(c, &new_key);
    wait_until(
        "the rotated key accepted",
        Duration::from_secs(10),
        || async { as_rotated.get("/api/v2/dlq").await.ok() },
    )
    .await?;

    // The webhook token rotated through its three steps, each shown converging.
    let token = [("NEW_TOKEN", "rotated-by-muttdev-0123456789")];
    for step in ["stage", "promote", "retire"] {
        let mut args = vec![
            "secrets",
            "rotate",
            "webhook_token",
            "--step",
            step,
            "--reason",
            "ci",
        ];
        if step == "stage" {
            args.extend(["--value-env", "NEW_TOKEN"]);
        }
        let r = muttdev(c, &args, &token).await?;
        assert_eq!(r.code, 0, "{step}: {r:?}");
    }
    let after = muttdev(c, &["secrets", "status", "--json"], &[])
        .await?
        .json();
    let webhook = after["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "webhook_token")
        .cloned()
        .unwrap_or_else(|| panic!("no webhook_token: {after}"));
    assert!(
        webhook["generation"].as_i64().unwrap_or(0) >= 3,
        "{webhook}"
    );
    assert!(
        !after.to_string().contains("rotated-by-muttdev"),
        "a value is never shown"
    );

    let ret = muttdev(c, &["retention", "status", "--json"], &[]).await?;
    assert_eq!(ret.code, 0, "{ret:?}");
    let rj = ret.json();
    assert!(rj["enabled"].is_boolean(), "{rj}");
    assert!(rj["policy"]["event_audit_days"].is_u64(), "{rj}");
    assert!(rj["runs"].is_array() && rj["partitions"]["event_audit_log"].is_array());
    let human = muttdev(c, &["retention", "status"], &[]).await?;
    assert!(human.stdout.contains("policy:"), "{human:?}");

    let dry = muttdev(
        c,
        &["retention", "run", "--dry-run"],
        &[
            ("MUTT_DATABASE_URL", &env.database_url),
            ("MUTT_REDIS_URL", &env.redis_url),
            ("MUTT_PREFIX", &env.prefix),
        ],
    )
    .await?;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("\"dry_run\": true"), "{dry:?}");
    // Another mutt binary (`MUTT_BINARY`, or `--mutt`): one that does not exist fails
    // with exit 1, the real one runs.
    let mutt = mutt_binary()?.display().to_string();
    let retention_env = [
        ("MUTT_DATABASE_URL", env.database_url.as_str()),
        ("MUTT_REDIS_URL", env.redis_url.as_str()),
        ("MUTT_PREFIX", env.prefix.as_str()),
    ];
    let mut with_binary = retention_env.to_vec();
    with_binary.push(("MUTT_BINARY", mutt.as_str()));
    let by_env = muttdev(c, &["retention", "run", "--dry-run"], &with_binary).await?;
    assert_eq!(by_env.code, 0, "{by_env:?}");
    let missing = muttdev(
        c,
        &[
            "retention",
            "run",
            "--dry-run",
            "--mutt",
            "/nonexistent/mutt",
        ],
        &retention_env,
    )
    .await?;
    assert_eq!(missing.code, 1, "{missing:?}");

    drop(all);
    stop.cancel();
    env.cleanup().await
}

/// Where `v` breaks `schema` (the subset of JSON Schema the muttdev documents use: `type`
/// (one or several), `enum`, `required`, `properties`, `additionalProperties: false`,
/// `items`).
fn violations(schema: &Value, v: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    let type_of = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let t = type_of(v);
    let fits =
        types.is_empty() || types.contains(&t) || (t == "integer" && types.contains(&"number"));
    if !fits {
        out.push(format!("{at}: {t}, not {types:?}"));
        return out;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        out.push(format!("{at}: {v} not in {allowed:?}"));
    }
    if let Value::Object(map) = v {
        for r in schema["required"].as_array().into_iter().flatten() {
            if let Some(k) = r.as_str()
                && !map.contains_key(k)
            {
                out.push(format!("{at}: {k} missing"));
            }
        }
        for (k, sub) in map {
            match schema["properties"].get(k) {
                Some(p) => out.extend(violations(p, sub, &format!("{at}.{k}"))),
                None if schema["additionalProperties"] == false => {
                    out.push(format!("{at}: {k} is not documented"))
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            out.extend(violations(item_schema, item, &format!("{at}[{i}]")));
        }
    }
    out
}

/// `load` sends and reports, `bench` measures a small whole stack, `completions` prints a
/// script for each shell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_bench_and_completions() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
    let all = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    let load = muttdev(
        &all.control_url,
        &[
            "load",
            "--url",
            &all.ingest_url,
            "--events",
            "300",
            "--batch",
            "50",
        ],
        &[],
    )
    .await?;
    assert_eq!(load.code, 0, "{load:?}");
    assert!(
        load.stdout.contains("accepted 300 rejected 0 failed 0"),
        "{load:?}"
    );
    wait_until("300 alerts", Duration::from_secs(30), || async {
        (sink.unique() == 300).then_some(())
    })
    .await?;
    drop(all);
    stop.cancel();

    let bench = muttdev(
        "http://127.0.0.1:1",
        &[
            "bench",
            "--events",
            "2000",
            "--redis-url",
            &env.redis_url,
            "--postgres-url",
            &postgres_server_url(),
        ],
        &[],
    )
    .await?;
    assert_eq!(bench.code, 0, "{bench:?}");
    assert!(bench.stdout.contains("accepted 2000"), "{bench:?}");
    assert!(bench.stdout.contains("processed"), "{bench:?}");

    for shell in ["bash", "zsh", "fish"] {
        let c = muttdev("http://127.0.0.1:1", &["completions", shell], &[]).await?;
        assert_eq!(c.code, 0, "{shell}: {c:?}");
        assert!(
            c.stdout.contains("muttdev") && c.stdout.contains("retention"),
            "{shell}"
        );
    }
    let usage = muttdev("http://127.0.0.1:1", &["dlq", "replay"], &[]).await?;
    assert_eq!(usage.code, 2, "a usage error exits 2: {usage:?}");
    env.cleanup().await
}
