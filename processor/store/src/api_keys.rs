//! `api_keys`: named keys with scopes, stored as SHA-256 digests; the key set has a
//! version (bumped by a trigger on every change) that its publication to Redis carries.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use crate::Outcome;
use crate::config_audit::{self, Actor, Change};
use crate::db::Store;
use crate::error::StoreError;

/// A stored API key (without its digest).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// Id.
    pub id: i64,
    /// Name (the "who").
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// By.
    pub created_by: String,
    /// Expiry, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Revocation, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A key that is valid now: what a process needs to verify it.
#[derive(Debug, Clone)]
pub struct LiveKey {
    /// Name.
    pub name: String,
    /// Hex SHA-256 of the key.
    pub key_hash: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
}

impl Store {
    /// Every API key, newest first (digests are never returned).
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, name, scopes, created_at, created_by, expires_at, revoked_at FROM api_keys ORDER BY id DESC",
        )
        .fetch_all(&self.pool())
        .await?)
    }

    /// The keys valid now, with the version of the key set they were read at (one
    /// statement, so both come from one snapshot).
    pub async fn live_api_keys(&self) -> Result<(i64, Vec<LiveKey>), StoreError> {
        let rows = sqlx::query(
            "SELECT v.version, k.name, k.key_hash, k.scopes, k.expires_at
             FROM api_key_version v
             LEFT JOIN api_keys k
               ON k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())",
        )
        .fetch_all(&self.pool())
        .await?;
        let version = match rows.first() {
            Some(r) => r.try_get("version")?,
            None => 0,
        };
        let keys = rows
            .iter()
            .filter(|r| matches!(r.try_get::<Option<String>, _>("name"), Ok(Some(_))))
            .map(|r| {
                Ok(LiveKey {
                    name: r.try_get("name")?,
                    key_hash: r.try_get::<String, _>("key_hash")?.trim().to_string(),
                    scopes: r.try_get("scopes")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((version, keys))
    }

    /// Stores a new key's digest. When `retire_others_at` is given, the name's other live
    /// keys expire then (a rotation's overlap); each such change is audited.
    pub async fn create_api_key(
        &self,
        name: &str,
        key_hash: &str,
        scopes: &[String],
        retire_others_at: Option<OffsetDateTime>,
        actor: &Actor,
    ) -> Result<Outcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_keys WHERE name = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if live > 0 && retire_others_at.is_none() {
            return Ok(Outcome::Conflict);
        }
        if let Some(at) = retire_others_at {
            sqlx::query(
                "UPDATE api_keys SET expires_at = $2
                 WHERE name = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_keys (name, key_hash, scopes, created_by) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(key_hash)
        .bind(scopes)
        .bind(&actor.who)
        .fetch_one(&mut *tx)
        .await?;
        config_audit::commit(
            tx,
            actor,
            &Change {
                operation: if retire_others_at.is_some() {
                    "ROTATE"
                } else {
                    "CREATE"
                },
                table: "api_keys",
                record_id: i32::try_from(id).ok(),
                record_key: Some(name),
                old: None,
                new: Some(json!({
                    "name": name, "scopes": scopes,
                    "previous_keys_expire_at": retire_others_at.map(|t| t.unix_timestamp()),
                })),
            },
        )
        .await?;
        Ok(Outcome::Done)
    }

    /// Revokes every live key of `name`.
    pub async fn revoke_api_key(&self, name: &str, actor: &Actor) -> Result<Outcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE api_keys SET revoked_at = now()
             WHERE name = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(Outcome::NotFound);
        }
        config_audit::commit(
            tx,
            actor,
            &Change {
                operation: "REVOKE",
                table: "api_keys",
                record_id: None,
                record_key: Some(name),
                old: Some(json!({"name": name, "live_keys": n})),
                new: None,
            },
        )
        .await?;
        Ok(Outcome::Done)
    }

    /// Audits (once) the keys that expired since they were last seen live, and returns
    /// their names.
    pub async fn audit_expired_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE api_keys SET revoked_at = expires_at
             WHERE revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= now()
             RETURNING id, name",
        )
        .fetch_all(&mut *tx)
        .await?;
        let system = Actor {
            who: "mutt".into(),
            reason: Some("overlap window ended".into()),
            correlation_id: String::new(),
        };
        for (id, name) in &rows {
            config_audit::write(
                &mut tx,
                &system,
                &Change {
                    operation: "EXPIRE",
                    table: "api_keys",
                    record_id: i32::try_from(*id).ok(),
                    record_key: Some(name),
                    old: Some(json!({"name": name})),
                    new: None,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.into_iter().map(|(_, n)| n).collect())
    }
}
