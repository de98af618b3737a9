//! Everything MUTT does with PostgreSQL.
//!
//! No other crate imports `sqlx`. SQL is written with bound parameters only; identifiers
//! that cannot be bound (a database name) are validated and quoted.
//!
//! # Layout
//!
//! - [`db`]: [`Store`](db::Store): connecting, creating the database, migrating from
//!   `sql/`, partition upkeep, readiness.
//! - [`rules`]: reading rules, development hosts and device teams for the rule engine.
//! - [`audit`]: the idempotent batch writer of `event_audit_log`.
//! - [`password`]: changing MUTT's own password with a SCRAM verifier (rotation).
//! - [`error`]: [`StoreError`](error::StoreError) and whether it is worth retrying.

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod control;
pub mod db;
pub mod error;
pub mod password;
pub mod rules;

pub use audit::AuditRow;
pub use db::Store;
pub use error::StoreError;
