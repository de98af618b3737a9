//! The control plane's Redis side: the current hot-setting snapshot, announcements on
//! `{p}:control`, the versions each consumer applied, and the API key registry.
//!
//! PostgreSQL holds the history; Redis holds what every process reads (a forwarder or an
//! ingest pod has no database). Announcements only say "something changed": a process that
//! missed one catches up by polling the snapshot's version.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::client::Bus;
use crate::error::BusError;

/// A control-plane announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Announcement {
    /// A new hot-setting snapshot.
    Config {
        /// Its version.
        version: i64,
    },
    /// Rules, development hosts or device teams changed.
    Rules,
    /// API keys changed.
    Keys,
    /// A secret rotation step.
    Secrets {
        /// The secret's name.
        name: String,
        /// Its generation.
        generation: i64,
    },
}

/// The hot-setting snapshot as stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Version (the PostgreSQL row).
    pub version: i64,
    /// Overrides, key → value.
    pub values: BTreeMap<String, String>,
}

/// What one process reported applying, with its readiness and counters: the heartbeat the
/// console's overview reads, so that it needs no access to every process's ops listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// Consumer name.
    pub consumer: String,
    /// Roles of the process.
    pub roles: Vec<String>,
    /// Snapshot version applied.
    pub version: i64,
    /// Credential generations in use, by secret name.
    #[serde(default)]
    pub generations: BTreeMap<String, i64>,
    /// When it last reported, ms since the epoch.
    pub seen_ms: i64,
    /// What its `/ready` says (None: a process of a version that did not report it).
    #[serde(default)]
    pub ready: Option<bool>,
    /// The checks behind `ready`, name → `ok`, `pending`, `held` or `error: …`.
    #[serde(default)]
    pub checks: BTreeMap<String, String>,
    /// Its counters since it started (`events_accepted`, `alerts_delivered`, …), only those
    /// of the roles it runs, so that summing them over processes counts each once.
    #[serde(default)]
    pub stats: BTreeMap<String, f64>,
}

/// An API key as every process sees it: the digest, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Hex SHA-256 of the key.
    pub digest: String,
    /// The key's name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Expiry, ms since the epoch.
    pub expires_ms: Option<i64>,
}

/// Sets the snapshot only if it is newer than the stored one, so that a slow writer can
/// never move the configuration back.
/// How long connecting and subscribing to the control channel may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

static SET_IF_NEWER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, decoded = pcall(cjson.decode, cur)
  if ok and tonumber(decoded['version']) >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"#,
    )
});

