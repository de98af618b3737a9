//! Hot settings: every setting that may change while MUTT runs, in one typed registry.
//!
//! Each hot setting has a key (`webhook_rate_limit`), a type with bounds, a default, and the
//! roles that read it. At start a process takes the value from its environment
//! (`MUTT_WEBHOOK_RATE_LIMIT`) or `--config` file, else the default; the control plane may
//! then publish a new versioned snapshot, which replaces the values it names. The control
//! API validates a change with the same code the workers use to apply it, so a value that
//! passed the API cannot fail in a worker.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The type and bounds of a hot setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number within bounds.
    Count {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// A humantime duration within bounds, in milliseconds.
    Duration {
        /// Shortest.
        min_ms: u64,
        /// Longest.
        max_ms: u64,
    },
    /// A name (1–100 characters, no control characters).
    Name,
    /// A tracing filter such as `info` or `mutt=debug,warn`.
    LogFilter,
    /// On or off (`on`/`off`, `true`/`false`).
    Switch,
}

impl Kind {
    /// A short description for documentation and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Count { min, max } => format!("a whole number from {min} to {max}"),
            Self::Duration { min_ms, max_ms } => format!(
                "a duration from {} to {}",
                humantime::format_duration(Duration::from_millis(*min_ms)),
                humantime::format_duration(Duration::from_millis(*max_ms))
            ),
            Self::Name => "a name of 1 to 100 characters".into(),
            Self::LogFilter => "a log filter such as info or mutt=debug,warn".into(),
            Self::Switch => "on or off".into(),
        }
    }
}

/// One hot setting.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The key, as used by the control API and the config file.
    pub key: &'static str,
    /// Type and bounds.
    pub kind: Kind,
    /// The default, as text.
    pub default: &'static str,
    /// The roles that read it.
    pub roles: &'static [&'static str],
    /// What it does.
    pub help: &'static str,
}

impl Spec {
    /// The environment variable that sets it at start.
    pub fn env(&self) -> String {
        format!("MUTT_{}", self.key.to_ascii_uppercase())
    }
}

/// A hot value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HotError {
    /// No such hot setting.
    #[error("{0:?} is not a hot setting")]
    Unknown(String),
    /// The value is not of the setting's type or outside its bounds.
    #[error("{key}: {value:?} is not {expected}")]
    Invalid {
        /// The setting.
        key: String,
        /// The value given (cut to 100 characters).
        value: String,
        /// What it should be.
        expected: String,
    },
}

fn invalid(spec: &Spec, raw: &str) -> HotError {
    HotError::Invalid {
        key: spec.key.into(),
        value: raw.chars().take(100).collect(),
        expected: spec.kind.describe(),
    }
}

/// How a Rust type reads and writes a hot value.
trait HotValue: Sized {
    fn parse(raw: &str, spec: &Spec) -> Result<Self, HotError>;
    fn render(&self) -> String;
}

