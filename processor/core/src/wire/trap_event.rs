//! A decoded notification into the JSON event `POST /api/v2/ingest` would take: host from
//! `sysName.0`, else the original agent's address (`snmpTrapAddress.0`, or a v1 trap's
//! agent-addr), else the datagram's source; `trap_oid`; name and severity from the trap
//! table; the bindings kept as attributes and rendered into `message`.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::snmp::{Notification, SNMP_TRAP_ADDRESS, SYS_NAME};
use super::traps::{TrapTable, UNKNOWN_SEVERITY};

/// Names of common bindings, so that a message reads `ifIndex.2=2` rather than an OID.
/// Only objects of the standard MIBs, matched as the prefix of a binding's OID.
const OBJECT_NAMES: &[(&str, &str)] = &[
    ("1.3.6.1.2.1.1.3", "sysUpTime"),
    ("1.3.6.1.2.1.1.5", "sysName"),
    ("1.3.6.1.2.1.1.6", "sysLocation"),
    ("1.3.6.1.2.1.2.2.1.1", "ifIndex"),
    ("1.3.6.1.2.1.2.2.1.2", "ifDescr"),
    ("1.3.6.1.2.1.2.2.1.7", "ifAdminStatus"),
    ("1.3.6.1.2.1.2.2.1.8", "ifOperStatus"),
    ("1.3.6.1.2.1.31.1.1.1.1", "ifName"),
    ("1.3.6.1.2.1.15.3.1.2", "bgpPeerState"),
    ("1.3.6.1.2.1.15.3.1.14", "bgpPeerLastError"),
    ("1.3.6.1.6.3.18.1.3", "snmpTrapAddress"),
    ("1.3.6.1.6.3.1.1.4.3", "snmpTrapEnterprise"),
];

/// The longest message built from bindings; the rest stays in the attributes.
const MAX_MESSAGE: usize = 4096;

/// The event of a notification from `peer`, received at `received`. The message is cut
/// to `max_message` bytes (and at most 4 KiB); the bindings stay whole in `varbinds`.
pub fn to_event(
    n: &Notification,
    peer: IpAddr,
    received: DateTime<Utc>,
    table: &TrapTable,
    max_message: usize,
) -> Value {
    let known = table.lookup(&n.trap_oid);
    let (name, severity) = match &known {
        Some(k) if !k.by_prefix => (Some(k.name.as_str()), k.severity),
        Some(k) => (None, k.severity),
        None => (None, UNKNOWN_SEVERITY),
    };
    let mut attrs = Map::new();
    attrs.insert("snmp_version".into(), json!(n.version.as_str()));
    attrs.insert("peer".into(), json!(peer.to_string()));
    if let Some(name) = name {
        attrs.insert("trap_name".into(), json!(name));
    }
    if let Some(k) = known.as_ref().filter(|k| k.by_prefix) {
        attrs.insert("trap_vendor".into(), json!(k.name));
    }
    if let Some(t) = n.uptime {
        attrs.insert("uptime_ticks".into(), json!(t));
    }
    if n.inform.is_some() {
        attrs.insert("inform".into(), json!(true));
    }
    let mut host = None;
    let mut agent = None;
    let mut bindings = Vec::with_capacity(n.varbinds.len());
    for (oid, value) in &n.varbinds {
        match (oid.as_str(), value) {
            (SYS_NAME, Value::String(s)) if !s.is_empty() && host.is_none() => {
                host = Some(s.clone());
            }
            (SNMP_TRAP_ADDRESS, Value::String(s)) if agent.is_none() => agent = Some(s.clone()),
            _ => {}
        }
        bindings.push(json!({"oid": oid, "value": value}));
    }
    if let Some(v1) = &n.v1 {
        attrs.insert("enterprise".into(), json!(v1.enterprise));
        attrs.insert("agent_addr".into(), json!(v1.agent_addr));
        attrs.insert("generic_trap".into(), json!(v1.generic));
        attrs.insert("specific_trap".into(), json!(v1.specific));
        if agent.is_none() && v1.agent_addr != "0.0.0.0" {
            agent = Some(v1.agent_addr.clone());
        }
    }
    let (hostname, from) = match (host, agent) {
        (Some(h), _) => (h, "sysName"),
        (None, Some(a)) => (a, "agent_address"),
        (None, None) => (peer.to_string(), "peer"),
    };
    attrs.insert("hostname_from".into(), json!(from));
    attrs.insert(
        "message".into(),
        json!(message(
            name,
            &n.trap_oid,
            &n.varbinds,
            max_message.min(MAX_MESSAGE)
        )),
    );
    attrs.insert("varbinds".into(), Value::Array(bindings));
    attrs.insert("hostname".into(), json!(hostname));
    attrs.insert(
        "timestamp".into(),
        json!(received.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    );
    attrs.insert("trap_oid".into(), json!(n.trap_oid));
    attrs.insert("syslog_severity".into(), json!(severity));
    attrs.insert("source_type".into(), json!("snmp"));
    Value::Object(attrs)
}

/// `linkDown (1.3.6.1.6.3.1.1.5.3): ifIndex.2=2 ifOperStatus.2=2`, at most `max` bytes.
fn message(name: Option<&str>, oid: &str, varbinds: &[(String, Value)], max: usize) -> String {
    const MORE: &str = " …";
    let mut m = match name {
        Some(n) => format!("{n} ({oid})"),
        None => format!("trap {oid}"),
    };
    let mut first = true;
    for (o, v) in varbinds {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => "null".into(),
            other => other.to_string(),
        };
        let part = format!(
            "{}{}={text}",
            if first { ": " } else { " " },
            object_name(o)
        );
        if m.len() + part.len() + MORE.len() > max {
            m.push_str(MORE);
            break;
        }
        m.push_str(&part);
        first = false;
    }
    // The head alone may be over a very small limit: cut it at a character boundary.
    if m.len() > max {
        let mut cut = max;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
    }
    m
}

