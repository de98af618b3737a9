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
    /// Whether trying again later can succeed (connection trouble, server restarting,
    /// pool exhausted, serialization conflicts), as opposed to a query the server will
    /// always refuse.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Db(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_) => true,
                sqlx::Error::Database(d) => {
                    // Class 08 connection exceptions, 40 transaction rollback (serialization,
                    // deadlock), 53 insufficient resources, 57 operator intervention
                    // (admin shutdown, cannot connect now).
                    d.code()
                        .is_some_and(|c| ["08", "40", "53", "57"].iter().any(|p| c.starts_with(p)))
                }
                _ => false,
            },
            Self::Migrate(_) | Self::Invalid(_) => false,
        }
    }
}
