//! MUTT's processes: ingest, alerter, forwarder (and, with their own issues, control),
//! each a module with a `run` function that the thin `mutt` binary calls.
//!
//! # Layout
//!
//! - [`app`]: the roles, connecting to the dependencies, starting and stopping the tasks.
//! - [`control`]: the control-plane API (rules, settings, audit, dead letters, keys).
//! - [`ingest`]: the ingest HTTP API (`/api/v2/ingest`, `/api/v1/ingest`).
//! - [`alerter`]: the consumer of `{p}:events`: rules, audit, alerts, meta-alerts.
//! - [`forwarder`]: the consumer of `{p}:alerts`: the webhook.
//! - [`live`]: following the control plane: hot settings, rule and key reloads.
//! - [`ops`]: `/health`, `/ready`, `/metrics` of every process.
//! - [`http`]: what every HTTP API shares: the error shape, correlation ids.
//! - [`auth`]: API key verification in constant time.
//! - [`credentials`]: the secrets a process uses and how they follow rotations.
//! - [`shutdown`]: signals to a cancellation token.
//! - [`worker`]: what the stream workers share: retries, leases, reclamation, upkeep.
//! - [`muttdev`]: the developer CLI (load generator, webhook sink, status).

#![forbid(unsafe_code)]

pub mod alerter;
pub mod app;
pub mod auth;
pub mod control;
pub mod credentials;
pub mod forwarder;
pub mod http;
pub mod ingest;
pub mod live;
pub mod muttdev;
pub mod ops;
pub mod shutdown;
pub mod worker;
