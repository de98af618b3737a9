use super::*;
use proptest::prelude::*;

/// The scanner as it was before its scans were bounded: the oracle for "ordinary
/// messages keep their fingerprint". Its recognisers are kept verbatim (only indented); the
/// scanning loop and the MAC scan, which bounding left as they were, are shared, not copied.
mod legacy {
    /// The loop is shared: bounding changed only the recognisers it is given.
    pub(super) fn scan(message: &str, out: impl FnMut(&str)) {
        super::super::scan_with(message, variable_token, digits, out);
    }

    fn is_word(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'_'
    }

    fn is_hex(c: u8) -> bool {
        c.is_ascii_hexdigit()
    }

    /// A run of decimal digits starting at `i`.
    fn digits(b: &[u8], i: usize) -> Option<usize> {
        let end = run(b, i, |c| c.is_ascii_digit());
        (end > i).then_some(end)
    }

    fn run(b: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
        let mut j = i;
        while j < b.len() && f(b[j]) {
            j += 1;
        }
        j
    }

    /// A token at a word boundary that is an address or an id, with its placeholder. The token
    /// must also end at a boundary, so `deadbeefcafe12xyz` stays text.
    fn variable_token(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
        let ends_word = |end: usize| end == b.len() || !is_word(b[end]);
        // 0x-prefixed hex.
        if b[i] == b'0' && b.get(i + 1).is_some_and(|&c| c == b'x' || c == b'X') {
            let end = run(b, i + 2, is_hex);
            if end > i + 2 && ends_word(end) {
                return Some((end, "<hex>"));
            }
        }
        if let Some(end) = mac(b, i).filter(|&e| ends_word(e)) {
            return Some((end, "<mac>"));
        }
        if let Some(end) = ipv4(b, i).filter(|&e| ends_word(e)) {
            return Some((end, "<ip>"));
        }
        if let Some(end) = ipv6(b, i).filter(|&e| ends_word(e)) {
            return Some((end, "<ip>"));
        }
        // Hex ids and UUIDs: at least 8 hex digits (dashes allowed) with a digit among them.
        let end = run(b, i, |c| is_hex(c) || c == b'-');
        let tok = &b[i..end];
        let hexes = tok.iter().filter(|c| is_hex(**c)).count();
        if hexes >= 8
            && tok.iter().any(u8::is_ascii_digit)
            && tok.iter().any(|c| c.is_ascii_alphabetic())
            && ends_word(end)
            && tok[tok.len() - 1] != b'-'
        {
            return Some((end, "<hex>"));
        }
        None
    }

    // The MAC scan was bounded already (fixed group sizes): it is shared, not copied.
    use super::super::mac;

    fn ipv4(b: &[u8], i: usize) -> Option<usize> {
        let mut at = i;
        for part in 0..4 {
            let end = run(b, at, |c| c.is_ascii_digit());
            if end == at || end - at > 3 {
                return None;
            }
            at = end;
            if part < 3 {
                if b.get(at) != Some(&b'.') {
                    return None;
                }
                at += 1;
            }
        }
        // An optional /prefix or :port belongs to the address.
        if matches!(b.get(at), Some(b'/') | Some(b':')) {
            let end = run(b, at + 1, |c| c.is_ascii_digit());
            if end > at + 1 {
                at = end;
            }
        }
        Some(at)
    }

    fn ipv6(b: &[u8], i: usize) -> Option<usize> {
        let end = run(b, i, |c| is_hex(c) || c == b':');
        let tok = &b[i..end];
        let colons = tok.iter().filter(|&&c| c == b':').count();
        // Eight groups, or fewer with `::`; some hex; no group longer than four digits. A clock
        // time such as 16:34:50 is not an address.
        let compressed = tok.windows(2).any(|w| w == b"::");
        if !(colons >= 7 || (compressed && colons >= 2))
            || tok.iter().all(|&c| c == b':')
            || tok.split(|&c| c == b':').any(|g| g.len() > 4)
        {
            return None;
        }
        Some(end)
    }
}

fn legacy_normalize(m: &str) -> String {
    let mut out = String::new();
    legacy::scan(m, |p| out.push_str(p));
    out
}

/// One token of an ordinary log line.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z%_]{1,12}",
        "[0-9]{1,6}",
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255, 1u16..65535)
            .prop_map(|(a, b, c, d, p)| format!("{a}.{b}.{c}.{d}:{p}")),
        "[0-9a-f]{1,4}(:[0-9a-f]{1,4}){7}",
        "fe80::[0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,3}",
        "([0-9a-f]{2}:){5}[0-9a-f]{2}",
        "[0-9a-f]{4}\\.[0-9a-f]{4}\\.[0-9a-f]{4}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "0x[0-9a-fA-F]{1,16}",
        "[0-9a-f]{8,64}",
        "[A-Za-z]{2,10}[0-9]/[0-9]{1,2}(/[0-9]{1,2})?",
        "[0-9]{2}:[0-9]{2}:[0-9]{2}",
        "\\PC{1,6}",
    ]
}

