//! `mutt migrate --from-v2-queues`: after the migrations, what MUTT v2 left in its Redis
//! lists moves into MUTT's streams, item by item, at least once and never lost: each item
//! is appended first and removed from its list only once the append succeeded, in one
//! script per batch (`mutt_bus::legacy`), so a second run moves nothing twice. Event ids
//! derive from the items' bytes, so that whatever is written twice (a meta-alert's audit
//! row written before a move that failed, copies of one item in v2's lists) keeps one
//! identity, which the audit and the webhook's `external_id` absorb.
//!
//! Where each item goes (MUTT_V25_REFERENCE.md §1.2, §1.6):
//!
//! - **Events** (`ingest_queue`, `processing:alerter:*`): validated as ingest validates
//!   them, with the default limits, and appended to `{p}:events` in ingest's encoding.
//!   v2's bookkeeping fields are dropped (`_correlation_id` becomes the correlation id).
//!   One that does not validate goes to `{p}:dlq:alerter` with provenance.
//! - **Alerts** (`alert_queue`, `processing:moog:*`). A v2 alert is `{api_key, hostname,
//!   team_assignment, severity, message_body, raw_json, _correlation_id}`. A rule alert
//!   cannot be mapped faithfully: it does not say which rule matched or which handling
//!   applied, which a MUTT alert carries (its `signature` is host and rule, `custom_info`
//!   names both), and its severity is v2's constant `Warning` (§16 item 15). So its event
//!   (`raw_json`) is re-ingested: the alerters route it with the same rules, which the
//!   migrated database holds. An unhandled meta-alert (`hostname` `MUTT_Alerter`) can be
//!   mapped: every field of MUTT's meta-alert follows from the v2 one (the team v2 chose,
//!   its description, the event, whose fingerprint gives the signature), whereas its event
//!   re-ingested would count once toward a new flood and the alert would be lost. It is
//!   appended to `{p}:alerts`, with the audit row MUTT writes for every meta-alert. v2's
//!   Moog API key, which every v2 alert carries (§16 item 18), is never copied; an alert
//!   that is not JSON, from which it cannot be removed, stays in its list and is reported.
//! - **Dead letters**: `dlq:alerter` and `dlq:dead` (events) go to `{p}:dlq:alerter`,
//!   `dlq:moog` to `{p}:dlq:forwarder`, except its rule alerts, whose events go to
//!   `{p}:dlq:alerter` (a replay re-ingests them, as above). They keep v2's retry count as
//!   their delivery count, and `v2_list` names the list they came from. Items that cannot be
//!   read become dead letters carrying the item itself. Other `dlq:*` lists are not v2's
//!   and stay where they are, reported.
//!
//! # Layout
//!
//! - `convert`: one item read and planned (its destination, or why it stays).

mod convert;

use convert::*;
use mutt_bus::Bus;
use mutt_bus::legacy::{Destination, LegacyList, LegacyMove, LegacyQueue};
use mutt_bus::names::FORWARDER_GROUP;
use mutt_core::settings::Settings;
use mutt_store::Store;
use mutt_worker::credentials::Credentials;
use serde::Serialize;

use crate::app::database_password;

/// Items read and moved per script call.
const BATCH: usize = 100;
/// The mover named in the dead letters.
const MOVER: &str = "mutt migrate --from-v2-queues";
/// The host name of MUTT v2's unhandled meta-alerts.
const META_HOST: &str = "MUTT_Alerter";
/// Longest team name (`team_assignment` is `VARCHAR(100)`).
const MAX_TEAM_CHARS: usize = 100;

/// What was moved from one list.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ListReport {
    /// The list.
    pub list: String,
    /// Items appended to `{p}:events`.
    pub events: u64,
    /// Items appended to `{p}:alerts`.
    pub alerts: u64,
    /// Items dead-lettered in `{p}:dlq:alerter`.
    pub dlq_alerter: u64,
    /// Items dead-lettered in `{p}:dlq:forwarder`.
    pub dlq_forwarder: u64,
    /// Items that left the list before they could be moved (taken by a v2 process).
    pub gone: u64,
    /// Items left in the list.
    pub left: u64,
    /// Why items were left, if any were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What `--from-v2-queues` did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    /// MUTT v2's prefix.
    pub v2_prefix: String,
    /// Items appended to `{p}:events`.
    pub events: u64,
    /// Items appended to `{p}:alerts`.
    pub alerts: u64,
    /// Items dead-lettered in `{p}:dlq:alerter`.
    pub dlq_alerter: u64,
    /// Items dead-lettered in `{p}:dlq:forwarder`.
    pub dlq_forwarder: u64,
    /// Items left in their lists.
    pub left: u64,
    /// Per list.
    pub lists: Vec<ListReport>,
}

