//! Private servers a test starts and stops itself, on free loopback ports and in scratch
//! directories, removed on drop.
//!
//! # Layout
//!
//! - [`redis`]: [`redis::RedisServer`], for tests that restart or kill Redis itself, and
//!   [`redis::SentinelServer`], the Sentinels that fail it over.
//! - [`postgres`]: [`postgres::PostgresServer`], for tests about roles and credentials.
//! - [`prometheus`]: [`prometheus::PrometheusServer`], scraping with MUTT's rule files.

use std::path::PathBuf;

pub mod postgres;
pub mod prometheus;
pub mod redis;

/// A new directory for a private server's files: `$TMPDIR/mutt-<kind>-<port>-<random>`.
fn scratch_dir(kind: &str, port: u16) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "mutt-{kind}-{port}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub use mutt_devkit::programs::which;
