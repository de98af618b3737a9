//! [`RedisServer`]: a private `redis-server`, for tests that restart or kill Redis itself.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use mutt_devkit::local::free_port;

use super::scratch_dir;
use crate::wait::wait_until;

/// A private `redis-server` on a free loopback port, optionally with AOF (fsync always)
/// so that a restart keeps everything acknowledged.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// Port.
    pub port: u16,
    dir: PathBuf,
    aof: bool,
    /// The master's port, for a replica.
    replica_of: Option<u16>,
    /// More `redis-server` arguments, for the next start.
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server.
    pub async fn start(aof: bool) -> anyhow::Result<Self> {
        Self::start_with(aof, None).await
    }

    /// Starts a replica of `master` (no persistence) and waits until its link is up.
    pub async fn start_replica_of(master: &RedisServer) -> anyhow::Result<Self> {
        Self::start_with(false, Some(master.port)).await
    }

    async fn start_with(aof: bool, replica_of: Option<u16>) -> anyhow::Result<Self> {
        let port = free_port();
        let dir = scratch_dir("redis", port)?;
        let mut s = Self {
            child: None,
            port,
            dir,
            aof,
            replica_of,
            extra: Vec::new(),
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
        if let Some(m) = self.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
        }
        cmd.args(&self.extra);
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
        if self.replica_of.is_some() {
            let url = self.url();
            wait_until("the replica's link up", Duration::from_secs(10), || {
                let url = url.clone();
                async move {
                    let c = redis::Client::open(url).ok()?;
                    let mut conn = c.get_multiplexed_async_connection().await.ok()?;
                    let info: String = redis::cmd("INFO")
                        .arg("replication")
                        .query_async(&mut conn)
                        .await
                        .ok()?;
                    info.contains("master_link_status:up").then_some(())
                }
            })
            .await?;
        }
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

    /// Starts it again with `args` added (`--replica-priority 0`, …).
    pub async fn restart_with(&mut self, args: &[&str]) -> anyhow::Result<()> {
        self.extra = args.iter().map(|a| a.to_string()).collect();
        self.restart().await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private Redis Sentinel on a free loopback port, monitoring a [`RedisServer`] master
/// under `name` with a quorum of 2, and declaring it down after one second.
#[derive(Debug)]
pub struct SentinelServer {
    child: Option<Child>,
    /// Port.
    pub port: u16,
    dir: PathBuf,
}

impl SentinelServer {
    /// Starts a sentinel of `master` under `name` and waits until it answers.
    pub async fn start(master: &RedisServer, name: &str) -> anyhow::Result<Self> {
        let port = free_port();
        let dir = scratch_dir("sentinel", port)?;
        // A sentinel rewrites its configuration file: it must be its own, writable.
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {name} 127.0.0.1 {m} 2\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 10000\n\
                 sentinel parallel-syncs {name} 1\n",
                dir = dir.display(),
                m = master.port,
            ),
        )?;
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server --sentinel")?;
        let s = Self {
            child: Some(child),
            port,
            dir,
        };
        wait_until(
            "the sentinel to answer",
            Duration::from_secs(10),
            || async { s.master(name).await.ok().flatten() },
        )
        .await?;
        Ok(s)
    }

    /// Its address, as `MUTT_REDIS_SENTINELS` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port of the master it names now.
    pub async fn master(&self, name: &str) -> anyhow::Result<Option<u16>> {
        let c = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let mut conn = c.get_multiplexed_async_connection().await?;
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(name)
            .query_async(&mut conn)
            .await?;
        Ok(addr.and_then(|(_, p)| p.parse().ok()))
    }

    /// A field of `SENTINEL MASTER name` (`num-other-sentinels`, `num-slaves`, …).
    pub async fn master_field(&self, name: &str, field: &str) -> anyhow::Result<Option<String>> {
        let c = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let mut conn = c.get_multiplexed_async_connection().await?;
        let flat: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(name)
            .query_async(&mut conn)
            .await?;
        Ok(flat
            .chunks(2)
            .find(|kv| kv[0] == field)
            .and_then(|kv| kv.get(1).cloned()))
    }
}

impl Drop for SentinelServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
