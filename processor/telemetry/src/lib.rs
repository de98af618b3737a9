//! Logging and metrics for every MUTT process.
//!
//! # Layout
//!
//! - [`logging`]: the `tracing` subscriber (text or JSON lines), with a level that can be
//!   changed at run time, and the OpenTelemetry export.
//! - [`json`]: the JSON log line layer (span fields flattened, secrets redacted).
//! - [`otel`]: the OTLP exporter and W3C trace context in and out of stream entries.
//! - [`slo`]: the service-level objectives, their queries, statuses and Prometheus rules.
//! - [`metrics`](mod@metrics): the Prometheus registry and every metric MUTT emits, in one place, so
//!   that alert rules and dashboards can be checked against this list.

#![forbid(unsafe_code)]

pub mod json;
pub mod logging;
pub mod metrics;
pub mod otel;
pub mod slo;

pub use logging::{LogHandle, Telemetry, init, init_logging};
pub use metrics::{Metrics, metrics};
