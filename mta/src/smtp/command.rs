//! SMTP command parsing: one command line (without its CRLF) in, a typed
//! [`Command`] out. Pure: no I/O, no session state.

use crate::envelope::{Address, BadAddress, Body, MailParams, RcptParams, Ret, valid_domain};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    /// `None` is the null reverse path `<>`.
    Mail(Option<Address>, MailParams),
    Rcpt(Address, RcptParams),
    /// `RCPT TO:<postmaster>` without a domain (RFC 5321 4.5.1).
    RcptPostmaster(RcptParams),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    Etrn(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("command unrecognized")]
    Unknown,
    #[error("syntax error in parameters")]
    Syntax,
    #[error("bad address syntax")]
    BadAddress,
    #[error("unsupported parameter")]
    UnknownParam,
}

impl From<BadAddress> for ParseError {
    fn from(_: BadAddress) -> Self {
        ParseError::BadAddress
    }
}

impl ParseError {
    /// The reply for this error, code and enhanced status included.
    pub fn reply(&self) -> &'static str {
        match self {
            ParseError::Unknown => "500 5.5.1 Command unrecognized",
            ParseError::Syntax => "501 5.5.4 Syntax error in parameters or arguments",
            ParseError::BadAddress => "501 5.1.3 Bad address syntax",
            ParseError::UnknownParam => "555 5.5.4 Unsupported parameter",
        }
    }
}

/// Parse one command line (CRLF already removed). `utf8` permits non-ASCII
/// addresses, which the session allows only with MAIL ... SMTPUTF8.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax)?;
    if line.chars().any(|c| c.is_control()) {
        return Err(ParseError::Syntax);
    }
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if rest.trim().is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax)
        }
    };
    match verb.as_str() {
        "HELO" => Ok(Command::Helo(helo_arg(rest)?)),
        "EHLO" => Ok(Command::Ehlo(helo_arg(rest)?)),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(Command::Data),
        "BDAT" => parse_bdat(rest),
        "RSET" => no_args(Command::Rset),
        // NOOP and HELP may carry an argument that is ignored (RFC 5321 4.1.1.9, 4.1.1.8).
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy(required(rest)?)),
        "EXPN" => Ok(Command::Expn(required(rest)?)),
        "STARTTLS" => no_args(Command::StartTls),
        "ETRN" => Ok(Command::Etrn(required(rest)?)),
        "AUTH" => {
            let mut words = rest.split_ascii_whitespace();
            let mechanism = words.next().ok_or(ParseError::Syntax)?.to_ascii_uppercase();
            let initial = words.next().map(str::to_string);
            if words.next().is_some() {
                return Err(ParseError::Syntax);
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(ParseError::Unknown),
    }
}

fn required(rest: &str) -> Result<String, ParseError> {
    let rest = rest.trim();
    if rest.is_empty() {
        Err(ParseError::Syntax)
    } else {
        Ok(rest.to_string())
    }
}

/// HELO/EHLO argument: one token of printable ASCII, so it can go into
/// a Received: header as is.
fn helo_arg(rest: &str) -> Result<String, ParseError> {
    let arg = rest.trim();
    if arg.is_empty() || arg.contains(' ') || !arg.bytes().all(|b| b.is_ascii_graphic()) || arg.len() > 255 {
        return Err(ParseError::Syntax);
    }
    Ok(arg.to_string())
}

/// Split `FROM:<path> params` into the path (without brackets) and the parameters.
fn path_and_params<'a>(rest: &'a str, keyword: &str) -> Result<(&'a str, &'a str), ParseError> {
    let head = rest.get(..keyword.len()).ok_or(ParseError::Syntax)?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(ParseError::Syntax);
    }
    // Some clients put a space after the colon; Postfix and sendmail accept it.
    let rest = rest[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<').ok_or(ParseError::BadAddress)?;
    let close = closing_bracket(rest).ok_or(ParseError::BadAddress)?;
    let path = &rest[..close];
    let params = &rest[close + 1..];
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(ParseError::Syntax);
    }
    Ok((path, params.trim()))
}

