//! Events: what ingest accepts, validated once at the edge, and what the alerter reads.
//!
//! Validation turns an untrusted JSON value into an [`Event`] or a [`ValidationError`]
//! that names the field. It never panics and bounds every size, so that nothing a client
//! sends can make a worker fail later (an audit insert that PostgreSQL refuses, a stream
//! entry too large to handle).
//!
//! # Layout
//!
//! - `validation`: the checks of each field, from untrusted JSON to an [`Event`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::severity::{SyslogSeverity, WebhookSeverity};

mod validation;

use validation::{check_hostname, check_text};
pub use validation::{normalize_oid, parse_timestamp, truncate, validate};

/// The fields of an event that MUTT interprets; everything else is kept as attributes.
pub const KNOWN_FIELDS: &[&str] = &[
    "hostname",
    "message",
    "timestamp",
    "syslog_severity",
    "trap_oid",
    "source_type",
];

/// A validated event, as it travels through the `{p}:events` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id given at ingest (a UUIDv7). It is the audit row's key and the
    /// `external_id` of the alert this event causes, so a redelivered or replayed entry
    /// keeps it and causes no second row and no new alert identity.
    pub id: String,
    /// The request's correlation id (`X-Correlation-ID`, or one made at ingest).
    pub correlation_id: String,
    /// When ingest accepted the event, in ms since the epoch (end-to-end latency).
    pub received_at_ms: i64,
    /// The device that sent the event.
    pub hostname: String,
    /// The log line or trap text.
    pub message: String,
    /// The event's own time, RFC 3339, as the client sent it.
    pub timestamp: String,
    /// Syslog severity 0–7, normalised from a number or a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog_severity: Option<u8>,
    /// SNMP trap OID, without a leading dot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trap_oid: Option<String>,
    /// Free-form origin (`cisco-ios`, `snmp`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// Every other field the client sent, unchanged.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

impl Event {
    /// The event time parsed from [`Event::timestamp`].
    pub fn time(&self) -> Result<OffsetDateTime, time::error::Parse> {
        OffsetDateTime::parse(&self.timestamp, &Rfc3339)
    }

    /// The syslog severity, if the event has one.
    pub fn severity(&self) -> Option<SyslogSeverity> {
        self.syslog_severity
            .and_then(|n| SyslogSeverity::from_number(n.into()))
    }

    /// The Moogsoft severity of this event: from its syslog severity when it has one,
    /// otherwise from a `severity` attribute (SNMP traps carry `Major`, `Minor`, …),
    /// otherwise 3.
    pub fn webhook_severity(&self) -> WebhookSeverity {
        if let Some(s) = self.severity() {
            return s.webhook();
        }
        match self.attributes.get("severity") {
            Some(Value::String(name)) => WebhookSeverity::from_name(name),
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(SyslogSeverity::from_number)
                .map_or(WebhookSeverity::UNKNOWN, SyslogSeverity::webhook),
            _ => WebhookSeverity::UNKNOWN,
        }
    }

    /// The event as a JSON object, as the client sent it after normalisation (severity as
    /// a number, OID without a leading dot). This is the webhook's `custom_info` and the
    /// audit row's `raw_message`.
    pub fn to_json(&self) -> Value {
        let mut m = self.attributes.clone();
        m.insert("hostname".into(), Value::String(self.hostname.clone()));
        m.insert("message".into(), Value::String(self.message.clone()));
        m.insert("timestamp".into(), Value::String(self.timestamp.clone()));
        if let Some(s) = self.syslog_severity {
            m.insert("syslog_severity".into(), Value::from(s));
        }
        if let Some(o) = &self.trap_oid {
            m.insert("trap_oid".into(), Value::String(o.clone()));
        }
        if let Some(t) = &self.source_type {
            m.insert("source_type".into(), Value::String(t.clone()));
        }
        Value::Object(m)
    }

    /// Checks the invariants that validation established. Used on entries read back from a
    /// stream, which anyone with Redis access could have written.
    pub fn check(&self, limits: &Limits) -> Result<(), ValidationError> {
        check_hostname(&self.hostname, limits)?;
        check_text("message", &self.message, limits.max_message_bytes, true)?;
        parse_timestamp(&self.timestamp)?;
        if self.id.is_empty() {
            return Err(ValidationError::new(
                "id",
                "missing_field",
                "event id is empty",
            ));
        }
        if let Some(s) = self.syslog_severity
            && s > 7
        {
            return Err(ValidationError::new(
                "syslog_severity",
                "invalid_value",
                format!("syslog severity {s} is outside 0–7"),
            ));
        }
        if let Some(o) = &self.trap_oid {
            normalize_oid(o).map_err(|m| ValidationError::new("trap_oid", "invalid_value", m))?;
        }
        Ok(())
    }
}

/// Size limits applied to every event. The defaults fit syslog and traps with room to
/// spare while keeping one stream entry well below what a worker batch can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `hostname` at most this many characters (the audit column is `VARCHAR(255)`, which
    /// counts characters); attribute names likewise.
    pub max_hostname_chars: usize,
    /// `message` at most this many bytes.
    pub max_message_bytes: usize,
    /// Any other string field at most this many bytes.
    pub max_field_bytes: usize,
    /// At most this many attributes beyond the known fields.
    pub max_attributes: usize,
    /// The whole event, encoded for the stream, at most this many bytes.
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_hostname_chars: 255,
            max_message_bytes: 16 * 1024,
            max_field_bytes: 4 * 1024,
            max_attributes: 64,
            max_event_bytes: 64 * 1024,
        }
    }
}

/// Why one event was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field at fault (`hostname`, `timestamp`, …, or `event` for the whole item).
    pub field: String,
    /// A stable machine-readable code (`missing_field`, `wrong_type`, `too_large`,
    /// `invalid_value`, `invalid_timestamp`, `not_an_object`).
    pub code: &'static str,
    /// A sentence for humans.
    pub message: String,
}

impl ValidationError {
    /// A new error.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// What ingest adds to each event: identity, correlation and arrival time.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The event id (a UUIDv7 string).
    pub id: String,
    /// The request's correlation id.
    pub correlation_id: String,
    /// Arrival time, ms since the epoch.
    pub received_at_ms: i64,
}

#[cfg(test)]
mod tests;
