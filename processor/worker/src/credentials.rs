//! The credentials a process uses, and how they follow rotations.
//!
//! Each rotatable secret ([`SecretName`]) has a [`CredentialState`] here, from three
//! sources, latest first:
//!
//! 1. the control plane's secret store (`{p}:secrets`), read on every announcement and
//!    every second: a stored state with a higher generation replaces the local one;
//! 2. a `*_FILE` setting, re-read every `MUTT_SECRET_FILE_POLL`: a changed file makes its
//!    new value the active one, and keeps the previous value as the fallback for
//!    `MUTT_SECRET_FILE_OVERLAP` (a Kubernetes Secret updated in place);
//! 3. the value at start (environment, or the password in the URL).
//!
//! The users follow the states: Redis connections through [`RedisAuth`] (the active
//! password, re-authenticating live connections), the database pool through
//! [`follow_database`] (a new pool when the active password changes), the webhook client by
//! reading the state on each request (active first, the fallback after a 401). Each process
//! reports the generation it applied per secret with its config version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mutt_bus::Bus;
use mutt_bus::auth::RedisAuth;
use mutt_core::credentials::{CredentialState, Phase, SecretName, StoredState};
use mutt_core::secret::Secret;
use mutt_core::settings::Settings;
use mutt_core::url::{password as url_password, username as url_username};
use mutt_store::Store;
use mutt_telemetry::metrics;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A secret's state in this process; `None` when the process has no such secret.
pub type StateRx = watch::Receiver<Option<Arc<CredentialState>>>;

struct Slot {
    state: watch::Sender<Option<Arc<CredentialState>>>,
    /// The active value alone, for [`RedisAuth`]: it changes only when the value to use
    /// does, so that a step that keeps it (stage, retire) causes no re-authentication.
    active: watch::Sender<Secret>,
    file: Option<PathBuf>,
    /// What the file held when last read.
    file_value: Mutex<Option<String>>,
    /// When the fallback kept after a file change is dropped.
    file_retire_at: Mutex<Option<Instant>>,
    /// The generation this process's users of the secret have applied (the database pool
    /// reports it once the new pool is connected).
    applied: watch::Sender<i64>,
    /// Whether a user of the secret confirms a change before it counts as applied (set by
    /// the database follower in processes that have a database).
    confirmed_by_user: AtomicBool,
}

