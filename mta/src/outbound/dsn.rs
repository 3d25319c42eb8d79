//! Delivery status notifications (RFC 3464, requested as in RFC 3461): who
//! gets one (`wanted`) and the message itself (`build`), a
//! `multipart/report; report-type=delivery-status` with a human-readable
//! part, the `message/delivery-status` fields for every recipient of one
//! event, and the original message or its headers; and the DSN parameters a
//! forwarded recipient inherits (`forwarded_params`). Pure: the caller
//! queues the bytes with the null sender `<>`.

use crate::envelope::{RcptParams, Ret};
use std::fmt::Write;

/// Above this size the original is returned as headers only, unless the
/// sender asked for RET=FULL (Postfix's bounce_size_limit).
pub const FULL_RETURN_LIMIT: usize = 50_000;

/// What happened to the recipients one DSN reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Permanent failure (or queue lifetime expired).
    Failure,
    /// Still being retried (delay warning).
    Delay,
    /// Delivered, or relayed to a host that does not do DSN.
    Success,
}

/// The Action field (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    /// Accepted for an alias that forwarded it on (RFC 3464 §2.3.3).
    Expanded,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }
}

/// Whether a recipient with these NOTIFY keywords (RFC 3461 §4.1, as given
/// at RCPT; empty means none given) wants a DSN for `event`. The null
/// sender never gets one: that is checked by the caller, who has the sender.
pub fn wanted(notify: &[String], event: Event) -> bool {
    let has = |k: &str| notify.iter().any(|n| n.eq_ignore_ascii_case(k));
    if has("NEVER") {
        return false;
    }
    match event {
        Event::Failure => notify.is_empty() || has("FAILURE"),
        Event::Delay => notify.is_empty() || has("DELAY"),
        Event::Success => has("SUCCESS"),
    }
}

/// The DSN parameters of an address that `original` (with `params`) is
/// forwarded to (aliases, .forward, virtusertable, Sieve redirect; RFC 3461
/// §6.2): the original's NOTIFY less SUCCESS, since the original's own
/// `expanded` or `delivered` report already answers that (NEVER when
/// nothing is left), and its ORCPT, else `rfc822;` and the original address
/// (§4.2), so a report from a server further on names the address the
/// sender used.
pub fn forwarded_params(original: &str, params: &RcptParams) -> RcptParams {
    let notify = if params.notify.is_empty() {
        Vec::new()
    } else {
        let kept: Vec<String> = params
            .notify
            .iter()
            .filter(|k| !k.eq_ignore_ascii_case("SUCCESS"))
            .cloned()
            .collect();
        if kept.is_empty() {
            vec!["NEVER".to_string()]
        } else {
            kept
        }
    };
    let orcpt = params
        .orcpt
        .clone()
        .unwrap_or_else(|| format!("rfc822;{}", xtext_encode(original)));
    RcptParams {
        notify,
        orcpt: Some(orcpt),
    }
}

/// RFC 3461 §4 xtext: bytes outside `!`..`~`, `+` and `=` as `+HH`.
fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

/// One recipient's part of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The address we tried (Final-Recipient).
    pub address: String,
    /// ORCPT as given at RCPT (`rfc822;xtext`), reported decoded.
    pub orcpt: Option<String>,
    pub action: Action,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// Host that answered, if the outcome came from another MTA.
    pub remote_mta: Option<String>,
    /// The reply or local error; an SMTP reply is given as `smtp; …`,
    /// anything else (a program's exit, a file error) as `x-unix; …`.
    pub diagnostic: Option<String>,
    pub last_attempt: u64,
    /// For `Delayed`: when the queue gives up.
    pub will_retry_until: Option<u64>,
}

/// A report on one message and event, covering all the recipients concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Our host name: Reporting-MTA, the MAILER-DAEMON's domain.
    pub reporting_mta: String,
    /// Queue id of the original message (for the text and the Message-ID).
    pub queue_id: String,
    /// Who gets the DSN (the original envelope sender).
    pub to: String,
    /// Arrival of the original, seconds since the epoch.
    pub arrival: u64,
    /// ENVID of the original (xtext, reported decoded).
    pub envid: Option<String>,
    /// RET of the original.
    pub ret: Option<Ret>,
    pub event: Event,
    pub recipients: Vec<RecipientReport>,
    /// Date of the report.
    pub now: u64,
}

