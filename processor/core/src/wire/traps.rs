//! Names and severities of trap OIDs, without a MIB compiler: a built-in table of the
//! well-known ones, extended or overridden by a TOML file (`MUTT_SNMP_TRAPS_FILE`):
//!
//! ```toml
//! [[trap]]
//! oid = "1.3.6.1.4.1.9.9.41.2.0.1"
//! name = "clogMessageGenerated"
//! severity = "warning"
//!
//! [[trap]]                 # every trap under an enterprise
//! oid = "1.3.6.1.4.1.2636"
//! name = "juniper"
//! severity = "notice"
//! prefix = true
//! ```
//!
//! An exact entry wins over a prefix entry; the longest prefix wins among prefixes. A trap
//! no entry matches is named by its OID, with severity [`UNKNOWN_SEVERITY`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::event::normalize_oid;
use crate::severity::SyslogSeverity;
use serde::Deserialize;

/// The severity of a trap no entry matches: warning, so that rules on severity see it.
pub const UNKNOWN_SEVERITY: u8 = 4;

/// What the table says of a trap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Its name (`linkDown`), or the prefix entry's name (`cisco`).
    pub name: String,
    /// Syslog severity 0–7.
    pub severity: u8,
    /// Whether the name is the entry of a prefix (a vendor), not of this trap.
    pub by_prefix: bool,
}

/// The built-in entries: SNMPv2-MIB's generic traps and the notifications of the sample
/// data (`demo_snmp_traps.json`) whose MIB is public. (oid, name, severity, prefix)
const BUILT_IN: &[(&str, &str, u8, bool)] = &[
    ("1.3.6.1.6.3.1.1.5.1", "coldStart", 4, false),
    ("1.3.6.1.6.3.1.1.5.2", "warmStart", 5, false),
    ("1.3.6.1.6.3.1.1.5.3", "linkDown", 3, false),
    ("1.3.6.1.6.3.1.1.5.4", "linkUp", 5, false),
    ("1.3.6.1.6.3.1.1.5.5", "authenticationFailure", 4, false),
    ("1.3.6.1.6.3.1.1.5.6", "egpNeighborLoss", 4, false),
    // BGP4-MIB bgpEstablished / bgpBackwardTransition, in their RFC 3584 form.
    ("1.3.6.1.2.1.15.7.0.1", "bgpEstablished", 5, false),
    ("1.3.6.1.2.1.15.7.0.2", "bgpBackwardTransition", 3, false),
    // OSPF-TRAP-MIB.
    ("1.3.6.1.2.1.14.16.2.2", "ospfNbrStateChange", 4, false),
    // CISCO-SYSLOG-MIB, CISCO-ENTITY-FRU-CONTROL-MIB, CISCO-HSRP-MIB.
    ("1.3.6.1.4.1.9.9.41.2.0.1", "clogMessageGenerated", 4, false),
    (
        "1.3.6.1.4.1.9.9.117.2.0.1",
        "cefcModuleStatusChange",
        3,
        false,
    ),
    ("1.3.6.1.4.1.9.9.106.2.0.1", "cHsrpStateChange", 4, false),
    // Enterprises: the vendor's name for the rest of their tree.
    ("1.3.6.1.4.1.9", "cisco", 4, true),
    ("1.3.6.1.4.1.14179", "cisco-wlc", 4, true),
    ("1.3.6.1.4.1.2011", "huawei", 4, true),
    ("1.3.6.1.4.1.311", "microsoft", 4, true),
    ("1.3.6.1.4.1.232", "hpe", 4, true),
    ("1.3.6.1.4.1.8072", "net-snmp", 5, true),
    ("1.3.6.1.4.1.2636", "juniper", 4, true),
];

/// The table in use.
#[derive(Debug, Clone)]
pub struct TrapTable {
    exact: BTreeMap<String, (String, u8)>,
    prefixes: BTreeMap<String, (String, u8)>,
}

/// Why the table file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Not readable.
    #[error("MUTT_SNMP_TRAPS_FILE: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not the expected TOML.
    #[error("MUTT_SNMP_TRAPS_FILE: {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the entry.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    trap: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    oid: String,
    name: String,
    severity: toml::Value,
    #[serde(default)]
    prefix: bool,
}

impl Default for TrapTable {
    fn default() -> Self {
        let mut t = Self {
            exact: BTreeMap::new(),
            prefixes: BTreeMap::new(),
        };
        for &(oid, name, sev, prefix) in BUILT_IN {
            t.insert(oid.to_string(), name.to_string(), sev, prefix);
        }
        t
    }
}

