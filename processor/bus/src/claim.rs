//! Pending-entry reclamation: taking over entries that a crashed or stuck consumer holds,
//! keeping the entries we hold from being taken, and removing consumers that are gone.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use crate::client::Bus;
use crate::entry::{StreamEntry, parse_entries};
use crate::error::BusError;

/// One page of `XAUTOCLAIM`.
#[derive(Debug, Default)]
pub struct ClaimPage {
    /// Where the next page starts; `0-0` when the scan is complete.
    pub next: String,
    /// Entries now owned by the caller.
    pub entries: Vec<StreamEntry>,
    /// Ids that were pending but no longer exist in the stream (trimmed or deleted);
    /// Redis has removed them from the pending list.
    pub deleted: Vec<String>,
}

/// Renews our ownership of entries: resets their idle time, but only for entries we still
/// own. An entry another consumer has reclaimed meanwhile is reported, not taken back.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local lost = {}
for i, id in ipairs(ARGV) do
  if i > 1 then
    local p = redis.call('XPENDING', KEYS[1], KEYS[2], id, id, 1)
    if p[1] and p[1][2] == ARGV[1] then
      redis.call('XCLAIM', KEYS[1], KEYS[2], ARGV[1], 0, id, 'JUSTID')
    else
      lost[#lost + 1] = id
    end
  end
end
return lost
"#,
    )
});

/// Removes consumers that hold nothing and have been idle longer than ARGV[1] ms, except
/// ARGV[2] (the caller). The check and the removal are one atomic step: a consumer that
/// read an entry in between would otherwise lose it with `XGROUP DELCONSUMER`.
static REMOVE_IDLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local removed = {}
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], KEYS[2])
for _, c in ipairs(consumers) do
  local name, pending, idle
  for j = 1, #c, 2 do
    if c[j] == 'name' then name = c[j + 1]
    elseif c[j] == 'pending' then pending = c[j + 1]
    elseif c[j] == 'idle' then idle = c[j + 1] end
  end
  if name ~= ARGV[2] and pending == 0 and idle > tonumber(ARGV[1]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], KEYS[2], name)
    removed[#removed + 1] = name
  end
end
return removed
"#,
    )
});

impl Bus {
    /// Claims up to `count` entries of `group` idle for at least `min_idle`, scanning from
    /// `start` (`0-0` for the beginning).
    pub async fn claim_idle(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        start: &str,
        count: usize,
    ) -> Result<ClaimPage, BusError> {
        let v: Value = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(start)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn())
            .await?;
        let Value::Array(mut parts) = v else {
            return Err(BusError::Protocol(format!("XAUTOCLAIM reply {v:?}")));
        };
        if parts.len() < 2 {
            return Err(BusError::Protocol("short XAUTOCLAIM reply".into()));
        }
        let deleted = if parts.len() > 2 {
            match parts.remove(2) {
                Value::Array(ids) => ids
                    .into_iter()
                    .filter_map(|i| match i {
                        Value::BulkString(b) => String::from_utf8(b).ok(),
                        Value::SimpleString(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let entries = parse_entries(parts.remove(1))?;
        let next = match parts.remove(0) {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::SimpleString(s) => s,
            other => return Err(BusError::Protocol(format!("XAUTOCLAIM cursor {other:?}"))),
        };
        Ok(ClaimPage {
            next,
            entries,
            deleted,
        })
    }

    /// How many times each entry has been delivered to `group` (ids not pending are absent).
    pub async fn delivery_counts(
        &self,
        stream: &str,
        group: &str,
        ids: &[String],
    ) -> Result<HashMap<String, u64>, BusError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(stream)
                .arg(group)
                .arg(id)
                .arg(id)
                .arg(1);
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn()).await?;
        let mut out = HashMap::new();
        for r in replies {
            let Value::Array(rows) = r else { continue };
            for row in rows {
                if let Value::Array(f) = row
                    && let (Some(Value::BulkString(id)), Some(Value::Int(n))) =
                        (f.first(), f.get(3))
                {
                    out.insert(String::from_utf8_lossy(id).into_owned(), *n as u64);
                }
            }
        }
        Ok(out)
    }

    /// Resets the idle time of entries `consumer` holds, so that nobody reclaims work in
    /// progress. Returns the ids it no longer owns (another consumer reclaimed them).
    pub async fn renew(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<Vec<String>, BusError> {
        let mut lost = Vec::new();
        // Bounded chunks keep each script call short.
        for chunk in ids.chunks(500) {
            let mut inv = RENEW.prepare_invoke();
            inv.key(stream).key(group).arg(consumer);
            for id in chunk {
                inv.arg(id);
            }
            let l: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
            lost.extend(l);
        }
        Ok(lost)
    }

    /// Removes the consumers of `group` that hold nothing and have been idle longer than
    /// `min_idle`, except `keep`. Returns their names.
    pub async fn remove_idle_consumers(
        &self,
        stream: &str,
        group: &str,
        min_idle: Duration,
        keep: &str,
    ) -> Result<Vec<String>, BusError> {
        let mut inv = REMOVE_IDLE.prepare_invoke();
        inv.key(stream)
            .key(group)
            .arg(min_idle.as_millis() as u64)
            .arg(keep);
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }
}
