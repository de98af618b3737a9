//! Why an event matches the rule it matches ("why didn't this alert?"): every rule, active
//! or not, in the order the alerter tries them, with what its test found, and the verdict
//! (handling, team, webhook severity; for an unhandled event its fingerprint and the team
//! of a meta-alert).
//!
//! Nothing here has a matcher of its own: each rule is compiled by the same code as a
//! [`RuleSet`] and tested by the same function the alerter's [`RuleSet::evaluate`] calls,
//! and the verdict is `evaluate`'s own answer. A property test checks that the rule the
//! explanation says matched is always the one `evaluate` picks.

use serde::{Deserialize, Serialize};

use super::{Check, CompiledRule, MatchType, Outcome, Rule, RuleSet, TextTest};
use crate::event::Event;
use crate::fingerprint;
use crate::severity::SyslogSeverity;

/// What trying one rule on the event found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialOutcome {
    /// Skipped: the rule is inactive (the alerter never tries it).
    Inactive,
    /// Skipped: the rule cannot be compiled (the alerter skips it and logs why).
    Invalid,
    /// Both have a trap OID and the rule is not `oid_prefix`: its text is not tried.
    OidNotOidPrefix,
    /// Both have a trap OID; the rule's is neither the event's nor an ancestor of it on
    /// whole arcs.
    OidArcMismatch,
    /// The rule wants one syslog severity; the event has another, or none.
    SeverityMismatch,
    /// The message does not contain the rule's text.
    ContainsNoMatch,
    /// The rule's regex finds nothing in the message.
    RegexNoMatch,
    /// No test applies: an `oid_prefix` rule and an event without a trap OID, or a rule
    /// without a `match_string`.
    NoTextTest,
    /// The rule matches: the first to do so wins.
    Matched,
    /// Not tried: an earlier rule matched (`would_match` says whether this one would have).
    NotReached,
}

impl TrialOutcome {
    /// The name in JSON (`severity_mismatch`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Invalid => "invalid",
            Self::OidNotOidPrefix => "oid_not_oid_prefix",
            Self::OidArcMismatch => "oid_arc_mismatch",
            Self::SeverityMismatch => "severity_mismatch",
            Self::ContainsNoMatch => "contains_no_match",
            Self::RegexNoMatch => "regex_no_match",
            Self::NoTextTest => "no_text_test",
            Self::Matched => "matched",
            Self::NotReached => "not_reached",
        }
    }

    /// A short phrase for people (`skipped: inactive`, `severity mismatch`, …).
    pub fn label(self) -> &'static str {
        match self {
            Self::Inactive => "skipped: inactive",
            Self::Invalid => "skipped: invalid",
            Self::OidNotOidPrefix => "OID: not oid_prefix",
            Self::OidArcMismatch => "OID arc mismatch",
            Self::SeverityMismatch => "severity mismatch",
            Self::ContainsNoMatch => "contains: no match",
            Self::RegexNoMatch => "regex: no match",
            Self::NoTextTest => "no test applies",
            Self::Matched => "MATCHED",
            Self::NotReached => "not reached",
        }
    }

    fn of(c: Check) -> Self {
        match c {
            Check::Matched => Self::Matched,
            Check::OidNotOidPrefix => Self::OidNotOidPrefix,
            Check::OidArcMismatch => Self::OidArcMismatch,
            Check::SeverityMismatch => Self::SeverityMismatch,
            Check::ContainsNoMatch => Self::ContainsNoMatch,
            Check::RegexNoMatch => Self::RegexNoMatch,
            Check::NoTextTest => Self::NoTextTest,
        }
    }
}

/// One rule tried (or skipped), in the alerter's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trial {
    /// The rule, as stored.
    #[serde(flatten)]
    pub rule: Rule,
    /// What its test found.
    pub outcome: TrialOutcome,
    /// For a rule after the one that matched: whether it would have matched too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_match: Option<bool>,
    /// Why, in a sentence.
    pub detail: String,
}

