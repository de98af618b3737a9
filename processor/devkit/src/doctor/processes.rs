//! The processes, through the control API: clocks against Redis `TIME`, settings applied.

use super::*;

/// What the control API said, when it answered.
pub(super) struct ControlView {
    /// `GET /api/v2/config/versions`.
    pub(super) versions: Value,
    /// `retention_partitions_ahead` in force.
    pub(super) partitions_ahead: Option<u32>,
    pub(super) api: Control,
}

pub(super) async fn control_view(args: &ControlArgs) -> Option<ControlView> {
    let api = Control::new(args).ok()?;
    let versions = tokio::time::timeout(TIMEOUT, api.get("/api/v2/config/versions"))
        .await
        .ok()?
        .ok()?;
    let partitions_ahead = api
        .get("/api/v2/config/retention_partitions_ahead")
        .await
        .ok()
        .and_then(|v| v["value"].as_str().and_then(|s| s.parse().ok()));
    Some(ControlView {
        versions,
        partitions_ahead,
        api,
    })
}

/// Why the processes were not checked.
pub(super) async fn why_no_control(args: &ControlArgs) -> String {
    match Control::new(args) {
        Err(e) => format!("no API key ({e})"),
        Ok(api) => match tokio::time::timeout(TIMEOUT, api.get("/api/v2/config/versions")).await {
            Err(_) => format!("the control API at {} does not answer", args.control),
            Ok(Err(e)) => format!("{e:#}"),
            Ok(Ok(_)) => "the control API answered late".into(),
        },
    }
}

pub(super) async fn process_checks(
    bus: Option<&Bus>,
    control: Option<&ControlView>,
    args: &ControlArgs,
    checks: &mut Vec<Check>,
) {
    let redis_now = match bus {
        Some(b) => b
            .server_time_ms()
            .await
            .map_err(|e| format!("Redis TIME refused: {e}")),
        None => Err("Redis does not answer".to_string()),
    };
    let local_now = mutt_core::now_ms();
    let Some(view) = control else {
        let why = why_no_control(args).await;
        checks.push(clocks_check(redis_now, local_now, None, &why));
        checks.push(row(
            "settings",
            Verdict::Warn,
            format!("not checked: {why}"),
            "start mutt control (or pass --control URL and MUTT_API_KEY) to compare the \
             processes' settings",
        ));
        return;
    };
    checks.push(clocks_check(redis_now, local_now, Some(&view.versions), ""));
    // A change may be on its way (processes poll every second): look twice before failing.
    let mut versions = view.versions.clone();
    if versions["converged"] == false {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        if let Ok(v) = view.api.get("/api/v2/config/versions").await {
            versions = v;
        }
    }
    checks.push(settings_check(&versions));
}

