//! The developer kit: what `muttdev` does, and what the integration tests reuse, so that
//! what a developer runs by hand is what CI checks. Not part of the product: no role
//! depends on it.
//!
//! # Layout
//!
//! - [`samples`]: MUTT v2.5's sample events and rules, and seeding a database with them.
//! - [`load`]: the load generator (request bodies built ahead, an offered rate, refusal
//!   latencies).
//! - [`sink`]: a webhook receiver that stands in for Moogsoft, told to fail or hang.
//! - [`bench`](mod@bench): a whole stack on this machine under load, measured.
//! - [`relay`]: the raw ceiling of Redis for MUTT's work, measured in the same run.
//! - [`local`]: the local Redis and PostgreSQL URLs, free loopback ports, scratch databases.
//! - [`cli`]: what the commands that talk to a running MUTT share: the control API client
//!   and its key, tables or `--json`, colours only on a terminal.
//! - [`programs`]: the installed server programs, found and run (as `postgres` when root).
//! - [`stack`]: `muttdev up`, `down`, `logs`: a local stack from one command.
//! - [`operate`]: the operator's commands over the control API.
//! - [`routing`]: rules, hosts and teams, and `rules test`.
//! - [`doctor`]: `muttdev doctor`, checks with a verdict and a fix each.

#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod doctor;
pub mod load;
pub mod local;
pub mod operate;
pub mod programs;
pub mod relay;
pub mod routing;
pub mod samples;
pub mod sink;
pub mod stack;
