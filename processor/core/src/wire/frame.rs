//! Syslog over a byte stream (TCP, TLS): RFC 6587's two framings, told apart per frame. A
//! frame that starts with a number, a space and `<` (the priority that begins every
//! syslog message) is octet-counted (`LEN SP MSG`, RFC 5425 §4.3); anything else runs to
//! a line feed (RFC 6587 §3.4.2), so that a line without a priority that starts with a
//! digit (`2026-12-07 …`, `404 …`) is still a line. A frame longer than the limit is
//! skipped whole and reported, never buffered.

use bytes::{Buf, BytesMut};

/// What the next bytes of a stream hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One message.
    Message(BytesMut),
    /// A frame over the limit was skipped (or is being skipped); its bytes are gone.
    TooLong,
    /// The stream ended inside an octet-counted frame: its start is all there is.
    Broken,
}

/// Splits a stream into frames. Keeps only the state of a frame being skipped.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    /// Bytes of an over-long frame still to discard (octet counting), or `usize::MAX`
    /// while discarding up to the next line feed.
    skipping: usize,
}

const TO_NEWLINE: usize = usize::MAX;

/// The longest octet count prefix accepted: 10 digits is already more than any limit.
const MAX_LEN_DIGITS: usize = 10;

impl Framer {
    /// A framer for frames of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max, skipping: 0 }
    }

    /// The next frame in `buf`, consuming it; `None` when more bytes are needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        if self.skipping == TO_NEWLINE {
            match memchr(b'\n', buf) {
                Some(i) => {
                    buf.advance(i + 1);
                    self.skipping = 0;
                }
                None => {
                    buf.clear();
                    return None;
                }
            }
        } else if self.skipping > 0 {
            let n = self.skipping.min(buf.len());
            buf.advance(n);
            self.skipping -= n;
            if self.skipping > 0 {
                return None;
            }
        }
        // Blank lines between frames (a trailing CRLF after an octet-counted frame).
        let lead = buf
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0'))
            .count();
        buf.advance(lead);
        buf.first()?;
        match count_prefix(buf) {
            Prefix::NeedMore => None,
            Prefix::Counted { digits, len } => self.octet_counted(buf, digits, len),
            Prefix::Line => self.line(buf),
        }
    }

    fn octet_counted(&mut self, buf: &mut BytesMut, digits: usize, len: usize) -> Option<Frame> {
        if len > self.max {
            buf.advance(digits + 1);
            let n = len.min(buf.len());
            buf.advance(n);
            self.skipping = len - n;
            return Some(Frame::TooLong);
        }
        if buf.len() < digits + 1 + len {
            return None;
        }
        buf.advance(digits + 1);
        Some(Frame::Message(buf.split_to(len)))
    }

    fn line(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        match memchr(b'\n', buf) {
            Some(i) if i > self.max => {
                buf.advance(i + 1);
                Some(Frame::TooLong)
            }
            Some(i) => {
                let mut line = buf.split_to(i + 1);
                line.truncate(i);
                Some(Frame::Message(line))
            }
            None if buf.len() > self.max => {
                buf.clear();
                self.skipping = TO_NEWLINE;
                Some(Frame::TooLong)
            }
            None => None,
        }
    }

    /// What is left when the peer closed: a last line without its line feed is a message
    /// (logger and many devices end the stream without one); a partial octet-counted frame
    /// is not.
    pub fn finish(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        if self.skipping != 0 || buf.is_empty() {
            buf.clear();
            return None;
        }
        if matches!(count_prefix(buf), Prefix::Counted { .. }) {
            buf.clear();
            return Some(Frame::Broken);
        }
        Some(Frame::Message(buf.split()))
    }
}

/// How the frame at the start of a buffer is framed.
enum Prefix {
    /// `LEN SP <`: octet-counted, `len` bytes after the `digits` and the space.
    Counted { digits: usize, len: usize },
    /// Anything else: a line.
    Line,
    /// Digits (and perhaps the space) so far: the next bytes decide.
    NeedMore,
}

