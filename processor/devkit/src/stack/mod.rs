//! `muttdev up`, `down` and `logs`: a whole local stack from one command. `up` uses the
//! Redis and PostgreSQL the settings point at when they answer, else starts private ones
//! (then containers, else it says how to install them), migrates, seeds the sample rules
//! into an empty database, starts `mutt all` and the stand-in webhook, waits until MUTT is
//! ready, and leaves it all running (`--foreground` stays attached). What it started is
//! recorded in the state directory, so `down` stops exactly that and a second `up` finds
//! it.
//!
//! # Layout
//!
//! - `logs`: the log files of what `up` started, filtered and followed.
//! - `servers`: Redis and PostgreSQL found, started privately or as containers.
//! - `state`: the record of a running stack (`stack.json`) and its processes.

mod logs;
mod servers;
mod state;

use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};
use mutt_core::settings::{Settings, Sources};
use serde_json::json;

use crate::cli::{Output, key_file};
use servers::Server;
use state::{Stack, Started};

/// The stack commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Starts a local stack (servers if needed, migrations, sample rules, `mutt all`, the
    /// stand-in webhook) and returns once it is ready.
    Up(UpArgs),
    /// Stops what `up` started (and only that).
    Down(DownArgs),
    /// Shows the logs of what `up` started.
    Logs(LogsArgs),
}

/// `muttdev up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where servers keep their data and the stack its logs (default: `$XDG_DATA_HOME/mutt`,
    /// `/var/lib/mutt` for root).
    #[arg(long, env = "MUTTDEV_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Also send a short stream of sample events and show the alerts arriving.
    #[arg(long)]
    pub demo: bool,
    /// Stay attached; Ctrl-C stops everything.
    #[arg(long)]
    pub foreground: bool,
}

/// `muttdev down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The state directory `up` used.
    #[arg(long, env = "MUTTDEV_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Also delete the state (private servers' data, logs).
    #[arg(long)]
    pub purge: bool,
}

/// `muttdev logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only this process (`mutt`, `webhook`, `redis`, `postgres`), or only lines of this
    /// role of `mutt all` (`ingest`, `alerter`, `forwarder`, `control`).
    pub role: Option<String>,
    /// Keep following.
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines of this level or more severe (`error`, `warn`, `info`, `debug`); lines
    /// without one of these levels (PostgreSQL's, Redis's) are kept.
    #[arg(long)]
    pub level: Option<String>,
    /// Only lines containing this text.
    #[arg(long)]
    pub grep: Option<String>,
    /// The state directory `up` used.
    #[arg(long, env = "MUTTDEV_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Runs one stack command.
pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Up(a) => up(a).await,
        Command::Down(a) => down(a).await,
        Command::Logs(a) => logs::logs(a).await,
    }
}

/// `mutt ARGS`, run by this very `muttdev` (`muttdev mutt ARGS`): the same build, nothing
/// else to find or build.
fn mutt(args: &[&str]) -> anyhow::Result<Process> {
    let mut cmd = Process::new(std::env::current_exe()?);
    cmd.arg("mutt").args(args);
    Ok(cmd)
}

