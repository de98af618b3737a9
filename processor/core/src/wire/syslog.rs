//! One syslog message (the bytes of a datagram or a TCP frame) into the JSON event that
//! `POST /api/v2/ingest` would take, so that it passes the same validation.
//!
//! RFC 5424 and RFC 3164 go through `syslog_loose` (ADR 0020). Cisco IOS's header, which
//! neither RFC describes and `syslog_loose` misreads (a sequence number before the time,
//! `*` or `.` before it when the clock is not synchronised, milliseconds, a zone name and a
//! colon after it), is read here first. Parsing is lenient, like the relays of RFC 3164
//! §4.3: a line without a priority is `user.notice`, a header that cannot be read leaves
//! the whole line as the message with the receipt time, and a missing host name is the
//! sender's address. Only what cannot become an event at all (an empty line) is an error.

use std::net::IpAddr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value, json};
use syslog_loose::{IncompleteDate, Message, Variant};

/// Why a message could not become an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but white space.
    #[error("empty message")]
    Empty,
}

impl ParseError {
    /// The `kind` label of `mutt_ingest_parse_errors_total`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Empty => "empty",
        }
    }
}

/// What the listener knows about a message besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The sender's address: the host name when the message has none.
    pub peer: IpAddr,
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
    /// When the message was read.
    pub received: DateTime<Utc>,
    /// The zone of time stamps that carry none (RFC 3164): `MUTT_SYSLOG_TIMEZONE`.
    pub zone: FixedOffset,
    /// The longest message kept: a longer one is cut at a character boundary and marked
    /// `truncated`, as syslog receivers do, rather than refused.
    pub max_message: usize,
}

/// RFC 3164 §4.3.3: a relay gives a message without a priority `<13>`, user.notice.
const DEFAULT_PRI: u8 = 13;

/// Parses one message. Invalid UTF-8 is replaced, not refused: a log line with a stray
/// byte is still worth an alert.
pub fn parse(bytes: &[u8], cx: &Context) -> Result<Value, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    // Trailers that framing leaves: CR, LF, NUL (RFC 6587's old framing).
    let line = text.trim_end_matches(['\r', '\n', '\0']).trim_start();
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let (pri, rest, had_pri) = split_pri(line);
    let mut attrs = Map::new();
    attrs.insert("transport".into(), json!(cx.transport));
    attrs.insert("peer".into(), json!(cx.peer.to_string()));
    if !had_pri {
        attrs.insert("pri_missing".into(), json!(true));
    }
    let (facility, severity) = (pri >> 3, pri & 7);
    attrs.insert("facility".into(), json!(facility_name(facility)));

    let fields = match cisco(rest, cx) {
        Some(f) => f,
        None => loose(pri, rest, cx),
    };
    let mut message = fields.message.trim_start_matches('\u{feff}');
    // RFC 5424's MSG is optional (structured data alone is a message): the line itself
    // then stands for it, rather than an event refused for an empty message.
    if message.trim().is_empty() {
        message = rest.trim();
        attrs.insert("message_from".into(), json!("header"));
    }
    if message.len() > cx.max_message {
        let mut cut = cx.max_message;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message = &message[..cut];
        attrs.insert("truncated".into(), json!(true));
    }
    if let Some(m) = mnemonic(message) {
        attrs.insert("cisco_facility".into(), json!(m.facility));
        attrs.insert("cisco_severity".into(), json!(m.severity));
        attrs.insert("cisco_mnemonic".into(), json!(m.mnemonic));
    }
    attrs.insert("syslog_format".into(), json!(fields.format));
    let hostname = match fields.hostname {
        Some(h) if !h.is_empty() && h != "-" => h,
        _ => {
            attrs.insert("hostname_from".into(), json!("peer"));
            cx.peer.to_string()
        }
    };
    let timestamp = match fields.timestamp {
        // A stamp RFC 3339 cannot write (syslog_loose reads `Sep 1 061515` as the year
        // 61515) is no stamp: the receipt time stands in, as for a missing one.
        Some(t) if (1..=9999).contains(&t.year()) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        _ => {
            attrs.insert("timestamp_from".into(), json!("receipt"));
            cx.received.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        }
    };
    for (k, v) in fields.extra {
        attrs.insert(k.into(), v);
    }
    attrs.insert("hostname".into(), json!(hostname));
    attrs.insert("message".into(), json!(message));
    attrs.insert("timestamp".into(), json!(timestamp));
    attrs.insert("syslog_severity".into(), json!(severity));
    attrs.insert("source_type".into(), json!("syslog"));
    Ok(Value::Object(attrs))
}

