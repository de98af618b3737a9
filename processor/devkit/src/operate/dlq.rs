//! `muttdev dlq list|show|replay|purge`: the dead-letter queues (`alerter`, `forwarder`)
//! over `/api/v2/dlq`.
//!
//! Letters are selected by id (`--ids`), or by `--all` and the filters: `--error TEXT`
//! (the last error contains it), `--source-id ID`, `--older-than DURATION` (judged here,
//! from the millisecond prefix of the letter's id, the time it was dead-lettered) and
//! `--parked` (the parked letters instead of the DLQ). A replay or purge first lists what
//! it selects, asks before acting on more than one letter unless `--yes` (and refuses,
//! exit 1, when stdin is not a terminal to ask on), then sends the ids in chunks of 500,
//! with a progress bar on stderr when there are more than one chunk's worth. Each chunk
//! is one audited change with the `--reason`.
//!
//! `--json`: `list` prints the API's `{dlqs}`; `show` prints `{dlq, parked, count, more,
//! entries}`, where each entry is a dead letter exactly as the API documents it
//! (`DeadLetter` in `schemas/control.openapi.yaml`: `id`, `source_stream`, `source_id`,
//! `group`, `consumer`, `delivery_count`, `last_error`, `first_failure_ms`,
//! `last_failure_ms`, `replays`, `traceparent`, `payload`, `payload_error`,
//! `payload_base64`, and for parked letters `parked_reason`, `parked_at_ms`); `replay` and
//! `purge` print `{dlq, action, parked, selected, done}`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{cell, confirm, cut, encode, human_age, id_ms, parse_duration};
use crate::cli::{Control, ControlArgs, Output, Tone};
use crate::cli::{progress, spinner};

/// Ids per replay or purge request.
pub const CHUNK: usize = 500;
/// Letters per page read.
const PAGE: u32 = 200;

