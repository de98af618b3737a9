//! Dead-letter queues: list with depth and age, page through with provenance, replay and
//! purge (audited before they happen: what cannot be audited does not happen), and the
//! automatic replay of the remediation loop.

use base64::Engine;
use mutt_bus::StreamEntry;
use mutt_bus::dlq::{self, Shelf};
use mutt_bus::names::{ALERTER_GROUP, FORWARDER_GROUP};
use mutt_core::codec;
use mutt_core::event::Limits;
use mutt_store::{Actor, Change};
use mutt_telemetry::otel;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Refused;
use crate::ControlState;

/// The DLQs there are: one per group.
pub const GROUPS: &[&str] = &[ALERTER_GROUP, FORWARDER_GROUP];
/// Most dead letters one replay or purge selects by scanning.
const SCAN_LIMIT: usize = 100_000;
/// Most dead letters one filtered page reads: a filter that matches little answers a short
/// page with `next` rather than scanning the whole DLQ in one request.
const PAGE_SCAN: usize = 10_000;
/// Letters read per round trip while filtering.
const FILTER_CHUNK: usize = 500;

/// The group of a DLQ name.
pub fn group(name: &str) -> Result<&'static str, Refused> {
    GROUPS.iter().copied().find(|g| *g == name).ok_or_else(|| {
        Refused::NotFound(format!(
            "no DLQ {name:?}; there are {}",
            GROUPS.join(" and ")
        ))
    })
}

/// A stream id (`1700000000000-0`).
pub fn check_id(id: &str) -> Result<(), Refused> {
    let ok = id
        .split_once('-')
        .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(Refused::bad(format!(
            "id: {id:?} is not a stream id such as 1700000000000-0"
        )))
    }
}

/// Every DLQ with its depth and oldest entry.
pub async fn list(s: &ControlState) -> Result<Vec<Value>, Refused> {
    let now = mutt_core::now_ms();
    let parked = s.bus.parked_depths(GROUPS).await?;
    Ok(s.bus
        .dlq_info(GROUPS)
        .await?
        .iter()
        .map(|i| {
            let parked = parked
                .iter()
                .find(|(g, _)| *g == i.group)
                .map_or(0, |(_, n)| *n);
            json!({
                "name": i.group, "stream": i.stream, "depth": i.depth,
                "oldest_id": i.oldest_id, "oldest_age_seconds": i.oldest_age_secs(now),
                "parked": parked,
            })
        })
        .collect())
}

/// A dead letter as the API shows it: provenance, and the payload decoded when it can be.
fn letter_json(group: &str, e: &StreamEntry) -> Value {
    let text = |k: &str| e.text(k).map(str::to_string);
    let num = |k: &str| e.text(k).and_then(|v| v.parse::<i64>().ok());
    let limits = Limits::default();
    let (payload, error) = match e.payload() {
        None => (Value::Null, Some("no payload".to_string())),
        Some(p) if group == ALERTER_GROUP => match codec::decode_event(p, &limits) {
            Ok(ev) => (
                json!({"event_id": ev.id, "correlation_id": ev.correlation_id, "event": ev.to_json()}),
                None,
            ),
            Err(err) => (Value::Null, Some(err.to_string())),
        },
        Some(p) => match codec::decode_alert(p, &limits) {
            Ok(a) => (
                json!({"alert_id": a.id, "team": a.team, "event": a.event.to_json()}),
                None,
            ),
            Err(err) => (Value::Null, Some(err.to_string())),
        },
    };
    let raw = error
        .as_ref()
        .and(e.payload())
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    json!({
        "id": e.id,
        "source_stream": text(dlq::SOURCE_STREAM),
        "source_id": text(dlq::SOURCE_ID),
        "group": text(dlq::GROUP),
        "consumer": text(dlq::CONSUMER),
        "delivery_count": num(dlq::DELIVERY_COUNT),
        "last_error": text(dlq::LAST_ERROR),
        "first_failure_ms": num(dlq::FIRST_FAILURE_MS),
        "last_failure_ms": num(dlq::LAST_FAILURE_MS),
        "replays": dlq::replays(e),
        "parked_reason": text(dlq::PARKED_REASON),
        "parked_at_ms": num(dlq::PARKED_AT_MS),
        "traceparent": e.trace().traceparent,
        "payload": payload,
        "payload_error": error,
        "payload_base64": raw,
    })
}

/// Which dead letters a page, a replay or a purge keeps: the one predicate of all three.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Text in the last error.
    error_contains: Option<String>,
    /// The source entry's id.
    source_id: Option<String>,
    /// Only letters that first failed at or before this time, ms since the epoch.
    failed_by_ms: Option<i64>,
}

