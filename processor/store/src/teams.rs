//! `device_teams`: the team of a host's unhandled meta-alerts.

use serde_json::json;

use crate::Outcome;
use crate::config_audit::{self, Actor, Change};
use crate::db::Store;
use crate::error::StoreError;

impl Store {
    /// Device teams, by host.
    pub async fn list_teams(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT hostname, team_assignment FROM device_teams ORDER BY hostname")
                .fetch_all(&self.pool())
                .await?,
        )
    }

    /// Creates (`create` true: Conflict if present) or updates (NotFound if absent) a
    /// host's team.
    pub async fn put_team(
        &self,
        hostname: &str,
        team: &str,
        create: bool,
        actor: &Actor,
    ) -> Result<Outcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let old: Option<(String, String)> = sqlx::query_as(
            "SELECT hostname, team_assignment FROM device_teams WHERE lower(hostname) = lower($1) FOR UPDATE",
        )
        .bind(hostname)
        .fetch_optional(&mut *tx)
        .await?;
        match (&old, create) {
            (Some(_), true) => return Ok(Outcome::Conflict),
            (None, false) => return Ok(Outcome::NotFound),
            _ => {}
        }
        let key = old
            .as_ref()
            .map_or(hostname.to_string(), |(h, _)| h.clone());
        if old.is_some() {
            sqlx::query("UPDATE device_teams SET team_assignment = $2 WHERE hostname = $1")
                .bind(&key)
                .bind(team)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("INSERT INTO device_teams (hostname, team_assignment) VALUES ($1, $2)")
                .bind(&key)
                .bind(team)
                .execute(&mut *tx)
                .await?;
        }
        config_audit::commit(
            tx,
            actor,
            &Change {
                operation: if old.is_some() { "UPDATE" } else { "CREATE" },
                table: "device_teams",
                record_id: None,
                record_key: Some(&key),
                old: old.map(|(h, t)| json!({"hostname": h, "team_assignment": t})),
                new: Some(json!({"hostname": key, "team_assignment": team})),
            },
        )
        .await?;
        Ok(Outcome::Done)
    }

    /// Removes a host's team.
    pub async fn delete_team(&self, hostname: &str, actor: &Actor) -> Result<Outcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let old: Option<(String, String)> =
            sqlx::query_as("DELETE FROM device_teams WHERE lower(hostname) = lower($1) RETURNING hostname, team_assignment")
                .bind(hostname)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((h, t)) = old else {
            return Ok(Outcome::NotFound);
        };
        config_audit::commit(
            tx,
            actor,
            &Change {
                operation: "DELETE",
                table: "device_teams",
                record_id: None,
                record_key: Some(&h),
                old: Some(json!({"hostname": h, "team_assignment": t})),
                new: None,
            },
        )
        .await?;
        Ok(Outcome::Done)
    }
}
