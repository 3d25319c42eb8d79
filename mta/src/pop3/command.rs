//! POP3 command parser (RFC 1939, 2449, 2595, 5034): one line without its
//! CRLF in, a typed [`Command`] out. Pure: no I/O, no state.

use thiserror::Error;

/// Longest command line RFC 2449 allows, CRLF included.
pub const MAX_LINE: usize = 255;

/// Longest SASL client response line, CRLF excluded. RFC 5034 §4 exempts
/// these responses from RFC 2449's 255 octets; this bounds what an
/// unauthenticated client can make us buffer, with room for any PLAIN,
/// LOGIN or SCRAM-SHA-256 response.
pub const MAX_SASL_LINE: usize = 8192;

/// A client command. Message numbers are 1-based as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capa,
    Stls,
    User(String),
    /// The rest of the line: passwords may contain spaces.
    Pass(String),
    /// `AUTH` alone lists the mechanisms; the initial response is still base64.
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("unknown command")]
    Unknown,
    #[error("{0}")]
    Syntax(&'static str),
    #[error("line is not UTF-8")]
    Encoding,
}

/// Parse one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Encoding)?;
    let (keyword, rest) = match line.split_once(' ') {
        Some((k, r)) => (k, Some(r)),
        None => (line, None),
    };
    if keyword.len() > 4 {
        return Err(ParseError::Unknown);
    }
    let args: Vec<&str> = rest
        .map(|r| r.split(' ').filter(|a| !a.is_empty()).collect())
        .unwrap_or_default();
    let none = |cmd: Command| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(ParseError::Syntax("no arguments expected"))
        }
    };
    match keyword.to_ascii_uppercase().as_str() {
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        "STAT" => none(Command::Stat),
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "QUIT" => none(Command::Quit),
        "USER" => match args.as_slice() {
            [name] => Ok(Command::User(name.to_string())),
            _ => Err(ParseError::Syntax("usage: USER name")),
        },
        "PASS" => match rest {
            Some(p) if !p.is_empty() => Ok(Command::Pass(p.to_string())),
            _ => Err(ParseError::Syntax("usage: PASS password")),
        },
        "AUTH" => match args.as_slice() {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial: None,
            }),
            [m] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: None,
            }),
            [m, i] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: Some(i.to_string()),
            }),
            _ => Err(ParseError::Syntax("usage: AUTH mechanism [initial-response]")),
        },
        "LIST" => optional_number(&args).map(Command::List),
        "UIDL" => optional_number(&args).map(Command::Uidl),
        "RETR" => one_number(&args).map(Command::Retr),
        "DELE" => one_number(&args).map(Command::Dele),
        "TOP" => match args.as_slice() {
            [n, lines] => Ok(Command::Top(message_number(n)?, count(lines)?)),
            _ => Err(ParseError::Syntax("usage: TOP msg n")),
        },
        _ => Err(ParseError::Unknown),
    }
}

fn message_number(s: &str) -> Result<u32, ParseError> {
    match count(s)? {
        0 => Err(ParseError::Syntax("message numbers start at 1")),
        n => Ok(n),
    }
}

fn count(s: &str) -> Result<u32, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax("not a number"));
    }
    s.parse().map_err(|_| ParseError::Syntax("number too large"))
}

fn one_number(args: &[&str]) -> Result<u32, ParseError> {
    match args {
        [n] => message_number(n),
        _ => Err(ParseError::Syntax("one message number expected")),
    }
}

fn optional_number(args: &[&str]) -> Result<Option<u32>, ParseError> {
    match args {
        [] => Ok(None),
        [n] => message_number(n).map(Some),
        _ => Err(ParseError::Syntax("at most one message number expected")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands() {
        assert_eq!(parse(b"capa"), Ok(Command::Capa));
        assert_eq!(
            parse(b"USER alice@example.org"),
            Ok(Command::User("alice@example.org".into()))
        );
        assert_eq!(
            parse(b"PASS a secret with spaces"),
            Ok(Command::Pass("a secret with spaces".into()))
        );
        assert_eq!(parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST 3"), Ok(Command::List(Some(3))));
        assert_eq!(parse(b"TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(
            parse(b"AUTH plain AGEAYg=="),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: Some("AGEAYg==".into())
            })
        );
        assert_eq!(parse(b"RETR 0"), Err(ParseError::Syntax("message numbers start at 1")));
        assert_eq!(parse(b"RETR -1"), Err(ParseError::Syntax("not a number")));
        assert_eq!(parse(b"RETR 99999999999"), Err(ParseError::Syntax("number too large")));
        assert_eq!(parse(b"DELE"), Err(ParseError::Syntax("one message number expected")));
        assert_eq!(parse(b"QUIT now"), Err(ParseError::Syntax("no arguments expected")));
        assert_eq!(parse(b"APOP a b"), Err(ParseError::Unknown));
        assert_eq!(parse(b"PASS"), Err(ParseError::Syntax("usage: PASS password")));
        assert_eq!(parse(b"\xff"), Err(ParseError::Encoding));
    }

    proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&line);
        }

        #[test]
        fn numbers_round_trip(n in 1u32.., lines in 0u32.., lower in any::<bool>()) {
            let text = format!("{} {n} {lines}", if lower { "top" } else { "TOP" });
            prop_assert_eq!(parse(text.as_bytes()), Ok(Command::Top(n, lines)));
            prop_assert_eq!(parse(format!("RETR {n}").as_bytes()), Ok(Command::Retr(n)));
        }
    }
}
