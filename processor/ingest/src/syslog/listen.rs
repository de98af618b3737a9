//! The syslog listeners: UDP datagrams, and TCP or TLS streams framed per RFC 6587.
//!
//! Each read is parsed, validated and appended as one batch before the next read, so a
//! stream listener holds at most one read's events, and a slow or failing Redis slows the
//! sender (TCP flow control) instead of filling memory. While MUTT is over its lag cap or
//! rate, a stream listener stops reading and a datagram listener drops and counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use chrono::FixedOffset;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::intake::{Intake, Source, receive_span};
use crate::udp;
use mutt_core::wire::frame::{Frame, Framer};
use mutt_core::wire::syslog::{Context, parse};

/// Datagrams read in one batch at most (after the first, only those already queued).
const UDP_BATCH: usize = 512;
/// Bytes read from a stream at once.
const READ_CHUNK: usize = 64 * 1024;
/// A connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(600);
/// Once the process stops, connections are read until they are quiet this long, so that
/// what a sender wrote before it saw the close is not reset away…
const DRAIN_QUIET: Duration = Duration::from_millis(300);
/// …but no longer than this in all, well within the default `MUTT_SHUTDOWN_GRACE` (20 s),
/// for a sender that never pauses.
const DRAIN_MAX: Duration = Duration::from_secs(3);

/// Settings of the syslog listeners.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The zone of time stamps without one (`MUTT_SYSLOG_TIMEZONE`).
    pub zone: FixedOffset,
    /// The longest frame or datagram read (`MUTT_INGEST_MAX_EVENT_BYTES`).
    pub max_frame: usize,
    /// The longest message kept; longer ones are cut (`MUTT_INGEST_MAX_MESSAGE_BYTES`).
    pub max_message: usize,
    /// Connections held at once per stream listener (`MUTT_SYSLOG_MAX_CONNECTIONS`).
    pub max_connections: usize,
}

fn context(peer: SocketAddr, transport: &'static str, opts: &Options) -> Context {
    Context {
        peer: peer.ip().to_canonical(),
        transport,
        received: chrono::Utc::now(),
        zone: opts.zone,
        max_message: opts.max_message,
    }
}

/// Serves syslog over UDP until `stop`.
pub async fn serve_udp(socket: UdpSocket, intake: Intake, opts: Options, stop: CancellationToken) {
    let socket = Arc::new(socket);
    let watch = tokio::spawn(udp::watch_kernel_drops(
        socket.clone(),
        intake.source(),
        stop.clone(),
    ));
    let mut batches = udp::Batches::new(socket, UDP_BATCH);
    while let Some(datagrams) = batches.next(Source::SyslogUdp, &stop).await {
        let mut values = Vec::with_capacity(datagrams.len());
        for (d, peer) in &datagrams {
            if d.len() > opts.max_frame {
                intake.parse_error("too_long");
                continue;
            }
            match parse(d, &context(*peer, "udp", &opts)) {
                Ok(v) => values.push(v),
                Err(e) => intake.parse_error(e.kind()),
            }
        }
        intake.accept_datagrams(values).await;
    }
    watch.abort();
}

