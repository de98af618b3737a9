//! Reading and splitting an ingest body: one JSON object, a JSON array, or NDJSON.
//!
//! What a body costs must be bounded by its bytes, whatever it holds. So the body is read
//! into one buffer counted against a budget shared by every request in flight, and split
//! into items *without* parsing them: each item is a borrowed slice of raw JSON
//! ([`RawValue`]), counted as it is found, so a body of eight million zeros stops at the
//! batch limit instead of becoming eight million parsed values. An item is parsed into a
//! value only after its size has been checked, one at a time, by the caller.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use futures_util::StreamExt;
use serde::de::{self, Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The bytes of every request body in flight, bounded (`MUTT_INGEST_MAX_INFLIGHT_BYTES`):
/// past the budget a request is answered 503 at once rather than buffered.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
}

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Bytes not in use now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    fn take(&self, n: usize, held: &mut Option<OwnedSemaphorePermit>) -> Result<(), ReadError> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| ReadError::Busy)?;
        let p = self
            .bytes
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| ReadError::Busy)?;
        match held {
            Some(h) => h.merge(p),
            None => *held = Some(p),
        }
        Ok(())
    }
}

/// A body read whole, holding its share of the budget until dropped.
#[derive(Debug)]
pub struct ReadBody {
    /// The bytes.
    pub bytes: Vec<u8>,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Over the body limit.
    TooLarge,
    /// The budget of bytes in flight is used up: try again shortly.
    Busy,
    /// The connection failed or the client stopped sending.
    Broken(String),
}

/// Reads `body` (declared to be `declared` bytes long, if it said) up to `limit` bytes,
/// counting what it holds against `budget`. A declared length reserves its buffer (and its
/// budget) at once, so that the bytes are copied once; a body without one grows as it
/// arrives.
pub async fn read(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    budget: &Budget,
) -> Result<ReadBody, ReadError> {
    let mut held = None;
    let reserved = match declared {
        Some(n) if n > limit as u64 => return Err(ReadError::TooLarge),
        Some(n) => n as usize,
        None => 0,
    };
    let mut stream = body.into_data_stream();
    if budget.take(reserved, &mut held).is_err() {
        discard(stream, limit).await;
        return Err(ReadError::Busy);
    }
    // The buffer's size as counted against the budget.
    let mut counted = reserved;
    let mut bytes = Vec::with_capacity(reserved);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReadError::Broken(e.to_string()))?;
        let len = bytes.len() + chunk.len();
        if len > limit {
            return Err(ReadError::TooLarge);
        }
        if len > bytes.capacity() {
            // Beyond the declared length, or none was declared: the buffer doubles (up to
            // the limit) and the budget counts what it grew by.
            let want = len.max(bytes.capacity() * 2).min(limit);
            if budget
                .take(want.saturating_sub(counted), &mut held)
                .is_err()
            {
                drop((bytes, held));
                discard(stream, limit.saturating_sub(len)).await;
                return Err(ReadError::Busy);
            }
            counted = counted.max(want);
            bytes.reserve_exact(want - bytes.len());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(ReadBody {
        bytes,
        _budget: held,
    })
}

/// How long a refused request's body is read and thrown away: see [`discard`].
pub const DISCARD_WITHIN: Duration = Duration::from_secs(2);

/// Bodies discarded at once. Each costs the connection's read buffer while it drains, a
/// cost the budget does not count, so it is bounded here; past it a refusal is answered
/// at once (and a client still uploading may read a reset).
const DISCARDING: usize = 32;
static DISCARDS: Semaphore = Semaphore::const_new(DISCARDING);

