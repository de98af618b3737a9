//! The Redis connection and the stream verbs.
//!
//! [`Bus`] holds one multiplexed, self-reconnecting connection shared by every task of a
//! process for the short commands (XADD, XACK, scripts). Blocking reads must not share it:
//! a `XREADGROUP … BLOCK` would stall every command queued behind it. Each consumer gets a
//! [`GroupReader`] with a connection of its own, whose response timeout exceeds the block.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Value};

use crate::auth::RedisAuth;
use crate::entry::{NewEntry, StreamEntry, parse_read_reply};
use crate::error::BusError;
use crate::link::{Link, Sentinels};
use crate::names::Names;

/// Responses slower than this are failures (the connection is then re-established). Large
/// pipelines under load take far less; the default of redis-rs (500 ms) is too tight.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the Redis of one deployment.
#[derive(Clone)]
pub struct Bus {
    link: Link,
    names: Names,
    auth: Option<RedisAuth>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// How long sent data may stay unacknowledged, or an idle connection unanswered to
/// keepalive probes, before the kernel declares the connection dead.
const DEAD_PEER: Duration = Duration::from_secs(15);

/// A connection whose packets vanish (a network cut, a container moved to another
/// address) sends no RST: without these options it looks alive for the ~15 minutes of
/// the kernel's retransmissions, every command on it times out, and the connection
/// manager never reconnects, because a timeout is not a dropped connection. With them the
/// kernel drops it after [`DEAD_PEER`], and the manager reconnects at the next command.
fn dead_peer_detection(tcp: redis::io::tcp::TcpSettings) -> redis::io::tcp::TcpSettings {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(2))
        .with_retries(3);
    tcp.set_keepalive(keepalive).set_user_timeout(DEAD_PEER)
}

fn manager_config(response_timeout: Duration, auth: Option<&RedisAuth>) -> ConnectionManagerConfig {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    match auth {
        Some(a) => config.set_credentials_provider(a.clone()),
        None => config,
    }
}

