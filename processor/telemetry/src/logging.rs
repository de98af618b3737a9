//! The `tracing` subscriber: text or JSON lines, a level that can change at run time, and
//! OpenTelemetry export when an endpoint is configured.

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, reload};

use crate::json::JsonLayer;
use crate::otel::{self, OtelSettings};

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

/// Logging and tracing of a process; [`Telemetry::shutdown`] flushes the spans.
#[derive(Debug)]
pub struct Telemetry {
    /// Changes the log level.
    pub log: LogHandle,
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the span exporter.
    pub fn shutdown(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Bad log level.
    #[error(transparent)]
    Level(#[from] LogLevelError),
    /// Bad exporter settings.
    #[error(transparent)]
    Otel(#[from] otel::OtelError),
}

/// Installs the global subscriber: logs (text, or `json`) filtered by `level`, and spans to
/// OTLP when `otel` is given (spans of MUTT's own code at info and above, whatever the log
/// level). Calling it twice keeps the first subscriber (tests). Call it inside a Tokio
/// runtime when exporting.
pub fn init(
    level: &str,
    json: bool,
    otel: Option<&OtelSettings>,
) -> Result<Telemetry, TelemetryError> {
    let (filter, handle) = reload::Layer::new(parse_filter(level)?);
    let provider = otel.map(otel::provider).transpose()?;
    let otel_layer = provider.as_ref().map(|p| {
        otel::layer(p).with_filter(
            EnvFilter::builder()
                .with_regex(false)
                .parse_lossy("mutt=info,mutt_bus=info,mutt_store=info,off"),
        )
    });
    let logs = if json {
        JsonLayer.boxed()
    } else {
        // Colours only on a terminal: escape codes in a log file or a collector's input
        // break every search for `key=value`.
        fmt::layer()
            .with_target(true)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(otel_layer)
        .try_init();
    Ok(Telemetry {
        log: LogHandle(installed.ok().map(|()| handle)),
        provider,
    })
}

/// Logging only (tools and tests).
pub fn init_logging(level: &str, json: bool) -> Result<LogHandle, LogLevelError> {
    match init(level, json, None) {
        Ok(t) => Ok(t.log),
        Err(TelemetryError::Level(e)) => Err(e),
        Err(TelemetryError::Otel(_)) => Ok(LogHandle(None)),
    }
}
