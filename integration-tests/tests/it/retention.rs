//! Data retention against a real PostgreSQL and Redis: whole months archived by
//! partition with their counts, partitions ahead, the DEFAULT partition emptied, old config
//! audit and parked dead letters removed, exports checked with `sha256sum -c`, a dry run
//! that changes nothing, two runs at once harmless, unacknowledged entries untouched.

use std::process::Command;
use std::time::Duration;

use mutt_integration_tests::*;
use time::OffsetDateTime;

const DAY_MS: i64 = 86_400_000;

/// What [`seed`] wrote.
pub(crate) struct Seeded {
    /// Event-audit rows, 15 months' worth, one every six hours back from now.
    pub audit_rows: i64,
}

/// 15 months of event audit (most of it in the DEFAULT partition, as after months without
/// `mutt migrate`), config audit rows 10, 380 and 420 days old, and forwarder dead letters:
/// parked 40, 20 and 5 days ago, and one in the DLQ, never replayed, 40 days old.
pub(crate) async fn seed(env: &TestEnv) -> anyhow::Result<Seeded> {
    let mut db = env.db().await?;
    let audit_rows: i64 = sqlx::query_scalar(
        "WITH ins AS (
           INSERT INTO event_audit_log (event_timestamp, hostname, handling_decision, event_id)
           SELECT now() - make_interval(hours => g), 'host-' || (g % 7), 'Page', 'seed-' || g
           FROM generate_series(0, 15 * 30 * 24, 6) g
           RETURNING 1)
         SELECT count(*) FROM ins",
    )
    .fetch_one(&mut db)
    .await?;
    for days in [10, 380, 420] {
        sqlx::query(
            "INSERT INTO config_audit_log (changed_at, changed_by, operation, table_name, record_key)
             VALUES (now() - make_interval(days => $1), 'seed', 'CREATE', 'alert_rules', $2)",
        )
        .bind(days)
        .bind(format!("{days}d"))
        .execute(&mut db)
        .await?;
    }
    let mut r = env.redis().await?;
    let now = mutt_core::now_ms();
    // Parked letters carry the time they were parked in their ids; oldest first, as a
    // stream's ids only grow.
    for (stream, age_days, name) in [
        ("dlq:forwarder", 40, "fresh-40d"),
        ("dlq:forwarder:parked", 40, "parked-40d"),
        ("dlq:forwarder:parked", 20, "parked-20d"),
        ("dlq:forwarder:parked", 5, "parked-5d"),
    ] {
        let _: String = redis::cmd("XADD")
            .arg(format!("{}:{stream}", env.prefix))
            .arg(format!("{}-0", now - age_days * DAY_MS))
            .arg("payload")
            .arg(name)
            .arg("source_stream")
            .arg(format!("{}:alerts", env.prefix))
            .arg("replays")
            .arg(if name.starts_with("parked") { 3 } else { 0 })
            .query_async(&mut r)
            .await?;
    }
    Ok(Seeded { audit_rows })
}

/// The payloads of the forwarder DLQ (`dlq:forwarder`) or its parked letters
/// (`dlq:forwarder:parked`), oldest first.
pub(crate) async fn letters(env: &TestEnv, stream: &str) -> anyhow::Result<Vec<String>> {
    Ok(read_stream(env, stream)
        .await?
        .iter()
        .map(|(_, fields)| {
            fields
                .get("payload")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        })
        .collect())
}

/// The config audit rows seeded with an age, by their key.
pub(crate) async fn seeded_config_audit(env: &TestEnv) -> anyhow::Result<Vec<String>> {
    let mut db = env.db().await?;
    Ok(sqlx::query_scalar(
        "SELECT record_key FROM config_audit_log WHERE changed_by = 'seed' ORDER BY changed_at",
    )
    .fetch_all(&mut db)
    .await?)
}

/// (name, upper bound) of the monthly partitions of `table`.
pub(crate) async fn partitions(
    env: &TestEnv,
    table: &str,
) -> anyhow::Result<Vec<(String, OffsetDateTime)>> {
    let mut db = env.db().await?;
    Ok(
        sqlx::query_as("SELECT name, hi FROM mutt_partitions($1::regclass)")
            .bind(table)
            .fetch_all(&mut db)
            .await?,
    )
}

