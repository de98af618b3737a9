//! Rules, development hosts and device teams from the command line, and why an event
//! matches the rule it matches (`muttdev rules test`), over the control API v2.
//!
//! Every read command prints a table, or with `--json` the control API's answer as it is
//! (`rules list`: `{"rules": [...]}`; `hosts list`: `{"hosts": [{"hostname"}]}`; `teams
//! list`: `{"teams": [{"hostname", "team_assignment"}]}`; `rules test`: the explanation of
//! `POST /api/v2/rules/test`, see `schemas/control.openapi.yaml`). Rule changes need a
//! `--reason` (it goes to the config audit trail with the key's name).
//!
//! # Layout
//!
//! - [`rules`]: `muttdev rules list|add|edit|rm`.
//! - [`explain`]: `muttdev rules test`: an event (given, a sample, or a file) explained
//!   rule by rule by the control plane.
//! - [`hosts`]: `muttdev hosts list|add|rm` and `muttdev teams list|set|rm`.

pub mod explain;
pub mod hosts;
pub mod rules;

use std::process::ExitCode;

use crate::operate::encode;

/// The routing commands (flattened into `muttdev`'s top-level commands).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Alert rules: list, add, edit, remove, and test an event against them.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Development hosts (their events get a rule's dev_handling): list, add, remove.
    #[command(subcommand)]
    Hosts(hosts::HostsCommand),
    /// Device teams (the team of a host's unhandled meta-alerts): list, set, remove.
    #[command(subcommand)]
    Teams(hosts::TeamsCommand),
}

/// `muttdev rules …`.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// The rules, in the order the alerters try them (`--json`: `{"rules": [...]}`).
    List(rules::ListArgs),
    /// Adds a rule (`--json`: the rule as stored).
    Add(rules::AddArgs),
    /// Changes the fields of a rule that are given (`--json`: the rule as stored).
    Edit(rules::EditArgs),
    /// Removes a rule (`--json`: `{"deleted": rule}`).
    Rm(rules::RmArgs),
    /// Which rule an event matches and why: each rule in order with its outcome, then the
    /// verdict. Nothing is sent or audited (`--json`: the explanation).
    Test(explain::TestArgs),
}

/// Runs one routing command.
pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Rules(RulesCommand::List(a)) => rules::list(a).await,
        Command::Rules(RulesCommand::Add(a)) => rules::add(a).await,
        Command::Rules(RulesCommand::Edit(a)) => rules::edit(a).await,
        Command::Rules(RulesCommand::Rm(a)) => rules::rm(a).await,
        Command::Rules(RulesCommand::Test(a)) => explain::run(a).await,
        Command::Hosts(c) => hosts::run_hosts(c).await,
        Command::Teams(c) => hosts::run_teams(c).await,
    }
}

/// `?reason=…` for a deletion, or nothing.
fn reason_query(reason: Option<&str>) -> String {
    reason.map_or_else(String::new, |r| format!("?reason={}", encode(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_percent_encoded() {
        assert_eq!(
            reason_query(Some("why not/é")),
            "?reason=why%20not%2F%C3%A9"
        );
        assert_eq!(reason_query(None), "");
    }
}
