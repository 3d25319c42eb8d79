//! DATA body decoding (RFC 5321 4.1.1.4, 4.5.2): finds the end of data,
//! undoes dot-stuffing and flags bare CR/LF. Pure: no I/O.
//!
//! Only CRLF "." CRLF ends the data, so `\n.\n`, `\r.\r` and the other SMTP
//! smuggling endings are ordinary content. A message containing a bare CR or
//! LF is read to its real end and then rejected as a whole (our documented
//! choice rather than normalizing), so nothing smuggled inside it is ever
//! seen as a command.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Mid,
    Cr,
    Dot,
    DotCr,
}

/// How a finished DATA body ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOutcome {
    Ok,
    TooBig,
    BareNewline,
}

#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    max: usize,
    too_big: bool,
    bare: bool,
}

impl DataDecoder {
    /// `max` bounds the bytes appended to the output; the rest is counted out.
    pub fn new(max: usize) -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            max,
            too_big: false,
            bare: false,
        }
    }

    /// Decode `input` into `out`. Returns how many bytes were consumed and,
    /// once the terminating line has been seen, the outcome; bytes after the
    /// terminator are left unconsumed (they are pipelined commands).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Option<DataOutcome>) {
        for (i, &b) in input.iter().enumerate() {
            let emit: &[u8] = match (self.state, b) {
                (State::LineStart, b'.') => {
                    self.state = State::Dot;
                    b""
                }
                (State::LineStart | State::Mid, b'\r') => {
                    self.state = State::Cr;
                    b""
                }
                (State::Cr, b'\n') => {
                    self.state = State::LineStart;
                    b"\r\n"
                }
                (State::Cr | State::DotCr, b'\r') => {
                    // The first CR was bare; the second may still start CRLF.
                    // (The stuffing dot before a DotCr is dropped as usual.)
                    self.bare = true;
                    self.state = State::Cr;
                    b"\r"
                }
                (State::Dot, b'\r') => {
                    self.state = State::DotCr;
                    b""
                }
                (State::DotCr, b'\n') => {
                    self.state = State::LineStart;
                    let outcome = if self.bare {
                        DataOutcome::BareNewline
                    } else if self.too_big {
                        DataOutcome::TooBig
                    } else {
                        DataOutcome::Ok
                    };
                    return (i + 1, Some(outcome));
                }
                (State::LineStart | State::Mid | State::Dot, b'\n') => {
                    self.bare = true;
                    self.state = State::Mid;
                    b"\n"
                }
                (State::Cr | State::DotCr, _) => {
                    // A CR not followed by LF: keep both bytes, flag the message.
                    self.bare = true;
                    self.state = State::Mid;
                    self.push(out, b"\r");
                    std::slice::from_ref(&input[i])
                }
                (State::LineStart | State::Mid | State::Dot, _) => {
                    // In state Dot this drops the stuffed leading dot.
                    self.state = State::Mid;
                    std::slice::from_ref(&input[i])
                }
            };
            self.push(out, emit);
        }
        (input.len(), None)
    }

    fn push(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        if out.len() + bytes.len() > self.max {
            self.too_big = true;
        } else {
            out.extend_from_slice(bytes);
        }
    }
}

