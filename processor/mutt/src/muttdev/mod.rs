//! The developer CLI's library: sample data, a load generator, a webhook sink, seeding.
//!
//! `muttdev` drives a local stack; the integration tests reuse the same pieces, so what a
//! developer runs by hand is what CI checks.

pub mod bench;
pub mod load;
pub mod samples;
pub mod sink;
