//! MUTT v2's Redis lists, read once to upgrade (`mutt migrate --from-v2-queues`).
//!
//! MUTT v2 kept its work in lists under its own prefix (`mutt` by default): the queues
//! `<v2>:ingest_queue` (events) and `<v2>:alert_queue` (alerts), one in-flight list per
//! worker (`<v2>:processing:alerter:<pod>`, `<v2>:processing:moog:<pod>`), and dead
//! letters (`<v2>:dlq:alerter`, `<v2>:dlq:moog`, `<v2>:dlq:dead`). v2 pushed on the left
//! and popped on the right, so the right end is the oldest. Here those lists are found,
//! read oldest first, and each item is moved to where the caller says: appended to a
//! stream (or dead-lettered with provenance), then removed from its list, in one script, so
//! an item is never lost and, once moved, never moved again. (The script names the list and
//! the streams: on Redis Cluster they would have to share a slot; MUTT v2 never ran on one.)

use std::borrow::Cow;
use std::sync::LazyLock;

use mutt_core::event::truncate;

use crate::client::Bus;
use crate::dlq::{
    CONSUMER, DELIVERY_COUNT, FIRST_FAILURE_MS, GROUP, LAST_ERROR, LAST_FAILURE_MS, SOURCE_STREAM,
};
use crate::entry::{NewEntry, PAYLOAD, TRACEPARENT, TRACESTATE};
use crate::error::BusError;

/// The fields of an entry, in order, borrowed where they can be.
type Fields<'a> = Vec<(&'static str, Cow<'a, [u8]>)>;

/// Field of a dead letter moved from MUTT v2: the list it was in.
pub const V2_LIST: &str = "v2_list";

/// Longest error text stored with a dead letter (as for the letters of the workers).
const MAX_ERROR_BYTES: usize = 1024;

/// Where lists whose name is one of this deployment's streams are set aside (see
/// [`Bus::legacy_lists`]).
const SET_ASIDE: &str = "upgrading";

/// What a MUTT v2 list holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyQueue {
    /// Events: `<v2>:ingest_queue`, `<v2>:processing:alerter:<pod>`.
    Events,
    /// Alerts: `<v2>:alert_queue`, `<v2>:processing:moog:<pod>`.
    Alerts,
    /// Dead letters of `<v2>:dlq:<name>` (`alerter`, `moog`, `dead`, or a name v2 did not
    /// use).
    DeadLetters(String),
}

/// A MUTT v2 list that holds items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyList {
    /// Its key.
    pub key: String,
    /// What it holds.
    pub queue: LegacyQueue,
}

/// A dead letter made of a MUTT v2 item.
#[derive(Debug, Clone)]
pub struct LegacyLetter {
    /// The group whose DLQ takes it (`alerter`, `forwarder`).
    pub group: String,
    /// Where a replay sends it (`{p}:events`, `{p}:alerts`).
    pub source_stream: String,
    /// The encoded event or alert, or the item itself when it could not be read.
    pub payload: Vec<u8>,
    /// Attempts MUTT v2 made (its retry count), 0 when unknown.
    pub delivery_count: u64,
    /// Why it is a dead letter.
    pub last_error: String,
}

/// Where one item goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// An entry of `stream`.
    Stream {
        /// The stream (`{p}:events`, `{p}:alerts`).
        stream: String,
        /// The entry.
        entry: NewEntry,
    },
    /// A dead letter.
    DeadLetter(LegacyLetter),
}

/// One item of a list and where it goes.
#[derive(Debug, Clone)]
pub struct LegacyMove {
    /// The item, exactly as the list holds it.
    pub item: Vec<u8>,
    /// Where it goes.
    pub to: Destination,
}

/// Per item: if the list still holds it, append its entry, then remove it (one
/// occurrence, from the oldest end). A refused append stops the script before the removal,
/// so the item stays in its list; an item that is gone (taken by a MUTT v2 worker still
/// running) is not appended. Returns 1 or 0 per item.
static MOVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local out = {}
local a = 2
for i = 1, tonumber(ARGV[1]) do
  local item = ARGV[a]
  local k = tonumber(ARGV[a + 1])
  local n = tonumber(ARGV[a + 2])
  if redis.call('LPOS', KEYS[1], item, 'RANK', -1) then
    redis.call('XADD', KEYS[k], '*', unpack(ARGV, a + 3, a + 2 + n))
    redis.call('LREM', KEYS[1], -1, item)
    out[i] = 1
  else
    out[i] = 0
  end
  a = a + 3 + n
end
return out
",
    )
});

/// Sets a list aside under another name, or adds its items at the newest end of a list set
/// aside before (an interrupted run), keeping their order. Nothing happens unless KEYS[1] is
/// a list.
static SET_ASIDE_LIST: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('TYPE', KEYS[1]).ok ~= 'list' then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  return 1
end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #items, 1, -1 do
  redis.call('LPUSH', KEYS[2], items[i])
