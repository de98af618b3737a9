//! Dead letters: entries a group gives up on, moved with their provenance.
//!
//! A dead letter keeps the original fields (payload, trace context) and adds where it came
//! from and why it failed. The move appends to `{p}:dlq:<group>` and acknowledges the
//! source entry in one transaction, so an entry is always in exactly one of the two.

use std::sync::LazyLock;

use mutt_core::event::truncate;

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
/// The `traceparent` of the replay that put an entry back (its spans link to it).
pub const REPLAYED_BY: &str = "replayed_by";

/// Where a dead letter is: in its DLQ, where automatic replay looks, or parked beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    /// `{p}:dlq:<group>`.
    Active,
    /// `{p}:dlq:<group>:parked`.
    Parked,
}

/// Why a letter was parked (a field of parked letters).
pub const PARKED_REASON: &str = "parked_reason";
/// When it was parked, ms.
pub const PARKED_AT_MS: &str = "parked_at_ms";

/// Parks one dead letter: appends its fields (and why) to the parked stream and deletes it
/// from the DLQ, only if it is still there; a failed append leaves it where it was.
static PARK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
",
    )
});

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

/// Moves one dead letter back: appends its fields to the source stream and deletes it from
/// the DLQ, only if it is still in the DLQ. The append comes before the delete, and Redis
/// runs a script to its end or stops at the first error, so a failed append leaves the
/// letter where it was.
static REPLAY: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
",
    )
});

/// Longest error text stored with a dead letter.
const MAX_ERROR_BYTES: usize = 1024;

/// Provenance fields, written after the original fields (overriding any same-named one,
/// so a replayed dead letter that fails again carries fresh provenance).
const PROVENANCE: [&str; 8] = [
    SOURCE_STREAM,
    SOURCE_ID,
    GROUP,
    CONSUMER,
    DELIVERY_COUNT,
    LAST_ERROR,
    FIRST_FAILURE_MS,
    LAST_FAILURE_MS,
];

/// Moves dead letters of one source stream and group: per letter, appends it to the DLQ,
/// then acknowledges it and forgets its failure. A refused append stops the script before
/// that letter's acknowledgement, so an entry is always in exactly one of the two streams.
static MOVE: LazyLock<redis::Script> = LazyLock::new(|| {
    crate::scripts::script(
        r"
local a = 3
for i = 1, tonumber(ARGV[2]) do
  local id = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, a + 2, a + 1 + n))
  redis.call('XACK', KEYS[2], ARGV[1], id)
  redis.call('HDEL', KEYS[3], id)
  a = a + 2 + n
end
return 0
",
    )
});