fn count_prefix(buf: &[u8]) -> Prefix {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_LEN_DIGITS {
        return Prefix::Line;
    }
    match (buf.get(digits), buf.get(digits + 1)) {
        (None, _) | (Some(b' '), None) => Prefix::NeedMore,
        (Some(b' '), Some(b'<')) => {
            // At most 10 ASCII digits: a number that fits in u64.
            let len = buf[..digits]
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            Prefix::Counted {
                digits,
                len: usize::try_from(len).unwrap_or(usize::MAX),
            }
        }
        _ => Prefix::Line,
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(input: &[u8], max: usize, chunk: usize) -> Vec<Frame> {
        let mut f = Framer::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(c);
            while let Some(fr) = f.next(&mut buf) {
                let broken = fr == Frame::Broken;
                out.push(fr);
                if broken {
                    return out;
                }
            }
        }
        out.extend(f.finish(&mut buf));
        out
    }

    fn msg(s: &str) -> Frame {
        Frame::Message(BytesMut::from(s))
    }

    #[test]
    fn octet_counting_and_lines_mix_in_one_stream() {
        let input = b"8 <1>hello14 <1>hello world\nplain line\n6 <1>abc";
        for chunk in [1, 2, 7, 100] {
            assert_eq!(
                frames(input, 100, chunk),
                vec![
                    msg("<1>hello"),
                    msg("<1>hello world"),
                    msg("plain line"),
                    msg("<1>abc")
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn crlf_and_a_last_line_without_newline() {
        assert_eq!(frames(b"a\r\n\r\nb", 100, 3), vec![msg("a\r"), msg("b")]);
    }

    #[test]
    fn an_over_long_frame_is_skipped_and_the_next_one_read() {
        assert_eq!(
            frames(b"20 <aaaaaaaaaaaaaaaaaaa5 <1>ab", 10, 4),
            vec![Frame::TooLong, msg("<1>ab")]
        );
        assert_eq!(
            frames(b"xxxxxxxxxxxxxxxxxxxxxxxxx\nok\n", 10, 4),
            vec![Frame::TooLong, msg("ok")]
        );
    }

    #[test]
    fn lines_that_start_with_digits_are_lines() {
        assert_eq!(
            frames(b"12x\n2026-12-07 up\n404 not found\n", 100, 1),
            vec![msg("12x"), msg("2026-12-07 up"), msg("404 not found")]
        );
        assert_eq!(
            frames(b"12345678901 <a\n", 100, 100),
            vec![msg("12345678901 <a")]
        );
        // A partial octet-counted frame at the end is not a message.
        assert_eq!(frames(b"10 <abc", 100, 100), vec![Frame::Broken]);
    }

    proptest! {
        /// Any sequence of messages framed either way comes back whole, however the bytes
        /// are split into reads.
        #[test]
        fn framing_round_trips(
            msgs in proptest::collection::vec(("[a-zA-Z< ][ -~]{0,40}", any::<bool>()), 0..20),
            chunk in 1usize..64,
        ) {
            let mut input = Vec::new();
            let msgs: Vec<(String, bool)> = msgs
                .into_iter()
                .map(|(m, counted)| if counted { (format!("<13>{m}"), true) } else { (m, false) })
                .collect();
            for (m, counted) in &msgs {
                if *counted {
                    input.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                } else {
                    input.extend_from_slice(m.as_bytes());
                    input.push(b'\n');
                }
            }
            let got = frames(&input, 100, chunk);
            let want: Vec<Frame> = msgs.iter().map(|(m, _)| msg(m)).collect();
            prop_assert_eq!(got, want);
        }

        /// Arbitrary bytes never panic and never yield a frame over the limit.
        #[test]
        fn arbitrary_bytes_stay_within_the_limit(
            input in proptest::collection::vec(any::<u8>(), 0..400),
            chunk in 1usize..50,
        ) {
            for f in frames(&input, 32, chunk) {
                if let Frame::Message(m) = f {
                    prop_assert!(m.len() <= 32);
                }
            }
        }
    }
}
