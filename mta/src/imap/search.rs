//! SEARCH: the search-key grammar (nesting capped at
//! [`MAX_SEARCH_DEPTH`], so a hostile client cannot recurse deeply) and its
//! evaluation over one message: metadata always, the parsed message
//! (mail-parser) only for keys that look at headers or bodies.

use super::parse::{ParseError, Parser, Result, Unknown};
use super::sequence::SequenceSet;
use mail_parser::{Address, HeaderValue, Message, PartType};

/// Deepest SEARCH nesting (parentheses, NOT, OR) accepted.
pub const MAX_SEARCH_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    /// A message sequence set.
    Sequence(SequenceSet),
    Uid(SequenceSet),
    /// `$` (or `UID $`): the saved search result (RFC 5182), replaced by
    /// [`SearchKey::with_saved`] before evaluation.
    Saved,
    /// `\Seen`, `\Deleted`, ... or a keyword: has it (or not, with `Not`).
    Flag(String),
    New,
    Old,
    Recent,
    /// INTERNALDATE in days since the epoch.
    Before(i64),
    On(i64),
    Since(i64),
    /// Date: header in days since the epoch.
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    /// Header field (lowercase) containing a string (empty: field present).
    Header(String, String),
    Body(String),
    Text(String),
    ModSeq(u64),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
}

fn text(p: &mut Parser) -> Result<String> {
    p.sp()?;
    String::from_utf8(p.astring()?).map_err(|_| ParseError::SearchNotUtf8)
}

fn flag_key(name: &str) -> Option<SearchKey> {
    let flag = match name {
        "ANSWERED" => "\\Answered",
        "DELETED" => "\\Deleted",
        "DRAFT" => "\\Draft",
        "FLAGGED" => "\\Flagged",
        "SEEN" => "\\Seen",
        _ => return None,
    };
    Some(SearchKey::Flag(flag.into()))
}

fn key(p: &mut Parser, depth: usize) -> Result<SearchKey> {
    use SearchKey::*;
    if depth > MAX_SEARCH_DEPTH {
        return Err(ParseError::SearchTooDeep);
    }
    if p.at_end() {
        return Err(ParseError::MissingSearchKey);
    }
    if p.peek() == Some(b'(') {
        p.expect(b'(')?;
        let mut keys = vec![key(p, depth + 1)?];
        while p.eat(b' ') {
            keys.push(key(p, depth + 1)?);
        }
        p.expect(b')')?;
        return Ok(if keys.len() == 1 { keys.remove(0) } else { And(keys) });
    }
    if p.eat(b'$') {
        return Ok(Saved);
    }
    if p.peek().is_some_and(|b| b.is_ascii_digit() || b == b'*') {
        return Ok(Sequence(p.sequence_set()?));
    }
    let name = p.atom()?.to_ascii_uppercase();
    let date = |p: &mut Parser| -> Result<i64> {
        p.sp()?;
        p.date()
    };
    let number = |p: &mut Parser| -> Result<u64> {
        p.sp()?;
        p.number64()
    };
    if let Some(k) = flag_key(&name) {
        return Ok(k);
    }
    if let Some(k) = name.strip_prefix("UN").and_then(flag_key) {
        return Ok(Not(Box::new(k)));
    }
    Ok(match name.as_str() {
        "ALL" => All,
        "NEW" => New,
        "OLD" => Old,
        "RECENT" => Recent,
        "KEYWORD" => {
            p.sp()?;
            Flag(p.atom()?.to_string())
        }
        "UNKEYWORD" => {
            p.sp()?;
            Not(Box::new(Flag(p.atom()?.to_string())))
        }
        "BEFORE" => Before(date(p)?),
        "ON" => On(date(p)?),
        "SINCE" => Since(date(p)?),
        "SENTBEFORE" => SentBefore(date(p)?),
        "SENTON" => SentOn(date(p)?),
        "SENTSINCE" => SentSince(date(p)?),
        "LARGER" => Larger(number(p)?),
        "SMALLER" => Smaller(number(p)?),
        "MODSEQ" => {
            p.sp()?;
            // `MODSEQ "/flags/\\seen" all 5`: one MODSEQ per message here, so the entry is only parsed.
            if p.peek() == Some(b'"') {
                p.string()?;
                p.sp()?;
                let kind = p.atom()?.to_ascii_lowercase();
                if !matches!(kind.as_str(), "priv" | "shared" | "all") {
                    return Err(ParseError::ModSeqEntryType(kind));
                }
                p.sp()?;
            }
            ModSeq(p.number64()?)
        }
        "UID" => {
            p.sp()?;
            if p.eat(b'$') { Saved } else { Uid(p.sequence_set()?) }
        }
        "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => Header(name.to_ascii_lowercase(), text(p)?),
        "HEADER" => {
            let field = text(p)?.to_ascii_lowercase();
            Header(field, text(p)?)
        }
        "BODY" => Body(text(p)?),
        "TEXT" => Text(text(p)?),
        "NOT" => {
            p.sp()?;
            Not(Box::new(key(p, depth + 1)?))
        }
        "OR" => {
            p.sp()?;
            let a = key(p, depth + 1)?;
            p.sp()?;
            Or(Box::new(a), Box::new(key(p, depth + 1)?))
        }
        other => return Err(ParseError::Unknown(Unknown::SearchKey, other.to_string())),
    })
}

