//! Meta-alerts: unhandled events counted per host and fingerprint over a window, one
//! alert when a fingerprint reaches the threshold.

use std::borrow::Cow;
use std::collections::HashMap;

use mutt_bus::unhandled::FingerprintCount;
use mutt_bus::{BusError, NewEntry, StreamEntry};
use mutt_core::alert::Alert;
use mutt_core::codec;
use mutt_core::event::Event;
use mutt_core::hot::HotConfig;
use mutt_core::rules::RuleSet;
use mutt_store::AuditRow;
use mutt_telemetry::metrics;

use crate::evaluate::Unhandled;
use crate::{Alerter, META_ALERT_HANDLING};

impl Alerter {
    /// Counts the batch's unhandled events per host and fingerprint (one script call) and
    /// makes the meta-alerts of the fingerprints that reached the threshold, with their
    /// audit rows. Nothing is changed here, so a failed call can simply be retried.
    pub(crate) async fn meta_alerts(
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
}