impl Filter {
    /// A filter; `older_than` is a duration (`10m`, `2h`) before `now_ms`, and a bad one is
    /// refused with `bad` (a query's or a body's error).
    pub fn new(
        error_contains: Option<String>,
        source_id: Option<String>,
        older_than: Option<&str>,
        now_ms: i64,
        bad: fn(String) -> Refused,
    ) -> Result<Self, Refused> {
        let failed_by_ms = older_than
            .map(|v| {
                humantime::parse_duration(v.trim())
                    .map(|d| {
                        now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    })
                    .map_err(|e| bad(format!("{v:?} is not a duration such as 10m: {e}")))
            })
            .transpose()?;
        Ok(Self {
            error_contains,
            source_id,
            failed_by_ms,
        })
    }

    /// The filter of a page's query string, from now (a bad age is an `invalid_query`).
    pub fn of_query(
        error_contains: Option<String>,
        source_id: Option<String>,
        older_than: Option<&str>,
    ) -> Result<Self, Refused> {
        Self::new(
            error_contains,
            source_id,
            older_than,
            mutt_core::now_ms(),
            |m| Refused::query(format!("older_than: {m}")),
        )
    }

    fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Whether `e` passes. A letter without its first failure time (none is written
    /// without one, but a stream may be edited by hand) is as old as its DLQ entry.
    pub fn keeps(&self, e: &StreamEntry) -> bool {
        let first_failure = || {
            e.text(dlq::FIRST_FAILURE_MS)
                .and_then(|v| v.parse::<i64>().ok())
                .or_else(|| mutt_bus::entry::id_millis(&e.id))
        };
        self.error_contains
            .as_deref()
            .is_none_or(|t| e.text(dlq::LAST_ERROR).is_some_and(|err| err.contains(t)))
            && self
                .source_id
                .as_deref()
                .is_none_or(|id| e.text(dlq::SOURCE_ID) == Some(id))
            && self
                .failed_by_ms
                .is_none_or(|by| first_failure().is_some_and(|t| t <= by))
    }
}

/// Up to `limit` (1–200) dead letters of `g` after `after` that `filter` keeps, and the
/// cursor of the next page. A filtered page reads at most `PAGE_SCAN` letters: it may hold
/// fewer than `limit` with a `next` to go on from; `next` is None only at the end.
pub async fn page(
    s: &ControlState,
    g: &str,
    shelf: Shelf,
    after: Option<&str>,
    limit: Option<u32>,
    filter: &Filter,
) -> Result<(Vec<Value>, Option<String>), Refused> {
    if let Some(a) = after {
        check_id(a)?;
        // Nothing lies after the largest id (and Redis refuses an exclusive range from it).
        if a == "18446744073709551615-18446744073709551615" {
            return Ok((Vec::new(), None));
        }
    }
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > 200 {
        return Err(Refused::query("limit: from 1 to 200"));
    }
    let limit = limit as usize;
    // Unfiltered, one read is the page; filtered, larger reads until the page is full.
    let chunk = if filter.is_empty() {
        limit
    } else {
        FILTER_CHUNK
    };
    let mut out = Vec::new();
    let mut cursor = after.map(str::to_string);
    let mut scanned = 0;
    loop {
        let list = s
            .bus
            .dlq_entries(g, shelf, cursor.as_deref(), chunk)
            .await?;
        let n = list.len();
        scanned += n;
        for e in list {
            cursor = Some(e.id.clone());
            if filter.keeps(&e) {
                out.push(letter_json(g, &e));
                if out.len() == limit {
                    return Ok((out, cursor));
                }
            }
        }
        if n < chunk {
            return Ok((out, None));
        }
        if scanned >= PAGE_SCAN {
            return Ok((out, cursor));
        }
    }
}

/// Which dead letters a replay or purge takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// These ids.
    ids: Option<Vec<String>>,
    /// Every dead letter (with the filters below, if any).
    #[serde(default)]
    all: bool,
    /// Only those whose last error contains this text.
    error_contains: Option<String>,
    /// Only those that came from this source entry.
    source_id: Option<String>,
    /// Only those that first failed at least this long ago (humantime: `10m`, `2h`).
    older_than: Option<String>,
    /// From the parked letters instead of the DLQ.
    #[serde(default)]
    parked: bool,
    /// Only say what would be taken: nothing changes, nothing is audited.
    #[serde(default)]
    pub dry_run: bool,
    /// Why (required, except for a dry run).
    pub reason: Option<String>,
}

