//! The MessagePack encoding of events and alerts in stream entries.
//!
//! Entries are encoded as MessagePack maps (field names included), so that adding an
//! optional field later does not break a reader that is one version behind. Decoding is
//! the boundary with untrusted bytes: anyone with Redis access can write an entry, so a
//! decoded value is checked again, and every failure is an error, never a panic.

use crate::alert::Alert;
use crate::event::{Event, Limits};

/// Why a stream payload could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not MessagePack of the expected shape.
    #[error("undecodable payload: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// Could not be encoded (only possible for values that serde cannot represent).
    #[error("unencodable value: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Decoded, but breaks an invariant that ingest guarantees.
    #[error("invalid payload: {0}")]
    Invalid(String),
}

/// Encodes an event for `{p}:events`.
pub fn encode_event(event: &Event) -> Result<Vec<u8>, CodecError> {
    Ok(rmp_serde::to_vec_named(event)?)
}

/// Decodes and checks an event read from a stream.
pub fn decode_event(bytes: &[u8], limits: &Limits) -> Result<Event, CodecError> {
    let event: Event = rmp_serde::from_slice(bytes)?;
    event
        .check(limits)
        .map_err(|e| CodecError::Invalid(e.to_string()))?;
    Ok(event)
}

/// Encodes an alert for `{p}:alerts`.
pub fn encode_alert(alert: &Alert) -> Result<Vec<u8>, CodecError> {
    Ok(rmp_serde::to_vec_named(alert)?)
}

/// Decodes and checks an alert read from a stream.
pub fn decode_alert(bytes: &[u8], limits: &Limits) -> Result<Alert, CodecError> {
    let alert: Alert = rmp_serde::from_slice(bytes)?;
    if alert.id.is_empty() {
        return Err(CodecError::Invalid("alert id is empty".into()));
    }
    if alert.severity > 5 {
        return Err(CodecError::Invalid(format!(
            "alert severity {} is outside 0–5",
            alert.severity
        )));
    }
    alert
        .event
        .check(limits)
        .map_err(|e| CodecError::Invalid(e.to_string()))?;
    Ok(alert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, json};

    fn event(
        host: String,
        msg: String,
        sev: Option<u8>,
        attrs: Map<String, serde_json::Value>,
    ) -> Event {
        Event {
            id: "0190".into(),
            correlation_id: "c".into(),
            received_at_ms: 42,
            hostname: host,
            message: msg,
            timestamp: "2025-01-01T00:00:00+02:00".into(),
            syslog_severity: sev,
            trap_oid: Some("1.3.6".into()),
            source_type: None,
            attributes: attrs,
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let l = Limits::default();
        for bytes in [
            &b""[..],
            b"\xc1",
            b"\x92\x01",
            b"not msgpack at all",
            b"\x81\xa2id\xc0",
        ] {
            assert!(decode_event(bytes, &l).is_err());
            assert!(decode_alert(bytes, &l).is_err());
        }
        // Valid MessagePack with a broken invariant.
        let mut e = event("h".into(), "m".into(), None, Map::new());
        e.hostname = String::new();
        let bytes = encode_event(&e).unwrap();
        assert!(matches!(
            decode_event(&bytes, &l),
            Err(CodecError::Invalid(_))
        ));
    }

    proptest! {
        #[test]
        fn events_round_trip(
            host in "[a-z0-9.-]{1,40}",
            msg in "\\PC{1,100}".prop_filter("non-blank", |s| !s.trim().is_empty() && !s.contains('\0')),
            sev in proptest::option::of(0u8..=7),
            k in "[a-z]{1,8}", v in any::<i64>(),
        ) {
            let mut attrs = Map::new();
            attrs.insert(k, json!({"n": v, "list": [1, "x", null]}));
            let e = event(host, msg, sev, attrs);
            let bytes = encode_event(&e).unwrap();
            prop_assert_eq!(decode_event(&bytes, &Limits::default()).unwrap(), e);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_event(&bytes, &Limits::default());
            let _ = decode_alert(&bytes, &Limits::default());
        }
    }
}
