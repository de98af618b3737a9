use super::*;
use proptest::prelude::*;
use serde_json::json;

fn env() -> Envelope {
    Envelope {
        id: "0190-test".into(),
        correlation_id: "corr".into(),
        received_at_ms: 1,
    }
}

fn ok(v: Value) -> Event {
    validate(v, env(), &Limits::default()).unwrap()
}

fn err(v: Value) -> ValidationError {
    validate(v, env(), &Limits::default()).unwrap_err()
}

#[test]
fn a_sample_event_validates_with_seven_fraction_digits() {
    let e = ok(json!({
        "hostname": "core-router-01.dc1.example.com",
        "timestamp": "2025-11-11T16:34:50.6449285Z",
        "message": "%LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
        "syslog_severity": "Warning",
        "source_type": "cisco-ios",
        "facility": "local7"
    }));
    assert_eq!(e.syslog_severity, Some(4));
    assert_eq!(e.source_type.as_deref(), Some("cisco-ios"));
    assert_eq!(e.attributes.get("facility"), Some(&json!("local7")));
    assert!(e.time().is_ok());
    assert_eq!(e.webhook_severity().number(), 3);
}

#[test]
fn each_required_field_is_named_when_missing_or_wrong() {
    let base = json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z"});
    for f in ["hostname", "message", "timestamp"] {
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove(f);
        let e = err(v);
        assert_eq!((e.field.as_str(), e.code), (f, "missing_field"));
        let mut v = base.clone();
        v[f] = json!(42);
        let e = err(v);
        assert_eq!((e.field.as_str(), e.code), (f, "wrong_type"));
    }
    assert_eq!(err(json!([1])).code, "not_an_object");
    assert_eq!(err(json!("x")).code, "not_an_object");
}

#[test]
fn bad_values_are_refused_with_their_field() {
    let mut v = json!({"hostname": "h", "message": "m", "timestamp": "yesterday"});
    assert_eq!(err(v.clone()).code, "invalid_timestamp");
    v["timestamp"] = json!("2025-01-01T00:00:00Z");
    v["syslog_severity"] = json!(9);
    assert_eq!(err(v.clone()).field, "syslog_severity");
    v["syslog_severity"] = json!("loud");
    assert_eq!(err(v.clone()).field, "syslog_severity");
    v["syslog_severity"] = json!(2);
    v["trap_oid"] = json!("1.3.x");
    assert_eq!(err(v.clone()).field, "trap_oid");
    v["trap_oid"] = json!(".1.3.6.1");
    assert_eq!(ok(v.clone()).trap_oid.as_deref(), Some("1.3.6.1"));
    v["hostname"] = json!("a\u{0}b");
    assert_eq!(err(v.clone()).field, "hostname");
    v["hostname"] = json!("   ");
    assert_eq!(err(v.clone()).code, "missing_field");
    v["hostname"] = json!("x".repeat(256));
    assert_eq!(err(v).code, "too_large");
}

/// What schemas/event.schema.json says, the validation does (schemathesis checks the
/// same against a running ingest in CI).
#[test]
fn validation_matches_the_documented_schema() {
    let base = json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z"});
    let with = |k: &str, v: Value| {
        let mut e = base.clone();
        e[k] = v;
        e
    };
    assert_eq!(err(with("severity", json!({}))).code, "wrong_type");
    assert_eq!(err(with("severity", json!([1]))).code, "wrong_type");
    assert!(validate(with("severity", json!(null)), env(), &Limits::default()).is_ok());
    assert!(validate(with("severity", json!(2.5)), env(), &Limits::default()).is_ok());
    assert_eq!(
        ok(with("syslog_severity", json!(3.0))).syslog_severity,
        Some(3)
    );
    assert_eq!(
        ok(with("syslog_severity", json!(null))).syslog_severity,
        None
    );
    assert_eq!(
        err(with("syslog_severity", json!(3.5))).field,
        "syslog_severity"
    );
    assert_eq!(
        err(with("syslog_severity", json!("+5"))).field,
        "syslog_severity"
    );
    assert_eq!(
        ok(with("syslog_severity", json!(" Warn "))).syslog_severity,
        Some(4)
    );
    // 255 characters of any width; the OID limit counts what was sent.
    assert!(
        validate(
            with("hostname", json!("é".repeat(255))),
            env(),
            &Limits::default()
        )
        .is_ok()
    );
    assert_eq!(
        err(with("hostname", json!("é".repeat(256)))).code,
        "too_large"
    );
    assert_eq!(
        err(with("hostname", json!("a\u{85}b"))).code,
        "invalid_value"
    );
    assert_eq!(ok(with("trap_oid", json!("  "))).trap_oid, None);
    assert_eq!(
        err(with(
            "trap_oid",
            json!(format!(".{}", "1.".repeat(127) + "1"))
        ))
        .field,
        "trap_oid"
    );
}

#[test]
fn webhook_severity_falls_back_to_a_severity_attribute() {
    let e = ok(
        json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z", "severity": "Major"}),
    );
    assert_eq!(e.webhook_severity().number(), 4);
    let e = ok(json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z"}));
    assert_eq!(e.webhook_severity().number(), 3);
}

#[test]
fn to_json_keeps_every_field() {
    let v = json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z",
        "syslog_severity": 3, "trap_oid": "1.3.6", "source_type": "snmp", "x": {"y": [1, 2]}});
    assert_eq!(ok(v.clone()).to_json(), v);
}

#[test]
fn oid_normalisation() {
    assert_eq!(normalize_oid(".1.3.6.1.4.1.9").unwrap(), "1.3.6.1.4.1.9");
    assert!(normalize_oid("1..3").is_err());
    assert!(normalize_oid(".").is_err());
    assert!(normalize_oid("1.".repeat(129).trim_end_matches('.')).is_err());
}

proptest! {
    #[test]
    fn validation_never_panics(s in "\\PC{0,64}", n in any::<i64>(), b in any::<bool>()) {
        for v in [
            json!({"hostname": s, "message": s, "timestamp": s, "syslog_severity": n, "trap_oid": s}),
            json!({"hostname": n, "message": b, "timestamp": null}),
            json!({"hostname": "h", "message": "m", "timestamp": "2025-01-01T00:00:00Z", "syslog_severity": s}),
        ] {
            if let Ok(e) = validate(v, env(), &Limits::default()) {
                prop_assert!(e.check(&Limits::default()).is_ok());
            }
        }
    }
}