/// `ifIndex.2` for `1.3.6.1.2.1.2.2.1.1.2`; the OID itself when unknown.
fn object_name(oid: &str) -> String {
    for (prefix, name) in OBJECT_NAMES {
        if let Some(rest) = oid.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('.'))
        {
            return format!("{name}{rest}");
        }
    }
    oid.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_read_with_standard_names() {
        assert_eq!(object_name("1.3.6.1.2.1.2.2.1.1.2"), "ifIndex.2");
        assert_eq!(object_name("1.3.6.1.2.1.1.5.0"), "sysName.0");
        // A prefix only at an arc boundary.
        assert_eq!(object_name("1.3.6.1.2.1.2.2.1.11"), "1.3.6.1.2.1.2.2.1.11");
        let m = message(
            Some("linkDown"),
            "1.3.6.1.6.3.1.1.5.3",
            &[
                ("1.3.6.1.2.1.2.2.1.1.2".into(), json!(2)),
                ("1.3.6.1.2.1.2.2.1.2.2".into(), json!("Gi0/1")),
            ],
            MAX_MESSAGE,
        );
        assert_eq!(
            m,
            "linkDown (1.3.6.1.6.3.1.1.5.3): ifIndex.2=2 ifDescr.2=Gi0/1"
        );
    }

    #[test]
    fn a_long_binding_list_is_cut_in_the_message() {
        let vbs: Vec<(String, Value)> = (0..2000)
            .map(|i| (format!("1.3.6.1.4.1.9.{i}"), json!("x".repeat(10))))
            .collect();
        let m = message(None, "1.3.6.1.4.1.9.1", &vbs, MAX_MESSAGE);
        assert!(m.len() <= MAX_MESSAGE);
        assert!(m.ends_with('…'));
        let m = message(Some("ünïcode-name"), "1.3.6.1.4.1.9.1", &vbs, 5);
        assert!(m.len() <= 5);
    }
}
