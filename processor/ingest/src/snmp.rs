//! Native SNMP notification intake: v1 and v2c traps and v2c informs over UDP, checked
//! against the accepted communities. Decoding, the trap table and the event are
//! `mutt_core::wire`'s; this module owns the socket.
//!
//! # Layout
//!
//! - [`listen`]: the UDP listener.

pub mod listen;