impl Bus {
    /// Connects to `url` (redis:// or rediss://) for the deployment named by `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        Self::connect_with_auth(url, prefix, None).await
    }

    /// Connects with credentials that may change while connected (see [`crate::auth`]);
    /// they replace any user and password in `url`.
    pub async fn connect_with_auth(
        url: &str,
        prefix: &str,
        auth: Option<RedisAuth>,
    ) -> Result<Self, BusError> {
        Self::connect_to(url, None, prefix, auth).await
    }

    /// Connects to the master that `sentinels` name, when given, and follows it across
    /// failovers (see [`crate::link`]); `url` then gives only what the sentinels do not
    /// report: TLS (`rediss://`), user, password and database. Without `sentinels`, as
    /// [`Bus::connect_with_auth`].
    pub async fn connect_to(
        url: &str,
        sentinels: Option<&Sentinels>,
        prefix: &str,
        auth: Option<RedisAuth>,
    ) -> Result<Self, BusError> {
        // Nagle's algorithm with the server's delayed ACKs adds 40 ms to a request written
        // in more than one segment; commands here are latency-bound.
        let info = redis::IntoConnectionInfo::into_connection_info(url)?;
        let tcp = dead_peer_detection(info.tcp_settings().clone().set_nodelay(true));
        let info = info.set_tcp_settings(tcp);
        let config = manager_config(RESPONSE_TIMEOUT, auth.as_ref());
        let link = match sentinels {
            Some(s) => Link::via_sentinels(s, &info, auth.clone(), config).await?,
            None => Link::fixed(Client::open(info)?, config).await?,
        };
        Ok(Self {
            link,
            names: Names::new(prefix),
            auth,
        })
    }

    /// The names of this deployment.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// A client for a connection of its own that cannot follow a credentials provider
    /// (pub/sub): it authenticates with the password current now.
    pub(crate) fn client_now(&self) -> Result<Client, BusError> {
        let client = self.link.client();
        let Some(auth) = &self.auth else {
            return Ok(client);
        };
        let info = client.get_connection_info().clone();
        let redis = info
            .redis_settings()
            .clone()
            .set_username(auth.username())
            .set_password(auth.current().expose());
        Ok(Client::open(info.set_redis_settings(redis))?)
    }

    /// The ACL user this process authenticates as, when it uses credentials.
    pub fn auth(&self) -> Option<&RedisAuth> {
        self.auth.as_ref()
    }

    /// A `Bus` with a connection of its own (same server, names and credentials), for
    /// writes that are followed by `WAIT`: `WAIT` blocks its connection, and it counts the
    /// writes made on that connection only.
    pub async fn with_own_connection(&self) -> Result<Self, BusError> {
        let link = self
            .link
            .another(manager_config(RESPONSE_TIMEOUT, self.auth.as_ref()))
            .await?;
        Ok(Self {
            link,
            names: self.names.clone(),
            auth: self.auth.clone(),
        })
    }

    /// Waits at most `timeout` until `replicas` replicas hold every write the master
    /// acknowledged so far, whichever connection made it; returns how many do (Redis
    /// `WAIT`).
    ///
    /// `WAIT` counts the writes of its own connection only, and a connection replaced in
    /// between (a reconnect, a failover) has made none: a bare `WAIT` would then answer
    /// at once. So a marker write goes first, in the same pipeline and so on the same
    /// connection; it follows every earlier write in the master's replication stream, and
    /// a replica that holds it holds them.
    pub async fn wait_replicas(&self, replicas: usize, timeout: Duration) -> Result<u64, BusError> {
        let millis = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let (n,): (u64,) = redis::pipe()
            .cmd("INCR")
            .arg(self.names.replication_mark())
            .ignore()
            .cmd("WAIT")
            .arg(replicas)
            .arg(millis)
            .query_async(&mut self.conn())
            .await?;
        Ok(n)
    }

    /// The generation of the master this process writes to: it grows at each failover
    /// followed (always 0 without Sentinel). A write made under one generation is not
    /// confirmed by a [`Bus::wait_replicas`] under another: that one asks the new master.
    pub fn master_generation(&self) -> u64 {
        self.link.generation()
    }

    /// A handle on the shared connection, for the modules of this crate.
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.link.conn()
    }

    /// Resolves once the master moved to another server since `generation` (a Sentinel
    /// failover); never with a fixed address.
    pub(crate) async fn master_moved_since(&self, generation: u64) {
        self.link.moved_since(generation).await
    }

    /// Round trip to the server (readiness).
    pub async fn ping(&self) -> Result<(), BusError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Creates `group` on `stream` (and the stream) if missing. The group starts at `0`, so
    /// that entries written before any consumer existed are read, not skipped.
    pub async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BusError> {
        let r: Result<Value, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn())
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends entries to `stream` in one pipeline; returns their ids in order.
    pub async fn append(
        &self,
        stream: &str,
        entries: &[NewEntry],
    ) -> Result<Vec<String>, BusError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for e in entries {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(stream).arg("*");
            e.write_fields(&mut cmd);
            pipe.add_command(cmd);
        }
        match pipe.query_async(&mut self.conn()).await {
            Ok(ids) => Ok(ids),
            // The shared connection reconnects on its own, but the command that found it
            // dropped (a server restart, a killed client) fails. One more attempt: if the
            // first one was applied after all, the entries are there twice with the same
            // event ids, which the audit and the webhook's external_id absorb, whereas
            // failing makes the client resend the events under new ids.
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                tracing::debug!(error = %e, "append: connection dropped; retrying once");
                Ok(pipe.query_async(&mut self.conn()).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Acknowledges `ids` of `group` on `stream` and forgets their recorded failures;
    /// returns how many were pending.
    pub async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<u64, BusError> {
        if ids.is_empty() {
            return Ok(0);
        }
        // Failures are cleared whoever records them: an entry that failed on one replica
        // and was delivered by another must not stay in the registry.
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(stream)
            .arg(group)
            .arg(ids)
            .cmd("HDEL")
            .arg(self.names.failures(group))
            .arg(ids)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(n)
    }

    /// Appends `entries` to `to`, then acknowledges `ids` of `group` on `from` (forgetting
    /// their recorded failures), in one script: the acknowledgement happens only if every
    /// append did, so a crash or a refused append can neither lose the new entries nor
    /// duplicate them on redelivery.
    pub async fn ack_and_append(
        &self,
        from: &str,
        group: &str,
        ids: &[String],
        to: &str,
        entries: &[NewEntry],
    ) -> Result<(), BusError> {
        if entries.is_empty() {
            return self.ack(from, group, ids).await.map(|_| ());
        }
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            crate::scripts::script(
                r"
local nids = tonumber(ARGV[2])
local a = 3 + nids
append_entries(KEYS[2], tonumber(ARGV[a]), a + 1)
chunked('XACK', KEYS[1], ARGV[1], 3, 2 + nids)
if redis.call('EXISTS', KEYS[3]) == 1 then
  chunked('HDEL', KEYS[3], nil, 3, 2 + nids)
end
return nids
",
            )
        });
        let mut inv = SCRIPT.prepare_invoke();
        inv.key(from)
            .key(to)
            .key(self.names.failures(group))
            .arg(group)
            .arg(ids.len())
            .arg(ids)
            .arg(entries.len());
        for e in entries {
            e.push_args(&mut inv);
        }
        let _: i64 = inv.invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Appends `entries` to `stream` unless a request with the same `request` key was
    /// appended within `window`: then nothing is appended and `None` is returned (the
    /// client resent a request whose answer it did not get). Checking, appending and
    /// remembering the key are one script, so a resend can never append twice.
    pub async fn append_once(
        &self,
        stream: &str,
        request: &str,
        window: Duration,
        entries: &[NewEntry],
    ) -> Result<Option<Vec<String>>, BusError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            crate::scripts::script(
                r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return false end
local ids = append_entries(KEYS[1], tonumber(ARGV[3]), 4)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return ids
",
            )
        });
        let mut inv = SCRIPT.prepare_invoke();
        inv.key(stream)
            .key(self.names.idempotency())
            .arg(request)
            .arg(window.as_millis().max(1) as u64)
            .arg(entries.len());
        for e in entries {
            e.push_args(&mut inv);
        }
        match inv.invoke_async(&mut self.conn()).await {
            Ok(ids) => Ok(ids),
            // As in `append`; here a second attempt is safe whatever the first did.
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                tracing::debug!(error = %e, "append once: connection dropped; retrying once");
                Ok(inv.invoke_async(&mut self.conn()).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads entries by id (ids no longer in the stream are skipped).
    pub async fn entries_by_id<'a>(
        &self,
        stream: &str,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<Vec<StreamEntry>, BusError> {
        let mut pipe = redis::pipe();
        let mut n = 0;
        for id in ids {
            pipe.cmd("XRANGE").arg(stream).arg(id).arg(id);
            n += 1;
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn()).await?;
        let mut out = Vec::new();
        for r in replies {
            out.extend(crate::entry::parse_entries(r)?);
        }
        Ok(out)
    }

    /// Takes the lock `name` for `ttl` if nobody holds it (periodic jobs that one replica
    /// at a time should run). Returns whether it was taken.
    pub async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, BusError> {
        let r: Option<String> = redis::cmd("SET")
            .arg(format!("{}:lock:{name}", self.names.prefix()))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.conn())
            .await?;
        Ok(r.is_some())
    }

    /// Releases a lock taken with [`Bus::try_lock`], if `owner` still holds it.
    pub async fn unlock(&self, name: &str, owner: &str) -> Result<(), BusError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 0",
            )
        });
        let _: i64 = SCRIPT
            .key(format!("{}:lock:{name}", self.names.prefix()))
            .arg(owner)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Number of entries in a stream.
    pub async fn len(&self, stream: &str) -> Result<u64, BusError> {
        Ok(redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut self.conn())
            .await?)
    }

    /// A reader for `consumer` in `group` on `stream`, with its own connection.
    pub async fn reader(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        block: Duration,
    ) -> Result<GroupReader, BusError> {
        let link = self
            .link
            .another(manager_config(block + RESPONSE_TIMEOUT, self.auth.as_ref()))
            .await?;
        Ok(GroupReader {
            link,
            stream: stream.to_string(),
            group: group.to_string(),
            consumer: consumer.to_string(),
            block,
            backlog: Some("0".into()),
        })
    }
}

