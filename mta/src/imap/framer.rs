//! Command framing: splits the client's byte stream into whole commands,
//! literals included, without ever holding more than the limits allow
//! (CVE-2025-61600 was a server buffering unbounded literals before login).
//! Synchronizing literals ask the caller to send a continuation first;
//! a literal over the limit is refused before any of it is read.

use crate::net::Input;

/// Limits for one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of command text outside literals, CRLFs included.
    pub text: usize,
    /// Bytes of all literals of one command together.
    pub literals: u64,
}

impl Limits {
    /// Before authentication: small, but room for RFC 2971's largest ID
    /// (30 pairs of a 30-octet field and a 1024-octet value, quoted with
    /// every octet escaped, or as literals).
    pub const UNAUTHENTICATED: Limits = Limits {
        text: 64 << 10,
        literals: 32 << 10,
    };

    /// Once authenticated: APPEND may bring `append_limit` bytes.
    pub fn authenticated(append_limit: u64) -> Limits {
        Limits {
            text: 64 << 10,
            literals: append_limit,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole command (or a line in reply to a continuation), without the final CRLF.
    Command(Vec<u8>),
    /// The client announced a synchronizing literal: send `+ ...` and read on.
    Continue,
    /// Command text over the limit; the rest of the line is skipped.
    TooLong { tag: Option<String> },
    /// A literal over the limit. `fatal` when it was non-synchronizing: its
    /// bytes are already on the way and the connection must close.
    TooBig { tag: Option<String>, fatal: bool },
}

#[derive(Debug)]
enum State {
    Scanning,
    Literal(usize),
    /// Discarding up to the next LF after an overlong line.
    Skipping,
}

#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where scanning of the current command continues.
    pos: usize,
    /// Text bytes of the current command seen so far (before `pos`, literals excluded).
    text: usize,
    literals: u64,
    state: State,
    pub limits: Limits,
}

impl Input for Framer {
    fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forget everything received so far (commands pipelined before STARTTLS).
    fn clear(&mut self) {
        self.buf.clear();
        self.reset();
    }
}

impl Framer {
    pub fn new(limits: Limits) -> Framer {
        Framer {
            buf: Vec::new(),
            pos: 0,
            text: 0,
            literals: 0,
            state: State::Scanning,
            limits,
        }
    }

    /// Bytes held, for the caller's read-size decisions and for tests.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Hand over everything received but not yet framed (the compressed
    /// bytes a client pipelined behind COMPRESS).
    pub fn take(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.buf);
        self.reset();
        rest
    }

    fn reset(&mut self) {
        self.pos = 0;
        self.text = 0;
        self.literals = 0;
        self.state = State::Scanning;
    }

    fn tag(&self) -> Option<String> {
        let end = self.buf.iter().position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
        let tag = std::str::from_utf8(&self.buf[..end]).ok()?;
        (!tag.is_empty() && tag.len() <= 64 && super::parse::is_tag(tag)).then(|| tag.to_string())
    }