/// The enhanced status code in a reply (`550 5.1.1 …` or `5.1.1 …`), else
/// `default`.
pub fn status_code(reply: &str, default: &str) -> String {
    let rest = reply.trim_start();
    let rest = match rest.as_bytes() {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            rest[3..].trim_start_matches(['-', ' '])
        }
        _ => rest,
    };
    let code = rest.split_whitespace().next().unwrap_or("");
    let parts: Vec<&str> = code.split('.').collect();
    let valid = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if valid { code.to_string() } else { default.to_string() }
}

/// RFC 3461 §4 xtext: `+HH` stands for the byte HH.
fn xtext_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'+')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Field values must stay on one line: a reply or address carrying CR/LF
/// would otherwise add fields of its own.
fn one_line(s: &str) -> String {
    s.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn diagnostic_field(d: &str) -> String {
    let d = one_line(d);
    let smtp_reply = d.len() >= 3 && d.as_bytes()[..3].iter().all(u8::is_ascii_digit);
    if smtp_reply {
        format!("smtp; {d}")
    } else {
        format!("x-unix; {d}")
    }
}

/// End of the header section of `message` (including the CRLF of its last line).
fn headers_end(message: &[u8]) -> usize {
    if message.starts_with(b"\r\n") {
        return 0;
    }
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2)
}

fn subject(event: Event) -> &'static str {
    match event {
        Event::Failure => "Undelivered Mail Returned to Sender",
        Event::Delay => "Delayed Mail (still being retried)",
        Event::Success => "Successful Mail Delivery Report",
    }
}

fn human_text(r: &Report) -> String {
    let host = &r.reporting_mta;
    let mut t = format!("This is the mail system at host {host}.\r\n\r\n");
    t.push_str(match r.event {
        Event::Failure => {
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.\r\n"
        }
        Event::Delay => {
            "Your message could not be delivered yet to one or more\r\n\
             recipients. The mail system will keep trying; you need not send\r\n\
             it again.\r\n"
        }
        Event::Success => "Your message was successfully delivered to the recipients below.\r\n",
    });
    let _ = write!(t, "\r\nMessage {} to:\r\n\r\n", r.queue_id);
    for rcpt in &r.recipients {
        let _ = write!(t, "<{}>: {}", one_line(&rcpt.address), rcpt.action.as_str());
        if let Some(d) = &rcpt.diagnostic {
            let _ = write!(t, ": {}", one_line(d));
        }
        t.push_str("\r\n");
    }
    t
}

fn delivery_status(r: &Report) -> String {
    let date = crate::datetime::rfc5322;
    let mut s = format!("Reporting-MTA: dns; {}\r\n", r.reporting_mta);
    if let Some(envid) = &r.envid {
        let _ = write!(s, "Original-Envelope-Id: {}\r\n", one_line(&xtext_decode(envid)));
    }
    let _ = write!(s, "Arrival-Date: {}\r\n", date(r.arrival));
    for rcpt in &r.recipients {
        let _ = write!(s, "\r\nFinal-Recipient: rfc822; {}\r\n", one_line(&rcpt.address));
        if let Some(orcpt) = &rcpt.orcpt {
            let decoded = xtext_decode(orcpt);
            let (kind, addr) = decoded.split_once(';').unwrap_or(("rfc822", &decoded));
            let _ = write!(
                s,
                "Original-Recipient: {}; {}\r\n",
                one_line(kind.trim()),
                one_line(addr.trim())
            );
        }
        let _ = write!(s, "Action: {}\r\nStatus: {}\r\n", rcpt.action.as_str(), rcpt.status);
        if let Some(mta) = &rcpt.remote_mta {
            let _ = write!(s, "Remote-MTA: dns; {}\r\n", one_line(mta));
        }
        if let Some(d) = &rcpt.diagnostic {
            let _ = write!(s, "Diagnostic-Code: {}\r\n", diagnostic_field(d));
        }
        let _ = write!(s, "Last-Attempt-Date: {}\r\n", date(rcpt.last_attempt));
        if let Some(until) = rcpt.will_retry_until {
            let _ = write!(s, "Will-Retry-Until: {}\r\n", date(until));
        }
    }
    s
}

/// Whether the whole original goes back (RET=FULL, or small enough when
/// the sender did not say); otherwise its headers only.
fn returns_full(ret: Option<Ret>, size: usize) -> bool {
    match ret {
        Some(Ret::Full) => true,
        Some(Ret::Hdrs) => false,
        None => size <= FULL_RETURN_LIMIT,
    }
}

