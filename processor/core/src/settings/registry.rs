//! Every static setting, one line each: its variable, the field it sets, its default, and
//! its parser, under a doc line that is its README description. Loading, the TOML file's
//! keys, the validation message and the README table (checked by a test) all come from
//! here; the hot settings have the same shape in [`crate::hot`].

use super::Settings;
use super::parse::{
    Parsed, addr, count, http_url, log_format, name_of, optional, otlp_http, path,
    positive_duration, postgres_url, ratio, read_block, redis_url, replica_timeout, secret,
    sentinels, utc_offset,
};

/// How a setting starts when the operator does not give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// This text, parsed like an operator's value.
    Value(&'static str),
    /// Unset, or computed at start; the text says what that means.
    Absent(&'static str),
}

/// One static setting.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The environment variable (`MUTT_REDIS_URL`).
    pub env: &'static str,
    /// The value when neither the environment nor the file gives one.
    pub initial: Initial,
    /// What it does, as the README says it.
    pub help: &'static str,
    apply: fn(&mut Settings, &str) -> Parsed<()>,
}

impl Spec {
    /// The key in the `--config` file: the variable in lower case without `MUTT_`
    /// (`redis_url`); the OpenTelemetry variables keep their standard names.
    pub fn file_key(&self) -> String {
        file_key(self.env)
    }

    /// Its row of the README's settings table.
    pub fn readme_row(&self) -> String {
        let initial = match self.initial {
            Initial::Value(v) => format!("`{v}`"),
            Initial::Absent(text) => text.to_string(),
        };
        format!("| `{}` | {initial} | {} |", self.env, self.help)
    }

    /// Parses `raw` into its field of `settings`.
    pub(super) fn apply(&self, settings: &mut Settings, raw: &str) -> Parsed<()> {
        (self.apply)(settings, raw)
    }
}

/// The file key of an environment variable.
pub(super) fn file_key(env: &str) -> String {
    env.strip_prefix("MUTT_")
        .unwrap_or(env)
        .to_ascii_lowercase()
}

