//! Message fingerprints for unhandled events.
//!
//! MUTT v2.5 hashed the exact message, so a flood of lines that differ only in a counter,
//! an address or a session id never aggregated. Here the variable parts are replaced by
//! placeholders before hashing: IPv4 and IPv6 addresses (`<ip>`), MAC addresses (`<mac>`),
//! hex ids (`<hex>`) and decimal numbers (`<n>`). The scanner is hand-written because it
//! runs on most events (about 90 % are unhandled in a typical feed) and must be linear.
//!
//! Linear means linear for any input, not only for ordinary lines: a token scan may start
//! at many positions of one line (after every `:` or `-`), so every scan is bounded by the
//! longest token it can accept ([`MAX_IPV6`], [`MAX_ID`]). Without the bounds a line of
//! 16,000 colons cost about n² steps on the alerter's threads.

/// Replaces the variable parts of a message with placeholders.
pub fn normalize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    scan(message, |part| out.push_str(part));
    out
}

/// The fingerprint of a message: 16 hex digits of FNV-1a 64 over the normalised text.
/// Stable across processes and versions, which a salted hasher would not be. The text is
/// hashed as it is scanned, without building the normalised string.
pub fn fingerprint(message: &str) -> String {
    format!("{:016x}", fingerprint_hash(message))
}

/// The hash behind [`fingerprint`], for grouping without formatting it.
pub fn fingerprint_hash(message: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    scan(message, |part| {
        for byte in part.bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    });
    h
}

/// Feeds the normalised message to `out`, in pieces: verbatim runs and placeholders.
fn scan(message: &str, out: impl FnMut(&str)) {
    scan_with(message, variable_token, digits, out);
}

/// The scanning loop, given the recognisers of addresses and ids (`variable_token`) and of
/// numbers (`digits`). The tests' oracle (the scanner before its recognisers were bounded)
/// runs this same loop with its own recognisers.
fn scan_with(
    message: &str,
    variable_token: impl Fn(&[u8], usize) -> Option<(usize, &'static str)>,
    digits: impl Fn(&[u8], usize) -> Option<usize>,
    mut out: impl FnMut(&str),
) {
    let b = message.as_bytes();
    let mut i = 0;
    // Start of the last run copied verbatim, to copy whole slices (keeps UTF-8 intact).
    let mut copied = 0;
    while i < b.len() {
        // Every address or id starts with a hex digit or a colon (`::1`): other words are
        // skipped without trying each pattern.
        let candidate = (is_hex(b[i]) || b[i] == b':') && (i == 0 || !is_word(b[i - 1]));
        let token = if candidate {
            variable_token(b, i)
        } else {
            None
        };
        let token = token.or_else(|| digits(b, i).map(|end| (end, "<n>")));
        match token {
            Some((end, placeholder)) => {
                out(&message[copied..i]);
                out(placeholder);
                i = end;
                copied = end;
            }
            None => i += 1,
        }
    }
    out(&message[copied..]);
}

/// The longest IPv6 address in the colon form the scanner recognises (eight groups of four
/// hex digits and seven colons): a longer run of hex digits and colons is not an address.
pub const MAX_IPV6: usize = 39;
/// The longest hex id (hex digits and dashes, `0x` ones included) replaced by `<hex>`: a
/// SHA-512 in hex is 128. A longer run is kept as text.
pub const MAX_ID: usize = 128;

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
    run_max(b, i, usize::MAX, f)
}

/// The end of the run of bytes satisfying `f` from `i`, looking at no more than `max + 1`
/// of them: a result beyond `i + max` means "longer than `max`".
fn run_max(b: &[u8], i: usize, max: usize, f: impl Fn(u8) -> bool) -> usize {
    let limit = b.len().min(i.saturating_add(max).saturating_add(1));
    let mut j = i;
    while j < limit && f(b[j]) {
        j += 1;
    }
    steps::add(j - i + 1);
    j
}

/// Counts the bytes the scanner looks at, in tests only: linear time is checked by counting
/// work, which is exact, rather than by timing, which is not.
mod steps {
    #[cfg(test)]
    thread_local! {
        static STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[cfg(test)]
    pub(super) fn add(n: usize) {
        STEPS.with(|s| s.set(s.get() + n));
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub(super) fn add(_: usize) {}

    /// Steps counted on this thread so far.
    #[cfg(test)]
    pub(super) fn take() -> usize {
        STEPS.with(|s| s.replace(0))
    }
}

/// A token at a word boundary that is an address or an id, with its placeholder. The token
/// must also end at a boundary, so `deadbeefcafe12xyz` stays text.
fn variable_token(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
    let ends_word = |end: usize| end == b.len() || !is_word(b[end]);
    // 0x-prefixed hex.
    if b[i] == b'0' && b.get(i + 1).is_some_and(|&c| c == b'x' || c == b'X') {
        let end = run_max(b, i + 2, MAX_ID, is_hex);
        if end > i + 2 && end - i <= MAX_ID && ends_word(end) {
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
    let end = run_max(b, i, MAX_ID, |c| is_hex(c) || c == b'-');
    if end - i > MAX_ID {
        return None;
    }
    let tok = &b[i..end];
    steps::add(tok.len());
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

/// `aa:bb:cc:dd:ee:ff`, `aa-bb-…` or Cisco's `aabb.ccdd.eeff`.
fn mac(b: &[u8], i: usize) -> Option<usize> {
    let group = |at: usize, n: usize| {
        (at + n <= b.len() && b[at..at + n].iter().all(|&c| is_hex(c))).then_some(at + n)
    };
    // Six groups of two.
    let mut at = i;
    let mut ok = true;
    for g in 0..6 {
        match group(at, 2) {
            Some(e) => at = e,
            None => {
                ok = false;
                break;
            }
        }
        if g < 5 {
            if b.get(at).is_some_and(|&c| c == b':' || c == b'-') {
                at += 1;
            } else {
                ok = false;
                break;
            }
        }
    }
    if ok {
        return Some(at);
    }
    // Three groups of four.
    let mut at = i;
    for g in 0..3 {
        at = group(at, 4)?;
        if g < 2 {
            if b.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
    }
    Some(at)
}

fn ipv4(b: &[u8], i: usize) -> Option<usize> {
    let mut at = i;
    for part in 0..4 {
        let end = run_max(b, at, 3, |c| c.is_ascii_digit());
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
    let end = run_max(b, i, MAX_IPV6, |c| is_hex(c) || c == b':');
    if end - i > MAX_IPV6 {
        return None;
    }
    let tok = &b[i..end];
    steps::add(tok.len());
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

#[cfg(test)]
mod tests;