/// Reads one consumer's entries of one group. It first re-reads what this consumer already
/// holds (its pending entries, e.g. after a restart under the same name), then new entries.
pub struct GroupReader {
    link: Link,
    stream: String,
    group: String,
    consumer: String,
    block: Duration,
    /// While re-reading our own pending entries: the id to read after. `None` once the
    /// backlog is done and new entries (`>`) are read.
    backlog: Option<String>,
}

impl std::fmt::Debug for GroupReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupReader")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl GroupReader {
    /// The stream read.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The group read.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The consumer name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Reads up to `count` entries, waiting up to the block time for new ones. An empty
    /// result means nothing arrived in time.
    pub async fn read(&mut self, count: usize) -> Result<Vec<StreamEntry>, BusError> {
        // The backlog is read with a cursor: reading `0` again would return the entries
        // already handed out but not yet acknowledged, a second time.
        let id = self.backlog.as_deref().unwrap_or(">");
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if self.backlog.is_none() {
            cmd.arg("BLOCK").arg(self.block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(id);
        let reply: Value = match cmd.query_async(&mut self.link.conn()).await {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOGROUP") => {
                return Err(BusError::Protocol(format!(
                    "group {} on {} does not exist (was the stream deleted?)",
                    self.group, self.stream
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let entries = parse_read_reply(reply)?;
        if self.backlog.is_some() {
            self.backlog = entries.last().map(|e| e.id.clone());
        }
        Ok(entries)
    }

    /// Re-reads this consumer's pending entries from the start on the next calls (after a
    /// failure left entries unacknowledged that must be retried now rather than at
    /// reclaim time).
    pub fn rewind(&mut self) {
        self.backlog = Some("0".into());
    }
}
