//! The console in a real browser: MUTT runs as four processes (control, ingest, alerter,
//! forwarder) with a forwarder DLQ filled while the webhook refused alerts, and
//! `integration-tests/console/console.test.mjs` drives Debian's Chromium through every
//! view with playwright-core (sign-in, live overview, DLQ replay, rules, settings,
//! audit, keys, a read-only key, console errors, screenshots, axe-core).
//!
//! Screenshots are kept in `target/console-screenshots/` (the CI artefacts).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mutt_integration_tests::*;

/// Dead letters the browser replays.
const LETTERS: u64 = 24;
/// Longest the browser run may take (its own waits are shorter).
const BROWSER_RUN: Duration = Duration::from_secs(360);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_drives_every_view_in_chromium() -> anyhow::Result<()> {
    let root = repo();
    let script = root.join("integration-tests/console/console.test.mjs");
    anyhow::ensure!(
        root.join("integration-tests/console/node_modules/playwright-core")
            .is_dir(),
        "the console tests' npm packages are missing: run `npm ci --prefix integration-tests/console` (.ci/test does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    anyhow::ensure!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: `apt-get install chromium` (.ci/test does)"
    );
    let shots = root.join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots)?;

    let rig = Rig::start().await?;
    // A Prometheus scraping every process, so that the overview's SLOs are real.
    let roles = ["control", "ingest", "alerter", "forwarder"];
    let ops: Vec<String> = roles
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let prom = PrometheusServer::start(&ops).await?;
    let mut procs = Vec::new();
    for (role, ops) in roles.iter().zip(&ops) {
        let cfg = rig
            .cfg(role)
            .set("MUTT_OPS_LISTEN", ops)
            .set("MUTT_PROMETHEUS_URL", &prom.url)
            // The replay is the browser's to do, not the automatic rounds'.
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s");
        procs.push(Mutt::start(&rig.env, &cfg).await?);
    }
    let (control, ingest) = (&procs[0], &procs[1]);

    // Dead letters for the DLQ view: the webhook refuses these alerts for good (400).
    rig.sink.set_behaviour(Behaviour::Fail(400, None));
    let accepted = send_all(
        vec![ingest.ingest_url.clone()],
        LETTERS,
        LETTERS as usize,
        Duration::ZERO,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(accepted.len() as u64, LETTERS);
    wait_for_dead_letters(&rig.env, "forwarder", LETTERS as usize).await?;
    rig.sink.set_behaviour(Behaviour::Accept);
    let sink_base = rig.sink.url().trim_end_matches("/events").to_string();

    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("--test")
        .arg("--test-reporter=spec")
        .arg(&script)
        .current_dir(&root)
        .env("CONSOLE_URL", format!("{}/ui/", control.control_url))
        .env("CONTROL_URL", &control.control_url)
        .env("INGEST_URL", &ingest.ingest_url)
        .env("ADMIN_KEY", "test-key")
        .env("SINK_URL", &sink_base)
        .env("DLQ_LETTERS", LETTERS.to_string())
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(BROWSER_RUN, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("the browser run took longer than {BROWSER_RUN:?}"))??;
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the browser tests failed ({}):\n{report}",
        out.status
    );
    println!("{report}\nscreenshots in {}", shots.display());

    // What the browser claimed, checked from outside: every letter replayed and delivered.
    assert_eq!(rig.dlq_len("forwarder").await?, 0, "the DLQ drained");
    for name in [
        "sign-in.png",
        "overview.png",
        "overview-phone.png",
        "dlq.png",
        "rules.png",
        "settings.png",
        "audit.png",
        "secrets.png",
    ] {
        let size = std::fs::metadata(shots.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 2_000, "screenshot {name}: {size} bytes");
    }
    drop(procs);
    drop(prom);
    rig.finish().await
}

/// `mutt all` serves the console too, without a key, with its policy; the API beside it
/// still wants a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutt_all_serves_the_console_with_a_strict_policy() -> anyhow::Result<()> {
    let (env, stop, sink) = env_with_sink(&[]).await?;
    let all = Mutt::start(&env, &MuttConfig::new("all").webhook(sink.url())).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = &all.control_url;

    let r = http.get(format!("{base}/ui")).send().await?;
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/ui/");

    let r = http.get(format!("{base}/ui/")).send().await?;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-type"].to_str()?.starts_with("text/html"));
    let csp = h["content-security-policy"].to_str()?;
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = r.text().await?;
    assert!(
        !html.contains("<script>") && html.contains("type=\"module\""),
        "no inline script, only modules: {html}"
    );

    // Unchanged files are not sent again.
    let r = http
        .get(format!("{base}/ui/"))
        .header("if-none-match", h["etag"].clone())
        .send()
        .await?;
    assert_eq!(r.status(), 304);

    let r = http.get(format!("{base}/ui/app.js")).send().await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/javascript")
    );
    assert_eq!(
        http.get(format!("{base}/ui/missing.js"))
            .send()
            .await?
            .status(),
        404
    );
    // The files are public; the data is not.
    assert_eq!(
        http.get(format!("{base}/api/v2/overview"))
            .send()
            .await?
            .status(),
        401
    );
    drop(all);
    stop.cancel();
    env.cleanup().await
}
