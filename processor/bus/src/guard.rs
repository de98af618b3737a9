//! The webhook's shared guards: a circuit breaker and a rate limit, each one Lua script, so
//! that every forwarder replica sees and changes the same state atomically. Time comes from
//! the Redis server (`TIME`), so clock skew between pods cannot bend either.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::client::Bus;
use crate::error::BusError;

/// The name of the webhook's circuit breaker and rate limit, in Redis and in metrics.
pub const WEBHOOK: &str = "webhook";

/// Circuit state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// Requests are held back until the open period ends.
    Open,
    /// One probe request is allowed; its outcome closes or re-opens the circuit.
    HalfOpen,
}

impl CircuitState {
    fn parse(s: &str) -> Self {
        match s {
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            _ => Self::Closed,
        }
    }

    /// The name used in Redis and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// 0 closed, 1 open, 2 half-open (the gauge of MUTT v2.5).
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// Whether a request may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// It may.
    pub allowed: bool,
    /// The state seen.
    pub state: CircuitState,
    /// When not allowed: how long until asking again makes sense.
    pub retry_in: Duration,
}

const NOW_MS: &str = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

static ALLOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
{NOW_MS}
local st = redis.call('HGET', KEYS[1], 'state') or 'closed'
if st == 'closed' then return {{1, 'closed', 0}} end
if st == 'open' then
  local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
  local wait = opened + tonumber(ARGV[1]) - now
  if wait > 0 then return {{0, 'open', wait}} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[2]), 'probe_owner', ARGV[3])
  return {{1, 'half_open', 0}}
end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if probe_until < now or redis.call('HGET', KEYS[1], 'probe_owner') == ARGV[3] then
  redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]), 'probe_owner', ARGV[3])
  return {{1, 'half_open', 0}}
end
return {{0, 'half_open', probe_until - now}}
"#
    ))
});

static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
{NOW_MS}
local st = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
  redis.call('HDEL', KEYS[1], 'opened_at', 'probe_until', 'probe_owner')
  return {{'closed', st, 0}}
end
local f = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if st == 'half_open' or (st == 'closed' and f >= tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now)
  redis.call('HDEL', KEYS[1], 'probe_until', 'probe_owner')
  return {{'open', st, f}}
end
return {{st, st, f}}
"#
    ))
});

/// GCRA with a cost: takes `n` tokens at once or tells how long to wait for them.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + n * interval
local allow_at = new_tat - burst * interval
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"#,
    )
});

/// A state change reported by [`Bus::circuit_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// State after the outcome.
    pub state: CircuitState,
    /// State before it.
    pub previous: CircuitState,
    /// Consecutive failures now.
    pub failures: u64,
}

impl Bus {
    fn breaker_key(&self, name: &str) -> String {
        format!("{}:breaker:{name}", self.names().prefix())
    }

    /// Asks the shared circuit `name` whether a request may go. When the open period is
    /// over, exactly one caller (`owner`) becomes the half-open probe, for at most
    /// `probe_lease`.
    pub async fn circuit_allow(
        &self,
        name: &str,
        open_for: Duration,
        probe_lease: Duration,
        owner: &str,
    ) -> Result<Admission, BusError> {
        let (allowed, state, wait): (i64, String, i64) = ALLOW
            .key(self.breaker_key(name))
            .arg(open_for.as_millis() as u64)
            .arg(probe_lease.as_millis() as u64)
            .arg(owner)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(Admission {
            allowed: allowed == 1,
            state: CircuitState::parse(&state),
            retry_in: Duration::from_millis(wait.max(0) as u64),
        })
    }

    /// The state of the shared circuit `name`, read only (an open circuit whose period is
    /// over reads as open until somebody probes it).
    pub async fn circuit_state(&self, name: &str) -> Result<CircuitState, BusError> {
        let s: Option<String> = redis::cmd("HGET")
            .arg(self.breaker_key(name))
            .arg("state")
            .query_async(&mut self.conn())
            .await?;
        Ok(s.as_deref()
            .map_or(CircuitState::Closed, CircuitState::parse))
    }

    /// Records the outcome of a request on the shared circuit `name`: a success closes it;
    /// `threshold` consecutive failures (or a failed probe) open it.
    pub async fn circuit_record(
        &self,
        name: &str,
        success: bool,
        threshold: u64,
    ) -> Result<Recorded, BusError> {
        let (state, previous, failures): (String, String, i64) = RECORD
            .key(self.breaker_key(name))
            .arg(if success { "1" } else { "0" })
            .arg(threshold)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(Recorded {
            state: CircuitState::parse(&state),
            previous: CircuitState::parse(&previous),
            failures: failures.max(0) as u64,
        })
    }

    /// Takes `n` tokens from the shared rate limit `name` (`per_second`, bursts of `burst`).
    /// Returns `Duration::ZERO` when taken, else how long to wait before asking again.
    pub async fn rate_take(
        &self,
        name: &str,
        per_second: u64,
        burst: u64,
        n: u64,
    ) -> Result<Duration, BusError> {
        if per_second == 0 {
            return Ok(Duration::ZERO);
        }
        let interval_us = (1_000_000 / per_second).max(1);
        let n = n.clamp(1, burst.max(1));
        let wait_us: i64 = TAKE
            .key(format!("{}:ratelimit:{name}", self.names().prefix()))
            .arg(interval_us)
            .arg(burst.max(1))
            .arg(n)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(Duration::from_micros(wait_us.max(0) as u64))
    }
}
