//! The copy of a post the members get (pure): the poster's headers minus
//! list headers a previous list left, then X-BeenThere, RFC 2919 List-Id,
//! RFC 2369 List-* with mailto and https links, the RFC 8058 one-click
//! header, Precedence: list, the subject prefix, DMARC From-munging, and
//! the footer on plain-text posts. Also the plain notices the list mails
//! (confirmations, held-post notices, warnings) and the digests.

use super::store::List;

/// Headers we replace: a post arriving from another list carries its own.
const REPLACED: [&str; 12] = [
    "list-id",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-archive",
    "list-owner",
    "precedence",
    "x-beenthere",
    "return-path",
    "errors-to",
];

/// One header field: its name and the raw bytes (with folding and CRLF).
struct Field<'a> {
    name: &'a str,
    raw: &'a [u8],
}

/// Header fields and the body (after the blank line) of CRLF content.
fn split(content: &[u8]) -> (Vec<Field<'_>>, &[u8]) {
    // A message starting with the blank line has no header.
    let end = if content.starts_with(b"\r\n") {
        0
    } else {
        content
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(content.len(), |p| p + 2)
    };
    let (head, body) = content.split_at(end);
    let body = body.strip_prefix(b"\r\n").unwrap_or(body);
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < head.len() {
        let line_end = head[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len(), |p| i + p + 1);
        let continues = head.get(line_end).is_some_and(|&b| b == b' ' || b == b'\t');
        if !continues {
            let raw = &head[start..line_end];
            let name = raw
                .iter()
                .position(|&b| b == b':')
                .and_then(|c| std::str::from_utf8(&raw[..c]).ok())
                .unwrap_or("");
            fields.push(Field { name: name.trim(), raw });
            start = line_end;
        }
        i = line_end;
    }
    (fields, body)
}

/// The unfolded value of the first `name` header.
pub fn header(content: &[u8], name: &str) -> Option<String> {
    let (fields, _) = split(content);
    fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| {
        let text = String::from_utf8_lossy(f.raw);
        let value = text.split_once(':').map_or("", |(_, v)| v);
        value.replace("\r\n", "").replace('\n', "").trim().to_string()
    })
}

/// The poster as the From: header names them: (display name, lowercase address).
pub fn from_address(content: &[u8]) -> Option<(Option<String>, String)> {
    let msg = mail_parser::MessageParser::new().parse_headers(content)?;
    let from = msg.from()?.first()?;
    let address = from.address()?.to_ascii_lowercase();
    Some((from.name().map(str::to_string), address))
}

/// The number of addresses in To: and Cc:.
pub fn recipient_count(content: &[u8]) -> usize {
    mail_parser::MessageParser::new().parse_headers(content).map_or(0, |m| {
        m.to().map_or(0, |a| a.iter().count()) + m.cc().map_or(0, |a| a.iter().count())
    })
}

/// What the copy for one member is built from.
pub struct Distribution<'a> {
    pub list: &'a List,
    /// `[lists] web_url` without the final `/`; empty for mailto links only.
    pub web_url: &'a str,
    /// Rewrite From: to the list (the poster's domain has a strict DMARC policy).
    pub munge: bool,
    /// The member this copy is for (for the one-click link); `None` for the archive copy.
    pub member: Option<&'a str>,
}

