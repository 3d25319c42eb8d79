//! List entries, one a line, as blocklists publish them: `a.b.c.d/nn`,
//! `a - b` ranges and single addresses, IPv4 or IPv6. Blank lines and lines
//! starting with `#` or `;` are comments; text after an entry is ignored
//! (Spamhaus DROP writes `1.2.3.0/24 ; SBL123`). Parsing is pure.

use std::net::IpAddr;

/// Lines longer than this are reported malformed without being looked at:
/// no real entry comes close, and it bounds what one report can echo.
pub const MAX_LINE: usize = 1024;

/// An inclusive address range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    V4(u32, u32),
    V6(u128, u128),
}

/// A line that holds no entry, reported to the user and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// 1-based.
    pub line: usize,
    /// The start of the line, lossily decoded, for the report.
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub malformed: Vec<Malformed>,
}

/// A line that is neither an entry nor a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a list entry")]
pub struct NotAnEntry;

/// Parse a whole list.
pub fn parse_list(bytes: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let entry = if line.len() > MAX_LINE {
            Err(NotAnEntry)
        } else {
            parse_line(line)
        };
        match entry {
            Ok(Some(e)) => out.entries.push(e),
            Ok(None) => {}
            Err(NotAnEntry) => out.malformed.push(Malformed {
                line: i + 1,
                text: String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned(),
            }),
        }
    }
    out
}

/// One line: `Ok(None)` for a comment or blank line, `Err` when it holds no entry.
pub fn parse_line(line: &[u8]) -> Result<Option<Entry>, NotAnEntry> {
    let line = line.trim_ascii();
    if line.is_empty() || line[0] == b'#' || line[0] == b';' {
        return Ok(None);
    }
    let (first, rest) = address(line)?;
    let (entry, rest) = if let Some(rest) = rest.strip_prefix(b"/") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let prefix: u8 = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(NotAnEntry)?;
        (cidr(first, prefix)?, &rest[digits..])
    } else if let Some(after) = rest.trim_ascii_start().strip_prefix(b"-") {
        let (last, rest) = address(after.trim_ascii_start())?;
        (range(first, last)?, rest)
    } else {
        (range(first, first)?, rest)
    };
    // "10.0.0.1x" is not an entry followed by text: a separator must come first.
    match rest.first() {
        None => Ok(Some(entry)),
        Some(b) if b.is_ascii_whitespace() || b";#,".contains(b) => Ok(Some(entry)),
        Some(_) => Err(NotAnEntry),
    }
}

/// An address at the start of `s`, and what follows it.
fn address(s: &[u8]) -> Result<(IpAddr, &[u8]), NotAnEntry> {
    let len = s
        .iter()
        .take_while(|b| b.is_ascii_hexdigit() || **b == b'.' || **b == b':')
        .count();
    let ip = std::str::from_utf8(&s[..len])
        .ok()
        .and_then(|a| a.parse().ok())
        .ok_or(NotAnEntry)?;
    Ok((ip, &s[len..]))
}

/// Host bits in a prefix are ignored, as a router would.
fn cidr(ip: IpAddr, prefix: u8) -> Result<Entry, NotAnEntry> {
    match ip {
        IpAddr::V4(a) if prefix <= 32 => {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let lo = u32::from(a) & !host;
            Ok(Entry::V4(lo, lo | host))
        }
        IpAddr::V6(a) if prefix <= 128 => {
            let host = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let lo = u128::from(a) & !host;
            Ok(Entry::V6(lo, lo | host))
        }
        _ => Err(NotAnEntry),
    }
}

fn range(first: IpAddr, last: IpAddr) -> Result<Entry, NotAnEntry> {
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => Ok(Entry::V4(a.into(), b.into())),
        (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => Ok(Entry::V6(a.into(), b.into())),
        _ => Err(NotAnEntry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> u32 {
        s.parse::<std::net::Ipv4Addr>().unwrap().into()
    }

    #[test]
    fn forms() {
        let cases: [(&str, Option<Entry>); 10] = [
            ("192.0.2.0/24", Some(Entry::V4(v4("192.0.2.0"), v4("192.0.2.255")))),
            ("192.0.2.77/24", Some(Entry::V4(v4("192.0.2.0"), v4("192.0.2.255")))),
            ("  192.0.2.7\r", Some(Entry::V4(v4("192.0.2.7"), v4("192.0.2.7")))),
            (
                "192.0.2.7 - 192.0.2.9",
                Some(Entry::V4(v4("192.0.2.7"), v4("192.0.2.9"))),
            ),
            ("192.0.2.7-192.0.2.9", Some(Entry::V4(v4("192.0.2.7"), v4("192.0.2.9")))),
            (
                "1.10.16.0/20 ; SBL256894",
                Some(Entry::V4(v4("1.10.16.0"), v4("1.10.31.255"))),
            ),
            ("0.0.0.0/0", Some(Entry::V4(0, u32::MAX))),
            (
                "2001:db8::/32",
                Some(Entry::V6(0x2001_0db8 << 96, (0x2001_0db8 << 96) | (u128::MAX >> 32))),
            ),
            ("# comment", None),
            ("; comment", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line.as_bytes()), Ok(want), "{line}");
        }
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            "hello",
            "192.0.2.1/33",
            "2001:db8::/129",
            "192.0.2.9 - 192.0.2.7",
            "192.0.2.1 - 2001:db8::1",
            "192.0.2.1x",
            "192.0.2/24",
            "192.0.2.1/",
            "256.0.0.1",
        ] {
            assert_eq!(parse_line(bad.as_bytes()), Err(NotAnEntry), "{bad}");
        }
    }

    #[test]
    fn list_reports_line_numbers_and_keeps_the_rest() {
        let long = "9".repeat(MAX_LINE + 1);
        let text = format!("# head\n192.0.2.1\nnonsense here\n\n{long}\n2001:db8::1\n");
        let parsed = parse_list(text.as_bytes());
        assert_eq!(parsed.entries.len(), 2);
        let lines: Vec<usize> = parsed.malformed.iter().map(|m| m.line).collect();
        assert_eq!(lines, [3, 5]);
        assert_eq!(parsed.malformed[0].text, "nonsense here");
        assert_eq!(parsed.malformed[1].text.len(), 80);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_list(&bytes);
        }

        #[test]
        fn printed_cidrs_parse_back(a in any::<u32>(), p in 0u8..=32) {
            let net = ipnet::Ipv4Net::new(a.into(), p).unwrap().trunc();
            let e = parse_line(net.to_string().as_bytes()).unwrap().unwrap();
            prop_assert_eq!(e, Entry::V4(net.network().into(), net.broadcast().into()));
        }
    }
}
