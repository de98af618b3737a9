//! Secret rotation: the Redis password, the PostgreSQL password, the webhook token and an
//! API key rotate while 50,000 events flow, and no secret leaks anywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const EVENTS: u64 = 50_000;
const BATCH: usize = 250;

/// Everything the test said to the control API, and what it answered: scanned for leaks.
#[derive(Default)]
struct Transcript {
    bodies: Vec<String>,
}

struct Control {
    api: Api,
    transcript: Arc<Mutex<Transcript>>,
}

impl Control {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let (status, v, _) = self.api.call(method, path, body).await?;
        self.transcript.lock().await.bodies.push(v.to_string());
        Ok((status, v))
    }

    async fn step(&self, secret: &str, step: &str, value: Option<&str>) -> anyhow::Result<Value> {
        let mut body = json!({"step": step, "reason": format!("rotate {secret}: {step}")});
        if let Some(v) = value {
            body["value"] = json!(v);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, v) = self
                .call(
                    "POST",
                    &format!("/api/v2/secrets/{secret}/rotate"),
                    Some(body.clone()),
                )
                .await?;
            // Promote and retire wait until every process applied the previous step; a
            // 503 (a connection being re-established) says to retry.
            let retry = (status == 409 && v["error"]["code"] == "not_converged") || status == 503;
            if retry && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            anyhow::ensure!(status == 200, "{secret} {step}: {status} {v}");
            return Ok(v);
        }
    }

    /// Waits until every live process reports the secret's current generation.
    async fn converged(&self, secret: &str, processes: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        wait_until(
            &format!("{secret} to converge"),
            Duration::from_secs(20),
            || async {
                let (_, v) = self.call("GET", "/api/v2/secrets", None).await.ok()?;
                let s = v["secrets"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"] == secret)?
                    .clone();
                (s["converged"] == true && s["processes"].as_array()?.len() >= processes)
                    .then_some(())
            },
        )
        .await?;
        Ok(started.elapsed())
    }
}

async fn redis_auth(port: u16, user: &str, password: &str) -> Result<(), String> {
    let c = redis::Client::open(format!("redis://{user}:{password}@127.0.0.1:{port}"))
        .map_err(|e| e.to_string())?;
    let mut conn = c
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The ids of the connections of MUTT's ACL user that are not pub/sub.
async fn mutt_connections(
    admin: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(admin).await?;
    Ok(clients
        .lines()
        .filter(|l| l.contains(" user=mutt ") && !l.contains(" flags=P "))
        .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("id=")))
        .map(str::to_string)
        .collect())
}

