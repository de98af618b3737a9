//! The raw ceiling of Redis for MUTT's work, without MUTT: how fast this server appends,
//! and relays (read through a group, append elsewhere, acknowledge), entries of a given
//! size. Benchmarks report MUTT's rate as a share of it.

use std::time::{Duration, Instant};

use redis::Value;

use crate::client::Bus;
use crate::entry::parse_read_reply;
use crate::error::BusError;

impl Bus {
    /// Appends `n` entries of `payload` to `stream`, `batch` per pipeline; returns the time.
    pub async fn raw_append(
        &self,
        stream: &str,
        n: usize,
        payload: &[u8],
        batch: usize,
    ) -> Result<Duration, BusError> {
        let started = Instant::now();
        let mut left = n;
        while left > 0 {
            let k = left.min(batch);
            let mut pipe = redis::pipe();
            for _ in 0..k {
                pipe.cmd("XADD")
                    .arg(stream)
                    .arg("*")
                    .arg("payload")
                    .arg(payload)
                    .ignore();
            }
            let () = pipe.query_async(&mut self.conn()).await?;
            left -= k;
        }
        Ok(started.elapsed())
    }

    /// Relays every entry of `from` through a new group to `to`: read `batch`, append
    /// each to `to` and acknowledge them, in one pipeline per batch. Returns the entries
    /// relayed and the time.
    pub async fn raw_relay(
        &self,
        from: &str,
        to: &str,
        batch: usize,
    ) -> Result<(usize, Duration), BusError> {
        self.ensure_group(from, "bench").await?;
        let started = Instant::now();
        let mut relayed = 0;
        let mut conn = self.conn();
        loop {
            let reply: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("bench")
                .arg("relay")
                .arg("COUNT")
                .arg(batch)
                .arg("STREAMS")
                .arg(from)
                .arg(">")
                .query_async(&mut conn)
                .await?;
            let entries = parse_read_reply(reply)?;
            if entries.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            for e in &entries {
                if let Some(p) = e.payload() {
                    pipe.cmd("XADD")
                        .arg(to)
                        .arg("*")
                        .arg("payload")
                        .arg(p)
                        .ignore();
                }
            }
            let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            pipe.cmd("XACK").arg(from).arg("bench").arg(&ids).ignore();
            let () = pipe.query_async(&mut conn).await?;
            relayed += entries.len();
        }
        Ok((relayed, started.elapsed()))
    }

    /// CPU seconds the Redis server has used (user + system), from `INFO cpu`.
    pub async fn server_cpu_seconds(&self) -> Result<f64, BusError> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut self.conn())
            .await?;
        Ok(info
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                matches!(k, "used_cpu_user" | "used_cpu_sys")
                    .then(|| v.trim().parse::<f64>().ok())
                    .flatten()
            })
            .sum())
    }

    /// Deletes every key of this deployment's prefix (benchmark clean-up: the streams, but
    /// also the fingerprint counters, locks and reports a run leaves).
    pub async fn delete_prefix(&self) -> Result<u64, BusError> {
        let pattern = format!("{}:*", self.names().prefix());
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// Deletes keys of this deployment's prefix (benchmark clean-up).
    pub async fn delete_keys(&self, keys: &[String]) -> Result<(), BusError> {
        if keys.is_empty() {
            return Ok(());
        }
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}
