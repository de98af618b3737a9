//! Trimming streams without losing work.
//!
//! An entry may go only when every group has both delivered it (its id is at or below the
//! group's last-delivered id) and acknowledged it (it is older than the group's oldest
//! pending entry). The trim point is the smallest of those bounds over all groups, and
//! `XTRIM MINID` removes only what lies below it. Both bounds only move forward, so a
//! point computed a moment ago is still safe when the trim runs.

use redis::Value;

use crate::client::Bus;
use crate::error::BusError;

/// A stream id (`ms-seq`) as a comparable pair.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The smallest id strictly greater than `id`.
fn successor(id: (u64, u64)) -> (u64, u64) {
    match id.1.checked_add(1) {
        Some(seq) => (id.0, seq),
        None => (id.0 + 1, 0),
    }
}

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// What a trim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    /// Entries below this id were eligible.
    pub min_id: String,
    /// Entries removed.
    pub removed: u64,
}

/// The state of one consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// Group name.
    pub name: String,
    /// Entries delivered and not acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group (Redis 7+; None when Redis cannot tell,
    /// e.g. after entries were deleted).
    pub lag: Option<u64>,
    /// The group's last-delivered id.
    pub last_delivered: String,
    /// Consumers the group knows (gone ones included until removed).
    pub consumers: u64,
    /// Entries delivered to the group so far (Redis 7+; None when Redis cannot tell).
    pub entries_read: Option<u64>,
}

impl Bus {
    /// The groups of `stream` (empty if the stream does not exist).
    pub async fn group_stats(&self, stream: &str) -> Result<Vec<GroupStats>, BusError> {
        let groups: Value = match redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut self.conn())
            .await
        {
            Ok(v) => v,
            Err(e) if e.to_string().contains("no such key") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let Value::Array(groups) = groups else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for g in groups {
            let fields: Vec<Value> = match g {
                Value::Array(f) => f,
                Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                _ => continue,
            };
            let (mut name, mut last, mut pending, mut lag) = (None, None, 0u64, None);
            let (mut consumers, mut entries_read) = (0u64, None);
            for kv in fields.chunks(2) {
                match (text(&kv[0]).as_deref(), kv.get(1)) {
                    (Some("name"), Some(v)) => name = text(v),
                    (Some("last-delivered-id"), Some(v)) => last = text(v),
                    (Some("pending"), Some(Value::Int(n))) => pending = (*n).max(0) as u64,
                    (Some("lag"), Some(Value::Int(n))) => lag = Some((*n).max(0) as u64),
                    (Some("consumers"), Some(Value::Int(n))) => consumers = (*n).max(0) as u64,
                    (Some("entries-read"), Some(Value::Int(n))) => {
                        entries_read = Some((*n).max(0) as u64)
                    }
                    _ => {}
                }
            }
            let (Some(name), Some(last_delivered)) = (name, last) else {
                return Err(BusError::Protocol(
                    "XINFO GROUPS without name or last-delivered-id".into(),
                ));
            };
            out.push(GroupStats {
                name,
                pending,
                lag,
                last_delivered,
                consumers,
                entries_read,
            });
        }
        Ok(out)
    }

    /// Entries of `stream` that `group` has not acknowledged yet: its lag plus its pending
    /// entries (0 when the group does not exist yet).
    pub async fn group_backlog(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        let Some(g) = self
            .group_stats(stream)
            .await?
            .into_iter()
            .find(|g| g.name == group)
        else {
            return Ok(0);
        };
        let lag = match g.lag {
            Some(l) => l,
            None => self.len(stream).await?,
        };
        Ok(lag + g.pending)
    }

    /// The id below which every group has delivered and acknowledged every entry, or None
    /// when the stream has no groups (nothing is known to be safe to remove).
    pub async fn safe_trim_point(&self, stream: &str) -> Result<Option<String>, BusError> {
        let groups = self.group_stats(stream).await?;
        let mut bound: Option<(u64, u64)> = None;
        for g in groups {
            let last = parse_id(&g.last_delivered).ok_or_else(|| {
                BusError::Protocol(format!("bad last-delivered-id {}", g.last_delivered))
            })?;
            let mut group_bound = successor(last);
            if g.pending > 0 {
                let summary: Value = redis::cmd("XPENDING")
                    .arg(stream)
                    .arg(&g.name)
                    .query_async(&mut self.conn())
                    .await?;
                if let Value::Array(s) = summary
                    && let Some(oldest) = s.get(1).and_then(text).and_then(|t| parse_id(&t))
                {
                    group_bound = group_bound.min(oldest);
                }
            }
            bound = Some(bound.map_or(group_bound, |b| b.min(group_bound)));
        }
        Ok(bound.map(|(ms, seq)| format!("{ms}-{seq}")))
    }

    /// Removes the entries of `stream` that every group has delivered and acknowledged.
    /// Approximate (`~`): whole internal nodes only, which is cheap and never removes more.
    pub async fn trim_acknowledged(&self, stream: &str) -> Result<Option<Trimmed>, BusError> {
        let Some(min_id) = self.safe_trim_point(stream).await? else {
            return Ok(None);
        };
        let removed: u64 = redis::cmd("XTRIM")
            .arg(stream)
            .arg("MINID")
            .arg("~")
            .arg(&min_id)
            .query_async(&mut self.conn())
            .await?;
        Ok(Some(Trimmed { min_id, removed }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(parse_id("17-3"), Some((17, 3)));
        assert_eq!(parse_id("17"), Some((17, 0)));
        assert_eq!(parse_id("x-1"), None);
        assert_eq!(successor((5, 9)), (5, 10));
        assert_eq!(successor((5, u64::MAX)), (6, 0));
    }
}
