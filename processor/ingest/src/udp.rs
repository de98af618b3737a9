//! UDP sockets of the datagram listeners: bound with a large receive buffer, and the
//! kernel's drops for them (datagrams that arrived while the buffer was full) read from
//! `/proc/net/udp` into `mutt_ingest_udp_kernel_drops_total`.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use mutt_telemetry::metrics;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::intake::Source;

/// The receive buffer asked for: bursts of a few thousand syslog lines fit. The kernel
/// caps it at `net.core.rmem_max`; raise that to get all of it.
const RECV_BUFFER: usize = 8 * 1024 * 1024;

/// Binds a datagram listener.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, it only drops sooner.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// The largest datagram: a UDP payload cannot be longer.
const MAX_DATAGRAM: usize = 65_535;

/// Reads a datagram listener's socket in batches: one datagram waited for, then those
/// already queued, up to a limit, so that a burst costs one append.
#[derive(Debug)]
pub struct Batches {
    socket: Arc<UdpSocket>,
    buf: Vec<u8>,
    max: usize,
}

impl Batches {
    /// Batches of at most `max` datagrams from `socket`.
    pub fn new(socket: Arc<UdpSocket>, max: usize) -> Self {
        Self {
            socket,
            buf: vec![0u8; MAX_DATAGRAM],
            max: max.max(1),
        }
    }

    /// The next batch (never empty), or `None` once `stop` is cancelled. A receive error
    /// (an ICMP error queued on the socket) is logged and skipped.
    pub async fn next(
        &mut self,
        source: Source,
        stop: &CancellationToken,
    ) -> Option<Vec<(Vec<u8>, SocketAddr)>> {
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return None,
                r = self.socket.recv_from(&mut self.buf) => r,
            };
            let mut datagrams = Vec::new();
            match first {
                Ok((len, peer)) => datagrams.push((self.buf[..len].to_vec(), peer)),
                Err(e) => {
                    tracing::debug!(source = source.as_str(), error = %e, "udp receive");
                    continue;
                }
            }
            while datagrams.len() < self.max {
                match self.socket.try_recv_from(&mut self.buf) {
                    Ok((len, peer)) => datagrams.push((self.buf[..len].to_vec(), peer)),
                    Err(_) => break,
                }
            }
            return Some(datagrams);
        }
    }
}

/// Adds the kernel's drop count of `socket` to the metric every second until `stop`.
pub async fn watch_kernel_drops(socket: Arc<UdpSocket>, source: Source, stop: CancellationToken) {
    let Ok(inode) =
        std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd())).map(|m| m.ino())
    else {
        return;
    };
    let counter = metrics()
        .ingest_udp_kernel_drops
        .with_label_values(&[source.as_str()]);
    let mut seen = 0u64;
    loop {
        if let Some(now) = kernel_drops(inode) {
            counter.inc_by(now.saturating_sub(seen));
            seen = seen.max(now);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The `drops` column of the socket with `inode`, from `/proc/net/udp` or `udp6`.
fn kernel_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        drops_in(&text, inode)
    })
}

/// Reads the table: `sl local rem st tx:rx tr:when retr uid timeout inode ref ptr drops`.
fn drops_in(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(9)?.parse::<u64>().ok()? == inode)
            .then(|| cols.last()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_column_of_the_socket_is_read() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            1234: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 11111 2 0000000000000000 0\n\
            1235: 0100007F:0203 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 22222 2 0000000000000000 17\n";
        assert_eq!(drops_in(table, 22222), Some(17));
        assert_eq!(drops_in(table, 11111), Some(0));
        assert_eq!(drops_in(table, 33333), None);
    }
}