/// Reads what the client still sends of a body that is refused before it was read
/// (shedding, an unsupported type, a busy budget) and throws it away, up to `limit` bytes and for at
/// most [`DISCARD_WITHIN`]. The answer is only written after this: a server that answers
/// and closes while the request's bytes are still arriving makes the kernel reset the
/// connection, and the client then reads a connection reset instead of its 503 and
/// `Retry-After` (what nginx's lingering close is for). Discarding costs bandwidth, not
/// memory: no chunk is kept, and only a few bodies (32) drain at once.
pub async fn discard(mut stream: BodyDataStream, limit: usize) {
    let Ok(_draining) = DISCARDS.try_acquire() else {
        return;
    };
    let mut left = limit;
    let _ = tokio::time::timeout(DISCARD_WITHIN, async {
        while let Some(Ok(chunk)) = stream.next().await {
            match left.checked_sub(chunk.len()) {
                Some(l) => left = l,
                None => break,
            }
        }
    })
    .await;
}

/// One item of a body: its raw JSON, or why that item (an NDJSON line) is not JSON.
pub type Item<'a> = Result<&'a RawValue, String>;

/// A split body; the items borrow from it.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// One JSON value (an object, or a scalar that validation refuses with a clear error).
    Single(&'a RawValue),
    /// A batch: the items of an array or the lines of NDJSON.
    Batch(Vec<Item<'a>>),
}

/// Why a whole body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not parseable at all.
    Malformed(String),
    /// An empty array or no NDJSON line.
    Empty,
    /// More than `max` items.
    TooMany {
        /// The limit.
        max: usize,
    },
}

/// Splits `bytes` as `kind` into at most `max_items` items, without parsing them.
pub fn parse(bytes: &[u8], kind: BodyKind, max_items: usize) -> Result<Parsed<'_>, BodyError> {
    match kind {
        BodyKind::Json => {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'[') {
                let raw: &RawValue = serde_json::from_slice(bytes)
                    .map_err(|e| BodyError::Malformed(describe(&e)))?;
                return Ok(Parsed::Single(raw));
            }
            let mut items = Vec::new();
            let mut too_many = false;
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let split = de.deserialize_seq(Items {
                max: max_items,
                items: &mut items,
                too_many: &mut too_many,
            });
            if too_many {
                return Err(BodyError::TooMany { max: max_items });
            }
            split
                .and_then(|()| de.end())
                .map_err(|e| BodyError::Malformed(describe(&e)))?;
            if items.is_empty() {
                return Err(BodyError::Empty);
            }
            Ok(Parsed::Batch(items.into_iter().map(Ok).collect()))
        }
        BodyKind::Ndjson => {
            let mut items = Vec::new();
            for line in bytes.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if items.len() == max_items {
                    return Err(BodyError::TooMany { max: max_items });
                }
                items.push(serde_json::from_slice::<&RawValue>(line).map_err(|e| describe(&e)));
            }
            if items.is_empty() {
                return Err(BodyError::Empty);
            }
            Ok(Parsed::Batch(items))
        }
    }
}

/// Collects the raw items of a JSON array, stopping past `max`.
struct Items<'a, 'de> {
    max: usize,
    items: &'a mut Vec<&'de RawValue>,
    too_many: &'a mut bool,
}

