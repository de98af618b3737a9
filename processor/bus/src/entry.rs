//! Stream entries as MUTT writes and reads them.
//!
//! An entry has the fields `payload` (MessagePack, see `mutt_core::codec`) and, when the
//! writer had one, `traceparent` / `tracestate` (W3C trace context), so that one trace
//! spans every hop. Dead letters add provenance fields (see the DLQ module).

use redis::Value;

use crate::error::BusError;

/// Field holding the MessagePack payload.
pub const PAYLOAD: &str = "payload";
/// Field holding the W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// Field holding the W3C `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// W3C trace context carried by an entry (the telemetry crate's carrier, so that spans
/// can be parented on it directly).
pub use mutt_telemetry::otel::Carrier as TraceContext;

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The MessagePack payload.
    pub payload: Vec<u8>,
    /// Trace context to carry.
    pub trace: TraceContext,
}

impl NewEntry {
    /// An entry with a payload and trace context.
    pub fn new(payload: Vec<u8>, trace: TraceContext) -> Self {
        Self { payload, trace }
    }

    /// The entry as script arguments: the number of field and value arguments, then them
    /// (see `append_entries` in the `scripts` module).
    pub(crate) fn push_args(&self, inv: &mut redis::ScriptInvocation<'_>) {
        let n = 2
            + 2 * usize::from(self.trace.traceparent.is_some())
            + 2 * usize::from(self.trace.tracestate.is_some());
        inv.arg(n).arg(PAYLOAD).arg(&self.payload);
        if let Some(tp) = &self.trace.traceparent {
            inv.arg(TRACEPARENT).arg(tp);
        }
        if let Some(ts) = &self.trace.tracestate {
            inv.arg(TRACESTATE).arg(ts);
        }
    }

    pub(crate) fn write_fields(&self, cmd: &mut redis::Cmd) {
        cmd.arg(PAYLOAD).arg(&self.payload);
        if let Some(tp) = &self.trace.traceparent {
            cmd.arg(TRACEPARENT).arg(tp);
        }
        if let Some(ts) = &self.trace.tracestate {
            cmd.arg(TRACESTATE).arg(ts);
        }
    }
}

/// An entry read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The stream id (`1700000000000-0`).
    pub id: String,
    /// All fields, in order. Empty when the entry was deleted while pending (Redis
    /// returns the id with no fields then).
    pub fields: Vec<(String, Vec<u8>)>,
}

impl StreamEntry {
    /// The value of a field.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The payload, if present.
    pub fn payload(&self) -> Option<&[u8]> {
        self.field(PAYLOAD)
    }

    /// A text field, if present and UTF-8.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The trace context carried by the entry.
    pub fn trace(&self) -> TraceContext {
        TraceContext {
            traceparent: self.text(TRACEPARENT).map(str::to_string),
            tracestate: self.text(TRACESTATE).map(str::to_string),
        }
    }

    /// Whether Redis reported the entry as deleted (trimmed while it was pending).
    pub fn is_deleted(&self) -> bool {
        self.fields.is_empty()
    }
}

/// The milliseconds part of a stream id.
pub fn id_millis(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

fn bytes(v: Value) -> Result<Vec<u8>, BusError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::VerbatimString { text, .. } => Ok(text.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(BusError::Protocol(format!(
            "expected a string, got {other:?}"
        ))),
    }
}

fn string(v: Value) -> Result<String, BusError> {
    String::from_utf8(bytes(v)?)
        .map_err(|_| BusError::Protocol("non-UTF-8 stream id or field name".into()))
}

fn items(v: Value) -> Result<Vec<Value>, BusError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Map(m) => Ok(m.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Value::Nil => Ok(Vec::new()),
        other => Err(BusError::Protocol(format!(
            "expected an array, got {other:?}"
        ))),
    }
}

/// Parses one `[id, [field, value, …]]` entry.
pub(crate) fn parse_entry(v: Value) -> Result<StreamEntry, BusError> {
    let mut parts = items(v)?.into_iter();
    let id = string(
        parts
            .next()
            .ok_or_else(|| BusError::Protocol("entry without an id".into()))?,
    )?;
    let mut fields = Vec::new();
    if let Some(fv) = parts.next() {
        let mut flat = items(fv)?.into_iter();
        while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
            fields.push((string(k)?, bytes(v)?));
        }
    }
    Ok(StreamEntry { id, fields })
}

/// Parses a list of entries.
pub(crate) fn parse_entries(v: Value) -> Result<Vec<StreamEntry>, BusError> {
    items(v)?.into_iter().map(parse_entry).collect()
}

/// Parses an `XREADGROUP` reply for one stream: `[[stream, [entries]]]` in RESP2, or a map
/// in RESP3; `nil` when the block timed out.
pub(crate) fn parse_read_reply(v: Value) -> Result<Vec<StreamEntry>, BusError> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(m) => match m.into_iter().next() {
            Some((_, entries)) => parse_entries(entries),
            None => Ok(Vec::new()),
        },
        other => {
            let streams = items(other)?;
            match streams.into_iter().next() {
                None => Ok(Vec::new()),
                Some(s) => {
                    let mut pair = items(s)?.into_iter();
                    pair.next();
                    pair.next().map_or(Ok(Vec::new()), parse_entries)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_resp2_and_deleted_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bs("mutt:events"),
            Value::Array(vec![
                Value::Array(vec![
                    bs("1-0"),
                    Value::Array(vec![bs("payload"), bs("x"), bs("traceparent"), bs("00-ab")]),
                ]),
                Value::Array(vec![bs("2-0"), Value::Nil]),
            ]),
        ])]);
        let e = parse_read_reply(reply).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].payload(), Some(&b"x"[..]));
        assert_eq!(e[0].trace().traceparent.as_deref(), Some("00-ab"));
        assert!(e[1].is_deleted());
        assert!(parse_read_reply(Value::Nil).unwrap().is_empty());
        assert!(parse_read_reply(Value::Int(3)).is_err());
        assert_eq!(id_millis("1700-3"), Some(1700));
    }
}
