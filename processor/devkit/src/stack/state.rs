//! What `up` started, kept in the state directory (`stack.json`), so that `down` stops
//! exactly that and a second `up` finds it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One process `up` started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Started {
    /// What it is (`mutt`, `webhook`, `redis`, `postgres`).
    pub(super) name: String,
    /// Its pid.
    pub(super) pid: u32,
    /// Its log file.
    pub(super) log: PathBuf,
    /// The container it runs in, when a Docker engine runs it (its pid is then 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) container: Option<String>,
}

impl Started {
    /// Whether it still runs.
    pub(super) fn alive(&self) -> bool {
        match &self.container {
            Some(name) => Command::new("docker")
                .args(["inspect", "-f", "{{.State.Running}}", name])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true"),
            None => alive(self.pid),
        }
    }
}

/// A running stack.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(super) struct Stack {
    /// Processes, in the order they started.
    pub(super) processes: Vec<Started>,
    /// Ingest's base URL.
    pub(super) ingest: String,
    /// The control API's base URL.
    pub(super) control: String,
    /// The ops listener (`/health`, `/ready`, `/metrics`).
    pub(super) ops: String,
    /// The stand-in webhook's base URL (`/stats`).
    pub(super) webhook: String,
    /// Redis in use.
    pub(super) redis_url: String,
    /// PostgreSQL in use (password never stored).
    pub(super) database_url: String,
    /// The file holding the API key.
    pub(super) key_file: PathBuf,
}

/// The state directory: `--state-dir`, else `$XDG_DATA_HOME/mutt` (else
/// `~/.local/share/mutt`); for root `/var/lib/mutt`, which the `postgres` user a private
/// server runs as can reach (root's home cannot be traversed).
pub(super) fn state_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_path_buf());
    }
    if crate::programs::running_as_root() {
        return Ok(PathBuf::from("/var/lib/mutt"));
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| anyhow::anyhow!("no HOME: give --state-dir"))?;
    Ok(base.join("mutt"))
}

fn file(dir: &Path) -> PathBuf {
    dir.join("stack.json")
}

impl Stack {
    /// The stack recorded in `dir`, if any.
    pub(super) fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read(file(dir)) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records it (written whole, then renamed: never half a file).
    pub(super) fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = dir.join("stack.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, file(dir))?;
        Ok(())
    }

    /// Forgets it.
    pub(super) fn remove(dir: &Path) -> anyhow::Result<()> {
        match std::fs::remove_file(file(dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Whether every process it started still runs.
    pub(super) fn running(&self) -> bool {
        !self.processes.is_empty() && self.processes.iter().all(Started::alive)
    }
}

/// Whether a process runs: it exists and is not a zombie (`up --foreground` is the parent
/// of what it started, and reaps them only when it exits).
pub(super) fn alive(pid: u32) -> bool {
    Command::new("ps")
        .args(["-o", "stat=", "-p", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| {
            let stat = String::from_utf8_lossy(&o.stdout);
            let stat = stat.trim();
            o.status.success() && !stat.is_empty() && !stat.starts_with('Z')
        })
}

/// Sends a signal (`TERM`, `INT`, `KILL`).
pub(super) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Stops a process: `sig`, then SIGKILL if it has not exited within `grace`. Returns
/// whether it had to be killed.
pub(super) async fn stop(pid: u32, sig: &str, grace: Duration) -> bool {
    if !alive(pid) {
        return false;
    }
    signal(pid, sig);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !alive(pid) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(pid, "KILL");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_survives_its_file() {
        let dir = std::env::temp_dir().join(format!("muttdev-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Stack::load(&dir).unwrap().is_none());
        let s = Stack {
            processes: vec![Started {
                name: "mutt".into(),
                pid: std::process::id(),
                log: dir.join("mutt.log"),
                container: None,
            }],
            ingest: "http://127.0.0.1:8080".into(),
            ..Stack::default()
        };
        s.save(&dir).unwrap();
        let back = Stack::load(&dir).unwrap().unwrap();
        assert_eq!(back.processes, s.processes);
        assert!(back.running(), "this test's own process runs");
        Stack::remove(&dir).unwrap();
        assert!(Stack::load(&dir).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
