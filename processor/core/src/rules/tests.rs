use super::*;
use proptest::prelude::*;
use serde_json::Map;

fn rule(id: i32, mt: MatchType, s: Option<&str>, oid: Option<&str>, prio: i32) -> Rule {
    Rule {
        id,
        ..Rule::new(mt, s, oid, prio, "Page_and_ticket", &format!("team{id}"))
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
