//! Syslog over a byte stream (TCP, TLS): RFC 6587's two framings, told apart per frame as
//! rsyslog and syslog-ng do. A frame that starts with a digit is octet-counted
//! (`LEN SP MSG`, RFC 5425 §4.3); anything else runs to a line feed (RFC 6587 §3.4.2).
//! A frame longer than the limit is skipped whole and reported, never buffered.

use bytes::{Buf, BytesMut};

/// What the next bytes of a stream hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One message.
    Message(BytesMut),
    /// A frame over the limit was skipped (or is being skipped); its bytes are gone.
    TooLong,
    /// An octet count that is not a number followed by a space: the stream cannot be
    /// framed any more, and the connection should be closed.
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
        let first = *buf.first()?;
        if first.is_ascii_digit() {
            self.octet_counted(buf)
        } else {
            self.line(buf)
        }
    }

    fn octet_counted(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_LEN_DIGITS {
            return Some(Frame::Broken);
        }
        if digits == buf.len() {
            return None;
        }
        if buf[digits] != b' ' {
            return Some(Frame::Broken);
        }
        // At most 10 ASCII digits: the text is a number that fits in u64.
        let len = std::str::from_utf8(&buf[..digits])
            .ok()
            .and_then(|t| t.parse::<u64>().ok())?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
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
        if buf[0].is_ascii_digit() {
            buf.clear();
            return Some(Frame::Broken);
        }
        Some(Frame::Message(buf.split()))
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
        let input = b"5 hello11 hello world\nplain line\n3 abc";
        for chunk in [1, 2, 7, 100] {
            assert_eq!(
                frames(input, 100, chunk),
                vec![
                    msg("hello"),
                    msg("hello world"),
                    msg("plain line"),
                    msg("abc")
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
            frames(b"20 aaaaaaaaaaaaaaaaaaaa3 abc", 10, 4),
            vec![Frame::TooLong, msg("abc")]
        );
        assert_eq!(
            frames(b"xxxxxxxxxxxxxxxxxxxxxxxxx\nok\n", 10, 4),
            vec![Frame::TooLong, msg("ok")]
        );
    }

    #[test]
    fn a_count_without_its_space_breaks_the_stream() {
        assert_eq!(frames(b"12x", 100, 1), vec![Frame::Broken]);
        assert_eq!(frames(b"12345678901 a", 100, 100), vec![Frame::Broken]);
        // A partial octet-counted frame at the end is not a message.
        assert_eq!(frames(b"10 abc", 100, 100), vec![Frame::Broken]);
    }

    proptest! {
        /// Any sequence of messages framed either way comes back whole, however the bytes
        /// are split into reads.
        #[test]
        fn framing_round_trips(
            msgs in proptest::collection::vec(("[a-zA-Z ][ -~]{0,40}", any::<bool>()), 0..20),
            chunk in 1usize..64,
        ) {
            let mut input = Vec::new();
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
