//! Development hosts: their events get a rule's `dev_handling`.

use mutt_bus::control::Announcement;
use mutt_store::Actor;

use super::{Refused, check_host, outcome};
use crate::ControlState;

const WHAT: &str = "development host";

/// Every development host, sorted.
pub async fn list(s: &ControlState) -> Result<Vec<String>, Refused> {
    Ok(s.store.list_dev_hosts().await?)
}

/// Adds a development host; returns it as stored (trimmed).
pub async fn create(s: &ControlState, hostname: &str, actor: Actor) -> Result<String, Refused> {
    check_host(hostname)?;
    let h = hostname.trim();
    outcome(s.store.create_dev_host(h, &actor).await?, WHAT)?;
    s.announce(Announcement::Rules).await;
    Ok(h.to_string())
}

/// Removes a development host.
pub async fn delete(s: &ControlState, hostname: &str, actor: Actor) -> Result<(), Refused> {
    check_host(hostname)?;
    outcome(s.store.delete_dev_host(hostname, &actor).await?, WHAT)?;
    s.announce(Announcement::Rules).await;
    Ok(())
}
