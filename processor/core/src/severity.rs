//! Severities: the syslog scale (0 emergency … 7 debug) that events and rules use, and the
//! Moogsoft scale (0 clear … 5 critical) that the webhook receives.

/// A syslog severity, 0 (emergency) to 7 (debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyslogSeverity(u8);

/// The names `schemas/event.schema.json` accepts, with their numbers. Matching is case-insensitive.
const SYSLOG_NAMES: &[(&str, u8)] = &[
    ("emergency", 0),
    ("emerg", 0),
    ("alert", 1),
    ("critical", 2),
    ("crit", 2),
    ("error", 3),
    ("err", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("informational", 6),
    ("info", 6),
    ("debug", 7),
];

impl SyslogSeverity {
    /// The most severe level.
    pub const EMERGENCY: Self = Self(0);
    /// The least severe level.
    pub const DEBUG: Self = Self(7);

    /// A severity from its number, if it is 0–7.
    pub fn from_number(n: i64) -> Option<Self> {
        (0..=7).contains(&n).then_some(Self(n as u8))
    }

    /// A severity from a syslog name (`Warning`, `err`, …) or a decimal number `"0"`–`"7"`.
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim();
        // One digit, as the documented pattern says (not "+5" or "007").
        if let [d @ b'0'..=b'7'] = t.as_bytes() {
            return Some(Self(d - b'0'));
        }
        SYSLOG_NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(t))
            .map(|&(_, n)| Self(n))
    }

    /// The number, 0–7.
    pub fn number(self) -> u8 {
        self.0
    }

    /// The canonical lower-case name.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "emergency",
            1 => "alert",
            2 => "critical",
            3 => "error",
            4 => "warning",
            5 => "notice",
            6 => "informational",
            _ => "debug",
        }
    }

    /// The Moogsoft severity for this syslog severity: 0–2 → 5, 3 → 4, 4 → 3, 5 → 2, 6–7 → 1.
    pub fn webhook(self) -> WebhookSeverity {
        WebhookSeverity(match self.0 {
            0..=2 => 5,
            3 => 4,
            4 => 3,
            5 => 2,
            _ => 1,
        })
    }
}

/// A Moogsoft severity: 0 clear, 1 indeterminate, 2 warning/minor, 3 default, 4 major, 5 critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WebhookSeverity(u8);

impl WebhookSeverity {
    /// The severity used when nothing better is known (the contract: missing or unknown → 3).
    pub const UNKNOWN: Self = Self(3);

    /// The number, 0–5.
    pub fn number(self) -> u8 {
        self.0
    }

    /// The webhook severity for an event that carries no numeric syslog severity, from a
    /// free-form severity name such as SNMP traps carry (`Major`, `Minor`, `Clear`, or any
    /// syslog name). Unknown names give [`WebhookSeverity::UNKNOWN`].
    pub fn from_name(name: &str) -> Self {
        let t = name.trim();
        if t.eq_ignore_ascii_case("major") {
            Self(4)
        } else if t.eq_ignore_ascii_case("minor") {
            Self(2)
        } else if t.eq_ignore_ascii_case("clear") {
            Self(0)
        } else {
            SyslogSeverity::parse(t).map_or(Self::UNKNOWN, SyslogSeverity::webhook)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_map_to_numbers_case_insensitively() {
        for (name, n) in SYSLOG_NAMES {
            assert_eq!(SyslogSeverity::parse(name).unwrap().number(), *n);
            assert_eq!(
                SyslogSeverity::parse(&name.to_uppercase())
                    .unwrap()
                    .number(),
                *n
            );
        }
        assert_eq!(SyslogSeverity::parse(" Warning ").unwrap().number(), 4);
        assert_eq!(SyslogSeverity::parse("Informational").unwrap().number(), 6);
        assert_eq!(SyslogSeverity::parse("3").unwrap().number(), 3);
        assert!(SyslogSeverity::parse("8").is_none());
        assert!(SyslogSeverity::parse("-1").is_none());
        assert!(SyslogSeverity::parse("major").is_none());
        assert!(SyslogSeverity::parse("").is_none());
    }

    #[test]
    fn webhook_mapping_follows_design() {
        let expect = [5, 5, 5, 4, 3, 2, 1, 1];
        for (n, w) in expect.iter().enumerate() {
            assert_eq!(
                SyslogSeverity::from_number(n as i64)
                    .unwrap()
                    .webhook()
                    .number(),
                *w
            );
        }
        assert_eq!(WebhookSeverity::from_name("Major").number(), 4);
        assert_eq!(WebhookSeverity::from_name("minor").number(), 2);
        assert_eq!(WebhookSeverity::from_name("CLEAR").number(), 0);
        assert_eq!(WebhookSeverity::from_name("Critical").number(), 5);
        assert_eq!(WebhookSeverity::from_name("Informational").number(), 1);
        assert_eq!(WebhookSeverity::from_name("bogus").number(), 3);
    }

    proptest! {
        #[test]
        fn name_round_trips(n in 0u8..=7) {
            let s = SyslogSeverity::from_number(n.into()).unwrap();
            prop_assert_eq!(SyslogSeverity::parse(s.name()), Some(s));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = SyslogSeverity::parse(&s);
            let w = WebhookSeverity::from_name(&s);
            prop_assert!(w.number() <= 5);
        }
    }
}
