//! Process settings: environment variables, optionally a TOML file (`--config`), defaults.
//!
//! Every setting has one environment name (`MUTT_REDIS_URL`) and one file key, the same
//! name in lower case without the `MUTT_` prefix (`redis_url`). The environment wins over
//! the file, the file over the default. Everything is validated at start; all problems are
//! reported together, each naming its setting, so a bad deployment fails once, clearly.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::event::Limits;
use crate::hot::{HotConfig, HotError, REGISTRY};
use crate::secret::Secret;
use crate::url::{password as url_password, redact as redact_url};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Ingest settings.
#[derive(Debug, Clone)]
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
}

/// Alerter settings fixed at start (the rest are hot, see [`crate::hot`]).
#[derive(Debug, Clone)]
pub struct AlerterSettings {
    /// Batches processed at once per alerter.
    pub concurrency: usize,
}

/// Forwarder settings fixed at start (the rest are hot, see [`crate::hot`]).
#[derive(Debug, Clone)]
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
}

/// The environment name of a file key's setting is `MUTT_` + upper case, except for the
/// OpenTelemetry variable, which keeps its standard name.
fn file_key(env_name: &str) -> String {
    env_name
        .strip_prefix("MUTT_")
        .unwrap_or(env_name)
        .to_ascii_lowercase()
}

struct Reader<'s, 'a, E> {
    src: &'s Sources<'a, E>,
    errors: Vec<SettingError>,
    used: BTreeSet<String>,
}

impl<E: Fn(&str) -> Option<String>> Reader<'_, '_, E> {
    /// The raw value and the name to report it under.
    fn raw(&mut self, env_name: &str) -> Option<(String, String)> {
        let key = file_key(env_name);
        self.used.insert(key.clone());
        if let Some(v) = (self.src.env)(env_name) {
            return Some((v, env_name.to_string()));
        }
        let (path, table) = self.src.file.as_ref()?;
        let v = table.get(&key)?;
        let s = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                self.errors.push(SettingError {
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

    fn get<T>(
        &mut self,
        env_name: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        match self.raw(env_name) {
            None => default,
            Some((raw, name)) => match parse(raw.trim()) {
                Ok(v) => v,
                Err(message) => {
                    self.errors.push(SettingError {
                        setting: name,
                        message,
                    });
                    default
                }
            },
        }
    }

    fn optional<T>(
        &mut self,
        env_name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.get(env_name, None, |s| {
            if s.is_empty() {
                Ok(None)
            } else {
                parse(s).map(Some)
            }
        })
    }
}

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an address such as 0.0.0.0:8080"))
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 250ms, 30s or 5m ({e})"))
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn bounded(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> {
    move |s| {
        let n: u64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number"))?;
        if !(min..=max).contains(&n) {
            return Err(format!("{n} is outside {min}..={max}"));
        }
        Ok(n)
    }
}

fn redis_url(s: &str) -> Result<String, String> {
    if s.starts_with("redis://")
        || s.starts_with("rediss://")
        || s.starts_with("redis+unix://")
        || s.starts_with("unix://")
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{:?} must start with redis:// or rediss://",
            redact_url(s)
        ))
    }
}

fn postgres_url(s: &str) -> Result<String, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_string())
    } else {
        Err(format!("{:?} must start with postgres://", redact_url(s)))
    }
}

fn http_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{:?} must start with http:// or https://", redact_url(s)))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{:?} has no host", redact_url(s)));
    }
    Ok(s.to_string())
}

fn name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} must be 1–128 characters without spaces"));
    }
    Ok(s.to_string())
}

fn secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(Secret::new(s))
}

fn path(s: &str) -> Result<PathBuf, String> {
    if s.contains('\0') {
        return Err("a path cannot contain NUL".into());
    }
    Ok(PathBuf::from(s))
}

