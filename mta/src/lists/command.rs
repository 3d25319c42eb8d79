//! Commands mailed to NAME-request (Mailman's syntax): one a line in the
//! subject and the body, `subscribe [ADDR]`, `unsubscribe [ADDR]`, `help`,
//! `who`, `confirm TOKEN`, `approve TOKEN`, `discard TOKEN`, `set digest
//! on|off`; reading stops
//! at `end`, a signature line (`-- `), or too many lines that are no
//! command, so quoted text is not executed. Pure: mail bodies are network input.

/// Lines that are no command before the rest is ignored (Mailman's default).
const MAX_UNKNOWN: usize = 5;
/// Commands taken from one message.
const MAX_COMMANDS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Subscribe the sender, or the address given.
    Subscribe(Option<String>),
    Unsubscribe(Option<String>),
    Help,
    /// The member list (for owners).
    Who,
    Confirm(String),
    /// An owner releases a held post.
    Approve(String),
    /// An owner throws a held post away.
    Discard(String),
    /// A member takes the digest (true) or single posts.
    SetDigest(bool),
}

/// The commands of a message to -request: the subject's first (after any
/// `Re:`), then the body's lines.
pub fn parse(subject: &str, body: &str) -> Vec<Command> {
    let mut out = Vec::new();
    if let Some(c) = parse_line(strip_reply_prefixes(subject)) {
        out.push(c);
    }
    let mut unknown = 0;
    for line in body.lines() {
        let line = line.trim();
        if line == "--" || line.eq_ignore_ascii_case("end") || line.eq_ignore_ascii_case("stop") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(c) => {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            None => unknown += 1,
        }
        if unknown >= MAX_UNKNOWN || out.len() >= MAX_COMMANDS {
            break;
        }
    }
    out
}

/// `Re: Re:Fwd: x` → `x`.
fn strip_reply_prefixes(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        let lower = t.get(..4).map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some("re: ") | Some("aw: ") => s = &t[4..],
            Some(p) if p.starts_with("re:") => s = &t[3..],
            _ => return t.trim_end(),
        }
    }
}

fn parse_line(line: &str) -> Option<Command> {
    let words: Vec<String> = line.split_whitespace().map(str::to_ascii_lowercase).collect();
    if let [set, digest, value] = words.as_slice()
        && set == "set"
        && digest == "digest"
    {
        return match value.as_str() {
            "on" => Some(Command::SetDigest(true)),
            "off" => Some(Command::SetDigest(false)),
            _ => None,
        };
    }
    let mut words = line.split_whitespace();
    let verb = words.next()?.to_ascii_lowercase();
    let arg = words.next().map(str::to_string);
    if words.next().is_some() {
        return None;
    }
    let address = |a: Option<String>| match a {
        None => Some(None),
        Some(a) => {
            let a = a.trim_start_matches('<').trim_end_matches('>');
            crate::envelope::Address::parse(a, false)
                .ok()
                .map(|m| Some(format!("{}@{}", m.local, m.domain)))
        }
    };
    let token =
        |a: Option<String>| a.filter(|t| (8..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit()));
    match verb.as_str() {
        "subscribe" | "join" => address(arg).map(Command::Subscribe),
        "unsubscribe" | "leave" => address(arg).map(Command::Unsubscribe),
        "help" if arg.is_none() => Some(Command::Help),
        "who" if arg.is_none() => Some(Command::Who),
        "confirm" => token(arg).map(|t| Command::Confirm(t.to_ascii_lowercase())),
        "approve" => token(arg).map(|t| Command::Approve(t.to_ascii_lowercase())),
        "discard" => token(arg).map(|t| Command::Discard(t.to_ascii_lowercase())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subject_and_body_commands() {
        assert_eq!(
            parse("Re: confirm 0123456789abcdef", ""),
            vec![Command::Confirm("0123456789abcdef".into())]
        );
        assert_eq!(
            parse("", "subscribe\nhelp\n\nwho\nunsubscribe <bob@example.org>\n"),
            vec![
                Command::Subscribe(None),
                Command::Help,
                Command::Who,
                Command::Unsubscribe(Some("bob@example.org".into()))
            ]
        );
        assert_eq!(
            parse("Re: set digest on", "SET Digest off\nset digest maybe\n"),
            vec![Command::SetDigest(true), Command::SetDigest(false)]
        );
        assert_eq!(
            parse("approve ABCDEF0123", "discard 0011223344\n"),
            vec![
                Command::Approve("abcdef0123".into()),
                Command::Discard("0011223344".into())
            ]
        );
    }

    #[test]
    fn reading_stops_at_end_signature_and_prose() {
        assert_eq!(parse("", "help\nend\nsubscribe\n"), vec![Command::Help]);
        assert_eq!(parse("", "help\n--\nunsubscribe\n"), vec![Command::Help]);
        let prose = "hi\nthere\nplease\nadd\nme\nsubscribe\n";
        assert_eq!(parse("", prose), vec![]);
        assert_eq!(parse("subscribe me please", "confirm xyz\n"), vec![]);
        assert_eq!(parse("", "subscribe not-an-address\n"), vec![]);
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_is_bounded(subject in "\\PC{0,100}", body in "(\\PC{0,40}\n){0,60}") {
            let cmds = parse(&subject, &body);
            prop_assert!(cmds.len() <= MAX_COMMANDS + 1);
        }

        #[test]
        fn subscribe_with_any_address_reads_back(user in "[a-z0-9._-]{1,20}", domain in "[a-z0-9]{1,20}\\.[a-z]{2,6}") {
            let addr = format!("{user}@{domain}");
            prop_assume!(!user.starts_with('.') && !user.ends_with('.') && !user.contains(".."));
            prop_assert_eq!(parse("", &format!("subscribe {addr}\n")), vec![Command::Subscribe(Some(addr))]);
        }
    }
}
