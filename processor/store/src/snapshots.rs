//! `config_snapshots`: every version of the hot settings' overrides; the newest is the
//! configuration in force.

use serde_json::{Value, json};

use crate::config_audit::{self, Actor, Change};
use crate::db::Store;
use crate::error::StoreError;

impl Store {
    /// The newest hot-setting snapshot: (version, overrides).
    pub async fn latest_snapshot(&self) -> Result<Option<(i64, Value)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT version, \"values\" FROM config_snapshots ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.pool())
        .await?)
    }

    /// Stores a new snapshot in which `key` is `value` (validated by the caller), audited
    /// with the old and new value. Serialized: concurrent changes each get their version,
    /// none is lost. Returns the new version.
    pub async fn set_hot_value(
        &self,
        key: &str,
        value: &str,
        default: &str,
        actor: &Actor,
    ) -> Result<(i64, Value), StoreError> {
        let mut tx = self.pool().begin().await?;
        // One writer at a time: the snapshot is read, changed and written whole.
        sqlx::query("SELECT pg_advisory_xact_lock(727274)")
            .execute(&mut *tx)
            .await?;
        let current: Option<Value> = sqlx::query_scalar(
            "SELECT \"values\" FROM config_snapshots ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let mut values = match current {
            Some(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        let old = values
            .insert(key.to_string(), Value::String(value.to_string()))
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| default.to_string());
        let values = Value::Object(values);
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO config_snapshots (\"values\", changed_by, reason) VALUES ($1, $2, $3) RETURNING version",
        )
        .bind(&values)
        .bind(&actor.who)
        .bind(actor.reason.as_deref().unwrap_or(""))
        .fetch_one(&mut *tx)
        .await?;
        config_audit::commit(
            tx,
            actor,
            &Change {
                operation: "UPDATE",
                table: "dynamic_config",
                record_id: i32::try_from(version).ok(),
                record_key: Some(key),
                old: Some(json!({"key": key, "value": old})),
                new: Some(json!({"key": key, "value": value, "version": version})),
            },
        )
        .await?;
        Ok((version, values))
    }
}
