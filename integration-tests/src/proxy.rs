//! [`Proxy`]: a TCP proxy between MUTT and a server, cut or muted to simulate outages.

/// A TCP proxy on loopback that can be cut or muted. Cut: existing connections are closed
/// and new ones refused (accepted and dropped at once), a network outage between MUTT and
/// a server. Muted: requests still reach the server but its replies are dropped, so the
/// client cannot tell whether what it sent was applied; restoring then closes the muted
/// connections (their replies are gone, the client must reconnect).
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Where it listens.
    pub port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    muted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    /// Starts a proxy to `target` (`127.0.0.1:5432`).
    pub async fn start(target: &str) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let muted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = std::sync::Arc::new(gen_tx);
        let (d, m, g, target) = (
            down.clone(),
            muted.clone(),
            generation.clone(),
            target.to_string(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = g.subscribe();
                let (target, muted) = (target.clone(), m.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let up = tokio::io::copy(&mut from_client, &mut to_server);
                    let down = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = from_server.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<(), std::io::Error>(());
                            }
                            if !muted.load(Ordering::SeqCst) {
                                to_client.write_all(&buf[..n]).await?;
                            }
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            port,
            down,
            muted,
            generation,
        })
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Drops every reply from the server from now on; requests still reach it.
    pub fn mute(&self) {
        self.muted.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets connections and replies through again; connections that were muted are closed.
    pub fn restore(&self) {
        use std::sync::atomic::Ordering;
        if self.muted.swap(false, Ordering::SeqCst) {
            self.generation.send_modify(|g| *g += 1);
        }
        self.down.store(false, Ordering::SeqCst);
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}
