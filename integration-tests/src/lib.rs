//! The integration-test harness: real `mutt` processes, a real Redis, a real PostgreSQL,
//! and a webhook receiver inside the test.
//!
//! - [`TestEnv`]: a fresh key prefix and a fresh database per test, dropped at the end.
//! - [`Mutt`]: one `mutt` process with its own ports and log file; SIGTERM or kill -9.
//! - [`RedisServer`]: a private `redis-server` on a free port, for tests that restart or
//!   kill Redis itself.
//! - [`PostgresServer`]: a private PostgreSQL cluster on a free port with password
//!   authentication, for tests about roles and credentials.
//! - [`wait_until`]: bounded polling; every wait in the tests has a deadline.
//!
//! Services default to the local ones (`REDIS_URL`, `DATABASE_URL` override them).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

pub use mutt_devkit::samples;
pub use mutt_devkit::sink::{Behaviour, Sink};

/// The local Redis, unless `REDIS_URL` says otherwise.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The local PostgreSQL server (a superuser URL; the database part is replaced).
pub fn postgres_server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(server_url: &str, db: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
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

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// Polls `f` every 50 ms until it returns `Some`, or fails after `timeout` with `what`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

/// A running `mutt` process.
#[derive(Debug)]
pub struct Mutt {
    child: Child,
    /// Ingest base URL.
    pub ingest_url: String,
    /// Ops base URL.
    pub ops_url: String,
    /// Control base URL.
    pub control_url: String,
    /// The log file.
    pub log: PathBuf,
    /// The consumer name.
    pub consumer: String,
}

/// How to start a `mutt` process.
#[derive(Debug, Clone)]
pub struct MuttConfig {
    /// Subcommand (`all`, `ingest`, `alerter`, `forwarder`).
    pub role: String,
    /// Consumer name (stable across a restart when the test wants the same consumer).
    pub consumer: String,
    /// Webhook URL.
    pub webhook_url: Option<String>,
    /// API key.
    pub api_key: String,
    /// Redis URL (defaults to the env's).
    pub redis_url: Option<String>,
    /// More settings.
    pub extra: Vec<(String, String)>,
}

impl MuttConfig {
    /// `mutt <role>` with a random consumer name and the API key `test-key`.
    pub fn new(role: &str) -> Self {
        Self {
            role: role.into(),
            consumer: format!("{role}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            webhook_url: None,
            api_key: "test-key".into(),
            redis_url: None,
            extra: Vec::new(),
        }
    }

    /// With a webhook.
    pub fn webhook(mut self, url: String) -> Self {
        self.webhook_url = Some(url);
        self
    }

    /// With a setting.
    pub fn set(mut self, k: &str, v: &str) -> Self {
        self.extra.push((k.into(), v.into()));
        self
    }

    /// With a consumer name.
    pub fn consumer(mut self, c: &str) -> Self {
        self.consumer = c.into();
        self
    }
}

impl Mutt {
    /// Starts a process for `env` and waits until `/ready` answers 200.
    pub async fn start(env: &TestEnv, cfg: &MuttConfig) -> anyhow::Result<Self> {
        let m = Self::spawn(env, cfg)?;
        m.wait_ready(Duration::from_secs(30)).await?;
        Ok(m)
    }

    /// Starts a process without waiting.
    pub fn spawn(env: &TestEnv, cfg: &MuttConfig) -> anyhow::Result<Self> {
        // A listener the test chose itself (in `extra`) wins over a free port.
        let port = |var: &str| {
            cfg.extra
                .iter()
                .find(|(k, _)| k == var)
                .and_then(|(_, v)| v.rsplit(':').next()?.parse::<u16>().ok())
                .unwrap_or_else(free_port)
        };
        let ingest = port("MUTT_INGEST_LISTEN");
        let ops = port("MUTT_OPS_LISTEN");
        let control = port("MUTT_CONTROL_LISTEN");
        let log = env.dir.join(format!("{}-{}.log", cfg.consumer, ops));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(mutt_binary()?);
        cmd.arg(&cfg.role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "MUTT_REDIS_URL",
                cfg.redis_url.as_deref().unwrap_or(&env.redis_url),
            )
            .env("MUTT_DATABASE_URL", &env.database_url)
            .env("MUTT_PREFIX", &env.prefix)
            .env("MUTT_INGEST_LISTEN", format!("127.0.0.1:{ingest}"))
            .env("MUTT_OPS_LISTEN", format!("127.0.0.1:{ops}"))
            .env("MUTT_CONTROL_LISTEN", format!("127.0.0.1:{control}"))
            .env("MUTT_CONSUMER", &cfg.consumer)
            .env("MUTT_API_KEY", &cfg.api_key)
            .env("MUTT_READ_BLOCK", "200ms")
            .env("MUTT_SHUTDOWN_GRACE", "15s")
            .env("MUTT_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(w) = &cfg.webhook_url {
            cmd.env("MUTT_WEBHOOK_URL", w);
        }
        for (k, v) in &cfg.extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting mutt")?;
        Ok(Self {
            child,
            ingest_url: format!("http://127.0.0.1:{ingest}"),
            ops_url: format!("http://127.0.0.1:{ops}"),
            control_url: format!("http://127.0.0.1:{control}"),
            log,
            consumer: cfg.consumer.clone(),
        })
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}/ready", self.ops_url);
        wait_until(
            &format!(
                "{} to be ready (log: {})",
                self.consumer,
                self.log.display()
            ),
            timeout,
            || async {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                }
            },
        )
        .await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> anyhow::Result<()> {
        signal(self.pid(), "TERM")
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        signal(self.pid(), "KILL")?;
        let _ = self.child.wait();
        Ok(())
    }

    /// Waits for the process to exit, at most `timeout`; returns whether it exited 0.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let child = &mut self.child;
        wait_until("mutt to exit", timeout, || {
            let r = child.try_wait().ok().flatten();
            async move { r }
        })
        .await
        .map(|s| s.success())
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mutt {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if !st.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// A private `redis-server` on a free loopback port, optionally with AOF (fsync always)
/// so that a restart keeps everything acknowledged.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// Port.
    pub port: u16,
    dir: PathBuf,
    aof: bool,
}

/// A new directory for a private server's files: `$TMPDIR/mutt-<kind>-<port>-<random>`.
fn scratch_dir(kind: &str, port: u16) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "mutt-{kind}-{port}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl RedisServer {
    /// Starts a server.
    pub async fn start(aof: bool) -> anyhow::Result<Self> {
        let port = free_port();
        let dir = scratch_dir("redis", port)?;
        let mut s = Self {
            child: None,
            port,
            dir,
            aof,
        };
        s.launch().await?;
        Ok(s)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        self.child = Some(cmd.spawn().context("starting redis-server")?);
        let url = self.url();
        wait_until("private redis to answer", Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let c = redis::Client::open(url).ok()?;
                let mut conn = c.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
        })
        .await?;
        Ok(())
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch().await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private PostgreSQL cluster: `initdb` in a temporary directory and `postgres` on a
/// free loopback port, with password (SCRAM) authentication over TCP and trust on its
/// Unix socket. For tests about roles and credentials; stopped and removed on drop.
#[derive(Debug)]
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    password: String,
}

impl PostgresServer {
    /// Creates a cluster and starts it; the superuser `postgres` gets a random password
    /// (see [`PostgresServer::admin_url`]). Waits at most 30 s for it to accept
    /// connections.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = postgres_bindir()?;
        let port = free_port();
        let dir = scratch_dir("pg", port)?;
        // From here on, drop removes the directory (and stops the server once it runs).
        let mut s = Self {
            child: None,
            port,
            dir,
            password: uuid::Uuid::new_v4().simple().to_string(),
        };
        // initdb and postgres refuse to run as root: they run as the `postgres` user, who
        // owns the directory (the data directory, the socket and its lock file).
        let as_root = running_as_root();
        if as_root {
            let st = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&s.dir)
                .status()
                .context("running chown")?;
            if !st.success() {
                bail!("chown postgres:postgres {} failed", s.dir.display());
            }
        }
        let data = s.dir.join("data");
        let out = as_postgres(as_root, &bin.join("initdb"))?
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "--username=postgres", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .current_dir(&s.dir)
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Rewrites the file initdb made (it keeps its owner and mode).
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n",
        )?;
        let log = std::fs::File::create(s.log_path())?;
        let mut cmd = as_postgres(as_root, &bin.join("postgres"))?;
        cmd.arg("-D").arg(&data);
        for setting in [
            "fsync=off".to_string(),
            "listen_addresses=127.0.0.1".into(),
            format!("port={port}"),
            format!("unix_socket_directories={}", s.dir.display()),
            "shared_buffers=16MB".into(),
            "max_connections=100".into(),
            "password_encryption=scram-sha-256".into(),
            "logging_collector=off".into(),
        ] {
            cmd.arg("-c").arg(setting);
        }
        cmd.current_dir(&s.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        s.child = Some(cmd.spawn().context("starting postgres")?);
        s.wait_ready(Duration::from_secs(30)).await?;
        let mut admin = s.socket_connection().await?;
        let sql: String =
            sqlx::query_scalar("SELECT format('ALTER ROLE postgres PASSWORD %L', $1::text)")
                .bind(&s.password)
                .fetch_one(&mut admin)
                .await?;
        sqlx::raw_sql(&sql).execute(&mut admin).await?;
        admin.close().await?;
        Ok(s)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                bail!(
                    "postgres exited ({status}) before accepting connections; log:\n{}",
                    self.log_tail()
                );
            }
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), self.socket_connection()).await;
            if let Ok(Ok(c)) = attempt {
                let _ = c.close().await;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {timeout:?} waiting for the private postgres on port {}; log:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A superuser connection through the Unix socket (trust: no password).
    async fn socket_connection(&self) -> anyhow::Result<PgConnection> {
        let opts = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .socket(&self.dir)
            .port(self.port)
            .username("postgres")
            .database("postgres")
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        Ok(PgConnection::connect_with(&opts).await?)
    }

    /// Creates a LOGIN role with `password` and a database of the same name that it owns.
    pub async fn create_role(&self, name: &str, password: &str) -> anyhow::Result<()> {
        let mut admin = self.socket_connection().await?;
        // Quoted server-side: `%I` for identifiers, `%L` for the literal.
        let (role, db): (String, String) = sqlx::query_as(
            "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text),
                    format('CREATE DATABASE %I OWNER %I', $1::text, $1::text)",
        )
        .bind(name)
        .bind(password)
        .fetch_one(&mut admin)
        .await?;
        sqlx::raw_sql(&role)
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating role {name}"))?;
        sqlx::raw_sql(&db)
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin.close().await?;
        Ok(())
    }

    /// The superuser's URL over TCP (`postgres://postgres:<pw>@127.0.0.1:<port>/postgres`).
    pub fn admin_url(&self) -> String {
        self.url_for("postgres", &self.password, "postgres")
    }

    /// A URL over TCP for `user` with `password` to database `db` (percent-encoded).
    pub fn url_for(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            url_encode(user),
            url_encode(password),
            self.port,
            url_encode(db)
        )
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The last 50 lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(50)..].join("\n")
    }

    /// Fast shutdown (SIGINT: sessions are ended, unlike SIGTERM's smart shutdown, which
    /// waits for every client to leave), then SIGKILL after 5 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = signal(child.id(), "INT");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Tries one connection to `url`; the error's text when it fails (a refused password).
