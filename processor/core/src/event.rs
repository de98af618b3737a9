//! Events: what ingest accepts, validated once at the edge, and what the alerter reads.
//!
//! Validation turns an untrusted JSON value into an [`Event`] or a [`ValidationError`]
//! that names the field. It never panics and bounds every size, so that nothing a client
//! sends can make a worker fail later (an audit insert that PostgreSQL refuses, a stream
//! entry too large to handle).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::severity::{SyslogSeverity, WebhookSeverity};

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

/// Validates one untrusted JSON value into an event.
pub fn validate(
    value: Value,
    envelope: Envelope,
    limits: &Limits,
) -> Result<Event, ValidationError> {
    let Value::Object(mut obj) = value else {
        return Err(ValidationError::new(
            "event",
            "not_an_object",
            format!("an event must be a JSON object, not {}", type_name(&value)),
        ));
    };
    let hostname = required_string(&mut obj, "hostname")?;
    check_hostname(&hostname, limits)?;
    let message = required_string(&mut obj, "message")?;
    check_text("message", &message, limits.max_message_bytes, true)?;
    let timestamp = required_string(&mut obj, "timestamp")?;
    parse_timestamp(&timestamp)?;

    let syslog_severity = match obj.remove("syslog_severity") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            // JSON has no integers apart from numbers: 3.0 is the integer 3.
            n.as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && (0.0..=7.0).contains(f))
                        .map(|f| f as i64)
                })
                .and_then(SyslogSeverity::from_number)
                .ok_or_else(|| {
                    ValidationError::new(
                        "syslog_severity",
                        "invalid_value",
                        format!("syslog_severity {n} is not an integer from 0 to 7"),
                    )
                })?
                .number(),
        ),
        Some(Value::String(s)) => Some(
            SyslogSeverity::parse(&s)
                .ok_or_else(|| {
                    ValidationError::new(
                        "syslog_severity",
                        "invalid_value",
                        format!(
                            "syslog_severity {:?} is neither 0–7 nor a syslog name \
                             (emergency, alert, critical, error, warning, notice, informational, debug)",
                            truncate(&s, 40)
                        ),
                    )
                })?
                .number(),
        ),
        Some(other) => {
            return Err(ValidationError::new(
                "syslog_severity",
                "wrong_type",
                format!("syslog_severity must be a number or a string, not {}", type_name(&other)),
            ));
        }
    };

    let trap_oid = match optional_string(&mut obj, "trap_oid", limits.max_field_bytes)? {
        Some(s) if s.trim().is_empty() && s.len() <= 255 => None,
        Some(s) => Some(
            normalize_oid(&s).map_err(|m| ValidationError::new("trap_oid", "invalid_value", m))?,
        ),
        None => None,
    };
    let source_type = optional_string(&mut obj, "source_type", limits.max_field_bytes)?;
    // Kept as an attribute, but read for the webhook's severity: a name or a number.
    if let Some(v) = obj.get("severity")
        && !matches!(v, Value::String(_) | Value::Number(_) | Value::Null)
    {
        return Err(ValidationError::new(
            "severity",
            "wrong_type",
            format!("severity must be a name or a number, not {}", type_name(v)),
        ));
    }

    if obj.len() > limits.max_attributes {
        return Err(ValidationError::new(
            "event",
            "too_large",
            format!(
                "the event has {} extra fields; at most {} are kept",
                obj.len(),
                limits.max_attributes
            ),
        ));
    }
    for (k, v) in &obj {
        if k.chars().count() > limits.max_hostname_chars {
            return Err(ValidationError::new(
                truncate(k, 40),
                "too_large",
                format!(
                    "field names are limited to {} characters",
                    limits.max_hostname_chars
                ),
            ));
        }
        if let Value::String(s) = v
            && s.len() > limits.max_field_bytes
        {
            return Err(ValidationError::new(
                k.clone(),
                "too_large",
                format!("{} bytes; the limit is {}", s.len(), limits.max_field_bytes),
            ));
        }
    }

    let event = Event {
        id: envelope.id,
        correlation_id: envelope.correlation_id,
        received_at_ms: envelope.received_at_ms,
        hostname,
        message,
        timestamp,
        syslog_severity,
        trap_oid,
        source_type,
        attributes: obj,
    };
    Ok(event)
}

/// Parses an RFC 3339 timestamp, with a clear error.
pub fn parse_timestamp(s: &str) -> Result<OffsetDateTime, ValidationError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        ValidationError::new(
            "timestamp",
            "invalid_timestamp",
            format!(
                "{:?} is not an RFC 3339 timestamp such as 2025-11-11T16:34:50Z ({e})",
                truncate(s, 64)
            ),
        )
    })
}