/// Serves syslog over TCP (or TLS with `tls`) until `stop`, then drains the connections.
pub async fn serve_stream(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    intake: Intake,
    opts: Options,
    stop: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let source = intake.source();
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.max_connections));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, source = source.as_str(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            intake.parse_error("too_many_connections");
            tracing::warn!(%peer, source = source.as_str(), max = opts.max_connections, "connection refused: too many connections");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let intake = intake.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let gauge = mutt_telemetry::metrics()
                .ingest_connections
                .with_label_values(&[source.as_str()]);
            gauge.inc();
            let r = match tls {
                None => read_stream(tcp, peer, &intake, &opts, &stop).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(s)) => read_stream(s, peer, &intake, &opts, &stop).await,
                        Ok(Err(e)) => {
                            intake.parse_error("tls_handshake");
                            Err(format!("TLS handshake: {e}"))
                        }
                        Err(_) => {
                            intake.parse_error("tls_handshake");
                            Err("TLS handshake timed out".into())
                        }
                    }
                }
            };
            gauge.dec();
            if let Err(e) = r {
                tracing::debug!(%peer, source = source.as_str(), error = %e, "syslog connection closed");
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// Reads one connection until the peer closes it, it breaks, or the process stops and
/// the connection is quiet.
async fn read_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    intake: &Intake,
    opts: &Options,
    stop: &CancellationToken,
) -> Result<(), String> {
    let transport = if intake.source() == Source::SyslogTls {
        "tls"
    } else {
        "tcp"
    };
    let mut framer = Framer::new(opts.max_frame);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // Once stopping, the drain ends at this deadline even if the sender never pauses.
    let mut drain_until = None;
    loop {
        // Stop reading while MUTT is over its lag cap: the sender's buffer holds the data.
        while intake.over_lag() && !stop.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if stop.is_cancelled() {
            let until = *drain_until.get_or_insert_with(|| tokio::time::Instant::now() + DRAIN_MAX);
            if tokio::time::Instant::now() >= until {
                // Whatever is buffered still goes in; the sender resends the rest.
                take_frames(&mut framer, &mut buf, true, peer, transport, intake, opts).await?;
                return Ok(());
            }
        }
        buf.reserve(READ_CHUNK);
        let wait = if stop.is_cancelled() {
            DRAIN_QUIET
        } else {
            IDLE
        };
        let read = tokio::select! {
            r = tokio::time::timeout(wait, stream.read_buf(&mut buf)) => r,
            // Stopping: switch to the short quiet timeout at once (read_buf is cancel
            // safe: nothing read is lost).
            _ = stop.cancelled(), if !stop.is_cancelled() => continue,
        };
        // Every way a connection ends still takes what was read: quiet (idle, or the
        // drain), closed, or broken (a TLS peer without close_notify, a reset).
        let (end, error) = match read {
            Err(_) => (true, None),
            Ok(Ok(0)) => (true, None),
            Ok(Ok(_)) => (false, None),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => (true, None),
            Ok(Err(e)) => (true, Some(e.to_string())),
        };
        take_frames(&mut framer, &mut buf, end, peer, transport, intake, opts).await?;
        if end {
            return error.map_or(Ok(()), Err);
        }
    }
}

/// Parses the complete frames in `buf` (with `end`, also a last line without its line
/// feed) and appends them, waiting for the rate limit. A broken frame ends the
/// connection: what follows it cannot be framed (counted once, as `framing`).
async fn take_frames(
    framer: &mut Framer,
    buf: &mut BytesMut,
    end: bool,
    peer: SocketAddr,
    transport: &'static str,
    intake: &Intake,
    opts: &Options,
) -> Result<(), String> {
    let mut values = Vec::new();
    let cx = context(peer, transport, opts);
    let mut broken = false;
    loop {
        let frame = if end {
            framer.next(buf).or_else(|| framer.finish(buf))
        } else {
            framer.next(buf)
        };
        match frame {
            None => break,
            Some(Frame::Message(m)) => match parse(&m, &cx) {
                Ok(v) => values.push(v),
                Err(e) => intake.parse_error(e.kind()),
            },
            Some(Frame::TooLong) => intake.parse_error("too_long"),
            Some(Frame::Broken) => {
                intake.parse_error("framing");
                broken = true;
                break;
            }
        }
    }
    if !values.is_empty() {
        // A stream waits for the rate limit instead of dropping.
        intake.take_rate(values.len(), true).await;
        let span = receive_span(intake.source(), values.len());
        let batch = intake.prepare(values, &span);
        intake
            .append(&batch.entries)
            .instrument(span)
            .await
            .map_err(|e| e.to_string())?;
    }
    if broken {
        buf.clear();
        return Err("the stream cannot be framed (an octet count without its space)".into());
    }
    Ok(())
}
