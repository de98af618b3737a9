//! Alert rules and their matching semantics (priorities, contains/regex/OID arcs, dev hosts, teams).
//!
//! A [`RuleSet`] is compiled once from the rows of `alert_rules`, `development_hosts` and
//! `device_teams`, then shared read-only by every batch until the next reload replaces it
//! whole. Compiling validates everything (regexes, OIDs, severities), so matching itself
//! cannot fail.
//!
//! # Layout
//!
//! - [`explain`]: why an event matches the rule it matches (every rule in the order the
//!   alerter tries them, with its outcome, and the verdict), from the matcher itself.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::event::{Event, normalize_oid};
use crate::severity::SyslogSeverity;

pub mod explain;

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
    /// A new active rule, not stored yet (id 0), without a severity filter, whose alerts
    /// are ignored for development hosts (`Ignore`): the rule of seed data and tests.
    pub fn new(
        match_type: MatchType,
        match_string: Option<&str>,
        trap_oid: Option<&str>,
        priority: i32,
        prod_handling: &str,
        team_assignment: &str,
    ) -> Self {
        Self {
            id: 0,
            match_string: match_string.map(Into::into),
            trap_oid: trap_oid.map(Into::into),
            syslog_severity: None,
            match_type,
            priority,
            prod_handling: prod_handling.into(),
            dev_handling: "Ignore".into(),
            team_assignment: team_assignment.into(),
            is_active: true,
        }
    }

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
            if check(c, event, &mut lower) == Check::Matched {
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

/// What one rule's test found for one event: the matcher's own answer (the alerter takes
/// [`Check::Matched`] as a match), so that an [`explain`]ation can never disagree with
/// [`RuleSet::evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The rule matches.
    Matched,
    /// Both have a trap OID and the rule is not `oid_prefix`: no text test is tried.
    OidNotOidPrefix,
    /// Both have a trap OID; the rule's is neither the event's nor an ancestor of it.
    OidArcMismatch,
    /// The rule wants one syslog severity and the event has another, or none.
    SeverityMismatch,
    /// The `contains` text is not in the message.
    ContainsNoMatch,
    /// The regex finds nothing in the message.
    RegexNoMatch,
    /// No text test applies: an `oid_prefix` rule for an event without a trap OID, or a
    /// rule without a `match_string`.
    NoTextTest,
}

fn check(c: &CompiledRule, event: &Event, lower: &mut Option<String>) -> Check {
    if let (Some(event_oid), Some(rule_oid)) = (event.trap_oid.as_deref(), c.oid.as_deref()) {
        let event_oid = event_oid.strip_prefix('.').unwrap_or(event_oid);
        return if c.rule.match_type != MatchType::OidPrefix {
            Check::OidNotOidPrefix
        } else if oid_is_prefix(rule_oid, event_oid) {
            Check::Matched
        } else {
            Check::OidArcMismatch
        };
    }
    if let Some(s) = c.severity
        && event.syslog_severity != Some(s)
    {
        return Check::SeverityMismatch;
    }
    match &c.text {
        TextTest::Contains(needle) => {
            if lower
                .get_or_insert_with(|| event.message.to_lowercase())
                .contains(needle.as_str())
            {
                Check::Matched
            } else {
                Check::ContainsNoMatch
            }
        }
        TextTest::Regex(re) => {
            if re.is_match(&event.message) {
                Check::Matched
            } else {
                Check::RegexNoMatch
            }
        }
        TextTest::Never => Check::NoTextTest,
    }
}

#[cfg(test)]
mod tests;
