//! SORT (RFC 5256): sort criteria and the value each criterion compares
//! (SUBJECT compares the base subject of `subject`).

use super::subject::base_subject;
use mail_parser::{Address, Message};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Criterion {
    pub reverse: bool,
    pub key: SortKey,
}

impl SortKey {
    pub fn parse(name: &str) -> Option<SortKey> {
        Some(match name {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            _ => return None,
        })
    }

    /// Whether the value comes from the message rather than its metadata.
    pub fn needs_message(self) -> bool {
        !matches!(self, SortKey::Arrival | SortKey::Size)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Number(i64),
    Text(String),
}

/// The mailbox part of the first address, as ENVELOPE gives it: a group's
/// name when the header starts with a group.
fn first_mailbox(a: Option<&Address>) -> String {
    if let Some(Address::Group(groups)) = a
        && let Some(name) = groups.first().and_then(|g| g.name.as_deref())
    {
        return name.to_ascii_uppercase();
    }
    a.and_then(|a| a.first())
        .and_then(|a| a.address.as_deref())
        .map(|e| e.split('@').next().unwrap_or("").to_ascii_uppercase())
        .unwrap_or_default()
}

/// The value `key` sorts a message by. Text is folded to upper case, as the
/// i;ascii-casemap collation does, so `[` and `_` sort after letters.
pub fn value(key: SortKey, internal_date: i64, size: u64, message: Option<&Message>) -> Value {
    match key {
        SortKey::Arrival => Value::Number(internal_date),
        SortKey::Size => Value::Number(size as i64),
        SortKey::Date => Value::Number(
            message
                .and_then(|m| m.date())
                .map_or(internal_date, |d| d.to_timestamp()),
        ),
        SortKey::Subject => Value::Text(
            base_subject(message.and_then(|m| m.subject()).unwrap_or(""))
                .text
                .to_ascii_uppercase(),
        ),
        SortKey::From => Value::Text(first_mailbox(message.and_then(|m| m.from()))),
        SortKey::To => Value::Text(first_mailbox(message.and_then(|m| m.to()))),
        SortKey::Cc => Value::Text(first_mailbox(message.and_then(|m| m.cc()))),
    }
}

/// Compare two messages' values under the criteria; ties go to sequence order.
pub fn compare(criteria: &[Criterion], a: &[Value], b: &[Value]) -> Ordering {
    for (i, c) in criteria.iter().enumerate() {
        let o = a[i].cmp(&b[i]);
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_order() {
        let m = mail_parser::MessageParser::default()
            .parse(b"From: Zed <zed@x>\r\nTo: amy@x\r\nSubject: Re: b\r\nDate: Thu, 1 Jan 1970 00:01:40 +0000\r\n\r\n")
            .unwrap();
        assert_eq!(value(SortKey::From, 0, 0, Some(&m)), Value::Text("ZED".into()));
        assert_eq!(value(SortKey::To, 0, 0, Some(&m)), Value::Text("AMY".into()));
        assert_eq!(value(SortKey::Cc, 0, 0, Some(&m)), Value::Text("".into()));
        assert_eq!(value(SortKey::Date, 5, 0, Some(&m)), Value::Number(100));
        assert_eq!(value(SortKey::Subject, 0, 0, Some(&m)), Value::Text("B".into()));
        let subject = |s: &str| {
            let raw = format!("Subject: {s}\r\n\r\n");
            let m = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
            value(SortKey::Subject, 0, 0, Some(&m))
        };
        assert!(
            subject("zeta") < subject("_under"),
            "i;ascii-casemap folds to upper case"
        );
        let to = |header: &str| {
            let raw = format!("To: {header}\r\n\r\n");
            let m = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
            value(SortKey::To, 0, 0, Some(&m))
        };
        assert_eq!(to("friends: amy@x, bob@y;"), Value::Text("FRIENDS".into()));
        assert_eq!(to("empty:;"), Value::Text("EMPTY".into()));
        assert!(subject("Zeta") < subject("[x"));
        let rev = [Criterion {
            reverse: true,
            key: SortKey::Size,
        }];
        assert_eq!(
            compare(&rev, &[Value::Number(1)], &[Value::Number(2)]),
            Ordering::Greater
        );
    }
}
