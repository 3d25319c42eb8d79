//! What FETCH shows of a message: ENVELOPE, BODY/BODYSTRUCTURE and
//! `BODY[section]` bytes, from mail-parser's view of the CRLF message, and
//! the IMAP string syntax they are written in.

use super::command::{Section, SectionText};
use mail_parser::{Address, HeaderValue, Message, MessagePart, MimeHeaders, PartType};

/// Write `bytes` as an IMAP string: quoted when safe, else a literal.
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    let quotable = bytes.len() < 1024 && bytes.iter().all(|&b| (0x20..0x7f).contains(&b));
    quoted_or_literal(out, bytes, quotable);
}

/// Write `bytes` quoted (`"` and `\` escaped) when `quotable`, else as a
/// literal `{N}`: the string syntax IMAP and ManageSieve share; what may
/// be quoted is each protocol's to say.
pub fn quoted_or_literal(out: &mut Vec<u8>, bytes: &[u8], quotable: bool) {
    if quotable {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    }
}

/// `(a b c)`: `items` each written by `each`, a space between them.
pub fn parenthesized<T>(out: &mut Vec<u8>, items: impl IntoIterator<Item = T>, mut each: impl FnMut(&mut Vec<u8>, T)) {
    out.push(b'(');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        each(out, item);
    }
    out.push(b')');
}

/// `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"NIL"),
    }
}

fn nstr(out: &mut Vec<u8>, value: Option<&str>) {
    nstring(out, value.map(str::as_bytes));
}

/// Header text as the wire carries it (unfolded, trimmed); 8-bit text is
/// re-encoded as an RFC 2047 word so IMAP4rev1 clients get 7-bit strings.
fn header_text(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    use base64::Engine;
    format!(
        "=?utf-8?b?{}?=",
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
    )
}

fn raw_header<'a>(message: &'a Message, name: &'static str) -> Option<&'a str> {
    message.header_raw(name).map(str::trim)
}

fn unfold(s: &str) -> String {
    s.replace("\r\n", "").replace('\n', "")
}

fn address_list(out: &mut Vec<u8>, address: Option<&Address>) {
    let Some(address) = address else {
        return out.extend_from_slice(b"NIL");
    };
    let mut items = Vec::new();
    let mailbox = |name: Option<&str>, email: Option<&str>| {
        let mut item = vec![b'('];
        nstr(&mut item, name.map(header_text).as_deref());
        item.push(b' ');
        // A source route (`<@route:user@domain>`) goes in the adl field.
        let (route, email) = match email.and_then(|e| e.strip_prefix('@').and(e.split_once(':'))) {
            Some((route, rest)) => (Some(route), Some(rest)),
            None => (None, email),
        };
        nstr(&mut item, route);
        item.push(b' ');
        let (local, domain) = match email.and_then(|e| e.rsplit_once('@')) {
            Some((l, d)) => (Some(l), Some(d)),
            None => (email, None),
        };
        nstr(&mut item, local);
        item.push(b' ');
        nstr(&mut item, domain);
        item.push(b')');
        item
    };
    match address {
        Address::List(list) => {
            for a in list {
                items.push(mailbox(a.name.as_deref(), a.address.as_deref()));
            }
        }
        Address::Group(groups) => {
            for g in groups {
                if let Some(name) = &g.name {
                    // Group start: (NIL NIL "name" NIL), end: (NIL NIL NIL NIL).
                    let mut start = b"(NIL NIL ".to_vec();
                    nstr(&mut start, Some(&header_text(name)));
                    start.extend_from_slice(b" NIL)");
                    items.push(start);
                }
                // A comment alone (`group: (foo) ;`) is no mailbox.
                for a in g.addresses.iter().filter(|a| a.address.is_some()) {
                    items.push(mailbox(a.name.as_deref(), a.address.as_deref()));
                }
                if g.name.is_some() {
                    items.push(b"(NIL NIL NIL NIL)".to_vec());
                }
            }
        }
    }
    if items.is_empty() {
        return out.extend_from_slice(b"NIL");
    }
    out.push(b'(');
    for item in items {
        out.extend_from_slice(&item);
    }
    out.push(b')');
}