/// Rows of event_audit_log and of its archive.
pub(crate) async fn audit_counts(env: &TestEnv) -> anyhow::Result<(i64, i64, i64)> {
    Ok((
        env.count("SELECT count(*) FROM event_audit_log").await?,
        env.count("SELECT count(*) FROM event_audit_log_archive")
            .await?,
        env.count("SELECT count(*) FROM event_audit_log_default")
            .await?,
    ))
}

fn retention(env: &TestEnv, args: &[&str]) -> anyhow::Result<Command> {
    let mut cmd = Command::new(mutt_binary()?);
    cmd.arg("retention")
        .args(args)
        .env_clear()
        .env("MUTT_DATABASE_URL", &env.database_url)
        .env("MUTT_REDIS_URL", &env.redis_url)
        .env("MUTT_PREFIX", &env.prefix)
        .env("MUTT_LOG_FORMAT", "json");
    Ok(cmd)
}

fn run(mut cmd: Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "mutt retention failed: {text}");
    Ok(text)
}

/// The first day of the month `months` after the current one, UTC.
fn month_start(months: i32) -> time::Date {
    let today = OffsetDateTime::now_utc().date();
    let idx = today.year() * 12 + i32::from(u8::from(today.month())) - 1 + months;
    time::Date::from_calendar_date(
        idx.div_euclid(12),
        time::Month::try_from(u8::try_from(idx.rem_euclid(12) + 1).unwrap()).unwrap(),
        1,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_run_archives_whole_months_and_keeps_the_policy_window() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    env.migrate().await?;
    let seeded = seed(&env).await?;
    let before = audit_counts(&env).await?;
    assert_eq!(before.0, seeded.audit_rows);
    assert!(
        before.2 > 0,
        "most seeded rows are in the DEFAULT partition"
    );
    let parts_before = partitions(&env, "event_audit_log").await?;

    // A dry run reports and changes nothing.
    let report = run(retention(&env, &["--dry-run"])?)?;
    assert!(report.contains("\"dry_run\": true"), "{report}");
    assert!(report.contains("event_audit_log_"), "{report}");
    assert_eq!(audit_counts(&env).await?, before);
    assert_eq!(partitions(&env, "event_audit_log").await?, parts_before);
    assert_eq!(letters(&env, "dlq:forwarder:parked").await?.len(), 3);
    assert_eq!(seeded_config_audit(&env).await?.len(), 3);
    assert_eq!(env.count("SELECT count(*) FROM retention_runs").await?, 0);

    // Two runs at once (a CronJob overlapping a control replica's schedule): whichever
    // takes the lock runs, the other skips or finds nothing left; neither corrupts.
    let export = env.dir.join("export");
    let export_arg = export.display().to_string();
    let a = retention(&env, &["--export", &export_arg])?.spawn()?;
    let b = retention(&env, &["--export", &export_arg])?.spawn()?;
    for child in [a, b] {
        let out = child.wait_with_output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // Nothing lost: every seeded row is in the log or the archive, none in DEFAULT.
    let (live, archived, default) = audit_counts(&env).await?;
    assert_eq!(live + archived, seeded.audit_rows);
    assert_eq!(default, 0);
    assert!(archived > 0 && live > 0);
    // Exactly the policy window stays, a whole month at a time: every month still in the
    // log ends after the cutoff, every archived one at or before it.
    let cutoff = OffsetDateTime::now_utc() - Duration::from_secs(90 * 86_400);
    let live_parts = partitions(&env, "event_audit_log").await?;
    let archive_parts = partitions(&env, "event_audit_log_archive").await?;
    assert!(
        live_parts.iter().all(|(_, hi)| *hi > cutoff),
        "{live_parts:?}"
    );
    assert!(
        archive_parts.iter().all(|(_, hi)| *hi <= cutoff),
        "{archive_parts:?}"
    );
    assert!(archive_parts.len() >= 11, "{archive_parts:?}");
    let oldest_live: OffsetDateTime =
        sqlx::query_scalar("SELECT min(event_timestamp) FROM event_audit_log")
            .fetch_one(&mut env.db().await?)
            .await?;
    assert!(oldest_live > cutoff - Duration::from_secs(31 * 86_400));
    // The current month and the three after it exist.
    for m in 0..=3 {
        let d = month_start(m);
        let name = format!("event_audit_log_{:04}_{:02}", d.year(), u8::from(d.month()));
        assert!(
            live_parts.iter().any(|(n, _)| *n == name),
            "{name} missing: {live_parts:?}"
        );
    }
    // Config audit past 365 days is gone; the run audited itself.
    assert_eq!(seeded_config_audit(&env).await?, ["10d"]);
    assert!(
        env.count("SELECT count(*) FROM config_audit_log WHERE changed_by = 'retention' AND operation = 'RETAIN'")
            .await?
            >= 1
    );
    // Only the letter parked more than 30 days ago is gone; the DLQ is untouched.
    assert_eq!(
        letters(&env, "dlq:forwarder:parked").await?,
        ["parked-20d", "parked-5d"]
    );
    assert_eq!(letters(&env, "dlq:forwarder").await?, ["fresh-40d"]);
    assert!(env.count("SELECT count(*) FROM retention_runs").await? >= 1);

    // Every archived month was exported, and the manifest checks.
    for (name, _) in &archive_parts {
        assert!(
            export.join(format!("{name}.csv.gz")).exists(),
            "{name} not exported"
        );
    }
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&export)
        .output()?;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let dlq_exports = std::fs::read_dir(&export)?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("dlq_forwarder_")
        })
        .count();
    assert_eq!(dlq_exports, 1);

    // A second pass finds nothing more to do.
    run(retention(&env, &[])?)?;
    assert_eq!(audit_counts(&env).await?, (live, archived, 0));
    env.cleanup().await
}