async fn up(a: UpArgs) -> anyhow::Result<ExitCode> {
    let dir = state::state_dir(a.state_dir.as_deref())?;
    if let Some(s) = Stack::load(&dir)? {
        if s.running() {
            println!("a stack is running already (muttdev down stops it):");
            print_summary(&s);
            return Ok(ExitCode::SUCCESS);
        }
        // Whatever survived of a stack that half stopped is stopped before a new one.
        stop_all(&s).await;
        Stack::remove(&dir)?;
    }
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let settings = Sources::new(|k: &str| std::env::var(k).ok(), None)
        .and_then(|s| Settings::load(&s))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // From here on, Ctrl-C (or SIGTERM) stops what `up` started: during the start, and
    // with `--foreground` until then.
    let stop = tokio_util::sync::CancellationToken::new();
    mutt_worker::shutdown::on_signal(stop.clone());
    let mut stack = Stack::default();
    // Recorded as it starts, so that a failure half way leaves nothing `down` cannot stop.
    let result = tokio::select! {
        r = start(&dir, &settings, &mut stack) => r,
        _ = stop.cancelled() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Err(e) = result {
        eprintln!("muttdev up failed: {e:#}\nstopping what it started");
        stop_all(&stack).await;
        Stack::remove(&dir)?;
        return Ok(ExitCode::from(1));
    }
    print_summary(&stack);
    if a.demo {
        demo(&stack).await?;
    }
    if a.foreground {
        println!("\nattached: Ctrl-C stops everything");
        stop.cancelled().await;
        stop_all(&stack).await;
        Stack::remove(&dir)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds or starts the servers, then migrates, seeds, and starts the webhook and MUTT.
async fn start(dir: &Path, settings: &Settings, stack: &mut Stack) -> anyhow::Result<()> {
    let record = |stack: &mut Stack, s: Server| -> anyhow::Result<String> {
        if let Some(p) = s.started {
            stack.processes.push(p);
            stack.save(dir)?;
        }
        Ok(s.url)
    };
    let redis = find_or_start("redis", &settings.redis_url, dir).await?;
    stack.redis_url = record(stack, redis)?;
    let postgres = find_or_start("postgres", &settings.database_url, dir).await?;
    stack.database_url = record(stack, postgres)?;

    // Migrations and the sample rules (only into an empty rules table).
    let out = mutt(&["migrate"])?
        .env("MUTT_DATABASE_URL", &stack.database_url)
        .output()
        .context("running mutt migrate")?;
    if !out.status.success() {
        bail!(
            "mutt migrate failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let store = mutt_store::Store::connect(&stack.database_url, 2).await?;
    let seeded = crate::samples::seed(&store).await?;
    store.close().await;
    if seeded.rules > 0 {
        println!("seeded {} sample rules", seeded.rules);
    }

    // The key: the configured one, else one made for this machine and kept (mode 600) in
    // the file muttdev's other commands read.
    stack.key_file = key_file().context("no home directory for the API key file")?;
    let key = match &settings.api_key {
        Some(k) => k.expose().to_string(),
        None => ensure_key(&stack.key_file)?,
    };

    // The stand-in webhook.
    let webhook_port = crate::local::try_free_port()?;
    let webhook_log = dir.join("logs").join("webhook.log");
    let mut cmd = Process::new(std::env::current_exe()?);
    cmd.args(["sink", "--listen", &format!("127.0.0.1:{webhook_port}")]);
    let pid = spawn_detached(cmd, &webhook_log)?;
    stack.processes.push(Started {
        name: "webhook".into(),
        pid,
        log: webhook_log,
        container: None,
    });
    stack.webhook = format!("http://127.0.0.1:{webhook_port}");
    stack.save(dir)?;

    // MUTT itself, with every setting of this environment and the servers in use.
    let mutt_log = dir.join("logs").join("mutt.log");
    let mut cmd = mutt(&["all"])?;
    cmd.env("MUTT_REDIS_URL", &stack.redis_url)
        .env("MUTT_DATABASE_URL", &stack.database_url)
        .env("MUTT_API_KEY", &key)
        .env("MUTT_WEBHOOK_URL", format!("{}/events", stack.webhook));
    let pid = spawn_detached(cmd, &mutt_log)?;
    stack.processes.push(Started {
        name: "mutt".into(),
        pid,
        log: mutt_log.clone(),
        container: None,
    });
    let local = |addr: std::net::SocketAddr| {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        format!("http://{host}:{}", addr.port())
    };
    stack.ingest = local(settings.ingest_listen);
    stack.control = local(settings.control_listen);
    stack.ops = local(settings.ops_listen);
    stack.save(dir)?;

    // Ready when `/ready` says so; a process that exits says why in its log.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{}/ready", stack.ops)).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if !state::alive(pid) {
            bail!(
                "mutt exited at start; {}:\n{}",
                mutt_log.display(),
                servers::tail(&mutt_log, 20)
            );
        }
        if tokio::time::Instant::now() > deadline {
            bail!("mutt is not ready after 120 s; see {}", mutt_log.display());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The server at `url` when it answers; else a private one; else a container; else the
/// install commands.
async fn find_or_start(kind: &str, url: &str, dir: &Path) -> anyhow::Result<Server> {
    let answers = match kind {
        "redis" => servers::redis_answers(url).await,
        _ => servers::postgres_answers(url).await,
    };
    if answers {
        return Ok(Server {
            url: url.to_string(),
            started: None,
        });
    }
    println!(
        "{kind}: nothing answers at {}; starting a private one",
        mutt_core::url::redact(url)
    );
    let private = match kind {
        "redis" => servers::start_redis(dir).await,
        _ => servers::start_postgres(dir).await,
    };
    let private_error = match private {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    if servers::docker_answers() {
        println!("{kind}: {private_error:#}; trying a container");
        return servers::start_container(kind).await;
    }
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    bail!(
        "{kind}: {private_error:#}, and no Docker engine answers. Install the servers:\n  {}",
        servers::install_hint(&os, cfg!(target_os = "macos"))
    )
}

/// The key in `path`, or a new random one written there (mode 600).
fn ensure_key(path: &Path) -> anyhow::Result<String> {
    if path.exists() {
        return crate::cli::read_key_file(path);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let key = format!("mutt-{}", uuid::Uuid::new_v4().simple());
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{key}")?;
    Ok(key)
}

fn spawn_detached(mut cmd: Process, log: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = cmd
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    Ok(child.id())
}

fn print_summary(s: &Stack) {
    let out = Output::new(false);
    let mut rows = vec![
        vec!["ingest".into(), format!("{}/api/v2/ingest", s.ingest)],
        vec!["control".into(), format!("{}/api/v2", s.control)],
        vec!["metrics".into(), format!("{}/metrics", s.ops)],
        vec!["webhook stats".into(), format!("{}/stats", s.webhook)],
        vec!["redis".into(), mutt_core::url::redact(&s.redis_url)],
        vec!["postgres".into(), mutt_core::url::redact(&s.database_url)],
        vec!["api key".into(), s.key_file.display().to_string()],
    ];
    for p in &s.processes {
        rows.push(vec![format!("{} log", p.name), p.log.display().to_string()]);
    }
    println!("MUTT is ready:");
    out.table(&["what", "where"], &rows);
    println!(
        "\ntry:\n  curl -s -H \"X-API-Key: $(cat {})\" -H 'Content-Type: application/json' \\\n    -d '{{\"hostname\":\"core-router-01\",\"message\":\"%PLATFORM_ENV-1-FRU_PS_FAIL: FRU Power Supply 1 has failed\",\"syslog_severity\":2,\"timestamp\":\"{}\"}}' \\\n    {}/api/v2/ingest\n  curl -s {}/stats",
        s.key_file.display(),
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        s.ingest,
        s.webhook
    );
}

/// Sends a short stream of sample events and shows the alerts arriving.
async fn demo(s: &Stack) -> anyhow::Result<()> {
    let key = match std::env::var("MUTT_API_KEY") {
        Ok(k) if !k.is_empty() => k,
        _ => crate::cli::read_key_file(&s.key_file)?,
    };
    let events = crate::load::build_events(50);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v2/ingest", s.ingest))
        .header("X-API-Key", key)
        .json(&json!(events))
        .send()
        .await?;
    println!(
        "\ndemo: sent {} sample events: {}",
        events.len(),
        r.status()
    );
    let mut last = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let stats: serde_json::Value = client
            .get(format!("{}/stats", s.webhook))
            .send()
            .await?
            .json()
            .await?;
        let unique = stats["unique"].as_u64().unwrap_or(0);
        if unique != last {
            println!("demo: {unique} alerts at the webhook");
            last = unique;
        }
    }
    Ok(())
}

/// Stops MUTT first (it drains), then the webhook, then the servers.
async fn stop_all(s: &Stack) {
    for p in s.processes.iter().rev() {
        if let Some(name) = &p.container {
            let _ = Process::new("docker").args(["rm", "-f", name]).output();
            continue;
        }
        // PostgreSQL: SIGINT is its fast shutdown (SIGTERM waits for every session).
        let sig = if p.name == "postgres" { "INT" } else { "TERM" };
        if state::stop(p.pid, sig, Duration::from_secs(30)).await {
            eprintln!(
                "{} (pid {}) did not stop in 30 s and was killed",
                p.name, p.pid
            );
        }
    }
}

async fn down(a: DownArgs) -> anyhow::Result<ExitCode> {
    let dir = state::state_dir(a.state_dir.as_deref())?;
    match Stack::load(&dir)? {
        Some(s) => {
            stop_all(&s).await;
            Stack::remove(&dir)?;
            println!(
                "stopped: {}",
                s.processes
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        None => println!("no stack recorded in {}", dir.display()),
    }
    if a.purge {
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => println!("removed {}", dir.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
