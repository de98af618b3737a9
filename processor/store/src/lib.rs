//! Everything MUTT does with PostgreSQL, one module per table.
//!
//! No other crate imports `sqlx`. SQL is written with bound parameters only; identifiers
//! that cannot be bound (a database name) are validated and quoted. Every change of a
//! table is written with its `config_audit_log` row in one transaction.
//!
//! # Layout
//!
//! - [`db`]: [`Store`]: connecting, creating the database, migrating from
//!   `sql/`, partition upkeep, readiness, swapping the pool (password changes, failover).
//! - [`rules`]: `alert_rules`, for the rule engine (read with hosts and teams in one
//!   snapshot) and for the control API.
//! - [`hosts`]: the table `development_hosts`.
//! - [`teams`]: the table `device_teams`.
//! - [`snapshots`]: `config_snapshots`, the versions of the hot settings.
//! - [`api_keys`]: `api_keys` and the version of the key set.
//! - [`config_audit`]: `config_audit_log`: the actor and change of a mutation, the writer
//!   every mutation calls in its transaction, and the audit query.
//! - [`event_audit`]: `event_audit_log`: the alerters' idempotent batch writer and the
//!   events query.
//! - [`retention`]: the retention lock, event-audit partitions and the archive, old config
//!   audit, month exports, the record of each run.
//! - [`health`]: what `muttdev doctor` checks: the server's version, the migrations
//!   applied, the application role's grants.
//! - [`page`]: paged query results.
//! - [`password`]: changing MUTT's own password with a SCRAM verifier (rotation).
//! - [`error`]: [`StoreError`] and what a refusal means for the rows.

#![forbid(unsafe_code)]

pub mod api_keys;
pub mod config_audit;
pub mod db;
pub mod error;
pub mod event_audit;
pub mod health;
pub mod hosts;
pub mod page;
pub mod password;
pub mod retention;
pub mod rules;
pub mod snapshots;
pub mod teams;

pub use config_audit::{Actor, Change};
pub use db::Store;
pub use error::StoreError;
pub use event_audit::AuditRow;
pub use page::Page;

/// What a change found: done, or why not (for the API to answer 404 / 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// The record does not exist.
    NotFound,
    /// It exists already.
    Conflict,
}
