//! `muttdev rules list|add|edit|rm`: the rules of `GET/POST /api/v2/rules` and
//! `PUT/DELETE /api/v2/rules/{id}`.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::reason_query;
use crate::cli::{Control, ControlArgs, Output, Tone};
use crate::operate::cell;

/// `muttdev rules list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    control: ControlArgs,
}

/// `muttdev rules add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// How the rule matches: contains, regex or oid_prefix.
    #[arg(long = "type", value_name = "TYPE", default_value = "contains")]
    match_type: String,
    /// Text (contains, case-insensitive) or regex to look for in the message.
    #[arg(long = "match", value_name = "TEXT")]
    match_string: Option<String>,
    /// The trap OID of an oid_prefix rule (it matches that OID and those under it).
    #[arg(long = "oid", value_name = "OID")]
    trap_oid: Option<String>,
    /// Only events of exactly this syslog severity (0–7 or a name: critical, error, …).
    #[arg(long, value_name = "SEVERITY")]
    severity: Option<String>,
    /// Lower is tried first (ties: the lower id).
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    priority: i32,
    /// Handling for production hosts: Page_and_ticket, Page_only, Ticket_only (forwarded)
    /// or anything else (audited only, e.g. Ignore).
    #[arg(long = "prod", value_name = "HANDLING")]
    prod_handling: String,
    /// Handling for development hosts.
    #[arg(long = "dev", value_name = "HANDLING", default_value = "Ignore")]
    dev_handling: String,
    /// The team its alerts go to.
    #[arg(long, value_name = "TEAM")]
    team: String,
    /// Add it inactive (never tried until activated).
    #[arg(long)]
    inactive: bool,
    /// Why (kept in the config audit trail).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    control: ControlArgs,
}

/// `muttdev rules edit`.
#[derive(Debug, clap::Args)]
pub struct EditArgs {
    /// The rule's id.
    id: u32,
    /// contains, regex or oid_prefix.
    #[arg(long = "type", value_name = "TYPE")]
    match_type: Option<String>,
    /// New text or regex.
    #[arg(long = "match", value_name = "TEXT", conflicts_with = "clear_match")]
    match_string: Option<String>,
    /// Removes the text or regex.
    #[arg(long)]
    clear_match: bool,
    /// New trap OID.
    #[arg(long = "oid", value_name = "OID", conflicts_with = "clear_oid")]
    trap_oid: Option<String>,
    /// Removes the trap OID.
    #[arg(long)]
    clear_oid: bool,
    /// New severity filter (0–7 or a name).
    #[arg(long, value_name = "SEVERITY", conflicts_with = "clear_severity")]
    severity: Option<String>,
    /// Removes the severity filter.
    #[arg(long)]
    clear_severity: bool,
    /// New priority.
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// New handling for production hosts.
    #[arg(long = "prod", value_name = "HANDLING")]
    prod_handling: Option<String>,
    /// New handling for development hosts.
    #[arg(long = "dev", value_name = "HANDLING")]
    dev_handling: Option<String>,
    /// New team.
    #[arg(long, value_name = "TEAM")]
    team: Option<String>,
    /// Activates the rule.
    #[arg(long, conflicts_with = "deactivate")]
    activate: bool,
    /// Deactivates the rule.
    #[arg(long)]
    deactivate: bool,
    /// Why (kept in the config audit trail).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    control: ControlArgs,
}

/// `muttdev rules rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The rule's id.
    id: u32,
    /// Why (kept in the config audit trail).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    control: ControlArgs,
}

/// A severity as the API takes it: a number when it is one, else the name.
fn severity_value(s: &str) -> Value {
    s.trim()
        .parse::<i64>()
        .map_or_else(|_| json!(s.trim()), |n| json!(n))
}

/// The table of rules (the API's objects).
pub fn rules_table(out: &Output, rules: &[Value]) {
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            let active = if r["is_active"].as_bool().unwrap_or(true) {
                out.paint("yes", Tone::Good)
            } else {
                out.paint("no", Tone::Warn)
            };
            vec![
                cell(&r["id"]),
                cell(&r["priority"]),
                active,
                cell(&r["match_type"]),
                cell(&r["match_string"]),
                cell(&r["trap_oid"]),
                cell(&r["syslog_severity"]),
                cell(&r["prod_handling"]),
                cell(&r["dev_handling"]),
                cell(&r["team_assignment"]),
            ]
        })
        .collect();
    out.table(
        &[
            "id", "priority", "active", "type", "match", "oid", "severity", "prod", "dev", "team",
        ],
        &rows,
    );
}

