//! Validation: an untrusted JSON value in, an [`Event`] or the [`ValidationError`] that
//! names the field out, every size bounded.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Envelope, Event, Limits, ValidationError};
use crate::severity::SyslogSeverity;

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
pub(super) fn check_hostname(s: &str, limits: &Limits) -> Result<(), ValidationError> {
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
pub(super) fn check_text(
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
