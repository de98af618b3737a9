//! Alert rules and the matching semantics of DESIGN.md.
//!
//! A [`RuleSet`] is compiled once from the rows of `alert_rules`, `development_hosts` and
//! `device_teams`, then shared read-only by every batch until the next reload replaces it
//! whole. Compiling validates everything (regexes, OIDs, severities), so matching itself
//! cannot fail.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::event::{Event, normalize_oid};
use crate::severity::SyslogSeverity;

/// The handlings that send an alert to the webhook (compared case-insensitively).
/// Anything else (`Ignore`, …) is audited only.
pub const FORWARDED_HANDLINGS: &[&str] = &["page_and_ticket", "page_only", "ticket_only"];

/// Upper bound on a compiled regex, so that one rule cannot take a worker's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How a rule's `match_string` is compared with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchType {
    /// Case-insensitive substring of the message.
    Contains,
    /// Case-insensitive regex search in the message (linear-time engine).
    Regex,
    /// The rule's OID equals the event's trap OID or is an ancestor of it, on whole arcs.
    OidPrefix,
}

impl MatchType {
    /// The name stored in `alert_rules.match_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contains => "contains",
            Self::Regex => "regex",
            Self::OidPrefix => "oid_prefix",
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MatchType {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, RuleError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "contains" => Ok(Self::Contains),
            "regex" => Ok(Self::Regex),
            "oid_prefix" => Ok(Self::OidPrefix),
            _ => Err(RuleError::new(
                "match_type",
                format!("{s:?} is not one of contains, regex, oid_prefix"),
            )),
        }
    }
}

/// One row of `alert_rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Primary key; also the tie-breaker between equal priorities.
    pub id: i32,
    /// Text to look for (contains / regex).
    pub match_string: Option<String>,
    /// OID for `oid_prefix` rules.
    pub trap_oid: Option<String>,
    /// When set, only events of exactly this syslog severity match (text rules).
    pub syslog_severity: Option<i32>,
    /// How `match_string` / `trap_oid` are compared.
    pub match_type: MatchType,
    /// Lower wins.
    pub priority: i32,
    /// Handling for production hosts (`Page_and_ticket`, `Ticket_only`, `Ignore`, …).
    pub prod_handling: String,
    /// Handling for hosts listed in `development_hosts`.
    pub dev_handling: String,
    /// The team the alert goes to (the webhook's `class`).
    pub team_assignment: String,
    /// Inactive rules are never tried.
    pub is_active: bool,
}

/// A rule that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl RuleError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl Rule {
    /// Checks a rule as the control API and the loader must: a client mistake is named,
    /// never discovered at match time.
    pub fn validate(&self) -> Result<(), RuleError> {
        self.compile().map(|_| ())
    }

    fn compile(&self) -> Result<CompiledRule, RuleError> {
        let match_string = self.match_string.as_deref().filter(|s| !s.is_empty());
        let trap_oid = match self.trap_oid.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(o) => Some(normalize_oid(o).map_err(|m| RuleError::new("trap_oid", m))?),
            None => None,
        };
        if match_string.is_none() && trap_oid.is_none() {
            return Err(RuleError::new(
                "match_string",
                "a rule needs a match_string or a trap_oid",
            ));
        }
        if self.match_type == MatchType::OidPrefix && trap_oid.is_none() {
            return Err(RuleError::new(
                "trap_oid",
                "an oid_prefix rule needs a trap_oid",
            ));
        }
        let severity = match self.syslog_severity {
            Some(n) => Some(
                SyslogSeverity::from_number(n.into())
                    .ok_or_else(|| {
                        RuleError::new("syslog_severity", format!("{n} is outside 0–7"))
                    })?
                    .number(),
            ),
            None => None,
        };
        for (field, v) in [
            ("prod_handling", &self.prod_handling),
            ("dev_handling", &self.dev_handling),
            ("team_assignment", &self.team_assignment),
        ] {
            if v.trim().is_empty() {
                return Err(RuleError::new(field, "must not be empty"));
            }
            if v.len() > 100 {
                return Err(RuleError::new(field, "at most 100 characters"));
            }
        }
        let text = match (self.match_type, match_string) {
            (MatchType::Contains, Some(s)) => TextTest::Contains(s.to_lowercase()),
            (MatchType::Regex, Some(s)) => TextTest::Regex(
                RegexBuilder::new(s)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| RuleError::new("match_string", format!("invalid regex: {e}")))?,
            ),
            _ => TextTest::Never,
        };
        Ok(CompiledRule {
            rule: self.clone(),
            oid: trap_oid,
            severity,
            text,
            prod_forward: is_forwarded(&self.prod_handling),
            dev_forward: is_forwarded(&self.dev_handling),
        })
    }
}