/// The search keys up to the end of the command (several mean AND).
pub fn parse_keys(p: &mut Parser) -> Result<SearchKey> {
    let mut keys = vec![key(p, 0)?];
    while p.eat(b' ') {
        keys.push(key(p, 0)?);
    }
    p.end()?;
    Ok(if keys.len() == 1 {
        keys.remove(0)
    } else {
        SearchKey::And(keys)
    })
}

impl SearchKey {
    /// Whether evaluating needs the message itself.
    pub fn needs_message(&self) -> bool {
        match self {
            SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_)
            | SearchKey::Header(..)
            | SearchKey::Body(_)
            | SearchKey::Text(_) => true,
            SearchKey::Not(k) => k.needs_message(),
            SearchKey::Or(a, b) => a.needs_message() || b.needs_message(),
            SearchKey::And(keys) => keys.iter().any(SearchKey::needs_message),
            _ => false,
        }
    }

    /// The key with every `$` replaced by the saved result, given as UIDs.
    pub fn with_saved(self, saved: &[u32]) -> SearchKey {
        use SearchKey::*;
        match self {
            Saved => Uid(SequenceSet::from_numbers(saved)),
            Not(k) => Not(Box::new(k.with_saved(saved))),
            Or(a, b) => Or(Box::new(a.with_saved(saved)), Box::new(b.with_saved(saved))),
            And(keys) => And(keys.into_iter().map(|k| k.with_saved(saved)).collect()),
            other => other,
        }
    }

    /// Whether evaluating needs the body too, not just the header.
    pub fn needs_body(&self) -> bool {
        match self {
            SearchKey::Body(_) | SearchKey::Text(_) => true,
            SearchKey::Not(k) => k.needs_body(),
            SearchKey::Or(a, b) => a.needs_body() || b.needs_body(),
            SearchKey::And(keys) => keys.iter().any(SearchKey::needs_body),
            _ => false,
        }
    }

    /// Whether the key mentions MODSEQ (CONDSTORE then adds `(MODSEQ n)` to the result).
    pub fn uses_modseq(&self) -> bool {
        match self {
            SearchKey::ModSeq(_) => true,
            SearchKey::Not(k) => k.uses_modseq(),
            SearchKey::Or(a, b) => a.uses_modseq() || b.uses_modseq(),
            SearchKey::And(keys) => keys.iter().any(SearchKey::uses_modseq),
            _ => false,
        }
    }
}

/// One message as SEARCH sees it.
pub struct Candidate<'a> {
    pub seq: u32,
    pub uid: u32,
    pub has_flag: &'a dyn Fn(&str) -> bool,
    pub recent: bool,
    pub modseq: u64,
    pub size: u64,
    /// INTERNALDATE, seconds since the epoch.
    pub internal_date: i64,
    /// The parsed message, when [`SearchKey::needs_message`] said so.
    pub message: Option<&'a Message<'a>>,
}

/// The mailbox state sequence sets resolve against.
pub struct Context {
    pub max_seq: u32,
    pub max_uid: u32,
}