macro_rules! static_settings {
    ($( $(#[doc = $doc:literal])+ $env:literal => $($field:ident).+ : $initial:expr, $parse:expr; )+) => {
        /// Every static setting, in the README's order.
        pub static REGISTRY: &[Spec] = &[
            $( Spec {
                env: $env,
                initial: $initial,
                // Doc comments start with a space.
                help: concat!($($doc),+).trim_ascii_start(),
                apply: |s, raw| {
                    s.$($field).+ = ($parse)(raw)?;
                    Ok(())
                },
            }, )+
        ];
    };
}

use Initial::{Absent, Value};

static_settings! {
    /// Redis (`rediss://` for TLS)
    "MUTT_REDIS_URL" => redis_url: Value("redis://127.0.0.1:6379"), redis_url;
    /// Redis Sentinels, comma-separated `host:port` (or `redis://`, `rediss://` URLs): when set, every role connects to the master they name and follows a failover; `MUTT_REDIS_URL` then gives only TLS, user, password and database
    "MUTT_REDIS_SENTINELS" => redis_sentinels: Absent("unset: `MUTT_REDIS_URL` is the master"), optional(sentinels);
    /// the name the Sentinels monitor the master under
    "MUTT_REDIS_MASTER_NAME" => redis_master_name: Value("mymaster"), name_of(128);
    /// PostgreSQL
    "MUTT_DATABASE_URL" => database_url: Value("postgres://postgres@127.0.0.1:5432/mutt"), postgres_url;
    /// namespace of every Redis key and channel (`{mutt}` for Redis Cluster)
    "MUTT_PREFIX" => prefix: Value("mutt"), name_of(64);
    /// ingest HTTP API
    "MUTT_INGEST_LISTEN" => ingest_listen: Value("0.0.0.0:8080"), addr;
    /// control-plane HTTP API
    "MUTT_CONTROL_LISTEN" => control_listen: Value("0.0.0.0:8090"), addr;
    /// `/health`, `/ready`, `/metrics` of the process
    "MUTT_OPS_LISTEN" => ops_listen: Value("0.0.0.0:9464"), addr;
    /// where alerts are POSTed
    "MUTT_WEBHOOK_URL" => webhook_url: Absent("none (the forwarder needs it)"), optional(http_url);
    /// bearer token for the webhook (rotatable)
    "MUTT_WEBHOOK_TOKEN" => webhook_token: Absent("none"), optional(secret);
    /// read the token from this file instead, re-read when it changes
    "MUTT_WEBHOOK_TOKEN_FILE" => secrets.webhook_token_file: Absent("unset"), optional(path);
    /// the bootstrap API key (every scope)
    "MUTT_API_KEY" => api_key: Absent("none (ingest refuses all)"), optional(secret);
    /// read the bootstrap key from this file instead, re-read when it changes
    "MUTT_API_KEY_FILE" => secrets.api_key_file: Absent("unset"), optional(path);
    /// Redis ACL password (rotatable; the user is the URL's, else `default`)
    "MUTT_REDIS_PASSWORD" => secrets.redis_password: Absent("the password in `MUTT_REDIS_URL`"), optional(secret);
    /// read the Redis password from this file instead, re-read when it changes
    "MUTT_REDIS_PASSWORD_FILE" => secrets.redis_password_file: Absent("unset"), optional(path);
    /// PostgreSQL password (rotatable)
    "MUTT_DATABASE_PASSWORD" => secrets.database_password: Absent("the password in `MUTT_DATABASE_URL`"), optional(secret);
    /// read the PostgreSQL password from this file instead, re-read when it changes
    "MUTT_DATABASE_PASSWORD_FILE" => secrets.database_password_file: Absent("unset"), optional(path);
    /// how often the `*_FILE` secrets are checked for a change
    "MUTT_SECRET_FILE_POLL" => secrets.file_poll: Value("5s"), positive_duration;
    /// how long the previous value of a changed secret file stays accepted
    "MUTT_SECRET_FILE_OVERLAP" => secrets.file_overlap: Value("10m"), positive_duration;
    /// consumer name in the groups (the pod name in Kubernetes)
    "MUTT_CONSUMER" => consumer: Absent("host name + pid"), name_of(128);
    /// OTLP endpoint for traces (Jaeger accepts OTLP)
    "OTEL_EXPORTER_OTLP_ENDPOINT" => otel_endpoint: Absent("unset: no export"), optional(http_url);
    /// `grpc` or `http/protobuf`
    "OTEL_EXPORTER_OTLP_PROTOCOL" => otel_http: Value("grpc"), otlp_http;
    /// the traces' `service.name`
    "OTEL_SERVICE_NAME" => otel_service_name: Absent("`mutt-<role>` (`mutt` for `all`)"), optional(name_of(128));
    /// share of new traces sampled; spans follow their parent's decision
    "MUTT_TRACE_SAMPLE_RATIO" => trace_sample_ratio: Value("1.0"), ratio;
    /// the Prometheus that `GET /api/v2/slo` asks
    "MUTT_PROMETHEUS_URL" => prometheus_url: Value("http://127.0.0.1:9090"), http_url;
    /// `text` or `json`
    "MUTT_LOG_FORMAT" => log_format: Value("text"), log_format;
    /// largest request body (413 beyond)
    "MUTT_INGEST_MAX_BODY_BYTES" => ingest.max_body_bytes: Value("16777216"), count(1024, 1 << 30);
    /// request body bytes held at once across all requests (503 `busy` beyond); at least the largest body
    "MUTT_INGEST_MAX_INFLIGHT_BYTES" => ingest.max_inflight_bytes: Value("67108864"), count(1024, 1 << 40);
    /// how long a request sent with an `Idempotency-Key` is remembered: a resend within it is not appended again
    "MUTT_INGEST_IDEMPOTENCY_WINDOW" => ingest.idempotency_window: Value("1h"), positive_duration;
    /// most events per request
    "MUTT_INGEST_MAX_BATCH" => ingest.max_batch_items: Value("10000"), count(1, 1_000_000);
    /// longest `message`
    "MUTT_INGEST_MAX_MESSAGE_BYTES" => ingest.limits.max_message_bytes: Value("16384"), count(64, 1 << 20);
    /// largest encoded event
    "MUTT_INGEST_MAX_EVENT_BYTES" => ingest.limits.max_event_bytes: Value("65536"), count(256, 4 << 20);
    /// request deadline
    "MUTT_INGEST_REQUEST_TIMEOUT" => ingest.request_timeout: Value("30s"), positive_duration;
    /// replicas that must hold an entry before ingest acknowledges it (Redis `WAIT`); 0: none
    "MUTT_INGEST_MIN_REPLICAS" => ingest.min_replicas: Value("0"), count(0, 16);
    /// how long ingest waits for those replicas before answering 503
    "MUTT_INGEST_REPLICA_TIMEOUT" => ingest.replica_timeout: Value("1s"), replica_timeout;
    /// syslog over UDP (RFC 5424, RFC 3164, Cisco IOS)
    "MUTT_SYSLOG_UDP_LISTEN" => syslog.udp_listen: Absent("unset: off"), optional(addr);
    /// syslog over TCP, octet-counted or newline-framed (RFC 6587)
    "MUTT_SYSLOG_TCP_LISTEN" => syslog.tcp_listen: Absent("unset: off"), optional(addr);
    /// syslog over TLS (RFC 5425); needs the two files below
    "MUTT_SYSLOG_TLS_LISTEN" => syslog.tls_listen: Absent("unset: off"), optional(addr);
    /// the TLS listener's certificate chain (PEM)
    "MUTT_SYSLOG_TLS_CERT_FILE" => syslog.tls_cert_file: Absent("unset"), optional(path);
    /// the TLS listener's private key (PEM)
    "MUTT_SYSLOG_TLS_KEY_FILE" => syslog.tls_key_file: Absent("unset"), optional(path);
    /// zone of syslog time stamps that carry none: `UTC` or `±HH:MM`
    "MUTT_SYSLOG_TIMEZONE" => syslog.timezone_offset_secs: Value("UTC"), utc_offset;
    /// TCP/TLS syslog connections held at once, per listener
    "MUTT_SYSLOG_MAX_CONNECTIONS" => syslog.max_connections: Value("1024"), count(1, 65536);
    /// SNMP v1/v2c traps and v2c informs over UDP
    "MUTT_SNMP_LISTEN" => snmp.listen: Absent("unset: off"), optional(addr);
    /// accepted SNMP communities, comma-separated (rotatable); unset refuses every trap
    "MUTT_SNMP_COMMUNITIES" => secrets.snmp_communities: Absent("none (every trap refused)"), optional(secret);
    /// read the communities from this file instead, re-read when it changes
    "MUTT_SNMP_COMMUNITIES_FILE" => secrets.snmp_communities_file: Absent("unset"), optional(path);
    /// names and severities of trap OIDs beyond the built-in table (TOML)
    "MUTT_SNMP_TRAPS_FILE" => snmp.traps_file: Absent("unset: the built-in table"), optional(path);
    /// time to finish in-flight work after SIGTERM
    "MUTT_SHUTDOWN_GRACE" => shutdown_grace: Value("20s"), positive_duration;
    /// `XREADGROUP … BLOCK` time
    "MUTT_READ_BLOCK" => read_block: Value("1s"), read_block;
    /// batches an alerter processes at once
    "MUTT_ALERTER_CONCURRENCY" => alerter.concurrency: Value("4"), count(1, 64);
    /// webhook requests in flight per forwarder
    "MUTT_FORWARDER_CONCURRENCY" => forwarder.concurrency: Value("32"), count(1, 4096);
}
