//! Where the Redis master is, and connections that follow it across a failover.
//!
//! The master is either one fixed address (`MUTT_REDIS_URL`) or the one Redis Sentinel
//! names (`MUTT_REDIS_SENTINELS`, `MUTT_REDIS_MASTER_NAME`). redis-rs's
//! `ConnectionManager` reconnects to the address it was made with, so after a failover it
//! would keep reconnecting to the dead master (or to the old master come back as a
//! read-only replica). Here a follower task asks the sentinels where the master is, and
//! when the answer changes it publishes a new generation of the master; every `Link`
//! replaces its connection the next time it is used, so connections, blocking readers and
//! the pub/sub listener all end up on the new master without anyone restarting.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mutt_telemetry::metrics;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Client, ConnectionInfo};
use tokio::sync::watch;

use crate::auth::RedisAuth;
use crate::error::BusError;

/// How often the follower asks the sentinels where the master is. A failover itself takes
/// the sentinels' `down-after-milliseconds` and an election, seconds; this adds at most
/// one interval to it.
const POLL: Duration = Duration::from_secs(1);

/// The Sentinel deployment that names the master.
#[derive(Clone, PartialEq, Eq)]
pub struct Sentinels {
    /// The sentinels' URLs (`redis://host:port`, `rediss://…`, possibly with the
    /// sentinels' own password); up to three are asked at once, the first good answer
    /// wins.
    pub addresses: Vec<String>,
    /// The name the sentinels monitor the master under.
    pub master_name: String,
}

/// Without the passwords an address may carry.
impl std::fmt::Debug for Sentinels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addresses: Vec<String> = self
            .addresses
            .iter()
            .map(|a| mutt_core::url::redact(a))
            .collect();
        f.debug_struct("Sentinels")
            .field("addresses", &addresses)
            .field("master_name", &self.master_name)
            .finish()
    }
}

/// The master as last known, numbered so that a connection can tell it is out of date.
struct Master {
    generation: u64,
    client: Client,
}

/// One connection (a multiplexed, self-reconnecting manager) to the current master.
#[derive(Clone)]
pub(crate) struct Link {
    master: watch::Receiver<Arc<Master>>,
    slot: Arc<Mutex<Slot>>,
    config: ConnectionManagerConfig,
}

struct Slot {
    generation: u64,
    conn: ConnectionManager,
}

impl Link {
    /// A connection to the fixed address of `client`, made now (so that a wrong address
    /// fails at start).
    pub(crate) async fn fixed(
        client: Client,
        config: ConnectionManagerConfig,
    ) -> Result<Self, BusError> {
        // Nobody ever sends on a fixed master: the channel stays at generation 0.
        let (_tx, rx) = watch::channel(Arc::new(Master {
            generation: 0,
            client,
        }));
        Self::connect(rx, config).await
    }

    /// A connection to the master that `sentinels` name, followed from now on. `node`
    /// carries what the master's address does not: TLS, credentials, database, socket
    /// options (from `MUTT_REDIS_URL`).
    pub(crate) async fn via_sentinels(
        sentinels: &Sentinels,
        node_info: &ConnectionInfo,
        auth: Option<RedisAuth>,
        config: ConnectionManagerConfig,
    ) -> Result<Self, BusError> {
        if sentinels.addresses.is_empty() {
            return Err(BusError::Protocol("no Sentinel address".into()));
        }
        let mut sentinel = Sentinel::build(sentinels.addresses.clone())?;
        let node = Node {
            info: node_info.clone(),
            auth,
        };
        let client = sentinel
            .async_master_for(&sentinels.master_name, Some(&node.now()))
            .await?;
        tracing::info!(
            master = %client.get_connection_info().addr(),
            name = %sentinels.master_name,
            "Redis master found through Sentinel"
        );
        let (tx, rx) = watch::channel(Arc::new(Master {
            generation: 0,
            client,
        }));
        let asker = Asker::new(&sentinels.addresses)?;
        tokio::spawn(follow(
            sentinel,
            asker,
            sentinels.master_name.clone(),
            node,
            tx,
        ));
        Self::connect(rx, config).await
    }

    async fn connect(
        master: watch::Receiver<Arc<Master>>,
        config: ConnectionManagerConfig,
    ) -> Result<Self, BusError> {
        let (generation, client) = {
            let m = master.borrow();
            (m.generation, m.client.clone())
        };
        let conn = ConnectionManager::new_with_config(client, config.clone()).await?;
        Ok(Self {
            master,
            slot: Arc::new(Mutex::new(Slot { generation, conn })),
            config,
        })
    }

    /// Another connection of its own to the same master, followed the same way.
    pub(crate) async fn another(&self, config: ConnectionManagerConfig) -> Result<Self, BusError> {
        Self::connect(self.master.clone(), config).await
    }

    /// A handle on this connection, on the current master: after a failover the first
    /// call replaces the connection (which then connects at its first command).
    pub(crate) fn conn(&self) -> ConnectionManager {
        let master = self.master.borrow().clone();
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.generation != master.generation {
            match ConnectionManager::new_lazy_with_config(
                master.client.clone(),
                self.config.clone(),
            ) {
                Ok(conn) => {
                    *slot = Slot {
                        generation: master.generation,
                        conn,
                    }
                }
                // Only a configuration redis-rs refuses fails here, and ours is fixed:
                // the old connection stays, and fails on its own.
                Err(e) => tracing::error!(error = %e, "cannot replace the Redis connection"),
            }
        }
        slot.conn.clone()
    }

