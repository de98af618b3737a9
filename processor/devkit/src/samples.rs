//! Realistic events from MUTT v2.5's public sample data (`data/`): 330 syslog lines and
//! 100 SNMP traps, with a rule set that forwards about one event in ten.

use mutt_core::rules::{MatchType, Rule};
use mutt_core::severity::SyslogSeverity;
use mutt_store::{Actor, Outcome, Store, StoreError};
use serde_json::{Map, Value, json};

const SYSLOG: &str = include_str!("../data/demo_syslog_events.json");
const TRAPS: &str = include_str!("../data/demo_snmp_traps.json");

/// sysName.0: the varbind that names the sending device.
const SYS_NAME_OID: &str = "1.3.6.1.2.1.1.5.0";

fn parse_array(text: &str) -> Vec<Value> {
    // The files start with a UTF-8 byte order mark.
    let text = text.trim_start_matches('\u{feff}');
    match serde_json::from_str(text) {
        Ok(Value::Array(v)) => v,
        _ => Vec::new(),
    }
}

/// The 330 syslog events as they are.
pub fn syslog_events() -> Vec<Value> {
    parse_array(SYSLOG)
}

/// `@{oid=1.3.6.1.2.1.1.5.0; value=core-router-01}` → (oid, value).
fn varbind(s: &str) -> Option<(&str, &str)> {
    let inner = s.trim().strip_prefix("@{")?.strip_suffix('}')?;
    let (oid_part, value_part) = inner.split_once(';')?;
    Some((
        oid_part.trim().strip_prefix("oid=")?.trim(),
        value_part.trim().strip_prefix("value=")?.trim(),
    ))
}

/// The 100 traps as ingest events, as an SNMP intake would make them: host from the
/// sysName varbind (else the source address), message from the trap OID and varbinds,
/// syslog severity when the trap's severity is a syslog name, the rest as attributes.
pub fn trap_events() -> Vec<Value> {
    parse_array(TRAPS)
        .into_iter()
        .filter_map(|t| {
            let oid = t.get("trap_oid")?.as_str()?.to_string();
            let vars: Vec<(String, String)> = t
                .get("variables")?
                .as_array()?
                .iter()
                .filter_map(|v| varbind(v.as_str()?).map(|(o, v)| (o.to_string(), v.to_string())))
                .collect();
            let source_ip = t.get("source_ip")?.as_str()?.to_string();
            let host = vars
                .iter()
                .find(|(o, _)| o == SYS_NAME_OID)
                .map_or(source_ip.clone(), |(_, v)| v.clone());
            let text: Vec<String> = vars.iter().map(|(o, v)| format!("{o}={v}")).collect();
            let severity = t.get("severity").and_then(Value::as_str).unwrap_or("");
            let mut e = Map::new();
            e.insert("hostname".into(), json!(host));
            e.insert("timestamp".into(), t.get("timestamp")?.clone());
            e.insert(
                "message".into(),
                json!(format!("SNMP trap {oid}: {}", text.join(", "))),
            );
            e.insert("trap_oid".into(), json!(oid));
            e.insert("source_type".into(), json!("snmp"));
            e.insert("source_ip".into(), json!(source_ip));
            e.insert("severity".into(), json!(severity));
            if let Some(s) = SyslogSeverity::parse(severity) {
                e.insert("syslog_severity".into(), json!(s.number()));
            }
            Some(Value::Object(e))
        })
        .collect()
}

/// All 430 sample events.
pub fn all_events() -> Vec<Value> {
    let mut v = syslog_events();
    v.extend(trap_events());
    v
}

