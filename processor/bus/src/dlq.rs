//! Dead letters: entries a group gives up on, moved with their provenance.
//!
//! A dead letter keeps the original fields (payload, trace context) and adds where it came
//! from and why it failed. The move appends to `{p}:dlq:<group>` and acknowledges the
//! source entry in one transaction, so an entry is always in exactly one of the two.

use crate::client::Bus;
use crate::entry::{PAYLOAD, StreamEntry, TRACEPARENT, TRACESTATE};
use crate::error::BusError;

/// Provenance field: the stream the entry came from.
pub const SOURCE_STREAM: &str = "source_stream";
/// Provenance field: the entry's id in that stream.
pub const SOURCE_ID: &str = "source_id";
/// Provenance field: the group that gave up.
pub const GROUP: &str = "group";
/// Provenance field: the consumer that moved it.
pub const CONSUMER: &str = "consumer";
/// Provenance field: deliveries to the group when it was moved.
pub const DELIVERY_COUNT: &str = "delivery_count";
/// Provenance field: the last error.
pub const LAST_ERROR: &str = "last_error";
/// Provenance field: first failure, ms since the epoch.
pub const FIRST_FAILURE_MS: &str = "first_failure_ms";
/// Provenance field: last failure, ms since the epoch.
pub const LAST_FAILURE_MS: &str = "last_failure_ms";
/// Provenance field: times the entry was replayed from a DLQ before.
pub const REPLAYS: &str = "replays";

/// Why and how an entry is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The entry as read.
    pub entry: &'a StreamEntry,
    /// Stream it was read from.
    pub source_stream: &'a str,
    /// Group giving up on it.
    pub group: &'a str,
    /// Consumer moving it.
    pub consumer: &'a str,
    /// Deliveries so far.
    pub delivery_count: u64,
    /// The last error (kept short; never contains secrets).
    pub last_error: &'a str,
    /// First failure time, ms.
    pub first_failure_ms: i64,
    /// Last failure time, ms.
    pub last_failure_ms: i64,
}

/// Longest error text stored with a dead letter.
const MAX_ERROR_BYTES: usize = 1024;

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Bus {
    /// Moves entries to `{p}:dlq:<group>` and acknowledges them, atomically.
    pub async fn move_to_dlq(&self, letters: &[DeadLetter<'_>]) -> Result<(), BusError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for l in letters {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(self.names().dlq(l.group)).arg("*");
            // The original fields first, then provenance (overriding any same-named field,
            // so a replayed dead letter that fails again carries fresh provenance).
            let provenance = [
                SOURCE_STREAM,
                SOURCE_ID,
                GROUP,
                CONSUMER,
                DELIVERY_COUNT,
                LAST_ERROR,
                FIRST_FAILURE_MS,
                LAST_FAILURE_MS,
            ];
            for (k, v) in &l.entry.fields {
                if !provenance.contains(&k.as_str()) {
                    cmd.arg(k).arg(v);
                }
            }
            cmd.arg(SOURCE_STREAM)
                .arg(l.source_stream)
                .arg(SOURCE_ID)
                .arg(&l.entry.id)
                .arg(GROUP)
                .arg(l.group)
                .arg(CONSUMER)
                .arg(l.consumer)
                .arg(DELIVERY_COUNT)
                .arg(l.delivery_count)
                .arg(LAST_ERROR)
                .arg(cut(l.last_error, MAX_ERROR_BYTES))
                .arg(FIRST_FAILURE_MS)
                .arg(l.first_failure_ms)
                .arg(LAST_FAILURE_MS)
                .arg(l.last_failure_ms);
            pipe.add_command(cmd).ignore();
            pipe.cmd("XACK")
                .arg(l.source_stream)
                .arg(l.group)
                .arg(&l.entry.id)
                .ignore();
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }
}

/// The fields of a dead letter that are not provenance: what to write back on replay.
pub fn original_fields(entry: &StreamEntry) -> impl Iterator<Item = (&str, &[u8])> {
    entry
        .fields
        .iter()
        .filter(|(k, _)| [PAYLOAD, TRACEPARENT, TRACESTATE].contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_slice()))
}