end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// `s` with the characters that `SCAN MATCH` reads as a pattern escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What the list named `rest` (its key without `<v2>:`) holds, if it is one of v2's.
fn classify(rest: &str) -> Option<LegacyQueue> {
    let rest = rest
        .strip_prefix(SET_ASIDE)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(rest);
    match rest {
        "ingest_queue" => Some(LegacyQueue::Events),
        "alert_queue" => Some(LegacyQueue::Alerts),
        _ => {
            if rest
                .strip_prefix("processing:alerter:")
                .is_some_and(|pod| !pod.is_empty())
            {
                Some(LegacyQueue::Events)
            } else if rest
                .strip_prefix("processing:moog:")
                .is_some_and(|pod| !pod.is_empty())
            {
                Some(LegacyQueue::Alerts)
            } else {
                rest.strip_prefix("dlq:")
                    .filter(|n| !n.is_empty())
                    .map(|n| LegacyQueue::DeadLetters(n.to_string()))
            }
        }
    }
}

impl Bus {
    /// Keys matching `pattern` of `kind` (a Redis type name), by `SCAN`.
    async fn scan_keys(&self, pattern: &str, kind: &str) -> Result<Vec<String>, BusError> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg(kind)
                .query_async(&mut self.conn())
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// The MUTT v2 workers under `v2_prefix` that are alive: their heartbeat keys
    /// (`<v2>:heartbeat:<role>:<pod>`, refreshed every 10 s with a 30 s expiry).
    pub async fn legacy_workers(&self, v2_prefix: &str) -> Result<Vec<String>, BusError> {
        self.scan_keys(&format!("{}:heartbeat:*", glob_escape(v2_prefix)), "string")
            .await
    }

