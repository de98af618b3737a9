//! What every MUTT process shares, whatever its roles: the stream consumers' machinery,
//! the link to the control plane, credentials, API keys, the HTTP error shape and the ops
//! listener. Roles build on this crate; no role imports another.
//!
//! # Layout
//!
//! - [`consumer`]: one consumer of a group: the group, its reader with one backoff, the
//!   lease keeper and the reclaimer, started and stopped together.
//! - [`leases`]: the entries a worker holds, renewed so that they never look idle.
//! - [`reclaim`]: taking over idle entries, the delivery limit, stream upkeep.
//! - [`retry`](mod@retry): retrying transient failures with backoff; waiting on intervals that are
//!   hot settings.
//! - [`trace`]: the span of one entry's processing, continuing its trace.
//! - [`live`]: following the control plane: hot settings, rule and key reloads, reports.
//! - [`credentials`]: the secrets a process uses and how they follow rotations.
//! - [`auth`]: API keys verified in constant time, scopes, the key ring.
//! - [`http`]: what every HTTP API shares: the error shape, correlation ids.
//! - [`ops`]: `/health`, `/ready`, `/metrics`, and readiness flags.
//! - [`shutdown`]: signals to a cancellation token.

#![forbid(unsafe_code)]

pub mod auth;
pub mod consumer;
pub mod credentials;
pub mod http;
pub mod leases;
pub mod live;
pub mod ops;
pub mod reclaim;
pub mod retry;
pub mod shutdown;
pub mod trace;

pub use leases::{Leases, Release};
pub use reclaim::{Reclaimer, Stream};
pub use retry::{backoff, retry, retry_store, sleep_or_shutdown, wait_interval};

use std::sync::Arc;

use mutt_core::hot::HotConfig;
use tokio::sync::watch;

/// The live hot settings of a process.
pub type Hot = watch::Receiver<Arc<HotConfig>>;
