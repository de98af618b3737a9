//! What the socket listeners (syslog over UDP, TCP and TLS; SNMP traps) share with the
//! HTTP API: the same validation and encoding, the same admission (lag cap, rate limit,
//! low-severity shedding), the same trace start, and an append that is retried until it
//! succeeds, so that nothing read from a socket is dropped because Redis blinked.
//!
//! A socket has no 429: a stream listener stops reading while MUTT is over its lag cap or
//! rate (the sender's buffer holds the data, TCP's flow control slows it), and a datagram
//! listener drops and counts (a datagram cannot be pushed back; waiting would only move
//! the drop into the kernel, where it is counted too).

use std::sync::Arc;
use std::time::Duration;

use mutt_bus::{NewEntry, TraceContext};
use mutt_core::event::ValidationError;
use mutt_telemetry::{metrics, otel};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::accept::prepare;
use crate::{IngestState, ReplicationShort};

/// The listeners, as the `source` label of the metrics names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `MUTT_SYSLOG_UDP_LISTEN`.
    SyslogUdp,
    /// `MUTT_SYSLOG_TCP_LISTEN`.
    SyslogTcp,
    /// `MUTT_SYSLOG_TLS_LISTEN`.
    SyslogTls,
    /// `MUTT_SNMP_LISTEN`.
    Snmp,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyslogUdp => "syslog_udp",
            Self::SyslogTcp => "syslog_tcp",
            Self::SyslogTls => "syslog_tls",
            Self::Snmp => "snmp",
        }
    }
}

/// How long an append is retried after the process was told to stop, before what it
/// holds is given up (and logged with its count).
pub const STOP_RETRY: Duration = Duration::from_secs(5);

/// The ingest side of one listener.
#[derive(Debug, Clone)]
pub struct Intake {
    state: Arc<IngestState>,
    source: Source,
    stop: CancellationToken,
}

/// Events ready to append.
#[derive(Debug, Default)]
pub struct Batch {
    /// The encoded entries.
    pub entries: Vec<NewEntry>,
    /// The positions, among the values given, of the events that became entries.
    pub kept: Vec<usize>,
}

/// Why appending was given up.
#[derive(Debug, thiserror::Error)]
#[error("{count} events were read but could not be appended before the process stopped")]
pub struct GaveUp {
    /// How many events.
    pub count: usize,
}

impl Intake {
    /// The intake of `source`, stopping its retries when `stop` is cancelled (after a
    /// last [`STOP_RETRY`]).
    pub fn new(state: Arc<IngestState>, source: Source, stop: CancellationToken) -> Self {
        Self {
            state,
            source,
            stop,
        }
    }

    /// The listener's name.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Counts an error of `kind` (a message that could not be read, a refused trap).
    pub fn parse_error(&self, kind: &str) {
        metrics()
            .ingest_parse_errors
            .with_label_values(&[self.source.as_str(), kind])
            .inc();
    }

    /// Counts events dropped by MUTT itself, by `reason`.
    pub fn dropped(&self, reason: &str, n: usize) {
        metrics()
            .ingest_dropped
            .with_label_values(&[self.source.as_str(), reason])
            .inc_by(n as u64);
    }

    /// Whether MUTT is over its lag cap (`MUTT_INGEST_MAX_LAG`) now.
    pub fn over_lag(&self) -> bool {
        let cap = self.state.hot.borrow().ingest_max_lag;
        cap > 0 && self.state.lag.load(std::sync::atomic::Ordering::Relaxed) > cap
    }

    /// Takes `n` events from the shared rate limit (`MUTT_INGEST_RATE_LIMIT`), in parts of
    /// at most one second's worth. With `wait`, sleeps as the limiter says until all are
    /// taken (a stream listener: the sender waits meanwhile); without, takes what fits
    /// now. Returns how many were taken. Without Redis, or once the process is stopping,
    /// the limit is open: it protects MUTT, it must not lose what was read.
    pub async fn take_rate(&self, n: usize, wait: bool) -> usize {
        let mut taken = 0;
        while taken < n {
            let rate = self.state.hot.borrow().ingest_rate_limit;
            if rate == 0 || self.stop.is_cancelled() {
                return n;
            }
            let part = (n - taken).min(usize::try_from(rate).unwrap_or(usize::MAX));
            match self
                .state
                .bus
                .rate_take("ingest", rate, rate, part as u64)
                .await
            {
                Err(_) => return n,
                Ok(w) if w.is_zero() => taken += part,
                Ok(_) if !wait => return taken,
                Ok(w) => tokio::time::sleep(w).await,
            }
        }
        taken
    }

    /// Validates and encodes parsed events: what `POST /api/v2/ingest` does to its items.
    /// Every entry carries `span`'s trace context, so the alerter's span is its child.
    pub fn prepare(&self, values: Vec<Value>, span: &tracing::Span) -> Batch {
        let trace = otel::carrier_of(span, &TraceContext::default());
        let cid = uuid::Uuid::now_v7().to_string();
        let now = mutt_core::now_ms();
        let shed_low = crate::admission::shedding_low_severity(&self.state);
        let mut batch = Batch::default();
        let (mut shed, mut rejected) = (0, 0);
        for (i, v) in values.into_iter().enumerate() {
            match prepare(&self.state, v, None, &cid, now, &trace) {
                Ok((_, _, Some(sev))) if shed_low && sev >= 6 => shed += 1,
                Ok((_, entry, _)) => {
                    batch.entries.push(entry);
                    batch.kept.push(i);
                }
                Err(e) => {
                    rejected += 1;
                    self.rejected(&e);
                }
            }
        }
        metrics()
            .ingest_events
            .with_label_values(&[self.source.as_str(), "rejected"])
            .inc_by(rejected);
        if shed > 0 {
            metrics()
                .ingest_shed
                .with_label_values(&["low_severity"])
                .inc_by(shed as u64);
            self.dropped("low_severity", shed);
        }
        batch
    }

