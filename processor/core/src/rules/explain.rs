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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Map;

    fn event(host: &str, msg: &str, oid: Option<&str>, sev: Option<u8>) -> Event {
        Event {
            id: "e".into(),
            correlation_id: "c".into(),
            received_at_ms: 0,
            hostname: host.into(),
            message: msg.into(),
            timestamp: "2026-11-26T10:00:00Z".into(),
            syslog_severity: sev,
            trap_oid: oid.map(Into::into),
            source_type: None,
            attributes: Map::new(),
        }
    }

    fn rule(
        id: i32,
        mt: MatchType,
        s: Option<&str>,
        oid: Option<&str>,
        sev: Option<i32>,
        prio: i32,
    ) -> Rule {
        Rule {
            id,
            syslog_severity: sev,
            ..Rule::new(mt, s, oid, prio, "Page_and_ticket", &format!("team{id}"))
        }
    }

    /// The cases of DESIGN.md's rule semantics (the integration test's set).
    fn design_rules() -> Vec<Rule> {
        use MatchType::*;
        let mut inactive = rule(6, Contains, Some("never"), None, None, 0);
        inactive.is_active = false;
        let mut ignore = rule(5, Contains, Some("ignored"), None, None, 1);
        ignore.prod_handling = "Ignore".into();
        vec![
            rule(1, OidPrefix, None, Some("1.3.6.1.4"), None, 10),
            rule(2, Contains, Some("link"), None, None, 20),
            rule(3, Contains, Some("link down"), None, Some(2), 5),
            rule(4, Regex, Some(r"^fan \d+ failed$"), None, None, 30),
            ignore,
            inactive,
        ]
    }

    fn outcome_of(x: &Explanation, id: i32) -> TrialOutcome {
        x.rules
            .iter()
            .find(|t| t.rule.id == id)
            .map(|t| t.outcome)
            .unwrap()
    }

    #[test]
    fn every_rule_is_listed_in_the_alerters_order() {
        let x = explain(
            &design_rules(),
            &[],
            &[],
            "NETO",
            &event("r1", "x", None, None),
        );
        let order: Vec<i32> = x.rules.iter().map(|t| t.rule.id).collect();
        assert_eq!(order, [6, 5, 3, 1, 2, 4]);
        assert_eq!(x.rules[0].outcome, TrialOutcome::Inactive);
    }

    #[test]
    fn the_design_cases_are_explained() {
        let rules = design_rules();
        let go = |e: Event| explain(&rules, &["Lab-01".into()], &[], "NETO", &e);
        // OID on whole arcs; the text rules are not tried against an OID rule's OID.
        let x = go(event("r1", "x", Some("1.3.6.1.4.1.9"), None));
        assert_eq!(x.matched_rule(), Some(1));
        assert_eq!(outcome_of(&x, 1), TrialOutcome::Matched);
        assert!(x.rules[3].detail.contains("ancestor"), "{x:?}");
        // 1.3.6.1.41 is not under 1.3.6.1.4; the text rule (no OID) still applies.
        let x = go(event("r1", "link", Some("1.3.6.1.41"), None));
        assert_eq!(outcome_of(&x, 1), TrialOutcome::OidArcMismatch);
        assert_eq!(x.matched_rule(), Some(2));
        // Severity filter: wrong severity, then the plain text rule.
        let x = go(event("r1", "link down", None, Some(3)));
        assert_eq!(outcome_of(&x, 3), TrialOutcome::SeverityMismatch);
        assert_eq!(outcome_of(&x, 1), TrialOutcome::NoTextTest);
        assert_eq!(x.matched_rule(), Some(2));
        assert_eq!(x.webhook_severity, 4);
        assert_eq!(outcome_of(&x, 4), TrialOutcome::NotReached);
        let x = go(event("r1", "LINK DOWN on ge-0", None, Some(2)));
        assert_eq!(x.matched_rule(), Some(3));
        assert_eq!(x.webhook_severity, 5);
        // Regex search, case-insensitive.
        let x = go(event("r1", "Fan 3 failed", None, None));
        assert_eq!(outcome_of(&x, 2), TrialOutcome::ContainsNoMatch);
        assert_eq!(x.matched_rule(), Some(4));
        let x = go(event("r1", "Fan 3 failed twice", None, None));
        assert_eq!(outcome_of(&x, 4), TrialOutcome::RegexNoMatch);
        // Development host: dev_handling.
        let x = go(event("LAB-01", "link flap", None, None));
        assert_eq!(x.host, HostKind::Development);
        assert_eq!(
            x.verdict,
            Verdict::Handled {
                rule_id: 2,
                handling: "Ignore".into(),
                forwarded: false,
                team: "team2".into()
            }
        );
        // Ignore: handled, audited only.
        let x = go(event("r1", "this is ignored link", None, None));
        assert!(matches!(
            x.verdict,
            Verdict::Handled {
                rule_id: 5,
                forwarded: false,
                ..
            }
        ));
        assert_eq!(outcome_of(&x, 2), TrialOutcome::NotReached);
        assert_eq!(
            x.rules.iter().find(|t| t.rule.id == 2).unwrap().would_match,
            Some(true)
        );
    }

    #[test]
    fn an_unhandled_event_has_its_fingerprint_and_team() {
        let mut rules = design_rules();
        rules.push(rule(
            7,
            MatchType::Contains,
            Some("x"),
            Some("1.3.6"),
            None,
            1,
        ));
        let x = explain(
            &rules,
            &[],
            &[("Flood-Host".into(), "FloodTeam".into())],
            "NETO",
            &event(
                "flood-host",
                "disk 3 error at 10.0.0.3",
                Some("1.3.7"),
                None,
            ),
        );
        assert_eq!(outcome_of(&x, 7), TrialOutcome::OidNotOidPrefix);
        assert_eq!(outcome_of(&x, 1), TrialOutcome::OidArcMismatch);
        match &x.verdict {
            Verdict::Unhandled {
                fingerprint,
                normalized_message,
                team,
                team_from,
            } => {
                assert_eq!(
                    fingerprint,
                    &fingerprint::fingerprint("disk 4 error at 10.0.0.4")
                );
                assert_eq!(normalized_message, "disk <n> error at <ip>");
                assert_eq!((team.as_str(), *team_from), ("FloodTeam", "device_teams"));
            }
            v => panic!("{v:?}"),
        }
        let x = explain(&rules, &[], &[], "NETO", &event("h", "quiet", None, None));
        assert!(matches!(
            x.verdict,
            Verdict::Unhandled { ref team, team_from: "default", .. } if team == "NETO"
        ));
        let json = serde_json::to_value(&x).unwrap();
        assert_eq!(json["verdict"], "unhandled");
        assert_eq!(json["rules"][0]["outcome"], "inactive");
        assert_eq!(json["rules"][0]["id"], 6);
    }

    #[test]
    fn an_invalid_rule_is_skipped_with_why() {
        let x = explain(
            &[rule(1, MatchType::Regex, Some("("), None, None, 1)],
            &[],
            &[],
            "NETO",
            &event("h", "(", None, None),
        );
        assert_eq!(x.rules[0].outcome, TrialOutcome::Invalid);
        assert!(x.rules[0].detail.contains("match_string"));
        assert_eq!(x.matched_rule(), None);
    }

    const WORDS: &[&str] = &[
        "link",
        "down",
        "LINK DOWN",
        "fan 3 failed",
        "error",
        "x",
        "Disk",
        "é",
        "10.0.0.1",
    ];
    const PATTERNS: &[&str] = &[
        "link",
        "down",
        "link down",
        r"^fan \d+ failed$",
        "LINK|disk",
        "(",
        "x",
        "",
        "é",
    ];

    fn oid() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(
            (proptest::collection::vec(0u8..4, 1..5), any::<bool>()).prop_map(|(arcs, dot)| {
                let s = arcs.iter().map(u8::to_string).collect::<Vec<_>>().join(".");
                if dot { format!(".{s}") } else { s }
            }),
        )
    }

    fn a_rule() -> impl Strategy<Value = Rule> {
        (
            0usize..3,
            proptest::option::of(0..PATTERNS.len()),
            oid(),
            proptest::option::of(0i32..9),
            -3i32..3,
            proptest::bool::weighted(0.8),
            any::<bool>(),
        )
            .prop_map(|(mt, s, oid, sev, prio, active, ignore)| Rule {
                id: 0,
                match_string: s.map(|i| PATTERNS[i].to_string()),
                trap_oid: oid,
                syslog_severity: sev,
                match_type: [MatchType::Contains, MatchType::Regex, MatchType::OidPrefix][mt],
                priority: prio,
                prod_handling: if ignore { "Ignore" } else { "Page_only" }.into(),
                dev_handling: "Ignore".into(),
                team_assignment: "T".into(),
                is_active: active,
            })
    }

    fn an_event() -> impl Strategy<Value = Event> {
        (
            0usize..3,
            proptest::collection::vec(0..WORDS.len(), 0..4),
            oid(),
            proptest::option::of(0u8..8),
        )
            .prop_map(|(h, words, oid, sev)| {
                let msg: Vec<&str> = words.iter().map(|i| WORDS[*i]).collect();
                let oid = oid.map(|o| o.trim_start_matches('.').to_string());
                event(["h1", "H2", "h3"][h], &msg.join(" "), oid.as_deref(), sev)
            })
    }

    proptest! {
        /// The explanation never disagrees with the alerter: the rule it says matched is
        /// the one `RuleSet::evaluate` picks, each rule's own outcome is what that rule
        /// alone would do, and the rules are listed in the alerter's order.
        #[test]
        fn the_explanation_agrees_with_the_rule_set(
            mut rules in proptest::collection::vec(a_rule(), 0..8),
            e in an_event(),
            dev in proptest::collection::vec(0usize..3, 0..2),
        ) {
            for (i, r) in rules.iter_mut().enumerate() {
                r.id = i as i32 + 1;
            }
            let dev_hosts: Vec<String> = dev.iter().map(|i| ["H1", "h2", "x"][*i].to_string()).collect();
            let set = RuleSet::new(rules.clone(), dev_hosts.clone(), Vec::new());
            let x = explain(&rules, &dev_hosts, &[], "NETO", &e);
            let expected = match set.evaluate(&e) {
                Outcome::Handled { rule, .. } => Some(rule.id),
                Outcome::Unhandled => None,
            };
            prop_assert_eq!(x.matched_rule(), expected);
            let matched: Vec<i32> = x.rules.iter()
                .filter(|t| t.outcome == TrialOutcome::Matched)
                .map(|t| t.rule.id)
                .collect();
            prop_assert_eq!(matched, expected.into_iter().collect::<Vec<_>>());
            prop_assert_eq!(x.rules.len(), rules.len());
            let keys: Vec<(i32, i32)> = x.rules.iter().map(|t| (t.rule.priority, t.rule.id)).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            prop_assert_eq!(keys, sorted);
            for t in &x.rules {
                let alone = RuleSet::new([t.rule.clone()], dev_hosts.clone(), Vec::new());
                let would = matches!(alone.evaluate(&e), Outcome::Handled { .. });
                match t.outcome {
                    TrialOutcome::Matched => prop_assert!(would),
                    TrialOutcome::NotReached => prop_assert_eq!(t.would_match, Some(would)),
                    TrialOutcome::Inactive => prop_assert!(!t.rule.is_active),
                    TrialOutcome::Invalid => prop_assert!(t.rule.validate().is_err()),
                    _ => prop_assert!(!would, "{:?} says no match but the rule matches alone", t),
                }
            }
        }
    }
}
