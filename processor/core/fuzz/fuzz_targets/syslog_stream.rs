//! A TCP byte stream split into reads at arbitrary points: frames never exceed the limit
//! and framing never panics.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mutt_core::wire::frame::{Frame, Framer};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut framer = Framer::new(256);
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(usize::from(split).max(1)) {
        buf.extend_from_slice(chunk);
        while let Some(f) = framer.next(&mut buf) {
            match f {
                Frame::Message(m) => assert!(m.len() <= 256),
                Frame::Broken => return,
                Frame::TooLong => {}
            }
        }
    }
    let _ = framer.finish(&mut buf);
});