/// Moves what MUTT v2 left under `v2_prefix` into the streams of `settings.prefix`, then
/// prints the report. Refuses while a v2 worker is alive: it would keep taking and pushing
/// items.
pub(crate) async fn move_v2_queues(settings: &Settings, v2_prefix: &str) -> anyhow::Result<()> {
    let creds = Credentials::load(settings)?;
    let bus = crate::app::connect_bus(settings, &creds).await?;
    let alive = bus.legacy_workers(v2_prefix).await?;
    if !alive.is_empty() {
        anyhow::bail!(
            "MUTT v2 workers are still running ({}): stop every v2 process and wait for their \
             heartbeats to expire (30 s) before moving their queues",
            alive.join(", ")
        );
    }
    let store = Store::connect_with_password(
        &settings.database_url,
        2,
        database_password(&creds).as_ref(),
    )
    .await?;
    let moved = move_all(&bus, &store, v2_prefix).await;
    store.close().await;
    let report = moved?;
    tracing::info!(
        v2_prefix,
        events = report.events,
        alerts = report.alerts,
        dlq_alerter = report.dlq_alerter,
        dlq_forwarder = report.dlq_forwarder,
        left = report.left,
        "MUTT v2 queues moved"
    );
    if report.left > 0 {
        tracing::warn!(
            left = report.left,
            "items were left in MUTT v2 lists: see the report"
        );
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn move_all(bus: &Bus, store: &Store, v2_prefix: &str) -> anyhow::Result<Report> {
    let mut report = Report {
        v2_prefix: v2_prefix.to_string(),
        ..Report::default()
    };
    for list in bus.legacy_lists(v2_prefix).await? {
        let r = move_list(bus, store, &list).await?;
        tracing::info!(list = %r.list, events = r.events, alerts = r.alerts, dlq_alerter = r.dlq_alerter, dlq_forwarder = r.dlq_forwarder, gone = r.gone, left = r.left, "MUTT v2 list moved");
        report.events += r.events;
        report.alerts += r.alerts;
        report.dlq_alerter += r.dlq_alerter;
        report.dlq_forwarder += r.dlq_forwarder;
        report.left += r.left;
        report.lists.push(r);
    }
    Ok(report)
}

/// Where an item went, for the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Events,
    Alerts,
    DlqAlerter,
    DlqForwarder,
}

async fn move_list(bus: &Bus, store: &Store, list: &LegacyList) -> anyhow::Result<ListReport> {
    let mut r = ListReport {
        list: list.key.clone(),
        ..ListReport::default()
    };
    if let LegacyQueue::DeadLetters(name) = &list.queue
        && !["alerter", "moog", "dead"].contains(&name.as_str())
    {
        r.left = bus.legacy_len(&list.key).await?;
        r.note = Some(format!(
            "MUTT v2 has no DLQ named {name:?}: it has no matching MUTT group"
        ));
        return Ok(r);
    }
    // Items kept in the list stay at its oldest end, which later reads skip.
    let mut skip = 0usize;
    loop {
        let items = bus.legacy_oldest(&list.key, skip, BATCH).await?;
        if items.is_empty() {
            break;
        }
        let now = mutt_core::now_ms();
        let mut moves = Vec::with_capacity(items.len());
        let mut counted = Vec::with_capacity(items.len());
        let mut audits = Vec::new();
        for item in items {
            match plan(&list.key, &list.queue, &item, bus.names(), now) {
                Plan::Keep(why) => {
                    skip += 1;
                    r.left += 1;
                    r.note.get_or_insert(why);
                }
                Plan::Move { to, audit } => {
                    counted.push(match &to {
                        Destination::Stream { stream, .. } if *stream == bus.names().alerts() => {
                            Counted::Alerts
                        }
                        Destination::Stream { .. } => Counted::Events,
                        Destination::DeadLetter(l) if l.group == FORWARDER_GROUP => {
                            Counted::DlqForwarder
                        }
                        Destination::DeadLetter(_) => Counted::DlqAlerter,
                    });
                    audits.extend(audit.map(|a| *a));
                    moves.push(LegacyMove { item, to });
                }
            }
        }
        // The audit row first: written again on a second run, it is skipped by its id.
        if !audits.is_empty() {
            store.insert_event_audit(&audits).await?;
        }
        let done = bus.legacy_move(&list.key, &moves, MOVER, now).await?;
        for (c, moved) in counted.iter().zip(done) {
            if !moved {
                r.gone += 1;
                continue;
            }
            match c {
                Counted::Events => r.events += 1,
                Counted::Alerts => r.alerts += 1,
                Counted::DlqAlerter => r.dlq_alerter += 1,
                Counted::DlqForwarder => r.dlq_forwarder += 1,
            }
        }
    }
    Ok(r)
}