fn contains(haystack: &str, needle: &str) -> bool {
    needle.is_empty() || haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn address_text(a: &Address) -> String {
    let mut out = String::new();
    // Group names are searched too, as they are part of the header.
    if let Address::Group(groups) = a {
        for name in groups.iter().filter_map(|g| g.name.as_deref()) {
            out.push_str(name);
            out.push_str(": ");
        }
    }
    for addr in a.iter() {
        if let Some(n) = &addr.name {
            out.push_str(n);
            out.push(' ');
        }
        if let Some(e) = &addr.address {
            out.push('<');
            out.push_str(e);
            out.push_str("> ");
        }
    }
    out
}

/// The decoded value of every `field` header of the message, as text.
fn header_texts(message: &Message, field: &str) -> Vec<String> {
    let raw = message.raw_message();
    message
        .root_part()
        .headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(field))
        .map(|h| match &h.value {
            HeaderValue::Text(t) => t.to_string(),
            HeaderValue::TextList(l) => l.join(" "),
            HeaderValue::Address(a) => address_text(a),
            _ => String::from_utf8_lossy(raw.get(h.offset_start as usize..h.offset_end as usize).unwrap_or(&[]))
                .into_owned(),
        })
        .collect()
}

/// Encapsulated messages searched into; deeper ones are skipped so a hostile
/// message cannot recurse the stack away.
const MAX_DEPTH: usize = 8;

fn body_matches(message: &Message, needle: &str, depth: usize) -> bool {
    message.parts.iter().any(|part| match &part.body {
        PartType::Text(t) | PartType::Html(t) => contains(t, needle),
        PartType::Message(m) if depth < MAX_DEPTH => body_matches(m, needle, depth + 1),
        _ => false,
    })
}

/// The day of the Date header as written: SENTBEFORE, SENTON and SENTSINCE
/// disregard its time and timezone (RFC 3501 §6.4.4).
fn sent_day(message: &Message) -> Option<i64> {
    message
        .date()
        .map(|d| super::date::days_from_civil(i64::from(d.year), u32::from(d.month), u32::from(d.day)))
}

