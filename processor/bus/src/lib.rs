//! Everything MUTT does with Redis, behind domain verbs.
//!
//! No other crate imports `redis`: a client upgrade (redis-rs 2.0 changes its stream
//! types) touches this crate only.
//!
//! # Layout
//!
//! - [`names`]: the Redis names of the public contract (`{p}:events`, groups, channels).
//! - [`entry`]: stream entries as MUTT writes them (payload plus trace context) and the
//!   parser of `XREADGROUP` / `XAUTOCLAIM` replies.
//! - [`client`]: [`Bus`], the shared connection with the verbs (`append`,
//!   `ensure_group`, `ack`, `ack_and_append`), and [`GroupReader`],
//!   the dedicated blocking reader of one consumer.
//! - [`unhandled`]: the atomic counter of unhandled fingerprints (a Lua script), and a
//!   read-only look at it (`rules test`).
//! - [`claim`]: reclaiming idle pending entries, renewing our own, removing gone consumers.
//! - [`dlq`]: moving entries to `{p}:dlq:<group>` with provenance, atomically with the ack.
//! - [`trim`]: trimming streams below what every group has delivered and acknowledged.
//! - [`stats`]: a stream's length, entries ever added, and its groups' lag, pending,
//!   consumers and entries read (the console's overview).
//! - [`guard`]: the webhook's shared circuit breaker and rate limit.
//! - [`control`]: hot-setting snapshots, announcements, applied versions, the key registry.
//! - [`link`]: where the master is (a fixed address, or what Sentinel names) and the
//!   connections that follow it across a failover.
//! - [`auth`]: credentials that change while connections live (password rotation).
//! - [`secrets`]: the secret store of rotations and the Redis ACL steps of one.
//! - [`error`]: [`BusError`] and whether it is worth retrying.
//! - [`server`]: what tools ask of the server itself: its CPU time, deleting a prefix, and
//!   what `muttdev doctor` checks (INFO, CONFIG GET, TIME, ACL DRYRUN).
//! - [`legacy`]: MUTT v2's Redis lists, found, read oldest first and moved into the
//!   streams item by item (`mutt migrate --from-v2-queues`).
//! - `scripts`: the Lua shared by the scripts that write before they acknowledge.

#![forbid(unsafe_code)]

pub mod auth;
pub mod claim;
pub mod client;
pub mod control;
pub mod dlq;
pub mod entry;
pub mod error;
pub mod guard;
pub mod legacy;
pub mod link;
pub mod names;
mod scripts;
pub mod secrets;
pub mod server;
pub mod stats;
pub mod trim;
pub mod unhandled;

pub use client::{Bus, GroupReader};
pub use entry::{NewEntry, StreamEntry, TraceContext};
pub use error::BusError;
pub use link::Sentinels;
pub use names::Names;
