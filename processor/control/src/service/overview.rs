//! The overview the console polls every few seconds: the streams and their groups, the
//! DLQs, every live process with its readiness and counters (from its heartbeat), and the
//! counters summed. Redis only, a dozen round trips: no PostgreSQL, no process's ops
//! listener, so that polling it costs the pipeline nothing.

use std::collections::BTreeMap;

use mutt_bus::control::Applied;
use mutt_bus::stats::StreamStats;
use serde_json::{Value, json};

use super::{Refused, dlq, settings};
use crate::ControlState;

/// Everything the console's overview shows.
pub async fn overview(s: &ControlState) -> Result<Value, Refused> {
    let names = s.bus.names();
    let mut streams = Vec::new();
    for (name, key) in [("events", names.events()), ("alerts", names.alerts())] {
        let stats = s.bus.stream_stats(&key).await?;
        streams.push(stream_json(name, &key, &stats));
    }
    let dlqs = dlq::list(s).await?;
    let (version, applied) = settings::live_versions(s).await?;
    let processes: Vec<Value> = applied
        .iter()
        .map(|a| {
            json!({
                "consumer": a.consumer, "roles": a.roles, "version": a.version,
                "converged": a.version >= version, "ready": a.ready, "checks": a.checks,
                "stats": a.stats, "seen_ms": a.seen_ms,
            })
        })
        .collect();
    Ok(json!({
        "time_ms": mutt_core::now_ms(),
        "config": {
            "version": version,
            "converged": applied.iter().all(|a| a.version >= version),
        },
        "streams": streams,
        "dlqs": dlqs,
        "processes": processes,
        "totals": totals(&applied),
    }))
}

fn stream_json(name: &str, key: &str, s: &StreamStats) -> Value {
    let groups: Vec<Value> = s
        .groups
        .iter()
        .map(|g| {
            json!({
                "name": g.name, "lag": g.lag, "pending": g.pending,
                "consumers": g.consumers, "entries_read": g.entries_read,
            })
        })
        .collect();
    json!({
        "name": name, "key": key, "length": s.length,
        "entries_added": s.entries_added, "groups": groups,
    })
}

/// Each counter summed over the processes that report it (a process reports only the
/// counters of its roles, so nothing is counted twice in `mutt all`).
fn totals(applied: &[Applied]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (k, v) in applied.iter().flat_map(|a| &a.stats) {
        *out.entry(k.clone()).or_insert(0.0) += v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutt_bus::trim::GroupStats;

    fn applied(stats: &[(&str, f64)]) -> Applied {
        Applied {
            consumer: "c".into(),
            roles: vec![],
            version: 0,
            generations: BTreeMap::new(),
            seen_ms: 0,
            ready: Some(true),
            checks: BTreeMap::new(),
            stats: stats.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn totals_sum_what_each_process_reports() {
        let t = totals(&[
            applied(&[("events_accepted", 3.0)]),
            applied(&[("events_accepted", 4.0), ("alerts_raised", 1.0)]),
            applied(&[]),
        ]);
        assert_eq!(t["events_accepted"], 7.0);
        assert_eq!(t["alerts_raised"], 1.0);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_stream_with_its_groups() {
        let s = StreamStats {
            length: 5,
            entries_added: Some(9),
            groups: vec![GroupStats {
                name: "alerter".into(),
                pending: 2,
                lag: None,
                last_delivered: "1-0".into(),
                consumers: 3,
                entries_read: Some(7),
            }],
        };
        assert_eq!(
            stream_json("events", "p:events", &s),
            json!({"name": "events", "key": "p:events", "length": 5, "entries_added": 9,
                "groups": [{"name": "alerter", "lag": null, "pending": 2, "consumers": 3,
                    "entries_read": 7}]})
        );
    }
}