/// Retention removes parked dead letters only: over a Redis that persists with AOF and is
/// restarted, every unacknowledged entry of the data streams and every letter still to be
/// replayed is there after a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_over_an_aof_redis_keeps_every_unacknowledged_entry() -> anyhow::Result<()> {
    let mut redis = RedisServer::start(true).await?;
    let mut env = TestEnv::new().await?;
    env.redis_url = redis.url();
    env.migrate().await?;
    seed(&env).await?;
    let mut r = env.redis().await?;
    let events = format!("{}:events", env.prefix);
    for i in 0..50 {
        let _: String = redis::cmd("XADD")
            .arg(&events)
            .arg("*")
            .arg("payload")
            .arg(i)
            .query_async(&mut r)
            .await?;
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&events)
        .arg("alerter")
        .arg("0")
        .query_async(&mut r)
        .await?;
    // Half delivered and never acknowledged, half not yet delivered.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("alerter")
        .arg("crashed")
        .arg("COUNT")
        .arg(25)
        .arg("STREAMS")
        .arg(&events)
        .arg(">")
        .query_async(&mut r)
        .await?;
    drop(r);

    run(retention(&env, &[])?)?;
    redis.restart().await?;
    assert_eq!(read_stream(&env, "events").await?.len(), 50);
    assert_eq!(env.pending("events", "alerter").await?, 25);
    assert_eq!(letters(&env, "dlq:forwarder").await?, ["fresh-40d"]);
    assert_eq!(
        letters(&env, "dlq:forwarder:parked").await?,
        ["parked-20d", "parked-5d"]
    );
    env.cleanup().await
}

/// `GET /api/v2/retention` shows the policy, the runs (a CronJob's included) and the
/// partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_status_shows_runs_and_partitions() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    env.migrate().await?;
    seed(&env).await?;
    run(retention(&env, &[])?)?;
    let control = Mutt::start(&env, &MuttConfig::new("control")).await?;
    let api = Api::new(&control.control_url, &MuttConfig::new("control").api_key);
    let status = api.get("/api/v2/retention").await?;
    assert_eq!(
        status["enabled"], false,
        "the harness turns the schedule off: {status}"
    );
    assert_eq!(status["next_run_at"], serde_json::Value::Null);
    assert_eq!(status["policy"]["event_audit_days"], 90);
    let runs = status["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{status}");
    assert!(
        runs[0]["run_by"]
            .as_str()
            .unwrap()
            .starts_with("mutt retention")
    );
    assert!(!runs[0]["report"]["archived"].as_array().unwrap().is_empty());
    assert!(status["last_run_at"].is_string());
    // The run's audit row is found by its operation (the filter once refused RETAIN).
    let audit = api.get("/api/v2/audit?operation=RETAIN").await?;
    assert_eq!(audit["logs"].as_array().map(Vec::len), Some(1), "{audit}");
    assert_eq!(audit["logs"][0]["changed_by"], "retention");
    let archive = status["partitions"]["event_audit_log_archive"]
        .as_array()
        .unwrap();
    assert!(archive.len() >= 11, "{status}");
    assert!(
        status["partitions"]["event_audit_log"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"].as_str().unwrap().starts_with("event_audit_log_"))
    );
    drop(control);
    env.cleanup().await
}
