use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn cx() -> Context {
    Context {
        peer: "192.0.2.7".parse().unwrap(),
        transport: "udp",
        received: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
        zone: FixedOffset::east_opt(0).unwrap(),
        max_message: 16 * 1024,
    }
}

fn p(line: &str) -> Value {
    parse(line.as_bytes(), &cx()).unwrap()
}

#[test]
fn rfc5424_keeps_its_header_and_structured_data() {
    let v = p(
        "<165>1 2026-12-07T09:58:01.003Z core-router-01 bgpd 4242 BGP01 \
         [origin ip=\"10.0.0.1\"][meta sequenceId=\"7\"] \u{feff}BGP peer 10.0.0.2 down",
    );
    assert_eq!(v["hostname"], "core-router-01");
    assert_eq!(v["timestamp"], "2026-12-07T09:58:01.003Z");
    assert_eq!(v["message"], "BGP peer 10.0.0.2 down");
    assert_eq!(v["syslog_severity"], 5);
    assert_eq!(v["facility"], "local4");
    assert_eq!(v["appname"], "bgpd");
    assert_eq!(v["procid"], "4242");
    assert_eq!(v["msgid"], "BGP01");
    assert_eq!(v["structured_data"]["origin"]["ip"], "10.0.0.1");
    assert_eq!(v["syslog_format"], "rfc5424");
    assert_eq!(v["source_type"], "syslog");
    assert_eq!(v["transport"], "udp");
}

#[test]
fn rfc3164_reads_host_tag_and_a_time_without_year_in_the_configured_zone() {
    let mut c = cx();
    c.zone = FixedOffset::east_opt(2 * 3600).unwrap();
    let v = parse(
        b"<189>Dec  7 11:58:01 edge-fw-02 sshd[811]: Failed password for root",
        &c,
    )
    .unwrap();
    assert_eq!(v["hostname"], "edge-fw-02");
    assert_eq!(v["appname"], "sshd");
    assert_eq!(v["procid"], "811");
    assert_eq!(v["message"], "Failed password for root");
    assert_eq!(v["timestamp"], "2026-12-07T11:58:01+02:00");
    assert_eq!(v["syslog_severity"], 5);
    assert_eq!(v["facility"], "local7");
}

#[test]
fn a_december_stamp_read_in_january_is_last_year() {
    let mut c = cx();
    c.received = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 5).unwrap();
    let v = parse(b"<13>Dec 31 23:59:58 h app: m", &c).unwrap();
    assert_eq!(v["timestamp"], "2026-12-31T23:59:58Z");
}

#[test]
fn cisco_ios_sequence_clock_marker_milliseconds_and_zone() {
    let v = p(
        "<187>52: *Dec  7 09:46:11.123 UTC: %LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to down",
    );
    assert_eq!(
        v["message"],
        "%LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to down"
    );
    assert_eq!(v["timestamp"], "2026-12-07T09:46:11.123Z");
    assert_eq!(v["cisco_sequence"], 52);
    assert_eq!(v["clock_synchronized"], false);
    assert_eq!(v["cisco_facility"], "LINEPROTO");
    assert_eq!(v["cisco_severity"], 5);
    assert_eq!(v["cisco_mnemonic"], "UPDOWN");
    assert_eq!(v["syslog_severity"], 3);
    // No host name in the line: the sender's address.
    assert_eq!(v["hostname"], "192.0.2.7");
    assert_eq!(v["hostname_from"], "peer");
    assert_eq!(v["syslog_format"], "cisco");
}

#[test]
fn cisco_with_origin_id_and_year() {
    let v = p(
        "<189>1234: dist-sw-03: Dec 6 2026 23:10:00 UTC: %SYS-5-CONFIG_I: Configured from console by admin",
    );
    assert_eq!(v["hostname"], "dist-sw-03");
    assert_eq!(v["timestamp"], "2026-12-06T23:10:00Z");
    assert_eq!(
        v["message"],
        "%SYS-5-CONFIG_I: Configured from console by admin"
    );
}

#[test]
fn an_asa_line_in_rfc3164_form_keeps_its_mnemonic() {
    let v = p("<162>Dec  7 09:00:00 asa-01 %ASA-2-106001: Inbound TCP connection denied");
    assert_eq!(v["hostname"], "asa-01");
    assert_eq!(v["cisco_facility"], "ASA");
    assert_eq!(v["cisco_mnemonic"], "106001");
    assert_eq!(v["message"], "%ASA-2-106001: Inbound TCP connection denied");
}

