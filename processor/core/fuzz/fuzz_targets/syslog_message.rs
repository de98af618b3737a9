//! One syslog message (a datagram or a frame): an event that validation accepts, or a
//! clear error; never a panic.
#![no_main]

use chrono::{FixedOffset, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use mutt_core::event::{Envelope, Limits, validate};
use mutt_core::wire::syslog::{Context, parse};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let cx = Context {
        peer: "192.0.2.1".parse().unwrap(),
        transport: "udp",
        received: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        zone: FixedOffset::east_opt(3600).unwrap(),
        max_message: limits.max_message_bytes,
    };
    if let Ok(v) = parse(data, &cx) {
        let env = Envelope {
            id: "0".into(),
            correlation_id: "c".into(),
            received_at_ms: 0,
        };
        // Hostname and field sizes may still be refused (a 300-character host name), but
        // the time stamp and severity the parser wrote must always be valid.
        if let Err(e) = validate(v, env, &limits) {
            assert!(e.field != "timestamp" && e.field != "syslog_severity", "{e}");
        }
    }
});