/// Capitalised list name, the list's display name in munged From: lines.
pub fn display_name(list: &List) -> String {
    let mut chars = list.name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// Percent-encode for a URL query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A quoted-string display name with `"` and `\` escaped, or RFC 2047 for non-ASCII.
fn quoted(name: &str) -> String {
    if name.is_ascii() {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        use base64::Engine;
        format!("=?utf-8?b?{}?=", base64::engine::general_purpose::STANDARD.encode(name))
    }
}

/// The list headers (CRLF lines) of one copy.
fn list_headers(d: &Distribution<'_>) -> String {
    let l = d.list;
    use super::address::Role;
    let addr = l.address();
    let id = format!("{}.{}", l.name, l.domain);
    let list_id = match l.settings.description.as_str() {
        "" => format!("<{id}>"),
        desc => format!("{} <{id}>", quoted(desc)),
    };
    let page = format!("{}/lists/{}", d.web_url, url_encode(&addr));
    let web = !d.web_url.is_empty();
    let mut h = format!(
        "X-BeenThere: {addr}\r\nList-Id: {list_id}\r\nList-Post: <mailto:{addr}>\r\n\
         List-Help: <mailto:{}?subject=help>\r\n",
        l.role_address(&Role::Request)
    );
    let join = format!("<mailto:{}>", l.role_address(&Role::Join));
    let leave = format!("<mailto:{}>", l.role_address(&Role::Leave));
    if web {
        h += &format!("List-Subscribe: <{page}>, {join}\r\n");
    } else {
        h += &format!("List-Subscribe: {join}\r\n");
    }
    match d.member.filter(|_| web) {
        Some(m) => {
            h += &format!(
                "List-Unsubscribe: <{page}/unsubscribe?member={}&token={}>, {leave}\r\n\
                 List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                url_encode(m),
                l.unsubscribe_token(m)
            );
        }
        None => h += &format!("List-Unsubscribe: {leave}\r\n"),
    }
    if web && l.settings.archive != super::store::ArchiveMode::None {
        h += &format!("List-Archive: <{page}/archive>\r\n");
    }
    h += &format!(
        "List-Owner: <mailto:{}>\r\nPrecedence: list\r\n",
        l.role_address(&Role::Owner)
    );
    h
}

/// Whether the body is one plain-text part a footer can be appended to.
fn plain_text(fields: &[Field<'_>]) -> bool {
    let value = |name: &str| {
        fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| String::from_utf8_lossy(f.raw).to_ascii_lowercase())
    };
    let ctype_ok = value("content-type").is_none_or(|v| v.contains("text/plain"));
    let cte_ok = value("content-transfer-encoding").is_none_or(|v| v.contains("7bit") || v.contains("8bit"));
    ctype_ok && cte_ok
}

/// The copy of `content` (CRLF) for `d`.
pub fn prepare(content: &[u8], d: &Distribution<'_>) -> Vec<u8> {
    let (fields, body) = split(content);
    let l = d.list;
    let mut out = list_headers(d).into_bytes();
    let poster = from_address(content);
    let has_reply_to = fields.iter().any(|f| f.name.eq_ignore_ascii_case("reply-to"));
    let prefix = &l.settings.subject_prefix;
    let mut had_subject = false;
    for f in &fields {
        let name = f.name.to_ascii_lowercase();
        if REPLACED.contains(&name.as_str()) {
            continue;
        }
        if name == "from" && d.munge {
            let (display, address) = poster.clone().unwrap_or((None, String::new()));
            let who = display.unwrap_or_else(|| address.split('@').next().unwrap_or("").to_string());
            out.extend_from_slice(
                format!(
                    "From: {} <{}>\r\n",
                    quoted(&format!("{who} via {}", display_name(l))),
                    l.address()
                )
                .as_bytes(),
            );
            if !has_reply_to && !address.is_empty() {
                out.extend_from_slice(format!("Reply-To: <{address}>\r\n").as_bytes());
            }
            continue;
        }
        if name == "subject" {
            had_subject = true;
            let text = String::from_utf8_lossy(f.raw);
            let value = text.split_once(':').map_or("", |(_, v)| v).trim_start();
            if !prefix.is_empty() && !value.contains(prefix.as_str()) {
                out.extend_from_slice(format!("Subject: {prefix} {value}").as_bytes());
                continue;
            }
        }
        out.extend_from_slice(f.raw);
    }
    if !had_subject && !prefix.is_empty() {
        out.extend_from_slice(format!("Subject: {prefix}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    let footer = &l.settings.footer;
    if !footer.is_empty() && plain_text(&fields) {
        if !body.is_empty() && !body.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"-- \r\n");
        for line in footer.lines() {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// A plain-text message from the list software itself (CRLF), marked
/// Auto-Submitted so that auto-responders do not answer it.
pub fn notice(list: &List, from: &str, to: &str, subject: &str, extra: &str, body: &str, now: u64) -> Vec<u8> {
    let mut text = format!(
        "From: {} <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {}\r\n\
         Message-ID: <{}.{now}@{}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-replied\r\nX-BeenThere: {}\r\n{extra}\r\n",
        quoted(&format!("{} list", display_name(list))),
        crate::datetime::rfc5322(now),
        super::store::new_token(),
        list.domain,
        list.address(),
    );
    for line in body.lines() {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::store::Settings;
    use proptest::prelude::*;

    fn list() -> List {
        List::sample(Settings {
            subject_prefix: "[dev]".into(),
            footer: "Dev list\nhttps://x.test/".into(),
            secret: "k".into(),
            ..Settings::default()
        })
    }

    const POST: &[u8] = b"From: Alice <alice@strict.test>\r\nSubject: hello\r\n world\r\nList-Id: <other.y>\r\n\
        Precedence: bulk\r\n\r\nbody\r\n";

    #[test]
    fn members_copy_has_the_list_headers() {
        let l = list();
        let d = Distribution {
            list: &l,
            web_url: "https://x.test",
            munge: false,
            member: Some("bob@y.test"),
        };
        let out = String::from_utf8(prepare(POST, &d)).unwrap();
        let token = l.unsubscribe_token("bob@y.test");
        for want in [
            "X-BeenThere: dev@x.test\r\n",
            "List-Id: <dev.x.test>\r\n",
            "List-Post: <mailto:dev@x.test>\r\n",
            "List-Help: <mailto:dev-request@x.test?subject=help>\r\n",
            "List-Subscribe: <https://x.test/lists/dev%40x.test>, <mailto:dev-join@x.test>\r\n",
            &format!(
                "List-Unsubscribe: <https://x.test/lists/dev%40x.test/unsubscribe?member=bob%40y.test&token={token}>, <mailto:dev-leave@x.test>\r\n"
            ),
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            "List-Archive: <https://x.test/lists/dev%40x.test/archive>\r\n",
            "List-Owner: <mailto:dev-owner@x.test>\r\n",
            "Precedence: list\r\n",
            "From: Alice <alice@strict.test>\r\n",
            "Subject: [dev] hello\r\n world\r\n",
            "\r\n\r\nbody\r\n-- \r\nDev list\r\nhttps://x.test/\r\n",
        ] {
            assert!(out.contains(want), "{want:?} not in\n{out}");
        }
        assert!(!out.contains("other.y") && !out.contains("bulk"), "{out}");
        // Sent again through the list, the prefix is not doubled.
        let again = String::from_utf8(prepare(out.as_bytes(), &d)).unwrap();
        assert_eq!(again.matches("[dev]").count(), 1);
    }

    #[test]
    fn munged_from_and_mailto_only() {
        let l = list();
        let d = Distribution {
            list: &l,
            web_url: "",
            munge: true,
            member: Some("bob@y.test"),
        };
        let out = String::from_utf8(prepare(POST, &d)).unwrap();
        assert!(
            out.contains("From: \"Alice via Dev\" <dev@x.test>\r\nReply-To: <alice@strict.test>\r\n"),
            "{out}"
        );
        assert!(out.contains("List-Unsubscribe: <mailto:dev-leave@x.test>\r\n"));
        assert!(!out.contains("One-Click") && !out.contains("List-Archive"));
    }

    proptest! {
        #[test]
        fn prepare_keeps_the_body(head in "([A-Za-z-]{1,10}: [ -~]{0,30}\r\n){0,8}", body in "[ -~\r\n]{0,200}") {
            let mut l = list();
            l.settings.footer.clear();
            let content = format!("{head}\r\n{body}");
            let d = Distribution { list: &l, web_url: "https://x.test", munge: true, member: None };
            let out = prepare(content.as_bytes(), &d);
            prop_assert!(out.ends_with(body.as_bytes()));
            prop_assert!(out.starts_with(b"X-BeenThere: dev@x.test\r\n"));
        }
    }
}