impl Bus {
    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.names().prefix())
    }

    /// Announces a change on `{p}:control`; returns how many subscribers received it.
    pub async fn announce(&self, a: &Announcement) -> Result<u64, BusError> {
        let msg = serde_json::to_string(a).map_err(|e| BusError::Protocol(e.to_string()))?;
        Ok(self.conn().publish(self.names().control(), msg).await?)
    }

    /// Stores `snapshot` unless a newer one is there. Returns whether it was stored.
    pub async fn store_snapshot(&self, snapshot: &Snapshot) -> Result<bool, BusError> {
        let text =
            serde_json::to_string(snapshot).map_err(|e| BusError::Protocol(e.to_string()))?;
        let stored: i64 = SET_IF_NEWER
            .key(self.key("config"))
            .arg(snapshot.version)
            .arg(text)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(stored == 1)
    }

    /// The current snapshot, if any was published.
    pub async fn snapshot(&self) -> Result<Option<Snapshot>, BusError> {
        let text: Option<String> = self.conn().get(self.key("config")).await?;
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| BusError::Protocol(format!("config snapshot: {e}")))
        })
        .transpose()
    }

    /// Records what this process applied (also its heartbeat for `config/versions`).
    pub async fn report_applied(&self, applied: &Applied) -> Result<(), BusError> {
        let text = serde_json::to_string(applied).map_err(|e| BusError::Protocol(e.to_string()))?;
        let _: () = self
            .conn()
            .hset(self.key("config:applied"), &applied.consumer, text)
            .await?;
        Ok(())
    }

    /// What every process reported; entries not refreshed for `stale_after` are dropped.
    pub async fn applied_versions(
        &self,
        stale_after: Duration,
        now_ms: i64,
    ) -> Result<Vec<Applied>, BusError> {
        let all: BTreeMap<String, String> = self.conn().hgetall(self.key("config:applied")).await?;
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for (field, text) in all {
            match serde_json::from_str::<Applied>(&text) {
                Ok(a) if now_ms - a.seen_ms <= stale_after.as_millis() as i64 => out.push(a),
                _ => stale.push(field),
            }
        }
        if !stale.is_empty() {
            let _: i64 = self.conn().hdel(self.key("config:applied"), stale).await?;
        }
        Ok(out)
    }

    /// Replaces the API key registry with `keys`, read at `version` of the key set, unless
    /// Redis holds a set of that version or newer: a publisher that read the keys before a
    /// revocation can never bring the revoked key back. Returns the version Redis holds
    /// afterwards (higher than `version` when this set was refused as older).
    pub async fn publish_keys(&self, version: i64, keys: &[KeyRecord]) -> Result<i64, BusError> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
            Script::new(
                r"
local cur = tonumber(redis.call('GET', KEYS[2]) or '-1')
if cur >= tonumber(ARGV[1]) then return cur end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[2], ARGV[1])
return tonumber(ARGV[1])
",
            )
        });
        let mut inv = SCRIPT.prepare_invoke();
        inv.key(self.key("apikeys"))
            .key(self.key("apikeys:version"))
            .arg(version);
        for r in keys {
            let text = serde_json::to_string(r).map_err(|e| BusError::Protocol(e.to_string()))?;
            inv.arg(&r.digest).arg(text);
        }
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }

    /// The API key registry.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>, BusError> {
        let all: BTreeMap<String, String> = self.conn().hgetall(self.key("apikeys")).await?;
        Ok(all
            .values()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    /// Listens to `{p}:control` until `tx` is closed, resubscribing after any connection
    /// loss, and hands every announcement to `tx`. Run it as a task; abort it to stop.
    pub async fn listen_control(&self, tx: mpsc::UnboundedSender<Announcement>) {
        use futures_util::StreamExt;
        let channel = self.names().control();
        let mut delay = Duration::from_millis(200);
        loop {
            let generation = self.master_generation();
            let client = self.client_now();
            // redis-rs puts no time limit on a pub/sub connection: a master whose packets
            // vanish would hold this for the kernel's connect timeout, minutes, even after
            // the sentinels named another one.
            let subscribed = async {
                let mut p = client?.get_async_pubsub().await?;
                p.subscribe(&channel).await?;
                Ok::<_, BusError>(p)
            };
            let pubsub = tokio::select! {
                r = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed) => match r {
                    Ok(Ok(p)) => Some(p),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "control channel: cannot subscribe");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(timeout = ?SUBSCRIBE_TIMEOUT, "control channel: no answer to the subscription");
                        None
                    }
                },
                () = self.master_moved_since(generation) => None,
            };
            if let Some(mut p) = pubsub {
                delay = Duration::from_millis(200);
                let mut messages = p.on_message();
                // A failover may leave this connection on a server that is no longer the
                // master (alive, but not where announcements are published): move too.
                let moved = self.master_moved_since(generation);
                tokio::pin!(moved);
                loop {
                    let m = tokio::select! {
                        m = messages.next() => m,
                        () = &mut moved => {
                            tracing::warn!("control channel: the Redis master moved; resubscribing");
                            break;
                        }
                    };
                    let Some(m) = m else {
                        tracing::warn!("control channel: connection lost; resubscribing");
                        break;
                    };
                    let Ok(text) = m.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<Announcement>(&text) {
                        Ok(a) => {
                            if tx.send(a).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "control channel: unknown announcement ignored")
                        }
                    }
                }
            }
            if tx.is_closed() {
                return;
            }
            // The back-off grows while the same master keeps failing; a new master (a
            // failover) is tried at once, not after the back-off the dead one earned.
            tokio::select! {
                () = tokio::time::sleep(delay) => delay = (delay * 2).min(Duration::from_secs(5)),
                () = self.master_moved_since(generation) => delay = Duration::from_millis(200),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_of_an_older_version_still_parses() {
        let a: Applied =
            serde_json::from_str(r#"{"consumer":"c","roles":["alerter"],"version":2,"seen_ms":1}"#)
                .expect("parses");
        assert_eq!((a.ready, a.checks.len(), a.stats.len()), (None, 0, 0));
    }
}