impl Selection {
    fn shelf(&self) -> Shelf {
        if self.parked {
            Shelf::Parked
        } else {
            Shelf::Active
        }
    }

    fn filter(&self) -> Result<Filter, Refused> {
        Filter::new(
            self.error_contains.clone(),
            self.source_id.clone(),
            self.older_than.as_deref(),
            mutt_core::now_ms(),
            |m| Refused::invalid("older_than", m),
        )
    }
}

async fn select(s: &ControlState, g: &str, sel: &Selection) -> Result<Vec<StreamEntry>, Refused> {
    let filter = sel.filter()?;
    if sel.ids.is_none() && !sel.all && filter.is_empty() {
        return Err(Refused::bad(
            "say which dead letters: ids, all, error_contains, source_id or older_than",
        ));
    }
    let keep = |e: &StreamEntry| filter.keeps(e);
    if let Some(ids) = &sel.ids {
        if ids.len() > 10_000 {
            return Err(Refused::bad("ids: at most 10000 at once"));
        }
        for id in ids {
            check_id(id)?;
        }
        let found = s
            .bus
            .entries_by_id(&s.bus.shelf(g, sel.shelf()), ids.iter())
            .await?;
        return Ok(found.into_iter().filter(|e| keep(e)).collect());
    }
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .bus
            .dlq_entries(g, sel.shelf(), after.as_deref(), 1000)
            .await?;
        let n = page.len();
        after = page.last().map(|e| e.id.clone());
        out.extend(page.into_iter().filter(|e| keep(e)));
        if n < 1000 || out.len() >= SCAN_LIMIT {
            break;
        }
    }
    out.truncate(SCAN_LIMIT);
    Ok(out)
}

fn summary(ids: &[String], sel: &Selection) -> Value {
    json!({
        "count": ids.len(),
        "ids": ids.iter().take(100).collect::<Vec<_>>(),
        "filter": {"all": sel.all, "error_contains": sel.error_contains, "source_id": sel.source_id, "older_than": sel.older_than, "ids_given": sel.ids.as_ref().map(Vec::len), "parked": sel.parked},
    })
}

/// Records an operation on the DLQ of `g` in the config audit. Done before the operation:
/// one that cannot be audited does not happen.
async fn audit(
    s: &ControlState,
    actor: &Actor,
    g: &str,
    operation: &'static str,
    old: Option<Value>,
    new: Option<Value>,
) -> Result<(), mutt_store::StoreError> {
    let change = Change {
        operation,
        table: "dlq",
        record_id: None,
        record_key: Some(g),
        old,
        new,
    };
    s.store.record_change(actor, &change).await.map(drop)
}

/// What a replay or purge of `sel` would take, for a confirmation that says how many:
/// `{dry_run, count, ids}` (the first 100 ids). Nothing changes and nothing is audited.
pub async fn dry_run(s: &ControlState, g: &str, sel: &Selection) -> Result<Value, Refused> {
    let letters = select(s, g, sel).await?;
    let ids: Vec<&str> = letters.iter().take(100).map(|e| e.id.as_str()).collect();
    Ok(json!({"dry_run": true, "count": letters.len(), "ids": ids}))
}

/// Replays the selected dead letters of `g` to their source; returns the ids replayed.
pub async fn replay(
    s: &ControlState,
    g: &str,
    sel: &Selection,
    actor: Actor,
) -> Result<Vec<String>, Refused> {
    let letters = select(s, g, sel).await?;
    let selected: Vec<String> = letters.iter().map(|e| e.id.clone()).collect();
    // Audited before it happens: a replay that cannot be audited does not happen.
    audit(s, &actor, g, "REPLAY", None, Some(summary(&selected, sel))).await?;
    let (span, by) = replay_span(g, &letters);
    let replayed = s
        .bus
        .dlq_replay(g, sel.shelf(), &letters, by.as_deref())
        .await?;
    drop(span);
    mutt_telemetry::metrics()
        .dlq_replayed
        .with_label_values(&[g, "api"])
        .inc_by(replayed.len() as u64);
    Ok(replayed)
}

/// Purges the selected dead letters of `g`; returns how many existed.
pub async fn purge(
    s: &ControlState,
    g: &str,
    sel: &Selection,
    actor: Actor,
) -> Result<u64, Refused> {
    let letters = select(s, g, sel).await?;
    let ids: Vec<String> = letters.iter().map(|e| e.id.clone()).collect();
    // Audited first: a purge that cannot be audited does not happen.
    audit(s, &actor, g, "PURGE", Some(summary(&ids, sel)), None).await?;
    Ok(s.bus.dlq_purge(g, sel.shelf(), &ids).await?)
}

