//! [`TestEnv`]: one test's world, a fresh key prefix and a fresh database (created on the
//! local PostgreSQL, dropped by [`TestEnv::cleanup`]) and a directory for process logs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use mutt_devkit::local::{postgres_server_url, redis_url, with_database};
use sqlx::{Connection, PgConnection};

/// One test's world: a key prefix, a database, a directory for logs.
#[derive(Debug)]
pub struct TestEnv {
    /// Redis URL.
    pub redis_url: String,
    /// The key prefix (`it-<uuid>`).
    pub prefix: String,
    /// The test database's URL.
    pub database_url: String,
    db_name: String,
    /// Where process logs go.
    pub dir: PathBuf,
}

impl TestEnv {
    /// A fresh prefix and database (created empty; `mutt all` or [`TestEnv::migrate`]
    /// creates the schema).
    pub async fn new() -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let db_name = format!("mutt_it_{}", &id[..16]);
        let mut admin = PgConnection::connect(&postgres_server_url())
            .await
            .context("connecting to the local PostgreSQL (set DATABASE_URL to a superuser URL)")?;
        sqlx::query(&format!("CREATE DATABASE \"{db_name}\""))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let dir = std::env::temp_dir().join(format!("mutt-it-{}", &id[..16]));
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            redis_url: redis_url(),
            prefix: format!("it-{}", &id[..16]),
            database_url: with_database(&postgres_server_url(), &db_name),
            db_name,
            dir,
        })
    }

    /// Applies the migrations with `mutt migrate`.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let out = Command::new(mutt_binary()?)
            .arg("migrate")
            .env("MUTT_DATABASE_URL", &self.database_url)
            .output()?;
        if !out.status.success() {
            bail!(
                "mutt migrate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The test database's name.
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// A superuser connection to the server's `postgres` database (for statements about the
    /// test database itself: `ALTER DATABASE`, terminating its backends).
    pub async fn admin(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect(&postgres_server_url()).await?)
    }

    /// Runs one statement on the admin connection, with `{db}` replaced by the quoted name
    /// of the test database.
    pub async fn admin_exec(&self, sql: &str) -> anyhow::Result<()> {
        let mut admin = self.admin().await?;
        let sql = sql.replace("{db}", &format!("\"{}\"", self.db_name));
        sqlx::raw_sql(&sql).execute(&mut admin).await?;
        Ok(())
    }

    /// Ends every other session on the test database (MUTT's pools reconnect).
    pub async fn terminate_backends(&self) -> anyhow::Result<()> {
        let mut admin = self.admin().await?;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.db_name)
        .execute(&mut admin)
        .await?;
        Ok(())
    }

    /// A connection to the test database.
    pub async fn db(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect(&self.database_url).await?)
    }

    /// A Redis connection.
    pub async fn redis(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(redis::Client::open(self.redis_url.as_str())?
            .get_multiplexed_async_connection()
            .await?)
    }

    /// Inserts rules (their ids are assigned by the database, in order: 1, 2, …), through
    /// the store's audited write, as a "test fixture" actor.
    pub async fn insert_rules(&self, rules: &[mutt_core::rules::Rule]) -> anyhow::Result<Vec<i32>> {
        let store = mutt_store::Store::connect(&self.database_url, 1).await?;
        let actor = mutt_store::Actor {
            who: "test fixture".into(),
            reason: None,
            correlation_id: String::new(),
        };
        let mut ids = Vec::new();
        for r in rules {
            ids.push(store.create_rule(r, &actor).await?.rule.id);
        }
        store.close().await;
        Ok(ids)
    }

    /// The first column of the first row of a query returning a bigint (`count(*)`).
    pub async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        let mut db = self.db().await?;
        Ok(sqlx::query_scalar(sql).fetch_one(&mut db).await?)
    }

    /// Pending entries of `group` on `{p}:<stream>`.
    pub async fn pending(&self, stream: &str, group: &str) -> anyhow::Result<i64> {
        let mut r = self.redis().await?;
        let v: redis::Value = redis::cmd("XPENDING")
            .arg(format!("{}:{stream}", self.prefix))
            .arg(group)
            .query_async(&mut r)
            .await?;
        match v {
            redis::Value::Array(a) => match a.first() {
                Some(redis::Value::Int(n)) => Ok(*n),
                other => bail!("unexpected XPENDING reply {other:?}"),
            },
            other => bail!("unexpected XPENDING reply {other:?}"),
        }
    }

    /// (lag, pending) of `group` on `{p}:<stream>` (see [`group_state`]).
    pub async fn group_state(&self, stream: &str, group: &str) -> anyhow::Result<(u64, u64)> {
        group_state(&self.redis_url, &format!("{}:{stream}", self.prefix), group).await
    }

    /// Runs SQL statements (fixtures).
    pub async fn exec(&self, sql: &'static str) -> anyhow::Result<()> {
        let mut db = self.db().await?;
        sqlx::raw_sql(sql).execute(&mut db).await?;
        Ok(())
    }

    /// Drops the database and the prefix's keys.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        if let Ok(mut r) = self.redis().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query_async(&mut r)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> =
                    redis::cmd("DEL").arg(&keys).query_async(&mut r).await;
            }
        }
        let mut admin = PgConnection::connect(&postgres_server_url()).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.db_name
        ))
        .execute(&mut admin)
        .await?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// The `mutt` binary next to the test executable (`target/<profile>/mutt`).
pub fn mutt_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    let bin = dir.join("mutt");
    if !bin.exists() {
        bail!(
            "{} is missing: build it first with `cargo build --bins`",
            bin.display()
        );
    }
    Ok(bin)
}

/// The `muttdev` binary next to the test executable (`target/<profile>/muttdev`).
pub fn muttdev_binary() -> anyhow::Result<PathBuf> {
    let bin = mutt_binary()?.with_file_name("muttdev");
    if !bin.exists() {
        bail!(
            "{} is missing: build it first with `cargo build --bins`",
            bin.display()
        );
    }
    Ok(bin)
}

/// (lag, pending) of `group` on the stream `key`, from `XINFO GROUPS` (zeros when the
/// stream or the group does not exist yet).
pub async fn group_state(redis_url: &str, key: &str, group: &str) -> anyhow::Result<(u64, u64)> {
    let mut r = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let v: redis::RedisResult<Vec<std::collections::HashMap<String, redis::Value>>> =
        redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query_async(&mut r)
            .await;
    let Ok(groups) = v else { return Ok((0, 0)) };
    let int = |v: Option<&redis::Value>| match v {
        Some(redis::Value::Int(n)) => (*n).max(0) as u64,
        _ => 0,
    };
    Ok(groups
        .iter()
        .find(
            |g| matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes()),
        )
        .map_or((0, 0), |g| (int(g.get("lag")), int(g.get("pending")))))
}