impl SearchKey {
    pub fn matches(&self, c: &Candidate, ctx: &Context) -> bool {
        use SearchKey::*;
        let day = c.internal_date.div_euclid(86400);
        let msg = c.message;
        match self {
            All => true,
            Sequence(set) => set.resolve(ctx.max_seq).contains(c.seq),
            Uid(set) => set.resolve(ctx.max_uid).contains(c.uid),
            // Only reached if the caller skipped `with_saved`: no saved result matches nothing.
            Saved => false,
            Flag(f) => (c.has_flag)(f),
            New => c.recent && !(c.has_flag)("\\Seen"),
            Old => !c.recent,
            Recent => c.recent,
            Before(d) => day < *d,
            On(d) => day == *d,
            Since(d) => day >= *d,
            SentBefore(d) => msg.and_then(sent_day).is_some_and(|s| s < *d),
            SentOn(d) => msg.and_then(sent_day).is_some_and(|s| s == *d),
            SentSince(d) => msg.and_then(sent_day).is_some_and(|s| s >= *d),
            Larger(n) => c.size > *n,
            Smaller(n) => c.size < *n,
            Header(field, needle) => msg.is_some_and(|m| header_texts(m, field).iter().any(|t| contains(t, needle))),
            Body(needle) => msg.is_some_and(|m| body_matches(m, needle, 0)),
            Text(needle) => msg.is_some_and(|m| {
                let headers = &m.raw_message()[..m.root_part().offset_body as usize];
                contains(&String::from_utf8_lossy(headers), needle) || body_matches(m, needle, 0)
            }),
            ModSeq(n) => c.modseq >= *n,
            Not(k) => !k.matches(c, ctx),
            Or(a, b) => a.matches(c, ctx) || b.matches(c, ctx),
            And(keys) => keys.iter().all(|k| k.matches(c, ctx)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::{Command, parse};
    use proptest::prelude::*;

    fn key(s: &str) -> SearchKey {
        match parse(format!("t SEARCH {s}").as_bytes()).unwrap().command {
            Command::Search { key, .. } => key,
            other => panic!("{other:?}"),
        }
    }

    const MAIL: &[u8] = b"From: Alice Example <alice@example.test>\r\nTo: bob@example.test\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from Alice\r\nDate: Tue, 3 Mar 2026 10:00:00 +0000\r\n\
X-Tag: blue\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
The quick brown f=C3=B6x\r\n";

    fn check(expr: &str, flags: &[&str]) -> bool {
        check_mail(MAIL, expr, flags)
    }

    fn check_mail(mail: &[u8], expr: &str, flags: &[&str]) -> bool {
        let message = mail_parser::MessageParser::default().parse(mail).unwrap();
        let has_flag = |f: &str| flags.iter().any(|g| g.eq_ignore_ascii_case(f));
        let k = key(expr);
        let c = Candidate {
            seq: 3,
            uid: 10,
            has_flag: &has_flag,
            recent: false,
            modseq: 5,
            size: mail.len() as u64,
            internal_date: 1_772_532_000,
            message: k.needs_message().then_some(&message),
        };
        k.matches(
            &c,
            &Context {
                max_seq: 4,
                max_uid: 12,
            },
        )
    }

    #[test]
    fn evaluation() {
        for (expr, want) in [
            ("ALL", true),
            ("3", true),
            ("4:*", false),
            ("UID 10", true),
            ("UID *", false),
            ("SEEN", true),
            ("UNSEEN", false),
            ("KEYWORD $Work", true),
            ("UNKEYWORD $Work", false),
            ("DELETED", false),
            ("FROM alice", true),
            ("FROM \"alice@example.test\"", true),
            ("TO alice", false),
            ("SUBJECT \"grüße\"", true),
            ("HEADER X-Tag BLUE", true),
            ("HEADER X-Other \"\"", false),
            ("BODY \"brown föx\"", true),
            ("BODY alice", false),
            ("TEXT alice", true),
            ("SENTON 3-Mar-2026", true),
            ("SENTBEFORE 3-Mar-2026", false),
            ("SINCE 3-Mar-2026", true),
            ("BEFORE \"3-Mar-2026\"", false),
            ("LARGER 10", true),
            ("SMALLER 10", false),
            ("MODSEQ 5", true),
            ("MODSEQ 6", false),
            ("MODSEQ \"/flags/\\\\seen\" all 5", true),
            ("MODSEQ \"/flags/\\\\seen\" priv 6", false),
            ("OR DELETED FROM bob", false),
            ("OR DELETED (FROM alice SEEN)", true),
            ("NOT NOT SEEN", true),
            ("OLD", true),
            ("NEW", false),
        ] {
            assert_eq!(check(expr, &["\\Seen", "$work"]), want, "{expr}");
        }
    }

    /// Group names are searched as part of the header; SENT* take the
    /// Date header's day as written, whatever its time and timezone.
    #[test]
    fn group_names_and_sent_dates() {
        let groups: &[u8] = b"To: friends: amy@x, bob@y;\r\nCc: empty:;\r\n\r\nx\r\n";
        // 4 Mar 04:30 UTC, but sent on 3 Mar as written.
        let late: &[u8] = b"Date: Tue, 3 Mar 2026 23:30:00 -0500\r\nSubject: late\r\n\r\nx\r\n";
        for (mail, expr, want) in [
            (groups, "TO friends", true),
            (groups, "TO bob@y", true),
            (groups, "CC empty", true),
            (groups, "CC friends", false),
            (late, "SENTON 3-Mar-2026", true),
            (late, "SENTON 4-Mar-2026", false),
            (late, "SENTBEFORE 4-Mar-2026", true),
            (late, "SENTSINCE 4-Mar-2026", false),
            (late, "SENTSINCE 3-Mar-2026", true),
        ] {
            assert_eq!(check_mail(mail, expr, &[]), want, "{expr}");
        }
    }

    #[test]
    fn nesting_is_capped() {
        let deep = format!("t SEARCH {}ALL", "NOT ".repeat(MAX_SEARCH_DEPTH + 1));
        assert!(parse(deep.as_bytes()).is_err());
        let parens = format!("t SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(parens.as_bytes()).is_err());
        let ok = format!("t SEARCH {}ALL", "NOT ".repeat(MAX_SEARCH_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "[ ()A-Z0-9*:,\"-]{0,80}") {
            let _ = parse(format!("t SEARCH {s}").as_bytes());
        }
    }
}
