//! Device teams: the team a host's unhandled meta-alerts go to.

use mutt_bus::control::Announcement;
use mutt_store::Actor;

use super::{Refused, check_host, outcome};
use crate::ControlState;

const WHAT: &str = "device team";

fn check_team(t: &str) -> Result<(), Refused> {
    if t.trim().is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
        return Err(Refused::invalid(
            "team_assignment",
            "1–100 characters without control characters",
        ));
    }
    Ok(())
}

/// Every (host, team), by host.
pub async fn list(s: &ControlState) -> Result<Vec<(String, String)>, Refused> {
    Ok(s.store.list_teams().await?)
}

/// Sets the team of a host: `create` when it must be new (Conflict otherwise), an update
/// when it must exist (NotFound otherwise). Returns the team as stored (trimmed).
pub async fn put(
    s: &ControlState,
    hostname: &str,
    team: &str,
    create: bool,
    actor: Actor,
) -> Result<String, Refused> {
    check_host(hostname)?;
    check_team(team)?;
    let host = if create { hostname.trim() } else { hostname };
    let t = team.trim();
    outcome(s.store.put_team(host, t, create, &actor).await?, WHAT)?;
    s.announce(Announcement::Rules).await;
    Ok(t.to_string())
}

/// Removes a host's team.
pub async fn delete(s: &ControlState, hostname: &str, actor: Actor) -> Result<(), Refused> {
    check_host(hostname)?;
    outcome(s.store.delete_team(hostname, &actor).await?, WHAT)?;
    s.announce(Announcement::Rules).await;
    Ok(())
}
