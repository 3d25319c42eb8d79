//! SMTP replies as a client reads them (RFC 5321 §4.2): a pure parser from
//! bytes to `Reply` (code, enhanced status, text lines), and the EHLO
//! capabilities a transaction depends on. Nothing here does I/O; bad input
//! is a `ReplyError`, never a panic.

/// Longest reply line accepted (RFC 5321 allows 512; real servers go beyond).
pub const MAX_LINE: usize = 4096;
/// Most lines in one multi-line reply.
pub const MAX_LINES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Text of each line after the code and separator.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("reply of more than {MAX_LINES} lines")]
    TooManyLines,
    #[error("reply lines with different codes")]
    MixedCodes,
}

impl Reply {
    /// 2, 3, 4 or 5.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// The RFC 3463 enhanced status code at the start of the first line, if
    /// it matches the reply's class.
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines.first()?;
        let word = first.split(' ').next()?;
        let mut parts = word.split('.');
        let class = parts.next()?;
        let ok = class.len() == 1
            && class.parse::<u16>().ok() == Some(self.class())
            && parts.clone().count() == 2
            && parts.all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then_some(word)
    }

    /// The enhanced status, or one derived from the reply class.
    pub fn status(&self) -> String {
        self.enhanced()
            .map_or_else(|| format!("{}.0.0", self.class()), str::to_string)
    }

    /// The reply on one line, as logs and bounces show it: `550 5.1.1 no such user`.
    pub fn one_line(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
}

/// Parse one complete reply at the start of `buf`: `Ok(None)` when more
/// bytes are needed, else the reply and the bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return if rest.len() > MAX_LINE {
                Err(ReplyError::LineTooLong)
            } else {
                Ok(None)
            };
        };
        if nl > MAX_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let raw = &rest[..nl];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += nl + 1;
        let text = String::from_utf8_lossy(line);
        let bad = || ReplyError::Malformed(text.chars().take(80).collect());
        let digits = line.get(..3).ok_or_else(bad)?;
        if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
            return Err(bad());
        }
        let this: u16 = std::str::from_utf8(digits)
            .map_err(|_| bad())?
            .parse()
            .map_err(|_| bad())?;
        if *code.get_or_insert(this) != this {
            return Err(ReplyError::MixedCodes);
        }
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(bad()),
        };
        lines.push(String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned());
        if last {
            return Ok(Some((Reply { code: this, lines }, pos)));
        }
        if lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
    }
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub starttls: bool,
    pub pipelining: bool,
    /// SIZE limit; `Some(0)` is "SIZE without a limit".
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    /// SASL mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Capabilities from an EHLO reply (the first line is the greeting name).
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else { continue };
            match keyword.to_ascii_uppercase().as_str() {
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eightbitmime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "DSN" => caps.dsn = true,
                "AUTH" => caps.auth.extend(words.map(str::to_ascii_uppercase)),
                _ => {}
            }
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_and_multi_line() {
        let (r, n) = parse(b"250 2.1.0 ok\r\nrest").unwrap().unwrap();
        assert_eq!((r.code, n), (250, 14));
        assert_eq!(r.enhanced(), Some("2.1.0"));
        let (r, _) = parse(b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n")
            .unwrap()
            .unwrap();
        let caps = Capabilities::from_ehlo(&r);
        assert!(caps.pipelining && caps.starttls && !caps.dsn);
        assert_eq!(caps.size, Some(1000));
        assert_eq!(parse(b"250-a\r\n250 b").unwrap(), None);
        assert_eq!(parse(b"220\r\n").unwrap().unwrap().0.lines, vec![String::new()]);
    }

    #[test]
    fn enhanced_status_must_match_the_class() {
        let r = |s: &[u8]| parse(s).unwrap().unwrap().0;
        assert_eq!(r(b"550 5.1.1 no\r\n").status(), "5.1.1");
        assert_eq!(r(b"550 2.1.1 odd\r\n").status(), "5.0.0");
        assert_eq!(r(b"451 try later\r\n").status(), "4.0.0");
        assert_eq!(r(b"550 5.1.1 no\r\n").one_line(), "550 5.1.1 no");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"hello\r\n").is_err());
        assert!(parse(b"650 x\r\n").is_err());
        assert!(parse(b"250-a\r\n251 b\r\n").is_err());
        assert!(parse(b"250xa\r\n").is_err());
        assert!(parse(&[b'2'; MAX_LINE + 2]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(Some((_, used))) = parse(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn well_formed_replies_parse_back(code in 200u16..600, lines in proptest::collection::vec("[ -~]{0,40}", 1..5)) {
            let mut wire = String::new();
            for (i, l) in lines.iter().enumerate() {
                let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                wire.push_str(&format!("{code}{sep}{l}\r\n"));
            }
            let (reply, used) = parse(wire.as_bytes()).unwrap().unwrap();
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(reply, Reply { code, lines });
        }
    }
}
