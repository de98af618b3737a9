//! `alert_rules`: the rules, for the rule engine (with the development hosts and device
//! teams, read in one snapshot) and for the control API (each change audited in its
//! transaction).

use mutt_core::rules::{MatchType, Rule, RuleSet};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use crate::config_audit::{self, Actor, Change};
use crate::db::Store;
use crate::error::StoreError;

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

const RULE_COLUMNS: &str = "id, match_string, trap_oid, syslog_severity, match_type, priority, prod_handling, \
                            dev_handling, team_assignment, is_active, created_at, updated_at";

/// The one mapping of a row of `alert_rules` to a [`Rule`] (a `match_type` the engine
/// does not know is an error, not a silent default; MUTT v2's NULL `is_active` is true).
fn rule(r: &PgRow) -> Result<Rule, StoreError> {
    let match_type: String = r.try_get("match_type")?;
    Ok(Rule {
        id: r.try_get("id")?,
        match_string: r.try_get("match_string")?,
        trap_oid: r.try_get("trap_oid")?,
        syslog_severity: r.try_get("syslog_severity")?,
        match_type: match_type
            .parse::<MatchType>()
            .map_err(|e| StoreError::Invalid(e.to_string()))?,
        priority: r.try_get("priority")?,
        prod_handling: r.try_get("prod_handling")?,
        dev_handling: r.try_get("dev_handling")?,
        team_assignment: r.try_get("team_assignment")?,
        is_active: r.try_get::<Option<bool>, _>("is_active")?.unwrap_or(true),
    })
}

fn rule_row(r: &PgRow) -> Result<RuleRow, StoreError> {
    Ok(RuleRow {
        rule: rule(r)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The audited form of a rule (its fields without the id).
fn rule_json(r: &Rule) -> Value {
    json!({
        "match_string": r.match_string, "trap_oid": r.trap_oid, "syslog_severity": r.syslog_severity,
        "match_type": r.match_type, "priority": r.priority, "prod_handling": r.prod_handling,
        "dev_handling": r.dev_handling, "team_assignment": r.team_assignment, "is_active": r.is_active,
    })
}

impl Store {
    /// Reads the active rules, the development hosts and the device teams in one
    /// snapshot (one REPEATABLE READ transaction, so a concurrent edit is seen whole or
    /// not at all) and compiles them.
    pub async fn load_rule_set(&self) -> Result<RuleSet, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE COALESCE(is_active, true) ORDER BY priority, id"
        );
        let rules = sqlx::query(&sql)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(rule)
            .collect::<Result<Vec<_>, _>>()?;
        let dev_hosts: Vec<String> = sqlx::query_scalar("SELECT hostname FROM development_hosts")
            .fetch_all(&mut *tx)
            .await?;
        let teams: Vec<(String, String)> =
            sqlx::query_as("SELECT hostname, team_assignment FROM device_teams")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(RuleSet::new(rules, dev_hosts, teams))
    }

    /// Every rule, in priority order.
    pub async fn list_rules(&self) -> Result<Vec<RuleRow>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY priority, id");
        sqlx::query(&sql)
            .fetch_all(&self.pool())
            .await?
            .iter()
            .map(rule_row)
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
            .map(rule_row)
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
        let row = bind_rule(sqlx::query(&sql), rule)
            .fetch_one(&mut *tx)
            .await?;
        let stored = rule_row(&row)?;
        config_audit::commit(
            tx,
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
        let old = rule_row(&old)?;
        let sql = format!(
            "UPDATE alert_rules SET match_string = $2, trap_oid = $3, syslog_severity = $4, match_type = $5,
                priority = $6, prod_handling = $7, dev_handling = $8, team_assignment = $9, is_active = $10,
                updated_at = now()
             WHERE id = $1 RETURNING {RULE_COLUMNS}"
        );
        let row = bind_rule(sqlx::query(&sql).bind(id), rule)
            .fetch_one(&mut *tx)
            .await?;
        let new = rule_row(&row)?;
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
        config_audit::commit(
            tx,
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
        let old = rule_row(&row)?;
        config_audit::commit(
            tx,
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
        Ok(Some(old))
    }
}

/// Binds a rule's fields (`match_string` to `is_active`, the order of the INSERT and
/// UPDATE column lists), after what `q` has bound already.
fn bind_rule<'q>(q: PgQuery<'q>, rule: &'q Rule) -> PgQuery<'q> {
    q.bind(&rule.match_string)
        .bind(&rule.trap_oid)
        .bind(rule.syslog_severity)
        .bind(rule.match_type.as_str())
        .bind(rule.priority)
        .bind(&rule.prod_handling)
        .bind(&rule.dev_handling)
        .bind(&rule.team_assignment)
        .bind(rule.is_active)
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;
