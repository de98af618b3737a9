//! Redis: version, persistence, eviction policy, what its ACL user may run.

use super::*;

pub(super) fn unreachable_redis(url: &str, why: &str) -> Check {
    row(
        "redis",
        Verdict::Fail,
        format!("{} does not answer: {why}", mutt_core::url::redact(url)),
        "start Redis (muttdev up does), or set MUTT_REDIS_URL / --redis-url to where it runs",
    )
}

pub(super) async fn redis_checks(bus: &Bus, url: &str, checks: &mut Vec<Check>) {
    let info = match bus.server_info().await {
        Ok(i) => i,
        Err(e) => {
            checks.push(row(
                "redis",
                Verdict::Fail,
                format!("INFO refused: {e}"),
                "let MUTT's Redis user run INFO (+info), or check the URL's credentials",
            ));
            return;
        }
    };
    checks.push(redis_version(&info));
    let fsync = if info.aof_enabled() {
        bus.config_value("appendfsync").await.ok().flatten()
    } else {
        None
    };
    checks.push(redis_persistence(&info, fsync.as_deref()));
    checks.push(redis_eviction(&info));
    checks.push(redis_acl(bus, &info, url).await);
}

/// XAUTOCLAIM, which every worker's reclaim runs, came with Redis 6.2.
pub(super) fn redis_version(info: &ServerInfo) -> Check {
    let mode = info.get("redis_mode").unwrap_or("standalone");
    match (info.version(), info.version_numbers()) {
        (Some(v), Some(n)) if n >= (6, 2, 0) => ok("redis version", format!("Redis {v} ({mode})")),
        (Some(v), _) => row(
            "redis version",
            Verdict::Fail,
            format!("Redis {v}: MUTT needs 6.2 or later (XAUTOCLAIM reclaims idle entries)"),
            "upgrade Redis to 6.2 or later (7.x recommended)",
        ),
        (None, _) => row(
            "redis version",
            Verdict::Warn,
            "INFO does not say the version",
            "check that MUTT_REDIS_URL points at Redis 6.2 or later",
        ),
    }
}

/// Without AOF a restart loses what ingest accepted since the last snapshot.
pub(super) fn redis_persistence(info: &ServerInfo, fsync: Option<&str>) -> Check {
    if !info.aof_enabled() {
        return row(
            "redis persistence",
            Verdict::Warn,
            "AOF is off: a Redis restart loses the events accepted since the last RDB snapshot",
            "appendonly yes and appendfsync everysec (or always) in redis.conf; at once: \
             CONFIG SET appendonly yes",
        );
    }
    match fsync {
        Some("no") => row(
            "redis persistence",
            Verdict::Warn,
            "AOF is on with appendfsync no: the OS decides when it reaches the disk",
            "appendfsync everysec (or always) in redis.conf; at once: CONFIG SET appendfsync everysec",
        ),
        Some(f) => ok("redis persistence", format!("AOF on, appendfsync {f}")),
        None => ok(
            "redis persistence",
            "AOF on (appendfsync not readable: CONFIG refused)",
        ),
    }
}

/// Any policy but noeviction lets Redis delete streams (accepted events) under memory
/// pressure.
pub(super) fn redis_eviction(info: &ServerInfo) -> Check {
    let limit = match info.maxmemory() {
        0 => "no maxmemory".to_string(),
        n => format!("maxmemory {} MiB", n / (1024 * 1024)),
    };
    match info.maxmemory_policy() {
        Some("noeviction") => ok("redis maxmemory-policy", format!("noeviction ({limit})")),
        Some(p) => row(
            "redis maxmemory-policy",
            Verdict::Fail,
            format!(
                "{p} ({limit}): under memory pressure Redis would evict keys, streams of \
                 accepted events included"
            ),
            "maxmemory-policy noeviction in redis.conf; at once: CONFIG SET maxmemory-policy \
             noeviction (ingest then sheds load with 503 instead)",
        ),
        None => row(
            "redis maxmemory-policy",
            Verdict::Warn,
            "INFO does not say the policy",
            "check that maxmemory-policy is noeviction",
        ),
    }
}

