//! Process settings: environment variables, optionally a TOML file (`--config`), defaults.
//!
//! Every setting has one environment name (`MUTT_REDIS_URL`) and one file key, the same
//! name in lower case without the `MUTT_` prefix (`redis_url`). The environment wins over
//! the file, the file over the default. Everything is validated at start; all problems are
//! reported together, each naming its setting, so a bad deployment fails once, clearly.
//!
//! # Layout
//!
//! - `registry`: every static setting, one line each (variable, field, default, parser,
//!   description): the source of loading, file keys and the README table.
//! - `parse`: the parsers of the values and their messages.

mod parse;
mod registry;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::event::Limits;
use crate::hot::{self, HotConfig, HotError};
use crate::secret::Secret;
use crate::url::password as url_password;

pub use registry::{Initial, REGISTRY, Spec};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Ingest settings.
#[derive(Debug, Clone, Default)]
pub struct IngestSettings {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Bytes of request bodies held at once across all requests (503 beyond).
    pub max_inflight_bytes: usize,
    /// How long a request sent with an `Idempotency-Key` is remembered: a resend within
    /// it is not appended again.
    pub idempotency_window: Duration,
    /// Most events in one request.
    pub max_batch_items: usize,
    /// Per-event limits.
    pub limits: Limits,
    /// A request that takes longer is answered 408/503 and nothing of it is accepted.
    pub request_timeout: Duration,
    /// Replicas that must hold a batch before ingest acknowledges it (`WAIT`); 0: the
    /// master's memory is enough.
    pub min_replicas: usize,
    /// How long ingest waits for them before answering 503.
    pub replica_timeout: Duration,
}

/// The native syslog listeners of `mutt ingest` (each unset: off).
#[derive(Debug, Clone, Default)]
pub struct SyslogSettings {
    /// `MUTT_SYSLOG_UDP_LISTEN`.
    pub udp_listen: Option<SocketAddr>,
    /// `MUTT_SYSLOG_TCP_LISTEN`.
    pub tcp_listen: Option<SocketAddr>,
    /// `MUTT_SYSLOG_TLS_LISTEN`.
    pub tls_listen: Option<SocketAddr>,
    /// `MUTT_SYSLOG_TLS_CERT_FILE`: the server's certificate chain (PEM).
    pub tls_cert_file: Option<PathBuf>,
    /// `MUTT_SYSLOG_TLS_KEY_FILE`: its private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// `MUTT_SYSLOG_TIMEZONE`: the offset from UTC, in seconds, of time stamps that carry
    /// no zone (RFC 3164).
    pub timezone_offset_secs: i32,
    /// `MUTT_SYSLOG_MAX_CONNECTIONS`: stream connections held at once per listener.
    pub max_connections: usize,
}

impl SyslogSettings {
    /// Whether any syslog listener is on.
    pub fn any(&self) -> bool {
        self.udp_listen.is_some() || self.tcp_listen.is_some() || self.tls_listen.is_some()
    }
}

/// The SNMP notification listener of `mutt ingest` (unset: off).
#[derive(Debug, Clone, Default)]
pub struct SnmpSettings {
    /// `MUTT_SNMP_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `MUTT_SNMP_TRAPS_FILE`: names and severities of trap OIDs beyond the built-in ones.
    pub traps_file: Option<PathBuf>,
}

/// Alerter settings fixed at start (the rest are hot, see [`crate::hot`]).
#[derive(Debug, Clone, Default)]
pub struct AlerterSettings {
    /// Batches processed at once per alerter.
    pub concurrency: usize,
}

/// Forwarder settings fixed at start (the rest are hot, see [`crate::hot`]).
#[derive(Debug, Clone, Default)]
pub struct ForwarderSettings {
    /// Webhook requests in flight at once per forwarder (sizes the connection pool).
    pub concurrency: usize,
}

