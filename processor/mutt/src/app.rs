//! Roles and their lifecycle: connect, start, follow the control plane, drain, stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mutt_bus::Bus;
use mutt_core::credentials::SecretName;
use mutt_core::secret::Secret;
use mutt_core::settings::Settings;
use mutt_core::url::redact as redact_url;
use mutt_store::Store;
use mutt_telemetry::LogHandle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use mutt_alerter::{Alerter, RuleCache};
use mutt_control::{Background, ControlState, Prometheus};
use mutt_forwarder::Forwarder;
use mutt_forwarder::webhook::Webhook;
use mutt_ingest::IngestState;
use mutt_worker::Leases;
use mutt_worker::auth::KeyRing;
use mutt_worker::credentials::Credentials;
use mutt_worker::live::Live;
use mutt_worker::ops::{self, Flag, OpsState};

/// A long-running role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// The ingest HTTP API.
    Ingest,
    /// The rule engine.
    Alerter,
    /// The webhook sender.
    Forwarder,
    /// The control-plane API and its background work.
    Control,
}

impl Role {
    /// The role's name in logs and `/health`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Alerter => "alerter",
            Self::Forwarder => "forwarder",
            Self::Control => "control",
        }
    }
}

/// Every long-running role (`mutt all`).
pub(crate) const ALL: &[Role] = &[Role::Ingest, Role::Alerter, Role::Forwarder, Role::Control];