/// Purges one dead letter, in the DLQ or parked.
pub async fn purge_one(s: &ControlState, g: &str, id: &str, actor: Actor) -> Result<(), Refused> {
    check_id(id)?;
    let id = id.to_string();
    let mut found = None;
    for shelf in [Shelf::Active, Shelf::Parked] {
        if !s
            .bus
            .entries_by_id(&s.bus.shelf(g, shelf), std::iter::once(&id))
            .await?
            .is_empty()
        {
            found = Some(shelf);
            break;
        }
    }
    let not_found = || Refused::NotFound(format!("no dead letter {id} in {g}"));
    let shelf = found.ok_or_else(not_found)?;
    audit(s, &actor, g, "PURGE", Some(json!({"ids": [id]})), None).await?;
    if s.bus.dlq_purge(g, shelf, std::slice::from_ref(&id)).await? == 0 {
        return Err(not_found());
    }
    Ok(())
}

/// The span of a replay: a new trace that links to every replayed entry's original trace
/// (up to 128); the replayed entries keep their own trace context and carry this span's as
/// `replayed_by`, so that their processing spans link back to it.
fn replay_span(group: &str, letters: &[StreamEntry]) -> (tracing::Span, Option<String>) {
    let span = tracing::info_span!(
        "dlq.replay",
        otel.name = "dlq.replay",
        group = group,
        count = letters.len(),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    if !otel::enabled() {
        return (span, None);
    }
    otel::record_ids(&span);
    for l in letters.iter().take(128) {
        otel::add_link(&span, &l.trace());
    }
    let by = otel::carrier_of(&span, &otel::Carrier::default()).traceparent;
    (span, by)
}

/// What one automatic round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Letters sent back to their source.
    pub replayed: usize,
    /// Letters parked (replayed too often, or failed for good).
    pub parked: usize,
    /// Of the replayed, those that had been replayed before: they came back.
    pub returned: usize,
}

/// Why a letter can never succeed as it is, so that replaying it would only bring it back:
/// its payload does not decode, the webhook refused its content (a 4xx other than 401/403,
/// which are held as an outage and never reach the DLQ), or the database refused its
/// audit row for its data. None for a letter that failed for a passing reason.
pub fn permanent(g: &str, e: &StreamEntry) -> Option<String> {
    let limits = Limits::default();
    let Some(p) = e.payload() else {
        return Some("no payload".into());
    };
    let undecodable = if g == ALERTER_GROUP {
        codec::decode_event(p, &limits).err().map(|e| e.to_string())
    } else {
        codec::decode_alert(p, &limits).err().map(|e| e.to_string())
    };
    if let Some(err) = undecodable {
        return Some(format!("undecodable: {err}"));
    }
    let err = e.text(dlq::LAST_ERROR).unwrap_or_default();
    if g == FORWARDER_GROUP && err.starts_with("webhook refused with") {
        return Some("the webhook refused its content".into());
    }
    if g == ALERTER_GROUP && err.starts_with("audit row refused") {
        return Some("the database refused its audit row for its data".into());
    }
    None
}