/// The credentials of a process. Cheap to clone.
#[derive(Clone)]
pub struct Credentials {
    slots: Arc<BTreeMap<SecretName, Slot>>,
    api_key_file: Option<PathBuf>,
    api_key_value: Arc<Mutex<Option<String>>>,
    file_overlap: Duration,
    file_poll: Duration,
    last_file_check: Arc<Mutex<Option<Instant>>>,
    generations: watch::Sender<BTreeMap<String, i64>>,
    /// Held across every read-modify-write of a state: the control API, the live task's
    /// store sync and file checks must not overwrite each other's newer state.
    transitions: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("secrets", &self.slots.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Reads a secret file: its content without the trailing newline editors and `kubectl`
/// leave. The error names the setting, never the content.
pub fn read_secret_file(path: &Path, setting: &str) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{setting}: cannot read {}", path.display()))?
        .len();
    if len > 64 * 1024 {
        anyhow::bail!("{setting}: {} is larger than 64 KiB", path.display());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{setting}: cannot read {}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        anyhow::bail!("{setting}: {} is empty", path.display());
    }
    Ok(value)
}

impl Credentials {
    /// The credentials at start, from the settings (files are read now; an unreadable
    /// file stops the process with the setting's name).
    pub fn load(settings: &Settings) -> anyhow::Result<Self> {
        let sec = &settings.secrets;
        // Per secret: its file and the setting naming it, else the value set, else the
        // password in the URL. Every file is read before any value is checked.
        let sources = [
            (
                SecretName::RedisPassword,
                &sec.redis_password_file,
                "MUTT_REDIS_PASSWORD_FILE",
                sec.redis_password.as_ref(),
                url_password(&settings.redis_url),
            ),
            (
                SecretName::DatabasePassword,
                &sec.database_password_file,
                "MUTT_DATABASE_PASSWORD_FILE",
                sec.database_password.as_ref(),
                url_password(&settings.database_url),
            ),
            (
                SecretName::WebhookToken,
                &sec.webhook_token_file,
                "MUTT_WEBHOOK_TOKEN_FILE",
                settings.webhook_token.as_ref(),
                None,
            ),
            (
                SecretName::SnmpCommunities,
                &sec.snmp_communities_file,
                "MUTT_SNMP_COMMUNITIES_FILE",
                sec.snmp_communities.as_ref(),
                None,
            ),
        ];
        let mut initial = Vec::with_capacity(sources.len());
        for (name, file, setting, value, url) in sources {
            let value = match file {
                Some(p) => Some(Secret::new(read_secret_file(p, setting)?)),
                None => value.cloned().or_else(|| url.map(Secret::new)),
            };
            initial.push((name, value, file.clone()));
        }
        let mut slots = BTreeMap::new();
        for (name, value, file) in initial {
            // A control character would break the header or the protocol that carries it.
            if value
                .as_ref()
                .is_some_and(|v| v.expose().chars().any(char::is_control))
            {
                anyhow::bail!("the {name} setting contains control characters");
            }
            let state = value
                .clone()
                .map(|v| Arc::new(CredentialState::stable(v, 0)));
            slots.insert(
                name,
                Slot {
                    state: watch::channel(state).0,
                    active: watch::channel(value.clone().unwrap_or_else(|| Secret::new(""))).0,
                    file_value: Mutex::new(
                        file.as_ref().and(value.map(|v| v.expose().to_string())),
                    ),
                    file,
                    file_retire_at: Mutex::new(None),
                    applied: watch::channel(0).0,
                    confirmed_by_user: AtomicBool::new(false),
                },
            );
        }
        let api_key_value = match &sec.api_key_file {
            Some(p) => Some(read_secret_file(p, "MUTT_API_KEY_FILE")?),
            None => settings.api_key.as_ref().map(|k| k.expose().to_string()),
        };
        let creds = Self {
            slots: Arc::new(slots),
            api_key_file: sec.api_key_file.clone(),
            api_key_value: Arc::new(Mutex::new(api_key_value)),
            file_overlap: sec.file_overlap,
            file_poll: sec.file_poll,
            last_file_check: Arc::default(),
            generations: watch::channel(BTreeMap::new()).0,
            transitions: Arc::default(),
        };
        creds.publish_generations();
        Ok(creds)
    }

    fn slot(&self, name: SecretName) -> &Slot {
        // Every name has a slot (built from SecretName's variants above).
        &self.slots[&name]
    }

    /// The state of `name` now.
    pub fn state(&self, name: SecretName) -> Option<Arc<CredentialState>> {
        self.slot(name).state.borrow().clone()
    }

    /// Follows the state of `name`.
    pub fn subscribe(&self, name: SecretName) -> StateRx {
        self.slot(name).state.subscribe()
    }

    /// The API key to accept as the bootstrap key (`MUTT_API_KEY` or its file) now.
    pub fn api_key(&self) -> Option<String> {
        lock(&self.api_key_value).clone()
    }

    /// Credentials for Redis connections: the ACL user of `url` and the active password,
    /// or `None` when MUTT connects without a password.
    pub fn redis_auth(&self, url: &str) -> Option<RedisAuth> {
        self.state(SecretName::RedisPassword)?;
        Some(RedisAuth::new(
            url_username(url),
            self.slot(SecretName::RedisPassword).active.subscribe(),
        ))
    }

    /// The generation applied per secret, for the config-version report.
    pub fn generations(&self) -> watch::Receiver<BTreeMap<String, i64>> {
        self.generations.subscribe()
    }

