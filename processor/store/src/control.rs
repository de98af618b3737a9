//! What the control plane writes and reads: rules, hosts and teams, hot-setting snapshots,
//! API keys, and the config audit trail. Every mutation and its audit row are written in
//! one transaction: there is no change without its "who, what, when, why".

use mutt_core::rules::{MatchType, Rule};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use time::OffsetDateTime;

use crate::db::Store;
use crate::error::StoreError;

/// Who changes something, why, and under which request.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The API key's name (never the key).
    pub who: String,
    /// The reason given.
    pub reason: Option<String>,
    /// The request's correlation id.
    pub correlation_id: String,
}

/// A config audit row to write.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// CREATE, UPDATE, DELETE, REPLAY, PURGE, ROTATE, REVOKE, EXPIRE.
    pub operation: &'static str,
    /// What kind of record (`alert_rules`, `dynamic_config`, `dlq`, …).
    pub table: &'static str,
    /// Its numeric id, if it has one.
    pub record_id: Option<i32>,
    /// Its key, if it is named (a setting, a host, a DLQ, a key name).
    pub record_key: Option<&'a str>,
    /// Before.
    pub old: Option<Value>,
    /// After.
    pub new: Option<Value>,
}

/// A stored rule with its timestamps.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRow {
    /// The rule.
    #[serde(flatten)]
    pub rule: Rule,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A conflict or a missing record, for the API to answer 409 / 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// The record does not exist.
    NotFound,
    /// It exists already.
    Conflict,
}

/// One row of the config audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLogRow {
    /// Row id.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
    /// Who.
    pub changed_by: String,
    /// What kind of change.
    pub operation: String,
    /// What kind of record.
    pub table_name: String,
    /// Its id.
    pub record_id: Option<i32>,
    /// Its key.
    pub record_key: Option<String>,
    /// Before.
    pub old_values: Option<Value>,
    /// After.
    pub new_values: Option<Value>,
    /// Why.
    pub reason: Option<String>,
    /// The request.
    pub correlation_id: Option<String>,
}

/// Filters of the audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Part of the actor's name (case-insensitive).
    pub changed_by: Option<String>,
    /// Exact operation.
    pub operation: Option<String>,
    /// Exact table.
    pub table_name: Option<String>,
    /// Exact record id.
    pub record_id: Option<i32>,
    /// Exact record key.
    pub record_key: Option<String>,
    /// From (inclusive).
    pub start: Option<OffsetDateTime>,
    /// To (exclusive).
    pub end: Option<OffsetDateTime>,
}

/// One event audit row.
#[derive(Debug, Clone, Serialize)]
pub struct EventAuditRow {
    /// Row id.
    pub id: i64,
    /// The event id.
    pub event_id: Option<String>,
    /// The event's time.
    #[serde(with = "time::serde::rfc3339")]
    pub event_timestamp: OffsetDateTime,
    /// Host.
    pub hostname: String,
    /// Rule.
    pub matched_rule_id: Option<i32>,
    /// Handling.
    pub handling_decision: Option<String>,
    /// Forwarded.
    pub forwarded_to_moog: Option<bool>,
    /// Team.
    pub team_assignment: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// The event.
    pub raw_message: Option<Value>,
}

/// Filters of the event audit query.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Exact host.
    pub hostname: Option<String>,
    /// Exact rule.
    pub rule_id: Option<i32>,
    /// Exact event id.
    pub event_id: Option<String>,
    /// From (inclusive).
    pub start: Option<OffsetDateTime>,
    /// To (exclusive).
    pub end: Option<OffsetDateTime>,
}

/// A page of results.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Page number, from 1.
    pub page: u32,
    /// Rows per page.
    pub limit: u32,
    /// Rows in all.
    pub total: i64,
}

/// A stored API key (without its digest).
#[derive(Debug, Clone, Serialize)]
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

fn rule_json(r: &Rule) -> Value {
    json!({
        "match_string": r.match_string, "trap_oid": r.trap_oid, "syslog_severity": r.syslog_severity,
        "match_type": r.match_type, "priority": r.priority, "prod_handling": r.prod_handling,
        "dev_handling": r.dev_handling, "team_assignment": r.team_assignment, "is_active": r.is_active,
    })
}

