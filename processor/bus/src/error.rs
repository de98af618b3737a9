//! Errors of the Redis layer.

/// A Redis operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The server or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The server answered with something this code does not understand.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}

impl BusError {
    /// Whether trying again later can succeed: connection losses, timeouts, a server
    /// loading or failing over. Entries stay pending in the meantime, so a retry loses
    /// nothing.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                            | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                            | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
                            | redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                            | redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown)
                    )
            }
            Self::Protocol(_) => false,
        }
    }
}
