//! The `tracing` subscriber.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// Changes the log filter of a running process (hot `log_level`).
#[derive(Debug, Clone)]
pub struct LogHandle(Option<reload::Handle<EnvFilter, Registry>>);

/// A log filter that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid log level {level:?}: {reason}")]
pub struct LogLevelError {
    level: String,
    reason: String,
}

/// Parses a filter such as `info` or `mutt=debug,warn`.
pub fn parse_filter(level: &str) -> Result<EnvFilter, LogLevelError> {
    EnvFilter::builder()
        .with_regex(false)
        .parse(level)
        .map_err(|e| LogLevelError {
            level: level.to_string(),
            reason: e.to_string(),
        })
}

impl LogHandle {
    /// Replaces the filter.
    pub fn set_level(&self, level: &str) -> Result<(), LogLevelError> {
        let filter = parse_filter(level)?;
        if let Some(h) = &self.0 {
            h.reload(filter).map_err(|e| LogLevelError {
                level: level.to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Installs the global subscriber: `json` selects one JSON object per line (timestamp,
/// level, message, target and the fields of the enclosing spans, such as role and
/// consumer). Calling it twice keeps the first subscriber (tests).
pub fn init_logging(level: &str, json: bool) -> Result<LogHandle, LogLevelError> {
    let (filter, handle) = reload::Layer::new(parse_filter(level)?);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(true),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(true)).try_init()
    };
    Ok(LogHandle(installed.ok().map(|()| handle)))
}
