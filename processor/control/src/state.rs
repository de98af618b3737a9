//! What the control plane's handlers and background work share.

use std::time::Duration;

use mutt_bus::Bus;
use mutt_bus::control::Announcement;
use mutt_store::Store;

use mutt_worker::Hot;
use mutt_worker::auth::KeyRing;
use mutt_worker::credentials::Credentials;

/// The Prometheus that `GET /api/v2/slo` asks, with one client for every request.
#[derive(Debug, Clone)]
pub struct Prometheus {
    /// Its base URL (`MUTT_PROMETHEUS_URL`).
    pub url: String,
    pub(crate) client: reqwest::Client,
}

impl Prometheus {
    /// A client for the Prometheus at `url`; a query that takes longer than 5 s failed.
    pub fn new(url: &str) -> Result<Self, reqwest::Error> {
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct ControlState {
    /// Redis.
    pub bus: Bus,
    /// PostgreSQL.
    pub store: Store,
    /// Accepted keys.
    pub keys: KeyRing,
    /// The current hot settings of this process.
    pub hot: Hot,
    /// The Prometheus the SLO endpoint asks.
    pub prometheus: Prometheus,
    /// This process's credentials (the starting point of a first rotation).
    pub credentials: Credentials,
}

impl ControlState {
    /// Announces a change; a lost announcement is caught up by polling, so it is logged,
    /// never failed.
    pub async fn announce(&self, a: Announcement) {
        if let Err(e) = self.bus.announce(&a).await {
            tracing::warn!(error = %e, announcement = ?a, "announcement not sent; processes catch up by polling");
        }
    }
}
