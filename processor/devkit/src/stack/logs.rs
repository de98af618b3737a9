//! `muttdev logs`: the log files of what `up` started, filtered and followed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use super::LogsArgs;
use super::state::{self, Stack, Started};

/// Levels from most to least severe.
const LEVELS: [&str; 5] = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// Whether a log line passes the filters.
fn keep(line: &str, role: Option<&str>, level: Option<&str>, grep: Option<&str>) -> bool {
    if let Some(r) = role
        && ![
            format!("role=\"{r}\""),
            format!("role={r} "),
            format!("\"role\":\"{r}\""),
        ]
        .iter()
        .any(|form| line.contains(form.as_str()))
    {
        return false;
    }
    if let Some(l) = level {
        let max = LEVELS
            .iter()
            .position(|x| x.eq_ignore_ascii_case(l))
            .unwrap_or(LEVELS.len() - 1);
        let found = LEVELS.iter().position(|x| line.contains(x));
        if found.is_some_and(|f| f > max) {
            return false;
        }
    }
    grep.is_none_or(|g| line.contains(g))
}

pub(super) async fn logs(a: LogsArgs) -> anyhow::Result<ExitCode> {
    let dir = state::state_dir(a.state_dir.as_deref())?;
    let Some(s) = Stack::load(&dir)? else {
        bail!("no stack recorded in {}: muttdev up", dir.display());
    };
    let role = a.role.as_deref();
    let by_process = role.is_some_and(|r| s.processes.iter().any(|p| p.name == r));
    let files: Vec<&Started> = s
        .processes
        .iter()
        .filter(|p| p.container.is_none())
        .filter(|p| match role {
            Some(r) if by_process => p.name == r,
            Some(_) => p.name == "mutt",
            None => true,
        })
        .collect();
    let line_role = role.filter(|_| !by_process);
    let mut offsets = vec![0u64; files.len()];
    loop {
        for (i, p) in files.iter().enumerate() {
            let text = std::fs::read(&p.log).unwrap_or_default();
            let start = (offsets[i] as usize).min(text.len());
            for line in String::from_utf8_lossy(&text[start..]).lines() {
                if keep(line, line_role, a.level.as_deref(), a.grep.as_deref()) {
                    println!("{:<9} {line}", p.name);
                }
            }
            offsets[i] = text.len() as u64;
        }
        if !a.follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_combine() {
        // As `mutt` writes them: text (the span's fields quoted) and JSON.
        let line = r#"2026-12-02T10:00:00Z  WARN role{role="alerter" consumer=vm-1}: held a batch"#;
        assert!(keep(line, Some("alerter"), None, None));
        assert!(!keep(line, Some("forwarder"), None, None));
        assert!(keep(line, None, Some("warn"), None));
        assert!(!keep(line, None, Some("error"), None));
        assert!(keep(line, None, Some("info"), Some("batch")));
        assert!(!keep(line, None, None, Some("webhook")));
        assert!(keep(
            r#"{"level":"INFO","role":"control"}"#,
            Some("control"),
            Some("info"),
            None
        ));
    }
}