async fn auth_calls(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .unwrap_or_default();
    info.lines()
        .find(|l| l.starts_with("cmdstat_auth:"))
        .and_then(|l| l.split("calls=").nth(1)?.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Every byte Redis holds under the prefix, except the secret store (where values live
/// by design), as text.
async fn redis_dump(
    admin: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> anyhow::Result<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(admin)
        .await?;
    let mut out = String::new();
    for k in keys {
        if k == format!("{prefix}:secrets") {
            continue;
        }
        let kind: String = redis::cmd("TYPE").arg(&k).query_async(admin).await?;
        let v: redis::Value = match kind.as_str() {
            "stream" => {
                redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query_async(admin)
                    .await?
            }
            "hash" => redis::cmd("HGETALL").arg(&k).query_async(admin).await?,
            "string" => redis::cmd("GET").arg(&k).query_async(admin).await?,
            "list" => {
                redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query_async(admin)
                    .await?
            }
            "set" => redis::cmd("SMEMBERS").arg(&k).query_async(admin).await?,
            "zset" => {
                redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query_async(admin)
                    .await?
            }
            _ => redis::Value::Nil,
        };
        out.push_str(&k);
        out.push_str(&format!("{v:?}"));
        // Bulk strings print as byte lists in Debug: add them as text too.
        fn text(v: &redis::Value, out: &mut String) {
            match v {
                redis::Value::BulkString(b) => out.push_str(&String::from_utf8_lossy(b)),
                redis::Value::Array(a) | redis::Value::Set(a) => {
                    a.iter().for_each(|x| text(x, out))
                }
                redis::Value::Map(m) => m.iter().for_each(|(a, b)| {
                    text(a, out);
                    text(b, out);
                }),
                redis::Value::SimpleString(s) => out.push_str(s),
                _ => {}
            }
        }
        text(&v, &mut out);
    }
    Ok(out)
}

/// The done-when of the rotation issue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secret_rotates_while_fifty_thousand_events_flow() -> anyhow::Result<()> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    // Distinctive values, so that a match in the scan is a leak and not a coincidence.
    let v = |what: &str| format!("{what}-{}", &id[..20]);
    let (rp1, rp2, dp1, dp2, wt1, wt2) =
        (v("rp1"), v("rp2"), v("dp1"), v("dp2"), v("wt1"), v("wt2"));

    let redis_server = RedisServer::start(false).await?;
    // A replica: Redis does not replicate ACL changes, so each rotation step must reach it
    // too, or a failover would promote a server that refuses MUTT's password.
    let replica = RedisServer::start_replica_of(&redis_server).await?;
    // The leak scan reads whole streams of 50,000 entries: more than redis-rs's default
    // response timeout (0.5 s) allows on a loaded machine.
    let mut admin = redis::Client::open(redis_server.url())?
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for url in [redis_server.url(), replica.url()] {
        let mut c = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let () = redis::cmd("ACL")
            .arg(
                &[
                    "SETUSER",
                    "mutt",
                    "on",
                    &format!(">{rp1}"),
                    "~*",
                    "&*",
                    "+@all",
                ][..],
            )
            .query_async(&mut c)
            .await?;
    }
    let pg = PostgresServer::start().await?;
    pg.create_role("mutt", &dp1).await?;
    let mut env = TestEnv::new().await?;
    env.redis_url = redis_server.url();

    let files = env.dir.join("secrets");
    std::fs::create_dir_all(&files)?;
    let write = |name: &str, value: &str| std::fs::write(files.join(name), format!("{value}\n"));
    write("redis", &rp1)?;
    write("db", &dp1)?;
    write("token", &wt1)?;

    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    sink.accept_tokens(&[&wt1]);

    // Everything announced on the control channel, for the scan.
    let announcements = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut pubsub = redis::Client::open(redis_server.url())?
        .get_async_pubsub()
        .await?;
    pubsub.subscribe(format!("{}:control", env.prefix)).await?;
    let listener = {
        let a = announcements.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut s = pubsub.on_message();
            while let Some(m) = s.next().await {
                a.lock()
                    .await
                    .push(m.get_payload::<String>().unwrap_or_default());
            }
        })
    };

    let redis_url = format!("redis://mutt@127.0.0.1:{}", redis_server.port);
    let cfg = |role: &str| {
        let mut c = MuttConfig::new(role)
            .webhook(sink.url())
            .set(
                "MUTT_DATABASE_URL",
                &format!("postgres://mutt@127.0.0.1:{}/mutt", pg.port()),
            )
            .set(
                "MUTT_REDIS_PASSWORD_FILE",
                &files.join("redis").display().to_string(),
            )
            .set(
                "MUTT_DATABASE_PASSWORD_FILE",
                &files.join("db").display().to_string(),
            )
            .set(
                "MUTT_WEBHOOK_TOKEN_FILE",
                &files.join("token").display().to_string(),
            )
            .set("MUTT_WEBHOOK_BATCH", "50")
            .set("MUTT_LOG_LEVEL", "debug");
        c.redis_url = Some(redis_url.clone());
        c
    };
    let all = Mutt::start(&env, &cfg("all")).await?;
    let procs = vec![
        Mutt::start(&env, &cfg("alerter")).await?,
        Mutt::start(&env, &cfg("forwarder")).await?,
    ];
    let transcript = Arc::new(Mutex::new(Transcript::default()));
    let control = Control {
        api: Api::new(&all.control_url, "test-key"),
        transcript: transcript.clone(),
    };
    let (status, body) = control
        .call("POST", "/api/v2/rules", Some(json!({"match_string": ".", "match_type": "regex", "priority": 1,
            "prod_handling": "Page_only", "dev_handling": "Page_only", "team_assignment": "Everyone", "reason": "forward everything"})))
        .await?;
    assert_eq!(status, 201, "{body}");
    let (status, created) = control
        .call(
            "POST",
            "/api/v2/keys",
            Some(json!({"name": "sender", "scopes": ["ingest"], "reason": "the load"})),
        )
        .await?;
    assert_eq!(status, 201, "{created}");
    let k1 = created["key"].as_str().unwrap().to_string();
    control.converged("redis_password", 3).await?;

    // The load: every request's first answer counts; nothing is retried.
    let key = Arc::new(RwLock::new(k1.clone()));
    let failed = Arc::new(AtomicU64::new(0));
    let sender = {
        let (key, failed, url) = (key.clone(), failed.clone(), all.ingest_url.clone());
        tokio::spawn(async move {
            let events = mutt_devkit::load::build_events(EVENTS);
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            let mut accepted = std::collections::HashSet::new();
            for chunk in events.chunks(BATCH) {
                let k = key.read().await.clone();
                let r = client
                    .post(format!("{url}/api/v2/ingest"))
                    .header("x-api-key", k)
                    .json(&Value::Array(chunk.to_vec()))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        accepted.extend(chunk.iter().filter_map(|e| e["seq"].as_u64()))
                    }
                    Ok(r) => {
                        eprintln!(
                            "ingest answered {}: {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        );
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("ingest request failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            (accepted, Instant::now())
        })
    };
    wait_until("traffic flowing", Duration::from_secs(30), || async {
        (sink.unique() > 1_000).then_some(())
    })
    .await?;
    let rotations_started = Instant::now();

    // 1. Redis: the ACL user holds both passwords, live connections re-authenticate on
    // promotion, the old password is refused after retirement.
    control.step("redis_password", "stage", Some(&rp2)).await?;
    assert_eq!(redis_auth(redis_server.port, "mutt", &rp1).await, Ok(()));
    assert_eq!(
        redis_auth(redis_server.port, "mutt", &rp2).await,
        Ok(()),
        "both passwords during the overlap"
    );
    assert_eq!(
        redis_auth(replica.port, "mutt", &rp2).await,
        Ok(()),
        "the replica accepts the new password too"
    );
    write("redis", &rp2)?; // The operator updates the mounted secret for restarts.
    // Pub/sub connections cannot re-authenticate (they reconnect with the current
    // password instead); every other connection of MUTT's user that lives through the
    // promotion must. Connections come and go meanwhile (a reader reconnecting, a pool
    // replaced), so what is checked is a state: the AUTH calls since the promotion cover
    // every connection that existed before it and still exists, whenever it is looked at.
    let before = mutt_connections(&mut admin).await?;
    let auth_before = auth_calls(&mut admin).await;
    control.step("redis_password", "promote", None).await?;
    let took = control.converged("redis_password", 3).await?;
    eprintln!("redis password promoted everywhere in {took:?}");
    let reauth = wait_until(
        "live connections to re-authenticate",
        Duration::from_secs(20),
        || {
            let (mut a, before) = (admin.clone(), before.clone());
            async move {
                let still = mutt_connections(&mut a).await.ok()?;
                let lived = before.intersection(&still).count() as u64;
                let n = auth_calls(&mut a).await - auth_before;
                (n >= lived).then_some((lived, n))
            }
        },
    )
    .await;
    eprintln!(
        "{} connections before the promotion; (lived through it, AUTH calls since): {reauth:?}",
        before.len()
    );
    reauth?;
    control.step("redis_password", "retire", None).await?;
    for port in [redis_server.port, replica.port] {
        let refused = redis_auth(port, "mutt", &rp1).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_lowercase().contains("authentication failed")
                    || e.contains("WRONGPASS")),
            "{port}: {refused:?}"
        );
    }
    assert_eq!(redis_auth(replica.port, "mutt", &rp2).await, Ok(()));
    // New connections use the new password: drop every MUTT connection.
    let _: redis::Value = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", "mutt"][..])
        .query_async(&mut admin)
        .await?;

    // 2. PostgreSQL: new pools use the new password; queries in flight finish.
    control
        .step("database_password", "stage", Some(&dp2))
        .await?;
    write("db", &dp2)?;
    control.step("database_password", "promote", None).await?;
    let took = control.converged("database_password", 3).await?;
    eprintln!("database password promoted everywhere in {took:?}");
    control.step("database_password", "retire", None).await?;
    let old_db = can_connect(&pg.url_for("mutt", &dp1, "mutt")).await;
    assert!(
        old_db
            .as_ref()
            .is_err_and(|e| e.contains("password authentication failed")),
        "{old_db:?}"
    );
    assert_eq!(can_connect(&pg.url_for("mutt", &dp2, "mutt")).await, Ok(()));

    // 3. Webhook token: the receiving side switches first; during the overlap a 401 with
    // one token is retried with the other.
    control.step("webhook_token", "stage", Some(&wt2)).await?;
    // As the runbook says: the receiving side switches once every process knows the
    // new token.
    control.converged("webhook_token", 3).await?;
    sink.accept_tokens(&[&wt2]);
    write("token", &wt2)?;
    // Alerts keep flowing for a while with the old token first: refused, then retried with
    // the staged one.
    wait_until(
        "a refused token to be retried with the other",
        Duration::from_secs(10),
        || async {
            (metric(&all.ops_url, "mutt_webhook_token_fallbacks_total").await > 0.0).then_some(())
        },
    )
    .await?;
    control.step("webhook_token", "promote", None).await?;
    control.converged("webhook_token", 3).await?;
    control.step("webhook_token", "retire", None).await?;
    let (wt1_after_retire, unauthorized_after_retire) = {
        let s = sink.seen();
        (
            s.presented_tokens.get(&wt1).copied().unwrap_or(0),
            s.unauthorized,
        )
    };

    // 4. API key: a new key, the old one accepted for the overlap, then refused and the
    // expiry audited.
    let (status, rotated) = control
        .call(
            "POST",
            "/api/v2/keys/sender/rotate",
            Some(json!({"overlap": "3s", "reason": "rotate the sender key"})),
        )
        .await?;
    assert_eq!(status, 201, "{rotated}");
    let k2 = rotated["key"].as_str().unwrap().to_string();
    let probe = |k: String| {
        let url = all.ingest_url.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{url}/api/v2/ingest"))
                .header("x-api-key", k)
                .json(&json!([]))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    wait_until(
        "the new key to be accepted",
        Duration::from_secs(10),
        || async { (probe(k2.clone()).await != 401).then_some(()) },
    )
    .await?;
    *key.write().await = k2.clone();
    assert_ne!(
        probe(k1.clone()).await,
        401,
        "the old key works during the overlap"
    );
    let rotations_took = rotations_started.elapsed();

    let (accepted, sender_done) = sender.await?;
    eprintln!(
        "rotations took {rotations_took:?}; the load ended {:?} after they started",
        sender_done - rotations_started
    );
    assert!(
        rotations_started + rotations_took < sender_done,
        "the rotations happened while events flowed"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no ingest request failed"
    );
    assert_eq!(accepted.len() as u64, EVENTS);
    wait_until(
        "every alert delivered",
        Duration::from_secs(120),
        || async { (sink.unique() as u64 >= EVENTS).then_some(()) },
    )
    .await?;
    let delivered = delivered_seqs(&sink);
    assert!(
        accepted.iter().all(|s| delivered.contains(s)),
        "no event lost"
    );

    // After the overlaps: every old credential refused, no authentication error since.
    wait_until("the old key to expire", Duration::from_secs(15), || async {
        (probe(k1.clone()).await == 401).then_some(())
    })
    .await?;
    assert!(redis_auth(redis_server.port, "mutt", &rp1).await.is_err());
    assert!(
        can_connect(&pg.url_for("mutt", &dp1, "mutt"))
            .await
            .is_err()
    );
    {
        let s = sink.seen();
        assert_eq!(
            s.presented_tokens.get(&wt1).copied().unwrap_or(0),
            wt1_after_retire,
            "the old token is not sent after retirement"
        );
        assert_eq!(
            s.unauthorized, unauthorized_after_retire,
            "no 401 after the overlap"
        );
        eprintln!(
            "webhook: {} refused with the old token during the overlap, {} accepted with the new",
            s.unauthorized,
            s.accepted_by_token.get(&wt2).copied().unwrap_or(0)
        );
        assert!(s.unauthorized > 0, "the fallback was exercised");
    }
    let audit_expiry = wait_until(
        "the key expiry to be audited",
        Duration::from_secs(20),
        || async {
            let (_, v) = control
                .call("GET", "/api/v2/audit?limit=200", None)
                .await
                .ok()?;
            let logs = v["logs"].as_array()?.clone();
            logs.iter()
                .any(|l| l["operation"] == "EXPIRE" && l["record_key"] == "sender")
                .then_some(logs)
        },
    )
    .await?;

    // Every step audited (who, what, why), announced, and applied by every process.
    for secret in ["redis_password", "database_password", "webhook_token"] {
        let steps: Vec<&Value> = audit_expiry
            .iter()
            .filter(|l| l["table_name"] == "secrets" && l["record_key"] == secret)
            .collect();
        assert_eq!(steps.len(), 3, "{secret}: {steps:?}");
        for l in &steps {
            assert_eq!(l["operation"], "ROTATE");
            assert_eq!(l["changed_by"], "bootstrap");
            assert!(
                l["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("rotate {secret}"))
            );
        }
        assert!(
            announcements
                .lock()
                .await
                .iter()
                .any(|a| a.contains(secret) && a.contains("\"generation\":3"))
        );
    }
    let (_, secrets) = control.call("GET", "/api/v2/secrets", None).await?;
    for s in secrets["secrets"].as_array().unwrap() {
        if s["name"] == "webhook_token" {
            continue; // Checked after the lost-store case below.
        }
        if s["name"] == "snmp_communities" {
            // No SNMP listener here: the intake tests rotate the communities.
            assert_eq!(s["configured"], false, "{s}");
            continue;
        }
        assert_eq!(s["generation"], 3, "{s}");
        assert_eq!(s["phase"], "stable");
        for p in s["processes"].as_array().unwrap() {
            assert_eq!(p["generation"], 3, "{s}");
        }
    }
    // A lost secret store: the next rotation continues above every generation in use, so
    // that every process adopts it.
    let wt3 = v("wt3");
    let () = redis::cmd("DEL")
        .arg(format!("{}:secrets", env.prefix))
        .query_async(&mut admin)
        .await?;
    let staged = control.step("webhook_token", "stage", Some(&wt3)).await?;
    assert_eq!(staged["generation"], 4, "{staged}");
    control.converged("webhook_token", 3).await?;
    control.step("webhook_token", "rollback", None).await?;
    control.converged("webhook_token", 3).await?;

    // Bad requests are refused without echoing the value.
    let (status, v) = control
        .call(
            "POST",
            "/api/v2/secrets/webhook_token/rotate",
            Some(json!({"step": "stage", "value": wt2, "reason": "again"})),
        )
        .await?;
    assert_eq!(status, 400, "{v}");
    let (status, v) = control
        .call(
            "POST",
            "/api/v2/secrets/webhook_token/rotate",
            Some(json!({"step": "promote", "value": wt1, "reason": "x"})),
        )
        .await?;
    assert_eq!(status, 400, "{v}");

    // No leaks: streams and every other key, announcements, logs, audit rows, metrics,
    // API responses.
    let mut haystacks: Vec<(String, String)> = Vec::new();
    haystacks.push(("redis".into(), redis_dump(&mut admin, &env.prefix).await?));
    haystacks.push((
        "announcements".into(),
        announcements.lock().await.join("\n"),
    ));
    for p in std::iter::once(&all).chain(procs.iter()) {
        haystacks.push((format!("log of {}", p.consumer), p.log_text()));
        let m = reqwest::get(format!("{}/metrics", p.ops_url))
            .await?
            .text()
            .await?;
        haystacks.push((format!("metrics of {}", p.consumer), m));
    }
    let mut db = sqlx::PgConnection::connect(&pg.url_for("mutt", &dp2, "mutt")).await?;
    for table in ["config_audit_log", "event_audit_log"] {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                .fetch_all(&mut db)
                .await?;
        haystacks.push((table.into(), rows.join("\n")));
    }
    let responses = transcript.lock().await.bodies.join("\n");
    haystacks.push(("API responses".into(), responses.clone()));
    for (name, text) in &haystacks {
        for secret in [&rp1, &rp2, &dp1, &dp2, &wt1, &wt2, &wt3] {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into {name}"
            );
        }
        // API keys appear once each, in the answer that issued them, and nowhere else.
        for k in [&k1, &k2] {
            let n = text.matches(k.as_str()).count();
            assert!(
                n == 0 || (name == "API responses" && n == 1),
                "an API key leaked into {name} ({n} times)"
            );
        }
    }
    // No process met an authentication error at any point: neither Redis (WRONGPASS,
    // NOAUTH) nor PostgreSQL (password authentication failed).
    for (name, text) in haystacks.iter().filter(|(n, _)| n.starts_with("log of")) {
        let lower = text.to_lowercase();
        for needle in ["wrongpass", "noauth", "authentication failed"] {
            assert!(
                !lower.contains(needle),
                "{name} shows an authentication error ({needle})"
            );
        }
    }
    assert!(
        haystacks.iter().map(|(_, t)| t.len()).sum::<usize>() > 1_000_000,
        "the scan saw the run"
    );

    listener.abort();
    drop((all, procs));
    stop.cancel();
    env.cleanup().await
}

use sqlx::Connection;