/// `muttdev rules list`.
pub async fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(a.control.json);
    let body = Control::new(&a.control)?.get("/api/v2/rules").await?;
    if out.json {
        out.print_json(&body);
    } else {
        let rules = body["rules"].as_array().cloned().unwrap_or_default();
        if rules.is_empty() {
            println!("no rules: every event is unhandled");
        } else {
            rules_table(&out, &rules);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a changed rule: its JSON, or a line and its row.
fn show_changed(out: &Output, what: &str, body: &Value, rule: &Value) {
    if out.json {
        out.print_json(body);
    } else {
        println!("rule {} {what}", cell(&rule["id"]));
        rules_table(out, std::slice::from_ref(rule));
    }
}

/// `muttdev rules add`.
pub async fn add(a: AddArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(a.control.json);
    let mut body = Map::new();
    body.insert("match_type".into(), json!(a.match_type));
    if let Some(s) = &a.match_string {
        body.insert("match_string".into(), json!(s));
    }
    if let Some(o) = &a.trap_oid {
        body.insert("trap_oid".into(), json!(o));
    }
    if let Some(s) = &a.severity {
        body.insert("syslog_severity".into(), severity_value(s));
    }
    body.insert("priority".into(), json!(a.priority));
    body.insert("prod_handling".into(), json!(a.prod_handling));
    body.insert("dev_handling".into(), json!(a.dev_handling));
    body.insert("team_assignment".into(), json!(a.team));
    body.insert("is_active".into(), json!(!a.inactive));
    body.insert("reason".into(), json!(a.reason));
    let stored = Control::new(&a.control)?
        .change(Method::POST, "/api/v2/rules", Some(&Value::Object(body)))
        .await?;
    show_changed(&out, "created", &stored, &stored);
    Ok(ExitCode::SUCCESS)
}

/// The body of an edit: only what is given (`null` to clear).
fn edit_body(a: &EditArgs) -> Map<String, Value> {
    let mut body = Map::new();
    let mut put = |k: &str, v: Value| {
        body.insert(k.to_string(), v);
    };
    if let Some(v) = &a.match_type {
        put("match_type", json!(v));
    }
    if let Some(v) = &a.match_string {
        put("match_string", json!(v));
    } else if a.clear_match {
        put("match_string", Value::Null);
    }
    if let Some(v) = &a.trap_oid {
        put("trap_oid", json!(v));
    } else if a.clear_oid {
        put("trap_oid", Value::Null);
    }
    if let Some(v) = &a.severity {
        put("syslog_severity", severity_value(v));
    } else if a.clear_severity {
        put("syslog_severity", Value::Null);
    }
    if let Some(v) = a.priority {
        put("priority", json!(v));
    }
    if let Some(v) = &a.prod_handling {
        put("prod_handling", json!(v));
    }
    if let Some(v) = &a.dev_handling {
        put("dev_handling", json!(v));
    }
    if let Some(v) = &a.team {
        put("team_assignment", json!(v));
    }
    if a.activate {
        put("is_active", json!(true));
    } else if a.deactivate {
        put("is_active", json!(false));
    }
    body
}

/// `muttdev rules edit`.
pub async fn edit(a: EditArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(a.control.json);
    let mut body = edit_body(&a);
    if body.is_empty() {
        anyhow::bail!("nothing to change: give at least one field (see --help)");
    }
    body.insert("reason".into(), json!(a.reason));
    let stored = Control::new(&a.control)?
        .change(
            Method::PUT,
            &format!("/api/v2/rules/{}", a.id),
            Some(&Value::Object(body)),
        )
        .await?;
    show_changed(&out, "changed", &stored, &stored);
    Ok(ExitCode::SUCCESS)
}

/// `muttdev rules rm`.
pub async fn rm(a: RmArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(a.control.json);
    let answer = Control::new(&a.control)?
        .change(
            Method::DELETE,
            &format!("/api/v2/rules/{}{}", a.id, reason_query(Some(&a.reason))),
            None,
        )
        .await?;
    show_changed(&out, "deleted", &answer, &answer["deleted"]);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        edit: EditArgs,
    }

    #[test]
    fn an_edit_sends_only_what_is_given() {
        let t = T::parse_from([
            "t",
            "7",
            "--match",
            "link",
            "--clear-severity",
            "--priority",
            "-3",
            "--deactivate",
            "--reason",
            "r",
        ]);
        assert_eq!(
            Value::Object(edit_body(&t.edit)),
            json!({"match_string": "link", "syslog_severity": null, "priority": -3, "is_active": false})
        );
        assert!(
            T::try_parse_from(["t", "7", "--match", "x", "--clear-match", "--reason", "r"])
                .is_err()
        );
        assert_eq!(severity_value(" 3 "), json!(3));
        assert_eq!(severity_value("crit"), json!("crit"));
    }
}
