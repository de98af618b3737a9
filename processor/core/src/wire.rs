//! The wire formats of the native listeners, from untrusted bytes to the JSON event that
//! `POST /api/v2/ingest` would take, so that every source passes the same validation.
//! Pure: the sockets are ingest's (ADR 0020). Each decoder has a fuzz target
//! (`processor/core/fuzz`) and property tests.
//!
//! # Layout
//!
//! - [`syslog`]: one syslog message (RFC 5424, RFC 3164, Cisco IOS) into an event.
//! - [`frame`]: a syslog byte stream into messages (both RFC 6587 framings).
//! - [`snmp`]: an SNMP datagram into a notification (v1, v2c trap, v2c inform), and an
//!   inform's Response.
//! - [`traps`]: names and severities of trap OIDs, built in and from a TOML file.
//! - [`trap_event`]: a notification into an event.

pub mod frame;
pub mod snmp;
pub mod syslog;
pub mod trap_event;
pub mod traps;
