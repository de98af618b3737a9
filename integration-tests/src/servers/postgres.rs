//! [`PostgresServer`]: a private PostgreSQL cluster with password authentication, for
//! tests about roles and credentials; [`can_connect`] tries a URL.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use mutt_devkit::local::free_port;
use mutt_devkit::programs::{as_postgres, postgres_bindir, running_as_root};
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

use super::scratch_dir;
use crate::mutt::signal;

#[cfg(test)]
mod tests;

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
