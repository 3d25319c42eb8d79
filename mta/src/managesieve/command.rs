//! ManageSieve command parser (RFC 5804 §2, §4): one framed command (its
//! literals inside, as `imap::framer` bounds and frames them) in, a typed
//! [`Command`] out. Strings are quoted or literals `{N+}` (and `{N}`, which
//! some clients send); the string grammar is IMAP's, read with
//! `imap::parse`. Script names are checked here, so no name that could
//! leave the user's script folder reaches the shell. Pure: no I/O, no state.

use crate::imap::parse::{self, Parser};
use crate::sieve::scripts::{self, NameError};
use thiserror::Error;

/// A client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The mechanism upper-cased; the initial response still base64.
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    StartTls,
    Capability,
    HaveSpace {
        name: String,
        size: u64,
    },
    PutScript {
        name: String,
        script: Vec<u8>,
    },
    CheckScript(Vec<u8>),
    ListScripts,
    /// `None` (the empty name) deactivates.
    SetActive(Option<String>),
    GetScript(String),
    DeleteScript(String),
    RenameScript {
        from: String,
        to: String,
    },
    /// The optional tag, echoed in the OK.
    Noop(Option<Vec<u8>>),
    Unauthenticate,
    Logout,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("Unknown command")]
    Unknown,
    #[error("Syntax error: {0}")]
    Syntax(#[from] parse::ParseError),
    #[error("Script name is not UTF-8")]
    NameEncoding,
    #[error("Invalid script name: {0}")]
    Name(#[from] NameError),
}

/// Parse one framed command (without its final CRLF).
pub fn parse(frame: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser::new(frame, parse::NameEncoding::Utf8);
    let keyword = p.atom().map_err(|_| ParseError::Unknown)?.to_ascii_uppercase();
    let command = match keyword.as_str() {
        "AUTHENTICATE" => {
            let mechanism = utf8(arg(&mut p)?)?.to_ascii_uppercase();
            let initial = if p.at_end() { None } else { Some(utf8(arg(&mut p)?)?) };
            Command::Authenticate { mechanism, initial }
        }
        "STARTTLS" => Command::StartTls,
        "CAPABILITY" => Command::Capability,
        "HAVESPACE" => {
            let name = name(&mut p)?;
            p.sp()?;
            Command::HaveSpace {
                name,
                size: p.number64()?,
            }
        }
        "PUTSCRIPT" => Command::PutScript {
            name: name(&mut p)?,
            script: arg(&mut p)?,
        },
        "CHECKSCRIPT" => Command::CheckScript(arg(&mut p)?),
        "LISTSCRIPTS" => Command::ListScripts,
        "SETACTIVE" => {
            let name = utf8(arg(&mut p)?).map_err(|_| ParseError::NameEncoding)?;
            if name.is_empty() {
                Command::SetActive(None)
            } else {
                scripts::check_name(&name)?;
                Command::SetActive(Some(name))
            }
        }
        "GETSCRIPT" => Command::GetScript(name(&mut p)?),
        "DELETESCRIPT" => Command::DeleteScript(name(&mut p)?),
        "RENAMESCRIPT" => Command::RenameScript {
            from: name(&mut p)?,
            to: name(&mut p)?,
        },
        "NOOP" => Command::Noop(if p.at_end() { None } else { Some(arg(&mut p)?) }),
        "UNAUTHENTICATE" => Command::Unauthenticate,
        "LOGOUT" => Command::Logout,
        _ => return Err(ParseError::Unknown),
    };
    p.end()?;
    Ok(command)
}

/// A SASL client response (RFC 5804 §2.1): one string, base64 or `*`.
pub fn sasl_response(frame: &[u8]) -> Result<String, ParseError> {
    let mut p = Parser::new(frame, parse::NameEncoding::Utf8);
    let response = utf8(p.string()?)?;
    p.end()?;
    Ok(response)
}

/// A space, then a string.
fn arg(p: &mut Parser<'_>) -> Result<Vec<u8>, ParseError> {
    p.sp()?;
    Ok(p.string()?)
}

/// A space, then a script name that passes [`scripts::check_name`].
fn name(p: &mut Parser<'_>) -> Result<String, ParseError> {
    let name = utf8(arg(p)?).map_err(|_| ParseError::NameEncoding)?;
    scripts::check_name(&name)?;
    Ok(name)
}

fn utf8(bytes: Vec<u8>) -> Result<String, ParseError> {
    String::from_utf8(bytes).map_err(|_| ParseError::Syntax(parse::ParseError::NotUtf8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managesieve::response;
    use proptest::prelude::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse(b"Authenticate \"plain\" \"AGEAYg==\""),
            Ok(Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some("AGEAYg==".into())
            })
        );
        assert_eq!(
            parse(b"AUTHENTICATE {5+}\r\nPLAIN"),
            Ok(Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: None
            })
        );
        assert_eq!(
            parse(b"PUTSCRIPT \"main\" {5+}\r\nkeep;"),
            Ok(Command::PutScript {
                name: "main".into(),
                script: b"keep;".to_vec()
            })
        );
        assert_eq!(
            parse(b"putscript \"a b\" {6}\r\nkeep;\n"),
            Ok(Command::PutScript {
                name: "a b".into(),
                script: b"keep;\n".to_vec()
            })
        );
        assert_eq!(
            parse(b"HAVESPACE \"main\" 1048577"),
            Ok(Command::HaveSpace {
                name: "main".into(),
                size: 1048577
            })
        );
        assert_eq!(parse(b"SETACTIVE \"\""), Ok(Command::SetActive(None)));
        assert_eq!(parse(b"SETACTIVE \"x\""), Ok(Command::SetActive(Some("x".into()))));
        assert_eq!(
            parse(b"RENAMESCRIPT \"a\" \"b\""),
            Ok(Command::RenameScript {
                from: "a".into(),
                to: "b".into()
            })
        );
        assert_eq!(parse(b"NOOP \"t\""), Ok(Command::Noop(Some(b"t".to_vec()))));
        assert_eq!(parse(b"noop"), Ok(Command::Noop(None)));
        assert_eq!(parse(b"LOGOUT"), Ok(Command::Logout));
        assert_eq!(parse(b"\"LOGOUT\""), Err(ParseError::Unknown));
        assert_eq!(parse(b"FETCH 1"), Err(ParseError::Unknown));
        assert_eq!(
            parse(b"LOGOUT now"),
            Err(ParseError::Syntax(parse::ParseError::TrailingText))
        );
        assert_eq!(
            parse(b"GETSCRIPT"),
            Err(ParseError::Syntax(parse::ParseError::Expected(' ')))
        );
        assert_eq!(
            parse(b"HAVESPACE \"a\" -1"),
            Err(ParseError::Syntax(parse::ParseError::MissingArgument))
        );
        assert_eq!(
            parse(b"PUTSCRIPT \"x\" {99+}\r\nkeep;"),
            Err(ParseError::Syntax(parse::ParseError::ShortLiteral))
        );
        assert_eq!(
            parse(b"AUTHENTICATE \"PLAIN\" \"\xff\""),
            Err(ParseError::Syntax(parse::ParseError::NotUtf8))
        );
    }

    #[test]
    fn names_that_could_leave_the_folder_are_refused() {
        for (name, why) in [
            ("../../etc/passwd", NameError::Slash),
            ("a/b", NameError::Slash),
            ("", NameError::Empty),
            ("tab\there", NameError::Control),
            ("line\u{2028}separator", NameError::Control),
        ] {
            let mut cmd = b"GETSCRIPT ".to_vec();
            response::string(name.as_bytes(), &mut cmd);
            assert_eq!(parse(&cmd), Err(ParseError::Name(why)), "{name:?}");
        }
        let long = format!("DELETESCRIPT \"{}\"", "é".repeat(65));
        assert_eq!(parse(long.as_bytes()), Err(ParseError::Name(NameError::TooLong)));
        assert_eq!(parse(b"GETSCRIPT \"\xc3\""), Err(ParseError::NameEncoding));
    }

    #[test]
    fn sasl_responses() {
        assert_eq!(sasl_response(b"\"AGEAYg==\""), Ok("AGEAYg==".into()));
        assert_eq!(sasl_response(b"{1+}\r\n*"), Ok("*".into()));
        assert_eq!(sasl_response(b"\"\""), Ok(String::new()));
        assert!(sasl_response(b"AGEAYg==").is_err());
    }

    /// A client's way of sending `s`: as the server quotes it, or as a literal.
    fn client_string(s: &[u8], as_literal: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if as_literal {
            out.extend_from_slice(format!("{{{}+}}\r\n", s.len()).as_bytes());
            out.extend_from_slice(s);
        } else {
            response::string(s, &mut out);
        }
        out
    }

    proptest! {
        #[test]
        fn never_panics(frame in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&frame);
            let _ = sasl_response(&frame);
        }

        #[test]
        fn never_panics_on_commands_with_strings(
            keyword in "(PUTSCRIPT|HAVESPACE|RENAMESCRIPT|AUTHENTICATE|SETACTIVE|NOOP) ",
            rest in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'{'), Just(b'}'), Just(b'+'), Just(b'\\'), Just(b' '), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..64),
        ) {
            let mut frame = keyword.into_bytes();
            frame.extend(rest);
            let _ = parse(&frame);
        }

        #[test]
        fn scripts_and_names_round_trip(
            name in "[^/\\p{Cc}\u{2028}\u{2029}]{1,32}",
            script in proptest::collection::vec(any::<u8>(), 0..2000),
            name_literal in any::<bool>(),
            script_literal in any::<bool>(),
        ) {
            prop_assume!(name.len() <= scripts::MAX_NAME);
            let mut frame = b"PUTSCRIPT ".to_vec();
            frame.extend(client_string(name.as_bytes(), name_literal));
            frame.push(b' ');
            frame.extend(client_string(&script, script_literal));
            prop_assert_eq!(parse(&frame), Ok(Command::PutScript { name, script }));
        }
    }
}