/// The commands (with keys and channels under the prefix) MUTT's processes run.
pub(super) const NEEDED: &[&[&str]] = &[
    &["PING"],
    &["INFO"],
    &["TIME"],
    &["XADD", "{p}:events", "*", "payload", "x"],
    &[
        "XREADGROUP",
        "GROUP",
        "alerter",
        "doctor",
        "COUNT",
        "1",
        "STREAMS",
        "{p}:events",
        ">",
    ],
    &["XACK", "{p}:events", "alerter", "0-1"],
    &[
        "XAUTOCLAIM",
        "{p}:events",
        "alerter",
        "doctor",
        "1000",
        "0-0",
    ],
    &["XCLAIM", "{p}:events", "alerter", "doctor", "1000", "0-1"],
    &["XPENDING", "{p}:events", "alerter"],
    &["XGROUP", "CREATE", "{p}:events", "alerter", "0", "MKSTREAM"],
    &["XINFO", "GROUPS", "{p}:events"],
    &["XTRIM", "{p}:events", "MINID", "0-1"],
    &["XRANGE", "{p}:dlq:alerter", "-", "+"],
    &["XDEL", "{p}:dlq:alerter", "0-1"],
    &["XLEN", "{p}:alerts"],
    &["EVAL", "return 1", "1", "{p}:events"],
    &[
        "EVALSHA",
        "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
        "1",
        "{p}:events",
    ],
    &["SCRIPT", "LOAD", "return 1"],
    &["PUBLISH", "{p}:control", "x"],
    &["SUBSCRIBE", "{p}:control"],
    &["GET", "{p}:config"],
    &["SET", "{p}:x", "1", "PX", "1000"],
    &["DEL", "{p}:x"],
    &["EXISTS", "{p}:x"],
    &["TYPE", "{p}:x"],
    &["EXPIRE", "{p}:x", "1"],
    &["PEXPIRE", "{p}:x", "1"],
    &["PTTL", "{p}:x"],
    &["RENAME", "{p}:x", "{p}:y"],
    &["HSET", "{p}:h", "f", "v"],
    &["HGET", "{p}:h", "f"],
    &["HMGET", "{p}:h", "f"],
    &["HGETALL", "{p}:h"],
    &["HDEL", "{p}:h", "f"],
    &["HINCRBY", "{p}:h", "f", "1"],
    &["SADD", "{p}:s", "1"],
    &["SCARD", "{p}:s"],
    &["ZADD", "{p}:z", "1", "m"],
    &["ZSCORE", "{p}:z", "m"],
    &["ZREMRANGEBYSCORE", "{p}:z", "0", "1"],
    &["LPUSH", "{p}:l", "x"],
    &["LRANGE", "{p}:l", "0", "1"],
    &["LREM", "{p}:l", "0", "x"],
    &["LPOS", "{p}:l", "x"],
    &["LLEN", "{p}:l"],
];

/// Commands only some operations need: rotating the Redis password (the control plane)
/// and finding MUTT v2's queues (`mutt migrate --from-v2-queues`).
pub(super) const OPTIONAL: &[(&[&str], &str)] = &[
    (
        &["ACL", "SETUSER", "{user}", ">x"],
        "rotating the Redis password",
    ),
    (&["SCAN", "0", "MATCH", "{p}:*"], "the upgrade from v2"),
];

/// What the ACL user may run, by `ACL DRYRUN` of every command MUTT sends.
pub(super) async fn redis_acl(bus: &Bus, info: &ServerInfo, url: &str) -> Check {
    const NAME: &str = "redis ACL";
    let user = match bus.acl_whoami().await {
        Ok(u) => u,
        Err(_) => mutt_core::url::username(url)
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "default".into()),
    };
    if info.version_numbers().is_some_and(|v| v < (7, 0, 0)) {
        return row(
            NAME,
            Verdict::Warn,
            format!("user {user}: not checked (ACL DRYRUN needs Redis 7.0)"),
            format!(
                "check ACL GETUSER {user}: MUTT needs its stream, hash, set, list, sorted-set, \
                 scripting and pub/sub commands on keys and channels under {}:*",
                bus.names().prefix()
            ),
        );
    }
    let prefix = bus.names().prefix().to_string();
    let fill = |cmd: &[&str]| -> Vec<String> {
        cmd.iter()
            .map(|a| a.replace("{p}", &prefix).replace("{user}", &user))
            .collect()
    };
    let mut denied = Vec::new();
    let mut denied_optional = Vec::new();
    let all = NEEDED
        .iter()
        .map(|c| (*c, None))
        .chain(OPTIONAL.iter().map(|(c, why)| (*c, Some(*why))));
    for (cmd, optional) in all {
        let args = fill(cmd);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        match bus.acl_dryrun(&user, &refs).await {
            Ok(DryRun::Allowed) => {}
            Ok(DryRun::Denied(why)) => {
                // "no permissions to run the 'x' command" says nothing the name does not;
                // a refused key or channel is worth its words.
                let name = if why.contains("permissions to run") {
                    cmd[0].to_string()
                } else {
                    format!("{} ({why})", cmd[0])
                };
                match optional {
                    None => denied.push(name),
                    Some(what) => denied_optional.push(format!("{} {} ({what})", cmd[0], cmd[1])),
                }
            }
            Err(e) => {
                let e = e.to_string();
                if e.contains("NOPERM") || e.contains("no permissions") {
                    return row(
                        NAME,
                        Verdict::Warn,
                        format!("user {user}: not checked (it may not run ACL DRYRUN)"),
                        format!(
                            "run muttdev doctor with an admin's MUTT_REDIS_URL, or check ACL \
                             GETUSER {user}"
                        ),
                    );
                }
                // An unknown command (an old or trimmed server): say so, go on.
                denied.push(format!("{} ({e})", cmd[0]));
            }
        }
    }
    if !denied.is_empty() {
        return row(
            NAME,
            Verdict::Fail,
            format!("user {user} may not run: {}", denied.join(", ")),
            format!(
                "ACL SETUSER {user} +@stream +@hash +@set +@list +@sortedset +@scripting \
                 +@pubsub +@keyspace +@string +info +ping +time ~{prefix}:* &{prefix}:*"
            ),
        );
    }
    if !denied_optional.is_empty() {
        return row(
            NAME,
            Verdict::Warn,
            format!(
                "user {user} runs every command of the data plane, but not: {}",
                denied_optional.join("; ")
            ),
            format!(
                "only needed for those operations: ACL SETUSER {user} +acl|setuser (the \
                 control plane's user) or +scan"
            ),
        );
    }
    ok(
        NAME,
        format!(
            "user {user} may run all {} commands MUTT sends, on {prefix}:*",
            NEEDED.len() + OPTIONAL.len()
        ),
    )
}