/// Which handling of a rule applies to the event's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    /// Not in `development_hosts`: `prod_handling`.
    Production,
    /// In `development_hosts`: `dev_handling`.
    Development,
}

/// What the alerter does with the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// A rule matched.
    Handled {
        /// The rule that matched first.
        rule_id: i32,
        /// Its handling for this host (`prod_handling` or `dev_handling`).
        handling: String,
        /// Whether that handling sends an alert to the webhook (otherwise audited only).
        forwarded: bool,
        /// The alert's team (the rule's `team_assignment`).
        team: String,
    },
    /// No rule matched: the event is counted per host and fingerprint toward a meta-alert.
    Unhandled {
        /// The message's fingerprint (16 hex digits), the counter's key.
        fingerprint: String,
        /// The message as fingerprinted (numbers, addresses and ids replaced).
        normalized_message: String,
        /// The team of a meta-alert for this host.
        team: String,
        /// Where that team comes from: `device_teams` or `default`.
        team_from: &'static str,
    },
}

/// Why an event matches the rule it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The event's host.
    pub hostname: String,
    /// Whether the host is a development host (which handling applies).
    pub host: HostKind,
    /// The webhook severity an alert for this event carries (0–5).
    pub webhook_severity: u8,
    /// Every rule, active or not, in the order the alerter tries them.
    pub rules: Vec<Trial>,
    /// The decision.
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Explanation {
    /// The rule that matched, if one did.
    pub fn matched_rule(&self) -> Option<i32> {
        match &self.verdict {
            Verdict::Handled { rule_id, .. } => Some(*rule_id),
            Verdict::Unhandled { .. } => None,
        }
    }
}

