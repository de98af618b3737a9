//! OpenTelemetry traces: the exporter, and trace context in and out of stream entries.
//!
//! `traceparent` / `tracestate` ride in every stream entry (W3C trace context), so that
//! the ingest, alerter and forwarder spans of one event form one trace across the Redis
//! hops. Without an OTLP endpoint nothing is exported and the helpers pass incoming
//! context through unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// How to export.
#[derive(Debug, Clone)]
pub struct OtelSettings {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    /// gRPC (`grpc`, default) or HTTP with protobuf (`http/protobuf`).
    pub http: bool,
    /// `service.name`.
    pub service_name: String,
    /// `service.instance.id` (the consumer name).
    pub instance_id: String,
    /// Share of new traces sampled; child spans follow their parent's decision.
    pub sample_ratio: f64,
}

/// An exporter that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry exporter: {0}")]
pub struct OtelError(String);

/// Builds the tracer provider (inside a Tokio runtime: the gRPC exporter needs one).
pub(crate) fn provider(s: &OtelSettings) -> Result<SdkTracerProvider, OtelError> {
    let exporter = if s.http {
        let endpoint = if s.endpoint.ends_with("/v1/traces") {
            s.endpoint.clone()
        } else {
            format!("{}/v1/traces", s.endpoint.trim_end_matches('/'))
        };
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()
    } else {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(s.endpoint.clone())
            .build()
    }
    .map_err(|e| OtelError(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(s.service_name.clone())
        .with_attributes([
            KeyValue::new("service.instance.id", s.instance_id.clone()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    // The batch processor runs on the Tokio runtime: the HTTP exporter's client needs its
    // reactor (the default processor's own thread has none).
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            s.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(provider)
}

/// The tracing layer for `provider`.
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("mutt"))
}

/// W3C trace context as carried by a stream entry or an HTTP request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carrier {
    /// `traceparent`.
    pub traceparent: Option<String>,
    /// `tracestate`.
    pub tracestate: Option<String>,
}

impl Carrier {
    /// Whether the context says "sampled" (flags `01`): only then are spans worth making.
    pub fn sampled(&self) -> bool {
        self.traceparent
            .as_deref()
            .is_some_and(|t| t.len() == 55 && t.ends_with("-01"))
    }

    fn context(&self) -> Context {
        let mut map = HashMap::new();
        if let Some(tp) = &self.traceparent {
            map.insert("traceparent".to_string(), tp.clone());
        }
        if let Some(ts) = &self.tracestate {
            map.insert("tracestate".to_string(), ts.clone());
        }
        TraceContextPropagator::new().extract(&map)
    }
}

/// Makes `span` a child of the context in `carrier` (no-op when tracing is off or the
/// carrier is empty), and records its trace and span ids as fields for the logs.
pub fn set_parent(span: &tracing::Span, carrier: &Carrier) {
    if !enabled() {
        return;
    }
    if carrier.traceparent.is_some() {
        let _ = span.set_parent(carrier.context());
    }
    record_ids(span);
}

/// Adds a link from `span` to the context in `carrier`.
pub fn add_link(span: &tracing::Span, carrier: &Carrier) {
    if !enabled() {
        return;
    }
    let cx = carrier.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.add_link(sc);
    }
}

/// The context of `span` to carry onwards, or `fallback` when tracing is off (so an
/// incoming `traceparent` still travels through MUTT unchanged).
pub fn carrier_of(span: &tracing::Span, fallback: &Carrier) -> Carrier {
    if !enabled() {
        return fallback.clone();
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return fallback.clone();
    }
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut map);
    Carrier {
        traceparent: map.remove("traceparent"),
        tracestate: map.remove("tracestate").filter(|s| !s.is_empty()),
    }
}

/// Records `trace_id` and `span_id` on `span` (declared as empty fields), for the logs.
pub fn record_ids(span: &tracing::Span) {
    if !enabled() {
        return;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
        span.record("span_id", tracing::field::display(sc.span_id()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_flag() {
        let c = |tp: &str| Carrier {
            traceparent: Some(tp.into()),
            tracestate: None,
        };
        assert!(c("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").sampled());
        assert!(!c("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").sampled());
        assert!(!Carrier::default().sampled());
    }
}