async fn audit(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    c: &Change<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO config_audit_log
            (changed_by, operation, table_name, record_id, record_key, old_values, new_values, reason, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&actor.who)
    .bind(c.operation)
    .bind(c.table)
    .bind(c.record_id)
    .bind(c.record_key)
    .bind(&c.old)
    .bind(&c.new)
    .bind(&actor.reason)
    .bind(&actor.correlation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn row_to_rule(r: &sqlx::postgres::PgRow) -> Result<RuleRow, StoreError> {
    let mt: String = r.try_get("match_type")?;
    Ok(RuleRow {
        rule: Rule {
            id: r.try_get("id")?,
            match_string: r.try_get("match_string")?,
            trap_oid: r.try_get("trap_oid")?,
            syslog_severity: r.try_get("syslog_severity")?,
            match_type: mt
                .parse::<MatchType>()
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
            priority: r.try_get("priority")?,
            prod_handling: r.try_get("prod_handling")?,
            dev_handling: r.try_get("dev_handling")?,
            team_assignment: r.try_get("team_assignment")?,
            is_active: r.try_get::<Option<bool>, _>("is_active")?.unwrap_or(true),
        },
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const RULE_COLUMNS: &str = "id, match_string, trap_oid, syslog_severity, match_type, priority, prod_handling, \
                            dev_handling, team_assignment, is_active, created_at, updated_at";

impl Store {
    /// Writes one config audit row on its own (changes that live outside PostgreSQL: DLQ
    /// replays and purges, secret rotation steps).
    pub async fn record_change(
        &self,
        actor: &Actor,
        change: &Change<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        audit(&mut tx, actor, change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every rule, in priority order.
    pub async fn list_rules(&self) -> Result<Vec<RuleRow>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY priority, id");
        sqlx::query(&sql)
            .fetch_all(&self.pool())
            .await?
            .iter()
            .map(row_to_rule)
            .collect()
    }

    /// One rule.
    pub async fn get_rule(&self, id: i32) -> Result<Option<RuleRow>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool())
            .await?
            .as_ref()
            .map(row_to_rule)
            .transpose()
    }

    /// Creates a rule (validated) and audits it; returns it as stored.
    pub async fn create_rule(&self, rule: &Rule, actor: &Actor) -> Result<RuleRow, StoreError> {
        rule.validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut tx = self.pool().begin().await?;
        let sql = format!(
            "INSERT INTO alert_rules (match_string, trap_oid, syslog_severity, match_type, priority,
                                      prod_handling, dev_handling, team_assignment, is_active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {RULE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&rule.match_string)
            .bind(&rule.trap_oid)
            .bind(rule.syslog_severity)
            .bind(rule.match_type.as_str())
            .bind(rule.priority)
            .bind(&rule.prod_handling)
            .bind(&rule.dev_handling)
            .bind(&rule.team_assignment)
            .bind(rule.is_active)
            .fetch_one(&mut *tx)
            .await?;
        let stored = row_to_rule(&row)?;
        audit(
            &mut tx,
            actor,
            &Change {
                operation: "CREATE",
                table: "alert_rules",
                record_id: Some(stored.rule.id),
                record_key: None,
                old: None,
                new: Some(rule_json(&stored.rule)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Replaces a rule with `rule` (validated) and audits the fields that changed.
    /// Returns None when there is no such rule.
    pub async fn update_rule(
        &self,
        id: i32,
        rule: &Rule,
        actor: &Actor,
    ) -> Result<Option<RuleRow>, StoreError> {
        rule.validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut tx = self.pool().begin().await?;
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1 FOR UPDATE");
        let Some(old) = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let old = row_to_rule(&old)?;
        let sql = format!(
            "UPDATE alert_rules SET match_string = $2, trap_oid = $3, syslog_severity = $4, match_type = $5,
                priority = $6, prod_handling = $7, dev_handling = $8, team_assignment = $9, is_active = $10,
                updated_at = now()
             WHERE id = $1 RETURNING {RULE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(&rule.match_string)
            .bind(&rule.trap_oid)
            .bind(rule.syslog_severity)
            .bind(rule.match_type.as_str())
            .bind(rule.priority)
            .bind(&rule.prod_handling)
            .bind(&rule.dev_handling)
            .bind(&rule.team_assignment)
            .bind(rule.is_active)
            .fetch_one(&mut *tx)
            .await?;
        let new = row_to_rule(&row)?;
        // Only what changed, old and new side by side.
        let (o, n) = (rule_json(&old.rule), rule_json(&new.rule));
        let (mut old_changed, mut new_changed) = (serde_json::Map::new(), serde_json::Map::new());
        if let (Value::Object(o), Value::Object(n)) = (o, n) {
            for (k, v) in n {
                if o.get(&k) != Some(&v) {
                    old_changed.insert(k.clone(), o.get(&k).cloned().unwrap_or(Value::Null));
                    new_changed.insert(k, v);
                }
            }
        }
        audit(
            &mut tx,
            actor,
            &Change {
                operation: "UPDATE",
                table: "alert_rules",
                record_id: Some(id),
                record_key: None,
                old: Some(Value::Object(old_changed)),
                new: Some(Value::Object(new_changed)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(new))
    }

    /// Deletes a rule and audits it with its last content. Audit rows that name the rule
    /// keep its id.
    pub async fn delete_rule(&self, id: i32, actor: &Actor) -> Result<Option<RuleRow>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let sql = format!("DELETE FROM alert_rules WHERE id = $1 RETURNING {RULE_COLUMNS}");
        let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let old = row_to_rule(&row)?;
        audit(
            &mut tx,
            actor,
            &Change {
                operation: "DELETE",
                table: "alert_rules",
                record_id: Some(id),
                record_key: None,
                old: Some(rule_json(&old.rule)),
                new: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(old))
    }

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
        audit(
            &mut tx,
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
        tx.commit().await?;
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
        audit(
            &mut tx,
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
        tx.commit().await?;
        Ok(Outcome::Done)
    }

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
        audit(
            &mut tx,
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
        tx.commit().await?;
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
        audit(
            &mut tx,
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
        tx.commit().await?;
        Ok(Outcome::Done)
    }

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
        audit(
            &mut tx,
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
        tx.commit().await?;
        Ok((version, values))
    }

    /// The config audit trail, newest first.
    pub async fn query_audit(
        &self,
        f: &AuditFilter,
        page: u32,
        limit: u32,
    ) -> Result<Page<AuditLogRow>, StoreError> {
        let filters = |q: &mut QueryBuilder<'_, Postgres>| {
            q.push(" WHERE true");
            if let Some(v) = &f.changed_by {
                q.push(" AND changed_by ILIKE ")
                    .push_bind(format!("%{}%", v.replace('%', "\\%").replace('_', "\\_")));
            }
            if let Some(v) = &f.operation {
                q.push(" AND operation = ").push_bind(v.clone());
            }
            if let Some(v) = &f.table_name {
                q.push(" AND table_name = ").push_bind(v.clone());
            }
            if let Some(v) = f.record_id {
                q.push(" AND record_id = ").push_bind(v);
            }
            if let Some(v) = &f.record_key {
                q.push(" AND record_key = ").push_bind(v.clone());
            }
            if let Some(v) = f.start {
                q.push(" AND changed_at >= ").push_bind(v);
            }
            if let Some(v) = f.end {
                q.push(" AND changed_at < ").push_bind(v);
            }
        };
        let mut count = QueryBuilder::new("SELECT count(*) FROM config_audit_log");
        filters(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool()).await?;
        let mut q = QueryBuilder::new(
            "SELECT id, changed_at, changed_by, operation, table_name, record_id, record_key, old_values, new_values,
                    reason, correlation_id FROM config_audit_log",
        );
        filters(&mut q);
        q.push(" ORDER BY changed_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::from(page.saturating_sub(1)) * i64::from(limit));
        let rows = q.build().fetch_all(&self.pool()).await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(AuditLogRow {
                    id: r.try_get("id")?,
                    changed_at: r.try_get("changed_at")?,
                    changed_by: r.try_get("changed_by")?,
                    operation: r.try_get("operation")?,
                    table_name: r.try_get("table_name")?,
                    record_id: r.try_get("record_id")?,
                    record_key: r.try_get("record_key")?,
                    old_values: r.try_get("old_values")?,
                    new_values: r.try_get("new_values")?,
                    reason: r.try_get("reason")?,
                    correlation_id: r.try_get("correlation_id")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Page {
            items,
            page,
            limit,
            total,
        })
    }

    /// The event audit log, newest event first.
    pub async fn query_events(
        &self,
        f: &EventFilter,
        page: u32,
        limit: u32,
    ) -> Result<Page<EventAuditRow>, StoreError> {
        let filters = |q: &mut QueryBuilder<'_, Postgres>| {
            q.push(" WHERE true");
            if let Some(v) = &f.hostname {
                q.push(" AND hostname = ").push_bind(v.clone());
            }
            if let Some(v) = f.rule_id {
                q.push(" AND matched_rule_id = ").push_bind(v);
            }
            if let Some(v) = &f.event_id {
                q.push(" AND event_id = ").push_bind(v.clone());
            }
            if let Some(v) = f.start {
                q.push(" AND event_timestamp >= ").push_bind(v);
            }
            if let Some(v) = f.end {
                q.push(" AND event_timestamp < ").push_bind(v);
            }
        };
        let mut count = QueryBuilder::new("SELECT count(*) FROM event_audit_log");
        filters(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool()).await?;
        let mut q = QueryBuilder::new(
            "SELECT id, event_id, event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog,
                    team_assignment, correlation_id, raw_message FROM event_audit_log",
        );
        filters(&mut q);
        q.push(" ORDER BY event_timestamp DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::from(page.saturating_sub(1)) * i64::from(limit));
        let rows = q.build().fetch_all(&self.pool()).await?;
        let items = rows
            .iter()
            .map(|r| {
                let raw: Option<String> = r.try_get("raw_message")?;
                Ok(EventAuditRow {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    event_timestamp: r.try_get("event_timestamp")?,
                    hostname: r.try_get("hostname")?,
                    matched_rule_id: r.try_get("matched_rule_id")?,
                    handling_decision: r.try_get("handling_decision")?,
                    forwarded_to_moog: r.try_get("forwarded_to_moog")?,
                    team_assignment: r.try_get("team_assignment")?,
                    correlation_id: r.try_get("correlation_id")?,
                    // v2 rows may hold text that is not JSON: keep it as a string.
                    raw_message: raw.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Page {
            items,
            page,
            limit,
            total,
        })
    }

    /// Every API key, newest first (digests are never returned).
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, scopes, created_at, created_by, expires_at, revoked_at FROM api_keys ORDER BY id DESC",
        )
        .fetch_all(&self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    scopes: r.try_get("scopes")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(Into::into)
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
        audit(
            &mut tx,
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
        tx.commit().await?;
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
        audit(
            &mut tx,
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
        tx.commit().await?;
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
            audit(
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
