//! The alerter: consumer group `alerter` on `{p}:events`.
//!
//! Per batch: decode and check every entry (undecodable ones go to the DLQ at once),
//! evaluate the rules, count unhandled fingerprints, write the audit rows (idempotent by
//! event id), then append the alerts and acknowledge the batch in one transaction. An
//! entry is acknowledged only after its audit row is committed and its alert appended;
//! until then it stays pending and is redelivered, and redelivery adds no second row and
//! no second alert identity.

pub mod rules;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use mutt_bus::dlq::DeadLetter;
use mutt_bus::names::{ALERTER_GROUP, FORWARDER_GROUP};
use mutt_bus::unhandled::FingerprintCount;
use mutt_bus::{Bus, BusError, NewEntry, StreamEntry};
use mutt_core::alert::Alert;
use mutt_core::codec;
use mutt_core::event::{Event, Limits};
use mutt_core::fingerprint::fingerprint_hash;
use mutt_core::hot::HotConfig;
use mutt_core::rules::{Outcome, RuleSet};
use mutt_store::error::{OutageKind, Refusal};
use mutt_store::{AuditRow, Store};
use mutt_telemetry::{metrics, otel};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::rules::RuleCache;
use mutt_worker::consumer::{Consumer, Reader, Started};
use mutt_worker::ops::Flag;
use mutt_worker::trace::entry_span;
use mutt_worker::{Hot, Leases, Stream, backoff, retry, retry_store, sleep_or_shutdown};

/// The handling recorded for a meta-alert's audit row.
pub const META_ALERT_HANDLING: &str = "unhandled_meta_alert";

/// Everything the alerter needs.
#[derive(Debug, Clone)]
pub struct Alerter {
    /// Redis.
    pub bus: Bus,
    /// PostgreSQL.
    pub store: Store,
    /// Hot settings.
    pub hot: Hot,
    /// Event limits (re-checked on decode).
    pub limits: Limits,
    /// This consumer's name.
    pub consumer: String,
    /// XREADGROUP block time.
    pub read_block: Duration,
    /// The rules.
    pub rules: RuleCache,
    /// Set once rules are loaded.
    pub ready: Flag,
    /// Holds while audit writes flow; blocked while a batch is held by a database that
    /// refuses every write.
    pub audit_writes: Flag,
    /// The entries in hand.
    pub leases: Leases,
    /// Batches processed at once.
    pub concurrency: usize,
}

/// A batch read from the stream.
#[derive(Debug)]
struct Batch {
    entries: Vec<StreamEntry>,
}

/// What processing a batch produces, before anything is written.
#[derive(Debug, Default)]
struct Outputs {
    /// Entries acknowledged with the alerts (processed, or deleted while pending).
    ack: Vec<String>,
    /// Audit rows, with the index into `ack` of the entry that caused each.
    audit: Vec<(AuditRow, usize)>,
    /// Alerts to append.
    alerts: Vec<NewEntry>,
    /// Undecodable entries, with why.
    poison: Vec<(StreamEntry, String)>,
    /// The processing span of each traced event (only sampled traces have one); they end
    /// when the batch is written.
    spans: Vec<tracing::Span>,
}

impl Alerter {
    /// Runs until `shutdown`; then finishes the batches already read and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let alerts = self.bus.names().alerts();
        // The forwarders' group exists before the first alert does, so that none is
        // appended where no group would deliver it.
        retry("create consumer group", &shutdown, || {
            self.bus.ensure_group(&alerts, FORWARDER_GROUP)
        })
        .await?;
        retry_store("load rules", &shutdown, || self.rules.load(&self.store)).await?;
        let consumer = Consumer {
            bus: self.bus.clone(),
            place: Stream {
                stream: self.bus.names().events(),
                group: ALERTER_GROUP.into(),
                consumer: self.consumer.clone(),
            },
            hot: self.hot.clone(),
            leases: self.leases.clone(),
            read_block: self.read_block,
            role: "alerter",
        };
        let Started {
            reader,
            reclaimed: mut claimed_rx,
            lost: _,
            mut background,
        } = consumer.start(&shutdown).await?;
        let (rules, store, hot) = (self.rules.clone(), self.store.clone(), self.hot.clone());
        background.spawn(|stop| rules.reload_loop(store, hot, stop));
        self.ready.set(true);
        self.audit_writes.set(true);
        tracing::info!(consumer = %self.consumer, rules = self.rules.get().len(), "alerter started");