/// The header fields read from a message.
struct Fields {
    format: &'static str,
    hostname: Option<String>,
    timestamp: Option<DateTime<FixedOffset>>,
    message: String,
    extra: Vec<(&'static str, Value)>,
}

/// `<PRI>` and the rest; a missing or invalid priority is [`DEFAULT_PRI`].
fn split_pri(line: &str) -> (u8, &str, bool) {
    if let Some(after) = line.strip_prefix('<')
        && let Some(end) = after.find('>')
        && (1..=3).contains(&end)
        && after[..end].bytes().all(|b| b.is_ascii_digit())
        && let Ok(p) = after[..end].parse::<u8>()
        && p <= 191
    {
        return (p, &after[end + 1..], true);
    }
    (DEFAULT_PRI, line, false)
}

/// RFC 5424, else RFC 3164, through `syslog_loose`.
fn loose(pri: u8, rest: &str, cx: &Context) -> Fields {
    // syslog_loose reads the priority itself; give it a valid one in every case.
    let input = format!("<{pri}>{rest}");
    let received = cx.received;
    let year = move |d: IncompleteDate| year_for(d, received);
    let m: Message<&str> =
        syslog_loose::parse_message_with_year_tz(&input, year, Some(cx.zone), Variant::Either);
    let rfc5424 = matches!(m.protocol, syslog_loose::Protocol::RFC5424(_));
    let mut extra = Vec::new();
    // Cisco ASA and PIX put `%ASA-2-106001:` where RFC 3164 has the tag: it belongs to
    // the message, where rules look for it (as over HTTP).
    let mut tag_in_message = None;
    if let Some(a) = m.appname.filter(|a| !a.is_empty() && *a != "-") {
        if a.starts_with('%') && mnemonic(a).is_some() {
            tag_in_message = Some(a);
        } else {
            extra.push(("appname", json!(a)));
        }
    }
    if let Some(p) = &m.procid {
        let p = p.to_string();
        if !p.is_empty() && p != "-" {
            extra.push(("procid", json!(p)));
        }
    }
    if let Some(id) = m.msgid.filter(|i| !i.is_empty() && *i != "-") {
        extra.push(("msgid", json!(id)));
    }
    if !m.structured_data.is_empty() {
        let mut sd = Map::new();
        for el in &m.structured_data {
            let mut params = Map::new();
            for (k, v) in el.params() {
                params.insert(k.to_string(), json!(v));
            }
            sd.insert(el.id.to_string(), Value::Object(params));
        }
        extra.push(("structured_data", Value::Object(sd)));
    }
    // When the header could not be read, syslog_loose gives the whole input back as the
    // message; the priority we put in front is not part of it.
    let message = if m.timestamp.is_none() && m.hostname.is_none() && m.msg == input {
        rest.to_string()
    } else if let Some(tag) = tag_in_message {
        format!("{tag}: {}", m.msg)
    } else {
        m.msg.to_string()
    };
    Fields {
        format: if rfc5424 { "rfc5424" } else { "rfc3164" },
        hostname: m.hostname.map(str::to_string),
        timestamp: m.timestamp,
        message,
        extra,
    }
}

/// The year of a time stamp that has none: the receipt year, or the one before when that
/// would put the stamp more than a month in the future (December's messages read in
/// January).
fn year_for(d: IncompleteDate, received: DateTime<Utc>) -> i32 {
    let (month, day, ..) = d;
    let y = received.year();
    match NaiveDate::from_ymd_opt(y, month, day) {
        Some(date) if (date - received.date_naive()).num_days() > 31 => y - 1,
        _ => y,
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Cisco IOS: `[seq: ][origin: ][*|.]Mmm dd [yyyy ]hh:mm:ss[.fff][ ZONE]: %FAC-SEV-MNEMONIC: text`.
/// Recognised only when a sequence number, a clock marker or the `: %` after the time
/// says so, so that plain RFC 3164 lines keep going to `syslog_loose`.
fn cisco(rest: &str, cx: &Context) -> Option<Fields> {
    let mut s = rest.trim_start();
    let mut extra = Vec::new();
    let mut marked = false;
    // Sequence number: digits and a colon.
    if let Some((seq, after)) = s.split_once(": ")
        && !seq.is_empty()
        && seq.len() <= 10
        && seq.bytes().all(|b| b.is_ascii_digit())
    {
        extra.push(("cisco_sequence", json!(seq.parse::<u64>().ok()?)));
        s = after.trim_start();
        marked = true;
    }
    // `logging origin-id`: a host name and a colon before the time.
    let mut hostname = None;
    if let Some((host, after)) = s.split_once(": ")
        && !host.is_empty()
        && host.len() <= 255
        && !host.contains(' ')
        && starts_with_time(after.trim_start())
    {
        hostname = Some(host.to_string());
        s = after.trim_start();
    }
    if let Some(after) = s.strip_prefix(['*', '.']) {
        extra.push(("clock_synchronized", json!(false)));
        s = after;
        marked = true;
    }
    let (timestamp, after) = cisco_time(s, cx, marked)?;
    let message = after.strip_prefix(':')?.trim_start();
    if !marked && !message.starts_with('%') {
        return None;
    }
    Some(Fields {
        format: "cisco",
        hostname,
        timestamp: Some(timestamp),
        message: message.to_string(),
        extra,
    })
}

fn starts_with_time(s: &str) -> bool {
    let s = s.strip_prefix(['*', '.']).unwrap_or(s);
    s.get(..3).is_some_and(|m| MONTHS.contains(&m))
}

/// `Mmm dd [yyyy ]hh:mm:ss[.fff][ ZONE]` and what follows it; `marked` when a sequence
/// number or clock marker came before (then an upper-case word is a zone name).
fn cisco_time<'a>(
    s: &'a str,
    cx: &Context,
    marked: bool,
) -> Option<(DateTime<FixedOffset>, &'a str)> {
    let month = MONTHS.iter().position(|m| s.starts_with(m))? as u32 + 1;
    let mut words = s[3..].trim_start().splitn(2, ' ');
    let day: u32 = words.next()?.parse().ok()?;
    let mut rest = words.next()?.trim_start();
    let mut year = None;
    if let Some((y, after)) = rest.split_once(' ')
        && y.len() == 4
        && let Ok(y) = y.parse::<i32>()
    {
        year = Some(y);
        rest = after.trim_start();
    }
    // hh:mm:ss[.fff]
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let clock = rest[..end].trim_end_matches(':');
    let after_clock = &rest[clock.len()..];
    let mut parts = clock.splitn(3, ':');
    let h: u32 = parts.next()?.parse().ok()?;
    let mi: u32 = parts.next()?.parse().ok()?;
    let sec_text = parts.next()?;
    let (sec, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let sec: u32 = sec.parse().ok()?;
    let nanos = if frac.is_empty() {
        0
    } else {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    // A zone name: UTC/GMT are known; another name is recorded, and the time read in the
    // configured zone (abbreviations such as CST are ambiguous).
    // A word is a zone only when it is UTC/GMT, or upper case and the header is marked as
    // Cisco's (sequence number or clock marker): `Dec  6 09:46:11 core: …` names a host.
    let mut zone = cx.zone;
    let mut after = after_clock;
    if let Some(z) = after.strip_prefix(' ')
        && let Some(name_end) = z.find(':')
    {
        let name = &z[..name_end];
        let utc = name == "UTC" || name == "GMT";
        let abbreviation =
            (2..=5).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_uppercase());
        if utc || (marked && abbreviation) {
            if utc {
                zone = FixedOffset::east_opt(0)?;
            }
            after = &z[name_end..];
        }
    }
    let year = year.unwrap_or_else(|| year_for((month, day, h, mi, sec), cx.received));
    let date = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(h, mi, sec, nanos)?;
    let t = zone.from_local_datetime(&date).single()?;
    Some((t, after))
}

/// Cisco's `%FACILITY-SEVERITY-MNEMONIC` (`%LINEPROTO-5-UPDOWN`, `%ASA-4-106023`).
struct Mnemonic<'a> {
    facility: &'a str,
    severity: u8,
    mnemonic: &'a str,
}

fn mnemonic(message: &str) -> Option<Mnemonic<'_>> {
    let tag = message.strip_prefix('%')?.split(':').next()?;
    let mut parts = tag.splitn(3, '-');
    let facility = parts.next()?;
    let sev = parts.next()?;
    let mnemonic = parts.next()?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !ok(facility) || !ok(mnemonic) || sev.len() != 1 {
        return None;
    }
    let severity = sev.parse::<u8>().ok().filter(|s| *s <= 7)?;
    Some(Mnemonic {
        facility,
        severity,
        mnemonic,
    })
}

/// The names of RFC 5424's facilities, as `syslog.conf` writes them.
fn facility_name(f: u8) -> &'static str {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    NAMES.get(usize::from(f)).copied().unwrap_or("unknown")
}

#[cfg(test)]
mod tests;
