//! The server programs installed on this machine, found and run: `redis-server`,
//! PostgreSQL's `initdb` and `postgres` (as the `postgres` user when started as root, since
//! they refuse to run as root). Shared by `muttdev up` and the integration harness.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The path of a program on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The newest `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`.
pub fn postgres_bindir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("no /usr/lib/postgresql/<version>/bin and no pg_config: install PostgreSQL")?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !bin.join("postgres").is_file() {
        bail!("no postgres binary in /usr/lib/postgresql/<version>/bin nor in pg_config --bindir");
    }
    Ok(bin)
}

/// Whether this process runs as root (initdb and postgres refuse to).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` run as the `postgres` user when we are root. `setpriv` comes first because
/// it execs the program (the child's pid is postgres's own, for the signals that stop
/// it); `runuser` and `su` keep a parent process in between.
pub fn as_postgres(as_root: bool, program: &Path) -> anyhow::Result<Command> {
    if !as_root {
        return Ok(Command::new(program));
    }
    if let Some(setpriv) = which("setpriv") {
        let mut c = Command::new(setpriv);
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        return Ok(c);
    }
    if let Some(runuser) = which("runuser") {
        let mut c = Command::new(runuser);
        c.args(["-u", "postgres", "--"]).arg(program);
        return Ok(c);
    }
    if let Some(su) = which("su") {
        let mut c = Command::new(su);
        c.args(["postgres", "-s", "/bin/sh", "-c", "exec \"$0\" \"$@\""])
            .arg(program);
        return Ok(c);
    }
    bail!("running as root and none of setpriv, runuser, su is on PATH to become postgres")
}
