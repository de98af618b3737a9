//! Alerts: what the alerter writes to `{p}:alerts` and the forwarder turns into the
//! Moogsoft payload of `schemas/alert.schema.json`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Event;

/// Why an alert exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A rule matched with a forwarded handling.
    Rule,
    /// A flood of unhandled events with one fingerprint reached the threshold.
    Unhandled,
}

/// An alert in the alerts stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The webhook's `external_id`, stable per source event: the event id for rule alerts,
    /// `unhandled-<event id>` for a meta-alert (the event that reached the threshold).
    pub id: String,
    /// Rule alert or unhandled meta-alert.
    pub kind: AlertKind,
    /// The rule that matched (rule alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<i32>,
    /// The handling that caused the alert (`Page_and_ticket`, …; `unhandled` for meta-alerts).
    pub handling: String,
    /// The team (the webhook's `class`).
    pub team: String,
    /// Moogsoft's dedup signature: host and rule, or host and fingerprint for meta-alerts,
    /// so that distinct problems on one host stay distinct alerts.
    pub signature: String,
    /// Moogsoft severity 0–5.
    pub severity: u8,
    /// The webhook's `description`.
    pub description: String,
    /// The event that caused the alert.
    pub event: Event,
    /// When the alerter created it, ms since the epoch.
    pub created_at_ms: i64,
}

/// Constant fields of the webhook payload.
const MANAGER: &str = "MUTT";

impl Alert {
    /// A rule alert for `event`.
    pub fn for_rule(event: &Event, rule_id: i32, handling: &str, team: &str, now_ms: i64) -> Self {
        Self {
            id: event.id.clone(),
            kind: AlertKind::Rule,
            rule_id: Some(rule_id),
            handling: handling.to_string(),
            team: team.to_string(),
            signature: format!("{}::rule:{rule_id}", event.hostname),
            severity: event.webhook_severity().number(),
            description: event.message.clone(),
            event: event.clone(),
            created_at_ms: now_ms,
        }
    }

    /// A meta-alert: `count` unhandled events with `fingerprint` from the event's host
    /// within `window_secs`, the event being the one that reached the threshold.
    pub fn for_unhandled(
        event: &Event,
        fingerprint: &str,
        team: &str,
        count: u64,
        window_secs: u64,
        now_ms: i64,
    ) -> Self {
        let sample: String = event.message.chars().take(200).collect();
        Self {
            id: format!("unhandled-{}", event.id),
            kind: AlertKind::Unhandled,
            rule_id: None,
            handling: "unhandled".into(),
            team: team.to_string(),
            signature: format!("{}::unhandled:{fingerprint}", event.hostname),
            severity: event.webhook_severity().number(),
            description: format!(
                "[MUTT] {count} unhandled messages in {window_secs}s from '{}'. Sample message: {sample}",
                event.hostname
            ),
            event: event.clone(),
            created_at_ms: now_ms,
        }
    }

    /// The Moogsoft event for this alert (one element of `{"events": [...]}` when batched).
    pub fn webhook_payload(&self, agent_location: &str) -> Value {
        serde_json::to_value(self.webhook(agent_location)).unwrap_or(Value::Null)
    }

    /// The Moogsoft event serialised to JSON, without building an intermediate value (the
    /// forwarder's hot path).
    pub fn webhook_body(&self, agent_location: &str) -> Vec<u8> {
        serde_json::to_vec(&self.webhook(agent_location)).unwrap_or_default()
    }

    fn webhook<'a>(&'a self, agent_location: &'a str) -> Webhook<'a> {
        Webhook {
            signature: &self.signature,
            source_id: &self.event.hostname,
            external_id: &self.id,
            manager: MANAGER,
            source: &self.event.hostname,
            class: &self.team,
            agent: MANAGER,
            agent_location,
            kind: match self.kind {
                AlertKind::Rule => "rule",
                AlertKind::Unhandled => "unhandled",
            },
            severity: self.severity,
            description: &self.description,
            agent_time: self
                .event
                .time()
                .map(|t| t.unix_timestamp())
                .unwrap_or(self.event.received_at_ms / 1000),
            custom_info: CustomInfo(self),
        }
    }
}