    /// Records that the users of `name` applied `generation` (the database pool).
    pub fn confirm(&self, name: SecretName, generation: i64) {
        self.slot(name).applied.send_replace(generation);
        self.publish_generations();
    }

    fn publish_generations(&self) {
        let map: BTreeMap<String, i64> = self
            .slots
            .iter()
            .filter_map(|(name, slot)| {
                let state = slot.state.borrow().clone()?;
                let g = if slot.confirmed_by_user.load(Ordering::Relaxed) {
                    *slot.applied.borrow()
                } else {
                    state.generation
                };
                Some((name.as_str().to_string(), g))
            })
            .collect();
        for (name, g) in &map {
            metrics()
                .credential_generation
                .with_label_values(&[name.as_str()])
                .set(*g);
        }
        self.generations.send_if_modified(|m| {
            let changed = *m != map;
            *m = map;
            changed
        });
    }

    fn set(&self, name: SecretName, state: CredentialState) {
        let slot = self.slot(name);
        let active = state.active().clone();
        slot.active.send_if_modified(|a| {
            let changed = *a != active;
            *a = active;
            changed
        });
        slot.state.send_replace(Some(Arc::new(state)));
        self.publish_generations();
    }

    /// Adopts stored states newer than the local ones. Returns the secrets that changed.
    pub fn apply_stored(&self, stored: BTreeMap<SecretName, StoredState>) -> Vec<SecretName> {
        let _t = lock(&self.transitions);
        let mut changed = Vec::new();
        for (name, s) in stored {
            let local = self.state(name).map_or(-1, |st| st.generation);
            if s.generation > local {
                let generation = s.generation;
                // A control-plane rotation supersedes a file change's overlap.
                *lock(&self.slot(name).file_retire_at) = None;
                self.set(name, CredentialState::from(s));
                tracing::info!(secret = %name, generation, "secret state applied");
                changed.push(name);
            }
        }
        changed
    }

    /// At start, after the first store sync: a file holding a value the adopted state does
    /// not know is newer information (a rotation done through files only, after an earlier
    /// one through the control plane), and wins.
    pub fn reconcile_files(&self) {
        let _t = lock(&self.transitions);
        for (&name, slot) in self.slots.iter() {
            let Some(v) = lock(&slot.file_value).clone() else {
                continue;
            };
            let known = self
                .state(name)
                .is_some_and(|st| st.accepted().contains(&&Secret::new(v.clone())));
            if !known {
                self.file_changed(name, Secret::new(v));
            }
        }
    }

    /// Reads the secret store and adopts what is newer. Errors are logged by the caller.
    pub async fn sync(&self, bus: &Bus) -> Result<Vec<SecretName>, mutt_bus::BusError> {
        Ok(self.apply_stored(bus.secret_states().await?))
    }

