//! The store against a real PostgreSQL (`DATABASE_URL`, default the local server), each
//! test in a database of its own.

use mutt_core::rules::{MatchType, Rule};
use mutt_store::{AuditRow, Outcome, Store};
use sqlx::{Connection, PgConnection};
use time::macros::datetime;

fn server() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn db_url(name: &str) -> String {
    let base = server();
    let root = &base[..base.rfind('/').unwrap_or(base.len())];
    format!("{root}/{name}")
}

async fn fresh() -> anyhow::Result<(Store, String)> {
    let name = format!(
        "mutt_store_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let url = db_url(&name);
    assert!(Store::create_database_if_missing(&url).await?);
    assert!(!Store::create_database_if_missing(&url).await?);
    let store = Store::connect(&url, 2).await?;
    store.migrate().await?;
    store.migrate().await?; // idempotent
    Ok((store, name))
}

async fn drop_db(store: Store, name: String) -> anyhow::Result<()> {
    store.close().await;
    let mut admin = PgConnection::connect(&server()).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(())
}

async fn partition_of(name: &str, event_id: &str) -> anyhow::Result<String> {
    let mut c = PgConnection::connect(&db_url(name)).await?;
    Ok(sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM event_audit_log WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_one(&mut c)
    .await?)
}

fn row(id: &str, ts: time::OffsetDateTime) -> AuditRow {
    AuditRow {
        event_id: id.into(),
        event_timestamp: ts,
        hostname: "h".into(),
        matched_rule_id: Some(1),
        handling_decision: "Page_only".into(),
        forwarded: true,
        raw_message: "{}".into(),
        correlation_id: "c".into(),
        team_assignment: "T".into(),
    }
}

#[tokio::test]
async fn audit_is_idempotent_and_old_rows_find_their_partition() -> anyhow::Result<()> {
    let (store, name) = fresh().await?;
    let now = time::OffsetDateTime::now_utc();
    let old = datetime!(2019-03-04 05:06:07 UTC);
    assert_eq!(
        store
            .insert_event_audit(&[row("a", now), row("b", old)])
            .await?,
        2
    );
    // Redelivered: nothing new, in a batch or alone.
    assert_eq!(
        store
            .insert_event_audit(&[row("a", now), row("b", old), row("c", now)])
            .await?,
        1
    );
    assert_eq!(
        store
            .insert_event_audit(&[row("c", now), row("c", now)])
            .await?,
        0
    );
    assert_eq!(partition_of(&name, "b").await?, "event_audit_log_default");
    assert_eq!(
        store.ensure_partition_for(old).await?,
        "event_audit_log_2019_03"
    );
    assert_eq!(partition_of(&name, "b").await?, "event_audit_log_2019_03");
    assert_eq!(
        partition_of(&name, "a").await?,
        format!(
            "event_audit_log_{}",
            now.format(time::macros::format_description!("[year]_[month]"))?
        )
    );
    assert_eq!(
        store.insert_event_audit(&[row("b", old)]).await?,
        0,
        "the unique index spans the moved row"
    );
    drop_db(store, name).await
}

#[tokio::test]
async fn rules_load_in_priority_order_and_invalid_rules_are_refused() -> anyhow::Result<()> {
    let (store, name) = fresh().await?;
    let rule = |s: &str, prio: i32| Rule {
        id: 0,
        match_string: Some(s.into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: prio,
        prod_handling: "Page_only".into(),
        dev_handling: "Ignore".into(),
        team_assignment: "T".into(),
        is_active: true,
    };
    let actor = mutt_store::Actor {
        who: "test".into(),
        reason: None,
        correlation_id: String::new(),
    };
    let a = store.create_rule(&rule("a", 20), &actor).await?.rule.id;
    let b = store.create_rule(&rule("b", 10), &actor).await?.rule.id;
    let mut bad = rule("(", 1);
    bad.match_type = MatchType::Regex;
    assert!(store.create_rule(&bad, &actor).await.is_err());
    assert_eq!(store.create_dev_host("Lab", &actor).await?, Outcome::Done);
    assert_eq!(
        store.create_dev_host("lab", &actor).await?,
        Outcome::Conflict
    );
    assert_eq!(
        store.put_team("r1", "A", true, &actor).await?,
        Outcome::Done
    );
    assert_eq!(
        store.put_team("R1", "B", false, &actor).await?,
        Outcome::Done
    );
    let set = store.load_rule_set().await?;
    assert_eq!(
        (set.len(), set.dev_host_count(), set.team_count()),
        (2, 1, 1)
    );
    assert_eq!(set.device_team("R1"), Some("B"));
    assert!(b > a);
    drop_db(store, name).await
}

#[tokio::test]
async fn the_config_audit_log_is_append_only() -> anyhow::Result<()> {
    let (store, name) = fresh().await?;
    let mut c = PgConnection::connect(&db_url(&name)).await?;
    sqlx::query("INSERT INTO config_audit_log (changed_by, operation, table_name, record_id) VALUES ('t', 'CREATE', 'alert_rules', 1)")
        .execute(&mut c)
        .await?;
    for sql in [
        "UPDATE config_audit_log SET reason = 'x'",
        "DELETE FROM config_audit_log",
        "TRUNCATE config_audit_log",
    ] {
        let e = sqlx::query(sql).execute(&mut c).await.expect_err(sql);
        let e = e.to_string();
        assert!(
            e.contains("append-only") || e.contains("at least 365 days"),
            "{sql}: {e}"
        );
    }
    // Not even a member of mutt_retention (this superuser is one) deletes a row younger
    // than the minimum retention; an old one it may delete.
    sqlx::query("INSERT INTO config_audit_log (changed_at, changed_by, operation, table_name, record_id) VALUES (now() - interval '400 days', 't', 'CREATE', 'alert_rules', 2)")
        .execute(&mut c)
        .await?;
    let e = sqlx::query("DELETE FROM config_audit_log WHERE record_id = 1")
        .execute(&mut c)
        .await
        .expect_err("too young");
    assert!(e.to_string().contains("at least 365 days"), "{e}");
    assert_eq!(
        sqlx::query("DELETE FROM config_audit_log WHERE record_id = 2")
            .execute(&mut c)
            .await?
            .rows_affected(),
        1
    );
    drop(c);
    drop_db(store, name).await
}

/// Every change of the API keys moves the key set's version forward, and the live keys
/// come with the version they were read at.
#[tokio::test]
async fn api_key_changes_move_the_key_set_version() -> anyhow::Result<()> {
    let (store, name) = fresh().await?;
    let actor = mutt_store::Actor {
        who: "test".into(),
        reason: Some("test".into()),
        correlation_id: "c".into(),
    };
    let (v0, keys) = store.live_api_keys().await?;
    assert!(keys.is_empty());
    store
        .create_api_key("sender", &"a".repeat(64), &["ingest".into()], None, &actor)
        .await?;
    let (v1, keys) = store.live_api_keys().await?;
    assert!(v1 > v0);
    assert_eq!(keys.len(), 1);
    store.revoke_api_key("sender", &actor).await?;
    let (v2, keys) = store.live_api_keys().await?;
    assert!(v2 > v1, "a revocation is a new version");
    assert!(keys.is_empty());
    drop_db(store, name).await
}
