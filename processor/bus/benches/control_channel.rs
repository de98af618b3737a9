//! The control channel's jobs, done by redis-rs (what `bus` uses) and by fred (what
//! ADR 0004 weighs): how soon a subscriber to `{p}:control` hears announcements again
//! after its connection is killed and after a Sentinel failover, and how fast the
//! snapshot is read. The redis-rs side is `Bus` itself (`listen_control`, `snapshot`);
//! fred's is a `SubscriberClient` with managed resubscription and the same back-off
//! (200 ms, doubling to 5 s). The announcements come from neither: a publisher of its
//! own sends one every 5 ms to every server.
//!
//! Run: `cargo bench -p mutt-bus --bench control_channel` (starts its own `redis-server`
//! processes on free loopback ports; about a minute).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, KeysInterface, PubsubInterface};
use fred::types::config::{Config, ReconnectPolicy, Server, ServerConfig};
use mutt_bus::control::{Announcement, Snapshot};
use mutt_bus::{Bus, Sentinels};
use tokio::sync::mpsc;

const NAME: &str = "benchcc";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A directory of its own for each process started (a restarted server must not share
/// the one its predecessor's drop removes).
fn scratch(port: u16) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("benchcc-{}-{port}-{n}", std::process::id()))
}

/// A `redis-server` (or sentinel) process, killed on drop.
struct Proc {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Proc {
    fn redis(port: u16, replica_of: Option<u16>) -> Self {
        let dir = scratch(port);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(m) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
        }
        let child = cmd.spawn().expect("redis-server");
        Self { child, port, dir }
    }