impl<'de> Visitor<'de> for Items<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if self.items.len() == self.max {
                *self.too_many = true;
                return Err(de::Error::custom("too many items"));
            }
            self.items.push(raw);
        }
        Ok(())
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

    fn texts(p: Parsed<'_>) -> Vec<Result<String, String>> {
        match p {
            Parsed::Single(r) => vec![Ok(r.get().to_string())],
            Parsed::Batch(v) => v
                .into_iter()
                .map(|i| i.map(|r| r.get().to_string()))
                .collect(),
        }
    }

    #[test]
    fn shapes() {
        assert!(matches!(
            parse(b"{\"a\":1}", BodyKind::Json, 10),
            Ok(Parsed::Single(_))
        ));
        assert_eq!(
            texts(parse(b" [ {\"a\": 1} , 2 ] ", BodyKind::Json, 10).unwrap()),
            vec![Ok("{\"a\": 1}".to_string()), Ok("2".to_string())]
        );
        assert_eq!(
            parse(b"[]", BodyKind::Json, 10).unwrap_err(),
            BodyError::Empty
        );
        assert_eq!(
            parse(b"[1,2,3]", BodyKind::Json, 2).unwrap_err(),
            BodyError::TooMany { max: 2 }
        );
        assert!(matches!(
            parse(b"{\"a\":", BodyKind::Json, 10),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"[{}] x", BodyKind::Json, 10),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"[{},", BodyKind::Json, 10),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"\"\xff\"", BodyKind::Json, 10),
            Err(BodyError::Malformed(_))
        ));
        let lines =
            texts(parse(b"{\"a\":1}\r\n\n{bad\n{\"b\":2}\n", BodyKind::Ndjson, 10).unwrap());
        assert_eq!(lines.len(), 3);
        assert!(lines[0].is_ok() && lines[1].is_err() && lines[2].is_ok());
        assert_eq!(
            parse(b"\n \n", BodyKind::Ndjson, 10).unwrap_err(),
            BodyError::Empty
        );
        assert_eq!(
            parse(b"{}\n{}\n{}\n", BodyKind::Ndjson, 2).unwrap_err(),
            BodyError::TooMany { max: 2 }
        );
    }

    /// Eight million zeros stop at the item limit: splitting never holds more than the
    /// limit's worth of item references, whatever the body's length.
    #[test]
    fn a_huge_array_stops_at_the_limit() {
        let mut body = b"[0".to_vec();
        body.extend(std::iter::repeat_n(b",0".as_slice(), 8_000_000).flatten());
        body.push(b']');
        assert_eq!(
            parse(&body, BodyKind::Json, 10_000).unwrap_err(),
            BodyError::TooMany { max: 10_000 }
        );
    }

    /// A read refused for the budget still reads what the client sends (and keeps none
    /// of it), so that the client gets its 503 rather than a reset; within the limit.
    #[tokio::test]
    async fn a_busy_read_drains_the_body_within_the_limit() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let budget = Budget::new(10);
        for (declared, limit, read_chunks) in
            [(Some(500), 1000, 5), (None, 1000, 5), (None, 250, 3)]
        {
            let sent = Arc::new(AtomicUsize::new(0));
            let s = sent.clone();
            let chunks = futures_util::stream::iter((0..5).map(move |_| {
                s.fetch_add(1, SeqCst);
                Ok::<_, std::io::Error>(vec![b' '; 100])
            }));
            assert_eq!(
                read(Body::from_stream(chunks), declared, limit, &budget)
                    .await
                    .unwrap_err(),
                ReadError::Busy
            );
            assert_eq!(sent.load(SeqCst), read_chunks, "{declared:?} {limit}");
            assert_eq!(budget.available(), 10);
        }
    }

    #[tokio::test]
    async fn reading_counts_against_the_budget() {
        let budget = Budget::new(100);
        let held = read(Body::from(vec![b'x'; 60]), Some(60), 1000, &budget)
            .await
            .unwrap();
        assert_eq!(held.bytes.len(), 60);
        assert_eq!(budget.available(), 40);
        // Declared, and also without a declared length: both over what is left.
        assert_eq!(
            read(Body::from(vec![b'y'; 50]), Some(50), 1000, &budget)
                .await
                .unwrap_err(),
            ReadError::Busy
        );
        assert_eq!(
            read(Body::from(vec![b'y'; 50]), None, 1000, &budget)
                .await
                .unwrap_err(),
            ReadError::Busy
        );
        assert_eq!(
            budget.available(),
            40,
            "a refused read gives its share back"
        );
        drop(held);
        assert_eq!(budget.available(), 100);
        assert_eq!(
            read(Body::from(vec![b'z'; 20]), None, 10, &budget)
                .await
                .unwrap_err(),
            ReadError::TooLarge
        );
        assert_eq!(
            read(Body::from(vec![b'z'; 20]), Some(20), 10, &budget)
                .await
                .unwrap_err(),
            ReadError::TooLarge
        );
    }
}