    /// A client for the current master (for a connection that cannot be a manager:
    /// pub/sub).
    pub(crate) fn client(&self) -> Client {
        self.master.borrow().client.clone()
    }

    /// The generation of the master as known now (0 until the first failover).
    pub(crate) fn generation(&self) -> u64 {
        self.master.borrow().generation
    }

    /// Resolves once the master is of another generation than `generation` (at once if it
    /// already is; never, for a fixed address).
    pub(crate) async fn moved_since(&self, generation: u64) {
        let mut master = self.master.clone();
        if master
            .wait_for(|m| m.generation != generation)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }
}

/// How to talk to whichever server the sentinels name: what `MUTT_REDIS_URL` says besides
/// its address (the sentinels report only a host and a port), with the password of now.
struct Node {
    info: ConnectionInfo,
    auth: Option<RedisAuth>,
}

impl Node {
    /// The connection settings for a lookup made now: a rotated password is the one
    /// the lookup's check of the master must use.
    fn now(&self) -> SentinelNodeConnectionInfo {
        let redis = match &self.auth {
            Some(a) => self
                .info
                .redis_settings()
                .clone()
                .set_username(a.username())
                .set_password(a.current().expose()),
            None => self.info.redis_settings().clone(),
        };
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(redis)
            .set_tcp_settings(self.info.tcp_settings().clone());
        match self.info.addr() {
            redis::ConnectionAddr::TcpTls { insecure, .. } => node.set_tls_mode(if *insecure {
                redis::TlsMode::Insecure
            } else {
                redis::TlsMode::Secure
            }),
            _ => node,
        }
    }
}

/// The sentinels asked where the master is, on connections kept open: the cheap
/// question of every poll.
struct Asker {
    sentinels: Vec<Client>,
    conns: Vec<Option<MultiplexedConnection>>,
}

impl Asker {
    fn new(addresses: &[String]) -> Result<Self, BusError> {
        let sentinels = addresses
            .iter()
            .map(|a| Client::open(a.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let conns = sentinels.iter().map(|_| None).collect();
        Ok(Self { sentinels, conns })
    }

    /// The master's host and port as the first sentinel that answers reports them.
    async fn reported(&mut self, name: &str) -> Option<(String, u16)> {
        for (client, slot) in self.sentinels.iter().zip(self.conns.iter_mut()) {
            let mut conn = match slot {
                Some(c) => c.clone(),
                None => match tokio::time::timeout(POLL, client.get_multiplexed_async_connection())
                    .await
                {
                    Ok(Ok(c)) => slot.insert(c).clone(),
                    _ => continue,
                },
            };
            let mut ask = redis::cmd("SENTINEL");
            ask.arg("get-master-addr-by-name").arg(name);
            let asked = ask.query_async::<Option<(String, u16)>>(&mut conn);
            match tokio::time::timeout(POLL, asked).await {
                Ok(Ok(Some(addr))) => return Some(addr),
                Ok(Ok(None)) => {}
                _ => *slot = None,
            }
        }
        None
    }
}

/// Host and port of a TCP address.
fn host_port(addr: &redis::ConnectionAddr) -> Option<(&str, u16)> {
    match addr {
        redis::ConnectionAddr::Tcp(h, p)
        | redis::ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => Some((h.as_str(), *p)),
        _ => None,
    }
}

/// Asks the sentinels where the master is every [`POLL`], until every [`Link`] is gone;
/// a new answer is a failover: a new generation, logged and counted. The poll asks one
/// sentinel on a kept connection; only when its answer differs from the current master
/// does a full lookup run, which also connects to the named server to check that it is
/// a master (so that a stale sentinel cannot move anyone to a replica).
async fn follow(
    mut sentinel: Sentinel,
    mut asker: Asker,
    name: String,
    node: Node,
    tx: watch::Sender<Arc<Master>>,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now, and the master was just looked up.
    tick.tick().await;
    let mut failing = false;
    loop {
        tokio::select! {
            () = tx.closed() => return,
            _ = tick.tick() => {}
        }
        let current = tx.borrow().client.get_connection_info().addr().clone();
        if let (Some(reported), Some((host, port))) =
            (asker.reported(&name).await, host_port(&current))
            && reported.0 == host
            && reported.1 == port
        {
            failing = false;
            continue;
        }
        // The full lookup checks that the named master says it is one; a dead master or
        // one not yet replaced fails it, and the current one stays.
        let found = tokio::time::timeout(
            POLL * 5,
            sentinel.async_master_for(&name, Some(&node.now())),
        )
        .await
        .map_err(|_| BusError::Protocol("no sentinel answered in time".into()))
        .and_then(|r| r.map_err(BusError::from));
        let client = match found {
            Ok(c) => {
                failing = false;
                c
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, name = %name, "Sentinel: no master confirmed; keeping the last one");
                }
                failing = true;
                continue;
            }
        };
        let (from, generation) = {
            let m = tx.borrow();
            (m.client.get_connection_info().addr().clone(), m.generation)
        };
        let to = client.get_connection_info().addr().clone();
        if to != from {
            tracing::warn!(from = %from, to = %to, name = %name, "Redis master moved: following the failover");
            metrics().redis_failovers.inc();
            tx.send_replace(Arc::new(Master {
                generation: generation + 1,
                client,
            }));
        }
    }
}