    /// The MUTT v2 lists under `v2_prefix` that hold items, in the order they should be
    /// moved: in-flight events and the ingest queue, in-flight alerts and the alert queue,
    /// then dead letters. A list whose name is one of the streams of this deployment (the
    /// DLQ `mutt:dlq:alerter` when both use the prefix `mutt`) is first set aside as
    /// `<v2>:upgrading:<rest>`, so that the stream can be written.
    pub async fn legacy_lists(&self, v2_prefix: &str) -> Result<Vec<LegacyList>, BusError> {
        let ours = [
            self.names().events(),
            self.names().alerts(),
            self.names().dlq(crate::names::ALERTER_GROUP),
            self.names().dlq(crate::names::FORWARDER_GROUP),
        ];
        let p = glob_escape(v2_prefix);
        let mut keys = Vec::new();
        for pattern in [
            format!("{p}:ingest_queue"),
            format!("{p}:alert_queue"),
            format!("{p}:processing:*"),
            format!("{p}:dlq:*"),
            format!("{p}:{SET_ASIDE}:*"),
        ] {
            keys.extend(self.scan_keys(&pattern, "list").await?);
        }
        let mut lists = Vec::new();
        for key in keys {
            let Some(rest) = key
                .strip_prefix(v2_prefix)
                .and_then(|r| r.strip_prefix(':'))
            else {
                continue;
            };
            let Some(queue) = classify(rest) else {
                continue;
            };
            let key = if ours.contains(&key) {
                let aside = format!("{v2_prefix}:{SET_ASIDE}:{rest}");
                let _: i64 = SET_ASIDE_LIST
                    .key(&key)
                    .key(&aside)
                    .invoke_async(&mut self.conn())
                    .await?;
                tracing::info!(list = %key, set_aside = %aside, "a MUTT v2 list has the name of a stream: set aside");
                aside
            } else {
                key
            };
            if !lists.iter().any(|l: &LegacyList| l.key == key) {
                lists.push(LegacyList { key, queue });
            }
        }
        let rank = |l: &LegacyList| match (&l.queue, l.key.contains(":processing:")) {
            (LegacyQueue::Events, true) => 0,
            (LegacyQueue::Events, false) => 1,
            (LegacyQueue::Alerts, true) => 2,
            (LegacyQueue::Alerts, false) => 3,
            (LegacyQueue::DeadLetters(_), _) => 4,
        };
        lists.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.key.cmp(&b.key)));
        Ok(lists)
    }

    /// Items of a MUTT v2 list, oldest first: up to `count`, skipping the `skip` oldest.
    pub async fn legacy_oldest(
        &self,
        key: &str,
        skip: usize,
        count: usize,
    ) -> Result<Vec<Vec<u8>>, BusError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let end = -1 - i64::try_from(skip).unwrap_or(i64::MAX - 1);
        let start = end - i64::try_from(count).unwrap_or(i64::MAX / 2) + 1;
        let mut items: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(key)
            .arg(start)
            .arg(end)
            .query_async(&mut self.conn())
            .await?;
        items.reverse();
        Ok(items)
    }

    /// Items in a MUTT v2 list.
    pub async fn legacy_len(&self, key: &str) -> Result<u64, BusError> {
        Ok(redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut self.conn())
            .await?)
    }

    /// The stream an item goes to, and the fields of its entry there: a dead letter gets
    /// the provenance the workers' dead letters have, and the list it came from.
    fn entry_fields<'a>(
        &self,
        key: &str,
        to: &'a Destination,
        consumer: &str,
        now_ms: i64,
    ) -> (String, Fields<'a>) {
        match to {
            Destination::Stream { stream, entry } => {
                let mut fields: Fields<'a> = vec![(PAYLOAD, Cow::Borrowed(&entry.payload))];
                if let Some(tp) = &entry.trace.traceparent {
                    fields.push((TRACEPARENT, Cow::Borrowed(tp.as_bytes())));
                }
                if let Some(ts) = &entry.trace.tracestate {
                    fields.push((TRACESTATE, Cow::Borrowed(ts.as_bytes())));
                }
                (stream.clone(), fields)
            }
            Destination::DeadLetter(l) => {
                let now = now_ms.to_string().into_bytes();
                let error = truncate(&l.last_error, MAX_ERROR_BYTES);
                let fields: Fields<'a> = vec![
                    (PAYLOAD, Cow::Borrowed(&l.payload)),
                    (SOURCE_STREAM, Cow::Borrowed(l.source_stream.as_bytes())),
                    (GROUP, Cow::Borrowed(l.group.as_bytes())),
                    (CONSUMER, Cow::Owned(consumer.as_bytes().to_vec())),
                    (
                        DELIVERY_COUNT,
                        Cow::Owned(l.delivery_count.to_string().into_bytes()),
                    ),
                    (LAST_ERROR, Cow::Borrowed(error.as_bytes())),
                    (FIRST_FAILURE_MS, Cow::Owned(now.clone())),
                    (LAST_FAILURE_MS, Cow::Owned(now)),
                    (V2_LIST, Cow::Owned(key.as_bytes().to_vec())),
                ];
                (self.names().dlq(&l.group), fields)
            }
        }
    }

    /// Moves items of the MUTT v2 list `key`, each in one step: appended where it goes,
    /// then removed from the list (see the `MOVE` script). `consumer` is written as the
    /// mover of dead letters, `now_ms` as their failure time. Returns, per item, whether it
    /// moved (false: the list no longer held it).
    pub async fn legacy_move(
        &self,
        key: &str,
        moves: &[LegacyMove],
        consumer: &str,
        now_ms: i64,
    ) -> Result<Vec<bool>, BusError> {
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        let mut streams: Vec<String> = Vec::new();
        let mut args = Vec::with_capacity(moves.len());
        for m in moves {
            let (stream, fields) = self.entry_fields(key, &m.to, consumer, now_ms);
            // The stream's index in KEYS (1 is the list).
            let k = match streams.iter().position(|x| *x == stream) {
                Some(i) => i + 2,
                None => {
                    streams.push(stream);
                    streams.len() + 1
                }
            };
            args.push((k, fields));
        }
        let mut inv = MOVE.prepare_invoke();
        inv.key(key);
        for s in &streams {
            inv.key(s);
        }
        inv.arg(moves.len());
        for (m, (k, fields)) in moves.iter().zip(&args) {
            inv.arg(&m.item).arg(*k).arg(2 * fields.len());
            for (f, v) in fields {
                inv.arg(*f).arg(v.as_ref());
            }
        }
        let moved: Vec<i64> = inv.invoke_async(&mut self.conn()).await?;
        Ok(moved.into_iter().map(|n| n == 1).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_list_names() {
        assert_eq!(classify("ingest_queue"), Some(LegacyQueue::Events));
        assert_eq!(
            classify("processing:alerter:pod-1"),
            Some(LegacyQueue::Events)
        );
        assert_eq!(classify("alert_queue"), Some(LegacyQueue::Alerts));
        assert_eq!(classify("processing:moog:pod-2"), Some(LegacyQueue::Alerts));
        assert_eq!(
            classify("dlq:moog"),
            Some(LegacyQueue::DeadLetters("moog".into()))
        );
        assert_eq!(
            classify("upgrading:dlq:alerter"),
            Some(LegacyQueue::DeadLetters("alerter".into()))
        );
        assert_eq!(classify("processing:alerter:"), None);
        assert_eq!(classify("heartbeat:alerter:pod-1"), None);
        assert_eq!(classify("dlq:"), None);
        assert_eq!(classify("events"), None);
    }

    #[test]
    fn prefixes_are_matched_literally() {
        assert_eq!(glob_escape("mutt"), "mutt");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
