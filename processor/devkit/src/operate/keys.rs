//! `muttdev keys list|create|rotate|revoke`: named API keys with scopes (`/api/v2/keys`,
//! admin scope). A created or rotated key is printed once, on stdout (with a warning on
//! stderr that it will not be shown again); MUTT keeps only its digest. `--json`: `list`
//! prints the API's `{keys}`, `create` and `rotate` the API's answer, with the `key`.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};

use super::{cell, encode};
use crate::cli::{Control, ControlArgs, Output, Tone};

/// `muttdev keys …`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Every key (never a key itself): scopes, created, expiry, revocation.
    List {
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Creates a key; prints it once.
    Create {
        /// Its name (who it is: a service, a team); 1–100 letters, digits or `-_.:@`.
        name: String,
        /// Its scopes: ingest, read, write, admin (comma-separated or repeated).
        #[arg(long = "scope", value_delimiter = ',', required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Why (kept in the config audit).
        #[arg(long)]
        reason: Option<String>,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Issues a new key for a name; its previous keys keep working for the overlap.
    Rotate {
        /// The key's name.
        name: String,
        /// How long the previous keys keep working (default 1h, at most 30d).
        #[arg(long)]
        overlap: Option<String>,
        /// Why (kept in the config audit).
        #[arg(long)]
        reason: String,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Revokes every live key of a name, at once.
    Revoke {
        /// The key's name.
        name: String,
        /// Why (kept in the config audit).
        #[arg(long)]
        reason: String,
        /// The control API and output.
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Runs one `keys` command.
pub async fn run(c: KeysCommand) -> anyhow::Result<ExitCode> {
    match c {
        KeysCommand::List { control } => list(&control).await,
        KeysCommand::Create {
            name,
            scopes,
            reason,
            control,
        } => {
            let mut body = json!({"name": name, "scopes": scopes});
            if let Some(r) = reason {
                body["reason"] = json!(r);
            }
            issue(&control, "/api/v2/keys", &body).await
        }
        KeysCommand::Rotate {
            name,
            overlap,
            reason,
            control,
        } => {
            if reason.trim().is_empty() {
                bail!("--reason must say why");
            }
            let mut body = json!({"reason": reason});
            if let Some(o) = overlap {
                body["overlap"] = json!(o);
            }
            issue(
                &control,
                &format!("/api/v2/keys/{}/rotate", encode(&name)),
                &body,
            )
            .await
        }
        KeysCommand::Revoke {
            name,
            reason,
            control,
        } => revoke(&control, &name, &reason).await,
    }
}

/// What a key row's state is at `now`.
fn state(k: &Value, now: time::OffsetDateTime) -> (&'static str, Tone) {
    if !k["revoked_at"].is_null() {
        return ("revoked", Tone::Bad);
    }
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    match k["expires_at"]
        .as_str()
        .map(|t| time::OffsetDateTime::parse(t, rfc3339))
    {
        Some(Ok(t)) if t <= now => ("expired", Tone::Bad),
        Some(_) => ("expiring", Tone::Warn),
        None => ("active", Tone::Good),
    }
}

async fn list(args: &ControlArgs) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let v = Control::new(args)?.get("/api/v2/keys").await?;
    if out.json {
        out.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let now = time::OffsetDateTime::now_utc();
    let rows: Vec<Vec<String>> = v["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let (st, tone) = state(k, now);
            vec![
                cell(&k["name"]),
                cell(&k["scopes"]),
                out.paint(st, tone),
                cell(&k["created_at"]),
                cell(&k["created_by"]),
                cell(&k["expires_at"]),
                cell(&k["revoked_at"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no API keys (besides the bootstrap key, MUTT_API_KEY)");
    } else {
        out.table(
            &[
                "name", "scopes", "state", "created", "by", "expires", "revoked",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn issue(args: &ControlArgs, path: &str, body: &Value) -> anyhow::Result<ExitCode> {
    let out = Output::new(args.json);
    let v = Control::new(args)?
        .change(reqwest::Method::POST, path, Some(body))
        .await?;
    eprintln!(
        "{}",
        out.paint(
            "warning: this key is shown once and is not stored anywhere: keep it now",
            Tone::Warn
        )
    );
    if out.json {
        out.print_json(&v);
    } else {
        println!("name:   {}", cell(&v["name"]));
        println!("scopes: {}", cell(&v["scopes"]));
        if let Some(t) = v["previous_keys_expire_at"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            println!("previous keys stop working at {t}");
        }
        println!("key:    {}", cell(&v["key"]));
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(args: &ControlArgs, name: &str, reason: &str) -> anyhow::Result<ExitCode> {
    if reason.trim().is_empty() {
        bail!("--reason must say why");
    }
    let out = Output::new(args.json);
    let v = Control::new(args)?
        .change(
            reqwest::Method::DELETE,
            &format!("/api/v2/keys/{}?reason={}", encode(name), encode(reason)),
            None,
        )
        .await?;
    if out.json {
        out.print_json(&v);
    } else {
        println!("revoked every live key of {name}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_states() {
        let now = time::macros::datetime!(2026-06-01 00:00 UTC);
        assert_eq!(
            state(&json!({"revoked_at": "2026-01-01T00:00:00Z"}), now).0,
            "revoked"
        );
        assert_eq!(
            state(&json!({"expires_at": "2026-05-01T00:00:00Z"}), now).0,
            "expired"
        );
        assert_eq!(
            state(&json!({"expires_at": "2026-07-01T00:00:00Z"}), now).0,
            "expiring"
        );
        assert_eq!(state(&json!({}), now).0, "active");
    }
}
