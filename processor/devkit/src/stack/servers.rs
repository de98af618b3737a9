//! Redis and PostgreSQL for a local stack: the ones the settings point at when they
//! answer; otherwise private ones from the installed programs (kept in the state
//! directory, on free loopback ports, outliving `muttdev`); otherwise containers where a
//! Docker engine answers; otherwise the commands that install them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::state::Started;
use crate::local::try_free_port;
use crate::programs::{as_postgres, postgres_bindir, running_as_root, which};

/// A server in use: its URL, and the process `up` started for it (None when it was
/// already there).
#[derive(Debug)]
pub(super) struct Server {
    /// Its URL.
    pub(super) url: String,
    /// What `up` started.
    pub(super) started: Option<Started>,
}

/// Whether Redis answers a PING at `url` within two seconds.
pub(super) async fn redis_answers(url: &str) -> bool {
    let ping = async {
        let bus = mutt_bus::Bus::connect(url, "muttdev").await.ok()?;
        bus.ping().await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ping).await,
        Ok(Some(()))
    )
}

/// Whether the PostgreSQL server of `url` accepts a connection within two seconds.
pub(super) async fn postgres_answers(url: &str) -> bool {
    let server = crate::local::with_database(url, "postgres");
    let connect = async {
        let s = mutt_store::Store::connect(&server, 1).await.ok()?;
        s.close().await;
        Some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), connect).await,
        Ok(Some(()))
    )
}

/// Starts a process that outlives `muttdev`: in a process group of its own (a Ctrl-C in
/// the terminal does not reach it), output to `log`.
fn detached(mut cmd: Command, log: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    Ok(child.id())
}

