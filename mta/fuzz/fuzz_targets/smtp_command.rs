//! Command framing and parsing: arbitrary bytes through the line buffer
//! (as a client would send them, in two pieces) and every line through the
//! parser. Lines handed out never hold CR, LF or NUL, nor exceed the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::net::Input;
use mta::smtp::{command, lines::LineBuffer};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| b as usize).min(data.len());
    let mut buf = LineBuffer::new(64);
    for piece in [&data[..split], &data[split..]] {
        buf.extend(piece);
        while let Some(line) = buf.next_line() {
            if let Ok(line) = line {
                assert!(line.len() <= 64);
                assert!(!line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
                let _ = command::parse(&line);
            }
        }
        assert!(buf.pending().len() <= 65 + piece.len());
    }
    let _ = command::parse(data);
});