    fn sentinel(master: u16) -> Self {
        let port = free_port();
        let dir = scratch(port);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {NAME} 127.0.0.1 {master} 2\n\
                 sentinel down-after-milliseconds {NAME} 1000\nsentinel failover-timeout {NAME} 10000\n",
                dir.display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        Self { child, port, dir }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn raw(port: u16) -> redis::aio::MultiplexedConnection {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("a url");
    for _ in 0..100 {
        if let Ok(conn) = c.get_multiplexed_async_connection().await {
            return conn;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing answers on 127.0.0.1:{port}");
}

async fn info_has(port: u16, section: &str, needle: &str) -> bool {
    let mut conn = raw(port).await;
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.contains(needle)
}

/// The two subscribers, each handing the versions it hears to a channel.
struct Subscribers {
    ours: mpsc::UnboundedReceiver<i64>,
    fred: mpsc::UnboundedReceiver<i64>,
    fred_client: SubscriberClient,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Subscribers {
    /// Stops both, so that nothing of one part runs into the next.
    async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.fred_client.quit().await;
    }
}

async fn subscribers(bus: &Bus, fred_server: ServerConfig) -> Subscribers {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ours_tx, ours) = mpsc::unbounded_channel();
    let b = bus.clone();
    let listener = tokio::spawn(async move { b.listen_control(tx).await });
    let forward_ours = tokio::spawn(async move {
        while let Some(a) = rx.recv().await {
            if let Announcement::Config { version } = a {
                let _ = ours_tx.send(version);
            }
        }
    });

    let config = Config {
        server: fred_server,
        ..Default::default()
    };
    let client = fred::types::Builder::from_config(config)
        .set_policy(ReconnectPolicy::new_exponential(0, 200, 5000, 2))
        .build_subscriber_client()
        .expect("a fred subscriber");
    client.init().await.expect("fred connects");
    // Resubscribes after every reconnection, for as long as the task runs.
    let resubscribe = client.manage_subscriptions();
    let channel = bus.names().control();
    client.subscribe(channel).await.expect("fred subscribes");
    let (fred_tx, fred) = mpsc::unbounded_channel();
    let mut messages = client.message_rx();
    let forward_fred = tokio::spawn(async move {
        while let Ok(m) = messages.recv().await {
            let Ok(text) = m.value.convert::<String>() else {
                continue;
            };
            if let Ok(Announcement::Config { version }) = serde_json::from_str(&text) {
                let _ = fred_tx.send(version);
            }
        }
    });
    Subscribers {
        ours,
        fred,
        fred_client: client,
        tasks: vec![listener, forward_ours, forward_fred, resubscribe],
    }
}

/// Announces `Config { version: n }` every 5 ms with n counting up, on every server of
/// `ports` over plain connections of its own (PUBLISH works on a replica too): neither
/// client under comparison carries the announcements, so neither waits for the other to
/// find the new master. Returns the counter and the task (abort it at the end).
fn publisher(
    ports: Vec<u16>,
    channel: String,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicI64>,
    tokio::task::JoinHandle<()>,
) {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let counter = n.clone();
    let task = tokio::spawn(async move {
        let mut conns: Vec<Option<redis::aio::MultiplexedConnection>> =
            ports.iter().map(|_| None).collect();
        loop {
            let v = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let text = serde_json::to_string(&Announcement::Config { version: v })
                .expect("an announcement");
            for (port, slot) in ports.iter().zip(conns.iter_mut()) {
                if slot.is_none() {
                    let c =
                        redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("a url");
                    *slot = tokio::time::timeout(
                        Duration::from_millis(100),
                        c.get_multiplexed_async_connection(),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok);
                }
                if let Some(c) = slot {
                    let sent: Result<i64, _> = redis::cmd("PUBLISH")
                        .arg(&channel)
                        .arg(&text)
                        .query_async(c)
                        .await;
                    if sent.is_err() {
                        *slot = None;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (n, task)
}

/// How long after `t0` each subscriber heard a version above `after` (at most 30 s).
async fn heard_again(s: &mut Subscribers, after: i64, t0: Instant) -> (Duration, Duration) {
    async fn first_above(
        rx: &mut mpsc::UnboundedReceiver<i64>,
        after: i64,
        t0: Instant,
    ) -> Duration {
        let wait = async {
            while let Some(v) = rx.recv().await {
                if v > after {
                    return t0.elapsed();
                }
            }
            Duration::MAX
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or(Duration::MAX)
    }
    let (a, b) = tokio::join!(
        first_above(&mut s.ours, after, t0),
        first_above(&mut s.fred, after, t0)
    );
    (a, b)
}

fn drain(s: &mut Subscribers) {
    while s.ours.try_recv().is_ok() {}
    while s.fred.try_recv().is_ok() {}
}

fn summary(name: &str, ours: &mut [Duration], fred: &mut [Duration]) {
    let show = |d: &mut [Duration]| {
        d.sort();
        let ms = |x: Duration| {
            if x == Duration::MAX {
                "never".to_string()
            } else {
                format!("{:.0} ms", x.as_secs_f64() * 1000.0)
            }
        };
        format!("median {}, max {}", ms(d[d.len() / 2]), ms(d[d.len() - 1]))
    };
    println!("{name} ({} rounds)", ours.len());
    println!("  redis-rs (bus): {}", show(ours));
    println!("  fred:           {}", show(fred));
}

async fn after_a_killed_connection() {
    let port = free_port();
    let _redis = Proc::redis(port, None);
    let mut admin = raw(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let bus = Bus::connect(&url, "benchcc-killed").await.expect("bus");
    let mut s = subscribers(
        &bus,
        ServerConfig::Centralized {
            server: Server::new("127.0.0.1", port),
        },
    )
    .await;
    let (n, publishing) = publisher(vec![port], bus.names().control());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut ours, mut fred) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        drain(&mut s);
        let after = n.load(std::sync::atomic::Ordering::SeqCst);
        let t0 = Instant::now();
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut admin)
            .await
            .expect("CLIENT KILL");
        let (a, b) = heard_again(&mut s, after, t0).await;
        ours.push(a);
        fred.push(b);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    publishing.abort();
    s.close().await;
    summary(
        "announcements heard again after the subscriber's connection is killed",
        &mut ours,
        &mut fred,
    );
}

async fn after_a_sentinel_failover() {
    let mut nodes = vec![Proc::redis(free_port(), None)];
    let first = nodes[0].port;
    nodes.push(Proc::redis(free_port(), Some(first)));
    raw(nodes[1].port).await;
    let sentinels: Vec<Proc> = (0..3).map(|_| Proc::sentinel(first)).collect();
    // The sentinels must know each other and the replica before a failover can happen.
    for _ in 0..200 {
        let mut ready = true;
        for s in &sentinels {
            let mut c = raw(s.port).await;
            let flat: Vec<String> = redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg(NAME)
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            let field = |k: &str| flat.chunks(2).find(|kv| kv[0] == k).map(|kv| kv[1].clone());
            ready &= field("num-other-sentinels").as_deref() == Some("2")
                && field("num-slaves").as_deref() == Some("1");
        }
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let addresses: Vec<String> = sentinels
        .iter()
        .map(|s| format!("redis://127.0.0.1:{}", s.port))
        .collect();
    let via = Sentinels {
        addresses,
        master_name: NAME.into(),
    };
    let bus = Bus::connect_to("redis://127.0.0.1:1", Some(&via), "benchcc-failover", None)
        .await
        .expect("bus through the sentinels");
    let mut s = subscribers(
        &bus,
        ServerConfig::Sentinel {
            hosts: sentinels
                .iter()
                .map(|s| Server::new("127.0.0.1", s.port))
                .collect(),
            service_name: NAME.into(),
        },
    )
    .await;
    let (n, publishing) = publisher(
        nodes.iter().map(|p| p.port).collect(),
        bus.names().control(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut ours, mut fred) = (Vec::new(), Vec::new());
    let mut master = 0;
    for _ in 0..5 {
        drain(&mut s);
        let after = n.load(std::sync::atomic::Ordering::SeqCst);
        let t0 = Instant::now();
        nodes[master].kill();
        let (a, b) = heard_again(&mut s, after, t0).await;
        ours.push(a);
        fred.push(b);
        // The killed master comes back empty; the sentinels make it a replica of the new
        // one, which is killed next.
        let port = nodes[master].port;
        nodes[master] = Proc::redis(port, None);
        let promoted = 1 - master;
        for _ in 0..300 {
            if info_has(nodes[promoted].port, "replication", "connected_slaves:1").await
                && info_has(port, "replication", "master_link_status:up").await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        master = promoted;
    }
    publishing.abort();
    s.close().await;
    summary(
        "announcements heard again after kill -9 of the master (sentinels: down after 1 s)",
        &mut ours,
        &mut fred,
    );
}

async fn snapshot_reads() {
    let port = free_port();
    let _redis = Proc::redis(port, None);
    raw(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let bus = Bus::connect(&url, "benchcc-snapshot").await.expect("bus");
    let values = (0..40)
        .map(|i| (format!("setting_{i}"), format!("{}", i * 1000)))
        .collect();
    bus.store_snapshot(&Snapshot { version: 1, values })
        .await
        .expect("a snapshot");
    let fred = fred::types::Builder::from_config(Config {
        server: ServerConfig::Centralized {
            server: Server::new("127.0.0.1", port),
        },
        ..Default::default()
    })
    .build()
    .expect("a fred client");
    fred.init().await.expect("fred connects");
    let key = "benchcc-snapshot:config";
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        let s = bus.snapshot().await.expect("read").expect("stored");
        ours.push(t.elapsed());
        assert_eq!(s.version, 1);
        let t = Instant::now();
        let text: Option<String> = fred.get(key).await.expect("read");
        let s: Snapshot = serde_json::from_str(&text.expect("stored")).expect("parses");
        theirs.push(t.elapsed());
        assert_eq!(s.version, 1);
    }
    let us = |d: &mut Vec<Duration>| {
        d.sort();
        format!(
            "median {:.0} µs, p99 {:.0} µs",
            d[d.len() / 2].as_secs_f64() * 1e6,
            d[d.len() * 99 / 100].as_secs_f64() * 1e6
        )
    };
    println!("snapshot read (GET and parse, 2,000 in a row)");
    println!("  redis-rs (bus): {}", us(&mut ours));
    println!("  fred:           {}", us(&mut theirs));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench … -- failover` runs the parts whose name contains an argument.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    if wanted("killed") {
        after_a_killed_connection().await;
    }
    if wanted("failover") {
        after_a_sentinel_failover().await;
    }
    if wanted("snapshot") {
        snapshot_reads().await;
    }
}