/// Where the rotatable secrets come from at start. A `*_FILE` is re-read while the process
/// runs (a Kubernetes Secret mounted as files changes in place); the control plane's
/// rotations take precedence over both (see `mutt_core::credentials`).
#[derive(Debug, Clone, Default)]
pub struct SecretSettings {
    /// `MUTT_REDIS_PASSWORD`, else the password in `MUTT_REDIS_URL`.
    pub redis_password: Option<Secret>,
    /// `MUTT_REDIS_PASSWORD_FILE`.
    pub redis_password_file: Option<PathBuf>,
    /// `MUTT_DATABASE_PASSWORD`, else the password in `MUTT_DATABASE_URL`.
    pub database_password: Option<Secret>,
    /// `MUTT_DATABASE_PASSWORD_FILE`.
    pub database_password_file: Option<PathBuf>,
    /// `MUTT_SNMP_COMMUNITIES`: the accepted SNMP communities, comma-separated.
    pub snmp_communities: Option<Secret>,
    /// `MUTT_SNMP_COMMUNITIES_FILE`.
    pub snmp_communities_file: Option<PathBuf>,
    /// `MUTT_WEBHOOK_TOKEN_FILE` (the value itself is [`Settings::webhook_token`]).
    pub webhook_token_file: Option<PathBuf>,
    /// `MUTT_API_KEY_FILE` (the value itself is [`Settings::api_key`]).
    pub api_key_file: Option<PathBuf>,
    /// `MUTT_SECRET_FILE_POLL`: how often the files are checked for a change.
    pub file_poll: Duration,
    /// `MUTT_SECRET_FILE_OVERLAP`: how long the previous value of a changed file stays
    /// accepted as a fallback.
    pub file_overlap: Duration,
}

/// Everything a `mutt` process needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `MUTT_REDIS_URL`.
    pub redis_url: String,
    /// `MUTT_REDIS_SENTINELS`: where to ask for the master, when Sentinel is used.
    pub redis_sentinels: Option<Vec<String>>,
    /// `MUTT_REDIS_MASTER_NAME`: the master's name at the Sentinels.
    pub redis_master_name: String,
    /// `MUTT_DATABASE_URL`.
    pub database_url: String,
    /// `MUTT_PREFIX`: namespace of every Redis key and channel.
    pub prefix: String,
    /// `MUTT_INGEST_LISTEN`.
    pub ingest_listen: SocketAddr,
    /// `MUTT_CONTROL_LISTEN`.
    pub control_listen: SocketAddr,
    /// `MUTT_OPS_LISTEN`.
    pub ops_listen: SocketAddr,
    /// `MUTT_WEBHOOK_URL`.
    pub webhook_url: Option<String>,
    /// `MUTT_WEBHOOK_TOKEN`.
    pub webhook_token: Option<Secret>,
    /// `MUTT_API_KEY`.
    pub api_key: Option<Secret>,
    /// `MUTT_CONSUMER`: this process's name in the consumer groups.
    pub consumer: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otel_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` (false) or `http/protobuf` (true).
    pub otel_http: bool,
    /// `OTEL_SERVICE_NAME`, overriding `mutt-<role>`.
    pub otel_service_name: Option<String>,
    /// `MUTT_TRACE_SAMPLE_RATIO`: share of new traces sampled (parent-based).
    pub trace_sample_ratio: f64,
    /// `MUTT_PROMETHEUS_URL`: the Prometheus the SLO endpoint asks.
    pub prometheus_url: String,
    /// `MUTT_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// How long a stopping process may take to finish what it holds.
    pub shutdown_grace: Duration,
    /// `XREADGROUP … BLOCK` time.
    pub read_block: Duration,
    /// Ingest settings.
    pub ingest: IngestSettings,
    /// The syslog listeners.
    pub syslog: SyslogSettings,
    /// The SNMP listener.
    pub snmp: SnmpSettings,
    /// Alerter settings.
    pub alerter: AlerterSettings,
    /// Forwarder settings.
    pub forwarder: ForwarderSettings,
    /// The hot settings' values at start (environment, file, defaults).
    pub hot: HotConfig,
    /// Secret sources.
    pub secrets: SecretSettings,
}

/// One setting that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The setting as the operator wrote it (`MUTT_OPS_LISTEN`, or `ops_listen in FILE`).
    pub setting: String,
    /// What is wrong.
    pub message: String,
}