/// Position of the `>` closing the path, skipping quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Drop an RFC 5321 source route (`@a,@b:`); the route is ignored, as 4.1.1.3 allows.
fn strip_route(path: &str) -> Result<&str, ParseError> {
    if !path.starts_with('@') {
        return Ok(path);
    }
    let colon = path.find(':').ok_or(ParseError::BadAddress)?;
    for hop in path[..colon].split(',') {
        let domain = hop.strip_prefix('@').ok_or(ParseError::BadAddress)?;
        if !valid_domain(domain, false) {
            return Err(ParseError::BadAddress);
        }
    }
    Ok(&path[colon + 1..])
}

fn params_iter(params: &str) -> impl Iterator<Item = (String, Option<&str>)> {
    params.split_ascii_whitespace().map(|p| match p.split_once('=') {
        Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
        None => (p.to_ascii_uppercase(), None),
    })
}

fn parse_mail(rest: &str) -> Result<Command, ParseError> {
    let (path, params) = path_and_params(rest, "FROM:")?;
    let mut p = MailParams::default();
    for (key, value) in params_iter(params) {
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => p.size = Some(v.parse().map_err(|_| ParseError::Syntax)?),
            ("BODY", Some(v)) => {
                p.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(ParseError::Syntax),
                })
            }
            ("SMTPUTF8", None) => p.smtputf8 = true,
            ("RET", Some(v)) => {
                p.ret = Some(match v.to_ascii_uppercase().as_str() {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Hdrs,
                    _ => return Err(ParseError::Syntax),
                })
            }
            ("ENVID", Some(v)) if valid_xtext(v) => p.envid = Some(v.to_string()),
            ("AUTH", Some(v)) if valid_xtext(v) => p.auth = Some(v.to_string()),
            _ => return Err(ParseError::UnknownParam),
        }
    }
    let path = strip_route(path)?;
    if path.is_empty() {
        return Ok(Command::Mail(None, p));
    }
    Ok(Command::Mail(Some(Address::parse(path, p.smtputf8)?), p))
}

fn parse_rcpt(rest: &str) -> Result<Command, ParseError> {
    let (path, params) = path_and_params(rest, "TO:")?;
    let mut p = RcptParams::default();
    for (key, value) in params_iter(params) {
        match (key.as_str(), value) {
            ("NOTIFY", Some(v)) => {
                let words: Vec<String> = v.split(',').map(|w| w.to_ascii_uppercase()).collect();
                let known = ["NEVER", "SUCCESS", "FAILURE", "DELAY"];
                if !words.iter().all(|w| known.contains(&w.as_str()))
                    || (words.len() > 1 && words.iter().any(|w| w == "NEVER"))
                {
                    return Err(ParseError::Syntax);
                }
                p.notify = words;
            }
            ("ORCPT", Some(v)) if valid_xtext(v) => p.orcpt = Some(v.to_string()),
            _ => return Err(ParseError::UnknownParam),
        }
    }
    let path = strip_route(path)?;
    if path.eq_ignore_ascii_case("postmaster") {
        return Ok(Command::RcptPostmaster(p));
    }
    // Non-ASCII is checked against SMTPUTF8 by the session, which knows the MAIL parameters.
    Ok(Command::Rcpt(Address::parse(path, true)?, p))
}

fn parse_bdat(rest: &str) -> Result<Command, ParseError> {
    let mut words = rest.split_ascii_whitespace();
    let size = words
        .next()
        .and_then(|w| {
            if w.bytes().all(|b| b.is_ascii_digit()) {
                w.parse().ok()
            } else {
                None
            }
        })
        .ok_or(ParseError::Syntax)?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(ParseError::Syntax),
    };
    if words.next().is_some() {
        return Err(ParseError::Syntax);
    }
    Ok(Command::Bdat { size, last })
}

