//! Reading what the rule engine needs.

use mutt_core::rules::{MatchType, Rule, RuleSet};
use sqlx::Row;

use crate::db::Store;
use crate::error::StoreError;

impl Store {
    /// Reads the active rules, the development hosts and the device teams in one
    /// snapshot (one REPEATABLE READ transaction, so a concurrent edit is seen whole or
    /// not at all) and compiles them.
    pub async fn load_rule_set(&self) -> Result<RuleSet, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT id, match_string, trap_oid, syslog_severity, match_type, priority,
                    prod_handling, dev_handling, team_assignment, COALESCE(is_active, true) AS is_active
             FROM alert_rules WHERE COALESCE(is_active, true) ORDER BY priority, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut rules = Vec::with_capacity(rows.len());
        for r in rows {
            let match_type: String = r.try_get("match_type")?;
            rules.push(Rule {
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
                is_active: r.try_get("is_active")?,
            });
        }
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
}
