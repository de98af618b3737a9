//! What tools ask of the Redis server itself: its CPU time, version, persistence and
//! eviction settings, clock, what the connected user may run (`muttdev doctor`), and
//! deleting a deployment's keys (benchmark clean-up).

use std::collections::BTreeMap;

use crate::client::Bus;
use crate::error::BusError;

/// The fields of `INFO` (the default sections: server, clients, memory, persistence, …),
/// by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    fields: BTreeMap<String, String>,
}

impl ServerInfo {
    /// Parses the text of an `INFO` reply.
    pub fn parse(text: &str) -> Self {
        Self {
            fields: text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        }
    }

    /// One field (`redis_version`, `aof_enabled`, …).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// The server's version, `7.2.4`.
    pub fn version(&self) -> Option<&str> {
        self.get("redis_version")
    }

    /// The version as (major, minor, patch), when it parses.
    pub fn version_numbers(&self) -> Option<(u32, u32, u32)> {
        let mut parts = self.version()?.split('.').map(|p| p.parse::<u32>().ok());
        Some((
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
            parts.next().flatten().unwrap_or(0),
        ))
    }

    /// Whether the append-only file is on.
    pub fn aof_enabled(&self) -> bool {
        self.get("aof_enabled") == Some("1")
    }

    /// The eviction policy (`noeviction`, `allkeys-lru`, …).
    pub fn maxmemory_policy(&self) -> Option<&str> {
        self.get("maxmemory_policy")
    }

    /// The memory limit in bytes (0: none).
    pub fn maxmemory(&self) -> u64 {
        self.get("maxmemory")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// What `ACL DRYRUN` said of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DryRun {
    /// The user may run it.
    Allowed,
    /// The user may not, and why (Redis's words).
    Denied(String),
}

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

    /// The server's `INFO` (default sections).
    pub async fn server_info(&self) -> Result<ServerInfo, BusError> {
        let text: String = redis::cmd("INFO").query_async(&mut self.conn()).await?;
        Ok(ServerInfo::parse(&text))
    }

    /// One `CONFIG GET` value (None when the server has no such parameter). Managed
    /// servers and ACL users often refuse `CONFIG`: that is an error.
    pub async fn config_value(&self, name: &str) -> Result<Option<String>, BusError> {
        let pairs: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut self.conn())
            .await?;
        Ok(pairs
            .chunks(2)
            .find(|p| p[0].eq_ignore_ascii_case(name))
            .and_then(|p| p.get(1).cloned()))
    }

    /// The server's clock (`TIME`), in ms since the epoch.
    pub async fn server_time_ms(&self) -> Result<i64, BusError> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut self.conn()).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Whether `user` may run `command` (its name and arguments, keys and channels
    /// included), by `ACL DRYRUN` (Redis 7.0+; the caller needs the right to run it).
    /// Nothing is executed.
    pub async fn acl_dryrun(&self, user: &str, command: &[&str]) -> Result<DryRun, BusError> {
        let answer: String = redis::cmd("ACL")
            .arg("DRYRUN")
            .arg(user)
            .arg(command)
            .query_async(&mut self.conn())
            .await?;
        Ok(if answer == "OK" {
            DryRun::Allowed
        } else {
            DryRun::Denied(answer)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_read_by_field() {
        let info = ServerInfo::parse(
            "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\r\n# Memory\r\n\
             maxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n# Persistence\r\naof_enabled:1\r\n",
        );
        assert_eq!(info.version(), Some("7.0.15"));
        assert_eq!(info.version_numbers(), Some((7, 0, 15)));
        assert_eq!(info.maxmemory_policy(), Some("allkeys-lru"));
        assert_eq!(info.maxmemory(), 0);
        assert!(info.aof_enabled());
        assert_eq!(
            ServerInfo::parse("redis_version:6.2").version_numbers(),
            Some((6, 2, 0))
        );
        assert!(!ServerInfo::default().aof_enabled());
    }
}