#[test]
fn a_line_without_priority_is_user_notice_at_receipt_time() {
    let v = p("just some text from a device");
    assert_eq!(v["syslog_severity"], 5);
    assert_eq!(v["facility"], "user");
    assert_eq!(v["pri_missing"], true);
    assert_eq!(v["message"], "just some text from a device");
    assert_eq!(v["timestamp"], "2026-12-07T10:00:00Z");
    assert_eq!(v["timestamp_from"], "receipt");
    assert_eq!(v["hostname"], "192.0.2.7");
}

#[test]
fn invalid_utf8_is_replaced_and_a_long_message_cut() {
    let v = parse(b"<11>1 - host app - - - caf\xe9 broken", &cx()).unwrap();
    assert_eq!(v["message"], "caf\u{fffd} broken");
    let mut c = cx();
    c.max_message = 10;
    let v = parse("<11>1 - host app - - - ééééééééé".as_bytes(), &c).unwrap();
    assert_eq!(v["message"], "ééééé");
    assert_eq!(v["truncated"], true);
}

#[test]
fn a_host_name_after_the_time_is_not_a_zone() {
    let v = p("<189>Dec  6 09:46:11 core: %LINK-3-UPDOWN: Interface Gi0/2, changed state to down");
    assert_eq!(v["syslog_format"], "rfc3164", "{v}");
    assert_eq!(v["hostname"], "core", "{v}");
    // With a clock marker, an upper-case word is Cisco's zone.
    let v = p("<189>*Dec  6 09:46:11 CET: %LINK-3-UPDOWN: x");
    assert_eq!(v["message"], "%LINK-3-UPDOWN: x");
}

#[test]
fn structured_data_without_a_message_is_still_an_event() {
    let v = p("<14>1 2026-12-07T10:00:00Z host app - ID1 [exampleSDID@32473 iut=\"3\"]");
    assert_eq!(v["structured_data"]["exampleSDID@32473"]["iut"], "3");
    assert!(!v["message"].as_str().unwrap().is_empty());
    assert_eq!(v["message_from"], "header");
}

#[test]
fn empty_lines_are_errors() {
    assert_eq!(parse(b"", &cx()), Err(ParseError::Empty));
    assert_eq!(parse(b" \r\n", &cx()), Err(ParseError::Empty));
}

proptest! {
    /// Any bytes: never a panic, and every event has the fields validation requires.
    #[test]
    fn any_bytes_give_an_event_or_a_clear_error(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(v) = parse(&bytes, &cx()) {
            prop_assert!(v["hostname"].as_str().is_some_and(|h| !h.is_empty()));
            prop_assert!(v["timestamp"].is_string());
            prop_assert!(v["message"].is_string());
            let sev = v["syslog_severity"].as_u64().unwrap();
            prop_assert!(sev <= 7);
        }
    }

    /// Lines shaped like syslog, with random fields: the priority always decides the
    /// severity and facility.
    #[test]
    fn the_priority_decides_severity(pri in 0u8..192, host in "[a-z][a-z0-9-]{0,20}", msg in "[ -~]{1,80}") {
        let line = format!("<{pri}>Dec  7 09:00:00 {host} app: {msg}");
        let v = parse(line.as_bytes(), &cx()).unwrap();
        prop_assert_eq!(v["syslog_severity"].as_u64(), Some(u64::from(pri & 7)));
        prop_assert_eq!(v["facility"].as_str(), Some(facility_name(pri >> 3)));
    }
}

/// Found by the fuzzer: a BSD stamp whose clock runs into bytes that are not UTF-8. The
/// event must be refused or carry a time stamp validation accepts.
#[test]
fn a_stamp_cut_by_invalid_utf8_gives_a_valid_time_or_an_error() {
    use crate::event::{Envelope, Limits, validate};
    let data = b"Sep 1 061515 01:5:0\xff\xff\xff02:";
    let limits = Limits::default();
    let cx = Context {
        received: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        zone: FixedOffset::east_opt(3600).unwrap(),
        ..cx()
    };
    if let Ok(v) = parse(data, &cx) {
        let env = Envelope {
            id: "0".into(),
            correlation_id: "c".into(),
            received_at_ms: 0,
        };
        if let Err(e) = validate(v.clone(), env, &limits) {
            assert!(
                e.field != "timestamp" && e.field != "syslog_severity",
                "{e}: {v}"
            );
        }
    }
}
