//! A batch decoded, checked and matched against the rules: pure CPU, no I/O, so that it
//! runs on the blocking pool and is tested without servers.

use mutt_bus::{NewEntry, StreamEntry};
use mutt_core::alert::Alert;
use mutt_core::codec;
use mutt_core::event::{Event, Limits};
use mutt_core::fingerprint::fingerprint_hash;
use mutt_core::rules::{Outcome, RuleSet};
use mutt_store::AuditRow;
use mutt_telemetry::{metrics, otel};
use mutt_worker::trace::entry_span;

use crate::Outputs;

/// An unhandled event of a batch, with its fingerprint (computed off the runtime).
#[derive(Debug)]
pub(crate) struct Unhandled {
    pub(crate) event: Event,
    /// Index into `ack` of its entry.
    pub(crate) idx: usize,
    pub(crate) fingerprint: u64,
}

/// A batch decoded and matched: what to write, and what to count as unhandled.
#[derive(Debug)]
pub(crate) struct Evaluated {
    pub(crate) out: Outputs,
    pub(crate) unhandled: Vec<Unhandled>,
    /// The batch's entries, handed back.
    pub(crate) entries: Vec<StreamEntry>,
}

/// Decodes and checks every entry and evaluates the rules: pure CPU, no I/O, run on the
/// blocking pool. Undecodable entries become poison; matched events their audit rows and
/// alerts; unmatched ones are returned with their fingerprints for counting.
pub(crate) fn evaluate(
    entries: Vec<StreamEntry>,
    rules: &RuleSet,
    limits: &Limits,
    now: i64,
) -> Evaluated {
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