/// Dot-stuff `body` (CRLF lines) for sending, the inverse of [`DataDecoder`];
/// appends the terminating `.` line.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    let mut at_start = true;
    for &b in body {
        if at_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_start = b == b'\n';
    }
    if !at_start && !body.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> (Vec<u8>, usize, Option<DataOutcome>) {
        let mut d = DataDecoder::new(1 << 20);
        let mut out = Vec::new();
        let (n, r) = d.feed(input, &mut out);
        (out, n, r)
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf() {
        let (out, n, r) = decode(b"a\r\n..b\r\n.\r\nQUIT\r\n");
        assert_eq!(out, b"a\r\n.b\r\n");
        assert_eq!(n, 11);
        assert_eq!(r, Some(DataOutcome::Ok));
        assert_eq!(decode(b".\r\n").2, Some(DataOutcome::Ok));
    }

    #[test]
    fn smuggling_endings_are_content_and_flagged() {
        for ending in [&b"a\n.\n"[..], b"a\r.\r", b"a\n.\r\n", b"a\r\n.\n", b"a\r.\r\n"] {
            let mut input = ending.to_vec();
            input.extend_from_slice(b"MAIL FROM:<x@y>\r\n");
            let (_, n, r) = decode(&input);
            assert_eq!((n, r), (input.len(), None), "{ending:?}");
            input.extend_from_slice(b"\r\n.\r\n");
            assert_eq!(decode(&input).2, Some(DataOutcome::BareNewline), "{ending:?}");
        }
    }

    #[test]
    fn too_big_is_bounded() {
        let mut d = DataDecoder::new(4);
        let mut out = Vec::new();
        let (_, r) = d.feed(b"123456789\r\n.\r\n", &mut out);
        assert_eq!(r, Some(DataOutcome::TooBig));
        assert!(out.len() <= 4);
    }

    /// The end of data is the first CRLF "." CRLF, counting the CRLF before DATA's
    /// first line; a bare CR or LF before it flags the message; clean content is
    /// unstuffed exactly.
    fn reference(input: &[u8]) -> (usize, Option<(DataOutcome, Vec<u8>)>) {
        let mut wire = b"\r\n".to_vec();
        wire.extend_from_slice(input);
        let Some(pos) = wire.windows(5).position(|w| w == b"\r\n.\r\n") else {
            return (input.len(), None);
        };
        let content = &wire[2..pos + 2];
        let bare = content.iter().enumerate().any(|(i, &b)| {
            (b == b'\r' && content.get(i + 1) != Some(&b'\n')) || (b == b'\n' && (i == 0 || content[i - 1] != b'\r'))
        });
        let unstuffed = content
            .split_inclusive(|&b| b == b'\n')
            .flat_map(|line| line.strip_prefix(b".").unwrap_or(line).to_vec())
            .collect();
        let outcome = if bare {
            DataOutcome::BareNewline
        } else {
            DataOutcome::Ok
        };
        (pos + 3, Some((outcome, unstuffed)))
    }

    #[test]
    fn every_short_sequence_of_cr_lf_and_dot_ends_where_it_should() {
        let alphabet = [b'\r', b'\n', b'.'];
        for len in 0..=8u32 {
            for code in 0..3usize.pow(len) {
                let mut input: Vec<u8> = (0..len).map(|k| alphabet[code / 3usize.pow(k) % 3]).collect();
                input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
                let (out, n, r) = decode(&input);
                let (end, expected) = reference(&input);
                assert_eq!(n, end, "consumed, {input:?}");
                let (outcome, unstuffed) = expected.expect("the suffix always ends the data");
                assert_eq!(r, Some(outcome), "{input:?}");
                if outcome == DataOutcome::Ok {
                    assert_eq!(out, unstuffed, "{input:?}");
                }
            }
        }
    }

    #[test]
    fn dot_then_bare_cr_still_ends_at_the_next_terminator() {
        let input = b"x\r\n.\r\r\n.\r\nQUIT\r\n";
        let (_, n, r) = decode(input);
        assert_eq!((n, r), (input.len() - 6, Some(DataOutcome::BareNewline)));
    }

    proptest::proptest! {
        #[test]
        fn stuff_then_decode_roundtrips(lines in proptest::collection::vec("[ -~]{0,20}", 0..10), split in 0usize..200) {
            let body: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let wire = dot_stuff(&body);
            let split = split.min(wire.len());
            let mut d = DataDecoder::new(1 << 20);
            let mut out = Vec::new();
            let (n1, r1) = d.feed(&wire[..split], &mut out);
            proptest::prop_assert_eq!(n1, split);
            let r = match r1 { Some(r) => Some(r), None => d.feed(&wire[split..], &mut out).1 };
            proptest::prop_assert_eq!(r, Some(DataOutcome::Ok));
            proptest::prop_assert_eq!(out, body);
        }
    }
}
