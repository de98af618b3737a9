//! [`Mutt`]: one `mutt` process with its own ports and log file, started from a
//! [`MuttConfig`]; stopped with SIGTERM or kill -9.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use mutt_devkit::local::free_port;

use crate::env::{TestEnv, mutt_binary};
use crate::wait::wait_until;

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
        let mut m = Self::spawn(env, cfg)?;
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
            // Retention is tested on its own: a run at start would add the config audit row
            // of its own that other tests would count.
            .env("MUTT_RETENTION_ENABLED", "off")
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

    /// Waits until `/ready` answers 200; fails at once, with the end of its log, if the
    /// process exits first (a configuration error says why there, not in a timeout).
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}/ready", self.ops_url);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                bail!(
                    "{} exited ({status}) before it was ready; the end of {}:\n{}",
                    self.consumer,
                    self.log.display(),
                    lines[lines.len().saturating_sub(20)..].join("\n")
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {} to be ready (log: {})",
                    self.consumer,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// Sends `SIG<sig>` to `pid` with `kill`.
pub(crate) fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if !st.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}
