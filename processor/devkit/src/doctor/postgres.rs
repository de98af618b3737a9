//! PostgreSQL: version, migrations, partitions ahead, the grants of `mutt_app`.

use super::*;

pub(super) fn unreachable_postgres(url: &str, why: &str) -> Check {
    row(
        "postgres",
        Verdict::Fail,
        format!("{} does not answer: {why}", mutt_core::url::redact(url)),
        "start PostgreSQL (muttdev up does), create the database (mutt migrate does), or set \
         MUTT_DATABASE_URL / --database-url",
    )
}

pub(super) async fn postgres_checks(
    store: &Store,
    control: Option<&ControlView>,
    checks: &mut Vec<Check>,
) {
    checks.push(match store.server_version().await {
        Ok(v) => postgres_version(v.major(), &v.text),
        Err(e) => row(
            "postgres version",
            Verdict::Fail,
            e.to_string(),
            "check MUTT_DATABASE_URL",
        ),
    });
    let migrations = store.migration_status().await;
    let applied = matches!(&migrations, Ok(m) if m.applied > 0);
    checks.push(match migrations {
        Ok(m) => migrations_check(&m),
        Err(e) => row(
            "migrations",
            Verdict::Fail,
            e.to_string(),
            "run mutt migrate",
        ),
    });
    let ahead = partitions_ahead(store, control).await;
    checks.push(if applied {
        match store.partitions(Partitioned::EventAudit).await {
            Ok(p) => partitions_check(&p, OffsetDateTime::now_utc().date(), ahead),
            Err(e) => row(
                "partitions ahead",
                Verdict::Fail,
                e.to_string(),
                "run mutt migrate, then mutt retention",
            ),
        }
    } else {
        row(
            "partitions ahead",
            Verdict::Fail,
            "no partitions: the migrations are not applied",
            "run mutt migrate",
        )
    });
    checks.push(match store.app_role_grants().await {
        Ok(g) => role_check(&g),
        Err(e) => row(
            "application role",
            Verdict::Warn,
            format!("not checked: {e}"),
            "",
        ),
    });
}

/// PostgreSQL 11 brought the DEFAULT partitions the audit table needs; versions the
/// community no longer supports get a warning.
pub(super) fn postgres_version(major: i32, text: &str) -> Check {
    const NAME: &str = "postgres version";
    match major {
        m if m < 11 => row(
            NAME,
            Verdict::Fail,
            format!("PostgreSQL {text}: MUTT needs 11 or later (DEFAULT partitions)"),
            "upgrade PostgreSQL (15 or later recommended)",
        ),
        m if m < 14 => row(
            NAME,
            Verdict::Warn,
            format!("PostgreSQL {text} no longer gets community fixes"),
            "upgrade PostgreSQL (15 or later recommended)",
        ),
        _ => ok(NAME, format!("PostgreSQL {text}")),
    }
}

pub(super) fn migrations_check(m: &MigrationStatus) -> Check {
    const NAME: &str = "migrations";
    if !m.missing.is_empty() {
        let list: Vec<String> = m
            .missing
            .iter()
            .map(|(v, d)| format!("{v:04} {d}"))
            .collect();
        return row(
            NAME,
            Verdict::Fail,
            format!(
                "{} of {} applied; missing: {}",
                m.applied,
                m.expected,
                list.join(", ")
            ),
            "run mutt migrate (as the database owner)",
        );
    }
    if !m.failed.is_empty() || !m.changed.is_empty() {
        return row(
            NAME,
            Verdict::Fail,
            format!(
                "failed half way: {:?}; changed since applied: {:?}",
                m.failed, m.changed
            ),
            "a failed migration: fix its cause and delete its row from _sqlx_migrations, then \
             mutt migrate; a changed one: run the mutt build that applied it",
        );
    }
    if !m.unknown.is_empty() {
        return row(
            NAME,
            Verdict::Warn,
            format!(
                "all {} applied, and {:?} that this build does not know (a newer MUTT migrated \
                 this database)",
                m.expected, m.unknown
            ),
            "run the MUTT version that migrated it",
        );
    }
    ok(NAME, format!("all {} applied", m.expected))
}