        let (tx, mut rx) = mpsc::channel::<Batch>(2);
        let read_task = tokio::spawn(read_loop(
            reader,
            Backpressure {
                bus: self.bus.clone(),
                alerts,
                paused: false,
            },
            self.hot.clone(),
            tx,
            shutdown.clone(),
        ));
        // Batches are independent (idempotent audit rows, one transaction each), so several
        // are processed at once: a batch spends most of its time waiting on Redis and
        // PostgreSQL, and one at a time would leave the machine idle.
        let me = std::sync::Arc::new(self);
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(me.concurrency.max(1)));
        let mut working = tokio::task::JoinSet::new();
        let (mut reading, mut claiming) = (true, true);
        while reading || claiming {
            let batch = tokio::select! {
                b = rx.recv(), if reading => match b {
                    Some(b) => b,
                    None => { reading = false; continue; }
                },
                c = claimed_rx.recv(), if claiming => match c {
                    Some(c) => Batch { entries: c.into_iter().map(|(e, _)| e).collect() },
                    None => { claiming = false; continue; }
                },
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (me2, shutdown) = (me.clone(), shutdown.clone());
            working.spawn(async move {
                me2.process(batch, &shutdown).await;
                drop(slot);
            });
            while working.try_join_next().is_some() {}
        }
        while working.join_next().await.is_some() {}
        let _ = read_task.await;
        background.stop().await;
        tracing::info!(consumer = %me.consumer, "alerter stopped");
        Ok(())
    }

    /// Processes one batch completely, retrying transient failures until it is done or a
    /// shutdown interrupts (the entries then stay pending: nothing is lost).
    async fn process(&self, batch: Batch, shutdown: &CancellationToken) {
        let timer = metrics().alerter_batch_latency.start_timer();
        let rules = self.rules.get();
        let hot = self.hot.borrow().clone();
        let ids: Vec<String> = batch.entries.iter().map(|e| e.id.clone()).collect();
        // Released when this batch is done with, however it ends (a panic included).
        let _release = self.leases.release_on_drop(ids.clone());
        // Decoding, rules and fingerprints are pure CPU, and a batch can be large: they run
        // on the blocking pool so that the runtime's threads stay free for what must not
        // wait (renewing leases, reading, serving /ready).
        let limits = self.limits.clone();
        let now = mutt_core::now_ms();
        let evaluated = {
            let (rules, span) = (rules.clone(), tracing::Span::current());
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| evaluate(batch.entries, &rules, &limits, now))
            })
            .await
        };
        let outcome = match evaluated {
            Ok(Evaluated {
                mut out,
                unhandled,
                entries,
            }) => match retry("count unhandled", shutdown, || {
                self.meta_alerts(&out.ack, &unhandled, &entries, &rules, &hot, now)
            })
            .await
            {
                Ok(meta) => {
                    for (alert, row) in meta {
                        out.alerts.push(alert);
                        out.audit.push(row);
                    }
                    self.write(out, shutdown).await
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(format!("evaluating the batch failed: {e}")),
        };
        match outcome {
            Ok(()) => timer.observe_duration(),
            Err(why) if !shutdown.is_cancelled() => {
                // Left pending: reclamation retries it, and the delivery limit ends a
                // batch that can never succeed in the DLQ, with this error.
                tracing::error!(error = %why, entries = ids.len(), "batch failed; left pending for redelivery");
                metrics()
                    .alerter_events
                    .with_label_values(&["error"])
                    .inc_by(ids.len() as u64);
                if let Err(e) = self
                    .bus
                    .record_failures(ALERTER_GROUP, &ids, &why, mutt_core::now_ms())
                    .await
                {
                    tracing::warn!(error = %e, "cannot record the failure");
                }
            }
            Err(_) => {}
        }
    }

    /// Counts the batch's unhandled events per host and fingerprint (one script call) and
    /// makes the meta-alerts of the fingerprints that reached the threshold, with their
    /// audit rows. Nothing is changed here, so a failed call can simply be retried.
    async fn meta_alerts(
        &self,
        ack: &[String],
        unhandled: &[Unhandled],
        entries: &[StreamEntry],
        rules: &RuleSet,
        hot: &HotConfig,
        now: i64,
    ) -> Result<Vec<(NewEntry, (AuditRow, usize))>, BusError> {
        let mut made = Vec::new();
        if unhandled.is_empty() {
            return Ok(made);
        }
        // Group by host and fingerprint, keeping stream order within each group.
        // Keys borrow from the events; a host name is copied only when it has capitals.
        let mut groups: Vec<FingerprintCount<'_>> = Vec::new();
        let mut index: HashMap<(Cow<'_, str>, u64), usize> = HashMap::new();
        let mut by_id: HashMap<&str, (&Event, usize)> = HashMap::new();
        for u in unhandled {
            let event = &u.event;
            let host: Cow<'_, str> = if event.hostname.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(event.hostname.to_lowercase())
            } else {
                Cow::Borrowed(event.hostname.as_str())
            };
            let fp = u.fingerprint;
            let g = match index.get(&(host.clone(), fp)) {
                Some(&g) => g,
                None => {
                    groups.push(FingerprintCount {
                        hostname: host.clone(),
                        fingerprint: format!("{fp:016x}"),
                        event_ids: Vec::new(),
                    });
                    index.insert((host, fp), groups.len() - 1);
                    groups.len() - 1
                }
            };
            groups[g].event_ids.push(event.id.as_str());
            by_id.insert(event.id.as_str(), (event, u.idx));
        }
        let window = hot.unhandled_window;
        let hits = self
            .bus
            .count_unhandled(&groups, hot.unhandled_threshold, window)
            .await?;
        for (group, hit) in groups.iter().zip(hits) {
            let Some(event_id) = hit else { continue };
            let Some(&(event, idx)) = by_id.get(event_id.as_str()) else {
                continue;
            };
            let team = rules
                .device_team(&event.hostname)
                .unwrap_or(&hot.unhandled_default_team)
                .to_string();
            let alert = Alert::for_unhandled(
                event,
                &group.fingerprint,
                &team,
                hot.unhandled_threshold,
                window.as_secs(),
                now,
            );
            let Ok(payload) = codec::encode_alert(&alert) else {
                continue;
            };
            let Ok(time) = event.time() else { continue };
            let trace = entries
                .iter()
                .find(|e| ack.get(idx) == Some(&e.id))
                .map(StreamEntry::trace)
                .unwrap_or_default();
            made.push((
                NewEntry::new(payload, trace),
                (
                    AuditRow {
                        event_id: alert.id.clone(),
                        event_timestamp: time,
                        hostname: event.hostname.clone(),
                        matched_rule_id: None,
                        handling_decision: META_ALERT_HANDLING.into(),
                        forwarded: true,
                        raw_message: event.to_json().to_string(),
                        correlation_id: event.correlation_id.clone(),
                        team_assignment: team,
                    },
                    idx,
                ),
            ));
            metrics().alerter_meta_alerts.inc();
            metrics()
                .alerter_alerts
                .with_label_values(&["unhandled"])
                .inc();
            tracing::info!(hostname = %event.hostname, fingerprint = %group.fingerprint, alert_id = %alert.id, "unhandled flood: meta-alert");
        }
        Ok(made)
    }

    /// Writes what a batch produced: dead letters, audit rows, then alerts and
    /// acknowledgements in one transaction.
    async fn write(&self, mut out: Outputs, shutdown: &CancellationToken) -> Result<(), String> {
        let stream = self.bus.names().events();
        let now = mutt_core::now_ms();
        if !out.poison.is_empty() {
            let letters: Vec<DeadLetter<'_>> = out
                .poison
                .iter()
                .map(|(entry, why)| DeadLetter {
                    entry,
                    source_stream: &stream,
                    group: ALERTER_GROUP,
                    consumer: &self.consumer,
                    delivery_count: 1,
                    last_error: why,
                    first_failure_ms: now,
                    last_failure_ms: now,
                })
                .collect();
            retry("dead-letter", shutdown, || self.bus.move_to_dlq(&letters))
                .await
                .map_err(|e| e.to_string())?;
            metrics()
                .alerter_events
                .with_label_values(&["poison"])
                .inc_by(letters.len() as u64);
            metrics()
                .dlq_moved
                .with_label_values(&[ALERTER_GROUP, "undecodable"])
                .inc_by(letters.len() as u64);
            for (entry, why) in &out.poison {
                tracing::warn!(entry_id = %entry.id, error = %why, "undecodable event moved to the dead-letter queue");
            }
        }
        if !out.audit.is_empty() {
            let audit_spans: Vec<tracing::Span> = out
                .spans
                .iter()
                .map(|s| tracing::info_span!(parent: s, "audit.write", otel.name = "audit.write", rows = out.audit.len()))
                .collect();
            let refused = self.write_audit(&out.audit, shutdown).await?;
            drop(audit_spans);
            if !refused.is_empty() {
                out = self.drop_refused(out, refused, shutdown).await?;
            }
        }
        let alerts_stream = self.bus.names().alerts();
        retry("append alerts", shutdown, || {
            self.bus.ack_and_append(
                &stream,
                ALERTER_GROUP,
                &out.ack,
                &alerts_stream,
                &out.alerts,
            )
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Inserts the audit rows. While PostgreSQL refuses every row (unreachable, read-only
    /// after a failover, a refused password or grant, a lock timeout, a missing table), the
    /// batch is held: retried with backoff, its leases renewed, readiness false, and
    /// `mutt_writes_held` says why; nothing goes to the DLQ for an outage. Only when the
    /// server refuses the batch because of a row's data are rows written one by one, and
    /// the indexes (into `ack`) of the rows it refuses for good are returned.
    async fn write_audit(
        &self,
        audit: &[(AuditRow, usize)],
        shutdown: &CancellationToken,
    ) -> Result<Vec<(usize, String)>, String> {
        let rows: Vec<AuditRow> = audit.iter().map(|(r, _)| r.clone()).collect();
        let mut attempt = 0;
        let mut one_by_one = false;
        // Rows already settled in one-by-one mode (written, or refused for good).
        let mut refused = Vec::new();
        let mut next = 0;
        let mut hold: Option<Hold> = None;
        loop {
            let error = if one_by_one {
                let mut outage = None;
                while next < audit.len() {
                    let (row, idx) = &audit[next];
                    match self
                        .store
                        .insert_event_audit(std::slice::from_ref(row))
                        .await
                    {
                        Ok(n) => metrics().audit_rows.inc_by(n),
                        Err(e) if e.is_row_refusal() => refused.push((*idx, e.to_string())),
                        Err(e) => {
                            outage = Some(e);
                            break;
                        }
                    }
                    next += 1;
                }
                match outage {
                    None => return Ok(refused),
                    Some(e) => e,
                }
            } else {
                let timer = metrics().audit_write_latency.start_timer();
                match self.store.insert_event_audit(&rows).await {
                    Ok(n) => {
                        timer.observe_duration();
                        metrics().audit_rows.inc_by(n);
                        return Ok(Vec::new());
                    }
                    Err(e) if e.is_row_refusal() => {
                        tracing::warn!(error = %e, sqlstate = %e.sqlstate().unwrap_or_default(), "audit batch refused for a row's data; writing rows one by one");
                        one_by_one = true;
                        continue;
                    }
                    Err(e) => e,
                }
            };
            let Refusal::Outage(kind) = error.refusal() else {
                unreachable!("row refusals are handled above");
            };
            metrics()
                .dependency_errors
                .with_label_values(&["alerter", "postgres"])
                .inc();
            let held = hold.get_or_insert_with(|| Hold::new(&self.audit_writes, kind));
            held.set(kind);
            tracing::warn!(
                error = %error,
                sqlstate = %error.sqlstate().unwrap_or_default(),
                reason = %kind.as_str(),
                attempt,
                rows = audit.len(),
                "PostgreSQL refuses audit writes; holding the batch and retrying"
            );
            // A read-only server is a replica now: its connections will never write again.
            if kind == OutageKind::ReadOnly
                && let Err(e) = self.store.reconnect().await
            {
                tracing::debug!(error = %e, "reconnecting to PostgreSQL");
            }
            if sleep_or_shutdown(backoff(attempt), shutdown).await {
                return Err(format!("audit write: {error}"));
            }
            attempt += 1;
        }
    }

    /// Moves the entries whose audit rows were refused to the DLQ and takes them and
    /// their alerts out of the batch.
    async fn drop_refused(
        &self,
        mut out: Outputs,
        refused: Vec<(usize, String)>,
        shutdown: &CancellationToken,
    ) -> Result<Outputs, String> {
        let stream = self.bus.names().events();
        let now = mutt_core::now_ms();
        let refused_ids: HashMap<String, String> = refused
            .into_iter()
            .filter_map(|(idx, why)| out.ack.get(idx).map(|id| (id.clone(), why)))
            .collect();
        // The entries are re-read by id to dead-letter them with their original fields.
        let entries = self
            .bus
            .entries_by_id(&stream, refused_ids.keys())
            .await
            .map_err(|e| e.to_string())?;
        let letters: Vec<DeadLetter<'_>> = entries
            .iter()
            .map(|entry| DeadLetter {
                entry,
                source_stream: &stream,
                group: ALERTER_GROUP,
                consumer: &self.consumer,
                delivery_count: 1,
                last_error: refused_ids
                    .get(&entry.id)
                    .map_or("audit refused", String::as_str),
                first_failure_ms: now,
                last_failure_ms: now,
            })
            .collect();
        retry("dead-letter", shutdown, || self.bus.move_to_dlq(&letters))
            .await
            .map_err(|e| e.to_string())?;
        metrics()
            .dlq_moved
            .with_label_values(&[ALERTER_GROUP, "audit_refused"])
            .inc_by(letters.len() as u64);
        // Alerts of refused events are dropped with them: an alert is only sent for an
        // audited decision. They are recognisable by the event id they carry.
        let refused_event_ids: Vec<String> = entries
            .iter()
            .filter_map(|e| {
                e.payload()
                    .and_then(|p| codec::decode_event(p, &self.limits).ok())
            })
            .map(|e| e.id)
            .collect();
        out.alerts.retain(|a| {
            codec::decode_alert(&a.payload, &self.limits)
                .map_or(true, |al| !refused_event_ids.contains(&al.event.id))
        });
        out.ack.retain(|id| !refused_ids.contains_key(id));
        metrics()
            .alerter_events
            .with_label_values(&["error"])
            .inc_by(letters.len() as u64);
        Ok(out)
    }
}

/// A batch held because PostgreSQL refuses every write: blocks readiness and counts in
/// `mutt_writes_held` for as long as it lives.
struct Hold {
    _blocked: mutt_worker::ops::Blocked,
    kind: OutageKind,
}

impl Hold {
    fn new(flag: &Flag, kind: OutageKind) -> Self {
        Self::count(kind, 1);
        Self {
            _blocked: flag.block(),
            kind,
        }
    }

    fn count(kind: OutageKind, delta: i64) {
        metrics()
            .writes_held
            .with_label_values(&["alerter", "postgres", kind.as_str()])
            .add(delta);
    }

    /// The reason changed (read-only, then a refused password, …).
    fn set(&mut self, kind: OutageKind) {
        if kind != self.kind {
            Self::count(self.kind, -1);
            Self::count(kind, 1);
            self.kind = kind;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        Self::count(self.kind, -1);
    }
}

/// An unhandled event of a batch, with its fingerprint (computed off the runtime).
#[derive(Debug)]
struct Unhandled {
    event: Event,
    /// Index into `ack` of its entry.
    idx: usize,
    fingerprint: u64,
}

/// A batch decoded and matched: what to write, and what to count as unhandled.
#[derive(Debug)]
struct Evaluated {
    out: Outputs,
    unhandled: Vec<Unhandled>,
    /// The batch's entries, handed back.
    entries: Vec<StreamEntry>,
}

/// Decodes and checks every entry and evaluates the rules: pure CPU, no I/O, run on the
/// blocking pool. Undecodable entries become poison; matched events their audit rows and
/// alerts; unmatched ones are returned with their fingerprints for counting.
fn evaluate(entries: Vec<StreamEntry>, rules: &RuleSet, limits: &Limits, now: i64) -> Evaluated {
    let mut out = Outputs::default();
    let mut unhandled = Vec::new();
    let (mut handled, mut rule_alerts) = (0u64, 0u64);
    for entry in &entries {
        if entry.is_deleted() {
            out.ack.push(entry.id.clone());
            continue;
        }
        let event = match entry.payload() {
            None => Err("entry has no payload field".to_string()),
            Some(p) => codec::decode_event(p, limits).map_err(|e| e.to_string()),
        };
        let event = match event {
            Ok(e) => e,
            Err(why) => {
                out.poison.push((entry.clone(), why));
                continue;
            }
        };
        // Validated at ingest and checked again on decode: parsing cannot fail here.
        let Ok(time) = event.time() else {
            out.poison
                .push((entry.clone(), "unparseable timestamp".into()));
            continue;
        };
        let idx = out.ack.len();
        out.ack.push(entry.id.clone());
        // What the alert carries onwards: this event's processing span, if traced.
        let span = entry_span("alerter.process", "consumer", entry);
        let trace = span
            .as_ref()
            .map_or_else(|| entry.trace(), |s| otel::carrier_of(s, &entry.trace()));
        out.spans.extend(span);
        match rules.evaluate(&event) {
            Outcome::Handled {
                rule,
                handling,
                forward,
            } => {
                handled += 1;
                if forward {
                    let alert =
                        Alert::for_rule(&event, rule.id, handling, &rule.team_assignment, now);
                    match codec::encode_alert(&alert) {
                        Ok(p) => out.alerts.push(NewEntry::new(p, trace.clone())),
                        Err(e) => {
                            out.ack.pop();
                            out.poison.push((entry.clone(), e.to_string()));
                            continue;
                        }
                    }
                    rule_alerts += 1;
                }
                out.audit.push((
                    AuditRow {
                        event_id: event.id.clone(),
                        event_timestamp: time,
                        hostname: event.hostname.clone(),
                        matched_rule_id: Some(rule.id),
                        handling_decision: handling.to_string(),
                        forwarded: forward,
                        raw_message: event.to_json().to_string(),
                        correlation_id: event.correlation_id.clone(),
                        team_assignment: rule.team_assignment.clone(),
                    },
                    idx,
                ));
            }
            Outcome::Unhandled => {
                let fingerprint = fingerprint_hash(&event.message);
                unhandled.push(Unhandled {
                    event,
                    idx,
                    fingerprint,
                });
            }
        }
    }
    // Counted once per batch: a labelled lookup per event shows in profiles.
    let m = metrics();
    m.alerter_events
        .with_label_values(&["handled"])
        .inc_by(handled);
    m.alerter_events
        .with_label_values(&["unhandled"])
        .inc_by(unhandled.len() as u64);
    m.alerter_alerts
        .with_label_values(&["rule"])
        .inc_by(rule_alerts);
    Evaluated {
        out,
        unhandled,
        entries,
    }
}

/// The alerters' side of backpressure: while the forwarders' backlog on `{p}:alerts` (lag
/// plus pending) is over `alerter_max_alert_lag`, no new events are read. They wait in
/// `{p}:events`, where ingest's admission control sees them and sheds load as configured,
/// instead of piling up as alerts in Redis while the webhook is down.
#[derive(Debug)]
struct Backpressure {
    bus: Bus,
    alerts: String,
    paused: bool,
}

/// How often a paused alerter looks at the forwarders' backlog again.
const BACKPRESSURE_POLL: Duration = Duration::from_millis(200);

impl Backpressure {
    /// Returns when a batch may be read (at once when the cap is off or the forwarders
    /// keep up), or false when `shutdown` came first. The backlog is measured before every
    /// read, so the alerts stream overshoots the cap by at most the batches in flight.
    async fn wait(&mut self, hot: &Hot, shutdown: &CancellationToken) -> bool {
        loop {
            let cap = hot.borrow().alerter_max_alert_lag;
            if cap == 0 {
                self.set(false, 0, cap);
                return true;
            }
            match self.bus.group_backlog(&self.alerts, FORWARDER_GROUP).await {
                Ok(backlog) if backlog > cap => {
                    self.set(true, backlog, cap);
                    if sleep_or_shutdown(BACKPRESSURE_POLL, shutdown).await {
                        return false;
                    }
                }
                Ok(backlog) => {
                    self.set(false, backlog, cap);
                    return true;
                }
                // Not knowing the backlog is no reason to stop: the read itself will fail
                // and back off if Redis is gone.
                Err(e) => {
                    tracing::debug!(error = %e, "measuring the forwarders' backlog");
                    return true;
                }
            }
        }
    }

    fn set(&mut self, paused: bool, backlog: u64, cap: u64) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        metrics().alerter_paused.set(i64::from(paused));
        if paused {
            metrics().alerter_backpressure.inc();
            tracing::info!(backlog, cap, "forwarders behind: reading events paused");
        } else {
            tracing::info!(backlog, cap, "forwarders caught up: reading events again");
        }
    }
}

/// Reads batches until `shutdown`, handing them to the processor. Reading runs in its own
/// task so that a blocking read is never cancelled half-way (its entries would be
/// delivered to us and then dropped).
async fn read_loop(
    mut reader: Reader,
    mut backpressure: Backpressure,
    hot: Hot,
    tx: mpsc::Sender<Batch>,
    shutdown: CancellationToken,
) {
    loop {
        if !backpressure.wait(&hot, &shutdown).await {
            return;
        }
        let count = hot.borrow().alerter_batch as usize;
        match reader.read(count, &shutdown).await {
            None => return,
            Some(entries) if entries.is_empty() => {}
            Some(entries) => {
                if tx.send(Batch { entries }).await.is_err() {
                    return;
                }
            }
        }
    }
}
