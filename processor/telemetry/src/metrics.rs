//! Every Prometheus metric of MUTT. Names of MUTT v2.5 are kept where they existed, so
//! that existing dashboards keep working.
//!
//! Over 500 lines on purpose: one field and one registration per metric, in one place, is
//! what lets `every_metric_in_rules_and_dashboards_is_emitted` and a reader find them all.

use std::sync::OnceLock;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets for fast operations (HTTP handling, a batch, a DB write), in seconds.
const FAST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets for webhook requests and end-to-end delivery, in seconds.
const SLOW_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The metrics of a process (all roles share one registry in `mutt all`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Ingest requests by outcome: `status` success|fail, `reason` why it failed.
    pub ingest_requests: IntCounterVec,
    /// Events by source (http, syslog_udp, syslog_tcp, syslog_tls, snmp) and ingest
    /// result: accepted|rejected|replayed (a resend with an
    /// `Idempotency-Key` already appended, not appended again).
    pub ingest_events: IntCounterVec,
    /// Time to answer an ingest request.
    pub ingest_latency: Histogram,
    /// Events refused to protect MUTT, by reason (rate_limit, key_rate_limit, lag, low_severity).
    pub ingest_shed: IntCounterVec,
    /// Messages of the socket listeners that did not become events, by source and kind
    /// (a syslog line that could not be framed, a datagram that is not SNMP, a trap with
    /// an unknown community, an event refused by validation).
    pub ingest_parse_errors: IntCounterVec,
    /// Events read from a socket and dropped by MUTT itself, by source and reason (lag,
    /// rate_limit, low_severity; stopped: the process stopped while Redis refused them).
    pub ingest_dropped: IntCounterVec,
    /// Datagrams the kernel dropped for a listener's full receive buffer (`/proc/net/udp`).
    pub ingest_udp_kernel_drops: IntCounterVec,
    /// Open syslog connections, by source.
    pub ingest_connections: IntGaugeVec,
    /// Appends that fewer than `MUTT_INGEST_MIN_REPLICAS` replicas confirmed in time.
    pub ingest_unreplicated: IntCounter,
    /// Times this process found the Redis master moved (a Sentinel failover) and followed.
    pub redis_failovers: IntCounter,
    /// Times the alerter paused reading because the forwarders were behind.
    pub alerter_backpressure: IntCounter,
    /// 1 while the alerter has stopped reading because the forwarders are behind.
    pub alerter_paused: IntGauge,
    /// Batches a role holds because a dependency refuses every write, by role, dependency
    /// and reason (read_only, denied, unavailable, …); 0 when writes flow.
    pub writes_held: IntGaugeVec,
    /// Events processed by the alerter: handled|unhandled|poison|error.
    pub alerter_events: IntCounterVec,
    /// Alerts written to the alerts stream, by kind (rule|unhandled).
    pub alerter_alerts: IntCounterVec,
    /// Meta-alerts for floods of unhandled events.
    pub alerter_meta_alerts: IntCounter,
    /// Rule-cache reloads that failed (the last good set stays in use).
    pub alerter_reload_failures: IntCounter,
    /// Rule-cache reloads that succeeded.
    pub alerter_reloads: IntCounter,
    /// Active rules in the cache.
    pub alerter_rules: IntGauge,
    /// Development hosts in the cache.
    pub alerter_dev_hosts: IntGauge,
    /// Device teams in the cache.
    pub alerter_teams: IntGauge,
    /// Time to process one batch of events.
    pub alerter_batch_latency: Histogram,
    /// Audit rows written (new rows only).
    pub audit_rows: IntCounter,
    /// Time of one audit batch insert.
    pub audit_write_latency: Histogram,
    /// Webhook requests: `status` success|fail, `reason` http_4xx|http_5xx|timeout|connect|….
    pub moog_requests: IntCounterVec,
    /// Webhook request latency.
    pub moog_latency: Histogram,
    /// Alerts by final outcome: success|dlq.
    pub moog_alerts: IntCounterVec,
    /// From ingest acceptance to the webhook's 2xx.
    pub end_to_end_latency: Histogram,
    /// Errors talking to Redis or PostgreSQL by role and dependency.
    pub dependency_errors: IntCounterVec,
    /// Entries in a stream.
    pub stream_length: IntGaugeVec,
    /// Entries reclaimed from other consumers (`kind` claimed|deleted).
    pub reclaimed: IntCounterVec,
    /// Entries moved to a DLQ, by group and reason.
    pub dlq_moved: IntCounterVec,
    /// Entries in hand that another consumer reclaimed.
    pub leases_lost: IntCounterVec,
    /// Consumers removed from a group after they were gone.
    pub consumers_removed: IntCounterVec,
    /// Entries trimmed from a stream.
    pub trimmed: IntCounterVec,
    /// Circuit breaker state: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGaugeVec,
    /// Circuit breaker transitions.
    pub breaker_changes: IntCounterVec,
    /// Times the shared webhook rate limit made alerts wait.
    pub rate_limit_waits: IntCounter,
    /// Version of the hot-setting snapshot this process applied (0: start values).
    pub config_version: IntGauge,
    /// Entries of a group delivered and not yet acknowledged.
    pub group_pending: IntGaugeVec,
    /// Entries of a stream not yet delivered to a group.
    pub group_lag: IntGaugeVec,
    /// Dead letters replayed, by group and how (api|auto).
    pub dlq_replayed: IntCounterVec,
    /// Entries in each DLQ.
    pub dlq_depth: IntGaugeVec,
    /// Age of the oldest entry of each DLQ, seconds (0 when empty).
    pub dlq_oldest_age: IntGaugeVec,
    /// Credential generation this process applied, by secret.
    pub credential_generation: IntGaugeVec,
    /// Webhook requests retried with the other token after a 401/403 during a rotation,
    /// by result (accepted|refused).
    pub webhook_token_fallbacks: IntCounterVec,
    /// Dead letters parked beside each DLQ (replayed only by an operator).
    pub dlq_parked: IntGaugeVec,
    /// Automatic remediation rounds by DLQ and outcome (replayed|idle|gated|backoff|failed).
    pub remediation_rounds: IntCounterVec,
    /// Dead letters replayed by the remediation loop, by DLQ.
    pub remediation_replayed: IntCounterVec,
    /// Dead letters parked by the remediation loop, by DLQ.
    pub remediation_parked: IntCounterVec,
    /// Unix time of the last remediation round that ran (on this replica).
    pub remediation_last_round: IntGauge,
    /// Retention runs by outcome (done|dry_run|skipped|failed).
    pub retention_runs: IntCounterVec,
    /// Event-audit rows moved to the archive (whole months).
    pub retention_events_archived: IntCounter,
    /// Archived event-audit rows dropped past the archive policy.
    pub retention_archive_rows_dropped: IntCounter,
    /// Config audit rows deleted past their policy.
    pub retention_config_audits_deleted: IntCounter,
    /// Parked dead letters removed past their policy, by group.
    pub retention_dead_letters_deleted: IntCounterVec,
    /// Rows moved out of the DEFAULT event-audit partition into their month's.
    pub retention_default_rows_moved: IntCounter,
    /// Unix time the last retention run finished (any replica, or `mutt retention`).
    pub retention_last_run: IntGauge,
    /// Time one retention run took.
    pub retention_duration: Histogram,
    /// Build information (value 1).
    pub build_info: IntGaugeVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    // The names and label sets are constants: registration can only fail on a programming
    // error, caught by the test below, so `expect` is the honest choice here.
    fn new() -> Self {
        let r = Registry::new();
        let m = Self {
            ingest_requests: counter_vec(
                &r,
                "mutt_ingest_requests_total",
                "Ingest requests by status and failure reason.",
                &["status", "reason"],
            ),
            ingest_events: counter_vec(
                &r,
                "mutt_ingest_events_total",
                "Events by source and ingest result.",
                &["source", "result"],
            ),
            ingest_latency: histogram(
                &r,
                "mutt_ingest_latency_seconds",
                "Time to answer an ingest request.",
                FAST_BUCKETS,
            ),
            ingest_shed: counter_vec(
                &r,
                "mutt_ingest_shed_events_total",
                "Events refused to protect MUTT, by reason.",
                &["reason"],
            ),
            ingest_parse_errors: counter_vec(
                &r,
                "mutt_ingest_parse_errors_total",
                "Messages of the socket listeners that did not become events, by source and kind.",
                &["source", "kind"],
            ),
            ingest_dropped: counter_vec(
                &r,
                "mutt_ingest_dropped_events_total",
                "Events read from a socket and dropped by MUTT, by source and reason.",
                &["source", "reason"],
            ),
            ingest_udp_kernel_drops: counter_vec(
                &r,
                "mutt_ingest_udp_kernel_drops_total",
                "Datagrams the kernel dropped for a full receive buffer, by source.",
                &["source"],
            ),
            ingest_connections: gauge_vec(
                &r,
                "mutt_ingest_connections",
                "Open syslog connections, by source.",
                &["source"],
            ),
            ingest_unreplicated: counter(
                &r,
                "mutt_ingest_unreplicated_total",
                "Appends that fewer than MUTT_INGEST_MIN_REPLICAS replicas confirmed in time.",
            ),
            redis_failovers: counter(
                &r,
                "mutt_redis_failovers_total",
                "Times this process found the Redis master moved (a Sentinel failover) and followed it.",
            ),
            alerter_backpressure: counter(
                &r,
                "mutt_alerter_backpressure_total",
                "Times the alerter paused reading because the forwarders' backlog was over alerter_max_alert_lag.",
            ),
            alerter_paused: gauge(
                &r,
                "mutt_alerter_paused",
                "1 while the alerter does not read new events because the forwarders' backlog is over alerter_max_alert_lag",
            ),
            writes_held: gauge_vec(
                &r,
                "mutt_writes_held",
                "Batches held because a dependency refuses every write (they are retried, never dead-lettered)",
                &["role", "dependency", "reason"],
            ),
            alerter_events: counter_vec(
                &r,
                "mutt_alerter_events_processed_total",
                "Events processed by the alerter, by status.",
                &["status"],
            ),
            alerter_alerts: counter_vec(
                &r,
                "mutt_alerter_alerts_forwarded_total",
                "Alerts written to the alerts stream, by kind.",
                &["kind"],
            ),
            alerter_meta_alerts: counter(
                &r,
                "mutt_alerter_unhandled_meta_alerts_total",
                "Meta-alerts for floods of unhandled events.",
            ),
            alerter_reload_failures: counter(
                &r,
                "mutt_alerter_cache_reload_failures_total",
                "Rule cache reloads that failed; the last good rules stay in use.",
            ),
            alerter_reloads: counter(
                &r,
                "mutt_alerter_cache_reload_total",
                "Rule cache reloads that succeeded.",
            ),
            alerter_rules: gauge(&r, "mutt_alerter_cache_rules", "Active rules in the cache."),
            alerter_dev_hosts: gauge(
                &r,
                "mutt_alerter_cache_dev_hosts",
                "Development hosts in the cache.",
            ),
            alerter_teams: gauge(&r, "mutt_alerter_cache_teams", "Device teams in the cache."),
            alerter_batch_latency: histogram(
                &r,
                "mutt_alerter_processing_latency_seconds",
                "Time to process one batch of events, audit and alerts included.",
                FAST_BUCKETS,
            ),
            audit_rows: counter(
                &r,
                "mutt_audit_rows_written_total",
                "Event audit rows written.",
            ),
            audit_write_latency: histogram(
                &r,
                "mutt_db_write_latency_seconds",
                "Time of one event audit batch insert.",
                FAST_BUCKETS,
            ),
            moog_requests: counter_vec(
                &r,
                "mutt_moog_requests_total",
                "Webhook requests by status and failure reason.",
                &["status", "reason"],
            ),
            moog_latency: histogram(
                &r,
                "mutt_moog_request_latency_seconds",
                "Webhook request latency.",
                SLOW_BUCKETS,
            ),
            moog_alerts: counter_vec(
                &r,
                "mutt_moog_alerts_processed_total",
                "Alerts by final outcome.",
                &["status"],
            ),
            end_to_end_latency: histogram(
                &r,
                "mutt_end_to_end_latency_seconds",
                "From ingest acceptance to the webhook's 2xx.",
                SLOW_BUCKETS,
            ),
            dependency_errors: counter_vec(
                &r,
                "mutt_dependency_errors_total",
                "Errors talking to Redis or PostgreSQL, by role and dependency.",
                &["role", "dependency"],
            ),
            stream_length: gauge_vec(
                &r,
                "mutt_stream_length",
                "Entries in a stream.",
                &["stream"],
            ),
            reclaimed: counter_vec(
                &r,
                "mutt_reclaimed_entries_total",
                "Pending entries reclaimed from other consumers.",
                &["group", "kind"],
            ),
            dlq_moved: counter_vec(
                &r,
                "mutt_dlq_moved_total",
                "Entries moved to a dead-letter queue.",
                &["group", "reason"],
            ),
            leases_lost: counter_vec(
                &r,
                "mutt_leases_lost_total",
                "Entries in hand that another consumer reclaimed.",
                &["group"],
            ),
            consumers_removed: counter_vec(
                &r,
                "mutt_consumers_removed_total",
                "Consumers removed from a group after they were gone.",
                &["group"],
            ),
            trimmed: counter_vec(
                &r,
                "mutt_stream_trimmed_entries_total",
                "Entries trimmed from a stream.",
                &["stream"],
            ),
            breaker_state: gauge_vec(
                &r,
                "mutt_circuit_breaker_state",
                "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
                &["name"],
            ),
            breaker_changes: counter_vec(
                &r,
                "mutt_circuit_breaker_state_changes_total",
                "Circuit breaker transitions.",
                &["name", "from_state", "to_state"],
            ),
            rate_limit_waits: counter(
                &r,
                "mutt_moog_rate_limit_hits_total",
                "Times the shared webhook rate limit made alerts wait.",
            ),
            config_version: gauge(
                &r,
                "mutt_config_version_applied",
                "Version of the hot-setting snapshot this process applied (0: start values).",
            ),
            dlq_parked: gauge_vec(
                &r,
                "mutt_dlq_parked",
                "Dead letters parked beside each DLQ, replayed only by an operator.",
                &["dlq"],
            ),
            remediation_rounds: counter_vec(
                &r,
                "mutt_remediation_rounds_total",
                "Automatic remediation rounds by DLQ and outcome.",
                &["dlq", "outcome"],
            ),
            remediation_replayed: counter_vec(
                &r,
                "mutt_remediation_replayed_total",
                "Dead letters replayed by the remediation loop.",
                &["dlq"],
            ),
            remediation_parked: counter_vec(
                &r,
                "mutt_remediation_parked_total",
                "Dead letters parked by the remediation loop.",
                &["dlq"],
            ),
            remediation_last_round: gauge(
                &r,
                "mutt_remediation_last_round_timestamp",
                "Unix time of the last remediation round that ran on this replica.",
            ),
            retention_runs: counter_vec(
                &r,
                "mutt_retention_runs_total",
                "Retention runs by outcome.",
                &["outcome"],
            ),
            retention_events_archived: counter(
                &r,
                "mutt_retention_events_archived_total",
                "Event-audit rows moved to the archive, a whole month at a time.",
            ),
            retention_archive_rows_dropped: counter(
                &r,
                "mutt_retention_events_deleted_total",
                "Archived event-audit rows dropped past the archive policy.",
            ),
            retention_config_audits_deleted: counter(
                &r,
                "mutt_retention_config_audits_deleted_total",
                "Config audit rows deleted past their policy.",
            ),
            retention_dead_letters_deleted: counter_vec(
                &r,
                "mutt_retention_dead_letters_deleted_total",
                "Parked dead letters removed past their policy.",
                &["group"],
            ),
            retention_default_rows_moved: counter(
                &r,
                "mutt_retention_default_rows_moved_total",
                "Event-audit rows moved from the DEFAULT partition into their month's.",
            ),
            retention_last_run: gauge(
                &r,
                "mutt_retention_last_run_timestamp",
                "Unix time the last retention run finished.",
            ),
            retention_duration: histogram(
                &r,
                "mutt_retention_enforcement_duration_seconds",
                "Time one retention run took.",
                SLOW_BUCKETS,
            ),
            dlq_replayed: counter_vec(
                &r,
                "mutt_dlq_replayed_total",
                "Dead letters replayed to their source stream.",
                &["group", "how"],
            ),
            group_pending: gauge_vec(
                &r,
                "mutt_stream_group_pending",
                "Entries of a consumer group delivered and not yet acknowledged.",
                &["stream", "group"],
            ),
            group_lag: gauge_vec(
                &r,
                "mutt_stream_group_lag",
                "Entries of a stream not yet delivered to a consumer group.",
                &["stream", "group"],
            ),
            dlq_depth: gauge_vec(
                &r,
                "mutt_dlq_depth",
                "Entries in each dead-letter queue.",
                &["group"],
            ),
            dlq_oldest_age: gauge_vec(
                &r,
                "mutt_dlq_oldest_age_seconds",
                "Age of the oldest entry of each dead-letter queue, in seconds (0 when empty).",
                &["group"],
            ),
            credential_generation: gauge_vec(
                &r,
                "mutt_credential_generation",
                "Credential generation this process applied, by secret (0: never rotated).",
                &["secret"],
            ),
            webhook_token_fallbacks: counter_vec(
                &r,
                "mutt_webhook_token_fallbacks_total",
                "Webhook requests retried with the other token after a 401/403 during a rotation.",
                &["result"],
            ),
            build_info: gauge_vec(&r, "mutt_build_info", "Build information.", &["version"]),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Series that SLOs and alerts divide by exist from the start at zero: a counter
        // that first appears at 20 shows Prometheus no increase at all.
        for (status, reason) in [
            ("success", ""),
            ("fail", "redis"),
            ("fail", "overloaded"),
            ("fail", "validation"),
            ("fail", "auth"),
        ] {
            m.ingest_requests.with_label_values(&[status, reason]);
        }
        for status in ["handled", "unhandled", "poison", "error"] {
            m.alerter_events.with_label_values(&[status]);
        }
        for status in ["success", "dlq"] {
            m.moog_alerts.with_label_values(&[status]);
        }
        for reason in ["rate_limit", "key_rate_limit", "lag", "low_severity"] {
            m.ingest_shed.with_label_values(&[reason]);
        }
        for result in ["accepted", "rejected", "replayed"] {
            m.ingest_events.with_label_values(&["http", result]);
        }
        m
    }

    /// Publishes the depth and the oldest entry's age of DLQs.
    pub fn observe_dlq(&self, group: &str, depth: u64, oldest_age_secs: Option<i64>) {
        self.dlq_depth.with_label_values(&[group]).set(depth as i64);
        self.dlq_oldest_age
            .with_label_values(&[group])
            .set(oldest_age_secs.unwrap_or(0));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The sum of every series of a labelled counter: a process's own total, which its
/// heartbeat reports (the console shows totals, not label sets).
pub fn counter_total(v: &IntCounterVec) -> u64 {
    v.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// The sum of the series of a labelled counter whose `result` label is `result`.
pub fn by_result(v: &IntCounterVec, result: &str) -> u64 {
    v.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "result" && l.value() == result)
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// The value of every series of a labelled gauge.
pub fn gauge_values(v: &IntGaugeVec) -> Vec<i64> {
    v.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_gauge().get_value() as i64)
        .collect()
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_builds_and_renders() {
        let m = metrics();
        m.ingest_requests.with_label_values(&["success", ""]).inc();
        let text = m.render();
        assert!(text.contains("mutt_ingest_requests_total{reason=\"\",status=\"success\"} 1"));
        assert!(text.contains("mutt_build_info"));
    }

    #[test]
    fn totals_sum_every_label_set() {
        let r = Registry::new();
        let c = counter_vec(&r, "t_total", "t", &["k"]);
        c.with_label_values(&["a"]).inc_by(2);
        c.with_label_values(&["b"]).inc_by(3);
        assert_eq!(counter_total(&c), 5);
        let g = gauge_vec(&r, "t_gauge", "t", &["k"]);
        g.with_label_values(&["a"]).set(1);
        g.with_label_values(&["b"]).set(-2);
        let mut v = gauge_values(&g);
        v.sort_unstable();
        assert_eq!(v, vec![-2, 1]);
    }
}
