//! Framing of client input into lines, bounded in length.

/// Longest command line kept (RFC 5321 allows 512 octets for commands; body
/// lines of blacklisted DATA may be longer and are cut, as they are only counted).
pub const MAX_LINE: usize = 1024;

/// Why a line could not be delivered as a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The line exceeded [`MAX_LINE`]; the rest of it up to LF is discarded.
    TooLong,
    /// The line contained a NUL byte.
    Nul,
}

/// Accumulates bytes and yields complete lines (terminated by LF, with an
/// optional CR before it, as spamd accepts). Never holds more than
/// [`MAX_LINE`] bytes of an incomplete line.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Inside an overlong line: drop bytes until the next LF.
    discarding: bool,
    /// Bytes of `buf` already searched for LF.
    scanned: usize,
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader::default()
    }

    /// Feed bytes; complete lines are then taken with [`LineReader::next_line`].
    pub fn push(&mut self, mut data: &[u8]) {
        if self.discarding {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.discarding = false;
                    data = &data[i + 1..];
                }
                None => return,
            }
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line without its line ending, or an error for a bad
    /// line; `None` when more input is needed.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineError>> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = self.scanned + i;
                self.scanned = 0;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if self.buf.is_empty() {
                    // Give the memory back between commands: idle tarpit connections are many.
                    self.buf = Vec::new();
                }
                Some(if line.len() > MAX_LINE {
                    Err(LineError::TooLong)
                } else if line.contains(&0) {
                    Err(LineError::Nul)
                } else {
                    Ok(line)
                })
            }
            None if self.buf.len() > MAX_LINE => {
                self.buf = Vec::new();
                self.scanned = 0;
                self.discarding = true;
                Some(Err(LineError::TooLong))
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// Bytes held for an incomplete line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(input: &[&[u8]]) -> Vec<Result<Vec<u8>, LineError>> {
        let mut r = LineReader::new();
        let mut out = Vec::new();
        for chunk in input {
            r.push(chunk);
            while let Some(l) = r.next_line() {
                out.push(l);
            }
        }
        out
    }

    #[test]
    fn crlf_and_bare_lf_end_lines_across_chunks() {
        assert_eq!(
            lines(&[b"HE", b"LO a\r", b"\nNOOP\nQU"]),
            vec![Ok(b"HELO a".to_vec()), Ok(b"NOOP".to_vec())]
        );
    }

    #[test]
    fn overlong_line_is_one_error_then_discarded() {
        let long = vec![b'x'; MAX_LINE * 3];
        let got = lines(&[&long, &long, b"tail\r\nNOOP\r\n"]);
        assert_eq!(got, vec![Err(LineError::TooLong), Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(lines(&[b"HE\0LO\r\n"]), vec![Err(LineError::Nul)]);
    }

    proptest! {
        #[test]
        fn memory_stays_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..20)) {
            let mut r = LineReader::new();
            for c in &chunks {
                r.push(c);
                while let Some(l) = r.next_line() {
                    if let Ok(l) = l { prop_assert!(l.len() <= MAX_LINE); }
                }
                prop_assert!(r.pending() <= MAX_LINE + 700);
            }
        }

        #[test]
        fn short_lines_come_back_whole(ls in proptest::collection::vec("[ -~]{0,100}", 0..10)) {
            let text: String = ls.iter().map(|l| format!("{l}\r\n")).collect();
            let got = lines(&[text.as_bytes()]);
            let want: Vec<_> = ls.iter().map(|l| Ok(l.as_bytes().to_vec())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
