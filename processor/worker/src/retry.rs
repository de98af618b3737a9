//! Retrying transient failures with capped exponential backoff, interruptible by shutdown.

use std::time::Duration;

use mutt_bus::BusError;
use mutt_store::StoreError;
use mutt_telemetry::metrics;
use tokio_util::sync::CancellationToken;

/// Backoff for transient failures: doubles from 100 ms up to 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// Waits until `every` (a hot setting) has passed since `since`, following changes of the
/// setting while waiting: a shorter value applies at once, not after the old interval.
/// Returns false when `shutdown` came first.
pub async fn wait_interval(
    hot: &crate::Hot,
    since: tokio::time::Instant,
    every: impl Fn(&mutt_core::hot::HotConfig) -> Duration,
    shutdown: &CancellationToken,
) -> bool {
    let mut hot = hot.clone();
    loop {
        let deadline = since + every(&hot.borrow_and_update());
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(deadline) => return true,
            changed = hot.changed() => {
                // The publisher is gone (the process is stopping): wait out the interval.
                if changed.is_err() {
                    return tokio::select! {
                        _ = shutdown.cancelled() => false,
                        _ = tokio::time::sleep_until(deadline) => true,
                    };
                }
            }
        }
    }
}

/// Sleeps; returns true when interrupted by shutdown.
pub async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Retries `f` on transient Redis errors until it succeeds, fails for good (returned at
/// once), or shutdown interrupts (the last error is returned).
pub async fn retry<T, F, Fut>(what: &str, shutdown: &CancellationToken, f: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    retry_while(what, "redis", BusError::is_transient, shutdown, f).await
}

/// [`retry`] for PostgreSQL: every error is retried (a missing table at start-up is fixed
/// by the migration running elsewhere), until shutdown.
pub async fn retry_store<T, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    f: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    retry_while(what, "postgres", |_| true, shutdown, f).await
}

/// Retries `f` while its errors are `transient`, counting them against `dependency`.
async fn retry_while<T, E, F, Fut>(
    what: &str,
    dependency: &str,
    transient: impl Fn(&E) -> bool,
    shutdown: &CancellationToken,
    mut f: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                metrics()
                    .dependency_errors
                    .with_label_values(&["worker", dependency])
                    .inc();
                if !transient(&e) {
                    tracing::error!(error = %e, "{what} failed");
                    return Err(e);
                }
                tracing::warn!(error = %e, attempt, "{what} failed; retrying");
                if sleep_or_shutdown(backoff(attempt), shutdown).await {
                    return Err(e);
                }
                attempt += 1;
            }
        }
    }
}
