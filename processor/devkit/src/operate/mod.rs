//! The operator's commands over the control API (`/api/v2`): what curl did before, with
//! tables for humans, `--json` for scripts, confirmations before bulk changes and progress
//! while a change reaches every process. Each command group is a top-level `muttdev`
//! command (`muttdev status`, `muttdev config set …`).
//!
//! Exit codes: 0 all is well; 1 a problem was found (a process down, not ready or not
//! converged) or the command failed; 2 a usage error (clap).
//!
//! # Layout
//!
//! - [`status`]: `muttdev status`: every process, stream, DLQ, the breaker, the SLOs and
//!   retention in one view; non-zero when anything is down or diverged.
//! - [`config`]: `muttdev config list|get|set|history`: hot settings, and waiting until
//!   every process applied a change.
//! - [`dlq`]: `muttdev dlq list|show|replay|purge`: dead letters, filtered by error,
//!   source id and age, bulk actions confirmed and shown with a progress bar.
//! - [`keys`]: `muttdev keys list|create|rotate|revoke`: API keys, a new key shown once.
//! - [`secrets`]: `muttdev secrets status|rotate`: secret rotation steps, shown as every
//!   process applies them.
//! - [`retention`]: `muttdev retention status|run`: the retention policy and runs, and one
//!   pass by `mutt retention`.

pub mod config;
pub mod dlq;
pub mod keys;
pub mod retention;
pub mod secrets;
pub mod status;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

/// The operator commands (flattened into `muttdev`'s top-level commands).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every process (role, consumer, config version, readiness), group lag and pending,
    /// DLQ depths, the breaker, the SLOs and retention; exits 1 when anything is down, not
    /// ready or not converged.
    Status(status::StatusArgs),
    /// Hot settings: list, get, set (and wait until every process applied it), history.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Dead letters: list the DLQs, show, replay or purge letters.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// API keys: list, create, rotate, revoke (admin).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Secret rotation (admin): each secret's phase, and the steps, shown as they
    /// converge.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Data retention: the policy, runs and partitions; one pass with `mutt retention`.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
}

/// Runs one operator command.
pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Status(a) => status::run(a).await,
        Command::Config(c) => config::run(c).await,
        Command::Dlq(c) => dlq::run(c).await,
        Command::Keys(c) => keys::run(c).await,
        Command::Secrets(c) => secrets::run(c).await,
        Command::Retention(c) => retention::run(c).await,
    }
}

/// Parses a duration such as `250ms`, `30s`, `5m`, `2h`, `7d` or `1h30m` (the units of
/// humantime that operators use).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration such as 30s, 5m, 2h or 7d ({e})"))
}

/// A short human age: `42s`, `7m5s`, `3h12m`, `5d4h`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The milliseconds prefix of a stream id (`1700000000000-0`).
pub fn id_ms(id: &str) -> Option<i64> {
    id.split_once('-')?.0.parse().ok()
}

/// Percent-encodes a query value or a path segment (everything but the unreserved
/// characters of RFC 3986).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A cell: a JSON value as text (`-` for null).
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Text cut to `n` characters, with an ellipsis when cut.
pub fn cut(s: &str, n: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        one_line
            .chars()
            .take(n.saturating_sub(1))
            .collect::<String>()
            + "…"
    }
}

/// Asks before a bulk change: `question` on stderr, yes only for `y`/`yes`. Refuses
/// (an error) when stdin is not a terminal, since nobody can answer: `--yes` is the way
/// for scripts.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{question}: refused, stdin is not a terminal to confirm on (pass --yes)");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_humantime() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2days"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "s", "5", "5x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ages_ids_and_encoding() {
        assert_eq!(human_age(42), "42s");
        assert_eq!(human_age(3 * 3600 + 12 * 60 + 5), "3h12m");
        assert_eq!(human_age(5 * 86_400 + 4 * 3600), "5d4h");
        assert_eq!(id_ms("1700000000000-3"), Some(1_700_000_000_000));
        assert_eq!(id_ms("nope"), None);
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("ab\ncd", 10), "ab cd");
    }
}
