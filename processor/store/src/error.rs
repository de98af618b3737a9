//! Errors of the PostgreSQL layer.

/// A PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The query or the connection failed.
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A setting or a row is unusable.
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether trying again later can succeed, as opposed to a statement the server will
    /// always refuse. Anything that is not the server refusing the statement itself counts
    /// as transient: connections cut or refused, TLS or protocol trouble while connecting
    /// (a proxy or load balancer dropping the socket shows up as garbage in the handshake),
    /// pool exhaustion, and the server-side classes 08 (connection), 40 (serialization,
    /// deadlock), 53 (resources), 57 (shutdown, admin), 58 (system).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Db(e) => match e {
                sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                    ["08", "40", "53", "57", "58"]
                        .iter()
                        .any(|p| c.starts_with(p))
                }),
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                _ => false,
            },
            Self::Migrate(_) | Self::Invalid(_) => false,
        }
    }
}
