//! The MUTT domain, pure and synchronous: nothing here performs I/O.
//!
//! # Layout
//!
//! - [`event`]: the validated ingest [`Event`](event::Event) and the validation of
//!   untrusted JSON into it, with the size limits that keep a worker safe.
//! - [`severity`]: syslog severity names and numbers, and the webhook (Moogsoft) scale.
//! - [`rules`]: alert rules, their compiled [`RuleSet`](rules::RuleSet) and the matching
//!   semantics (priorities, contains/regex/OID arcs, dev hosts, teams).
//! - [`fingerprint`]: message normalisation, so that floods of similar unhandled lines
//!   aggregate under one fingerprint.
//! - [`alert`]: the [`Alert`](alert::Alert) written to the alerts stream and the webhook
//!   payload built from it.
//! - [`codec`]: the MessagePack encoding of events and alerts in stream entries.
//! - [`settings`]: typed process settings from the environment and an optional TOML file,
//!   declared one line each.
//! - [`hot`]: the settings that change while MUTT runs, in one typed registry.
//! - [`url`]: credentials inside connection URLs, read and redacted.
//! - [`secret`]: a string wrapper that never prints its value.
//! - [`credentials`]: CURRENT/NEXT credentials and the stage → promote → retire rotation.
//! - [`wire`]: syslog and SNMP wire formats into events (the native listeners' decoders).

#![forbid(unsafe_code)]

pub mod alert;
pub mod codec;
pub mod credentials;
pub mod event;
pub mod fingerprint;
pub mod hot;
pub mod rules;
pub mod secret;
pub mod settings;
pub mod severity;
pub mod url;
pub mod wire;

/// Milliseconds since the Unix epoch, the clock of every timestamp MUTT writes itself.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// An RFC 3339 time of milliseconds since the Unix epoch (empty when out of range).
pub fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