/// All the problems found in the settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError(pub Vec<SettingError>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid settings:")?;
        for e in &self.0 {
            write!(f, "\n  {}: {}", e.setting, e.message)?;
        }
        Ok(())
    }
}

/// Where setting values come from: the environment (injectable, so tests never mutate the
/// process environment) and the parsed TOML file.
#[derive(Debug)]
pub struct Sources<'a, E> {
    env: E,
    file: Option<(&'a str, toml::Table)>,
}

impl<'a, E: Fn(&str) -> Option<String>> Sources<'a, E> {
    /// Settings from `env` and, if given, the TOML text of the file at `path`.
    pub fn new(env: E, file: Option<(&'a str, &str)>) -> Result<Self, SettingsError> {
        let file = match file {
            None => None,
            Some((path, text)) => Some((
                path,
                text.parse::<toml::Table>().map_err(|e| {
                    SettingsError(vec![SettingError {
                        setting: path.to_string(),
                        message: format!("not valid TOML: {e}"),
                    }])
                })?,
            )),
        };
        Ok(Self { env, file })
    }

    /// The operator's text for a setting and the name to report it under: the
    /// environment's, else the file's. A file value of the wrong TOML type is an error.
    fn raw(&self, env_name: &str, errors: &mut Vec<SettingError>) -> Option<(String, String)> {
        if let Some(v) = (self.env)(env_name) {
            return Some((v, env_name.to_string()));
        }
        let (path, table) = self.file.as_ref()?;
        let key = registry::file_key(env_name);
        let v = table.get(&key)?;
        let s = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                errors.push(SettingError {
                    setting: format!("{key} in {path}"),
                    message: format!(
                        "expected a string or a number, found a {}",
                        other.type_str()
                    ),
                });
                return None;
            }
        };
        Some((s, format!("{key} in {path}")))
    }
}

impl Settings {
    /// Placeholders that [`REGISTRY`] then overwrites, each with the operator's value or
    /// its default; only the consumer name, computed at start, is final here.
    fn blank(consumer: String) -> Self {
        let unset = SocketAddr::from(([0, 0, 0, 0], 0));
        Settings {
            redis_url: String::new(),
            redis_sentinels: None,
            redis_master_name: String::new(),
            database_url: String::new(),
            prefix: String::new(),
            ingest_listen: unset,
            control_listen: unset,
            ops_listen: unset,
            webhook_url: None,
            webhook_token: None,
            api_key: None,
            consumer,
            otel_endpoint: None,
            otel_http: false,
            otel_service_name: None,
            trace_sample_ratio: 0.0,
            prometheus_url: String::new(),
            log_format: LogFormat::default(),
            shutdown_grace: Duration::ZERO,
            read_block: Duration::ZERO,
            ingest: IngestSettings::default(),
            syslog: SyslogSettings::default(),
            snmp: SnmpSettings::default(),
            alerter: AlerterSettings::default(),
            forwarder: ForwarderSettings::default(),
            hot: HotConfig::default(),
            secrets: SecretSettings::default(),
        }
    }

