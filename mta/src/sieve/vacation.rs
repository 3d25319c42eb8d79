//! RFC 5230 vacation under RFC 3834's rules: whether a message may get an
//! auto-reply (never to `<>`, mail daemons, lists, automatic or bulk mail,
//! or mail that does not name the user in To:/Cc:/Bcc:), the key that
//! remembers a reply for `:days`, and the reply itself. Pure: the caller
//! keeps the memory and queues the reply from `<>`.

use super::ast::Vacation;
use super::message::{Headers, addresses, one_line};

/// Why a message gets no auto-reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("the envelope sender is <>")]
    NullSender,
    #[error("the sender is a mail daemon or list robot")]
    Robot,
    #[error("the sender is the user")]
    OwnAddress,
    #[error("the message is automatic (Auto-Submitted)")]
    AutoSubmitted,
    #[error("the message is bulk mail (Precedence)")]
    Bulk,
    #[error("the message comes from a list (List-* headers)")]
    List,
    #[error("the user is not in To:, Cc: or Bcc:")]
    NotAddressed,
}

/// Local parts that are robots, not people (RFC 5230 section 4.6).
const ROBOTS: &[&str] = &["mailer-daemon", "listserv", "majordomo", "mailman", "postmaster"];

const ADDRESSED: &[&str] = &["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"];

/// The sender to reply to, or why there is none. `recipient` is the
/// envelope recipient; with its `+detail` dropped and `:addresses`, it
/// makes the user's addresses.
pub fn check<'a>(v: &Vacation, headers: &Headers, sender: Option<&'a str>, recipient: &str) -> Result<&'a str, Skip> {
    let sender = sender.filter(|s| !s.is_empty()).ok_or(Skip::NullSender)?;
    let local = sender.rsplit_once('@').map_or(sender, |(l, _)| l).to_ascii_lowercase();
    if ROBOTS.contains(&local.as_str()) || local.starts_with("owner-") || local.ends_with("-request") {
        return Err(Skip::Robot);
    }
    let mine = user_addresses(v, recipient);
    if mine.contains(&sender.to_ascii_lowercase()) {
        return Err(Skip::OwnAddress);
    }
    if headers
        .get("auto-submitted")
        .iter()
        .any(|a| !a.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("no"))
    {
        return Err(Skip::AutoSubmitted);
    }
    if headers
        .get("precedence")
        .iter()
        .any(|p| ["bulk", "list", "junk"].contains(&p.trim().to_ascii_lowercase().as_str()))
    {
        return Err(Skip::Bulk);
    }
    let list_headers = [
        "list-id",
        "list-help",
        "list-unsubscribe",
        "list-subscribe",
        "list-post",
        "list-owner",
        "list-archive",
    ];
    if list_headers.iter().any(|h| !headers.get(h).is_empty()) {
        return Err(Skip::List);
    }
    let addressed = ADDRESSED
        .iter()
        .flat_map(|h| headers.get(h))
        .flat_map(|v| addresses(&v))
        .any(|a| mine.contains(&a.to_ascii_lowercase()));
    if !addressed {
        return Err(Skip::NotAddressed);
    }
    Ok(sender)
}

/// The recipient, the recipient without `+detail`, and `:addresses`, lower case.
fn user_addresses(v: &Vacation, recipient: &str) -> Vec<String> {
    let mut out = vec![recipient.to_ascii_lowercase()];
    if let Some((local, domain)) = recipient.rsplit_once('@')
        && let Some((user, _)) = local.split_once('+')
    {
        out.push(format!("{user}@{domain}").to_ascii_lowercase());
    }
    out.extend(v.addresses.iter().map(|a| a.to_ascii_lowercase()));
    out
}

/// What remembers a reply to `sender` for this vacation: the sender and
/// `:handle`, or without a handle the reply's own arguments (RFC 5230
/// section 4.2), hashed so it can name a file.
pub fn memory_key(v: &Vacation, sender: &str) -> String {
    let sender = sender.to_ascii_lowercase();
    match &v.handle {
        Some(handle) => super::state_key(&["vacation", &sender, "handle", handle]),
        None => super::state_key(&[
            "vacation",
            &sender,
            "auto",
            v.subject.as_deref().unwrap_or(""),
            v.from.as_deref().unwrap_or(""),
            if v.mime { "mime" } else { "text" },
            &v.reason,
        ]),
    }
}

/// Seconds a reply is remembered.
pub fn period(v: &Vacation) -> u64 {
    v.days.max(1).saturating_mul(24 * 3600)
}

/// The reply to the message with `headers`, sent to `to` as `recipient`
/// (or `:from`): `Auto-Submitted: auto-replied`, threaded with
/// `In-Reply-To:`/`References:`, CRLF lines.
pub fn reply(v: &Vacation, headers: &Headers, to: &str, recipient: &str, now: u64, hostname: &str) -> Vec<u8> {
    let from = v.from.as_deref().unwrap_or(recipient);
    let subject = match &v.subject {
        Some(s) => s.clone(),
        None => {
            let original = headers.get("subject").into_iter().next().unwrap_or_default();
            format!("Auto: {}", super::message::decode_words(&original))
        }
    };
    let mut m = format!(
        "From: {}\r\nTo: <{}>\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}.{now}.vacation@{hostname}>\r\nAuto-Submitted: auto-replied (vacation)\r\n",
        one_line(from),
        one_line(to),
        crate::web::mime::encode_word(&one_line(&subject)),
        crate::datetime::rfc5322(now),
        &memory_key(v, to)[..16],
    );
    if let Some(id) = headers.get("message-id").into_iter().next() {
        let id = one_line(&id);
        let references = headers.get("references").into_iter().next().map(|r| one_line(&r));
        m.push_str(&format!("In-Reply-To: {id}\r\n"));
        m.push_str(&match references {
            Some(r) => format!("References: {r} {id}\r\n"),
            None => format!("References: {id}\r\n"),
        });
    }
    m.push_str("MIME-Version: 1.0\r\n");
    if !v.mime {
        let cte = if v.reason.is_ascii() { "7bit" } else { "8bit" };
        m.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
        ));
    }
    m.push_str(&crlf_lines(&v.reason));
    if !m.ends_with("\r\n") {
        m.push_str("\r\n");
    }
    m.into_bytes()
}

fn crlf_lines(s: &str) -> String {
    s.lines().map(|l| format!("{l}\r\n")).collect()
}
