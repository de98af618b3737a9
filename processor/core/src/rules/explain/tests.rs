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