impl HotValue for u64 {
    fn parse(raw: &str, spec: &Spec) -> Result<Self, HotError> {
        let Kind::Count { min, max } = spec.kind else {
            return Err(invalid(spec, raw));
        };
        raw.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| invalid(spec, raw))
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl HotValue for Duration {
    fn parse(raw: &str, spec: &Spec) -> Result<Self, HotError> {
        let Kind::Duration { min_ms, max_ms } = spec.kind else {
            return Err(invalid(spec, raw));
        };
        humantime::parse_duration(raw.trim())
            .ok()
            .filter(|d| *d >= Duration::from_millis(min_ms) && *d <= Duration::from_millis(max_ms))
            .ok_or_else(|| invalid(spec, raw))
    }
    fn render(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

impl HotValue for bool {
    fn parse(raw: &str, spec: &Spec) -> Result<Self, HotError> {
        if spec.kind != Kind::Switch {
            return Err(invalid(spec, raw));
        }
        match raw.trim().to_ascii_lowercase().as_str() {
            "on" | "true" => Ok(true),
            "off" | "false" => Ok(false),
            _ => Err(invalid(spec, raw)),
        }
    }
    fn render(&self) -> String {
        if *self { "on" } else { "off" }.into()
    }
}

impl HotValue for String {
    fn parse(raw: &str, spec: &Spec) -> Result<Self, HotError> {
        let t = raw.trim();
        let ok = match spec.kind {
            Kind::Name => {
                !t.is_empty() && t.chars().count() <= 100 && !t.chars().any(char::is_control)
            }
            // Directives: targets, `=`, levels, commas; no spans or field filters (`[`, `{`),
            // which can be expensive.
            Kind::LogFilter => {
                !t.is_empty()
                    && t.len() <= 256
                    && t.split(',').all(|d| {
                        let level = d
                            .rsplit('=')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase();
                        ["off", "error", "warn", "info", "debug", "trace"].contains(&level.as_str())
                            && d.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "_:=-.".contains(c))
                    })
            }
            _ => false,
        };
        if ok {
            Ok(t.to_string())
        } else {
            Err(invalid(spec, raw))
        }
    }
    fn render(&self) -> String {
        self.clone()
    }
}

const ALERTER: &[&str] = &["alerter"];
const FORWARDER: &[&str] = &["forwarder"];
const WORKERS: &[&str] = &["alerter", "forwarder"];
const CONTROL: &[&str] = &["control"];
const INGEST: &[&str] = &["ingest"];
const ALL: &[&str] = &["ingest", "alerter", "forwarder", "control"];

macro_rules! hot_settings {
    ($( $(#[doc = $doc:literal])+ $field:ident: $ty:ty = $default:literal, $kind:expr, $roles:expr; )+) => {
        /// The current value of every hot setting.
        #[derive(Debug, Clone, PartialEq)]
        pub struct HotConfig {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        /// Every hot setting, in documentation order.
        pub static REGISTRY: &[Spec] = &[
            $( Spec {
                key: stringify!($field),
                kind: $kind,
                default: $default,
                roles: $roles,
                // Doc comments start with a space.
                help: concat!($($doc),+).trim_ascii_start(),
            }, )+
        ];

        impl HotConfig {
            /// Sets one value from text, validated.
            pub fn set(&mut self, key: &str, raw: &str) -> Result<(), HotError> {
                let spec = spec(key).ok_or_else(|| HotError::Unknown(key.into()))?;
                match key {
                    $( stringify!($field) => self.$field = <$ty as HotValue>::parse(raw, spec)?, )+
                    _ => return Err(HotError::Unknown(key.into())),
                }
                Ok(())
            }

            /// One value as text, normalised (`30s`, `500`).
            pub fn get(&self, key: &str) -> Option<String> {
                match key {
                    $( stringify!($field) => Some(HotValue::render(&self.$field)), )+
                    _ => None,
                }
            }
        }

        impl Default for HotConfig {
            fn default() -> Self {
                // The defaults are literals checked by the `defaults_are_valid` test.
                Self {
                    $( $field: <$ty as HotValue>::parse($default, spec(stringify!($field)).expect("registered"))
                        .expect("valid default"), )+
                }
            }
        }
    };
}

hot_settings! {
    /// Log filter of the process.
    log_level: String = "info", Kind::LogFilter, ALL;
    /// How often the alerter re-reads rules, hosts and teams without an announcement.
    rule_reload_interval: Duration = "60s", Kind::Duration { min_ms: 1_000, max_ms: 86_400_000 }, ALERTER;
    /// Events read per alerter batch.
    alerter_batch: u64 = "1000", Kind::Count { min: 1, max: 10_000 }, ALERTER;
    /// Unhandled events of one host and fingerprint that make a meta-alert.
    unhandled_threshold: u64 = "100", Kind::Count { min: 1, max: 1_000_000_000 }, ALERTER;
    /// The window those events must fall in; also the silence after a meta-alert.
    unhandled_window: Duration = "24h", Kind::Duration { min_ms: 1_000, max_ms: 2_592_000_000 }, ALERTER;
    /// Team of a meta-alert for a host without a device team.
    unhandled_default_team: String = "NETO", Kind::Name, ALERTER;
    /// Alerts read per forwarder batch.
    forwarder_batch: u64 = "200", Kind::Count { min: 1, max: 10_000 }, FORWARDER;
    /// Attempts per alert before it goes to the DLQ (refusals by an open circuit do not count).
    forwarder_max_attempts: u64 = "10", Kind::Count { min: 1, max: 1_000 }, FORWARDER;
    /// First retry delay; it doubles per attempt, with full jitter.
    forwarder_retry_base: Duration = "500ms", Kind::Duration { min_ms: 1, max_ms: 3_600_000 }, FORWARDER;
    /// Longest retry delay (it also caps a Retry-After).
    forwarder_retry_max: Duration = "60s", Kind::Duration { min_ms: 1, max_ms: 86_400_000 }, FORWARDER;
    /// A webhook request that takes longer has failed.
    webhook_timeout: Duration = "10s", Kind::Duration { min_ms: 10, max_ms: 600_000 }, FORWARDER;
    /// Alerts per second to the webhook, shared by all forwarders (0: no limit).
    webhook_rate_limit: u64 = "0", Kind::Count { min: 0, max: 10_000_000 }, FORWARDER;
    /// Alerts the rate limit lets through at once after a quiet period.
    webhook_rate_burst: u64 = "100", Kind::Count { min: 1, max: 10_000_000 }, FORWARDER;
    /// Alerts per webhook request: 1 sends one event object, more send {"events": [...]}.
    webhook_batch: u64 = "1", Kind::Count { min: 1, max: 1_000 }, FORWARDER;
    /// How long a partial webhook batch waits for more alerts.
    webhook_linger: Duration = "20ms", Kind::Duration { min_ms: 0, max_ms: 10_000 }, FORWARDER;
    /// Consecutive webhook failures that open the circuit (shared by all forwarders).
    breaker_threshold: u64 = "10", Kind::Count { min: 1, max: 1_000_000 }, FORWARDER;
    /// How long an open circuit stays open before one probe is let through.
    breaker_open: Duration = "30s", Kind::Duration { min_ms: 100, max_ms: 3_600_000 }, FORWARDER;
    /// Pending entries idle longer than this are reclaimed from their consumer.
    claim_timeout: Duration = "30s", Kind::Duration { min_ms: 500, max_ms: 86_400_000 }, WORKERS;
    /// How often workers look for entries to reclaim.
    claim_interval: Duration = "5s", Kind::Duration { min_ms: 100, max_ms: 3_600_000 }, WORKERS;
    /// Deliveries after which an entry goes to the DLQ instead of being processed again.
    max_deliveries: u64 = "5", Kind::Count { min: 1, max: 1_000 }, WORKERS;
    /// How often streams are trimmed below what every group has acknowledged.
    trim_interval: Duration = "10s", Kind::Duration { min_ms: 100, max_ms: 86_400_000 }, WORKERS;
    /// How often dead letters are replayed automatically when the downstream is healthy (0s: never).
    dlq_replay_interval: Duration = "5m", Kind::Duration { min_ms: 0, max_ms: 86_400_000 }, CONTROL;
    /// Dead letters replayed per automatic round and DLQ.
    dlq_replay_batch: u64 = "100", Kind::Count { min: 1, max: 100_000 }, CONTROL;
    /// Replays after which a dead letter is parked: only an operator replays it again.
    dlq_max_replays: u64 = "3", Kind::Count { min: 0, max: 1_000 }, CONTROL;
    /// Events per second ingest accepts from all clients together (0: no limit; 429 beyond).
    ingest_rate_limit: u64 = "0", Kind::Count { min: 0, max: 100_000_000 }, INGEST;
    /// Events per second ingest accepts from one API key (0: no limit; 429 beyond).
    ingest_key_rate_limit: u64 = "0", Kind::Count { min: 0, max: 100_000_000 }, INGEST;
    /// Events not yet delivered to the alerters beyond which ingest answers 503 (0: no cap).
    ingest_max_lag: u64 = "0", Kind::Count { min: 0, max: 1_000_000_000 }, INGEST;
    /// Lag beyond which informational and debug events are refused first (0: off); critical ones never are.
    ingest_shed_low_severity_lag: u64 = "0", Kind::Count { min: 0, max: 1_000_000_000 }, INGEST;
    /// Alerts not yet delivered to the forwarders beyond which the alerters read more slowly (0: off).
    alerter_max_alert_lag: u64 = "200000", Kind::Count { min: 0, max: 1_000_000_000 }, ALERTER;
    /// Whether data retention runs (on the control plane's schedule, and `mutt retention`).
    retention_enabled: bool = "on", Kind::Switch, CONTROL;
    /// How often the control plane runs retention, counted from the end of the last run.
    retention_interval: Duration = "24h", Kind::Duration { min_ms: 1_000, max_ms: 2_592_000_000 }, CONTROL;
    /// Days of event audit kept in event_audit_log; older whole months move to the archive.
    retention_event_audit_days: u64 = "90", Kind::Count { min: 30, max: 36_500 }, CONTROL;
    /// Days an archived month is kept before it is dropped (at least the event audit's).
    retention_archive_days: u64 = "2557", Kind::Count { min: 365, max: 36_500 }, CONTROL;
    /// Days of config audit kept; older rows are deleted.
    retention_config_audit_days: u64 = "365", Kind::Count { min: 365, max: 36_500 }, CONTROL;
    /// Days a dead letter stays parked before it is removed.
    retention_parked_letter_days: u64 = "30", Kind::Count { min: 7, max: 36_500 }, CONTROL;
    /// Monthly event-audit partitions kept ready beyond the current month.
    retention_partitions_ahead: u64 = "3", Kind::Count { min: 1, max: 24 }, CONTROL;
}

/// The spec of a hot setting.
pub fn spec(key: &str) -> Option<&'static Spec> {
    REGISTRY.iter().find(|s| s.key == key)
}

/// Validates one value without applying it; returns it normalised.
pub fn validate(key: &str, raw: &str) -> Result<String, HotError> {
    let mut c = HotConfig::default();
    c.set(key, raw)?;
    Ok(c.get(key).unwrap_or_default())
}

impl HotConfig {
    /// Every value as text.
    pub fn values(&self) -> BTreeMap<&'static str, String> {
        REGISTRY
            .iter()
            .map(|s| (s.key, self.get(s.key).unwrap_or_default()))
            .collect()
    }

    /// `base` with the values of `overrides` applied. A value that does not apply is
    /// reported and skipped: a snapshot written by a newer version may hold keys this
    /// version does not know.
    pub fn with_overrides<'a>(
        base: &HotConfig,
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (HotConfig, Vec<HotError>) {
        let mut c = base.clone();
        let mut errors = Vec::new();
        for (k, v) in overrides {
            if let Err(e) = c.set(k, v) {
                errors.push(e);
            }
        }
        (c, errors)
    }
}

impl fmt::Display for HotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in self.values() {
            writeln!(f, "{k} = {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = HotConfig::default();
        for s in REGISTRY {
            let v = c.get(s.key).unwrap();
            assert_eq!(validate(s.key, &v).unwrap(), v, "{}", s.key);
            assert!(!s.help.is_empty() && !s.roles.is_empty());
        }
        assert_eq!(c.claim_timeout, Duration::from_secs(30));
        assert_eq!(spec("claim_timeout").unwrap().env(), "MUTT_CLAIM_TIMEOUT");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = validate("webhook_rate_limit", "lots").unwrap_err();
        assert!(e.to_string().contains("webhook_rate_limit"), "{e}");
        assert!(validate("alerter_batch", "0").is_err());
        assert!(validate("claim_timeout", "1ms").is_err());
        assert!(validate("claim_timeout", "45s").is_ok());
        assert!(matches!(validate("nope", "1"), Err(HotError::Unknown(_))));
        assert!(validate("log_level", "mutt=debug,warn").is_ok());
        assert!(validate("log_level", "mutt[span]=debug").is_err());
        assert!(validate("log_level", "verbose").is_err());
        assert!(validate("unhandled_default_team", "").is_err());
    }

    #[test]
    fn overrides_skip_what_does_not_apply() {
        let (c, errors) = HotConfig::with_overrides(
            &HotConfig::default(),
            [
                ("webhook_rate_limit", "50"),
                ("from_the_future", "1"),
                ("alerter_batch", "-1"),
            ],
        );
        assert_eq!(c.webhook_rate_limit, 50);
        assert_eq!(c.alerter_batch, 1000);
        assert_eq!(errors.len(), 2);
    }

    proptest! {
        #[test]
        fn validation_never_panics(key in "[a-z_]{1,30}", raw in "\\PC{0,40}") {
            let _ = validate(&key, &raw);
            for s in REGISTRY {
                if let Ok(v) = validate(s.key, &raw) {
                    prop_assert_eq!(validate(s.key, &v).unwrap(), v);
                }
            }
        }
    }
}