/// `retention_partitions_ahead`: the control API's value, else the newest snapshot's, else
/// the environment's, else the default.
pub(super) async fn partitions_ahead(store: &Store, control: Option<&ControlView>) -> u32 {
    const KEY: &str = "retention_partitions_ahead";
    if let Some(n) = control.and_then(|c| c.partitions_ahead) {
        return n;
    }
    let snapshot = match store.latest_snapshot().await {
        Ok(Some((_, Value::Object(m)))) => m
            .get(KEY)
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok()),
        _ => None,
    };
    snapshot
        .or_else(|| {
            std::env::var("MUTT_RETENTION_PARTITIONS_AHEAD")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .or_else(|| mutt_core::hot::spec(KEY).and_then(|s| s.default.parse().ok()))
        .unwrap_or(3)
}

/// The first day of `today`'s month and of the `ahead` months after it.
pub(super) fn months_from(today: Date, ahead: u32) -> Vec<Date> {
    let mut d = today.replace_day(1).unwrap_or(today);
    let mut out = vec![d];
    for _ in 0..ahead {
        let (y, m) = (d.year(), d.month());
        let y = if m == time::Month::December { y + 1 } else { y };
        d = Date::from_calendar_date(y, m.next(), 1).unwrap_or(d);
        out.push(d);
    }
    out
}

/// The months of `months` that no partition holds (judged by the middle of the month, so
/// that partitions bounded in another time zone count).
pub(super) fn missing_months(partitions: &[Partition], months: &[Date]) -> Vec<Date> {
    months
        .iter()
        .copied()
        .filter(|m| {
            let mid = m.replace_day(15).unwrap_or(*m).midnight().assume_utc();
            !partitions.iter().any(|p| p.lo <= mid && mid < p.hi)
        })
        .collect()
}

pub(super) fn month_name(d: Date) -> String {
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

pub(super) fn partitions_check(partitions: &[Partition], today: Date, ahead: u32) -> Check {
    const NAME: &str = "partitions ahead";
    let months = months_from(today, ahead);
    let missing = missing_months(partitions, &months);
    let span = format!(
        "{} … {}",
        month_name(months[0]),
        month_name(months[months.len() - 1])
    );
    if missing.is_empty() {
        return ok(
            NAME,
            format!("every month of {span} has its partition (current + {ahead})"),
        );
    }
    let names: Vec<String> = missing.iter().copied().map(month_name).collect();
    row(
        NAME,
        Verdict::Fail,
        format!(
            "event_audit_log has no partition for {} (needed: {span}, current + {ahead}); their \
             rows land in the DEFAULT partition",
            names.join(", ")
        ),
        "run mutt retention (it creates them, and the control plane runs it every \
         retention_interval: see muttdev retention status)",
    )
}

pub(super) fn role_check(g: &RoleGrants) -> Check {
    const NAME: &str = "application role";
    if !g.exists {
        return row(
            NAME,
            Verdict::Warn,
            format!(
                "{APP_ROLE} does not exist: the processes run as a user with more rights than \
                 they need (fine on a development machine)"
            ),
            format!(
                "as a superuser: CREATE ROLE {APP_ROLE} NOLOGIN; then mutt migrate, and connect \
                 MUTT as a member (README, Database roles)"
            ),
        );
    }
    if !g.absent.is_empty() {
        return row(
            NAME,
            Verdict::Fail,
            format!(
                "the tables of {} are missing (migrations not applied)",
                list(&g.absent)
            ),
            "run mutt migrate",
        );
    }
    if !g.missing.is_empty() {
        let sql: Vec<String> = g
            .missing
            .iter()
            .map(|x| x.grant_sql(APP_ROLE, &g.database))
            .collect();
        return row(
            NAME,
            Verdict::Fail,
            format!("{APP_ROLE} lacks {}", list(&g.missing)),
            format!("as the owner: {}", sql.join(" ")),
        );
    }
    if !g.excess.is_empty() {
        let sql: Vec<String> = g
            .excess
            .iter()
            .map(|x| x.revoke_sql(APP_ROLE, &g.database))
            .collect();
        return row(
            NAME,
            Verdict::Warn,
            format!(
                "{APP_ROLE} may change audit rows: {} (the triggers still refuse)",
                list(&g.excess)
            ),
            format!("as the owner: {}", sql.join(" ")),
        );
    }
    ok(
        NAME,
        format!(
            "{APP_ROLE} has every grant of the migrations, and the audit tables are append-only for it"
        ),
    )
}

pub(super) fn list(grants: &[mutt_store::health::Grant]) -> String {
    grants
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
