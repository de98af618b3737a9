//! Splitting an ingest body into items: one JSON object, a JSON array, or NDJSON.

use serde_json::Value;

/// The media types ingest accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` (or `+json`): one object or an array.
    Json,
    /// `application/x-ndjson` (also `application/jsonl`, `application/json-seq` is not):
    /// one object per line.
    Ndjson,
}

/// Reads the media type of a `Content-Type` value, ignoring parameters (`charset`).
pub fn body_kind(content_type: Option<&str>) -> Option<BodyKind> {
    let ct = content_type?;
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Some(BodyKind::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Some(BodyKind::Ndjson),
        m if m.starts_with("application/") && m.ends_with("+json") => Some(BodyKind::Json),
        _ => None,
    }
}

/// One item of a body: a parsed value, or why that item could not be parsed.
pub type Item = Result<Value, String>;

/// A parsed body.
#[derive(Debug)]
pub enum Parsed {
    /// One JSON object (or a scalar, which validation refuses with a clear error).
    Single(Value),
    /// A batch: the items of an array or the lines of NDJSON.
    Batch(Vec<Item>),
}

/// Why a whole body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not parseable at all.
    Malformed(String),
    /// An empty array or no NDJSON line.
    Empty,
    /// More items than allowed.
    TooMany { count: usize, max: usize },
}

/// Parses `bytes` as `kind`, allowing at most `max_items` items.
pub fn parse(bytes: &[u8], kind: BodyKind, max_items: usize) -> Result<Parsed, BodyError> {
    match kind {
        BodyKind::Json => {
            let v: Value =
                serde_json::from_slice(bytes).map_err(|e| BodyError::Malformed(describe(&e)))?;
            match v {
                Value::Array(items) => {
                    if items.is_empty() {
                        return Err(BodyError::Empty);
                    }
                    if items.len() > max_items {
                        return Err(BodyError::TooMany {
                            count: items.len(),
                            max: max_items,
                        });
                    }
                    Ok(Parsed::Batch(items.into_iter().map(Ok).collect()))
                }
                other => Ok(Parsed::Single(other)),
            }
        }
        BodyKind::Ndjson => {
            let mut items = Vec::new();
            for line in bytes.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if items.len() == max_items {
                    let count = max_items
                        + 1
                        + bytes
                            .split(|&b| b == b'\n')
                            .count()
                            .saturating_sub(items.len() + 1);
                    return Err(BodyError::TooMany {
                        count,
                        max: max_items,
                    });
                }
                items.push(serde_json::from_slice::<Value>(line).map_err(|e| describe(&e)));
            }
            if items.is_empty() {
                return Err(BodyError::Empty);
            }
            Ok(Parsed::Batch(items))
        }
    }
}

fn describe(e: &serde_json::Error) -> String {
    format!("not valid JSON: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            body_kind(Some("application/json; charset=utf-8")),
            Some(BodyKind::Json)
        );
        assert_eq!(
            body_kind(Some("Application/X-NDJSON")),
            Some(BodyKind::Ndjson)
        );
        assert_eq!(
            body_kind(Some("application/cloudevents+json")),
            Some(BodyKind::Json)
        );
        assert_eq!(body_kind(Some("text/plain")), None);
        assert_eq!(body_kind(None), None);
    }

    #[test]
    fn shapes() {
        assert!(matches!(
            parse(b"{\"a\":1}", BodyKind::Json, 10),
            Ok(Parsed::Single(_))
        ));
        assert!(
            matches!(parse(b"[{},{}]", BodyKind::Json, 10), Ok(Parsed::Batch(v)) if v.len() == 2)
        );
        assert_eq!(
            parse(b"[]", BodyKind::Json, 10).unwrap_err(),
            BodyError::Empty
        );
        assert!(matches!(
            parse(b"[1,2,3]", BodyKind::Json, 2),
            Err(BodyError::TooMany { count: 3, max: 2 })
        ));
        assert!(matches!(
            parse(b"{\"a\":", BodyKind::Json, 10),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"\"\xff\"", BodyKind::Json, 10),
            Err(BodyError::Malformed(_))
        ));
        match parse(b"{\"a\":1}\r\n\n{bad\n{\"b\":2}\n", BodyKind::Ndjson, 10).unwrap() {
            Parsed::Batch(v) => {
                assert_eq!(v.len(), 3);
                assert!(v[0].is_ok() && v[1].is_err() && v[2].is_ok());
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(
            parse(b"\n \n", BodyKind::Ndjson, 10).unwrap_err(),
            BodyError::Empty
        );
        assert!(matches!(
            parse(b"{}\n{}\n{}\n", BodyKind::Ndjson, 2),
            Err(BodyError::TooMany { .. })
        ));
    }
}
