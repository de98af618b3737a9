//! Audit rows are immutable against the application's own database role.

use std::time::Duration;

use mutt_integration_tests::*;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

/// A login role of the local server for this test, member of `group`, dropped at the end.
struct LoginRole {
    name: String,
}

impl LoginRole {
    async fn create(env: &TestEnv, group: &str) -> anyhow::Result<Self> {
        let name = format!(
            "{}_{}",
            group,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        env.admin_exec(&format!("CREATE ROLE \"{name}\" LOGIN IN ROLE {group}"))
            .await?;
        Ok(Self { name })
    }

    /// The test database's URL as this role (the local server trusts loopback).
    fn url(&self, env: &TestEnv) -> String {
        format!("postgres://{}@127.0.0.1:5432/{}", self.name, env.db_name())
    }

    async fn drop_role(self, env: &TestEnv) -> anyhow::Result<()> {
        env.terminate_backends().await?;
        env.admin_exec(&format!("DROP ROLE IF EXISTS \"{}\"", self.name))
            .await
    }
}

/// The error of a statement that must fail.
async fn refused(c: &mut PgConnection, sql: &str) -> String {
    match sqlx::raw_sql(sql).execute(&mut *c).await {
        Ok(_) => panic!("{sql} was allowed"),
        Err(e) => e.to_string(),
    }
}

/// MUTT running as a member of `mutt_app` does all its work (events audited, a rule
/// created through the control API with its audit row), yet that role cannot remove or
/// change one audit row: not with the `SET LOCAL mutt.retention = 'on'` that any session
/// could use before, not by disabling the trigger, not by truncating or dropping the
/// table. Only `mutt_retention` deletes, and only rows past the minimum retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_role_cannot_touch_audit_rows() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    env.insert_rules(&[forward_everything()]).await?;
    let app = LoginRole::create(&env, "mutt_app").await?;
    let retention = LoginRole::create(&env, "mutt_retention").await?;

    // Every role of MUTT, as the application role.
    let as_app = |role: &str| {
        MuttConfig::new(role)
            .webhook(sink.url())
            .set("MUTT_DATABASE_URL", &app.url(&env))
    };
    let procs = vec![
        Mutt::start(&env, &as_app("ingest")).await?,
        Mutt::start(&env, &as_app("alerter")).await?,
        Mutt::start(&env, &as_app("forwarder")).await?,
        Mutt::start(&env, &as_app("control")).await?,
    ];
    let accepted = send_all(
        vec![procs[0].ingest_url.clone()],
        20,
        20,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    wait_until("20 delivered", Duration::from_secs(30), || async {
        delivered_seqs(&sink).is_superset(&accepted).then_some(())
    })
    .await?;
    let api = Api::new(&procs[3].control_url, "test-key");
    let (status, body, _) = api
        .call(
            "POST",
            "/api/v2/rules",
            Some(
                json!({"match_string": "LINK-DOWN", "match_type": "contains", "priority": 5,
                "prod_handling": "Page_and_ticket", "dev_handling": "Ignore",
                "team_assignment": "NOC", "reason": "as the app role"}),
            ),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(env.count("SELECT count(*) FROM event_audit_log").await?, 20);
    assert!(env.count("SELECT count(*) FROM config_audit_log").await? >= 1);
    drop(procs);

    let mut c = PgConnection::connect(&app.url(&env)).await?;
    for sql in [
        "BEGIN; SET LOCAL mutt.retention = 'on'; DELETE FROM config_audit_log; COMMIT",
        "UPDATE config_audit_log SET reason = 'rewritten'",
        "TRUNCATE config_audit_log",
        "ALTER TABLE config_audit_log DISABLE TRIGGER ALL",
        "DROP TABLE config_audit_log",
        "DELETE FROM event_audit_log",
        "UPDATE event_audit_log SET hostname = 'x'",
        "ALTER TABLE event_audit_log DETACH PARTITION event_audit_log_default",
    ] {
        let e = refused(&mut c, sql).await;
        assert!(
            e.contains("permission denied")
                || e.contains("must be owner")
                || e.contains("append-only"),
            "{sql}: {e}"
        );
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut c).await;
    }
    assert!(env.count("SELECT count(*) FROM config_audit_log").await? >= 1);
    assert_eq!(env.count("SELECT count(*) FROM event_audit_log").await?, 20);

    // The retention role: recent rows stay, rows past a year go.
    env.exec("INSERT INTO config_audit_log (changed_at, changed_by, operation, table_name, record_key) VALUES (now() - interval '400 days', 'old', 'UPDATE', 'config', 'x')")
        .await?;
    let mut r = PgConnection::connect(&retention.url(&env)).await?;
    let e = refused(
        &mut r,
        "DELETE FROM config_audit_log WHERE changed_by <> 'old'",
    )
    .await;
    assert!(e.contains("at least 365 days"), "{e}");
    let done = sqlx::query("DELETE FROM config_audit_log WHERE changed_by = 'old'")
        .execute(&mut r)
        .await?;
    assert_eq!(done.rows_affected(), 1);
    drop((c, r));
    app.drop_role(&env).await?;
    retention.drop_role(&env).await?;
    stop.cancel();
    env.cleanup().await
}