    /// What a datagram listener does with the events of one read: over the lag cap they
    /// are all dropped, over the rate limit those that do not fit (a datagram cannot be
    /// pushed back; both counted); the rest are prepared and appended, the append retried
    /// until it succeeds (datagrams meanwhile queue in the kernel's buffer, and what does
    /// not fit is dropped there and counted). Returns the appended batch, whose `kept`
    /// says which of `values` became entries, or `None` when nothing was appended.
    pub async fn accept_datagrams(&self, mut values: Vec<Value>) -> Option<Batch> {
        if values.is_empty() {
            return None;
        }
        if self.over_lag() {
            self.dropped("lag", values.len());
            return None;
        }
        let admitted = self.take_rate(values.len(), false).await;
        if admitted < values.len() {
            self.dropped("rate_limit", values.len() - admitted);
            values.truncate(admitted);
        }
        let span = receive_span(self.source, values.len());
        let batch = self.prepare(values, &span);
        self.append(&batch.entries).instrument(span).await.ok()?;
        Some(batch)
    }

    fn rejected(&self, e: &ValidationError) {
        tracing::debug!(source = self.source.as_str(), field = %e.field, code = e.code, "event refused");
        self.parse_error(e.code);
    }

    /// Appends `entries` to `{p}:events`, retrying with a growing pause (at most 1 s)
    /// while Redis refuses, until it succeeds or, once the process is stopping, for a
    /// last [`STOP_RETRY`].
    pub async fn append(&self, entries: &[NewEntry]) -> Result<(), GaveUp> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pause = Duration::from_millis(50);
        let mut stop_deadline = None;
        loop {
            let generation = self.state.generation();
            match self
                .state
                .append_bus()
                .append(&self.state.stream, entries)
                .await
            {
                Ok(_) => {
                    if !self.until_replicated(entries.len(), generation).await? {
                        // Appended on a master that was replaced: append again on the new
                        // one (a copy that survived is the same events, absorbed by their
                        // ids downstream).
                        continue;
                    }
                    metrics()
                        .ingest_events
                        .with_label_values(&[self.source.as_str(), "accepted"])
                        .inc_by(entries.len() as u64);
                    return Ok(());
                }
                Err(e) => {
                    metrics()
                        .dependency_errors
                        .with_label_values(&["ingest", "redis"])
                        .inc();
                    tracing::warn!(source = self.source.as_str(), error = %e, events = entries.len(), "cannot append to redis; retrying");
                }
            }
            if self.stop.is_cancelled() {
                let deadline =
                    *stop_deadline.get_or_insert_with(|| tokio::time::Instant::now() + STOP_RETRY);
                if tokio::time::Instant::now() >= deadline {
                    let e = GaveUp {
                        count: entries.len(),
                    };
                    tracing::error!(
                        source = self.source.as_str(),
                        events = e.count,
                        "giving up: {e}"
                    );
                    self.dropped("stopped", e.count);
                    return Err(e);
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

impl Intake {
    /// With `MUTT_INGEST_MIN_REPLICAS`: waits (not reading meanwhile, like any dependency
    /// that refuses, ADR 0013) until the replicas hold what was appended, so that an
    /// inform is answered and the next read made only then. Appends nothing again;
    /// `Ok(false)` when the master changed since the append of `generation`, which the
    /// caller must then make again.
    async fn until_replicated(&self, count: usize, generation: u64) -> Result<bool, GaveUp> {
        let mut stop_deadline = None;
        let mut first = true;
        loop {
            match self.state.replicated(generation).await {
                Ok(()) => return Ok(true),
                Err(ReplicationShort::MasterMoved) => {
                    tracing::warn!(
                        source = self.source.as_str(),
                        events = count,
                        "the Redis master changed after the append; appending again"
                    );
                    return Ok(false);
                }
                Err(short) => {
                    // Counted once per batch, however long it is held.
                    if std::mem::take(&mut first) {
                        metrics().ingest_unreplicated.inc();
                    }
                    tracing::warn!(
                        source = self.source.as_str(),
                        events = count,
                        "holding: {short}"
                    );
                }
            }
            if self.stop.is_cancelled() {
                let deadline =
                    *stop_deadline.get_or_insert_with(|| tokio::time::Instant::now() + STOP_RETRY);
                if tokio::time::Instant::now() >= deadline {
                    // Appended on the master, not confirmed: not lost, not acknowledged.
                    return Err(GaveUp { count });
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The span a batch read from a socket starts its trace with.
pub fn receive_span(source: Source, events: usize) -> tracing::Span {
    let span = tracing::info_span!(
        "ingest",
        otel.name = receive_name(source),
        otel.kind = "server",
        source = source.as_str(),
        events,
    );
    otel::record_ids(&span);
    span
}

fn receive_name(source: Source) -> &'static str {
    match source {
        Source::SyslogUdp => "syslog receive udp",
        Source::SyslogTcp => "syslog receive tcp",
        Source::SyslogTls => "syslog receive tls",
        Source::Snmp => "snmp receive",
    }
}
