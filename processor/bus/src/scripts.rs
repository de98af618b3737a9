//! Lua shared by the scripts that must be all-or-nothing with respect to acknowledgement.
//!
//! `MULTI`/`EXEC` is not enough there: when one command of a transaction fails at run time
//! (an `XADD` refused for memory or a wrong type), Redis still runs the others, so the
//! `XACK` of an entry whose alert or dead letter was never written would commit, and the
//! entry would be lost. A script stops at the first error instead, so every script here
//! writes first and acknowledges last: a failed write leaves the entry pending.

/// `append_entries(stream, count, a)`: appends `count` entries encoded in `ARGV` from
/// index `a` (each: the number `n` of field and value arguments, then those `n`) to
/// `stream`; returns their ids and the index after them. `chunked(cmd, key, extra, a, b)`:
/// calls `cmd key [extra] ARGV[a..b]` in slices that fit Lua's stack.
pub(crate) const HELPERS: &str = r"
local function append_entries(stream, count, a)
  local ids = {}
  for i = 1, count do
    local n = tonumber(ARGV[a])
    ids[i] = redis.call('XADD', stream, '*', unpack(ARGV, a + 1, a + n))
    a = a + n + 1
  end
  return ids, a
end
local function chunked(cmd, key, extra, a, b)
  while a <= b do
    local e = math.min(b, a + 999)
    if extra then
      redis.call(cmd, key, extra, unpack(ARGV, a, e))
    else
      redis.call(cmd, key, unpack(ARGV, a, e))
    end
    a = e + 1
  end
end
";

/// A script made of the helpers and `body`.
pub(crate) fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{HELPERS}\n{body}"))
}