/// Normalises an OID: strips one leading dot and checks that it is 1–128 numeric arcs.
pub fn normalize_oid(s: &str) -> Result<String, String> {
    // Stored in VARCHAR(255) columns; counted as sent, so that the limit is the one the
    // schema documents.
    if s.len() > 255 {
        return Err(format!(
            "an OID has at most 255 characters, this one has {}",
            s.len()
        ));
    }
    let t = s.trim();
    let t = t.strip_prefix('.').unwrap_or(t);
    if t.is_empty() {
        return Err("an OID needs at least one arc".into());
    }
    let mut arcs = 0usize;
    for arc in t.split('.') {
        arcs += 1;
        if arc.is_empty() || arc.len() > 10 || !arc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{:?} is not a dotted numeric OID such as 1.3.6.1.4.1.9",
                truncate(s, 64)
            ));
        }
    }
    if arcs > 128 {
        return Err(format!("an OID has at most 128 arcs, this one has {arcs}"));
    }
    Ok(t.to_string())
}

fn required_string(
    obj: &mut Map<String, Value>,
    field: &'static str,
) -> Result<String, ValidationError> {
    match obj.remove(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ValidationError::new(
            field,
            "missing_field",
            format!("{field} is required"),
        )),
        Some(other) => Err(ValidationError::new(
            field,
            "wrong_type",
            format!("{field} must be a string, not {}", type_name(&other)),
        )),
    }
}

fn optional_string(
    obj: &mut Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, ValidationError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.len() > max {
                return Err(ValidationError::new(
                    field,
                    "too_large",
                    format!("{} bytes; the limit is {max}", s.len()),
                ));
            }
            if s.contains('\0') {
                return Err(ValidationError::new(
                    field,
                    "invalid_value",
                    "NUL characters are not allowed",
                ));
            }
            Ok(Some(s))
        }
        Some(other) => Err(ValidationError::new(
            field,
            "wrong_type",
            format!("{field} must be a string, not {}", type_name(&other)),
        )),
    }
}

/// A host name: not blank, no control characters, at most `max_hostname_chars` characters.
fn check_hostname(s: &str, limits: &Limits) -> Result<(), ValidationError> {
    let n = s.chars().count();
    if n > limits.max_hostname_chars {
        return Err(ValidationError::new(
            "hostname",
            "too_large",
            format!("{n} characters; the limit is {}", limits.max_hostname_chars),
        ));
    }
    check_text("hostname", s, usize::MAX, false)
}