/// Waits until `check` says yes, or fails naming `what` and its log.
async fn wait_for<F, Fut>(what: &str, log: &Path, pid: u32, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        if !super::state::alive(pid) {
            bail!(
                "{what} exited at start; see {}:\n{}",
                log.display(),
                tail(log, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{what} did not answer within 60 s; see {}", log.display())
}

/// The last `n` lines of a log file.
pub(super) fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A private Redis (AOF on) in `dir/redis` on a free loopback port.
pub(super) async fn start_redis(dir: &Path) -> anyhow::Result<Server> {
    let Some(bin) = which("redis-server") else {
        bail!("redis-server is not installed");
    };
    let data = dir.join("redis");
    std::fs::create_dir_all(&data)?;
    let port = try_free_port()?;
    let log = dir.join("logs").join("redis.log");
    let mut cmd = Command::new(bin);
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--appendonly", "yes", "--save", ""])
        .arg("--dir")
        .arg(&data);
    let pid = detached(cmd, &log)?;
    let url = format!("redis://127.0.0.1:{port}");
    wait_for("redis-server", &log, pid, || redis_answers(&url)).await?;
    Ok(Server {
        url,
        started: Some(Started {
            name: "redis".into(),
            pid,
            log,
            container: None,
        }),
    })
}

/// A private PostgreSQL cluster in `dir/postgres` (made by `initdb` the first time, trust
/// authentication on loopback only) on a free loopback port; as the `postgres` user when
/// started as root.
pub(super) async fn start_postgres(dir: &Path) -> anyhow::Result<Server> {
    let bin = postgres_bindir()?;
    let as_root = running_as_root();
    let home = dir.join("postgres");
    let data = home.join("data");
    std::fs::create_dir_all(&home)?;
    if as_root {
        let st = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&home)
            .status()
            .context("running chown")?;
        if !st.success() {
            bail!("chown postgres:postgres {} failed", home.display());
        }
    }
    if !data.join("PG_VERSION").exists() {
        let out = as_postgres(as_root, &bin.join("initdb"))?
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "--username=postgres",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .current_dir(&home)
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let port = try_free_port()?;
    let log = dir.join("logs").join("postgres.log");
    let mut cmd = as_postgres(as_root, &bin.join("postgres"))?;
    cmd.arg("-D").arg(&data);
    for setting in [
        "listen_addresses=127.0.0.1".to_string(),
        format!("port={port}"),
        format!("unix_socket_directories={}", home.display()),
        "logging_collector=off".into(),
    ] {
        cmd.arg("-c").arg(setting);
    }
    cmd.current_dir(&home);
    let pid = detached(cmd, &log)?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/mutt");
    wait_for("postgres", &log, pid, || postgres_answers(&url)).await?;
    Ok(Server {
        url,
        started: Some(Started {
            name: "postgres".into(),
            pid,
            log,
            container: None,
        }),
    })
}

/// Whether a Docker engine answers.
pub(super) fn docker_answers() -> bool {
    which("docker").is_some()
        && Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The `docker run` arguments of a server container for a stack: named after the state
/// directory's stack, loopback port only.
pub(super) fn docker_run_args(kind: &str, port: u16) -> Vec<String> {
    let (image, inner, extra): (&str, u16, &[&str]) = match kind {
        "redis" => ("redis:7", 6379, &["redis-server", "--appendonly", "yes"]),
        _ => ("postgres:16", 5432, &[]),
    };
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        &format!("mutt-{kind}-{port}"),
        "-p",
        &format!("127.0.0.1:{port}:{inner}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if kind == "postgres" {
        args.extend(["-e".into(), "POSTGRES_HOST_AUTH_METHOD=trust".into()]);
    }
    args.push(image.into());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A server as a container (the engine must have or be able to pull its image).
pub(super) async fn start_container(kind: &str) -> anyhow::Result<Server> {
    let port = try_free_port()?;
    let out = Command::new("docker")
        .args(docker_run_args(kind, port))
        .output()
        .context("running docker")?;
    if !out.status.success() {
        bail!(
            "docker could not start {kind}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let url = match kind {
        "redis" => format!("redis://127.0.0.1:{port}"),
        _ => format!("postgres://postgres@127.0.0.1:{port}/mutt"),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let up = match kind {
            "redis" => redis_answers(&url).await,
            _ => postgres_answers(&url).await,
        };
        if up {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the {kind} container did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let name = format!("mutt-{kind}-{port}");
    Ok(Server {
        url,
        started: Some(Started {
            name: kind.into(),
            pid: 0,
            log: std::path::PathBuf::from(format!("docker logs {name}")),
            container: Some(name),
        }),
    })
}

/// The commands that install Redis and PostgreSQL here (from `/etc/os-release`, or macOS).
pub(super) fn install_hint(os_release: &str, macos: bool) -> String {
    if macos {
        return "brew install redis postgresql@16".into();
    }
    let id_like: String = os_release
        .lines()
        .filter_map(|l| l.strip_prefix("ID=").or_else(|| l.strip_prefix("ID_LIKE=")))
        .map(|v| v.trim_matches('"').to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let has = |d: &str| id_like.split_whitespace().any(|w| w == d);
    if has("debian") || has("ubuntu") {
        "sudo apt-get update && sudo apt-get install -y redis-server postgresql".into()
    } else if has("fedora") || has("rhel") || has("centos") {
        "sudo dnf install -y redis postgresql-server".into()
    } else if has("alpine") {
        "sudo apk add redis postgresql".into()
    } else if has("arch") {
        "sudo pacman -S redis postgresql".into()
    } else {
        "install Redis (7 or later) and PostgreSQL (14 or later) with your package manager".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_hints_follow_the_platform() {
        assert!(
            install_hint("ID=debian\n", false)
                .contains("apt-get install -y redis-server postgresql")
        );
        assert!(install_hint("ID=ubuntu\nID_LIKE=debian\n", false).contains("apt-get"));
        assert!(
            install_hint("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n", false).contains("dnf")
        );
        assert!(install_hint("ID=alpine\n", false).contains("apk add"));
        assert!(install_hint("", true).contains("brew install"));
        assert!(install_hint("ID=plan9\n", false).contains("package manager"));
    }

    #[test]
    fn containers_listen_on_loopback_only() {
        let args = docker_run_args("postgres", 15432);
        assert!(args.contains(&"127.0.0.1:15432:5432".to_string()));
        assert!(args.contains(&"POSTGRES_HOST_AUTH_METHOD=trust".to_string()));
        let args = docker_run_args("redis", 16379);
        assert_eq!(args.last().map(String::as_str), Some("yes"));
        assert!(args.contains(&"mutt-redis-16379".to_string()));
    }
}
