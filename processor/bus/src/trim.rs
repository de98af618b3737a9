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

fn text(v: &Value) -> Option<String> {
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

impl Bus {
    /// The id below which every group has delivered and acknowledged every entry, or None
    /// when the stream has no groups (nothing is known to be safe to remove).
    pub async fn safe_trim_point(&self, stream: &str) -> Result<Option<String>, BusError> {
        let groups: Value = match redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut self.conn())
            .await
        {
            Ok(v) => v,
            Err(e) if e.to_string().contains("no such key") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Value::Array(groups) = groups else {
            return Ok(None);
        };
        if groups.is_empty() {
            return Ok(None);
        }
        let mut bound: Option<(u64, u64)> = None;
        for g in groups {
            let fields: Vec<Value> = match g {
                Value::Array(f) => f,
                Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                _ => continue,
            };
            let mut name = None;
            let mut last = None;
            let mut pending = 0i64;
            for kv in fields.chunks(2) {
                match (text(&kv[0]).as_deref(), kv.get(1)) {
                    (Some("name"), Some(v)) => name = text(v),
                    (Some("last-delivered-id"), Some(v)) => {
                        last = text(v).and_then(|s| parse_id(&s))
                    }
                    (Some("pending"), Some(Value::Int(n))) => pending = *n,
                    _ => {}
                }
            }
            let (Some(name), Some(last)) = (name, last) else {
                return Err(BusError::Protocol(
                    "XINFO GROUPS without name or last-delivered-id".into(),
                ));
            };
            let mut group_bound = successor(last);
            if pending > 0 {
                let summary: Value = redis::cmd("XPENDING")
                    .arg(stream)
                    .arg(&name)
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