/// Non-empty after trimming, within `max` bytes, no NUL (PostgreSQL refuses it in text) and,
/// unless `multiline`, no control characters at all.
fn check_text(
    field: &'static str,
    s: &str,
    max: usize,
    multiline: bool,
) -> Result<(), ValidationError> {
    if s.trim().is_empty() {
        return Err(ValidationError::new(
            field,
            "missing_field",
            format!("{field} must not be empty"),
        ));
    }
    if s.len() > max {
        return Err(ValidationError::new(
            field,
            "too_large",
            format!("{} bytes; the limit is {max}", s.len()),
        ));
    }
    let bad = if multiline {
        s.contains('\0')
    } else {
        s.chars().any(char::is_control)
    };
    if bad {
        return Err(ValidationError::new(
            field,
            "invalid_value",
            if multiline {
                format!("{field} must not contain NUL characters")
            } else {
                format!("{field} must not contain control characters")
            },
        ));
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn env() -> Envelope {
        Envelope {
            id: "0190-test".into(),
            correlation_id: "corr".into(),
            received_at_ms: 1,
        }
    }

    fn ok(v: Value) -> Event {
        validate(v, env(), &Limits::default()).unwrap()
    }

    fn err(v: Value) -> ValidationError {
        validate(v, env(), &Limits::default()).unwrap_err()
    }

    #[test]
    fn a_sample_event_validates_with_seven_fraction_digits() {
        let e = ok(json!({
            "hostname": "core-router-01.dc1.example.com",
            "timestamp": "2025-11-11T16:34:50.6449285Z",
            "message": "%LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
            "syslog_severity": "Warning",
            "source_type": "cisco-ios",
            "facility": "local7"
        }));
        assert_eq!(e.syslog_severity, Some(4));
        assert_eq!(e.source_type.as_deref(), Some("cisco-ios"));
        assert_eq!(e.attributes.get("facility"), Some(&json!("local7")));
        assert!(e.time().is_ok());
        assert_eq!(e.webhook_severity().number(), 3);
    }

    #[test]
    fn each_required_field_is_named_when_missing_or_wrong() {
        let base = json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z"});
        for f in ["hostname", "message", "timestamp"] {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(f);
            let e = err(v);
            assert_eq!((e.field.as_str(), e.code), (f, "missing_field"));
            let mut v = base.clone();
            v[f] = json!(42);
            let e = err(v);
            assert_eq!((e.field.as_str(), e.code), (f, "wrong_type"));
        }
        assert_eq!(err(json!([1])).code, "not_an_object");
        assert_eq!(err(json!("x")).code, "not_an_object");
    }

    #[test]
    fn bad_values_are_refused_with_their_field() {
        let mut v = json!({"hostname": "h", "message": "m", "timestamp": "yesterday"});
        assert_eq!(err(v.clone()).code, "invalid_timestamp");
        v["timestamp"] = json!("2025-01-01T00:00:00Z");
        v["syslog_severity"] = json!(9);
        assert_eq!(err(v.clone()).field, "syslog_severity");
        v["syslog_severity"] = json!("loud");
        assert_eq!(err(v.clone()).field, "syslog_severity");
        v["syslog_severity"] = json!(2);
        v["trap_oid"] = json!("1.3.x");
        assert_eq!(err(v.clone()).field, "trap_oid");
        v["trap_oid"] = json!(".1.3.6.1");
        assert_eq!(ok(v.clone()).trap_oid.as_deref(), Some("1.3.6.1"));
        v["hostname"] = json!("a\u{0}b");
        assert_eq!(err(v.clone()).field, "hostname");
        v["hostname"] = json!("   ");
        assert_eq!(err(v.clone()).code, "missing_field");
        v["hostname"] = json!("x".repeat(256));
        assert_eq!(err(v).code, "too_large");
    }

    /// What schemas/event.schema.json says, the validation does (schemathesis checks the
    /// same against a running ingest in CI).
    #[test]
    fn validation_matches_the_documented_schema() {
        let base = json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z"});
        let with = |k: &str, v: Value| {
            let mut e = base.clone();
            e[k] = v;
            e
        };
        assert_eq!(err(with("severity", json!({}))).code, "wrong_type");
        assert_eq!(err(with("severity", json!([1]))).code, "wrong_type");
        assert!(validate(with("severity", json!(null)), env(), &Limits::default()).is_ok());
        assert!(validate(with("severity", json!(2.5)), env(), &Limits::default()).is_ok());
        assert_eq!(
            ok(with("syslog_severity", json!(3.0))).syslog_severity,
            Some(3)
        );
        assert_eq!(
            ok(with("syslog_severity", json!(null))).syslog_severity,
            None
        );
        assert_eq!(
            err(with("syslog_severity", json!(3.5))).field,
            "syslog_severity"
        );
        assert_eq!(
            err(with("syslog_severity", json!("+5"))).field,
            "syslog_severity"
        );
        assert_eq!(
            ok(with("syslog_severity", json!(" Warn "))).syslog_severity,
            Some(4)
        );
        // 255 characters of any width; the OID limit counts what was sent.
        assert!(
            validate(
                with("hostname", json!("é".repeat(255))),
                env(),
                &Limits::default()
            )
            .is_ok()
        );
        assert_eq!(
            err(with("hostname", json!("é".repeat(256)))).code,
            "too_large"
        );
        assert_eq!(
            err(with("hostname", json!("a\u{85}b"))).code,
            "invalid_value"
        );
        assert_eq!(ok(with("trap_oid", json!("  "))).trap_oid, None);
        assert_eq!(
            err(with(
                "trap_oid",
                json!(format!(".{}", "1.".repeat(127) + "1"))
            ))
            .field,
            "trap_oid"
        );
    }

    #[test]
    fn webhook_severity_falls_back_to_a_severity_attribute() {
        let e = ok(
            json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z", "severity": "Major"}),
        );
        assert_eq!(e.webhook_severity().number(), 4);
        let e = ok(json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z"}));
        assert_eq!(e.webhook_severity().number(), 3);
    }

    #[test]
    fn to_json_keeps_every_field() {
        let v = json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z",
            "syslog_severity": 3, "trap_oid": "1.3.6", "source_type": "snmp", "x": {"y": [1, 2]}});
        assert_eq!(ok(v.clone()).to_json(), v);
    }

    #[test]
    fn oid_normalisation() {
        assert_eq!(normalize_oid(".1.3.6.1.4.1.9").unwrap(), "1.3.6.1.4.1.9");
        assert!(normalize_oid("1..3").is_err());
        assert!(normalize_oid(".").is_err());
        assert!(normalize_oid("1.".repeat(129).trim_end_matches('.')).is_err());
    }

    proptest! {
        #[test]
        fn validation_never_panics(s in "\\PC{0,64}", n in any::<i64>(), b in any::<bool>()) {
            for v in [
                json!({"hostname": s, "message": s, "timestamp": s, "syslog_severity": n, "trap_oid": s}),
                json!({"hostname": n, "message": b, "timestamp": null}),
                json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z", "syslog_severity": s}),
            ] {
                if let Ok(e) = validate(v, env(), &Limits::default()) {
                    prop_assert!(e.check(&Limits::default()).is_ok());
                }
            }
        }
    }
}
