//! Native syslog intake: RFC 5424, RFC 3164 and Cisco IOS lines over UDP, TCP (RFC 6587,
//! octet-counted or newline-framed) and TLS (RFC 5425). Parsing and framing are
//! `mutt_core::wire`'s; this module owns the sockets.
//!
//! # Layout
//!
//! - [`tls`]: the TLS listener's certificate and key.
//! - [`listen`]: the UDP, TCP and TLS listeners.

pub mod listen;
pub mod tls;