pub async fn can_connect(url: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await {
        Ok(Ok(c)) => {
            let _ = c.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out connecting to {url}")),
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`.
fn postgres_bindir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("no /usr/lib/postgresql/<version>/bin and no pg_config: install PostgreSQL")?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !bin.join("postgres").is_file() {
        bail!("no postgres binary in /usr/lib/postgresql/<version>/bin nor in pg_config --bindir");
    }
    Ok(bin)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` run as the `postgres` user when we are root. `setpriv` comes first because
/// it execs the program (the child's pid is postgres's own, for the signals of
/// [`Drop`]); `runuser` and `su` keep a parent process in between.
fn as_postgres(as_root: bool, program: &Path) -> anyhow::Result<Command> {
    if !as_root {
        return Ok(Command::new(program));
    }
    if let Some(setpriv) = which("setpriv") {
        let mut c = Command::new(setpriv);
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        return Ok(c);
    }
    if let Some(runuser) = which("runuser") {
        let mut c = Command::new(runuser);
        c.args(["-u", "postgres", "--"]).arg(program);
        return Ok(c);
    }
    if let Some(su) = which("su") {
        let mut c = Command::new(su);
        c.args(["postgres", "-s", "/bin/sh", "-c", "exec \"$0\" \"$@\""])
            .arg(program);
        return Ok(c);
    }
    bail!("running as root and none of setpriv, runuser, su is on PATH to become postgres")
}

/// Percent-encodes everything but unreserved characters (for a URL's user, password, path).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Posts a JSON body to ingest v2 with the test key.
pub async fn post_events(
    client: &reqwest::Client,
    ingest_url: &str,
    body: &Value,
) -> anyhow::Result<reqwest::Response> {
    Ok(client
        .post(format!("{ingest_url}/api/v2/ingest"))
        .header("x-api-key", "test-key")
        .json(body)
        .send()
        .await?)
}

/// Starts a webhook sink on a free port that keeps every payload.
pub async fn start_sink(stop: &tokio_util::sync::CancellationToken) -> anyhow::Result<Sink> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(Sink::start(l, true, stop.clone())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    /// A private PostgreSQL: passwords are checked over TCP, and drop stops it.
    #[tokio::test]
    async fn postgres_server() -> anyhow::Result<()> {
        let started = Instant::now();
        let pg = PostgresServer::start().await?;
        eprintln!("PostgresServer::start took {:?}", started.elapsed());
        let port = pg.port();
        can_connect(&pg.admin_url())
            .await
            .map_err(anyhow::Error::msg)?;
        pg.create_role("mutt_rot", "p1").await?;
        can_connect(&pg.url_for("mutt_rot", "p1", "mutt_rot"))
            .await
            .map_err(anyhow::Error::msg)?;
        let refused = can_connect(&pg.url_for("mutt_rot", "wrong", "mutt_rot"))
            .await
            .expect_err("a wrong password is refused");
        assert!(
            refused.contains("password authentication failed"),
            "{refused}"
        );
        // Quoting: a mixed-case name and a password with URL and SQL metacharacters.
        let odd = "p'@:/%? x";
        pg.create_role("Mutt-Odd", odd).await?;
        can_connect(&pg.url_for("Mutt-Odd", odd, "Mutt-Odd"))
            .await
            .map_err(anyhow::Error::msg)?;
        assert!(pg.log_tail().contains("ready to accept connections"));
        let stopping = Instant::now();
        drop(pg);
        eprintln!("PostgresServer drop took {:?}", stopping.elapsed());
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still accepts connections after drop"
        );
        Ok(())
    }
}

/// A TCP proxy on loopback that can be cut or muted. Cut: existing connections are closed
/// and new ones refused (accepted and dropped at once), a network outage between MUTT and
/// a server. Muted: requests still reach the server but its replies are dropped, so the
/// client cannot tell whether what it sent was applied; restoring then closes the muted
/// connections (their replies are gone, the client must reconnect).
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Where it listens.
    pub port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    muted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    /// Starts a proxy to `target` (`127.0.0.1:5432`).
    pub async fn start(target: &str) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let muted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = std::sync::Arc::new(gen_tx);
        let (d, m, g, target) = (
            down.clone(),
            muted.clone(),
            generation.clone(),
            target.to_string(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = g.subscribe();
                let (target, muted) = (target.clone(), m.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let up = tokio::io::copy(&mut from_client, &mut to_server);
                    let down = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = from_server.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<(), std::io::Error>(());
                            }
                            if !muted.load(Ordering::SeqCst) {
                                to_client.write_all(&buf[..n]).await?;
                            }
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            port,
            down,
            muted,
            generation,
        })
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Drops every reply from the server from now on; requests still reach it.
    pub fn mute(&self) {
        self.muted.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets connections and replies through again; connections that were muted are closed.
    pub fn restore(&self) {
        use std::sync::atomic::Ordering;
        if self.muted.swap(false, Ordering::SeqCst) {
            self.generation.send_modify(|g| *g += 1);
        }
        self.down.store(false, Ordering::SeqCst);
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A rule that forwards every event (fault tests count alerts one to one with events).
pub fn forward_everything() -> mutt_core::rules::Rule {
    mutt_core::rules::Rule {
        id: 0,
        match_string: Some(".".into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: mutt_core::rules::MatchType::Regex,
        priority: 1,
        prod_handling: "Page_and_ticket".into(),
        dev_handling: "Page_and_ticket".into(),
        team_assignment: "All".into(),
        is_active: true,
    }
}

/// Sends `n` sample events (with `seq` 0..n) in batches, retrying a batch until ingest
/// accepts it (503s and refused connections during an outage are expected). `pace`
/// spaces the batches. Returns the sequence numbers accepted (all of them, unless the
/// deadline passed).
pub async fn send_all(
    ingest_urls: Vec<String>,
    n: u64,
    batch: usize,
    pace: Duration,
    deadline: Duration,
) -> std::collections::HashSet<u64> {
    let events = mutt_devkit::load::build_events(n);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let end = Instant::now() + deadline;
    let mut accepted = std::collections::HashSet::new();
    for (i, chunk) in events.chunks(batch).enumerate() {
        loop {
            if Instant::now() > end {
                return accepted;
            }
            let url = &ingest_urls[i % ingest_urls.len()];
            match post_events(&client, url, &Value::Array(chunk.to_vec())).await {
                Ok(r) if r.status() == 202 => {
                    accepted.extend(chunk.iter().filter_map(|e| e["seq"].as_u64()));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    accepted
}

/// A control API client with a key.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// A client for the control API at `base` with `key`.
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        }
    }

    /// Sends `method path` with an optional JSON body; returns (status, body, headers).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value, reqwest::header::HeaderMap)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", &self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body, headers))
    }

    /// GET, expecting 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body, _) = self.call("GET", path, None).await?;
        if status != 200 {
            bail!("GET {path}: {status} {body}");
        }
        Ok(body)
    }
}

/// The `seq` of every event whose alert the sink received.
pub fn delivered_seqs(sink: &Sink) -> std::collections::HashSet<u64> {
    sink.seen()
        .events
        .iter()
        .filter_map(|e| e["custom_info"]["seq"].as_u64())
        .collect()
}

/// The sum of a metric's samples (all label sets) on a process's `/metrics`.
pub async fn metric(ops_url: &str, name: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("{ops_url}/metrics")).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A stream entry as read back by a test: its id and its fields.
pub type RawEntry = (String, std::collections::HashMap<String, Vec<u8>>);

/// Entries in a stream of the test's prefix (`dlq:alerter`, `events`, …), as (id, fields).
pub async fn read_stream(env: &TestEnv, name: &str) -> anyhow::Result<Vec<RawEntry>> {
    let mut r = env.redis().await?;
    type Fields = Vec<(String, Vec<u8>)>;
    let v: Vec<(String, Fields)> = redis::cmd("XRANGE")
        .arg(format!("{}:{name}", env.prefix))
        .arg("-")
        .arg("+")
        .query_async(&mut r)
        .await?;
    Ok(v.into_iter()
        .map(|(id, f)| (id, f.into_iter().collect()))
        .collect())
}

/// A private Prometheus (the Debian package's binary) scraping `targets` every second,
/// with MUTT's rule files loaded.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    /// Its URL.
    pub url: String,
    dir: PathBuf,
}

impl PrometheusServer {
    /// Starts one; `targets` are `host:port` of ops listeners.
    pub async fn start(targets: &[String]) -> anyhow::Result<Self> {
        let bin = which("prometheus")
            .context("the prometheus binary is missing: install the Debian package prometheus")?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("mutt-prom-{port}"));
        std::fs::create_dir_all(dir.join("data"))?;
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/mutt-slo.rules.yml\n  - {}/mutt-alerts.rules.yml\nscrape_configs:\n  - job_name: mutt\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            rules.display(),
            targets
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        wait_until("prometheus ready", Duration::from_secs(30), || {
            let ready = ready.clone();
            async move {
                reqwest::get(ready)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await?;
        Ok(Self { child, url, dir })
    }
}

impl PrometheusServer {
    /// Its log and configuration, for a failing test's message.
    pub fn diagnostics(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "config:\n{}\nlog:\n{}",
            read("prometheus.yml"),
            read("prometheus.log")
        )
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept when the test failed, to read its log.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The path of a program on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