/// One automatic round on the DLQ of `g`: parks what can no longer be replayed (replayed
/// `max_replays` times, or failed for good) and replays up to `budget` of the rest, oldest
/// first. Parked letters leave the DLQ, so a round reads only what may still be replayed.
pub async fn auto_replay(
    s: &ControlState,
    g: &str,
    budget: usize,
    max_replays: u64,
) -> Result<Round, mutt_bus::BusError> {
    let mut round = Round::default();
    let mut letters = Vec::new();
    let mut to_park: Vec<(StreamEntry, String)> = Vec::new();
    let mut after: Option<String> = None;
    while letters.len() < budget {
        let page = s
            .bus
            .dlq_entries(g, Shelf::Active, after.as_deref(), 500)
            .await?;
        let n = page.len();
        after = page.last().map(|e| e.id.clone());
        for e in page {
            let replays = dlq::replays(&e);
            if replays >= max_replays {
                to_park.push((e, format!("replayed {replays} times")));
            } else if let Some(why) = permanent(g, &e) {
                to_park.push((e, why));
            } else if letters.len() < budget {
                round.returned += usize::from(replays > 0);
                letters.push(e);
            }
        }
        if n < 500 {
            break;
        }
    }
    let m = mutt_telemetry::metrics();
    let actor = Actor {
        who: "mutt-remediation".into(),
        reason: Some("automatic replay: downstream healthy".into()),
        correlation_id: String::new(),
    };
    if !to_park.is_empty() {
        let refs: Vec<(&StreamEntry, &str)> =
            to_park.iter().map(|(e, why)| (e, why.as_str())).collect();
        let ids: Vec<String> = to_park.iter().map(|(e, _)| e.id.clone()).collect();
        let why: Vec<&str> = to_park.iter().take(100).map(|(_, w)| w.as_str()).collect();
        let parked_audit = json!({"count": ids.len(), "ids": ids.iter().take(100).collect::<Vec<_>>(), "why": why});
        let park_actor = Actor {
            reason: Some("automatic: no longer replayable".into()),
            ..actor.clone()
        };
        // Audited first, as every DLQ change: what cannot be audited does not happen.
        if let Err(e) = audit(s, &park_actor, g, "PARK", None, Some(parked_audit)).await {
            tracing::warn!(error = %e, "parking not audited; letters stay in the DLQ");
        } else {
            let parked = s.bus.dlq_park(g, &refs, mutt_core::now_ms()).await?;
            round.parked = parked.len();
            m.remediation_parked
                .with_label_values(&[g])
                .inc_by(parked.len() as u64);
        }
    }
    if letters.is_empty() {
        return Ok(round);
    }
    let sel = Selection {
        all: true,
        ..Selection::default()
    };
    let ids: Vec<String> = letters.iter().map(|e| e.id.clone()).collect();
    if let Err(e) = audit(s, &actor, g, "REPLAY", None, Some(summary(&ids, &sel))).await {
        tracing::warn!(error = %e, "automatic replay not audited; letters wait");
        return Ok(round);
    }
    let (span, by) = replay_span(g, &letters);
    let done = s
        .bus
        .dlq_replay(g, Shelf::Active, &letters, by.as_deref())
        .await?;
    drop(span);
    round.replayed = done.len();
    m.dlq_replayed
        .with_label_values(&[g, "auto"])
        .inc_by(done.len() as u64);
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(id: &str, error: &str, source: &str, first_ms: Option<i64>) -> StreamEntry {
        let mut fields = vec![
            (dlq::LAST_ERROR.to_string(), error.as_bytes().to_vec()),
            (dlq::SOURCE_ID.to_string(), source.as_bytes().to_vec()),
        ];
        if let Some(ms) = first_ms {
            fields.push((
                dlq::FIRST_FAILURE_MS.to_string(),
                ms.to_string().into_bytes(),
            ));
        }
        StreamEntry {
            id: id.into(),
            fields,
        }
    }

    fn filter(error: Option<&str>, source: Option<&str>, older: Option<&str>) -> Filter {
        Filter::new(
            error.map(str::to_string),
            source.map(str::to_string),
            older,
            1_000_000,
            Refused::query,
        )
        .expect("a valid filter")
    }

    #[test]
    fn one_predicate_for_every_filter() {
        let l = letter("900000-0", "webhook refused with 400", "5-0", Some(400_000));
        assert!(filter(None, None, None).is_empty());
        assert!(filter(None, None, None).keeps(&l));
        assert!(filter(Some("refused"), Some("5-0"), None).keeps(&l));
        assert!(!filter(Some("timeout"), None, None).keeps(&l));
        assert!(!filter(None, Some("6-0"), None).keeps(&l));
        // First failed 600 s before "now": older than 10m, not older than 11m.
        assert!(filter(None, None, Some("10m")).keeps(&l));
        assert!(!filter(None, None, Some("11m")).keeps(&l));
        // Without its first failure time, a letter is as old as its DLQ entry (100 s).
        let bare = letter("900000-0", "x", "5-0", None);
        assert!(filter(None, None, Some("1m")).keeps(&bare));
        assert!(!filter(None, None, Some("2m")).keeps(&bare));
    }

    #[test]
    fn a_bad_age_is_refused_naming_the_field() {
        let e = Filter::of_query(None, None, Some("soon")).expect_err("refused");
        let Refused::Invalid { code, message, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(code, "invalid_query");
        assert!(message.starts_with("older_than: \"soon\""), "{message}");
    }

    #[test]
    fn a_selection_knows_its_new_fields() {
        let sel: Selection =
            serde_json::from_value(json!({"older_than": "1h", "dry_run": true})).expect("parses");
        assert!(sel.dry_run && sel.reason.is_none());
        assert!(!sel.filter().expect("valid").is_empty());
        let bad: Selection = serde_json::from_value(json!({"older_than": "x"})).expect("parses");
        let Err(Refused::Invalid { message, .. }) = bad.filter() else {
            panic!("refused")
        };
        assert!(message.starts_with("older_than: "), "{message}");
    }
}
