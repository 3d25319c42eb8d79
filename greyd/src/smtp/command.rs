//! SMTP command lines as the tarpit understands them.

/// A client command. Arguments are kept as text (lossy UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// HELO or EHLO with the first word of its argument (may be empty).
    Helo(String),
    /// MAIL FROM: with its path as spamd keeps it (see [`path_arg`]).
    Mail(String),
    /// RCPT TO: with its path as spamd keeps it (see [`path_arg`]).
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

/// The path after `FROM:`/`TO:` exactly as spamd's `setlog` keeps it, so
/// tuples match those of spamd peers byte for byte: blanks after the colon
/// skipped, then the first word (up to a blank, CR or LF), angle brackets and
/// case as sent; parameters such as `SIZE=` dropped.
fn path_arg(rest: &[u8], keyword: &[u8]) -> Option<String> {
    let rest = rest.trim_ascii_start();
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?;
    let start = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(rest.len());
    let word = rest[start..]
        .split(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .next()
        .unwrap_or(b"");
    Some(String::from_utf8_lossy(word).into_owned())
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
            Command::parse(b"MAIL FROM:<A@b.c> SIZE=10"),
            Command::Mail("<A@b.c>".into()),
            "the path as sent, without parameters"
        );
        assert_eq!(Command::parse(b"mail from : <a@b.c>"), Command::Mail("<a@b.c>".into()));
        assert_eq!(Command::parse(b"MAIL FROM:\t <a@b.c>"), Command::Mail("<a@b.c>".into()));
        assert_eq!(Command::parse(b"MAIL FROM:a@b.c"), Command::Mail("a@b.c".into()));
        assert_eq!(Command::parse(b"MAIL FROM:<>"), Command::Mail("<>".into()));
        assert_eq!(Command::parse(b"MAIL FROM:"), Command::Mail(String::new()));
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

        /// The stored path is one word of what was sent, kept byte for byte.
        #[test]
        fn path_is_the_first_word_as_sent(blanks in "[ \t]{0,3}", path in "[!-~]{1,60}", rest in "( [ -~]{0,20})?") {
            let line = format!("RCPT TO:{blanks}{path}{rest}");
            prop_assert_eq!(Command::parse(line.as_bytes()), Command::Rcpt(path));
        }
    }
}
