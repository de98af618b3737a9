//! The span of one stream entry's processing, continuing the trace that the entry carries.

use mutt_bus::StreamEntry;
use mutt_telemetry::otel;

/// The processing span of one event, a child of the span that appended it (ingest, or a
/// replay that links back here), or None when its trace is not sampled.
pub fn entry_span(
    name: &'static str,
    kind: &'static str,
    entry: &StreamEntry,
) -> Option<tracing::Span> {
    let trace = entry.trace();
    if !otel::enabled() || !trace.sampled() {
        return None;
    }
    let span = tracing::info_span!(
        "process",
        otel.name = name,
        otel.kind = kind,
        entry_id = %entry.id,
        outcome = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    otel::set_parent(&span, &trace);
    if let Some(by) = entry.text(mutt_bus::dlq::REPLAYED_BY) {
        otel::add_link(
            &span,
            &otel::Carrier {
                traceparent: Some(by.to_string()),
                tracestate: None,
            },
        );
    }
    Some(span)
}