impl Bus {
    /// Moves entries to `{p}:dlq:<group>` and acknowledges them, each atomically (see
    /// the `MOVE` script).
    pub async fn move_to_dlq(&self, letters: &[DeadLetter<'_>]) -> Result<(), BusError> {
        // One script call per source stream and group, in the order given.
        let mut rest: Vec<&DeadLetter<'_>> = letters.iter().collect();
        while let Some(first) = rest.first() {
            let (source, group) = (first.source_stream, first.group);
            let (batch, others): (Vec<_>, Vec<_>) = rest
                .into_iter()
                .partition(|l| l.source_stream == source && l.group == group);
            rest = others;
            let mut inv = MOVE.prepare_invoke();
            inv.key(self.names().dlq(group))
                .key(source)
                .key(self.names().failures(group))
                .arg(group)
                .arg(batch.len());
            for l in batch {
                let original: Vec<&(String, Vec<u8>)> = l
                    .entry
                    .fields
                    .iter()
                    .filter(|(k, _)| !PROVENANCE.contains(&k.as_str()))
                    .collect();
                inv.arg(&l.entry.id)
                    .arg(2 * (original.len() + PROVENANCE.len()));
                for (k, v) in original {
                    inv.arg(k).arg(v);
                }
                inv.arg(SOURCE_STREAM)
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
                    .arg(truncate(l.last_error, MAX_ERROR_BYTES))
                    .arg(FIRST_FAILURE_MS)
                    .arg(l.first_failure_ms)
                    .arg(LAST_FAILURE_MS)
                    .arg(l.last_failure_ms);
            }
            let _: i64 = inv.invoke_async(&mut self.conn()).await?;
        }
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

/// Times a dead letter was replayed before.
pub fn replays(entry: &StreamEntry) -> u64 {
    entry
        .text(REPLAYS)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

// The failure registry (`{p}:failures:<group>`): the last error of entries that failed,
// kept per group until the entry is acknowledged or dead-lettered (both clear it), so that
// whoever moves an entry to the DLQ (its consumer, or another one reclaiming it after a
// crash) records why.

/// A recorded failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The last error.
    pub last_error: String,
    /// First failure, ms since the epoch.
    pub first_ms: i64,
    /// Last failure, ms since the epoch.
    pub last_ms: i64,
}

/// Failures are forgotten after a week even if nobody clears them (a group deleted by hand).
const FAILURE_TTL_SECS: u64 = 7 * 86_400;

impl Bus {
    /// Records that entries of `group` failed with `error` at `now_ms`.
    pub async fn record_failures(
        &self,
        group: &str,
        ids: &[String],
        error: &str,
        now_ms: i64,
    ) -> Result<(), BusError> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.names().failures(group);
        let previous: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(ids)
            .query_async(&mut self.conn())
            .await?;
        let mut pipe = redis::pipe();
        for (id, prev) in ids.iter().zip(previous) {
            let first = prev
                .as_deref()
                .and_then(|p| p.split_once('|'))
                .and_then(|(f, _)| f.parse::<i64>().ok())
                .unwrap_or(now_ms);
            pipe.cmd("HSET")
                .arg(&key)
                .arg(id)
                .arg(format!(
                    "{first}|{now_ms}|{}",
                    truncate(error, MAX_ERROR_BYTES)
                ))
                .ignore();
        }
        pipe.cmd("EXPIRE").arg(&key).arg(FAILURE_TTL_SECS).ignore();
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// The recorded failures of entries (absent ids never failed, or were cleared).
    pub async fn failures(
        &self,
        group: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Failure>>, BusError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.names().failures(group))
            .arg(ids)
            .query_async(&mut self.conn())
            .await?;
        Ok(raw
            .into_iter()
            .map(|r| {
                let r = r?;
                let mut parts = r.splitn(3, '|');
                Some(Failure {
                    first_ms: parts.next()?.parse().ok()?,
                    last_ms: parts.next()?.parse().ok()?,
                    last_error: parts.next().unwrap_or("").to_string(),
                })
            })
            .collect())
    }
}

/// A DLQ stream and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqInfo {
    /// The group (`alerter`, `forwarder`).
    pub group: String,
    /// The stream's name.
    pub stream: String,
    /// Entries in it.
    pub depth: u64,
    /// Id of its oldest entry.
    pub oldest_id: Option<String>,
}

impl DlqInfo {
    /// Seconds since its oldest entry was dead-lettered (None when it is empty).
    pub fn oldest_age_secs(&self, now_ms: i64) -> Option<i64> {
        let ms = crate::entry::id_millis(self.oldest_id.as_deref()?)?;
        Some(((now_ms - ms) / 1000).max(0))
    }
}

impl Bus {
    /// State of the DLQ of each of `groups`.
    pub async fn dlq_info(&self, groups: &[&str]) -> Result<Vec<DlqInfo>, BusError> {
        let mut out = Vec::new();
        for g in groups {
            let stream = self.names().dlq(g);
            let depth = self.len(&stream).await?;
            let first: Vec<StreamEntry> = {
                let v: redis::Value = redis::cmd("XRANGE")
                    .arg(&stream)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut self.conn())
                    .await?;
                crate::entry::parse_entries(v)?
            };
            out.push(DlqInfo {
                group: g.to_string(),
                stream,
                depth,
                oldest_id: first.into_iter().next().map(|e| e.id),
            });
        }
        Ok(out)
    }