impl Settings {
    /// Reads and validates every setting.
    pub fn load<E: Fn(&str) -> Option<String>>(
        src: &Sources<'_, E>,
    ) -> Result<Self, SettingsError> {
        let mut r = Reader {
            src,
            errors: Vec::new(),
            used: BTreeSet::new(),
        };
        let default_consumer = format!(
            "{}-{}",
            (src.env)("HOSTNAME").unwrap_or_else(|| "mutt".into()),
            std::process::id()
        );
        let defaults = Limits::default();
        let s = Settings {
            redis_url: r.get("MUTT_REDIS_URL", "redis://127.0.0.1:6379".into(), redis_url),
            database_url: r.get(
                "MUTT_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/mutt".into(),
                postgres_url,
            ),
            prefix: r.get("MUTT_PREFIX", "mutt".into(), |s| {
                if s.is_empty()
                    || s.len() > 64
                    || s.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    Err(format!("{s:?} must be 1–64 characters without spaces"))
                } else {
                    Ok(s.to_string())
                }
            }),
            ingest_listen: r.get("MUTT_INGEST_LISTEN", ([0, 0, 0, 0], 8080).into(), addr),
            control_listen: r.get("MUTT_CONTROL_LISTEN", ([0, 0, 0, 0], 8090).into(), addr),
            ops_listen: r.get("MUTT_OPS_LISTEN", ([0, 0, 0, 0], 9464).into(), addr),
            webhook_url: r.optional("MUTT_WEBHOOK_URL", http_url),
            webhook_token: r.optional("MUTT_WEBHOOK_TOKEN", secret),
            api_key: r.optional("MUTT_API_KEY", secret),
            consumer: r.get("MUTT_CONSUMER", default_consumer, name),
            otel_endpoint: r.optional("OTEL_EXPORTER_OTLP_ENDPOINT", http_url),
            otel_http: r.get("OTEL_EXPORTER_OTLP_PROTOCOL", false, |s| match s {
                "grpc" => Ok(false),
                "http/protobuf" => Ok(true),
                _ => Err(format!("{s:?} is neither grpc nor http/protobuf")),
            }),
            otel_service_name: r.optional("OTEL_SERVICE_NAME", name),
            prometheus_url: r.get(
                "MUTT_PROMETHEUS_URL",
                "http://127.0.0.1:9090".into(),
                http_url,
            ),
            trace_sample_ratio: r.get("MUTT_TRACE_SAMPLE_RATIO", 1.0, |s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("{s:?} is not a ratio from 0 to 1"))
            }),
            log_format: r.get("MUTT_LOG_FORMAT", LogFormat::Text, |s| {
                match s.to_ascii_lowercase().as_str() {
                    "text" => Ok(LogFormat::Text),
                    "json" => Ok(LogFormat::Json),
                    _ => Err(format!("{s:?} is neither text nor json")),
                }
            }),
            shutdown_grace: r.get(
                "MUTT_SHUTDOWN_GRACE",
                Duration::from_secs(20),
                positive_duration,
            ),
            read_block: r.get("MUTT_READ_BLOCK", Duration::from_millis(1000), |s| {
                let d = positive_duration(s)?;
                if d > Duration::from_secs(60) {
                    return Err("at most 60s, so that shutdown stays prompt".into());
                }
                Ok(d)
            }),
            ingest: IngestSettings {
                max_body_bytes: r.get(
                    "MUTT_INGEST_MAX_BODY_BYTES",
                    16 << 20,
                    bounded(1024, 1 << 30),
                ) as usize,
                max_inflight_bytes: r.get(
                    "MUTT_INGEST_MAX_INFLIGHT_BYTES",
                    64 << 20,
                    bounded(1024, 1 << 40),
                ) as usize,
                idempotency_window: r.get(
                    "MUTT_INGEST_IDEMPOTENCY_WINDOW",
                    Duration::from_secs(3600),
                    positive_duration,
                ),
                max_batch_items: r.get("MUTT_INGEST_MAX_BATCH", 10_000, bounded(1, 1_000_000))
                    as usize,
                limits: Limits {
                    max_message_bytes: r.get(
                        "MUTT_INGEST_MAX_MESSAGE_BYTES",
                        defaults.max_message_bytes as u64,
                        bounded(64, 1 << 20),
                    ) as usize,
                    max_event_bytes: r.get(
                        "MUTT_INGEST_MAX_EVENT_BYTES",
                        defaults.max_event_bytes as u64,
                        bounded(256, 4 << 20),
                    ) as usize,
                    ..defaults
                },
                request_timeout: r.get(
                    "MUTT_INGEST_REQUEST_TIMEOUT",
                    Duration::from_secs(30),
                    positive_duration,
                ),
            },
            alerter: AlerterSettings {
                concurrency: r.get("MUTT_ALERTER_CONCURRENCY", 4, bounded(1, 64)) as usize,
            },
            forwarder: ForwarderSettings {
                concurrency: r.get("MUTT_FORWARDER_CONCURRENCY", 32, bounded(1, 4096)) as usize,
            },
            hot: HotConfig::default(),
            secrets: SecretSettings {
                redis_password: r.optional("MUTT_REDIS_PASSWORD", secret),
                redis_password_file: r.optional("MUTT_REDIS_PASSWORD_FILE", path),
                database_password: r.optional("MUTT_DATABASE_PASSWORD", secret),
                database_password_file: r.optional("MUTT_DATABASE_PASSWORD_FILE", path),
                webhook_token_file: r.optional("MUTT_WEBHOOK_TOKEN_FILE", path),
                api_key_file: r.optional("MUTT_API_KEY_FILE", path),
                file_poll: r.get(
                    "MUTT_SECRET_FILE_POLL",
                    Duration::from_secs(5),
                    positive_duration,
                ),
                file_overlap: r.get(
                    "MUTT_SECRET_FILE_OVERLAP",
                    Duration::from_secs(600),
                    positive_duration,
                ),
            },
        };
        let mut s = s;
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
                "MUTT_DATABASE_URL",
                url_pw(&s.database_url),
                "MUTT_DATABASE_PASSWORD or MUTT_DATABASE_PASSWORD_FILE",
                sec.database_password.is_some() || sec.database_password_file.is_some(),
            ),
        ] {
            if a_set && b_set {
                r.errors.push(SettingError {
                    setting: b.to_string(),
                    message: format!("the secret is also given by {a}: give it in one place only"),
                });
            }
        }
        // A budget smaller than the largest body would refuse every large body forever.
        if s.ingest.max_inflight_bytes < s.ingest.max_body_bytes {
            r.errors.push(SettingError {
                setting: "MUTT_INGEST_MAX_INFLIGHT_BYTES".into(),
                message: format!(
                    "{} is less than MUTT_INGEST_MAX_BODY_BYTES ({}): the largest body could never be read",
                    s.ingest.max_inflight_bytes, s.ingest.max_body_bytes
                ),
            });
        }
        for spec in REGISTRY {
            let env = spec.env();
            if let Some((raw, name)) = r.raw(&env)
                && let Err(e) = s.hot.set(spec.key, &raw)
            {
                let message = match e {
                    HotError::Invalid {
                        value, expected, ..
                    } => format!("{value:?} is not {expected}"),
                    other => other.to_string(),
                };
                r.errors.push(SettingError {
                    setting: name,
                    message,
                });
            }
        }
        if let Some((path, table)) = &src.file {
            for key in table.keys() {
                if !r.used.contains(key) {
                    r.errors.push(SettingError {
                        setting: format!("{key} in {path}"),
                        message: "unknown setting".into(),
                    });
                }
            }
        }
        if r.errors.is_empty() {
            Ok(s)
        } else {
            Err(SettingsError(r.errors))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let src = Sources::new(
            move |k: &str| map.get(k).cloned(),
            file.map(|f| ("mutt.toml", f)),
        )?;
        Settings::load(&src)
    }

    #[test]
    fn each_secret_comes_from_one_place() {
        let s = load(
            &[
                ("MUTT_REDIS_PASSWORD_FILE", "/run/secrets/redis"),
                ("MUTT_DATABASE_PASSWORD", "pw"),
                ("MUTT_WEBHOOK_TOKEN_FILE", "/run/secrets/token"),
                ("MUTT_SECRET_FILE_POLL", "2s"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            s.secrets.redis_password_file.as_deref(),
            Some(std::path::Path::new("/run/secrets/redis"))
        );
        assert_eq!(
            s.secrets.database_password.as_ref().map(Secret::expose),
            Some("pw")
        );
        assert_eq!(s.secrets.file_poll, Duration::from_secs(2));
        assert_eq!(s.secrets.file_overlap, Duration::from_secs(600));

        let e = load(
            &[
                ("MUTT_WEBHOOK_TOKEN", "t"),
                ("MUTT_WEBHOOK_TOKEN_FILE", "/x"),
                ("MUTT_REDIS_URL", "redis://mutt:p1@127.0.0.1:6379"),
                ("MUTT_REDIS_PASSWORD", "p2"),
            ],
            None,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                "MUTT_WEBHOOK_TOKEN_FILE: the secret is also given by MUTT_WEBHOOK_TOKEN"
            ),
            "{text}"
        );
        assert!(text.contains("MUTT_REDIS_PASSWORD or MUTT_REDIS_PASSWORD_FILE: the secret is also given by MUTT_REDIS_URL"), "{text}");
        assert!(!text.contains("p1") && !text.contains("p2"), "{text}");
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = load(&[], None).unwrap();
        assert_eq!(s.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(s.database_url, "postgres://postgres@127.0.0.1:5432/mutt");
        assert_eq!(s.prefix, "mutt");
        assert_eq!(s.ingest_listen.port(), 8080);
        assert_eq!(s.control_listen.port(), 8090);
        assert_eq!(s.ops_listen.port(), 9464);
        assert!(s.webhook_url.is_none() && s.api_key.is_none());
        assert!(s.require_webhook().is_err());
    }

    #[test]
    fn env_wins_over_file_and_durations_are_humantime() {
        let s = load(
            &[("MUTT_PREFIX", "env"), ("MUTT_READ_BLOCK", "250ms")],
            Some("prefix = \"file\"\nunhandled_window = \"5m\"\nalerter_batch = 64\n"),
        )
        .unwrap();
        assert_eq!(s.prefix, "env");
        assert_eq!(s.read_block, Duration::from_millis(250));
        assert_eq!(s.hot.unhandled_window, Duration::from_secs(300));
        assert_eq!(s.hot.alerter_batch, 64);
    }

    #[test]
    fn every_bad_setting_is_named() {
        let e = load(
            &[
                ("MUTT_OPS_LISTEN", "nowhere"),
                ("MUTT_REDIS_URL", "http://x"),
                ("MUTT_READ_BLOCK", "soon"),
                ("MUTT_WEBHOOK_URL", "ftp://user:pw@host/x"),
            ],
            Some("alerter_batch = 0\nbogus = 1\n"),
        )
        .unwrap_err();
        let names: Vec<&str> = e.0.iter().map(|e| e.setting.as_str()).collect();
        assert_eq!(
            names,
            [
                "MUTT_REDIS_URL",
                "MUTT_OPS_LISTEN",
                "MUTT_WEBHOOK_URL",
                "MUTT_READ_BLOCK",
                "alerter_batch in mutt.toml",
                "bogus in mutt.toml"
            ]
        );
        let text = e.to_string();
        assert!(!text.contains("pw"), "{text}");
        assert!(load(&[], Some("not = [toml")).is_err());
    }
}