/// `muttdev dlq …`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// The DLQs: depth, the oldest letter's age, parked letters.
    List {
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Dead letters of one DLQ, oldest first, with their provenance.
    Show {
        /// The DLQ: `alerter` or `forwarder`.
        name: String,
        /// Which letters.
        #[command(flatten)]
        filter: Filter,
        /// Most letters shown.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Sends dead letters back to their source stream.
    Replay {
        /// The DLQ: `alerter` or `forwarder`.
        name: String,
        /// Which letters, and why.
        #[command(flatten)]
        selection: Selection,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Deletes dead letters for good.
    Purge {
        /// The DLQ: `alerter` or `forwarder`.
        name: String,
        /// Which letters, and why.
        #[command(flatten)]
        selection: Selection,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Which dead letters (every filter given must hold).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filter {
    /// The parked letters (replayed too often, or refused for good) instead of the DLQ.
    #[arg(long)]
    pub parked: bool,
    /// Only letters whose last error contains this text (case-sensitive).
    #[arg(long = "error", value_name = "TEXT")]
    pub error: Option<String>,
    /// Only letters that came from this source entry (`1700000000000-0`).
    #[arg(long = "source-id", value_name = "ID")]
    pub source_id: Option<String>,
    /// Only letters dead-lettered longer ago than this (`30m`, `2h`, `7d`), judged from
    /// the time in the letter's id.
    #[arg(long = "older-than", value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
}

/// The letters a replay or purge takes, and why.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("which")
        .required(true)
        .multiple(true)
        .args(["ids", "all", "error", "source_id", "older_than"])
))]
pub struct Selection {
    /// These letters (ids, comma-separated or repeated).
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Every letter (that the filters select, if any).
    #[arg(long)]
    pub all: bool,
    /// Filters.
    #[command(flatten)]
    pub filter: Filter,
    /// Why (kept in the config audit).
    #[arg(long)]
    pub reason: String,
    /// Do not ask before acting on more than one letter.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

impl Filter {
    /// Whether letter `e` (as the API shows it) passes every filter, at `now_ms`.
    pub fn keeps(&self, e: &Value, now_ms: i64) -> bool {
        let id = e["id"].as_str().unwrap_or_default();
        self.error
            .as_deref()
            .is_none_or(|t| e["last_error"].as_str().is_some_and(|err| err.contains(t)))
            && self
                .source_id
                .as_deref()
                .is_none_or(|s| e["source_id"].as_str() == Some(s))
            && self.old_enough(id, now_ms)
    }

    /// Whether a letter with this id is older than `--older-than` (true without it).
    pub fn old_enough(&self, id: &str, now_ms: i64) -> bool {
        self.older_than.is_none_or(|d| {
            id_ms(id)
                .is_some_and(|ms| ms <= now_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
    }
}

/// Runs one `dlq` command.
pub async fn run(c: DlqCommand) -> anyhow::Result<ExitCode> {
    match c {
        DlqCommand::List { control } => list(&control).await,
        DlqCommand::Show {
            name,
            filter,
            limit,
            control,
        } => show(&control, &name, &filter, limit).await,
        DlqCommand::Replay {
            name,
            selection,
            control,
        } => act(&control, &name, &selection, Action::Replay).await,
        DlqCommand::Purge {
            name,
            selection,
            control,
        } => act(&control, &name, &selection, Action::Purge).await,
    }
}

async fn list(args: &ControlArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let v = Control::new(args)?.get("/api/v2/dlq").await?;
    if out.json {
        out.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = v["dlqs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let depth = d["depth"].as_i64().unwrap_or(0);
            vec![
                cell(&d["name"]),
                cell(&d["stream"]),
                if depth > 0 {
                    out.paint(&depth.to_string(), Tone::Warn)
                } else {
                    depth.to_string()
                },
                d["oldest_age_seconds"]
                    .as_i64()
                    .map_or_else(|| "-".into(), human_age),
                cell(&d["parked"]),
            ]
        })
        .collect();
    out.table(&["dlq", "stream", "depth", "oldest", "parked"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// The letters of DLQ `name` that `filter` keeps, oldest first, at most `limit`; and
/// whether more would have matched. `read` counts the letters read.
pub async fn scan(
    control: &Control,
    name: &str,
    filter: &Filter,
    limit: usize,
    read: &indicatif::ProgressBar,
) -> anyhow::Result<(Vec<Value>, bool)> {
    let now = mutt_core::now_ms();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/api/v2/dlq/{}?limit={PAGE}", encode(name));
        if filter.parked {
            path.push_str("&parked=true");
        }
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", encode(a)));
        }
        let page = control.get(&path).await?;
        for e in page["entries"].as_array().into_iter().flatten() {
            read.inc(1);
            let id = e["id"].as_str().unwrap_or_default();
            // Oldest first: once one is too young, so is every later one.
            if !filter.old_enough(id, now) {
                return Ok((out, false));
            }
            if filter.keeps(e, now) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(e.clone());
            }
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return Ok((out, false)),
        }
    }
}

async fn show(
    args: &ControlArgs,
    name: &str,
    filter: &Filter,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let control = Control::new(args)?;
    let (entries, more) = scan(
        &control,
        name,
        filter,
        limit,
        &indicatif::ProgressBar::hidden(),
    )
    .await?;
    if out.json {
        out.print_json(&json!({
            "dlq": name, "parked": filter.parked, "count": entries.len(), "more": more,
            "entries": entries,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!(
            "no dead letters{} in {name} match",
            if filter.parked { " parked" } else { "" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = mutt_core::now_ms();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let id = cell(&e["id"]);
            let age = id_ms(&id).map_or_else(|| "-".into(), |ms| human_age((now - ms) / 1000));
            let why = if filter.parked {
                format!(
                    "{} (parked: {})",
                    cell(&e["last_error"]),
                    cell(&e["parked_reason"])
                )
            } else {
                cell(&e["last_error"])
            };
            vec![
                id,
                age,
                cell(&e["source_id"]),
                cell(&e["delivery_count"]),
                cell(&e["replays"]),
                cut(&why, 70),
            ]
        })
        .collect();
    out.table(
        &[
            "id",
            "age",
            "source id",
            "deliveries",
            "replays",
            "last error",
        ],
        &rows,
    );
    if more {
        println!("\nmore letters match: raise --limit to see them");
    }
    Ok(ExitCode::SUCCESS)
}

/// A bulk action on dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Replay,
    Purge,
}

impl Action {
    fn path(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Purge => "purge",
        }
    }
    fn done(self) -> &'static str {
        match self {
            Self::Replay => "replayed",
            Self::Purge => "purged",
        }
    }
}

/// Checks a stream id (`1700000000000-0`).
fn check_id(id: &str) -> anyhow::Result<()> {
    let ok = id
        .split_once('-')
        .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok());
    if !ok {
        bail!("{id:?} is not a dead letter id such as 1700000000000-0");
    }
    Ok(())
}

async fn act(
    args: &ControlArgs,
    name: &str,
    sel: &Selection,
    action: Action,
) -> anyhow::Result<ExitCode> {
    if sel.reason.trim().is_empty() {
        bail!("--reason must say why");
    }
    let out = Output::new(args.json);
    let control = Control::new(args)?;
    let f = &sel.filter;
    let ids: Vec<String> = if sel.ids.is_empty() {
        let reading = spinner("reading dead letters");
        let (letters, _) = scan(&control, name, f, usize::MAX, &reading).await?;
        reading.finish_and_clear();
        letters
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect()
    } else {
        for id in &sel.ids {
            check_id(id)?;
        }
        // The other filters are checked by the API, letter by letter.
        let now = mutt_core::now_ms();
        let mut ids: Vec<String> = sel
            .ids
            .iter()
            .filter(|id| f.old_enough(id, now))
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let shelf = if f.parked { " parked" } else { "" };
    let n = ids.len();
    if n == 0 {
        if out.json {
            out.print_json(&json!({"dlq": name, "action": action.path(), "parked": f.parked, "selected": 0, "done": 0}));
        } else {
            println!(
                "no{shelf} dead letters of {name} match: nothing {}",
                action.done()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let bulk = sel.ids.len() != 1 || n != 1;
    if bulk && !sel.yes {
        let question = format!(
            "{} {n}{shelf} dead letter{} of {name}?",
            match action {
                Action::Replay => "Replay",
                Action::Purge => "Purge",
            },
            if n == 1 { "" } else { "s" }
        );
        if !confirm(&question)? {
            eprintln!("nothing {}", action.done());
            return Ok(ExitCode::from(1));
        }
    }
    let pb = if n > CHUNK {
        progress(n as u64, action.done())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut done: u64 = 0;
    let path = format!("/api/v2/dlq/{}/{}", encode(name), action.path());
    for chunk in ids.chunks(CHUNK) {
        let mut body = json!({"ids": chunk, "reason": sel.reason, "parked": f.parked});
        if let Some(t) = &f.error {
            body["error_contains"] = json!(t);
        }
        if let Some(s) = &f.source_id {
            body["source_id"] = json!(s);
        }
        let v = control
            .change(reqwest::Method::POST, &path, Some(&body))
            .await
            .with_context(|| format!("after {done} of {n} {}", action.done()))?;
        done += v[action.done()].as_u64().unwrap_or(0);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    if out.json {
        out.print_json(&json!({
            "dlq": name, "action": action.path(), "parked": f.parked, "selected": n, "done": done,
        }));
    } else {
        let gone = (n as u64).saturating_sub(done);
        println!(
            "{} {done} of {n}{shelf} dead letters of {name}{}",
            action.done(),
            if gone > 0 {
                format!(" ({gone} not found, or no longer matching)")
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_by_error_source_and_age() {
        let now = 1_700_000_100_000;
        let e = json!({"id": "1700000000000-0", "last_error": "webhook answered 503", "source_id": "1-1"});
        assert!(Filter::default().keeps(&e, now));
        let f = |error: Option<&str>, source: Option<&str>, older: Option<u64>| Filter {
            parked: false,
            error: error.map(str::to_string),
            source_id: source.map(str::to_string),
            older_than: older.map(Duration::from_secs),
        };
        assert!(f(Some("503"), None, None).keeps(&e, now));
        assert!(!f(Some("404"), None, None).keeps(&e, now));
        assert!(f(None, Some("1-1"), None).keeps(&e, now));
        assert!(!f(None, Some("1-2"), None).keeps(&e, now));
        assert!(f(None, None, Some(100)).keeps(&e, now));
        assert!(!f(None, None, Some(101)).keeps(&e, now));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("1700000000000-0").is_ok());
        assert!(check_id("1700000000000").is_err());
        assert!(check_id("a-b").is_err());
    }
}
