use super::*;
use super::{postgres::*, processes::*, redis::*};
use serde_json::json;
use time::macros::{date, datetime};

fn info(text: &str) -> ServerInfo {
    ServerInfo::parse(text)
}

#[test]
fn redis_verdicts() {
    assert_eq!(
        redis_version(&info("redis_version:6.0.9")).verdict,
        Verdict::Fail
    );
    assert_eq!(
        redis_version(&info("redis_version:6.2.0")).verdict,
        Verdict::Ok
    );
    assert_eq!(
        redis_version(&info("redis_version:7.2.4")).verdict,
        Verdict::Ok
    );
    assert_eq!(
        redis_eviction(&info("maxmemory_policy:allkeys-lru")).verdict,
        Verdict::Fail
    );
    assert_eq!(
        redis_eviction(&info("maxmemory_policy:noeviction")).verdict,
        Verdict::Ok
    );
    assert_eq!(
        redis_persistence(&info("aof_enabled:0"), None).verdict,
        Verdict::Warn
    );
    assert_eq!(
        redis_persistence(&info("aof_enabled:1"), Some("everysec")).verdict,
        Verdict::Ok
    );
    assert_eq!(
        redis_persistence(&info("aof_enabled:1"), Some("no")).verdict,
        Verdict::Warn
    );
}

fn part(lo: OffsetDateTime, hi: OffsetDateTime) -> Partition {
    Partition {
        name: "p".into(),
        lo,
        hi,
        rows_estimate: 0,
    }
}

#[test]
fn months_ahead_and_the_missing_one() {
    let months = months_from(date!(2026 - 11 - 30), 3);
    assert_eq!(
        months.iter().copied().map(month_name).collect::<Vec<_>>(),
        ["2026-11", "2026-12", "2027-01", "2027-02"]
    );
    let parts = vec![
        part(
            datetime!(2026-11-01 0:00 UTC),
            datetime!(2026-12-01 0:00 UTC),
        ),
        // Bounded in another time zone: still the month.
        part(datetime!(2026-12-01 0:00 +1), datetime!(2027-01-01 0:00 +1)),
        part(
            datetime!(2027-02-01 0:00 UTC),
            datetime!(2027-03-01 0:00 UTC),
        ),
    ];
    assert_eq!(missing_months(&parts, &months), [date!(2027 - 01 - 01)]);
    let c = partitions_check(&parts, date!(2026 - 11 - 30), 3);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.detail.contains("2027-01"), "{}", c.detail);
    assert_eq!(
        partitions_check(&parts, date!(2026 - 11 - 30), 1).verdict,
        Verdict::Ok
    );
}

#[test]
fn postgres_and_migrations() {
    assert_eq!(postgres_version(10, "10.1").verdict, Verdict::Fail);
    assert_eq!(postgres_version(13, "13.1").verdict, Verdict::Warn);
    assert_eq!(postgres_version(15, "15.4").verdict, Verdict::Ok);
    let mut m = MigrationStatus {
        expected: 6,
        applied: 6,
        ..MigrationStatus::default()
    };
    assert_eq!(migrations_check(&m).verdict, Verdict::Ok);
    m.unknown = vec![7];
    assert_eq!(migrations_check(&m).verdict, Verdict::Warn);
    m.applied = 5;
    m.missing = vec![(6, "v2 upgrade".into())];
    let c = migrations_check(&m);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.detail.contains("0006 v2 upgrade"));
}

#[test]
fn clocks_against_redis() {
    let now = 1_800_000_000_000;
    let v = json!({"consumers": [
        {"consumer": "a", "seen_ms": now - 3_000},
        {"consumer": "b", "seen_ms": now + 9_000},
    ]});
    let c = clocks_check(Ok(now), now + 20, Some(&v), "");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(
        c.detail.contains("b is ahead of Redis by 9 s"),
        "{}",
        c.detail
    );
    let v = json!({"consumers": [{"consumer": "a", "seen_ms": now - 1_000}]});
    assert_eq!(
        clocks_check(Ok(now), now, Some(&v), "").verdict,
        Verdict::Ok
    );
    let c = clocks_check(Ok(now), now - 120_000, None, "no key");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.detail.contains("processes not checked: no key"));
}

#[test]
fn settings_across_processes() {
    let v = json!({"version": 4, "converged": false, "consumers": [
        {"consumer": "a", "roles": ["alerter"], "version": 4, "generations": {}},
        {"consumer": "b", "roles": ["ingest"], "version": 3, "generations": {}},
    ]});
    let c = settings_check(&v);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.detail.contains("b (ingest) runs version 3"),
        "{}",
        c.detail
    );
    let v = json!({"version": 4, "converged": true, "consumers": [
        {"consumer": "a", "roles": ["alerter"], "version": 4, "generations": {"webhook_token": 2}},
        {"consumer": "b", "roles": ["ingest"], "version": 4, "generations": {"webhook_token": 1}},
    ]});
    assert_eq!(settings_check(&v).verdict, Verdict::Warn);
    let v = json!({"version": 4, "converged": true, "consumers": [
        {"consumer": "a", "roles": ["alerter"], "version": 4, "generations": {}},
    ]});
    assert_eq!(settings_check(&v).verdict, Verdict::Ok);
    assert_eq!(
        serde_json::to_value(ok("x", "y")).unwrap(),
        json!({"check": "x", "verdict": "ok", "detail": "y", "fix": ""})
    );
}
