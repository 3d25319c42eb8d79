//! Command-line framing: raw bytes in, CRLF-terminated lines out, with the
//! line length limit and the bare CR/LF and NUL checks. Pure: no I/O.

use crate::net::Input;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    #[error("line too long")]
    TooLong,
    #[error("bare CR or LF")]
    BareNewline,
    #[error("NUL byte")]
    Nul,
}

impl LineError {
    pub fn reply(&self) -> &'static str {
        match self {
            LineError::TooLong => "500 5.5.2 Line too long",
            LineError::BareNewline => "500 5.5.2 Bare CR or LF not allowed, use CRLF",
            LineError::Nul => "500 5.5.2 NUL characters not allowed",
        }
    }
}

/// Input buffer of a session. Lines end only at CRLF; an overlong line is
/// reported once and then skipped up to its CRLF, so memory stays bounded.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    limit: usize,
    skipping: bool,
}

impl Input for LineBuffer {
    fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forget everything buffered (bytes pipelined before a TLS handshake).
    fn clear(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }
}

impl LineBuffer {
    /// `limit` is the longest line accepted, CRLF excluded.
    pub fn new(limit: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            limit,
            skipping: false,
        }
    }

    /// Change the longest line accepted from the next line on (POP3 allows
    /// SASL responses longer than its commands).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Bytes buffered but not yet consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Drop `n` bytes from the front (consumed by a DATA or BDAT reader).
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
    }

    /// The next complete line without its CRLF, an error for a bad one, or
    /// `None` if more input is needed.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineError>> {
        loop {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
                    line.pop();
                    if self.skipping {
                        self.skipping = false;
                        continue;
                    }
                    if line.pop() != Some(b'\r') || line.contains(&b'\r') {
                        return Some(Err(LineError::BareNewline));
                    }
                    if line.len() > self.limit {
                        return Some(Err(LineError::TooLong));
                    }
                    if line.contains(&0) {
                        return Some(Err(LineError::Nul));
                    }
                    return Some(Ok(line));
                }
                None if self.buf.len() > self.limit + 1 => {
                    self.buf.clear();
                    if self.skipping {
                        return None;
                    }
                    self.skipping = true;
                    return Some(Err(LineError::TooLong));
                }
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_rejects() {
        let mut b = LineBuffer::new(10);
        b.extend(b"NOOP\r\nA\nB\r\nx\ry\r\n\x00\r\n");
        assert_eq!(b.next_line(), Some(Ok(b"NOOP".to_vec())));
        assert_eq!(b.next_line(), Some(Err(LineError::BareNewline)));
        assert_eq!(b.next_line(), Some(Ok(b"B".to_vec())));
        assert_eq!(b.next_line(), Some(Err(LineError::BareNewline)));
        assert_eq!(b.next_line(), Some(Err(LineError::Nul)));
        assert_eq!(b.next_line(), None);
    }

    #[test]
    fn limit_changes_from_the_next_line() {
        let mut b = LineBuffer::new(4);
        b.extend(b"12345678\r\n123456\r\n");
        b.set_limit(8);
        assert_eq!(b.next_line(), Some(Ok(b"12345678".to_vec())));
        b.set_limit(4);
        assert_eq!(b.next_line(), Some(Err(LineError::TooLong)));
    }

    #[test]
    fn overlong_reported_once_and_skipped() {
        let mut b = LineBuffer::new(4);
        b.extend(b"0123456789");
        assert_eq!(b.next_line(), Some(Err(LineError::TooLong)));
        b.extend(b"0123456789");
        assert_eq!(b.next_line(), None);
        b.extend(b"tail\r\nQUIT\r\n");
        assert_eq!(b.next_line(), Some(Ok(b"QUIT".to_vec())));
        let mut b = LineBuffer::new(4);
        b.extend(b"12345\r\n");
        assert_eq!(b.next_line(), Some(Err(LineError::TooLong)));
    }

    proptest::proptest! {
        #[test]
        fn lines_never_hold_cr_lf_nul(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..10)) {
            let mut b = LineBuffer::new(16);
            for c in chunks {
                b.extend(&c);
                while let Some(r) = b.next_line() {
                    if let Ok(line) = r {
                        proptest::prop_assert!(line.len() <= 16);
                        proptest::prop_assert!(!line.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0));
                    }
                }
                proptest::prop_assert!(b.pending().len() <= 17 + 40);
            }
        }
    }
}
