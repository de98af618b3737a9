//! `muttdev up` and `down` as a new user runs them: on a machine where the configured
//! servers answer nothing, `up` starts private Redis and PostgreSQL servers, migrates,
//! seeds, starts MUTT and the stand-in webhook, and returns once an event posted reaches
//! the webhook; a second `up` finds the stack; `down` leaves nothing running.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use mutt_integration_tests::*;

/// `muttdev ARGS` with only the given environment (and PATH).
fn muttdev(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Output> {
    let mut cmd = Command::new(muttdev_binary()?);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(cmd.output()?)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn pids(state: &Path) -> anyhow::Result<Vec<(String, u32)>> {
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("stack.json"))?)?;
    Ok(s["processes"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["pid"].as_u64().unwrap_or(0) as u32,
            )
        })
        .collect())
}

/// Whether a process runs: it exists and is not a zombie waiting for its parent.
fn alive(pid: u32) -> bool {
    Command::new("ps")
        .args(["-o", "stat=", "-p", &pid.to_string()])
        .output()
        .is_ok_and(|o| {
            let stat = String::from_utf8_lossy(&o.stdout);
            o.status.success() && !stat.trim().is_empty() && !stat.trim().starts_with('Z')
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_a_working_stack_from_nothing_and_down_stops_it() -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("muttdev-up-{}", uuid::Uuid::new_v4().simple()));
    let state = root.join("state");
    std::fs::create_dir_all(&root)?;
    // Every address is a free loopback port where nothing answers, so `up` must start
    // its own servers; the API key file lives in this test's config home.
    let port = |_: &str| free_port().to_string();
    let env = vec![
        (
            "MUTT_REDIS_URL",
            format!("redis://127.0.0.1:{}", port("redis")),
        ),
        (
            "MUTT_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{}/mutt", port("pg")),
        ),
        (
            "MUTT_INGEST_LISTEN",
            format!("127.0.0.1:{}", port("ingest")),
        ),
        (
            "MUTT_CONTROL_LISTEN",
            format!("127.0.0.1:{}", port("control")),
        ),
        ("MUTT_OPS_LISTEN", format!("127.0.0.1:{}", port("ops"))),
        ("MUTT_PREFIX", format!("up{}", std::process::id())),
        ("XDG_CONFIG_HOME", root.join("config").display().to_string()),
        ("HOME", root.display().to_string()),
    ];
    let state_arg = state.display().to_string();
    let up = muttdev(&["up", "--demo", "--state-dir", &state_arg], &env)?;
    let out = text(&up);
    let started = pids(&state).unwrap_or_default();
    let guard = Cleanup(started.clone());
    assert!(up.status.success(), "{out}");
    let names: Vec<&str> = started.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["redis", "postgres", "webhook", "mutt"], "{out}");
    assert!(out.contains("MUTT is ready"), "{out}");
    assert!(out.contains("seeded"), "{out}");
    // `--demo` sent the sample events and saw alerts arrive.
    assert!(out.contains("demo: sent 50 sample events: 202"), "{out}");
    assert!(out.contains("alerts at the webhook"), "{out}");

    // Events posted with the key `up` made reach the stand-in webhook.
    let key = std::fs::read_to_string(root.join("config/mutt/api-key"))?
        .trim()
        .to_string();
    let stack: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("stack.json"))?)?;
    let ingest = stack["ingest"].as_str().unwrap().to_string();
    let webhook = stack["webhook"].as_str().unwrap().to_string();
    // The sample events: about one in eight matches a sample rule that forwards it.
    let events = mutt_devkit::load::build_events(50);
    let r = reqwest::Client::new()
        .post(format!("{ingest}/api/v2/ingest"))
        .header("X-API-Key", &key)
        .json(&events)
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    wait_until(
        "the alert at the webhook",
        Duration::from_secs(30),
        || async {
            let stats: serde_json::Value = reqwest::get(format!("{webhook}/stats"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (stats["unique"].as_u64()? >= 1).then_some(())
        },
    )
    .await?;

    // A second `up` finds the running stack and starts nothing.
    let again = muttdev(&["up", "--state-dir", &state_arg], &env)?;
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("running already"), "{}", text(&again));
    assert_eq!(pids(&state)?, started);

    // `logs` shows MUTT's lines.
    let logs = muttdev(&["logs", "mutt", "--state-dir", &state_arg], &env)?;
    assert!(logs.status.success());
    assert!(
        text(&logs).contains("ready") || text(&logs).contains("listening"),
        "{}",
        text(&logs)
    );
    // Filtered by role of `mutt all`, level and text: only the ingest role's INFO lines
    // that say where it listens.
    let some = muttdev(
        &[
            "logs",
            "ingest",
            "--level",
            "info",
            "--grep",
            "listening",
            "--state-dir",
            &state_arg,
        ],
        &env,
    )?;
    let lines: Vec<&str> = std::str::from_utf8(&some.stdout)?.lines().collect();
    assert!(!lines.is_empty(), "{}", text(&some));
    assert!(
        lines
            .iter()
            .all(|l| l.contains("listening") && l.contains("ingest") && !l.contains("DEBUG")),
        "{lines:?}"
    );
    let none = muttdev(
        &[
            "logs",
            "mutt",
            "--level",
            "error",
            "--grep",
            "listening",
            "--state-dir",
            &state_arg,
        ],
        &env,
    )?;
    assert!(none.stdout.is_empty(), "{}", text(&none));

    // `down` stops everything it started, and only that.
    let down = muttdev(&["down", "--state-dir", &state_arg], &env)?;
    assert!(down.status.success(), "{}", text(&down));
    for (name, pid) in &started {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs after down");
    }
    assert!(!state.join("stack.json").exists());
    assert!(
        state.join("postgres").exists(),
        "state is kept without --purge"
    );
    // The state directory from the environment this time (`MUTTDEV_STATE_DIR`).
    let mut with_dir = env.clone();
    with_dir.push(("MUTTDEV_STATE_DIR", state_arg.clone()));
    let purge = muttdev(&["down", "--purge"], &with_dir)?;
    assert!(purge.status.success());
    assert!(!state.exists());
    drop(guard);

    // `--foreground` stays attached, and Ctrl-C stops everything it started.
    let mut attached = Command::new(muttdev_binary()?);
    attached
        .args(["up", "--foreground", "--state-dir", &state_arg])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::fs::File::create(root.join("attached.out"))?)
        .stderr(std::process::Stdio::null());
    for (k, v) in &env {
        attached.env(k, v);
    }
    let mut child = attached.spawn()?;
    let started = wait_until(
        "the attached stack ready",
        Duration::from_secs(90),
        || async {
            let p = pids(&state).ok()?;
            (p.len() == 4 && p.iter().any(|(n, _)| n == "mutt")).then_some(p)
        },
    )
    .await?;
    let guard = Cleanup(started.clone());
    // Attached once it said so (after MUTT answered ready).
    wait_until("muttdev attached", Duration::from_secs(60), || async {
        std::fs::read_to_string(root.join("attached.out"))
            .ok()?
            .contains("attached: Ctrl-C stops everything")
            .then_some(())
    })
    .await?;
    assert!(child.try_wait()?.is_none(), "--foreground returned");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let exited = wait_until("muttdev to stop on Ctrl-C", Duration::from_secs(60), || {
        let done = child.try_wait().ok().flatten();
        async move { done }
    })
    .await?;
    assert!(exited.success(), "{exited}");
    for (name, pid) in &started {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs after Ctrl-C");
    }
    assert!(!state.join("stack.json").exists());
    drop(guard);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// Kills what a failed test left running.
struct Cleanup(Vec<(String, u32)>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (_, pid) in &self.0 {
            if alive(*pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}