/// The ENVELOPE of a message (RFC 3501 §7.4.2).
pub fn envelope(out: &mut Vec<u8>, m: &Message) {
    out.push(b'(');
    nstr(out, raw_header(m, "Date").map(unfold).as_deref());
    out.push(b' ');
    nstr(out, m.subject().map(header_text).as_deref());
    let from = m.from();
    for a in [
        from,
        m.sender().or(from),
        m.reply_to().or(from),
        m.to(),
        m.cc(),
        m.bcc(),
    ] {
        out.push(b' ');
        address_list(out, a);
    }
    out.push(b' ');
    nstr(out, raw_header(m, "In-Reply-To").map(unfold).as_deref());
    out.push(b' ');
    nstr(out, raw_header(m, "Message-ID").map(unfold).as_deref());
    out.push(b')');
}

fn params(out: &mut Vec<u8>, ct: Option<&mail_parser::ContentType>, default: &[(&str, &str)]) {
    let attrs: Vec<(&str, &str)> = match ct.and_then(|c| c.attributes()) {
        Some(a) if !a.is_empty() => a.iter().map(|a| (a.name.as_ref(), a.value.as_ref())).collect(),
        _ => default.to_vec(),
    };
    if attrs.is_empty() {
        return out.extend_from_slice(b"NIL");
    }
    parenthesized(out, attrs, |out, (k, v)| {
        string(out, k.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        string(out, header_text(v).as_bytes());
    });
}

fn disposition_etc(out: &mut Vec<u8>, part: &MessagePart) {
    out.push(b' ');
    match part.content_disposition() {
        Some(d) => {
            out.push(b'(');
            string(out, d.ctype().to_ascii_uppercase().as_bytes());
            out.push(b' ');
            params(out, Some(d), &[]);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match part.content_language() {
        HeaderValue::Text(t) => string(out, t.as_bytes()),
        HeaderValue::TextList(l) => parenthesized(out, l, |out, t| string(out, t.as_bytes())),
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstr(out, part.content_location());
}

/// The bytes a nested message's offsets point into. mail-parser gives the
/// parts of an encapsulated message offsets into the enclosing buffer, except
/// when it had to decode it first (base64 message/rfc822): then they point
/// into the nested message's own bytes, which start with its header at 0.
fn nested_base<'a>(outer: &'a [u8], nested: &'a Message) -> &'a [u8] {
    match nested.parts.first() {
        Some(p) if p.offset_header == 0 => nested.raw_message(),
        _ => outer,
    }
}

/// MIME nesting shown in BODYSTRUCTURE; deeper parts are summarized as
/// opaque data so a hostile message cannot recurse the stack away.
const MAX_DEPTH: usize = 32;

/// BODYSTRUCTURE (`extended`) or BODY of a message.
pub fn body_structure(out: &mut Vec<u8>, m: &Message, extended: bool) {
    part_structure(out, m, m.raw_message(), 0, extended, 0);
}

fn part_structure(out: &mut Vec<u8>, m: &Message, base: &[u8], id: u32, extended: bool, depth: usize) {
    let Some(part) = m.parts.get(id as usize) else {
        return out.extend_from_slice(b"NIL");
    };
    if depth >= MAX_DEPTH {
        let size = part.offset_end.saturating_sub(part.offset_body);
        let ext = if extended { " NIL NIL NIL NIL" } else { "" };
        return out.extend_from_slice(
            format!("(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"7BIT\" {size}{ext})").as_bytes(),
        );
    }
    let ct = part.content_type();
    out.push(b'(');
    if let PartType::Multipart(children) = &part.body {
        for &child in children {
            part_structure(out, m, base, child, extended, depth + 1);
        }
        if children.is_empty() {
            // A multipart needs at least one body: show an empty text part.
            out.extend_from_slice(b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)");
        }
        out.push(b' ');
        let subtype = ct.and_then(|c| c.subtype()).unwrap_or("mixed");
        string(out, subtype.to_ascii_uppercase().as_bytes());
        if extended {
            out.push(b' ');
            params(out, ct, &[]);
            disposition_etc(out, part);
        }
        out.push(b')');
        return;
    }
    let (ctype, subtype) = match ct {
        Some(c) => (
            c.ctype().to_ascii_uppercase(),
            c.subtype().unwrap_or("").to_ascii_uppercase(),
        ),
        None => ("TEXT".into(), "PLAIN".into()),
    };
    let body = base
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or(&[]);
    string(out, ctype.as_bytes());
    out.push(b' ');
    string(out, subtype.as_bytes());
    out.push(b' ');
    let default_params: &[(&str, &str)] = if ctype == "TEXT" {
        &[("CHARSET", "US-ASCII")]
    } else {
        &[]
    };
    params(out, ct, default_params);
    out.push(b' ');
    nstr(out, part.content_id().map(|s| format!("<{s}>")).as_deref());
    out.push(b' ');
    nstr(out, part.content_description().map(header_text).as_deref());
    out.push(b' ');
    let encoding = part.content_transfer_encoding().unwrap_or("7BIT").to_ascii_uppercase();
    string(out, encoding.as_bytes());
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    match &part.body {
        PartType::Message(nested) => {
            out.push(b' ');
            envelope(out, nested);
            out.push(b' ');
            part_structure(out, nested, nested_base(base, nested), 0, extended, depth + 1);
            out.extend_from_slice(format!(" {lines}").as_bytes());
        }
        _ if ctype == "TEXT" => out.extend_from_slice(format!(" {lines}").as_bytes()),
        _ => {}
    }
    if extended {
        out.extend_from_slice(b" NIL");
        disposition_etc(out, part);
    }
    out.push(b')');
}

/// Find a part by its IMAP path: the message it belongs to, its id there,
/// and the bytes its offsets point into.
pub(super) fn find_part<'a, 'x>(m: &'a Message<'x>, path: &[u32]) -> Option<(&'a Message<'x>, u32, &'a [u8])> {
    let mut msg = m;
    let mut base = m.raw_message();
    let mut id = 0u32;
    let mut at_message = true;
    for &n in path {
        if !at_message && let PartType::Message(nested) = &msg.parts.get(id as usize)?.body {
            base = nested_base(base, nested);
            msg = nested;
            id = 0;
            at_message = true;
        }
        match &msg.parts.get(id as usize)?.body {
            PartType::Multipart(children) => id = *children.get(n as usize - 1)?,
            _ if at_message && n == 1 => {}
            _ => return None,
        }
        at_message = false;
    }
    Some((msg, id, base))
}

/// The header lines of a header block whose names are (or, with `not`, are not) in `fields`.
fn header_fields(block: &[u8], fields: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in block.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line.split(|&b| b == b':').next().unwrap_or(&[]);
            let listed = fields
                .iter()
                .any(|f| f.as_bytes().eq_ignore_ascii_case(name.trim_ascii()));
            keep = listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn header_and_text<'a>(m: &'a Message, raw: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let Some(root) = m.parts.first() else {
        return (&[], &[]);
    };
    let end = (root.offset_end as usize).min(raw.len());
    let split = (root.offset_body as usize).min(end);
    let start = (root.offset_header as usize).min(split);
    (&raw[start..split], &raw[split..end])
}

/// The bytes of `BODY[section]`; `None` if the message has no such part.
pub fn section(raw: &[u8], m: Option<&Message>, section: &Section) -> Option<Vec<u8>> {
    if section.part.is_empty() {
        let split = m
            .and_then(|m| m.parts.first())
            .map_or(raw.len(), |p| p.offset_body as usize)
            .min(raw.len());
        return Some(match &section.text {
            None => raw.to_vec(),
            Some(SectionText::Header) => raw[..split].to_vec(),
            Some(SectionText::Text) => raw[split..].to_vec(),
            Some(SectionText::HeaderFields { not, fields }) => header_fields(&raw[..split], fields, *not),
            Some(SectionText::Mime) => return None,
        });
    }
    let (msg, id, raw) = find_part(m?, &section.part)?;
    let part = msg.parts.get(id as usize)?;
    let slice = |a: u32, b: u32| raw.get(a as usize..b as usize).map(<[u8]>::to_vec);
    match &section.text {
        None => slice(part.offset_body, part.offset_end),
        Some(SectionText::Mime) => slice(part.offset_header, part.offset_body),
        Some(text) => {
            let PartType::Message(nested) = &part.body else {
                return None;
            };
            let base = nested_base(raw, nested);
            let (header, body) = header_and_text(nested, base);
            Some(match text {
                SectionText::Header => header.to_vec(),
                // Up to the enclosing boundary (or the end): a nested multipart's epilogue is text too.
                SectionText::Text if std::ptr::eq(base, raw) => {
                    let start = nested.parts.first().map_or(0, |p| p.offset_body as usize);
                    raw.get(start..(part.offset_end as usize).max(start))
                        .unwrap_or(body)
                        .to_vec()
                }
                SectionText::Text => body.to_vec(),
                SectionText::HeaderFields { not, fields } => header_fields(header, fields, *not),
                SectionText::Mime => unreachable!("handled above"),
            })
        }
    }
}

/// How the response names a section: `BODY[1.HEADER.FIELDS ("From")]`.
pub fn section_name(section: &Section) -> String {
    let mut s: Vec<String> = section.part.iter().map(u32::to_string).collect();
    match &section.text {
        None => {}
        Some(SectionText::Header) => s.push("HEADER".into()),
        Some(SectionText::Text) => s.push("TEXT".into()),
        Some(SectionText::Mime) => s.push("MIME".into()),
        Some(SectionText::HeaderFields { not, fields }) => {
            let mut list = Vec::new();
            for f in fields {
                string(&mut list, f.as_bytes());
                list.push(b' ');
            }
            list.pop();
            s.push(format!(
                "HEADER.FIELDS{} ({})",
                if *not { ".NOT" } else { "" },
                String::from_utf8_lossy(&list)
            ));
        }
    }
    format!("BODY[{}]", s.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    const SIMPLE: &[u8] = b"Date: Tue, 3 Mar 2026 10:00:00 +0000\r\nFrom: \"Alice X\" <alice@example.test>\r\n\
To: bob@example.test, carol@example.test\r\nSubject: Hi \"there\"\r\nMessage-ID: <1@x>\r\n\r\nline one\r\nline two\r\n";

    const MULTI: &[u8] =
        b"From: a@x\r\nSubject: m\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
preamble\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--B\r\n\
Content-Type: message/rfc822\r\n\r\nFrom: inner@x\r\nSubject: inner\r\n\r\ninner body\r\n\
--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\nAAEC\r\n--B--\r\n";

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_text_of_a_nested_message_runs_to_the_enclosing_boundary() {
        let top = b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\
Content-Type: multipart/alternative; boundary=\"C\"\r\n\r\n--C\r\n\r\nx\r\n--C--\r\nepi1\r\n\r\nepi2\r\n";
        let inner = b"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/alternative; boundary=\"C\"\r\n\r\n\
--C\r\n\r\nx\r\n--C--\r\nepilogue\r\n--B--\r\n";
        for (raw, want) in [
            (&top[..], "--C\r\n\r\nx\r\n--C--\r\nepi1\r\n\r\nepi2\r\n"),
            (&inner[..], "--C\r\n\r\nx\r\n--C--\r\nepilogue"),
        ] {
            let m = MessageParser::default().parse(raw).unwrap();
            let section = Section {
                part: vec![1],
                text: Some(SectionText::Text),
            };
            let got = super::section(raw, Some(&m), &section).unwrap();
            assert_eq!(String::from_utf8_lossy(&got), want);
        }
    }

    #[test]
    fn envelope_groups_and_source_routes() {
        let m = MessageParser::default()
            .parse(
                &b"From: <@route:user@domain>\r\nTo: group:;\r\nCc: group2: (foo) ;\r\n\
Bcc: g3: a@b, \"C D\" <c@d>;, e@f\r\nSubject: x\r\n\r\nbody\r\n"[..],
            )
            .unwrap();
        let route = r#"((NIL "@route" "user" "domain"))"#;
        assert_eq!(
            text(|o| envelope(o, &m)),
            format!(
                r#"(NIL "x" {route} {route} {route} ((NIL NIL "group" NIL)(NIL NIL NIL NIL)) ((NIL NIL "group2" NIL)(NIL NIL NIL NIL)) ((NIL NIL "g3" NIL)(NIL NIL "a" "b")("C D" NIL "c" "d")(NIL NIL NIL NIL)(NIL NIL "e" "f")) NIL NIL)"#
            )
        );
    }

    #[test]
    fn envelope_of_a_simple_message() {
        let m = MessageParser::default().parse(SIMPLE).unwrap();
        assert_eq!(
            text(|o| envelope(o, &m)),
            "(\"Tue, 3 Mar 2026 10:00:00 +0000\" \"Hi \\\"there\\\"\" ((\"Alice X\" NIL \"alice\" \"example.test\")) \
((\"Alice X\" NIL \"alice\" \"example.test\")) ((\"Alice X\" NIL \"alice\" \"example.test\")) \
((NIL NIL \"bob\" \"example.test\")(NIL NIL \"carol\" \"example.test\")) NIL NIL NIL \"<1@x>\")"
        );
        assert_eq!(
            text(|o| body_structure(o, &m, false)),
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 20 2)"
        );
    }

    #[test]
    fn structure_and_sections_of_a_multipart() {
        let m = MessageParser::default().parse(MULTI).unwrap();
        let bs = text(|o| body_structure(o, &m, true));
        assert!(bs.starts_with("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 5 0 NIL NIL NIL NIL)(\"MESSAGE\" \"RFC822\""), "{bs}");
        assert!(bs.contains("\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 4 NIL (\"ATTACHMENT\" (\"FILENAME\" \"a.bin\")) NIL NIL)"), "{bs}");
        assert!(bs.ends_with(" \"MIXED\" (\"BOUNDARY\" \"B\") NIL NIL NIL)"), "{bs}");
        let sec = |s: &str| {
            let Ok(crate::imap::command::Tagged {
                command: crate::imap::command::Command::Fetch { attrs, .. },
                ..
            }) = crate::imap::command::parse(format!("t FETCH 1 BODY[{s}]").as_bytes())
            else {
                panic!("{s}")
            };
            let crate::imap::command::FetchAttr::Section { section: sc, .. } = &attrs[0] else {
                panic!()
            };
            section(MULTI, Some(&m), sc).map(|b| String::from_utf8(b).unwrap())
        };
        assert_eq!(sec("1").as_deref(), Some("hello"));
        assert_eq!(
            sec("1.MIME").as_deref(),
            Some("Content-Type: text/plain; charset=utf-8\r\n\r\n")
        );
        assert_eq!(
            sec("2.HEADER").as_deref(),
            Some("From: inner@x\r\nSubject: inner\r\n\r\n")
        );
        assert_eq!(
            sec("2.TEXT").as_deref(),
            Some("inner body"),
            "the CRLF before a boundary belongs to it"
        );
        assert_eq!(sec("2.1").as_deref(), Some("inner body"));
        assert_eq!(sec("3").as_deref(), Some("AAEC"));
        assert_eq!(sec("4"), None);
        assert_eq!(sec("1.1"), None);
        assert_eq!(
            sec("HEADER.FIELDS (subject FROM)").as_deref(),
            Some("From: a@x\r\nSubject: m\r\n\r\n")
        );
        assert_eq!(
            sec("HEADER.FIELDS.NOT (Content-Type MIME-Version)").as_deref(),
            Some("From: a@x\r\nSubject: m\r\n\r\n")
        );
        assert!(sec("TEXT").unwrap().starts_with("preamble\r\n--B"));
        assert_eq!(sec("").unwrap().as_bytes(), MULTI);
    }

    #[test]
    fn simple_message_part_one_is_its_body() {
        let m = MessageParser::default().parse(SIMPLE).unwrap();
        let s = Section {
            part: vec![1],
            text: None,
        };
        assert_eq!(section(SIMPLE, Some(&m), &s).unwrap(), b"line one\r\nline two\r\n");
        assert_eq!(
            section_name(&Section {
                part: vec![1, 2],
                text: Some(SectionText::HeaderFields {
                    not: true,
                    fields: vec!["To".into()]
                })
            }),
            "BODY[1.2.HEADER.FIELDS.NOT (\"To\")]"
        );
    }

    #[test]
    fn strings() {
        assert_eq!(text(|o| string(o, b"a\"b")), "\"a\\\"b\"");
        assert_eq!(text(|o| string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(text(|o| string(o, "ü".as_bytes())), "{2}\r\nü");
    }

    #[test]
    fn deep_nesting_is_summarized() {
        let mut raw = String::new();
        for i in 0..5000 {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
            ));
        }
        raw.push_str("\r\nleaf\r\n");
        let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let bs = text(|o| body_structure(o, &m, true));
        assert_eq!(bs.matches('(').count(), bs.matches(')').count());
        assert!(bs.contains("\"OCTET-STREAM\""), "{bs}");
    }
}
