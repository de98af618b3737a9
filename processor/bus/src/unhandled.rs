//! Counting unhandled events per host and fingerprint, atomically across alerters.
//!
//! One script call per batch counts every fingerprint of the batch. A fingerprint that
//! reaches the threshold inside its window is marked "triggered" for one window with the
//! id of the event that reached it, and that event id is returned: the caller makes one
//! meta-alert whose identity derives from it. When the same batch is redelivered (the
//! alerter crashed before acknowledging), the script finds its own marker and returns the
//! same event id again, so the meta-alert is neither lost nor given a second identity.

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
  a = first + n
  local hit = ''
  local marker = redis.call('GET', triggered)
  if marker then
    for j = first, first + n - 1 do
      if ARGV[j] == marker then hit = marker end
    end
  else
    local c = redis.call('INCRBY', counter, n)
    if c == n then redis.call('PEXPIRE', counter, window) end
    if c >= threshold then
      local idx = first + threshold - (c - n) - 1
      if idx < first then idx = first end
      hit = ARGV[idx]
      redis.call('SET', triggered, hit, 'PX', window)
      redis.call('DEL', counter)
    end
  end
  out[#out + 1] = hit
end
return out
"#,
    )
});

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
            inv.arg(g.event_ids.len()).arg(&g.event_ids);
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
