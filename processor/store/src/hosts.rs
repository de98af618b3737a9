//! `development_hosts`: hosts whose events get a rule's `dev_handling`.

use serde_json::json;

use crate::Outcome;
use crate::config_audit::{self, Actor, Change};
use crate::db::Store;
use crate::error::StoreError;

impl Store {
    /// Development hosts, sorted.
    pub async fn list_dev_hosts(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT hostname FROM development_hosts ORDER BY hostname")
                .fetch_all(&self.pool())
                .await?,
        )
    }

    /// Adds a development host (Conflict if it is one already, case-insensitively).
    pub async fn create_dev_host(
        &self,
        hostname: &str,
        actor: &Actor,
    ) -> Result<Outcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM development_hosts WHERE lower(hostname) = lower($1))",
        )
        .bind(hostname)
        .fetch_one(&mut *tx)
        .await?;
        if exists {
            return Ok(Outcome::Conflict);
        }
        sqlx::query("INSERT INTO development_hosts (hostname) VALUES ($1)")
            .bind(hostname)
            .execute(&mut *tx)
            .await?;
        config_audit::commit(
            tx,
            actor,
            &Change {
                operation: "CREATE",
                table: "development_hosts",
                record_id: None,
                record_key: Some(hostname),
                old: None,
                new: Some(json!({"hostname": hostname})),
            },
        )
        .await?;
        Ok(Outcome::Done)
    }

    /// Removes a development host (case-insensitively).
    pub async fn delete_dev_host(
        &self,
        hostname: &str,
        actor: &Actor,
    ) -> Result<Outcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let gone: Option<String> = sqlx::query_scalar(
            "DELETE FROM development_hosts WHERE lower(hostname) = lower($1) RETURNING hostname",
        )
        .bind(hostname)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(gone) = gone else {
            return Ok(Outcome::NotFound);
        };
        config_audit::commit(
            tx,
            actor,
            &Change {
                operation: "DELETE",
                table: "development_hosts",
                record_id: None,
                record_key: Some(&gone),
                old: Some(json!({"hostname": gone})),
                new: None,
            },
        )
        .await?;
        Ok(Outcome::Done)
    }
}
