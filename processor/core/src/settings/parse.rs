//! The parsers of static setting values. Each returns the message an operator sees after
//! the setting's name, so it says what was expected, never echoing a secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::LogFormat;
use crate::secret::Secret;
use crate::url::redact;

/// What a parser gives back: the value, or what is wrong with the text.
pub(super) type Parsed<T> = Result<T, String>;

pub(super) fn addr(s: &str) -> Parsed<SocketAddr> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an address such as 0.0.0.0:8080"))
}

fn duration(s: &str) -> Parsed<Duration> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 250ms, 30s or 5m ({e})"))
}

pub(super) fn positive_duration(s: &str) -> Parsed<Duration> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// `WAIT`'s timeout: the connection's response timeout (10 s) must stay longer.
pub(super) fn replica_timeout(s: &str) -> Parsed<Duration> {
    let d = positive_duration(s)?;
    if d > Duration::from_secs(5) {
        return Err("at most 5s (a client waits this long for its answer)".into());
    }
    Ok(d)
}

/// `XREADGROUP … BLOCK`: a reader blocked longer would hold up a shutdown.
pub(super) fn read_block(s: &str) -> Parsed<Duration> {
    let d = positive_duration(s)?;
    if d > Duration::from_secs(60) {
        return Err("at most 60s, so that shutdown stays prompt".into());
    }
    Ok(d)
}

/// A whole number within `min..=max`.
pub(super) fn count(min: u64, max: u64) -> impl Fn(&str) -> Parsed<usize> {
    move |s| {
        let n: u64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number"))?;
        if !(min..=max).contains(&n) {
            return Err(format!("{n} is outside {min}..={max}"));
        }
        usize::try_from(n).map_err(|_| format!("{n} is too large for this machine"))
    }
}

/// A fixed offset from UTC: `UTC`, `Z` or `±HH:MM`, in seconds east. Zone names with
/// daylight saving (Europe/Paris) are refused: the offset of a stamp without a zone
/// cannot be told from them without a time zone database.
pub(super) fn utc_offset(s: &str) -> Parsed<i32> {
    let bad = || format!("{s:?} is not UTC or an offset such as +02:00 or -05:00");
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Ok(0);
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

pub(super) fn ratio(s: &str) -> Parsed<f64> {
    s.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{s:?} is not a ratio from 0 to 1"))
}

pub(super) fn redis_url(s: &str) -> Parsed<String> {
    if ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| s.starts_with(scheme))
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{:?} must start with redis:// or rediss://",
            redact(s)
        ))
    }
}

/// Sentinel addresses, comma-separated: `host:port` or a `redis://` / `rediss://` URL
/// each (a URL can carry the sentinels' own password).
pub(super) fn sentinels(s: &str) -> Parsed<Vec<String>> {
    let mut out = Vec::new();
    for a in s.split(',').map(str::trim) {
        if a.starts_with("redis://") || a.starts_with("rediss://") {
            out.push(a.to_string());
            continue;
        }
        let port = a.rsplit_once(':').and_then(|(h, p)| {
            (!h.is_empty() && !h.contains('/'))
                .then(|| p.parse::<u16>().ok())
                .flatten()
        });
        match port {
            Some(p) if p > 0 => out.push(format!("redis://{a}")),
            _ => {
                // Without a scheme `redact` sees no URL: whatever precedes an `@` may be a
                // password mistyped into an address.
                let shown = match a.rfind('@') {
                    Some(at) => format!("***{}", &a[at..]),
                    None => a.to_string(),
                };
                return Err(format!(
                    "{shown:?} is not a Sentinel address such as 10.0.0.5:26379 or redis://sentinel-0:26379"
                ));
            }
        }
    }
    Ok(out)
}

pub(super) fn postgres_url(s: &str) -> Parsed<String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_string())
    } else {
        Err(format!("{:?} must start with postgres://", redact(s)))
    }
}

pub(super) fn http_url(s: &str) -> Parsed<String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{:?} must start with http:// or https://", redact(s)))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{:?} has no host", redact(s)));
    }
    Ok(s.to_string())
}

/// 1 to `max` characters without spaces: a name that goes into keys, labels and logs.
pub(super) fn name_of(max: usize) -> impl Fn(&str) -> Parsed<String> {
    move |s| {
        if s.is_empty() || s.len() > max || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} must be 1–{max} characters without spaces"));
        }
        Ok(s.to_string())
    }
}

pub(super) fn secret(s: &str) -> Parsed<Secret> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(Secret::new(s))
}

pub(super) fn path(s: &str) -> Parsed<PathBuf> {
    if s.contains('\0') {
        return Err("a path cannot contain NUL".into());
    }
    Ok(PathBuf::from(s))
}

/// `grpc` (false) or `http/protobuf` (true).
pub(super) fn otlp_http(s: &str) -> Parsed<bool> {
    match s {
        "grpc" => Ok(false),
        "http/protobuf" => Ok(true),
        _ => Err(format!("{s:?} is neither grpc nor http/protobuf")),
    }
}

pub(super) fn log_format(s: &str) -> Parsed<LogFormat> {
    match s.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?} is neither text nor json")),
    }
}

/// An optional setting: empty text leaves it unset.
pub(super) fn optional<T>(parse: impl Fn(&str) -> Parsed<T>) -> impl Fn(&str) -> Parsed<Option<T>> {
    move |s| {
        if s.is_empty() {
            Ok(None)
        } else {
            parse(s).map(Some)
        }
    }
}
