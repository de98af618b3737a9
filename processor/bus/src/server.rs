//! What tools ask of the Redis server itself: its CPU time, and deleting a deployment's
//! keys (benchmark clean-up).

use crate::client::Bus;
use crate::error::BusError;

impl Bus {
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
