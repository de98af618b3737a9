use super::*;
use serde_json::json;

const NOW: i64 = 1_764_000_000_000;

fn event() -> Value {
    json!({"hostname": "core-1", "message": "LINK-DOWN Gi0/1", "timestamp": "2025-11-11T16:34:50Z",
           "syslog_severity": "Critical", "_correlation_id": "a1b2-c3", "_retry_count": 2})
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn events_lose_v2_bookkeeping_and_keep_their_correlation_id() {
    let item = bytes(&event());
    let (Ok((e, payload)), v2) = read_event(&item, NOW) else {
        panic!("an event")
    };
    assert_eq!(e.correlation_id, "a1b2-c3");
    assert_eq!(e.syslog_severity, Some(2));
    assert!(e.attributes.is_empty(), "{:?}", e.attributes);
    assert_eq!(v2.retries, Some(2));
    assert_eq!(
        codec::decode_event(&payload, &Limits::default()).unwrap(),
        e
    );
    // The same item, the same id; another item, another.
    let (Ok((again, _)), _) = read_event(&item, NOW + 5) else {
        panic!()
    };
    assert_eq!(again.id, e.id);
    let mut other = event();
    other["message"] = json!("LINK-DOWN Gi0/2");
    let (Ok((o, _)), _) = read_event(&bytes(&other), NOW) else {
        panic!()
    };
    assert_ne!(o.id, e.id);
}

#[test]
fn unreadable_events_are_dead_letters_carrying_the_item() {
    let names = Names::new("p");
    for item in [
        &b"not json"[..],
        br#"{"hostname": "h", "message": "m"}"#,
        b"[1]",
    ] {
        let (Err(why), _) = read_event(item, NOW) else {
            panic!("unreadable")
        };
        assert!(!why.is_empty());
        let Plan::Move {
            to: Destination::DeadLetter(l),
            ..
        } = plan("v:ingest_queue", &LegacyQueue::Events, item, &names, NOW)
        else {
            panic!("a dead letter")
        };
        assert_eq!(l.payload, item);
        assert!(l.last_error.contains(&why), "{}", l.last_error);
    }
    // A correlation id ingest would not accept is replaced by the event id.
    let mut v = event();
    v["_correlation_id"] = json!("x".repeat(65));
    let (Ok((e, _)), _) = read_event(&bytes(&v), NOW) else {
        panic!()
    };
    assert_eq!(e.correlation_id, e.id);
}

fn alert(host: &str) -> Value {
    json!({"api_key": "moog-secret", "hostname": host, "team_assignment": "NetOps",
           "severity": "Warning", "message_body": "[MUTT] Detected 100 unhandled messages",
           "raw_json": event(), "_correlation_id": "a1b2-c3", "_moog_retry_count": 3})
}

#[test]
fn rule_alerts_give_their_event_and_meta_alerts_map() {
    let (Read::Event(payload), v2) = read_alert(&bytes(&alert("core-1")), NOW) else {
        panic!("the event of a rule alert")
    };
    let e = codec::decode_event(&payload, &Limits::default()).unwrap();
    assert_eq!(e.hostname, "core-1");
    assert_eq!(e.correlation_id, "a1b2-c3");
    assert_eq!(v2.retries, Some(3));
    let (Read::MetaAlert(m, payload), _) = read_alert(&bytes(&alert(META_HOST)), NOW) else {
        panic!("a meta-alert")
    };
    assert_eq!(m.team, "NetOps");
    assert_eq!(m.description, "[MUTT] Detected 100 unhandled messages");
    assert_eq!(
        m.signature,
        format!("core-1::unhandled:{}", fingerprint("LINK-DOWN Gi0/1"))
    );
    assert_eq!(m.id, format!("unhandled-{}", m.event.id));
    assert_eq!(
        codec::decode_alert(&payload, &Limits::default()).unwrap(),
        *m
    );
    // Without a team it is not faithful: its event goes to the alerters.
    let mut v = alert(META_HOST);
    v["team_assignment"] = json!("");
    assert!(matches!(read_alert(&bytes(&v), NOW).0, Read::Event(..)));
    // raw_json stored as text is read too.
    let mut v = alert("core-1");
    v["raw_json"] = json!(event().to_string());
    assert!(matches!(read_alert(&bytes(&v), NOW).0, Read::Event(..)));
}

#[test]
fn the_moog_api_key_is_never_kept() {
    let mut v = alert("core-1");
    v["raw_json"] = json!({"hostname": "h"});
    let (Read::Unreadable(_, kept), _) = read_alert(&bytes(&v), NOW) else {
        panic!("unreadable")
    };
    let kept = String::from_utf8(kept).unwrap();
    assert!(
        !kept.contains("moog-secret") && !kept.contains("api_key"),
        "{kept}"
    );
    assert!(kept.contains("NetOps"));
    assert!(matches!(
        read_alert(br#"{"api_key": "moog-secret", "trunc"#, NOW).0,
        Read::Keep(_)
    ));
}

#[test]
fn items_go_where_their_list_says() {
    let names = Names::new("p");
    let ev = bytes(&event());
    let goes = |key: &str, q: LegacyQueue, item: &[u8]| match plan(key, &q, item, &names, NOW) {
        Plan::Move {
            to: Destination::Stream { stream, .. },
            audit,
        } => (stream, audit.is_some()),
        Plan::Move {
            to: Destination::DeadLetter(l),
            audit,
        } => (
            format!("dlq:{}<-{}", l.group, l.source_stream),
            audit.is_some(),
        ),
        Plan::Keep(_) => ("kept".into(), false),
    };
    let dlq = |n: &str| LegacyQueue::DeadLetters(n.into());
    assert_eq!(
        goes("v:ingest_queue", LegacyQueue::Events, &ev),
        ("p:events".into(), false)
    );
    assert_eq!(
        goes("v:ingest_queue", LegacyQueue::Events, b"{"),
        ("dlq:alerter<-p:events".into(), false)
    );
    let rule = bytes(&alert("core-1"));
    let meta = bytes(&alert(META_HOST));
    assert_eq!(
        goes("v:alert_queue", LegacyQueue::Alerts, &rule),
        ("p:events".into(), false)
    );
    assert_eq!(
        goes("v:alert_queue", LegacyQueue::Alerts, &meta),
        ("p:alerts".into(), true)
    );
    assert_eq!(
        goes("v:dlq:alerter", dlq("alerter"), &ev),
        ("dlq:alerter<-p:events".into(), false)
    );
    assert_eq!(
        goes("v:dlq:dead", dlq("dead"), &ev),
        ("dlq:alerter<-p:events".into(), false)
    );
    assert_eq!(
        goes("v:dlq:moog", dlq("moog"), &rule),
        ("dlq:alerter<-p:events".into(), false)
    );
    assert_eq!(
        goes("v:dlq:moog", dlq("moog"), &meta),
        ("dlq:forwarder<-p:alerts".into(), true)
    );
    assert_eq!(
        goes("v:dlq:moog", dlq("moog"), b"[]"),
        ("dlq:forwarder<-p:alerts".into(), false)
    );
    let Plan::Move {
        to: Destination::DeadLetter(l),
        ..
    } = plan("v:dlq:moog", &dlq("moog"), &rule, &names, NOW)
    else {
        panic!()
    };
    assert_eq!(l.delivery_count, 3);
    assert!(
        l.last_error
            .starts_with("MUTT v2 dead letter from v:dlq:moog"),
        "{}",
        l.last_error
    );
    let mut shed = event();
    shed["shedding_reason"] = json!("queue_depth_exceeded:2500>2000");
    let Plan::Move {
        to: Destination::DeadLetter(l),
        ..
    } = plan("v:dlq:alerter", &dlq("alerter"), &bytes(&shed), &names, NOW)
    else {
        panic!()
    };
    assert!(
        l.last_error
            .ends_with("shed by v2: queue_depth_exceeded:2500>2000"),
        "{}",
        l.last_error
    );
}
