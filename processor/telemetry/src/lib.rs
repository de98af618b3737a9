//! Logging and metrics for every MUTT process.
//!
//! # Layout
//!
//! - [`logging`]: the `tracing` subscriber (text or JSON lines), with a level that can be
//!   changed at run time.
//! - [`metrics`]: the Prometheus registry and every metric MUTT emits, in one place, so
//!   that alert rules and dashboards can be checked against this list.

#![forbid(unsafe_code)]

pub mod logging;
pub mod metrics;

pub use logging::{LogHandle, init_logging};
pub use metrics::{Metrics, metrics};
