//! The integration-test harness: real `mutt` processes, a real Redis, a real PostgreSQL,
//! and a webhook receiver inside the test.
//!
//! Services default to the local ones (`REDIS_URL`, `DATABASE_URL` override them; see
//! [`mutt_devkit::local`]). Everything is re-exported here: the tests
//! `use mutt_integration_tests::*`.
//!
//! # Layout
//!
//! - [`env`](mod@env): [`TestEnv`], a fresh key prefix and database per test, dropped at the
//!   end; the `mutt` binary; a group's lag and pending.
//! - [`mutt`]: [`Mutt`], one `mutt` process from a [`MuttConfig`]; SIGTERM or kill -9.
//! - [`otlp`]: [`Collector`], an OTLP trace receiver (gRPC or HTTP).
//! - [`servers`]: private Redis, PostgreSQL and Prometheus servers on free ports.
//! - [`proxy`]: [`Proxy`], a TCP proxy that can be cut or muted, an outage on demand.
//! - [`api`]: posting events, the control API, metrics, streams, the webhook sink.
//! - [`rig`]: what tests start from: an env with rules and a sink, the fault tests' [`Rig`].
//! - [`wait`]: [`wait_until`], bounded polling; every wait in the tests has a deadline.

pub mod api;
pub mod env;
pub mod mutt;
pub mod otlp;
pub mod proxy;
pub mod rig;
pub mod servers;
pub mod wait;

pub use api::*;
pub use env::*;
pub use mutt::*;
pub use mutt_devkit::local::{free_port, postgres_server_url, redis_url};
pub use mutt_devkit::samples;
pub use mutt_devkit::sink::{Behaviour, Sink};
pub use otlp::{Collector, Got, grpc_collector, http_collector, http_collector_on};
pub use proxy::*;
pub use rig::*;
pub use servers::postgres::{PostgresServer, can_connect};
pub use servers::prometheus::PrometheusServer;
pub use servers::redis::{RedisServer, SentinelServer};
pub use servers::which;
pub use wait::*;