    /// Re-reads the secret files when due, and drops file fallbacks whose overlap ended.
    /// Returns the secrets that changed, and whether the API key file did.
    pub fn check_files(&self) -> (Vec<SecretName>, bool) {
        let mut changed = Vec::new();
        {
            let mut last = lock(&self.last_file_check);
            if last.is_some_and(|t| t.elapsed() < self.file_poll) {
                return (changed, false);
            }
            *last = Some(Instant::now());
        }
        let _t = lock(&self.transitions);
        for (&name, slot) in self.slots.iter() {
            if let Some(path) = &slot.file {
                match read_secret_file(path, name.as_str()) {
                    Ok(v) => {
                        let mut seen = lock(&slot.file_value);
                        if seen.as_deref() != Some(v.as_str()) {
                            *seen = Some(v.clone());
                            drop(seen);
                            if self.file_changed(name, Secret::new(v)) {
                                changed.push(name);
                            }
                        }
                    }
                    // Mid-update (Kubernetes swaps a symlink) or removed: keep what is in use.
                    Err(e) => tracing::debug!(secret = %name, error = %e, "secret file not read"),
                }
            }
            let due = lock(&slot.file_retire_at).is_some_and(|t| t <= Instant::now());
            if due {
                *lock(&slot.file_retire_at) = None;
                if let Some(st) = self.state(name)
                    && st.phase == Phase::Promoted
                {
                    let mut s = (*st).clone();
                    if let Some(n) = s.next.take() {
                        s.current = n;
                    }
                    s.phase = Phase::Stable;
                    self.set(name, s);
                    tracing::info!(secret = %name, "previous value of the secret file no longer accepted");
                    changed.push(name);
                }
            }
        }
        let mut api_changed = false;
        if let Some(p) = &self.api_key_file
            && let Ok(v) = read_secret_file(p, "MUTT_API_KEY_FILE")
        {
            let mut cur = lock(&self.api_key_value);
            if cur.as_deref() != Some(v.as_str()) {
                *cur = Some(v);
                api_changed = true;
                tracing::info!(
                    "MUTT_API_KEY_FILE changed: the new key is accepted, the previous one for the overlap"
                );
            }
        }
        (changed, api_changed)
    }

    /// A file now holds `value`: it becomes the active value and the one in use so far
    /// stays accepted for the overlap. Values the state already knows change nothing (the
    /// operator wrote the value a control-plane rotation staged).
    fn file_changed(&self, name: SecretName, value: Secret) -> bool {
        if let Err(e) = mutt_core::credentials::check_value(name, value.expose()) {
            tracing::warn!(secret = %name, error = %e, "secret file ignored");
            return false;
        }
        let Some(st) = self.state(name) else {
            self.set(name, CredentialState::stable(value, 0));
            return true;
        };
        if st.accepted().contains(&&value) {
            return false;
        }
        let s = CredentialState {
            generation: st.generation,
            phase: Phase::Promoted,
            current: st.active().clone(),
            next: Some(value),
            changed_ms: mutt_core::now_ms(),
        };
        self.set(name, s);
        *lock(&self.slot(name).file_retire_at) = Some(Instant::now() + self.file_overlap);
        tracing::info!(secret = %name, overlap = ?self.file_overlap, "secret file changed: new value in use, previous one accepted for the overlap");
        true
    }

    /// How long the previous value of a changed file stays accepted.
    pub fn file_overlap(&self) -> Duration {
        self.file_overlap
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Keeps `store` on the active database password: when it changes, a new pool is connected
/// with it and replaces the old one (whose queries finish); a failure keeps the old pool
/// and is retried on the next change or every few seconds.
pub async fn follow_database(creds: Credentials, store: Store, stop: CancellationToken) {
    creds
        .slot(SecretName::DatabasePassword)
        .confirmed_by_user
        .store(true, Ordering::Relaxed);
    creds.publish_generations();
    let mut rx = creds.subscribe(SecretName::DatabasePassword);
    // What the pool really connects with (the state may have moved on already).
    let mut in_use: Option<Secret> = store.password_in_use();
    let retry = Duration::from_secs(2);
    loop {
        let state = rx.borrow_and_update().clone();
        if let Some(st) = state {
            let active = st.active().clone();
            if in_use.as_ref() != Some(&active) {
                match store.use_password(&active).await {
                    Ok(()) => {
                        in_use = Some(active);
                        tracing::info!(secret = %SecretName::DatabasePassword, generation = st.generation, "database connections now use the new password");
                        creds.confirm(SecretName::DatabasePassword, st.generation);
                    }
                    Err(e) => {
                        tracing::warn!(secret = %SecretName::DatabasePassword, error = %e, generation = st.generation, "cannot connect with the new database password; the current connections stay in use");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(retry) => continue,
                        }
                    }
                }
            } else {
                creds.confirm(SecretName::DatabasePassword, st.generation);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests;