/// Whether a handling sends an alert to the webhook.
pub fn is_forwarded(handling: &str) -> bool {
    FORWARDED_HANDLINGS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(handling.trim()))
}

#[derive(Debug)]
enum TextTest {
    Contains(String),
    Regex(Regex),
    Never,
}

#[derive(Debug)]
struct CompiledRule {
    rule: Rule,
    oid: Option<String>,
    severity: Option<u8>,
    text: TextTest,
    prod_forward: bool,
    dev_forward: bool,
}

/// Whether `rule_oid` equals `event_oid` or is an ancestor of it on whole arcs. Both are
/// normalised (no leading dot).
pub fn oid_is_prefix(rule_oid: &str, event_oid: &str) -> bool {
    event_oid == rule_oid
        || (event_oid.len() > rule_oid.len()
            && event_oid.starts_with(rule_oid)
            && event_oid.as_bytes()[rule_oid.len()] == b'.')
}

/// The decision for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A rule matched.
    Handled {
        /// The rule that matched first.
        rule: &'a Rule,
        /// `dev_handling` or `prod_handling`, by the host.
        handling: &'a str,
        /// Whether the handling sends an alert to the webhook.
        forward: bool,
    },
    /// No rule matched.
    Unhandled,
}

/// Compiled rules plus the development hosts and device teams, ready to match.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    dev_hosts: HashSet<String>,
    device_teams: HashMap<String, String>,
    /// Rules that failed to compile, with why; they are skipped, and reported by the loader.
    rejected: Vec<(i32, RuleError)>,
}

impl RuleSet {
    /// Compiles rules, development hosts and `(hostname, team)` pairs. Inactive rules are
    /// dropped; invalid ones are kept out and listed in [`RuleSet::rejected`].
    pub fn new(
        rules: impl IntoIterator<Item = Rule>,
        dev_hosts: impl IntoIterator<Item = String>,
        device_teams: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut compiled = Vec::new();
        let mut rejected = Vec::new();
        for rule in rules.into_iter().filter(|r| r.is_active) {
            match rule.compile() {
                Ok(c) => compiled.push(c),
                Err(e) => rejected.push((rule.id, e)),
            }
        }
        compiled.sort_by_key(|c| (c.rule.priority, c.rule.id));
        Self {
            rules: compiled,
            dev_hosts: dev_hosts.into_iter().map(|h| h.to_lowercase()).collect(),
            device_teams: device_teams
                .into_iter()
                .map(|(h, t)| (h.to_lowercase(), t))
                .collect(),
            rejected,
        }
    }

    /// Number of active, valid rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no active rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of development hosts.
    pub fn dev_host_count(&self) -> usize {
        self.dev_hosts.len()
    }

    /// Number of device-team entries.
    pub fn team_count(&self) -> usize {
        self.device_teams.len()
    }

    /// Rules that could not be compiled, with the reason.
    pub fn rejected(&self) -> &[(i32, RuleError)] {
        &self.rejected
    }

    /// Whether `hostname` is a development host (exact, case-insensitive).
    pub fn is_dev_host(&self, hostname: &str) -> bool {
        self.dev_hosts.contains(&hostname.to_lowercase())
    }

    /// The team in `device_teams` for `hostname`, if any (for unhandled meta-alerts).
    pub fn device_team(&self, hostname: &str) -> Option<&str> {
        self.device_teams
            .get(&hostname.to_lowercase())
            .map(String::as_str)
    }

    /// Tries the rules in priority order; the first match wins.
    pub fn evaluate(&self, event: &Event) -> Outcome<'_> {
        // Lower-cased once per event, not once per rule.
        let mut lower: Option<String> = None;
        for c in &self.rules {
            if matches(c, event, &mut lower) {
                let dev = self.is_dev_host(&event.hostname);
                let (handling, forward) = if dev {
                    (c.rule.dev_handling.as_str(), c.dev_forward)
                } else {
                    (c.rule.prod_handling.as_str(), c.prod_forward)
                };
                return Outcome::Handled {
                    rule: &c.rule,
                    handling,
                    forward,
                };
            }
        }
        Outcome::Unhandled
    }
}

