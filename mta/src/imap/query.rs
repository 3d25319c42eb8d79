//! Running SEARCH keys, SORT criteria and THREAD over a mailbox's messages:
//! the one engine behind IMAP's SEARCH/SORT/THREAD and webmail's search,
//! sorted lists and threads. Blocking (reads message files).

use super::search::{Candidate, Context, SearchKey};
use super::session::fetch::Need;
use super::sort::{self, Criterion};
use super::{subject, thread};
use crate::store::{Flags, Mailbox, MessageMeta, StoreError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether `flags` has the IMAP flag or keyword `name` (case-insensitive).
pub fn has_flag(flags: &Flags, name: &str) -> bool {
    match name.to_ascii_lowercase().as_str() {
        "\\seen" => flags.seen,
        "\\answered" => flags.answered,
        "\\flagged" => flags.flagged,
        "\\deleted" => flags.deleted,
        "\\draft" => flags.draft,
        _ => flags.keywords.iter().any(|k| k.eq_ignore_ascii_case(name)),
    }
}

/// Seconds since the epoch (negative before it).
pub fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// What THREAD needs of a message: its ids, sent date and base subject.
fn thread_item(number: u32, internal_date: i64, message: Option<&mail_parser::Message>) -> thread::Item {
    let ids = |v: &mail_parser::HeaderValue| -> Vec<String> {
        match v {
            mail_parser::HeaderValue::Text(t) => vec![format!("<{t}>")],
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| format!("<{t}>")).collect(),
            _ => Vec::new(),
        }
    };
    let mut references = message.map(|m| ids(m.references())).unwrap_or_default();
    if references.is_empty() {
        references = message.map(|m| ids(m.in_reply_to())).unwrap_or_default();
        references.truncate(1);
    }
    thread::Item {
        number,
        date: message
            .and_then(|m| m.date())
            .map_or(internal_date, |d| d.to_timestamp()),
        subject: subject::base_subject(message.and_then(|m| m.subject()).unwrap_or("")),
        message_id: message.and_then(|m| m.message_id()).map(|id| format!("<{id}>")),
        references,
    }
}

/// The `candidates` (sequence number, metadata, recent) matching `key`, as
/// (number, MODSEQ, what THREAD needs if `threading`): numbered by UID when
/// `by_uid`, else by sequence number; in mailbox order, or sorted by `criteria`.
pub fn run(
    mailbox: &Mailbox,
    candidates: Vec<(u32, MessageMeta, bool)>,
    ctx: &Context,
    key: &SearchKey,
    criteria: &[Criterion],
    threading: bool,
    by_uid: bool,
) -> Result<Vec<(u32, u64, Option<thread::Item>)>, StoreError> {
    let need = if key.needs_body() {
        Need::Whole
    } else if threading || key.needs_message() || criteria.iter().any(|c| c.key.needs_message()) {
        Need::Header
    } else {
        Need::Nothing
    };
    let mut found = Vec::new();
    for (seq, meta, recent) in candidates {
        let raw = match need.load(mailbox, meta.uid) {
            Ok(raw) => raw,
            Err(StoreError::NoSuchMessage(_)) => continue,
            Err(e) => return Err(e),
        };
        let parsed = raw
            .as_deref()
            .and_then(|r| mail_parser::MessageParser::default().parse(r));
        let flags = |f: &str| has_flag(&meta.flags, f);
        let internal_date = epoch_secs(meta.internal_date);
        let c = Candidate {
            seq,
            uid: meta.uid,
            has_flag: &flags,
            recent,
            modseq: meta.modseq,
            size: meta.size,
            internal_date,
            message: parsed.as_ref(),
        };
        if key.matches(&c, ctx) {
            let values: Vec<sort::Value> = criteria
                .iter()
                .map(|k| sort::value(k.key, internal_date, meta.size, parsed.as_ref()))
                .collect();
            let number = if by_uid { meta.uid } else { seq };
            let item = threading.then(|| thread_item(number, internal_date, parsed.as_ref()));
            found.push((number, meta.modseq, values, item));
        }
    }
    // Stable: equal values keep sequence order, as RFC 5256 asks.
    found.sort_by(|a, b| sort::compare(criteria, &a.2, &b.2));
    Ok(found.into_iter().map(|(n, m, _, t)| (n, m, t)).collect())
}