impl TrapTable {
    fn insert(&mut self, oid: String, name: String, severity: u8, prefix: bool) {
        let map = if prefix {
            &mut self.prefixes
        } else {
            &mut self.exact
        };
        map.insert(oid, (name, severity));
    }

    /// The built-in table, extended by `path` when given.
    pub fn load(path: Option<&Path>) -> Result<Self, TableError> {
        let mut table = Self::default();
        let Some(path) = path else {
            return Ok(table);
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TableError::Read {
            path: shown.clone(),
            source,
        })?;
        table.extend(&text).map_err(|message| TableError::Invalid {
            path: shown,
            message,
        })?;
        Ok(table)
    }

    /// Adds the entries of a TOML text; a later entry overrides an earlier one.
    pub fn extend(&mut self, text: &str) -> Result<usize, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let n = file.trap.len();
        for (i, e) in file.trap.into_iter().enumerate() {
            let at = |m: String| format!("trap {} ({:?}): {m}", i + 1, e.oid);
            let oid = normalize_oid(&e.oid).map_err(at)?;
            let name = e.name.trim().to_string();
            if name.is_empty() || name.len() > 128 {
                return Err(at("name must have 1 to 128 characters".into()));
            }
            let severity = match &e.severity {
                toml::Value::Integer(n) => SyslogSeverity::from_number(*n),
                toml::Value::String(s) => SyslogSeverity::parse(s),
                _ => None,
            }
            .ok_or_else(|| at("severity must be 0–7 or a syslog name such as warning".into()))?;
            self.insert(oid, name, severity.number(), e.prefix);
        }
        Ok(n)
    }

    /// What the table says of `oid`.
    pub fn lookup(&self, oid: &str) -> Option<Known> {
        if let Some((name, sev)) = self.exact.get(oid) {
            return Some(Known {
                name: name.clone(),
                severity: *sev,
                by_prefix: false,
            });
        }
        // Longest prefix first: walk up the arcs.
        let mut cut = oid;
        loop {
            if let Some((name, sev)) = self.prefixes.get(cut) {
                return Some(Known {
                    name: name.clone(),
                    severity: *sev,
                    by_prefix: true,
                });
            }
            cut = &cut[..cut.rfind('.')?];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_entries_win_over_prefixes_and_the_longest_prefix_wins() {
        let t = TrapTable::default();
        assert_eq!(t.lookup("1.3.6.1.6.3.1.1.5.3").unwrap().name, "linkDown");
        assert_eq!(t.lookup("1.3.6.1.6.3.1.1.5.3").unwrap().severity, 3);
        let cisco = t.lookup("1.3.6.1.4.1.9.9.999.0.1").unwrap();
        assert_eq!((cisco.name.as_str(), cisco.by_prefix), ("cisco", true));
        assert_eq!(
            t.lookup("1.3.6.1.4.1.14179.2.6.3.5").unwrap().name,
            "cisco-wlc"
        );
        assert_eq!(t.lookup("1.3.6.1.4.1.99999.1"), None);
        // "1.3.6.1.4.1.90" is not under "1.3.6.1.4.1.9".
        assert_eq!(t.lookup("1.3.6.1.4.1.90.1"), None);
    }

    #[test]
    fn a_file_extends_and_overrides_the_table() {
        let mut t = TrapTable::default();
        let n = t
            .extend(
                r#"
                [[trap]]
                oid = ".1.3.6.1.6.3.1.1.5.3"
                name = "linkDown"
                severity = "critical"
                [[trap]]
                oid = "1.3.6.1.4.1.99999"
                name = "acme"
                severity = 6
                prefix = true
                "#,
            )
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(t.lookup("1.3.6.1.6.3.1.1.5.3").unwrap().severity, 2);
        assert_eq!(t.lookup("1.3.6.1.4.1.99999.7.0.1").unwrap().name, "acme");
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry() {
        let mut t = TrapTable::default();
        let e = t
            .extend("[[trap]]\noid = \"1.3.x\"\nname = \"n\"\nseverity = \"warning\"\n")
            .unwrap_err();
        assert!(e.contains("trap 1"), "{e}");
        let e = t
            .extend("[[trap]]\noid = \"1.3.6\"\nname = \"n\"\nseverity = \"loud\"\n")
            .unwrap_err();
        assert!(e.contains("severity"), "{e}");
        let e = t
            .extend("[[trap]]\noid = \"1.3.6\"\nnam = \"n\"\n")
            .unwrap_err();
        assert!(e.contains("nam"), "{e}");
    }
}