fn matches(c: &CompiledRule, event: &Event, lower: &mut Option<String>) -> bool {
    if let (Some(event_oid), Some(rule_oid)) = (event.trap_oid.as_deref(), c.oid.as_deref()) {
        let event_oid = event_oid.strip_prefix('.').unwrap_or(event_oid);
        return c.rule.match_type == MatchType::OidPrefix && oid_is_prefix(rule_oid, event_oid);
    }
    if let Some(s) = c.severity
        && event.syslog_severity != Some(s)
    {
        return false;
    }
    match &c.text {
        TextTest::Contains(needle) => lower
            .get_or_insert_with(|| event.message.to_lowercase())
            .contains(needle.as_str()),
        TextTest::Regex(re) => re.is_match(&event.message),
        TextTest::Never => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Map;

    fn rule(id: i32, mt: MatchType, s: Option<&str>, oid: Option<&str>, prio: i32) -> Rule {
        Rule {
            id,
            match_string: s.map(Into::into),
            trap_oid: oid.map(Into::into),
            syslog_severity: None,
            match_type: mt,
            priority: prio,
            prod_handling: "Page_and_ticket".into(),
            dev_handling: "Ignore".into(),
            team_assignment: format!("team{id}"),
            is_active: true,
        }
    }

    fn event(host: &str, msg: &str, oid: Option<&str>, sev: Option<u8>) -> Event {
        Event {
            id: "e".into(),
            correlation_id: "c".into(),
            received_at_ms: 0,
            hostname: host.into(),
            message: msg.into(),
            timestamp: "2025-01-01T00:00:00Z".into(),
            syslog_severity: sev,
            trap_oid: oid.map(Into::into),
            source_type: None,
            attributes: Map::new(),
        }
    }

    fn matched(set: &RuleSet, e: &Event) -> Option<i32> {
        match set.evaluate(e) {
            Outcome::Handled { rule, .. } => Some(rule.id),
            Outcome::Unhandled => None,
        }
    }

    #[test]
    fn oid_prefix_is_on_whole_arcs() {
        assert!(oid_is_prefix("1.3.6.1.4", "1.3.6.1.4.1.9"));
        assert!(oid_is_prefix("1.3.6.1.4", "1.3.6.1.4"));
        assert!(!oid_is_prefix("1.3.6.1.4", "1.3.6.1.41"));
        assert!(!oid_is_prefix("1.3.6.1.4.1", "1.3.6.1.4"));
        let set = RuleSet::new(
            [rule(1, MatchType::OidPrefix, None, Some(".1.3.6.1.4"), 1)],
            [],
            [],
        );
        assert_eq!(
            matched(&set, &event("h", "x", Some("1.3.6.1.4.1.9"), None)),
            Some(1)
        );
        assert_eq!(
            matched(&set, &event("h", "x", Some(".1.3.6.1.4.1.9"), None)),
            Some(1)
        );
        assert_eq!(
            matched(&set, &event("h", "x", Some("1.3.6.1.41"), None)),
            None
        );
        assert_eq!(matched(&set, &event("h", "x", None, None)), None);
    }

    #[test]
    fn an_oid_on_both_sides_skips_the_text_test() {
        let mut r = rule(1, MatchType::Contains, Some("down"), Some("1.3.6.1.4"), 1);
        let set = RuleSet::new([r.clone()], [], []);
        // Both have OIDs, the rule is not oid_prefix: no match although the text would.
        assert_eq!(
            matched(&set, &event("h", "link down", Some("1.3.6.1.4.1"), None)),
            None
        );
        // No event OID: the text test applies.
        assert_eq!(matched(&set, &event("h", "link DOWN", None, None)), Some(1));
        r.match_type = MatchType::OidPrefix;
        let set = RuleSet::new([r], [], []);
        // oid_prefix never matches text.
        assert_eq!(matched(&set, &event("h", "link down", None, None)), None);
    }

    #[test]
    fn priority_then_id_decides() {
        let set = RuleSet::new(
            [
                rule(3, MatchType::Contains, Some("error"), None, 20),
                rule(2, MatchType::Contains, Some("err"), None, 10),
                rule(1, MatchType::Contains, Some("e"), None, 10),
                rule(0, MatchType::Contains, Some("error"), None, 5),
            ],
            [],
            [],
        );
        assert_eq!(
            matched(&set, &event("h", "ERROR here", None, None)),
            Some(0)
        );
        assert_eq!(matched(&set, &event("h", "err", None, None)), Some(1));
        let mut inactive = rule(0, MatchType::Contains, Some("error"), None, 5);
        inactive.is_active = false;
        let set = RuleSet::new(
            [
                inactive,
                rule(3, MatchType::Contains, Some("error"), None, 20),
            ],
            [],
            [],
        );
        assert_eq!(matched(&set, &event("h", "error", None, None)), Some(3));
    }

    #[test]
    fn regex_is_a_case_insensitive_search() {
        let set = RuleSet::new(
            [rule(1, MatchType::Regex, Some(r"link-\d-updown"), None, 1)],
            [],
            [],
        );
        assert_eq!(
            matched(&set, &event("h", "%LINK-3-UPDOWN: x", None, None)),
            Some(1)
        );
        assert_eq!(
            matched(&set, &event("h", "%LINK-X-UPDOWN", None, None)),
            None
        );
    }

    #[test]
    fn severity_filter_needs_the_exact_severity() {
        let mut r = rule(1, MatchType::Contains, Some("fan"), None, 1);
        r.syslog_severity = Some(2);
        let set = RuleSet::new([r], [], []);
        assert_eq!(
            matched(&set, &event("h", "fan failed", None, Some(2))),
            Some(1)
        );
        assert_eq!(
            matched(&set, &event("h", "fan failed", None, Some(3))),
            None
        );
        assert_eq!(matched(&set, &event("h", "fan failed", None, None)), None);
    }

    #[test]
    fn dev_hosts_and_forwarding() {
        let set = RuleSet::new(
            [rule(1, MatchType::Contains, Some("x"), None, 1)],
            ["Lab-01.Example.com".to_string()],
            [("core-1".to_string(), "NET".to_string())],
        );
        match set.evaluate(&event("lab-01.example.COM", "x", None, None)) {
            Outcome::Handled {
                handling, forward, ..
            } => assert_eq!((handling, forward), ("Ignore", false)),
            o => panic!("{o:?}"),
        }
        match set.evaluate(&event("prod", "x", None, None)) {
            Outcome::Handled {
                handling, forward, ..
            } => assert_eq!((handling, forward), ("Page_and_ticket", true)),
            o => panic!("{o:?}"),
        }
        assert_eq!(set.device_team("CORE-1"), Some("NET"));
        assert!(is_forwarded(" TICKET_ONLY"));
        assert!(!is_forwarded("ignore"));
    }

    #[test]
    fn invalid_rules_are_rejected_with_their_field() {
        let bad = [
            (
                rule(1, MatchType::Regex, Some("("), None, 1),
                "match_string",
            ),
            (
                rule(2, MatchType::OidPrefix, Some("x"), None, 1),
                "trap_oid",
            ),
            (
                rule(3, MatchType::OidPrefix, None, Some("1.a"), 1),
                "trap_oid",
            ),
            (rule(4, MatchType::Contains, None, None, 1), "match_string"),
        ];
        for (r, field) in &bad {
            assert_eq!(r.validate().unwrap_err().field, *field);
        }
        let mut r = rule(5, MatchType::Contains, Some("x"), None, 1);
        r.syslog_severity = Some(8);
        assert_eq!(r.validate().unwrap_err().field, "syslog_severity");
        let set = RuleSet::new(bad.into_iter().map(|(r, _)| r), [], []);
        assert_eq!(set.len(), 0);
        assert_eq!(set.rejected().len(), 4);
        assert_eq!(
            "OID_PREFIX".parse::<MatchType>().unwrap(),
            MatchType::OidPrefix
        );
        assert!("fuzzy".parse::<MatchType>().is_err());
    }

    proptest! {
        #[test]
        fn oid_prefix_agrees_with_arc_comparison(
            a in proptest::collection::vec(0u32..50, 1..6),
            b in proptest::collection::vec(0u32..50, 1..8),
        ) {
            let j = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let expected = b.len() >= a.len() && b[..a.len()] == a[..];
            prop_assert_eq!(oid_is_prefix(&j(&a), &j(&b)), expected);
        }

        #[test]
        fn contains_is_case_insensitive(needle in "[a-zA-Z]{1,8}", pre in "[ -~]{0,10}", post in "[ -~]{0,10}") {
            let set = RuleSet::new([rule(1, MatchType::Contains, Some(&needle.to_uppercase()), None, 1)], [], []);
            let msg = format!("{pre}{}{post}", needle.to_lowercase());
            prop_assert_eq!(matched(&set, &event("h", &msg, None, None)), Some(1));
        }

        #[test]
        fn first_match_is_the_lowest_priority_among_matching(prios in proptest::collection::vec(-5i32..5, 1..8)) {
            let rules: Vec<Rule> = prios.iter().enumerate()
                .map(|(i, p)| rule(i as i32, MatchType::Contains, Some("x"), None, *p)).collect();
            let best = rules.iter().min_by_key(|r| (r.priority, r.id)).unwrap().id;
            let set = RuleSet::new(rules, [], []);
            prop_assert_eq!(matched(&set, &event("h", "x", None, None)), Some(best));
        }
    }
}
