//! Building the message webmail sends: headers (CR and LF removed from what
//! the user typed, non-ASCII words in RFC 2047 form), a UTF-8 text part and
//! attachments in base64, a forwarded message as `message/rfc822`. Pure.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// A file the user attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Everything a message is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub from: String,
    pub to: String,
    pub cc: String,
    pub subject: String,
    pub body: String,
    pub in_reply_to: String,
    pub references: String,
    pub attachments: Vec<Attachment>,
    /// A message forwarded whole.
    pub forwarded: Option<Vec<u8>>,
}

/// A header value from a form: one line, whatever was pasted.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// RFC 2047 encoded-word for non-ASCII text; ASCII as it is.
pub fn encode_word(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    // Encoded words stay under 76 characters: 45 bytes of UTF-8 at most each, split on char boundaries.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", B64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", B64.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// An address list as typed (`Name <a@b>, c@d`), with non-ASCII display names encoded.
fn address_header(list: &str) -> String {
    one_line(list)
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| match a.rsplit_once('<') {
            Some((name, addr)) if !name.trim().is_empty() => {
                let name = name.trim().trim_matches('"');
                let name = if name.is_ascii() {
                    format!("\"{}\"", name.replace(['"', '\\'], ""))
                } else {
                    encode_word(name)
                };
                format!("{name} <{addr}")
            }
            _ => a.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",\r\n ")
}

/// Base64 in 76-character lines.
fn base64_lines(data: &[u8]) -> String {
    let text = B64.encode(data);
    let mut out = String::with_capacity(text.len() + text.len() / 38);
    for chunk in text.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// A `type/subtype` the browser gave, or octet-stream when it is not one.
fn safe_content_type(ct: &str) -> &str {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match ct.split_once('/') {
        Some((t, s)) if ok(t) && ok(s) => ct,
        _ => "application/octet-stream",
    }
}

/// A filename parameter: quoted ASCII, or RFC 2231 UTF-8.
fn filename_param(name: &str) -> String {
    let name = one_line(name);
    if name.is_ascii() {
        format!("filename=\"{}\"", name.replace(['"', '\\'], "_"))
    } else {
        format!("filename*=UTF-8''{}", super::url::enc(&name))
    }
}

fn text_part(body: &str) -> String {
    let body = body.replace("\r\n", "\n").replace('\n', "\r\n");
    let long = body.split("\r\n").any(|l| l.len() > 998);
    if body.is_ascii() && !long {
        let body = if body.ends_with("\r\n") { body } else { body + "\r\n" };
        format!("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{body}")
    } else {
        format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            base64_lines(body.as_bytes())
        )
    }
}

/// The whole message, CRLF lines. `date` is an RFC 5322 date, `message_id` with its `<>`.
pub fn build(m: &Outgoing, date: &str, message_id: &str, boundary: &str) -> Vec<u8> {
    let mut head = format!("Date: {date}\r\nFrom: {}\r\n", address_header(&m.from));
    for (name, value) in [("To", &m.to), ("Cc", &m.cc)] {
        let value = address_header(value);
        if !value.is_empty() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "Subject: {}\r\nMessage-ID: {message_id}\r\n",
        encode_word(&one_line(&m.subject))
    ));
    for (name, value) in [("In-Reply-To", &m.in_reply_to), ("References", &m.references)] {
        let value = one_line(value);
        if !value.is_empty() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("MIME-Version: 1.0\r\nUser-Agent: mta webmail\r\n");
    let mut out = head.into_bytes();
    if m.attachments.is_empty() && m.forwarded.is_none() {
        out.extend_from_slice(text_part(&m.body).as_bytes());
        return out;
    }
    out.extend_from_slice(
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\nThis is a MIME message.\r\n").as_bytes(),
    );
    out.extend_from_slice(format!("--{boundary}\r\n{}", text_part(&m.body)).as_bytes());
    for a in &m.attachments {
        let param = filename_param(&a.name);
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; {param}\r\n\r\n{}",
                safe_content_type(&a.content_type),
                base64_lines(&a.data)
            )
            .as_bytes(),
        );
    }
    if let Some(original) = &m.forwarded {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(original);
        if !original.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};
    use proptest::prelude::*;

    fn outgoing() -> Outgoing {
        Outgoing {
            from: "Alice <alice@example.test>".into(),
            to: "bob@example.test, Jürgen <j@example.test>".into(),
            subject: "Grüße".into(),
            body: "Hello\nthere".into(),
            in_reply_to: "<a@b>".into(),
            references: "<z@b> <a@b>".into(),
            ..Outgoing::default()
        }
    }

    #[test]
    fn a_text_message_parses_back() {
        let raw = build(&outgoing(), "Thu, 3 Dec 2026 10:00:00 +0000", "<id@h>", "b1");
        let m = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(m.subject(), Some("Grüße"));
        assert_eq!(m.to().unwrap().iter().count(), 2);
        assert_eq!(m.to().unwrap().iter().nth(1).unwrap().name.as_deref(), Some("Jürgen"));
        assert_eq!(m.body_text(0).unwrap(), "Hello\r\nthere\r\n");
        assert_eq!(m.in_reply_to().as_text(), Some("a@b"));
        assert!(!raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'), "bare LF");
    }

    #[test]
    fn attachments_come_back_byte_for_byte() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mut o = outgoing();
        o.attachments.push(Attachment {
            name: "dätä.bin".into(),
            content_type: "application/x-thing".into(),
            data: data.clone(),
        });
        o.forwarded = Some(b"Subject: old\r\n\r\nold body\r\n".to_vec());
        let raw = build(&o, "Thu, 3 Dec 2026 10:00:00 +0000", "<id@h>", "b1");
        let m = MessageParser::default().parse(&raw).unwrap();
        let a = m.attachment(0).unwrap();
        assert_eq!(a.attachment_name(), Some("dätä.bin"));
        assert_eq!(a.contents(), &data[..]);
        assert!(m.attachment(1).unwrap().is_message());
    }

    #[test]
    fn typed_newlines_cannot_add_headers() {
        let mut o = outgoing();
        o.subject = "hi\r\nBcc: victim@example.test".into();
        o.to = "bob@example.test\nX-Evil: 1".into();
        let raw = String::from_utf8(build(&o, "d", "<i@h>", "b")).unwrap();
        assert!(!raw.contains("\r\nBcc:") && !raw.contains("\nX-Evil"), "{raw}");
    }

    proptest! {
        #[test]
        fn any_form_input_builds_a_parseable_message(subject in ".{0,100}", to in ".{0,100}", body in ".{0,300}", name in ".{0,40}", ct in ".{0,30}") {
            let o = Outgoing {
                from: "a@b".into(),
                to,
                subject: subject.clone(),
                body,
                attachments: vec![Attachment { name, content_type: ct, data: vec![1, 2, 3] }],
                ..Outgoing::default()
            };
            let raw = build(&o, "d", "<i@h>", "boundary-x");
            let m = MessageParser::default().parse(&raw).unwrap();
            prop_assert_eq!(m.attachment(0).unwrap().contents(), &[1u8, 2, 3][..]);
            let header_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let head = &raw[..header_end];
            // Every header line is a field or a continuation: nothing typed started a new one.
            for line in head.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                prop_assert!(line.starts_with(b" ") || line.iter().position(|&b| b == b':').is_some());
            }
        }
    }
}
