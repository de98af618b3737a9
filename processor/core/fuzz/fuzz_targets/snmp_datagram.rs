//! An SNMP datagram: a notification or a refusal, never a panic; an inform's Response
//! decodes back.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use mutt_core::wire::snmp::{decode, inform_response};
use mutt_core::wire::trap_event::to_event;
use mutt_core::wire::traps::TrapTable;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = decode(data) {
        let table = TrapTable::default();
        let received = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let _ = to_event(&n, "192.0.2.1".parse().unwrap(), received, &table, 16 * 1024);
        if let Some(r) = inform_response(&n) {
            assert!(decode(&r).is_err(), "a Response is not a notification");
        }
    }
});