/// The Moogsoft event of `schemas/alert.schema.json`, borrowed from an alert.
#[derive(Serialize)]
struct Webhook<'a> {
    signature: &'a str,
    source_id: &'a str,
    external_id: &'a str,
    manager: &'a str,
    source: &'a str,
    class: &'a str,
    agent: &'a str,
    agent_location: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    severity: u8,
    description: &'a str,
    agent_time: i64,
    custom_info: CustomInfo<'a>,
}

/// `custom_info`: the event as the client sent it after normalisation, plus MUTT's own
/// identifiers under `mutt` (which replaces a client attribute of that name).
struct CustomInfo<'a>(&'a Alert);

#[derive(Serialize)]
struct MuttInfo<'a> {
    event_id: &'a str,
    correlation_id: &'a str,
    rule_id: Option<i32>,
    handling: &'a str,
    kind: AlertKind,
}

impl Serialize for CustomInfo<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (alert, e) = (self.0, &self.0.event);
        let mut m = s.serialize_map(None)?;
        for (k, v) in &e.attributes {
            if k != "mutt" {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("hostname", &e.hostname)?;
        m.serialize_entry("message", &e.message)?;
        m.serialize_entry("timestamp", &e.timestamp)?;
        if let Some(sev) = e.syslog_severity {
            m.serialize_entry("syslog_severity", &sev)?;
        }
        if let Some(o) = &e.trap_oid {
            m.serialize_entry("trap_oid", o)?;
        }
        if let Some(t) = &e.source_type {
            m.serialize_entry("source_type", t)?;
        }
        m.serialize_entry(
            "mutt",
            &MuttInfo {
                event_id: &e.id,
                correlation_id: &e.correlation_id,
                rule_id: alert.rule_id,
                handling: &alert.handling,
                kind: alert.kind,
            },
        )?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn event() -> Event {
        Event {
            id: "0190abc".into(),
            correlation_id: "corr-1".into(),
            received_at_ms: 5_000,
            hostname: "core-1".into(),
            message: "%LINK-3-UPDOWN down".into(),
            timestamp: "2025-11-11T16:34:50.6449285Z".into(),
            syslog_severity: Some(2),
            trap_oid: None,
            source_type: Some("cisco-ios".into()),
            attributes: Map::new(),
        }
    }

    #[test]
    fn payload_has_the_moogsoft_shape() {
        let a = Alert::for_rule(&event(), 7, "Page_and_ticket", "NetOps", 1);
        let p = a.webhook_payload("alerter-1");
        assert_eq!(p["external_id"], "0190abc");
        assert_eq!(p["class"], "NetOps");
        assert_eq!(p["severity"], 5);
        assert_eq!(p["agent_time"], 1_762_878_890);
        assert_eq!(p["signature"], "core-1::rule:7");
        assert_eq!(p["custom_info"]["hostname"], "core-1");
        assert_eq!(p["custom_info"]["mutt"]["correlation_id"], "corr-1");
        for k in [
            "source_id",
            "manager",
            "source",
            "agent",
            "agent_location",
            "type",
            "description",
        ] {
            assert!(p[k].is_string(), "{k}");
        }
    }

    #[test]
    fn the_serialised_body_is_the_payload_and_custom_info_is_the_event() {
        let mut e = event();
        e.attributes
            .insert("mutt".into(), Value::from("client's own"));
        e.attributes.insert("site".into(), Value::from("LAB-1"));
        let a = Alert::for_rule(&e, 7, "Page_and_ticket", "NetOps", 1);
        let body: Value = serde_json::from_slice(&a.webhook_body("fwd-1")).unwrap();
        assert_eq!(body, a.webhook_payload("fwd-1"));
        let mut info = body["custom_info"].as_object().unwrap().clone();
        assert_eq!(info.remove("mutt").unwrap()["rule_id"], 7);
        let mut expected = e.to_json().as_object().unwrap().clone();
        expected.remove("mutt");
        assert_eq!(info, expected);
    }

    #[test]
    fn meta_alert_identity_is_stable_per_event() {
        let a = Alert::for_unhandled(&event(), "abcd", "NETO", 100, 86400, 1);
        let b = Alert::for_unhandled(&event(), "abcd", "NETO", 100, 86400, 2);
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, "unhandled-0190abc");
        assert!(a.description.contains("100 unhandled messages"));
    }
}