    /// The stream of `group`'s letters on `shelf`.
    pub fn shelf(&self, group: &str, shelf: Shelf) -> String {
        match shelf {
            Shelf::Active => self.names().dlq(group),
            Shelf::Parked => self.names().dlq_parked(group),
        }
    }

    /// Up to `count` dead letters of `group` on `shelf` after `after` (exclusive; `None`
    /// from the start).
    pub async fn dlq_entries(
        &self,
        group: &str,
        shelf: Shelf,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<StreamEntry>, BusError> {
        let start = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(self.shelf(group, shelf))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn())
            .await?;
        crate::entry::parse_entries(v)
    }

    /// Appends dead letters back to their source streams (original fields, trace context
    /// kept, `replays` counted) and removes them from the DLQ. Each letter moves in one
    /// script that appends only if the letter is still there, so two replays racing (an
    /// operator's and the automatic one, or two operators') deliver it once, and a purge
    /// that won the race is never undone. Returns the ids replayed; letters without a
    /// known source, and letters already gone, are skipped.
    pub async fn dlq_replay(
        &self,
        group: &str,
        shelf: Shelf,
        letters: &[StreamEntry],
        replayed_by: Option<&str>,
    ) -> Result<Vec<String>, BusError> {
        let dlq = self.shelf(group, shelf);
        let mut done = Vec::new();
        for l in letters {
            let Some(source) = l.text(SOURCE_STREAM) else {
                continue;
            };
            // Only a stream of this deployment may receive a replay.
            if !source.starts_with(&format!("{}:", self.names().prefix())) || l.payload().is_none()
            {
                continue;
            }
            let replays = l
                .text(REPLAYS)
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            let mut inv = REPLAY.prepare_invoke();
            inv.key(&dlq).key(source).arg(&l.id);
            for (k, v) in original_fields(l) {
                inv.arg(k).arg(v);
            }
            inv.arg(REPLAYS).arg(replays);
            if let Some(by) = replayed_by {
                inv.arg(REPLAYED_BY).arg(by);
            }
            let appended: Option<String> = inv.invoke_async(&mut self.conn()).await?;
            if appended.is_some() {
                done.push(l.id.clone());
            }
        }
        Ok(done)
    }

    /// Deletes dead letters from `shelf`; returns how many existed.
    pub async fn dlq_purge(
        &self,
        group: &str,
        shelf: Shelf,
        ids: &[String],
    ) -> Result<u64, BusError> {
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(redis::cmd("XDEL")
            .arg(self.shelf(group, shelf))
            .arg(ids)
            .query_async(&mut self.conn())
            .await?)
    }

    /// Parks dead letters of `group`, each with why: they leave the DLQ for the parked
    /// stream (fields kept, provenance included). Returns the ids parked.
    pub async fn dlq_park(
        &self,
        group: &str,
        letters: &[(&StreamEntry, &str)],
        now_ms: i64,
    ) -> Result<Vec<String>, BusError> {
        let (dlq, parked) = (self.names().dlq(group), self.names().dlq_parked(group));
        let mut done = Vec::new();
        for (l, why) in letters {
            let mut inv = PARK.prepare_invoke();
            inv.key(&dlq).key(&parked).arg(&l.id);
            for (k, v) in l
                .fields
                .iter()
                .filter(|(k, _)| k != PARKED_REASON && k != PARKED_AT_MS)
            {
                inv.arg(k).arg(v.as_slice());
            }
            inv.arg(PARKED_REASON)
                .arg(truncate(why, MAX_ERROR_BYTES))
                .arg(PARKED_AT_MS)
                .arg(now_ms);
            let moved: i64 = inv.invoke_async(&mut self.conn()).await?;
            if moved == 1 {
                done.push(l.id.clone());
            }
        }
        Ok(done)
    }

    /// Letters parked in each of `groups`.
    pub async fn parked_depths(&self, groups: &[&str]) -> Result<Vec<(String, u64)>, BusError> {
        let mut out = Vec::new();
        for g in groups {
            out.push((g.to_string(), self.len(&self.names().dlq_parked(g)).await?));
        }
        Ok(out)
    }
}
