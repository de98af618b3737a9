//! Redis credentials that change while connections live.
//!
//! Every connection MUTT opens takes its password from a [`RedisAuth`]: a `watch` channel
//! holding the password to use now. redis-rs subscribes each multiplexed connection to it
//! (`StreamingCredentialsProvider`): a connection authenticates with the value current when
//! it connects, and re-authenticates (`AUTH user password`) on the live socket whenever the
//! value changes, so a promoted password reaches open connections without reconnecting.
//! Pub/sub connections take the current value each time they (re)connect.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use mutt_core::secret::Secret;
use redis::{BasicAuth, RedisResult, StreamingCredentialsProvider};
use tokio::sync::watch;

/// The ACL user and the password to use now.
#[derive(Clone)]
pub struct RedisAuth {
    username: String,
    password: watch::Receiver<Secret>,
}

impl std::fmt::Debug for RedisAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl RedisAuth {
    /// Credentials for `username` (`default` when the URL names none), following `password`.
    pub fn new(username: Option<String>, password: watch::Receiver<Secret>) -> Self {
        Self {
            username: username.unwrap_or_else(|| "default".into()),
            password,
        }
    }

    /// The ACL user.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password to use now.
    pub(crate) fn current(&self) -> Secret {
        self.password.borrow().clone()
    }
}

impl StreamingCredentialsProvider for RedisAuth {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let user = self.username.clone();
        // The first item is the value now (redis-rs authenticates a new connection with
        // it), then one item per change.
        Box::pin(
            tokio_stream::wrappers::WatchStream::new(self.password.clone())
                .map(move |p| Ok(BasicAuth::new(user.clone(), p.expose().to_string()))),
        )
    }
}
