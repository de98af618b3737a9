//! What `muttdev doctor` asks of the database: the server's version, which of this
//! build's migrations are applied, and whether the application role holds the grants of
//! `sql/0003_roles.sql` (and the later migrations), and no more on the audit tables.

use sqlx::Row;

use crate::db::{MIGRATOR, Store};
use crate::error::StoreError;

/// The application role every MUTT process should connect as a member of.
pub const APP_ROLE: &str = "mutt_app";

/// What the migrations grant [`APP_ROLE`]: (kind, object, privilege).
const APP_GRANTS: &[Grant] = &[
    Grant::new("database", "", "CONNECT"),
    Grant::new("schema", "public", "USAGE"),
    Grant::new("table", "alert_rules", "SELECT"),
    Grant::new("table", "alert_rules", "INSERT"),
    Grant::new("table", "alert_rules", "UPDATE"),
    Grant::new("table", "alert_rules", "DELETE"),
    Grant::new("table", "development_hosts", "SELECT"),
    Grant::new("table", "development_hosts", "INSERT"),
    Grant::new("table", "development_hosts", "UPDATE"),
    Grant::new("table", "development_hosts", "DELETE"),
    Grant::new("table", "device_teams", "SELECT"),
    Grant::new("table", "device_teams", "INSERT"),
    Grant::new("table", "device_teams", "UPDATE"),
    Grant::new("table", "device_teams", "DELETE"),
    Grant::new("table", "config_snapshots", "SELECT"),
    Grant::new("table", "config_snapshots", "INSERT"),
    Grant::new("table", "config_snapshots", "UPDATE"),
    Grant::new("table", "config_snapshots", "DELETE"),
    Grant::new("table", "api_keys", "SELECT"),
    Grant::new("table", "api_keys", "INSERT"),
    Grant::new("table", "api_keys", "UPDATE"),
    Grant::new("table", "api_keys", "DELETE"),
    Grant::new("table", "config_audit_log", "SELECT"),
    Grant::new("table", "config_audit_log", "INSERT"),
    Grant::new("table", "event_audit_log", "SELECT"),
    Grant::new("table", "event_audit_log", "INSERT"),
    Grant::new("table", "api_key_version", "SELECT"),
    Grant::new("table", "api_key_version", "UPDATE"),
    Grant::new("table", "retention_runs", "SELECT"),
    Grant::new("table", "event_audit_log_archive", "SELECT"),
    Grant::new("sequence", "alert_rules_id_seq", "USAGE"),
    Grant::new("sequence", "event_audit_log_id_seq", "USAGE"),
    Grant::new("sequence", "config_audit_log_id_seq", "USAGE"),
    Grant::new("sequence", "config_snapshots_version_seq", "USAGE"),
    Grant::new("sequence", "api_keys_id_seq", "USAGE"),
    Grant::new(
        "function",
        "mutt_ensure_event_audit_partition(date)",
        "EXECUTE",
    ),
];

/// What [`APP_ROLE`] must not have: the audit tables are append-only for the application.
const APP_FORBIDDEN: &[Grant] = &[
    Grant::new("table", "config_audit_log", "UPDATE"),
    Grant::new("table", "config_audit_log", "DELETE"),
    Grant::new("table", "config_audit_log", "TRUNCATE"),
    Grant::new("table", "event_audit_log", "UPDATE"),
    Grant::new("table", "event_audit_log", "DELETE"),
    Grant::new("table", "event_audit_log", "TRUNCATE"),
];

/// The PostgreSQL server's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// `server_version`, `15.4 (Debian …)`.
    pub text: String,
    /// `server_version_num`, 150004.
    pub num: i32,
}

impl ServerVersion {
    /// The major version (15).
    pub fn major(&self) -> i32 {
        self.num / 10_000
    }
}

/// This build's migrations against those recorded in `_sqlx_migrations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Migrations this build has.
    pub expected: usize,
    /// Of those, applied successfully with the same checksum.
    pub applied: usize,
    /// Not applied: (version, description).
    pub missing: Vec<(i64, String)>,
    /// Recorded as failed (a migration that stopped half way).
    pub failed: Vec<i64>,
    /// Applied, but the file changed since (checksum differs).
    pub changed: Vec<i64>,
    /// Applied, but unknown to this build (a newer MUTT migrated this database).
    pub unknown: Vec<i64>,
}

impl MigrationStatus {
    /// Whether the database is exactly at this build's migrations.
    pub fn is_current(&self) -> bool {
        self.missing.is_empty()
            && self.failed.is_empty()
            && self.changed.is_empty()
            && self.unknown.is_empty()
    }
}

/// One privilege on one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// `database`, `schema`, `table`, `sequence` or `function`.
    pub kind: &'static str,
    /// The object (empty for the database).
    pub object: &'static str,
    /// `SELECT`, `USAGE`, …
    pub privilege: &'static str,
}

impl Grant {
    const fn new(kind: &'static str, object: &'static str, privilege: &'static str) -> Self {
        Self {
            kind,
            object,
            privilege,
        }
    }

    /// The object as SQL names it after `ON` (`TABLE event_audit_log`, `DATABASE mutt`).
    fn on(&self, database: &str) -> String {
        match self.kind {
            "database" => format!("DATABASE \"{}\"", database.replace('"', "\"\"")),
            kind => format!("{} {}", kind.to_ascii_uppercase(), self.object),
        }
    }

    /// The statement that gives it to `role` (on `database` for a database grant).
    pub fn grant_sql(&self, role: &str, database: &str) -> String {
        format!(
            "GRANT {} ON {} TO {role};",
            self.privilege,
            self.on(database)
        )
    }