/// An ordinary line: tokens between spaces and punctuation.
fn ordinary() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            token(),
            prop::sample::select(vec![" ", ", ", ": ", " - ", "(", ")", "="]),
        ),
        0..16,
    )
    .prop_map(|parts| parts.into_iter().map(|(t, sep)| t + sep).collect())
}

#[test]
fn variable_parts_are_normalised() {
    assert_eq!(
        normalize(
            "%BGP-3-NOTIFICATION: received from neighbor 203.0.113.10 6/0 (Unspecified Error) 0 bytes"
        ),
        "%BGP-<n>-NOTIFICATION: received from neighbor <ip> <n>/<n> (Unspecified Error) <n> bytes"
    );
    assert_eq!(
        normalize("src 10.0.0.1:443 dst 192.168.1.0/24"),
        "src <ip> dst <ip>"
    );
    assert_eq!(
        normalize("host fe80::1ff:fe23:4567:890a down"),
        "host <ip> down"
    );
    assert_eq!(
        normalize("mac 00:1A:2b:3c:4D:5e and 001a.2b3c.4d5e"),
        "mac <mac> and <mac>"
    );
    assert_eq!(
        normalize("session 0xDEADBEEF id 550e8400-e29b-41d4-a716-446655440000"),
        "session <hex> id <hex>"
    );
    assert_eq!(
        normalize("GigabitEthernet0/0/1 changed"),
        "GigabitEthernet<n>/<n>/<n> changed"
    );
    assert_eq!(normalize("no digits here"), "no digits here");
    assert_eq!(normalize("at 16:34:50"), "at <n>:<n>:<n>");
    assert_eq!(normalize("ünïcödé 42 ✓"), "ünïcödé <n> ✓");
    assert_eq!(normalize("deadbeef is a word"), "deadbeef is a word");
}

#[test]
fn similar_lines_share_a_fingerprint() {
    let a = fingerprint("Port scan detected from 203.0.113.45 to 192.168.10.5, 1200 packets");
    let b = fingerprint("Port scan detected from 198.51.100.7 to 192.168.10.9, 31 packets");
    let c = fingerprint("Port sweep detected from 198.51.100.7 to 192.168.10.9, 31 packets");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 16);
}

/// The line that took the alerter's threads for seconds: a token scan restarted at
/// every colon and ran to the end of the line.
#[test]
fn sixteen_thousand_colons_cost_linear_work() {
    for m in [":".repeat(16_000), "1-".repeat(8_000), "a:".repeat(8_000)] {
        steps::take();
        let _ = fingerprint_hash(&m);
        let work = steps::take();
        assert!(work <= 400 * m.len(), "{work} steps for {} bytes", m.len());
    }
}

proptest! {
    /// Bounding the scans changed nothing for the lines MUTT sees.
    #[test]
    fn ordinary_messages_keep_their_fingerprint(m in ordinary()) {
        prop_assert_eq!(normalize(&m), legacy_normalize(&m));
    }

    /// Adversarial lines (a short pattern repeated, so that a token scan could restart
    /// at every position) cost a bounded number of steps per byte.
    #[test]
    fn work_per_byte_is_bounded(pattern in "[0-9a-fx:.\\-/ ]{1,6}", n in 1usize..4_000) {
        let m = pattern.repeat(n);
        steps::take();
        let _ = fingerprint_hash(&m);
        let work = steps::take();
        prop_assert!(work <= 400 * m.len() + 400, "{work} steps for {} bytes of {pattern:?}", m.len());
    }

    #[test]
    fn normalisation_is_idempotent_and_total(s in "\\PC{0,80}") {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once.clone());
    }

    #[test]
    fn the_fingerprint_hashes_the_normalised_text(s in "[a-f0-9:. x-]{0,40}|\\PC{0,60}") {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in normalize(&s).bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        prop_assert_eq!(fingerprint(&s), format!("{h:016x}"));
    }

    #[test]
    fn numbers_never_change_the_fingerprint(a in 0u64..1_000_000, b in 0u64..1_000_000, word in "[a-z ]{0,20}") {
        prop_assert_eq!(
            fingerprint(&format!("{word} count {a} from 10.0.{}.1", a % 256)),
            fingerprint(&format!("{word} count {b} from 10.0.{}.1", b % 256))
        );
    }
}
