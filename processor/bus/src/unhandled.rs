//! Counting unhandled events per host and fingerprint, atomically across alerters.
//!
//! One script call per batch counts every fingerprint of the batch. Each event counts once
//! per window, whoever processes it and however often: the counter is a set of the events'
//! ids (hashed to 63-bit integers, so that Redis keeps it as a compact intset), so a batch
//! redelivered after a crash, or reclaimed by another alerter, adds nothing it added
//! before. A fingerprint whose set reaches the threshold inside its window is marked
//! "triggered" for one window with the id of the event that reached it, and that event id
//! is returned: the caller makes one meta-alert whose identity derives from it. When the
//! same batch is redelivered, the script finds its own marker and returns the same event
//! id again, so the meta-alert is neither lost nor given a second identity.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::client::Bus;
use crate::error::BusError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local threshold = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local out = {}
local a = 3
for i = 1, #KEYS, 2 do
  local counter, triggered = KEYS[i], KEYS[i + 1]
  local n = tonumber(ARGV[a])
  local first = a + 1
  local last = first + 2 * n - 1
  a = last + 1
  local hit = ''
  local marker = redis.call('GET', triggered)
  if marker then
    for j = first, last, 2 do
      if ARGV[j] == marker then hit = marker end
    end
  else
    local before = redis.call('SCARD', counter)
    if before + n < threshold then
      -- The threshold cannot be reached in this batch: add every id at once (in slices
      -- that fit Lua's stack).
      local members = {}
      for j = first, last, 2 do
        members[#members + 1] = ARGV[j + 1]
        if #members == 1000 or j + 1 == last then
          redis.call('SADD', counter, unpack(members))
          members = {}
        end
      end
    else
      -- It may be: add one by one to find the event that reaches it.
      for j = first, last, 2 do
        if redis.call('SADD', counter, ARGV[j + 1]) == 1
          and redis.call('SCARD', counter) >= threshold then
          hit = ARGV[j]
          break
        end
      end
    end
    if hit ~= '' then
      redis.call('SET', triggered, hit, 'PX', window)
      redis.call('DEL', counter)
    elseif before == 0 then
      redis.call('PEXPIRE', counter, window)
    end
  end
  out[#out + 1] = hit
end
return out
"#,
    )
});

/// The set member of an event id: a 63-bit FNV-1a hash, as a decimal integer. Collisions
/// are one in 2⁶³ per pair; members of this form keep a set of up to 512 of them in
/// Redis's intset encoding, 8 bytes each.
fn member(event_id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in event_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 1) as i64
}

/// The unhandled events of one host and fingerprint within a batch (borrowed from the
/// batch's events: this runs for most events, and copies showed in profiles).
#[derive(Debug, Clone)]
pub struct FingerprintCount<'a> {
    /// The event's host, lower case.
    pub hostname: std::borrow::Cow<'a, str>,
    /// The message fingerprint.
    pub fingerprint: String,
    /// Ids of the events, in stream order.
    pub event_ids: Vec<&'a str>,
}

impl Bus {
    /// Counts a batch of unhandled events. Returns, per input group, the id of the event
    /// that reached `threshold`, if one did.
    pub async fn count_unhandled(
        &self,
        groups: &[FingerprintCount<'_>],
        threshold: u64,
        window: Duration,
    ) -> Result<Vec<Option<String>>, BusError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = SCRIPT.prepare_invoke();
        inv.arg(threshold).arg(window.as_millis().max(1) as u64);
        for g in groups {
            let (counter, triggered) = self.names().unhandled(&g.hostname, &g.fingerprint);
            inv.key(counter).key(triggered);
            inv.arg(g.event_ids.len());
            for id in &g.event_ids {
                inv.arg(*id).arg(member(id));
            }
        }
        let out: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
        if out.len() != groups.len() {
            return Err(BusError::Protocol(format!(
                "unhandled script returned {} results for {} groups",
                out.len(),
                groups.len()
            )));
        }
        Ok(out
            .into_iter()
            .map(|s| (!s.is_empty()).then_some(s))
            .collect())
    }
}

/// Where one host's fingerprint stands, read without changing anything (`rules test`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnhandledCount {
    /// Unhandled events counted in the current window (0 when none, or just after a
    /// meta-alert: the counter starts again).
    pub count: u64,
    /// Milliseconds until the current window ends (None when nothing is counted).
    pub window_left_ms: Option<u64>,
    /// The event id that reached the threshold, while the fingerprint is silent after its
    /// meta-alert.
    pub silenced_by: Option<String>,
    /// Milliseconds the silence still lasts.
    pub silence_left_ms: Option<u64>,
}

impl Bus {
    /// The unhandled counter of `hostname` and `fingerprint` as the alerters see it, read
    /// only (no script, no write).
    pub async fn unhandled_count(
        &self,
        hostname: &str,
        fingerprint: &str,
    ) -> Result<UnhandledCount, BusError> {
        let (counter, triggered) = self.names().unhandled(hostname, fingerprint);
        let (count, counter_ttl, marker, marker_ttl): (u64, i64, Option<String>, i64) =
            redis::pipe()
                .cmd("SCARD")
                .arg(&counter)
                .cmd("PTTL")
                .arg(&counter)
                .cmd("GET")
                .arg(&triggered)
                .cmd("PTTL")
                .arg(&triggered)
                .query_async(&mut self.conn())
                .await?;
        // PTTL answers -2 for a missing key and -1 for one without expiry.
        let left = |ttl: i64| u64::try_from(ttl).ok();
        Ok(UnhandledCount {
            count,
            window_left_ms: if count > 0 { left(counter_ttl) } else { None },
            silence_left_ms: marker.as_ref().and_then(|_| left(marker_ttl)),
            silenced_by: marker,
        })
    }
}