/// RFC 3461 xtext: printable ASCII except `+` and `=` unless `+` starts a `+HH` escape.
fn valid_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
                if !(b.get(i + 1).is_some_and(|&c| hex(c)) && b.get(i + 2).is_some_and(|&c| hex(c))) {
                    return false;
                }
                i += 3;
            }
            b'!'..=b'~' if b[i] != b'=' => i += 1,
            _ => return false,
        }
    }
    !s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> Address {
        Address::parse(s, false).unwrap()
    }

    #[test]
    fn mail_and_params() {
        assert_eq!(
            parse(b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=x+2B1").unwrap(),
            Command::Mail(
                Some(mb("a@b.example")),
                MailParams {
                    size: Some(100),
                    body: Some(Body::EightBitMime),
                    ret: Some(Ret::Hdrs),
                    envid: Some("x+2B1".into()),
                    ..Default::default()
                }
            )
        );
        assert_eq!(
            parse(b"mail from:<>").unwrap(),
            Command::Mail(None, MailParams::default())
        );
        assert_eq!(parse(b"MAIL FROM:<a@b> FOO=1"), Err(ParseError::UnknownParam));
        assert_eq!(parse(b"MAIL FROM:a@b"), Err(ParseError::BadAddress));
    }

    #[test]
    fn rcpt_forms() {
        assert_eq!(
            parse(b"RCPT TO:<@relay.example,@b.example:user@c.example> NOTIFY=SUCCESS,FAILURE").unwrap(),
            Command::Rcpt(
                mb("user@c.example"),
                RcptParams {
                    notify: vec!["SUCCESS".into(), "FAILURE".into()],
                    orcpt: None
                }
            )
        );
        assert_eq!(
            parse(b"RCPT TO:<\"a@b\"@c.example>").unwrap(),
            Command::Rcpt(mb("\"a@b\"@c.example"), RcptParams::default())
        );
        assert!(matches!(parse(b"RCPT TO:<Postmaster>"), Ok(Command::RcptPostmaster(_))));
        assert!(parse(b"RCPT TO:<u@[127.0.0.1]>").is_ok());
        assert_eq!(parse(b"RCPT TO:<u@[1.2.3]>"), Err(ParseError::BadAddress));
        assert_eq!(parse(b"RCPT TO:<a b@c>"), Err(ParseError::BadAddress));
        assert_eq!(parse(b"RCPT TO:<u@c> NOTIFY=NEVER,SUCCESS"), Err(ParseError::Syntax));
    }

    #[test]
    fn helo_rejects_injection() {
        assert_eq!(parse(b"HELO a\rb"), Err(ParseError::Syntax));
        assert_eq!(parse(b"EHLO a b"), Err(ParseError::Syntax));
        assert_eq!(parse(b"EHLO x\x00"), Err(ParseError::Syntax));
        assert_eq!(
            parse(b"ehlo client.example").unwrap(),
            Command::Ehlo("client.example".into())
        );
    }

    #[test]
    fn bdat_and_misc() {
        assert_eq!(parse(b"BDAT 10 LAST").unwrap(), Command::Bdat { size: 10, last: true });
        assert_eq!(parse(b"BDAT -1"), Err(ParseError::Syntax));
        assert_eq!(parse(b"DATA x"), Err(ParseError::Syntax));
        assert_eq!(parse(b"FOO"), Err(ParseError::Unknown));
        assert_eq!(
            parse(b"AUTH plain AGEAYg==").unwrap(),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGEAYg==".into())
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&line);
        }

        #[test]
        fn parsed_addresses_have_no_controls(local in "[a-z.%!\"@]{1,20}", domain in "[a-z0-9.\\[\\]-]{1,20}") {
            let line = format!("RCPT TO:<{local}@{domain}>");
            if let Ok(Command::Rcpt(m, _)) = parse(line.as_bytes()) {
                proptest::prop_assert!(!m.to_string().chars().any(|c| c.is_control()));
                proptest::prop_assert_eq!(m.to_string(), format!("{local}@{domain}"));
            }
        }
    }
}