    /// The next frame, or `None` if more input is needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                State::Skipping => {
                    let lf = self.buf.iter().position(|&b| b == b'\n');
                    match lf {
                        Some(i) => {
                            self.buf.drain(..=i);
                            self.reset();
                        }
                        None => {
                            self.buf.clear();
                            return None;
                        }
                    }
                }
                State::Literal(n) => {
                    if self.buf.len() - self.pos < n {
                        return None;
                    }
                    self.pos += n;
                    self.state = State::Scanning;
                }
                State::Scanning => {
                    let Some(lf) = self.buf[self.pos..].iter().position(|&b| b == b'\n') else {
                        if self.text + (self.buf.len() - self.pos) > self.limits.text {
                            let tag = self.tag();
                            self.state = State::Skipping;
                            self.buf.clear();
                            return Some(Frame::TooLong { tag });
                        }
                        return None;
                    };
                    let end = self.pos + lf;
                    self.text += lf + 1;
                    if self.text > self.limits.text {
                        let tag = self.tag();
                        self.buf.drain(..=end);
                        self.reset();
                        return Some(Frame::TooLong { tag });
                    }
                    let line = &self.buf[self.pos..end];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    match literal_announcement(line) {
                        None => {
                            let mut command: Vec<u8> = self.buf.drain(..=end).collect();
                            command.truncate(command.len() - 1);
                            if command.last() == Some(&b'\r') {
                                command.pop();
                            }
                            self.reset();
                            return Some(Frame::Command(command));
                        }
                        Some((size, sync)) => {
                            self.literals = self.literals.saturating_add(size);
                            if self.literals > self.limits.literals {
                                let tag = self.tag();
                                self.buf.drain(..=end);
                                self.reset();
                                return Some(Frame::TooBig { tag, fatal: !sync });
                            }
                            self.pos = end + 1;
                            // Within the limit, so it fits in usize.
                            self.state = State::Literal(size as usize);
                            if sync {
                                return Some(Frame::Continue);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `{123}` or `{123+}` at the end of a line: (size, synchronizing).
pub fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let sync = match digits.strip_suffix(b"+") {
        Some(d) => {
            digits = d;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((size, sync))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(f: &mut Framer) -> Vec<Frame> {
        std::iter::from_fn(|| f.next_frame()).collect()
    }

    #[test]
    fn lines_and_literals() {
        let mut f = Framer::new(Limits::UNAUTHENTICATED);
        f.extend(b"a1 NOOP\r\na2 LOGIN {3}\r\n");
        assert_eq!(frames(&mut f), [Frame::Command(b"a1 NOOP".to_vec()), Frame::Continue]);
        f.extend(b"bob {2+}\r\npw\r\na3 LOG");
        assert_eq!(
            frames(&mut f),
            [Frame::Command(b"a2 LOGIN {3}\r\nbob {2+}\r\npw".to_vec())]
        );
        f.extend(b"OUT\n");
        assert_eq!(frames(&mut f), [Frame::Command(b"a3 LOGOUT".to_vec())]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn the_largest_id_fits_before_login_and_more_does_not() {
        let pair = |i: usize| format!("\"{:0>30}\" \"{}\"", i, "\\\"".repeat(512));
        let pairs: Vec<String> = (0..30).map(pair).collect();
        let id = format!("a ID ({})", pairs.join(" "));
        let mut f = Framer::new(Limits::UNAUTHENTICATED);
        f.extend(id.as_bytes());
        f.extend(b"\r\n");
        assert_eq!(frames(&mut f), [Frame::Command(id.clone().into_bytes())]);
        let parsed = |c: &[u8]| super::super::command::parse(c).map(|t| t.command);
        assert_eq!(parsed(id.as_bytes()), Ok(super::super::command::Command::Id));
        let literals: Vec<String> = (0..30)
            .map(|i| format!("\"f{i}\" {{1024+}}\r\n{}", "v".repeat(1024)))
            .collect();
        f.extend(format!("b ID ({})\r\n", literals.join(" ")).as_bytes());
        let [Frame::Command(c)] = &frames(&mut f)[..] else {
            panic!("not one command")
        };
        assert_eq!(parsed(c), Ok(super::super::command::Command::Id));
        f.extend(&vec![b'x'; (64 << 10) + 1]);
        assert_eq!(frames(&mut f), [Frame::TooLong { tag: None }]);
    }

    #[test]
    fn oversized_literals_are_refused_before_reading() {
        let mut f = Framer::new(Limits::UNAUTHENTICATED);
        f.extend(b"x APPEND INBOX {4000000000}\r\nx2 NOOP\r\n");
        assert_eq!(
            frames(&mut f),
            [
                Frame::TooBig {
                    tag: Some("x".into()),
                    fatal: false
                },
                Frame::Command(b"x2 NOOP".to_vec())
            ]
        );
        f.extend(b"y APPEND INBOX {40000+}\r\n");
        assert_eq!(
            frames(&mut f),
            [Frame::TooBig {
                tag: Some("y".into()),
                fatal: true
            }]
        );
    }

    #[test]
    fn long_lines_are_skipped_without_buffering() {
        let mut f = Framer::new(Limits::UNAUTHENTICATED);
        f.extend(b"t1 LOGIN ");
        f.extend(&[b'a'; 70000]);
        assert_eq!(frames(&mut f), [Frame::TooLong { tag: Some("t1".into()) }]);
        for _ in 0..100 {
            f.extend(&[b'a'; 70000]);
            assert_eq!(frames(&mut f), []);
            assert_eq!(f.buffered(), 0);
        }
        f.extend(b"aaa\r\nt2 NOOP\r\n");
        assert_eq!(frames(&mut f), [Frame::Command(b"t2 NOOP".to_vec())]);
    }

    #[test]
    fn announcements() {
        assert_eq!(literal_announcement(b"A {12}"), Some((12, true)));
        assert_eq!(literal_announcement(b"A {12+}"), Some((12, false)));
        assert_eq!(literal_announcement(b"A {}"), None);
        assert_eq!(literal_announcement(b"A {1a}"), None);
        assert_eq!(literal_announcement(b"A {99999999999999999999}"), None);
    }

    proptest! {
        /// Whatever arrives, in whatever pieces, nothing over the limits is held or handed out.
        #[test]
        fn bounded(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let limits = Limits { text: 200, literals: 100 };
            let mut f = Framer::new(limits);
            for p in &pieces {
                f.extend(p);
                while let Some(frame) = f.next_frame() {
                    if let Frame::Command(c) = frame {
                        prop_assert!(c.len() <= 300);
                    }
                }
                prop_assert!(f.buffered() <= 300 + p.len());
            }
        }
    }
}