/// The DSN message (CRLF lines) for `report` about `original` (the queued
/// content). Sent from `MAILER-DAEMON@reporting_mta` with the envelope
/// sender `<>`; 8-bit originals are returned as `8bit` parts, so the
/// caller queues it with BODY=8BITMIME when `!is_ascii()`.
pub fn build(report: &Report, original: &[u8]) -> Vec<u8> {
    let host = &report.reporting_mta;
    let boundary = format!("{}.{}/{}", report.queue_id, report.now, host);
    let full = returns_full(report.ret, original.len());
    let returned = if full {
        original
    } else {
        &original[..headers_end(original)]
    };
    let cte = if returned.is_ascii() { "7bit" } else { "8bit" };
    let text = human_text(report);
    let text_cte = if text.is_ascii() { "7bit" } else { "8bit" };
    let mut m = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}.{now}.dsn@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         Content-Transfer-Encoding: {cte}\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: {text_cte}\r\n\
         \r\n\
         {text}\r\n\
         --{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         {status}\r\n\
         --{boundary}\r\n",
        to = one_line(&report.to),
        subject = subject(report.event),
        date = crate::datetime::rfc5322(report.now),
        id = report.queue_id,
        now = report.now,
        status = delivery_status(report),
    );
    let (description, kind) = if full {
        ("Undelivered Message", "message/rfc822")
    } else {
        ("Undelivered Message Headers", "text/rfc822-headers")
    };
    let _ = write!(
        m,
        "Content-Description: {description}\r\nContent-Type: {kind}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    );
    let mut bytes = m.into_bytes();
    bytes.extend_from_slice(returned);
    if !returned.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders, PartType};

    const ORIGINAL: &[u8] = b"Received: by mx.example.org (mta) id Q1;\r\n\tThu, 1 Jan 2026 00:00:00 +0000\r\n\
        From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: lunch\r\n\r\nSee you at noon.\r\n";

    fn rcpt(address: &str, action: Action) -> RecipientReport {
        RecipientReport {
            address: address.into(),
            orcpt: None,
            action,
            status: "5.1.1".into(),
            remote_mta: None,
            diagnostic: Some("550 5.1.1 <bob@example.org>: no such user".into()),
            last_attempt: 1_767_225_700,
            will_retry_until: None,
        }
    }

    fn report(event: Event, recipients: Vec<RecipientReport>) -> Report {
        Report {
            reporting_mta: "mx.example.org".into(),
            queue_id: "Q1".into(),
            to: "alice@example.org".into(),
            arrival: 1_767_225_600,
            envid: None,
            ret: None,
            event,
            recipients,
            now: 1_767_225_800,
        }
    }

    /// The three parts' bodies as text, the content types, and the returned part's type.
    fn parts(bytes: &[u8]) -> (mail_parser::Message<'_>, Vec<String>) {
        let msg = MessageParser::default().parse(bytes).expect("parses");
        let types = msg
            .parts
            .iter()
            .map(|p| {
                p.content_type()
                    .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                    .unwrap_or_default()
            })
            .collect();
        (msg, types)
    }

    /// The delivery-status part split into field groups, each a list of (name, value).
    fn status_groups(msg: &mail_parser::Message<'_>) -> Vec<Vec<(String, String)>> {
        let part = &msg.parts[2];
        let body = match &part.body {
            PartType::Text(t) => t.to_string(),
            PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b).into_owned(),
            PartType::Message(m) => String::from_utf8_lossy(m.raw_message()).into_owned(),
            other => panic!("delivery-status body: {other:?}"),
        };
        body.replace("\r\n", "\n")
            .split("\n\n")
            .filter(|g| !g.trim().is_empty())
            .map(|g| {
                g.lines()
                    .map(|l| {
                        let (k, v) = l.split_once(':').expect("field");
                        (k.to_string(), v.trim().to_string())
                    })
                    .collect()
            })
            .collect()
    }

    fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
        group.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn failure_report_has_every_field() {
        let mut r1 = rcpt("bob@example.org", Action::Failed);
        r1.orcpt = Some("rfc822;Bob+2Bx@example.org".into());
        r1.remote_mta = Some("mx2.example.net".into());
        let mut r2 = rcpt("carol@example.org", Action::Failed);
        r2.diagnostic = Some("program exited with status 67".into());
        r2.status = "5.3.0".into();
        let mut rep = report(Event::Failure, vec![r1, r2]);
        rep.envid = Some("QQ+2B1".into());
        let bytes = build(&rep, ORIGINAL);
        let (msg, types) = parts(&bytes);
        assert_eq!(
            types,
            [
                "multipart/report",
                "text/plain",
                "message/delivery-status",
                "message/rfc822"
            ]
        );
        let ct = msg.content_type().unwrap();
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
        let from = msg.from().unwrap().first().unwrap();
        assert_eq!(from.address(), Some("MAILER-DAEMON@mx.example.org"));
        assert_eq!(msg.to().unwrap().first().unwrap().address(), Some("alice@example.org"));
        assert_eq!(msg.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
        let text = msg.body_text(0).unwrap();
        assert!(text.contains("<bob@example.org>: failed: 550 5.1.1"), "{text}");
        let groups = status_groups(&msg);
        assert_eq!(groups.len(), 3, "{groups:?}");
        assert_eq!(field(&groups[0], "Reporting-MTA"), Some("dns; mx.example.org"));
        assert_eq!(field(&groups[0], "Original-Envelope-Id"), Some("QQ+1"));
        assert_eq!(
            field(&groups[0], "Arrival-Date"),
            Some("Thu, 1 Jan 2026 00:00:00 +0000")
        );
        let bob = &groups[1];
        assert_eq!(field(bob, "Final-Recipient"), Some("rfc822; bob@example.org"));
        assert_eq!(field(bob, "Original-Recipient"), Some("rfc822; Bob+x@example.org"));
        assert_eq!(field(bob, "Action"), Some("failed"));
        assert_eq!(field(bob, "Status"), Some("5.1.1"));
        assert_eq!(field(bob, "Remote-MTA"), Some("dns; mx2.example.net"));
        assert_eq!(
            field(bob, "Diagnostic-Code"),
            Some("smtp; 550 5.1.1 <bob@example.org>: no such user")
        );
        assert_eq!(field(bob, "Last-Attempt-Date"), Some("Thu, 1 Jan 2026 00:01:40 +0000"));
        assert_eq!(field(bob, "Will-Retry-Until"), None);
        let carol = &groups[2];
        assert_eq!(field(carol, "Final-Recipient"), Some("rfc822; carol@example.org"));
        assert_eq!(field(carol, "Original-Recipient"), None);
        assert_eq!(field(carol, "Remote-MTA"), None);
        assert_eq!(field(carol, "Status"), Some("5.3.0"));
        assert_eq!(
            field(carol, "Diagnostic-Code"),
            Some("x-unix; program exited with status 67")
        );
        let PartType::Message(inner) = &msg.parts[3].body else {
            panic!("returned message: {:?}", msg.parts[3].body)
        };
        assert_eq!(inner.subject(), Some("lunch"));
        assert_eq!(inner.body_text(0).as_deref(), Some("See you at noon.\r\n"));
    }

    #[test]
    fn delay_report_says_until_when() {
        let mut r = rcpt("bob@example.org", Action::Delayed);
        r.status = "4.4.1".into();
        r.diagnostic = Some("connection refused".into());
        r.will_retry_until = Some(1_767_225_600 + 5 * 86400);
        let bytes = build(&report(Event::Delay, vec![r]), ORIGINAL);
        let (msg, _) = parts(&bytes);
        assert_eq!(msg.subject(), Some("Delayed Mail (still being retried)"));
        let groups = status_groups(&msg);
        assert_eq!(field(&groups[1], "Action"), Some("delayed"));
        assert_eq!(field(&groups[1], "Status"), Some("4.4.1"));
        assert_eq!(
            field(&groups[1], "Will-Retry-Until"),
            Some("Tue, 6 Jan 2026 00:00:00 +0000")
        );
    }

    #[test]
    fn headers_only_when_asked_or_large() {
        let mut rep = report(Event::Failure, vec![rcpt("bob@example.org", Action::Failed)]);
        rep.ret = Some(Ret::Hdrs);
        let bytes = build(&rep, ORIGINAL);
        let (msg, types) = parts(&bytes);
        assert_eq!(types[3], "text/rfc822-headers");
        let headers = msg.parts[3].text_contents().expect("text part");
        assert!(headers.contains("Subject: lunch"), "{headers}");
        assert!(!headers.contains("See you at noon"), "{headers}");

        let mut big = ORIGINAL.to_vec();
        big.extend(std::iter::repeat_n(b"x".repeat(76).into_iter().chain(*b"\r\n"), 700).flatten());
        rep.ret = None;
        let (_, types) = parts(&build(&rep, &big));
        assert_eq!(types[3], "text/rfc822-headers");
        rep.ret = Some(Ret::Full);
        let (_, types) = parts(&build(&rep, &big));
        assert_eq!(types[3], "message/rfc822");
    }

    #[test]
    fn success_report_and_eight_bit_original() {
        let mut r = rcpt("bob@example.org", Action::Delivered);
        r.status = "2.0.0".into();
        r.diagnostic = None;
        let original = "From: a@example.org\r\nSubject: caf\u{e9}\r\n\r\nna\u{ef}ve\r\n".as_bytes();
        let bytes = build(&report(Event::Success, vec![r]), original);
        let (msg, types) = parts(&bytes);
        assert_eq!(types[3], "message/rfc822");
        assert_eq!(msg.subject(), Some("Successful Mail Delivery Report"));
        let groups = status_groups(&msg);
        assert_eq!(field(&groups[1], "Action"), Some("delivered"));
        assert_eq!(field(&groups[1], "Status"), Some("2.0.0"));
        assert_eq!(field(&groups[1], "Diagnostic-Code"), None);
        assert!(String::from_utf8_lossy(&bytes).contains("Content-Transfer-Encoding: 8bit"));
    }

    #[test]
    fn crlf_in_a_reply_cannot_add_fields() {
        let mut r = rcpt("bob@example.org", Action::Failed);
        r.diagnostic = Some("550 no\r\nAction: delivered".into());
        let bytes = build(&report(Event::Failure, vec![r]), ORIGINAL);
        let (msg, _) = parts(&bytes);
        let groups = status_groups(&msg);
        assert_eq!(groups[1].iter().filter(|(k, _)| k == "Action").count(), 1);
    }

    #[test]
    fn notify_rules() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wanted(&[], Event::Failure));
        assert!(wanted(&[], Event::Delay));
        assert!(!wanted(&[], Event::Success));
        assert!(!wanted(&n(&["NEVER"]), Event::Failure));
        assert!(!wanted(&n(&["never"]), Event::Success));
        assert!(wanted(&n(&["SUCCESS"]), Event::Success));
        assert!(!wanted(&n(&["SUCCESS"]), Event::Failure));
        assert!(wanted(&n(&["SUCCESS", "FAILURE"]), Event::Failure));
        assert!(!wanted(&n(&["FAILURE"]), Event::Delay));
        assert!(wanted(&n(&["DELAY"]), Event::Delay));
    }

    #[test]
    fn status_codes_from_replies() {
        assert_eq!(status_code("550 5.1.1 no such user", "5.0.0"), "5.1.1");
        assert_eq!(status_code("452-4.2.2 mailbox full", "4.0.0"), "4.2.2");
        assert_eq!(status_code("5.7.1 refused", "5.0.0"), "5.7.1");
        assert_eq!(status_code("550 no such user", "5.0.0"), "5.0.0");
        assert_eq!(status_code("program exited 1", "5.3.0"), "5.3.0");
        assert_eq!(status_code("550 9.1.1 x", "5.0.0"), "5.0.0");
    }

    #[test]
    fn forwarded_recipients_keep_notify_and_the_original_address() {
        let params = |notify: &[&str], orcpt: Option<&str>| RcptParams {
            notify: notify.iter().map(|s| s.to_string()).collect(),
            orcpt: orcpt.map(str::to_string),
        };
        assert_eq!(
            forwarded_params("list+x@fwd.test", &params(&[], None)),
            params(&[], Some("rfc822;list+2Bx@fwd.test"))
        );
        assert_eq!(
            forwarded_params(
                "a@fwd.test",
                &params(&["SUCCESS", "FAILURE"], Some("rfc822;first@x.test"))
            ),
            params(&["FAILURE"], Some("rfc822;first@x.test"))
        );
        assert_eq!(
            forwarded_params("a@fwd.test", &params(&["NEVER"], None)).notify,
            ["NEVER"]
        );
        assert_eq!(
            forwarded_params("a@fwd.test", &params(&["success"], None)).notify,
            ["NEVER"]
        );
    }

    proptest::proptest! {
        #[test]
        fn xtext_round_trips(s in "\\PC{0,40}") {
            let encoded = xtext_encode(&s);
            proptest::prop_assert!(encoded.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'='));
            proptest::prop_assert_eq!(xtext_decode(&encoded), s);
        }
    }
}