/// Explains what the alerter does with `event` given every rule (inactive ones included),
/// the development hosts and the device teams; `default_team` is the meta-alert team of a
/// host without a device team (`unhandled_default_team`).
pub fn explain(
    rules: &[Rule],
    dev_hosts: &[String],
    device_teams: &[(String, String)],
    default_team: &str,
    event: &Event,
) -> Explanation {
    let set = RuleSet::new(
        rules.iter().cloned(),
        dev_hosts.iter().cloned(),
        device_teams.iter().cloned(),
    );
    // The alerter's order: ascending priority, then id (a stable sort, as RuleSet's).
    let mut order: Vec<&Rule> = rules.iter().collect();
    order.sort_by_key(|r| (r.priority, r.id));

    let mut lower = None;
    let mut winner: Option<i32> = None;
    let mut trials = Vec::with_capacity(order.len());
    for rule in order {
        let trial = |outcome, would_match, detail| Trial {
            rule: rule.clone(),
            outcome,
            would_match,
            detail,
        };
        if !rule.is_active {
            trials.push(trial(
                TrialOutcome::Inactive,
                None,
                "inactive: the alerter never tries it".into(),
            ));
            continue;
        }
        let c = match rule.compile() {
            Ok(c) => c,
            Err(e) => {
                trials.push(trial(
                    TrialOutcome::Invalid,
                    None,
                    format!("cannot be compiled ({e}): the alerter skips it"),
                ));
                continue;
            }
        };
        let found = super::check(&c, event, &mut lower);
        let why = detail(&c, found, event);
        match winner {
            None => {
                if found == Check::Matched {
                    winner = Some(rule.id);
                }
                trials.push(trial(TrialOutcome::of(found), None, why));
            }
            Some(w) => {
                let would = found == Check::Matched;
                let detail = if would {
                    format!("not tried: rule {w} matched first (this one would match too: {why})")
                } else {
                    format!("not tried: rule {w} matched first (this one would not: {why})")
                };
                trials.push(trial(TrialOutcome::NotReached, Some(would), detail));
            }
        }
    }

    let dev = set.is_dev_host(&event.hostname);
    let verdict = match set.evaluate(event) {
        Outcome::Handled {
            rule,
            handling,
            forward,
        } => Verdict::Handled {
            rule_id: rule.id,
            handling: handling.to_string(),
            forwarded: forward,
            team: rule.team_assignment.clone(),
        },
        Outcome::Unhandled => {
            let (team, team_from) = match set.device_team(&event.hostname) {
                Some(t) => (t.to_string(), "device_teams"),
                None => (default_team.to_string(), "default"),
            };
            Verdict::Unhandled {
                fingerprint: fingerprint::fingerprint(&event.message),
                normalized_message: fingerprint::normalize(&event.message),
                team,
                team_from,
            }
        }
    };
    Explanation {
        hostname: event.hostname.clone(),
        host: if dev {
            HostKind::Development
        } else {
            HostKind::Production
        },
        webhook_severity: event.webhook_severity().number(),
        rules: trials,
        verdict,
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn excerpt(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

fn severity_name(n: u8) -> String {
    SyslogSeverity::from_number(n.into())
        .map_or_else(|| n.to_string(), |s| format!("{} ({n})", s.name()))
}

/// Why `found` is what the test of `c` found for `event`, in a sentence.
fn detail(c: &CompiledRule, found: Check, event: &Event) -> String {
    let event_oid = event
        .trap_oid
        .as_deref()
        .map(|o| o.strip_prefix('.').unwrap_or(o));
    let rule_oid = c.oid.as_deref().unwrap_or("");
    let text = c.rule.match_string.as_deref().unwrap_or("");
    let wants = c.severity.map(severity_name).unwrap_or_default();
    match found {
        Check::Matched => {
            if let Some(e) = event_oid.filter(|_| c.oid.is_some()) {
                return if e == rule_oid {
                    format!("the rule's OID {rule_oid} is the event's trap_oid")
                } else {
                    format!("the rule's OID {rule_oid} is an ancestor of the event's trap_oid {e}")
                };
            }
            let sev = if c.severity.is_some() {
                format!("the event's severity is {wants} and ")
            } else {
                String::new()
            };
            match &c.text {
                TextTest::Regex(re) => {
                    let hit = re.find(&event.message).map_or("", |m| m.as_str());
                    format!(
                        "{sev}/{}/ finds {:?} in the message",
                        re.as_str(),
                        excerpt(hit, 60)
                    )
                }
                _ => format!(
                    "{sev}the message contains {:?} (case-insensitive)",
                    excerpt(text, 60)
                ),
            }
        }
        Check::OidNotOidPrefix => format!(
            "the event and the rule both have a trap_oid and the rule is {}, not oid_prefix: \
             its text is not tried",
            c.rule.match_type
        ),
        Check::OidArcMismatch => format!(
            "the rule's OID {rule_oid} is neither the event's trap_oid {} nor an ancestor of it \
             on whole arcs",
            event_oid.unwrap_or("")
        ),
        Check::SeverityMismatch => format!(
            "the rule wants syslog severity {wants}; the event has {}",
            event
                .syslog_severity
                .map_or_else(|| "none".to_string(), severity_name)
        ),
        Check::ContainsNoMatch => format!(
            "the message does not contain {:?} (case-insensitive)",
            excerpt(text, 60)
        ),
        Check::RegexNoMatch => match &c.text {
            TextTest::Regex(re) => format!(
                "/{}/ finds nothing in the message (case-insensitive)",
                excerpt(re.as_str(), 60)
            ),
            _ => "the regex finds nothing in the message".into(),
        },
        Check::NoTextTest => {
            if c.rule.match_type == MatchType::OidPrefix {
                "an oid_prefix rule matches only an event with a trap_oid, and this one has none"
                    .into()
            } else {
                "the rule has no match_string, and its trap_oid applies only to an event with a \
                 trap_oid"
                    .into()
            }
        }
    }
}

#[cfg(test)]
mod tests;