/// How far each process's clock is from Redis `TIME`, from its last heartbeat (`seen_ms`,
/// written by the process every 5 s with its own clock), and this machine's.
pub(super) fn clocks_check(
    redis_now: Result<i64, String>,
    local_now: i64,
    versions: Option<&Value>,
    why_not: &str,
) -> Check {
    const NAME: &str = "clocks";
    /// Heartbeats are written every 5 s: a report up to this old is on time.
    const HEARTBEAT_MS: i64 = 5_000;
    const SLACK_MS: i64 = 2_000;
    let redis_now = match redis_now {
        Ok(t) => t,
        Err(why) => return row(NAME, Verdict::Warn, format!("not checked: {why}"), ""),
    };
    let mut verdict = Verdict::Ok;
    let mut notes = Vec::new();
    let mine = local_now - redis_now;
    if mine.abs() > SLACK_MS {
        verdict = verdict.max(if mine.abs() > 60_000 {
            Verdict::Fail
        } else {
            Verdict::Warn
        });
    }
    notes.push(format!("this machine: {}", signed_ms(mine)));
    match versions.and_then(|v| v["consumers"].as_array()) {
        None => notes.push(format!("processes not checked: {why_not}")),
        Some(consumers) if consumers.is_empty() => {
            notes.push("no process reported in the last minute".into());
        }
        Some(consumers) => {
            let mut off = Vec::new();
            for c in consumers {
                let Some(seen) = c["seen_ms"].as_i64() else {
                    continue;
                };
                let age = redis_now - seen;
                let name = c["consumer"].as_str().unwrap_or("?");
                if age < -SLACK_MS {
                    off.push((
                        age.abs(),
                        format!("{name} is ahead of Redis by {} s or more", -age / 1000),
                    ));
                } else if age > HEARTBEAT_MS + SLACK_MS {
                    off.push((
                        age - HEARTBEAT_MS,
                        format!(
                            "{name} is behind Redis by up to {} s (or its heartbeat is late)",
                            age / 1000
                        ),
                    ));
                }
            }
            if off.is_empty() {
                notes.push(format!(
                    "{} within {} s of Redis TIME",
                    processes(consumers.len()),
                    SLACK_MS / 1000
                ));
            } else {
                let worst = off.iter().map(|o| o.0).max().unwrap_or(0);
                verdict = verdict.max(if worst > 60_000 {
                    Verdict::Fail
                } else {
                    Verdict::Warn
                });
                notes.extend(off.into_iter().map(|o| o.1));
            }
        }
    }
    let fix = if verdict == Verdict::Ok {
        ""
    } else {
        "run NTP (chronyd, systemd-timesyncd) on every host: idempotency windows, audit times \
         and retention follow the processes' clocks"
    };
    row(NAME, verdict, notes.join("; "), fix)
}

/// A clock's offset from Redis, in words.
pub(super) fn signed_ms(ms: i64) -> String {
    if ms.abs() < 1000 {
        format!("within {} ms of Redis", ms.abs())
    } else if ms > 0 {
        format!("{:.1} s ahead of Redis", ms as f64 / 1000.0)
    } else {
        format!("{:.1} s behind Redis", -ms as f64 / 1000.0)
    }
}

/// `1 process`, `3 processes`.
pub(super) fn processes(n: usize) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}

/// Whether every process applied the settings version in force, and the same
/// credentials.
pub(super) fn settings_check(versions: &Value) -> Check {
    const NAME: &str = "settings";
    let current = versions["version"].as_i64().unwrap_or(0);
    let consumers = versions["consumers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if consumers.is_empty() {
        return row(
            NAME,
            Verdict::Warn,
            "no process reported its settings in the last minute",
            "start the processes (muttdev status shows what runs)",
        );
    }
    let behind: Vec<String> = consumers
        .iter()
        .filter(|c| c["version"].as_i64().unwrap_or(0) < current)
        .map(|c| {
            format!(
                "{} ({}) runs version {}",
                c["consumer"].as_str().unwrap_or("?"),
                c["roles"]
                    .as_array()
                    .map(|r| r
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default(),
                c["version"]
            )
        })
        .collect();
    if !behind.is_empty() {
        return row(
            NAME,
            Verdict::Fail,
            format!("version {current} is in force, but {}", behind.join("; ")),
            "look at those processes' logs (a value they cannot apply is logged); muttdev \
             status shows them",
        );
    }
    // The same secret at different generations: a rotation in progress.
    let mut differing = Vec::new();
    let mut names: Vec<String> = consumers
        .iter()
        .filter_map(|c| c["generations"].as_object())
        .flat_map(|g| g.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let mut seen: Vec<i64> = consumers
            .iter()
            .filter_map(|c| c["generations"][&name].as_i64())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() > 1 {
            differing.push(format!("{name} at generations {seen:?}"));
        }
    }
    if !differing.is_empty() {
        return row(
            NAME,
            Verdict::Warn,
            format!(
                "{} on version {current}, but credentials differ: {}",
                processes(consumers.len()),
                differing.join("; ")
            ),
            "a secret rotation is under way: muttdev secrets status",
        );
    }
    ok(
        NAME,
        format!(
            "{} on settings version {current}",
            processes(consumers.len())
        ),
    )
}
