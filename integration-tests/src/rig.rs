//! What tests start from: [`env_with_sink`] (a migrated [`TestEnv`] with rules and a
//! webhook [`Sink`]) and [`Rig`], the fault tests' stack (every event forwarded, fast
//! recovery timings).

use std::collections::HashSet;
use std::time::Duration;

use mutt_core::rules::Rule;
use mutt_devkit::sink::Sink;
use tokio_util::sync::CancellationToken;

use crate::api::{delivered_seqs, forward_everything, read_stream, start_sink};
use crate::env::TestEnv;
use crate::mutt::MuttConfig;
use crate::wait::wait_until;

/// A fresh [`TestEnv`] with the schema and `rules`, and a webhook sink that keeps every
/// payload (stopped by the token).
pub async fn env_with_sink(rules: &[Rule]) -> anyhow::Result<(TestEnv, CancellationToken, Sink)> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    env.migrate().await?;
    env.insert_rules(rules).await?;
    Ok((env, stop, sink))
}

/// A test's world where every event is forwarded ([`forward_everything`]), so that alerts
/// count one to one with events, and processes recover fast.
#[derive(Debug)]
pub struct Rig {
    /// The test's prefix and database.
    pub env: TestEnv,
    /// Stops the sink.
    pub stop: CancellationToken,
    /// The webhook.
    pub sink: Sink,
    settings: Vec<(String, String)>,
}

impl Rig {
    /// A rig whose sink keeps every payload.
    pub async fn start() -> anyhow::Result<Self> {
        let (env, stop, sink) = env_with_sink(&[forward_everything()]).await?;
        Ok(Self::new(env, stop, sink))
    }

    /// A rig whose sink only counts (keeping hundreds of thousands of payloads would
    /// measure the test, not MUTT).
    pub async fn counting() -> anyhow::Result<Self> {
        let env = TestEnv::new().await?;
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sink = Sink::start(listener, false, stop.clone())?;
        env.migrate().await?;
        env.insert_rules(&[forward_everything()]).await?;
        Ok(Self::new(env, stop, sink))
    }

    fn new(env: TestEnv, stop: CancellationToken, sink: Sink) -> Self {
        Self {
            env,
            stop,
            sink,
            settings: Vec::new(),
        }
    }

    /// With a setting for every process [`Rig::cfg`] describes.
    pub fn set(mut self, k: &str, v: &str) -> Self {
        self.settings.push((k.into(), v.into()));
        self
    }

    /// A process with fast recovery timings, so that the tests stay short, and the rig's
    /// settings.
    pub fn cfg(&self, role: &str) -> MuttConfig {
        let cfg = MuttConfig::new(role)
            .webhook(self.sink.url())
            .set("MUTT_CLAIM_TIMEOUT", "2s")
            .set("MUTT_CLAIM_INTERVAL", "300ms")
            .set("MUTT_FORWARDER_RETRY_BASE", "50ms")
            .set("MUTT_FORWARDER_RETRY_MAX", "1s")
            .set("MUTT_BREAKER_OPEN", "1s")
            .set("MUTT_BREAKER_THRESHOLD", "5");
        self.settings.iter().fold(cfg, |cfg, (k, v)| cfg.set(k, v))
    }

    /// Waits until every accepted event was delivered; returns the duplicates.
    pub async fn all_delivered(
        &self,
        accepted: &HashSet<u64>,
        within: Duration,
    ) -> anyhow::Result<u64> {
        let sink = &self.sink;
        wait_until(
            &format!("{} alerts delivered", accepted.len()),
            within,
            || async { (delivered_seqs(sink).is_superset(accepted)).then_some(()) },
        )
        .await?;
        // Late duplicates, if any, show up in this moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let delivered = delivered_seqs(sink);
        assert_eq!(&delivered, accepted, "delivered events = accepted events");
        Ok(sink.duplicates())
    }

    /// Entries in the dead-letter queue of `group`.
    pub async fn dlq_len(&self, group: &str) -> anyhow::Result<usize> {
        Ok(read_stream(&self.env, &format!("dlq:{group}")).await?.len())
    }

    /// Stops the sink, drops the database and the prefix's keys.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.env.cleanup().await
    }
}