/// Retries `connect` until it succeeds or `shutdown`; dependencies that start after MUTT
/// (a pod restart order, a compose stack) are waited for, not fatal.
async fn connect<T, E: std::fmt::Display, Fut: Future<Output = Result<T, E>>>(
    what: &str,
    shutdown: &CancellationToken,
    mut f: impl FnMut() -> Fut,
) -> anyhow::Result<T> {
    let mut delay = Duration::from_millis(200);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to {what}; retrying in {delay:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("stopped while connecting to {what}"),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Creates the database if it is missing and applies the migrations.
pub(crate) async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let creds = Credentials::load(settings)?;
    migrate_with(settings, database_password(&creds).as_ref()).await
}

pub(crate) fn database_password(creds: &Credentials) -> Option<Secret> {
    creds
        .state(SecretName::DatabasePassword)
        .map(|s| s.active().clone())
}

async fn migrate_with(settings: &Settings, password: Option<&Secret>) -> anyhow::Result<()> {
    if Store::create_database_if_missing_with_password(&settings.database_url, password).await? {
        tracing::info!(database = %redact_url(&settings.database_url), "database created");
    }
    let store = Store::connect_with_password(&settings.database_url, 2, password).await?;
    store.migrate().await?;
    tracing::info!("migrations applied");
    store.close().await;
    Ok(())
}

/// Connects to Redis as the settings say: `MUTT_REDIS_URL`, or the master that
/// `MUTT_REDIS_SENTINELS` name (followed across failovers).
pub(crate) async fn connect_bus(
    settings: &Settings,
    creds: &Credentials,
) -> Result<Bus, mutt_bus::BusError> {
    let sentinels = settings
        .redis_sentinels
        .as_ref()
        .map(|addresses| mutt_bus::Sentinels {
            addresses: addresses.clone(),
            master_name: settings.redis_master_name.clone(),
        });
    Bus::connect_to(
        &settings.redis_url,
        sentinels.as_ref(),
        &settings.prefix,
        creds.redis_auth(&settings.redis_url),
    )
    .await
}

/// `mutt retention`: one pass under the retention lock, then exit (a CronJob runs it).
/// The policy is the hot settings in force: the start values plus the newest snapshot of
/// the control plane, read from PostgreSQL, where it is kept.
pub(crate) async fn retention(
    settings: &Settings,
    opts: mutt_control::retention::Options,
) -> anyhow::Result<()> {
    use mutt_control::retention::{Outcome, Policy, Retention};
    let creds = Credentials::load(settings)?;
    let bus = connect_bus(settings, &creds).await?;
    let store = Store::connect_with_password(
        &settings.database_url,
        2,
        database_password(&creds).as_ref(),
    )
    .await?;
    let values: Vec<(String, String)> = match store.latest_snapshot().await? {
        Some((_, serde_json::Value::Object(m))) => m
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
            .collect(),
        _ => Vec::new(),
    };
    let (hot, errors) = mutt_core::hot::HotConfig::with_overrides(
        &settings.hot,
        values.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    for e in errors {
        tracing::warn!(error = %e, "snapshot value not applied");
    }
    if !hot.retention_enabled {
        println!("retention is disabled (retention_enabled = off): nothing done");
        store.close().await;
        return Ok(());
    }
    let r = Retention {
        store: store.clone(),
        bus,
        run_by: format!("mutt retention ({})", settings.consumer),
    };
    let outcome = r.run_once(&Policy::from_hot(&hot), &opts).await;
    store.close().await;
    match outcome? {
        Outcome::Ran(report) => println!("{}", serde_json::to_string_pretty(&report)?),
        Outcome::Busy => println!("another retention run holds the lock: skipped"),
    }
    Ok(())
}

/// Runs `roles` until `shutdown`, then drains within the grace period. `prepare_db`
/// creates and migrates the database first (`mutt all`).
pub(crate) async fn run(
    roles: &[Role],
    settings: Settings,
    prepare_db: bool,
    log: LogHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let has = |r: Role| roles.contains(&r);
    let needs_db = has(Role::Alerter) || has(Role::Control);
    let creds = Credentials::load(&settings)?;
    let webhook = if has(Role::Forwarder) {
        let url = settings.require_webhook()?;
        Some(Webhook::new(
            url,
            Some(creds.subscribe(SecretName::WebhookToken)),
            settings.forwarder.concurrency,
        )?)
    } else {
        None
    };
    // Listeners first: a port in use is a configuration error, reported at once.
    let ops_listener = ops::bind(settings.ops_listen, "MUTT_OPS_LISTEN").await?;
    let mut ingest_listener = if has(Role::Ingest) {
        Some(ops::bind(settings.ingest_listen, "MUTT_INGEST_LISTEN").await?)
    } else {
        None
    };
    // The syslog and SNMP listeners too: a port in use or an unreadable TLS file or trap
    // table stops the process here, naming its setting.
    let mut native_listeners = if has(Role::Ingest) {
        Some(
            mutt_ingest::native::Listeners::bind(
                &settings.syslog,
                &settings.snmp,
                &settings.ingest.limits,
            )
            .await?,
        )
    } else {
        None
    };
    let mut control_listener = if has(Role::Control) {
        Some(ops::bind(settings.control_listen, "MUTT_CONTROL_LISTEN").await?)
    } else {
        None
    };

    match &settings.redis_sentinels {
        Some(s) => tracing::info!(
            sentinels = ?s.iter().map(|a| redact_url(a)).collect::<Vec<_>>(),
            master_name = %settings.redis_master_name,
            prefix = %settings.prefix,
            "connecting to redis through sentinel"
        ),
        None => {
            tracing::info!(redis = %redact_url(&settings.redis_url), prefix = %settings.prefix, "connecting to redis")
        }
    }
    let bus = connect("Redis", &shutdown, || connect_bus(&settings, &creds)).await?;
    // A rotation may have happened while this process was away: its start values could
    // be retired already.
    if let Err(e) = creds.sync(&bus).await {
        tracing::warn!(error = %e, "cannot read the secret store; starting with the configured secrets");
    }
    creds.reconcile_files();
    if prepare_db {
        connect("PostgreSQL (migrations)", &shutdown, || {
            let pw = database_password(&creds);
            let settings = &settings;
            async move { migrate_with(settings, pw.as_ref()).await }
        })
        .await?;
    }
    let store = if needs_db {
        Some(
            connect("PostgreSQL", &shutdown, || {
                let pw = database_password(&creds);
                let url = settings.database_url.clone();
                async move { Store::connect_with_password(&url, 8, pw.as_ref()).await }
            })
            .await?,
        )
    } else {
        None
    };

    let (hot_tx, hot) = watch::channel(Arc::new(settings.hot.clone()));
    let keys = KeyRing::new(creds.api_key().as_deref());
    if creds.api_key().is_none() && (has(Role::Ingest) || has(Role::Control)) {
        tracing::warn!(
            "MUTT_API_KEY is not set: only keys created through the control API are accepted"
        );
    }
    let rules = RuleCache::default();
    let rules_loaded = Flag::new("rules_loaded");
    let audit_writes = Flag::new("audit_writes");
    let ops_state = OpsState {
        roles: roles.iter().map(|r| r.name()).collect(),
        consumer: settings.consumer.clone(),
        bus: Some(bus.clone()),
        store: store.clone(),
        flags: if has(Role::Alerter) {
            vec![rules_loaded.clone(), audit_writes.clone()]
        } else {
            Vec::new()
        },
    };
    // The ops listener and the control-plane link outlive the roles, so that probes see
    // the drain and settings keep applying while work finishes.
    let ops_stop = CancellationToken::new();
    let ops_task = tokio::spawn(ops::serve(
        ops_listener,
        ops_state.clone(),
        ops_stop.clone(),
    ));
    let live = Live {
        bus: bus.clone(),
        base: settings.hot.clone(),
        hot: hot_tx,
        roles: roles.iter().map(|r| r.name().to_string()).collect(),
        consumer: settings.consumer.clone(),
        log,
        rules_changed: has(Role::Alerter).then(|| rules.reload_signal()),
        keys: (has(Role::Ingest) || has(Role::Control)).then(|| keys.clone()),
        credentials: creds.clone(),
        ops: ops_state,
    };
    let live_task = tokio::spawn(live.run(ops_stop.clone()));
    if let Some(store) = &store {
        tokio::spawn(mutt_worker::credentials::follow_database(
            creds.clone(),
            store.clone(),
            ops_stop.clone(),
        ));
    }

    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    for role in roles {
        let span = tracing::info_span!("role", role = role.name(), consumer = %settings.consumer);
        let stop = shutdown.clone();
        match role {
            Role::Ingest => {
                // The alerters' group exists from the start, so that the lag that admission
                // control reads is real even before the first alerter runs.
                let events = bus.names().events();
                connect("the alerter group", &shutdown, || {
                    bus.ensure_group(&events, mutt_bus::names::ALERTER_GROUP)
                })
                .await?;
                let lag = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let replication = if settings.ingest.min_replicas > 0 {
                    let own = connect("Redis (replicated appends)", &shutdown, || {
                        bus.with_own_connection()
                    })
                    .await?;
                    Some(mutt_ingest::Replication {
                        bus: own,
                        min: settings.ingest.min_replicas,
                        timeout: settings.ingest.replica_timeout,
                    })
                } else {
                    None
                };
                let state = Arc::new(IngestState {
                    bus: bus.clone(),
                    keys: keys.clone(),
                    settings: settings.ingest.clone(),
                    stream: bus.names().events(),
                    hot: hot.clone(),
                    lag: lag.clone(),
                    budget: mutt_ingest::body::Budget::new(settings.ingest.max_inflight_bytes),
                    replication,
                });
                spawn_beside(
                    &mut tasks,
                    span.clone(),
                    mutt_ingest::watch_lag(bus.clone(), bus.names().events(), lag, stop.clone()),
                );
                if let Some(native) = native_listeners.take() {
                    for (source, addr) in native.addresses() {
                        tracing::info!(parent: &span, listen = %addr, source = source.as_str(), "ingest listening");
                    }
                    let communities = creds.subscribe(SecretName::SnmpCommunities);
                    for serve in native.serve(state.clone(), communities, stop.clone()) {
                        spawn_beside(&mut tasks, span.clone(), serve);
                    }
                }
                let Some(listener) = ingest_listener.take() else {
                    continue;
                };
                spawn_api(
                    &mut tasks,
                    Role::Ingest,
                    settings.ingest_listen,
                    span,
                    mutt_ingest::serve(listener, state, stop),
                );
            }
            Role::Alerter => {
                let Some(store) = store.clone() else { continue };
                let a = Alerter {
                    bus: bus.clone(),
                    store,
                    hot: hot.clone(),
                    limits: settings.ingest.limits.clone(),
                    consumer: settings.consumer.clone(),
                    read_block: settings.read_block,
                    rules: rules.clone(),
                    ready: rules_loaded.clone(),
                    audit_writes: audit_writes.clone(),
                    leases: Leases::default(),
                    concurrency: settings.alerter.concurrency,
                };
                tasks.spawn(a.run(stop).instrument(span));
            }
            Role::Forwarder => {
                let Some(webhook) = webhook.clone() else {
                    continue;
                };
                let f = Forwarder {
                    bus: bus.clone(),
                    webhook,
                    concurrency: settings.forwarder.concurrency,
                    hot: hot.clone(),
                    limits: settings.ingest.limits.clone(),
                    consumer: settings.consumer.clone(),
                    read_block: settings.read_block,
                    leases: Leases::default(),
                };
                tasks.spawn(f.run(stop).instrument(span));
            }
            Role::Control => {
                let Some(store) = store.clone() else { continue };
                let Some(listener) = control_listener.take() else {
                    continue;
                };
                let state = Arc::new(ControlState {
                    bus: bus.clone(),
                    store,
                    keys: keys.clone(),
                    hot: hot.clone(),
                    prometheus: Prometheus::new(&settings.prometheus_url)?,
                    credentials: creds.clone(),
                });
                let background = Background {
                    state: state.clone(),
                    consumer: settings.consumer.clone(),
                };
                spawn_beside(&mut tasks, span.clone(), background.run(stop.clone()));
                spawn_api(
                    &mut tasks,
                    Role::Control,
                    settings.control_listen,
                    span,
                    mutt_control::serve(listener, state, stop),
                );
            }
        }
    }

    // A role that ends on its own (an error) stops the whole process: a half-running
    // process would look healthy to its orchestrator.
    let mut result = Ok(());
    tokio::select! {
        _ = shutdown.cancelled() => {}
        Some(done) = tasks.join_next() => {
            result = flatten(done);
            if let Err(e) = &result { tracing::error!(error = %e, "a role stopped; shutting down"); }
            shutdown.cancel();
        }
    }
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = flatten(done) {
                tracing::error!(error = %e, "role failed while stopping");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace = ?settings.shutdown_grace, "grace period over; unfinished entries stay pending for redelivery");
        tasks.abort_all();
    }
    ops_stop.cancel();
    let _ = ops_task.await;
    let _ = live_task.await;
    if let Some(s) = &store {
        s.close().await;
    }
    tracing::info!("stopped");
    result
}

/// Spawns a role's HTTP API, saying where it listens.
fn spawn_api(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    role: Role,
    listen: SocketAddr,
    span: tracing::Span,
    serve: impl Future<Output = std::io::Result<()>> + Send + 'static,
) {
    tracing::info!(parent: &span, listen = %listen, "{} listening", role.name());
    tasks.spawn(async move { serve.await.map_err(Into::into) }.instrument(span));
}

/// Spawns work that runs beside a role's API until the role stops, and cannot fail (the
/// ingest lag watch, the control plane's background jobs).
fn spawn_beside(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    span: tracing::Span,
    work: impl Future<Output = ()> + Send + 'static,
) {
    tasks.spawn(
        async move {
            work.await;
            Ok(())
        }
        .instrument(span),
    );
}

fn flatten(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match r {
        Ok(r) => r,
        Err(e) => Err(anyhow::anyhow!("task failed: {e}")),
    }
}
