//! What the stream workers (alerter, forwarder) share: retries, leases on the entries in
//! hand, reclamation of abandoned entries, and stream upkeep.

pub mod leases;
pub mod reclaim;
pub mod retry;

pub use leases::{Leases, Release};
pub use reclaim::{Reclaimer, Stream};
pub use retry::{backoff, retry, retry_store, sleep_or_shutdown, wait_interval};

use std::sync::Arc;

use mutt_core::hot::HotConfig;
use tokio::sync::watch;

/// The live hot settings of a process.
pub type Hot = watch::Receiver<Arc<HotConfig>>;