/// A realistic rule set: about 12 % of the sample events are forwarded, 15 % handled.
pub fn rules() -> Vec<Rule> {
    use MatchType::{Contains, OidPrefix, Regex};
    vec![
        Rule::new(
            Contains,
            Some("FRU_PS_FAIL"),
            None,
            10,
            "Page_and_ticket",
            "NetOps",
        ),
        Rule::new(
            Regex,
            Some(r"%BGP-\d-NOTIFICATION"),
            None,
            20,
            "Page_and_ticket",
            "NetOps",
        ),
        Rule::new(
            Contains,
            Some("out of memory"),
            None,
            20,
            "Page_and_ticket",
            "Linux",
        ),
        Rule::new(
            Contains,
            Some(" is DOWN"),
            None,
            30,
            "Page_and_ticket",
            "AppOps",
        ),
        Rule::new(
            Contains,
            Some("Disk in slot"),
            None,
            30,
            "Ticket_only",
            "Storage",
        ),
        Rule::new(
            Contains,
            Some("FANTRAY_BAD"),
            None,
            40,
            "Ticket_only",
            "NetOps",
        ),
        Rule::new(
            Contains,
            Some("SQL Injection"),
            None,
            40,
            "Page_only",
            "SecOps",
        ),
        Rule::new(
            OidPrefix,
            None,
            Some(".1.3.6.1.6.3.1.1.5"),
            15,
            "Page_and_ticket",
            "NetOps",
        ),
        Rule::new(
            OidPrefix,
            None,
            Some("1.3.6.1.4.1.9.9.41.2"),
            15,
            "Ticket_only",
            "NetOps",
        ),
        Rule::new(
            Contains,
            Some("%SYS-5-CONFIG_I"),
            None,
            90,
            "Ignore",
            "NetOps",
        ),
        Rule::new(Contains, Some("DHCPACK"), None, 90, "Ignore", "Systems"),
    ]
}

/// Development hosts of the sample set.
pub fn dev_hosts() -> Vec<String> {
    vec!["dhcp-server-15.internal.example.com".into()]
}

/// Device teams of the sample set (for meta-alerts).
pub fn device_teams() -> Vec<(String, String)> {
    vec![
        ("core-router-01.dc1.example.com".into(), "NetOps".into()),
        ("edge-fw-02.edge.example.com".into(), "SecOps".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutt_core::event::{Envelope, Limits, validate};
    use mutt_core::rules::{Outcome, RuleSet};

    #[test]
    fn every_sample_validates_and_about_a_tenth_is_forwarded() {
        let events = all_events();
        assert_eq!(events.len(), 430);
        let mut rules_with_ids = rules();
        for (i, r) in rules_with_ids.iter_mut().enumerate() {
            r.id = i as i32 + 1;
        }
        let set = RuleSet::new(rules_with_ids, dev_hosts(), device_teams());
        assert!(set.rejected().is_empty());
        let mut forwarded = 0;
        for (i, v) in events.into_iter().enumerate() {
            let env = Envelope {
                id: i.to_string(),
                correlation_id: "c".into(),
                received_at_ms: 0,
            };
            let e = validate(v, env, &Limits::default()).unwrap();
            if let Outcome::Handled { forward: true, .. } = set.evaluate(&e) {
                forwarded += 1;
            }
        }
        assert!((35..=60).contains(&forwarded), "{forwarded}");
    }
}

/// What [`seed`] added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Rules added (none when the table had rules already).
    pub rules: usize,
}

/// Adds the sample rules (only into an empty rule table), development hosts and device
/// teams, through the same audited writes as the control API (`muttdev` is the actor).
pub async fn seed(store: &Store) -> Result<Seeded, StoreError> {
    let actor = Actor {
        who: "muttdev".into(),
        reason: Some("sample data".into()),
        correlation_id: String::new(),
    };
    let mut added = 0;
    if store.list_rules().await?.is_empty() {
        for r in rules() {
            store.create_rule(&r, &actor).await?;
            added += 1;
        }
    }
    for h in dev_hosts() {
        // Conflict: the host is there already.
        store.create_dev_host(&h, &actor).await?;
    }
    for (h, t) in device_teams() {
        if store.put_team(&h, &t, true, &actor).await? == Outcome::Conflict {
            store.put_team(&h, &t, false, &actor).await?;
        }
    }
    Ok(Seeded { rules: added })
}
