//! Connecting, creating the database, migrating, partition upkeep.

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mutt_core::secret::Secret;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::error::StoreError;

/// The migrations in the repository's `sql/` directory, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../sql");

/// How far back and ahead monthly audit partitions are kept ready.
pub const PARTITION_MONTHS_BACK: i32 = 1;
/// See [`PARTITION_MONTHS_BACK`].
pub const PARTITION_MONTHS_AHEAD: i32 = 3;

/// How long a pool replaced by a password change stays open for the queries that hold its
/// connections, before it is closed (closing waits for them to be returned).
const RETIRED_POOL_GRACE: Duration = Duration::from_secs(30);

/// A pool of connections to the MUTT database. The pool is replaced whole when the password
/// changes (see [`Store::use_password`]); clones share the replacement.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The pool in use and the password it connects with.
    pool: RwLock<(PgPool, Option<Secret>)>,
    /// Connect options without the password: sqlx's `Debug` of them would print it.
    options: PgConnectOptions,
    max_connections: u32,
}

// By hand: the connect options hold the password, and sqlx prints it in `Debug`.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("max_connections", &self.inner.max_connections)
            .finish_non_exhaustive()
    }
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        // Recycled connections pick up new server settings.
        .max_lifetime(Duration::from_secs(30 * 60))
        .idle_timeout(Duration::from_secs(10 * 60))
}