    /// Reads and validates every setting.
    pub fn load<E: Fn(&str) -> Option<String>>(
        src: &Sources<'_, E>,
    ) -> Result<Self, SettingsError> {
        let mut errors = Vec::new();
        let consumer = format!(
            "{}-{}",
            (src.env)("HOSTNAME").unwrap_or_else(|| "mutt".into()),
            std::process::id()
        );
        let mut s = Settings::blank(consumer);
        for spec in REGISTRY {
            let (raw, setting) = match src.raw(spec.env, &mut errors) {
                Some(given) => given,
                None => match spec.initial {
                    Initial::Value(v) => (v.to_string(), format!("{} (default)", spec.env)),
                    Initial::Absent(_) => continue,
                },
            };
            if let Err(message) = spec.apply(&mut s, raw.trim()) {
                errors.push(SettingError { setting, message });
            }
        }
        // One source per secret: two would leave it unclear which one a rotation updates.
        let sec = &s.secrets;
        let url_pw = |u: &str| url_password(u).is_some();
        for (a, a_set, b, b_set) in [
            (
                "MUTT_REDIS_PASSWORD",
                sec.redis_password.is_some(),
                "MUTT_REDIS_PASSWORD_FILE",
                sec.redis_password_file.is_some(),
            ),
            (
                "MUTT_DATABASE_PASSWORD",
                sec.database_password.is_some(),
                "MUTT_DATABASE_PASSWORD_FILE",
                sec.database_password_file.is_some(),
            ),
            (
                "MUTT_WEBHOOK_TOKEN",
                s.webhook_token.is_some(),
                "MUTT_WEBHOOK_TOKEN_FILE",
                sec.webhook_token_file.is_some(),
            ),
            (
                "MUTT_API_KEY",
                s.api_key.is_some(),
                "MUTT_API_KEY_FILE",
                sec.api_key_file.is_some(),
            ),
            (
                "MUTT_REDIS_URL",
                url_pw(&s.redis_url),
                "MUTT_REDIS_PASSWORD or MUTT_REDIS_PASSWORD_FILE",
                sec.redis_password.is_some() || sec.redis_password_file.is_some(),
            ),
            (
                "MUTT_SNMP_COMMUNITIES",
                sec.snmp_communities.is_some(),
                "MUTT_SNMP_COMMUNITIES_FILE",
                sec.snmp_communities_file.is_some(),
            ),
            (
                "MUTT_DATABASE_URL",
                url_pw(&s.database_url),
                "MUTT_DATABASE_PASSWORD or MUTT_DATABASE_PASSWORD_FILE",
                sec.database_password.is_some() || sec.database_password_file.is_some(),
            ),
        ] {
            if a_set && b_set {
                errors.push(SettingError {
                    setting: b.to_string(),
                    message: format!("the secret is also given by {a}: give it in one place only"),
                });
            }
        }
        // TLS needs its certificate and key; the files without the listener are a mistake
        // too (the operator believes TLS is on).
        let sys = &s.syslog;
        for (file, set) in [
            ("MUTT_SYSLOG_TLS_CERT_FILE", sys.tls_cert_file.is_some()),
            ("MUTT_SYSLOG_TLS_KEY_FILE", sys.tls_key_file.is_some()),
        ] {
            if sys.tls_listen.is_some() != set {
                errors.push(SettingError {
                    setting: file.into(),
                    message: if set {
                        "set without MUTT_SYSLOG_TLS_LISTEN: no TLS listener uses it".into()
                    } else {
                        "MUTT_SYSLOG_TLS_LISTEN needs it".into()
                    },
                });
            }
        }
        // A budget smaller than the largest body would refuse every large body forever.
        if s.ingest.max_inflight_bytes < s.ingest.max_body_bytes {
            errors.push(SettingError {
                setting: "MUTT_INGEST_MAX_INFLIGHT_BYTES".into(),
                message: format!(
                    "{} is less than MUTT_INGEST_MAX_BODY_BYTES ({}): the largest body could never be read",
                    s.ingest.max_inflight_bytes, s.ingest.max_body_bytes
                ),
            });
        }
        for spec in hot::REGISTRY {
            if let Some((raw, name)) = src.raw(&spec.env(), &mut errors)
                && let Err(e) = s.hot.set(spec.key, &raw)
            {
                let message = match e {
                    HotError::Invalid {
                        value, expected, ..
                    } => format!("{value:?} is not {expected}"),
                    other => other.to_string(),
                };
                errors.push(SettingError {
                    setting: name,
                    message,
                });
            }
        }
        if let Some((path, table)) = &src.file {
            for key in table.keys() {
                let known = REGISTRY.iter().any(|s| s.file_key() == *key)
                    || hot::REGISTRY.iter().any(|s| s.key == key);
                if !known {
                    errors.push(SettingError {
                        setting: format!("{key} in {path}"),
                        message: "unknown setting".into(),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(SettingsError(errors))
        }
    }

    /// Checks what a role needs beyond the defaults, naming the missing setting.
    pub fn require_webhook(&self) -> Result<&str, SettingsError> {
        self.webhook_url.as_deref().ok_or_else(|| {
            SettingsError(vec![SettingError {
                setting: "MUTT_WEBHOOK_URL".into(),
                message: "the forwarder needs the webhook URL alerts are POSTed to".into(),
            }])
        })
    }
}
