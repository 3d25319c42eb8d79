//! SMTP command lines as the tarpit understands them.

/// A client command. Arguments are kept as text (lossy UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// HELO or EHLO with the first word of its argument (may be empty).
    Helo(String),
    /// MAIL FROM: with the text after the colon.
    Mail(String),
    /// RCPT TO: with the text after the colon.
    Rcpt(String),
    Data,
    Rset,
    Noop,
    Quit,
    Unknown,
}

fn verb_is(line: &[u8], verb: &[u8]) -> bool {
    line.len() >= verb.len()
        && line[..verb.len()].eq_ignore_ascii_case(verb)
        && matches!(line.get(verb.len()), None | Some(b' ' | b'\t' | b':'))
}

/// The argument after `FROM:`/`TO:` (spaces around it allowed, as clients vary).
fn path_arg(rest: &[u8], keyword: &[u8]) -> Option<String> {
    let rest = rest.trim_ascii_start();
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?;
    Some(String::from_utf8_lossy(rest.trim_ascii()).into_owned())
}

impl Command {
    pub fn parse(line: &[u8]) -> Command {
        let line = line.trim_ascii();
        if verb_is(line, b"HELO") || verb_is(line, b"EHLO") {
            let arg = line[4..].trim_ascii();
            let word = arg.split(|b| b.is_ascii_whitespace()).next().unwrap_or(b"");
            return Command::Helo(String::from_utf8_lossy(word).into_owned());
        }
        if verb_is(line, b"MAIL") {
            return path_arg(&line[4..], b"FROM").map_or(Command::Unknown, Command::Mail);
        }
        if verb_is(line, b"RCPT") {
            return path_arg(&line[4..], b"TO").map_or(Command::Unknown, Command::Rcpt);
        }
        for (verb, cmd) in [
            (&b"DATA"[..], Command::Data),
            (b"RSET", Command::Rset),
            (b"NOOP", Command::Noop),
            (b"QUIT", Command::Quit),
        ] {
            if verb_is(line, verb) {
                return cmd;
            }
        }
        Command::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands() {
        assert_eq!(
            Command::parse(b"ehlo mx.example.org extra"),
            Command::Helo("mx.example.org".into())
        );
        assert_eq!(Command::parse(b"HELO"), Command::Helo(String::new()));
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@b.c> SIZE=10"),
            Command::Mail("<a@b.c> SIZE=10".into())
        );
        assert_eq!(Command::parse(b"mail from : <a@b.c>"), Command::Mail("<a@b.c>".into()));
        assert_eq!(Command::parse(b"RCPT TO:<x@y.z>"), Command::Rcpt("<x@y.z>".into()));
        assert_eq!(Command::parse(b"RCPT FROM:<x@y.z>"), Command::Unknown);
        assert_eq!(Command::parse(b"data"), Command::Data);
        assert_eq!(Command::parse(b"DATAX"), Command::Unknown);
        assert_eq!(Command::parse(b"quit"), Command::Quit);
        assert_eq!(Command::parse(b""), Command::Unknown);
    }

    proptest! {
        #[test]
        fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Command::parse(&line);
        }
    }
}
