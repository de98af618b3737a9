//! What a stream holds and how far its groups are: the numbers the console's overview
//! polls every few seconds, in two round trips per stream (`XINFO STREAM`, `XINFO GROUPS`).

use redis::Value;

use crate::client::Bus;
use crate::error::BusError;
use crate::trim::{GroupStats, text};

/// A stream and its consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// Entries in it now.
    pub length: u64,
    /// Entries ever appended (Redis 7+; None when Redis cannot tell): its rate is the
    /// stream's throughput, which trimming does not hide the way it hides `length`'s.
    pub entries_added: Option<u64>,
    /// Its groups.
    pub groups: Vec<GroupStats>,
}

/// `length` and `entries-added` of an `XINFO STREAM` reply (a flat array in RESP2, a map
/// in RESP3).
fn parse_stream_info(v: Value) -> (u64, Option<u64>) {
    let fields: Vec<Value> = match v {
        Value::Array(f) => f,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return (0, None),
    };
    let (mut length, mut added) = (0u64, None);
    for kv in fields.chunks(2) {
        match (text(&kv[0]).as_deref(), kv.get(1)) {
            (Some("length"), Some(Value::Int(n))) => length = (*n).max(0) as u64,
            (Some("entries-added"), Some(Value::Int(n))) => added = Some((*n).max(0) as u64),
            _ => {}
        }
    }
    (length, added)
}

impl Bus {
    /// The length, entries ever added and groups of `stream`; a stream that does not
    /// exist yet is empty, not an error (nothing was appended to it yet).
    pub async fn stream_stats(&self, stream: &str) -> Result<StreamStats, BusError> {
        let info: Value = match redis::cmd("XINFO")
            .arg("STREAM")
            .arg(stream)
            .query_async(&mut self.conn())
            .await
        {
            Ok(v) => v,
            Err(e) if e.to_string().contains("no such key") => {
                return Ok(StreamStats::default());
            }
            Err(e) => return Err(e.into()),
        };
        let (length, entries_added) = parse_stream_info(info);
        Ok(StreamStats {
            length,
            entries_added,
            groups: self.group_stats(stream).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_info_in_both_protocols() {
        let flat = Value::Array(vec![
            bulk("length"),
            Value::Int(7),
            bulk("last-generated-id"),
            bulk("1-0"),
            bulk("entries-added"),
            Value::Int(12),
        ]);
        assert_eq!(parse_stream_info(flat), (7, Some(12)));
        let map = Value::Map(vec![(bulk("length"), Value::Int(3))]);
        // Redis 6 has no entries-added: unknown, not zero.
        assert_eq!(parse_stream_info(map), (3, None));
        assert_eq!(parse_stream_info(Value::Nil), (0, None));
    }
}
