//! Writing rules, development hosts and device teams (seeding, the control API).

use mutt_core::rules::Rule;

use crate::db::Store;
use crate::error::StoreError;

impl Store {
    /// Inserts a rule (its `id` is ignored) and returns the new id. The rule is validated
    /// first, so the database never holds a rule the engine would skip.
    pub async fn insert_rule(&self, rule: &Rule) -> Result<i32, StoreError> {
        rule.validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO alert_rules (match_string, trap_oid, syslog_severity, match_type, priority,
                                      prod_handling, dev_handling, team_assignment, is_active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&rule.match_string)
        .bind(&rule.trap_oid)
        .bind(rule.syslog_severity)
        .bind(rule.match_type.as_str())
        .bind(rule.priority)
        .bind(&rule.prod_handling)
        .bind(&rule.dev_handling)
        .bind(&rule.team_assignment)
        .bind(rule.is_active)
        .fetch_one(&self.pool())
        .await?;
        Ok(id)
    }

    /// Marks a host as a development host (idempotent).
    pub async fn add_dev_host(&self, hostname: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO development_hosts (hostname) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(hostname)
            .execute(&self.pool())
            .await?;
        Ok(())
    }

    /// Sets the team of a host for unhandled meta-alerts (insert or update).
    pub async fn set_device_team(&self, hostname: &str, team: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO device_teams (hostname, team_assignment) VALUES ($1, $2)
             ON CONFLICT (hostname) DO UPDATE SET team_assignment = EXCLUDED.team_assignment",
        )
        .bind(hostname)
        .bind(team)
        .execute(&self.pool())
        .await?;
        Ok(())
    }
}