impl Store {
    /// Connects a pool of at most `max_connections` to `url`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_with_password(url, max_connections, None).await
    }

    /// Connects with `password` in place of any in `url`.
    pub async fn connect_with_password(
        url: &str,
        max_connections: u32,
        password: Option<&Secret>,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("mutt")
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
        // A password in the URL stays in `options` (sqlx has no getter for it); one given
        // here replaces it and is remembered, so that a follower knows what is in use.
        let in_use = password.cloned();
        let with_password = match &in_use {
            Some(p) => options.clone().password(p.expose()),
            None => options.clone(),
        };
        let pool = pool_options(max_connections)
            .connect_with(with_password)
            .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool: RwLock::new((pool, in_use)),
                options,
                max_connections,
            }),
        })
    }

    /// Wraps an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Self {
        let options = (*pool.connect_options()).clone();
        let max_connections = pool.options().get_max_connections();
        Self {
            inner: Arc::new(Inner {
                pool: RwLock::new((pool, None)),
                options,
                max_connections,
            }),
        }
    }

    /// The pool in use, for the modules of this crate.
    pub(crate) fn pool(&self) -> PgPool {
        match self.inner.pool.read() {
            Ok(p) => p.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// The password new connections use, if any.
    pub fn password_in_use(&self) -> Option<Secret> {
        match self.inner.pool.read() {
            Ok(p) => p.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// Connect options for a connection of its own, with the password in use and without
    /// statement logging (a statement carrying a password verifier must not be logged).
    pub(crate) fn quiet_options(&self) -> PgConnectOptions {
        let o = self.inner.options.clone().disable_statement_logging();
        match self.password_in_use() {
            Some(p) => o.password(p.expose()),
            None => o,
        }
    }

    /// Switches to `password` for every new connection, without failing a query: a new
    /// pool is connected with it first (an error leaves the old pool in use), then replaces
    /// the old one, which finishes the queries holding its connections and is closed.
    pub async fn use_password(&self, password: &Secret) -> Result<(), StoreError> {
        // The server refuses the old password from the moment it changed: the pool in use
        // opens its next connections with the new one at once, rather than after the new
        // pool has connected, so that no connection is opened (and refused) in between.
        let current = self.pool();
        let before = current.connect_options();
        current.set_connect_options(self.inner.options.clone().password(password.expose()));
        let swapped = self
            .swap_pool(Some(password.clone()), RETIRED_POOL_GRACE)
            .await;
        if swapped.is_err() {
            // The new password does not work (yet): keep connecting as before.
            current.set_connect_options((*before).clone());
        }
        swapped
    }

    /// Replaces every connection with a new one, without failing a query: used when the
    /// server behind the pool turned read-only (a failover made it a replica), since the
    /// pool would otherwise keep talking to it for as long as its connections live. The
    /// old pool is closed at once; a query that still holds it fails as unavailable and is
    /// retried on the new one.
    pub async fn reconnect(&self) -> Result<(), StoreError> {
        self.swap_pool(self.password_in_use(), Duration::ZERO).await
    }

    /// Connects a new pool with `password` (an error leaves the old pool in use), puts it
    /// in place of the old one, and closes the old one after `grace`.
    async fn swap_pool(&self, password: Option<Secret>, grace: Duration) -> Result<(), StoreError> {
        let options = match &password {
            Some(p) => self.inner.options.clone().password(p.expose()),
            None => self.inner.options.clone(),
        };
        let fresh = pool_options(self.inner.max_connections)
            .connect_with(options)
            .await?;
        let old = {
            let mut slot = match self.inner.pool.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *slot, (fresh, password)).0
        };
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            old.close().await;
        });
        Ok(())
    }

    /// Creates the database named in `url` when it does not exist, connecting to the
    /// server's `postgres` database to do so. Returns whether it was created.
    pub async fn create_database_if_missing(url: &str) -> Result<bool, StoreError> {
        Self::create_database_if_missing_with_password(url, None).await
    }

    /// [`Store::create_database_if_missing`], with `password` in place of any in `url`.
    pub async fn create_database_if_missing_with_password(
        url: &str,
        password: Option<&Secret>,
    ) -> Result<bool, StoreError> {
        let mut target = PgConnectOptions::from_str(url)?;
        if let Some(p) = password {
            target = target.password(p.expose());
        }
        let name = target
            .get_database()
            .ok_or_else(|| StoreError::Invalid("MUTT_DATABASE_URL names no database".into()))?
            .to_string();
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            return Err(StoreError::Invalid(format!(
                "{name:?} is not a usable database name"
            )));
        }
        let mut conn = target.clone().database("postgres").connect().await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut conn)
                .await?;
        if exists {
            conn.close().await?;
            return Ok(false);
        }
        // CREATE DATABASE takes no parameters: quote the identifier instead.
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        let created = sqlx::query(&sql).execute(&mut conn).await;
        conn.close().await?;
        match created {
            Ok(_) => Ok(true),
            // Another process created it at the same moment.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops a database (benchmarks' scratch databases), whatever is connected to it.
    pub async fn drop_database(&self, name: &str) -> Result<(), StoreError> {
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            return Err(StoreError::Invalid(format!(
                "{name:?} is not a usable database name"
            )));
        }
        let sql = format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "\"\"")
        );
        sqlx::query(&sql).execute(&self.pool()).await?;
        Ok(())
    }

    /// Applies the migrations of `sql/` that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool()).await?;
        self.ensure_partitions().await?;
        Ok(())
    }

    /// Makes sure the monthly audit partitions around now exist. Returns their names.
    pub async fn ensure_partitions(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT mutt_ensure_event_audit_partitions($1, $2)")
                .bind(PARTITION_MONTHS_BACK)
                .bind(PARTITION_MONTHS_AHEAD)
                .fetch_all(&self.pool())
                .await?,
        )
    }

    /// Makes sure the monthly audit partition holding `at` exists, moving the rows the
    /// default partition holds for that month into it. Returns its name.
    pub async fn ensure_partition_for(
        &self,
        at: time::OffsetDateTime,
    ) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT mutt_ensure_event_audit_partition(($1 AT TIME ZONE 'UTC')::date)",
        )
        .bind(at)
        .fetch_one(&self.pool())
        .await?)
    }

    /// Whether the server takes writes now: not a standby, not read-only (after a
    /// failover, or `default_transaction_read_only`).
    pub async fn accepts_writes(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
        )
        .fetch_one(&self.pool())
        .await?)
    }

    /// Round trip to the server (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool()).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool().close().await;
    }
}