    /// The statement that takes it from `role`.
    pub fn revoke_sql(&self, role: &str, database: &str) -> String {
        format!(
            "REVOKE {} ON {} FROM {role};",
            self.privilege,
            self.on(database)
        )
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            "database" => write!(f, "{} on the database", self.privilege),
            "table" => write!(f, "{} on {}", self.privilege, self.object),
            kind => write!(f, "{} on {kind} {}", self.privilege, self.object),
        }
    }
}

/// A role's grants against what the migrations give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleGrants {
    /// Whether the role exists.
    pub exists: bool,
    /// The database checked (for the statements that fix it).
    pub database: String,
    /// Grants it lacks.
    pub missing: Vec<Grant>,
    /// Grants on objects that do not exist (migrations not applied).
    pub absent: Vec<Grant>,
    /// Rights it must not have (the audit tables are append-only).
    pub excess: Vec<Grant>,
}

impl Store {
    /// The server's version.
    pub async fn server_version(&self) -> Result<ServerVersion, StoreError> {
        let (text, num): (String, i32) = sqlx::query_as(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
        )
        .fetch_one(&self.pool())
        .await?;
        Ok(ServerVersion { text, num })
    }

    /// This build's migrations ([`MIGRATOR`]) against `_sqlx_migrations`.
    pub async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let expected: Vec<_> = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        let has_table: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool())
                .await?;
        let recorded: Vec<(i64, bool, Vec<u8>)> = if has_table {
            sqlx::query("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&self.pool())
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<Result<_, sqlx::Error>>()?
        } else {
            Vec::new()
        };
        let mut status = MigrationStatus {
            expected: expected.len(),
            ..MigrationStatus::default()
        };
        for m in &expected {
            match recorded.iter().find(|r| r.0 == m.version) {
                None => status.missing.push((m.version, m.description.to_string())),
                Some((_, false, _)) => status.failed.push(m.version),
                Some((_, true, sum)) if sum.as_slice() != &*m.checksum => {
                    status.changed.push(m.version);
                }
                Some(_) => status.applied += 1,
            }
        }
        status.unknown = recorded
            .iter()
            .filter(|r| !expected.iter().any(|m| m.version == r.0))
            .map(|r| r.0)
            .collect();
        Ok(status)
    }

    /// [`APP_ROLE`]'s grants against what the migrations give it.
    pub async fn app_role_grants(&self) -> Result<RoleGrants, StoreError> {
        let (exists, database): (bool, String) =
            sqlx::query_as("SELECT to_regrole($1) IS NOT NULL, current_database()::text")
                .bind(APP_ROLE)
                .fetch_one(&self.pool())
                .await?;
        let mut grants = RoleGrants {
            exists,
            database,
            ..RoleGrants::default()
        };
        if !exists {
            return Ok(grants);
        }
        for (g, has) in self.privileges(APP_GRANTS).await? {
            match has {
                None => grants.absent.push(g),
                Some(false) => grants.missing.push(g),
                Some(true) => {}
            }
        }
        for (g, has) in self.privileges(APP_FORBIDDEN).await? {
            if has == Some(true) {
                grants.excess.push(g);
            }
        }
        Ok(grants)
    }

    /// Whether [`APP_ROLE`] holds each privilege (None: the object does not exist).
    async fn privileges(&self, list: &[Grant]) -> Result<Vec<(Grant, Option<bool>)>, StoreError> {
        let kinds: Vec<&str> = list.iter().map(|g| g.kind).collect();
        let objects: Vec<&str> = list.iter().map(|g| g.object).collect();
        let privileges: Vec<&str> = list.iter().map(|g| g.privilege).collect();
        let has: Vec<Option<bool>> = sqlx::query_scalar(
            "SELECT CASE kind
                 WHEN 'table' THEN CASE WHEN to_regclass(obj) IS NULL THEN NULL
                     ELSE has_table_privilege($1, obj, privilege) END
                 WHEN 'sequence' THEN CASE WHEN to_regclass(obj) IS NULL THEN NULL
                     ELSE has_sequence_privilege($1, obj, privilege) END
                 WHEN 'function' THEN CASE WHEN to_regprocedure(obj) IS NULL THEN NULL
                     ELSE has_function_privilege($1, obj, privilege) END
                 WHEN 'schema' THEN has_schema_privilege($1, obj, privilege)
                 ELSE has_database_privilege($1, current_database(), privilege)
             END
             FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                 AS t(kind, obj, privilege, n)
             ORDER BY n",
        )
        .bind(APP_ROLE)
        .bind(&kinds)
        .bind(&objects)
        .bind(&privileges)
        .fetch_all(&self.pool())
        .await?;
        Ok(list.iter().copied().zip(has).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_as_sql() {
        let g = Grant::new("table", "event_audit_log", "INSERT");
        assert_eq!(g.to_string(), "INSERT on event_audit_log");
        assert_eq!(
            g.grant_sql(APP_ROLE, "mutt"),
            "GRANT INSERT ON TABLE event_audit_log TO mutt_app;"
        );
        let d = Grant::new("database", "", "CONNECT");
        assert_eq!(
            d.grant_sql("r", "my\"db"),
            "GRANT CONNECT ON DATABASE \"my\"\"db\" TO r;"
        );
        assert_eq!(
            Grant::new("function", "f(date)", "EXECUTE").revoke_sql("r", "x"),
            "REVOKE EXECUTE ON FUNCTION f(date) FROM r;"
        );
        assert_eq!(APP_GRANTS.len(), 36);
    }
}
