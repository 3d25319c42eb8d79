//! IMAP command framing and parsing: arbitrary bytes through the framer (in
//! two pieces, as a client might send them) and every framed command through
//! the parser (literal8 `~{n}` and `$` included). Nothing over the limits is
//! held or handed out, and a refused command is answered in one line. The same bytes as message content go through BINARY's
//! transfer decoding, which never grows them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::imap::{binary, command};
use mta::imap::framer::{Frame, Framer, Limits};
use mta::imap::response::{Response, Status};
use mta::net::Input;

/// Parse `c`; a refusal must encode as exactly one CRLF-terminated line.
fn parse_and_answer(c: &[u8]) {
    if let Err(rejected) = command::parse(c) {
        let wire = Response::from(Status::refusing(&rejected)).to_bytes();
        let body = wire.strip_suffix(b"\r\n").expect("CRLF at the end");
        assert!(!body.iter().any(|&b| b == b'\r' || b == b'\n'));
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| b as usize).min(data.len());
    let limits = Limits { text: 256, literals: 128 };
    let mut framer = Framer::new(limits);
    for piece in [&data[..split], &data[split..]] {
        framer.extend(piece);
        while let Some(frame) = framer.next_frame() {
            if let Frame::Command(c) = frame {
                assert!(c.len() <= 256 + 128);
                parse_and_answer(&c);
            }
        }
        assert!(framer.buffered() <= 256 + 128 + piece.len());
    }
    parse_and_answer(data);
    for cte in ["base64", "quoted-printable"] {
        let decoded = binary::decode(cte, data).expect("a known encoding");
        assert!(decoded.len() <= data.len());
    }
});
