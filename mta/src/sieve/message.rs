//! What tests read from the message: unfolded header fields by name
//! (raw, or with RFC 2047 encoded words decoded), the addresses in
//! address headers, parsed leniently (RFC 5322 mailbox lists with display
//! names, comments, groups), the body as `body` transforms it, and the
//! scores filters wrote for `spamtest`/`virustest`.

use super::ast::BodyTransform;

/// The header section of a message, fields in order, each with where it
/// was in the message so an edited header keeps the others as written.
#[derive(Debug, Default)]
pub struct Headers {
    fields: Vec<Field>,
    /// Bytes before the first field that are not one (kept as they are).
    prefix: usize,
    /// Where the header ends: the empty line, or the end of the message.
    end: usize,
}

#[derive(Debug)]
struct Field {
    name: String,
    /// Unfolded, trimmed.
    value: String,
    /// Its lines in the message; `None` for a field `addheader` added.
    span: Option<(usize, usize)>,
}

impl Headers {
    /// Parse the header section of `content` (CRLF or LF lines).
    pub fn parse(content: &[u8]) -> Headers {
        let mut h = Headers::default();
        let mut pos = 0;
        while pos < content.len() {
            let eol = content[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(content.len(), |i| pos + i + 1);
            let raw = &content[pos..eol];
            let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                break;
            }
            let line = String::from_utf8_lossy(raw);
            let continues = line.starts_with([' ', '\t']);
            match (line.split_once(':'), h.fields.last_mut()) {
                (_, Some(last)) if continues => {
                    last.value.push_str(&line);
                    last.span = last.span.map(|(start, _)| (start, eol));
                }
                (Some((name, value)), _) if !continues => h.fields.push(Field {
                    name: name.trim_end().to_string(),
                    value: value.trim_start().to_string(),
                    span: Some((pos, eol)),
                }),
                // A line that is no field stays with what comes before it.
                (_, Some(last)) => last.span = last.span.map(|(start, _)| (start, eol)),
                (_, None) => h.prefix = eol,
            }
            pos = eol;
        }
        h.end = pos;
        for f in &mut h.fields {
            let trimmed = f.value.trim_end().len();
            f.value.truncate(trimmed);
        }
        h
    }

    /// The values of every field called `name` (case-insensitive), in order.
    pub fn get(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.clone())
            .collect()
    }

    /// editheader's `addheader`: first, or last with `last`.
    pub fn add(&mut self, name: &str, value: &str, last: bool) {
        let field = Field {
            name: name.to_string(),
            value: value.to_string(),
            span: None,
        };
        if last {
            self.fields.push(field);
        } else {
            self.fields.insert(0, field);
        }
    }

    /// editheader's `deleteheader`: of the fields called `name`, remove
    /// those `doomed` picks given their position among them and their
    /// decoded values. Returns how many went.
    pub fn delete(&mut self, name: &str, doomed: impl FnOnce(&[String]) -> Vec<bool>) -> usize {
        let values = self.decoded(name);
        let verdicts = doomed(&values);
        let mut nth = 0;
        let before = self.fields.len();
        self.fields.retain(|f| {
            if !f.name.eq_ignore_ascii_case(name) {
                return true;
            }
            nth += 1;
            !verdicts.get(nth - 1).copied().unwrap_or(false)
        });
        before - self.fields.len()
    }

    /// `content` (the message these headers were parsed from) with this
    /// header instead of its own; fields that were not added come out
    /// byte for byte as they were.
    pub fn render(&self, content: &[u8]) -> Vec<u8> {
        let mut out = content[..self.prefix].to_vec();
        for f in &self.fields {
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
            match f.span {
                Some((start, end)) => out.extend_from_slice(&content[start..end]),
                None => out.extend_from_slice(format!("{}: {}\r\n", f.name, f.value).as_bytes()),
            }
        }
        out.extend_from_slice(&content[self.end..]);
        out
    }

    /// [`Headers::get`] with encoded words decoded, as `header` compares
    /// them (RFC 5228 section 2.7.2).
    pub fn decoded(&self, name: &str) -> Vec<String> {
        self.get(name).iter().map(|v| decode_words(v)).collect()
    }
}

/// RFC 5322 field-name: printable ASCII but `:`.
pub fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// A header value on one line: line breaks in it become spaces.
pub fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A header value with its RFC 2047 encoded words (`=?utf-8?q?...?=`)
/// decoded; a value without any, or one the decoder makes nothing of, as it is.
pub fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let line = format!("{value}\n");
    match mail_parser::parsers::MessageStream::new(line.as_bytes()).parse_unstructured() {
        mail_parser::HeaderValue::Text(t) => t.into_owned(),
        _ => value.to_string(),
    }
}

/// The body as RFC 5173 `body` sees it: `:raw` the octets after the
/// header, `:text` the decoded text parts, `:content` the decoded leaf
/// parts whose type is listed (`"text"` a whole type, `""` any).
pub fn body(content: &[u8], transform: &BodyTransform) -> Vec<String> {
    use mail_parser::{MimeHeaders, PartType};
    if let BodyTransform::Raw = transform {
        let start = header_end(content);
        return vec![String::from_utf8_lossy(&content[start..]).into_owned()];
    }
    let Some(message) = mail_parser::MessageParser::default().parse(content) else {
        return Vec::new();
    };
    let wanted = |part: &mail_parser::MessagePart<'_>| {
        let (ctype, subtype) = part
            .content_type()
            .map_or(("text".to_string(), "plain".to_string()), |t| {
                (
                    t.ctype().to_ascii_lowercase(),
                    t.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            });
        match transform {
            BodyTransform::Content(types) => types.iter().any(|t| {
                let t = t.to_ascii_lowercase();
                t.is_empty() || t == ctype || t == format!("{ctype}/{subtype}")
            }),
            _ => ctype == "text",
        }
    };
    message
        .parts
        .iter()
        .filter(|p| wanted(p))
        .filter_map(|p| match &p.body {
            PartType::Text(t) | PartType::Html(t) => Some(t.to_string()),
            PartType::Binary(b) | PartType::InlineBinary(b) => Some(String::from_utf8_lossy(b).into_owned()),
            PartType::Message(_) | PartType::Multipart(_) => None,
        })
        .collect()
}

/// Where the body starts: after the first empty line, or at the end.
fn header_end(content: &[u8]) -> usize {
    if content.starts_with(b"\r\n") {
        return 2;
    }
    if content.starts_with(b"\n") {
        return 1;
    }
    let crlf = content.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = content.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    crlf.into_iter().chain(lf).min().unwrap_or(content.len())
}

/// Which headers hold the scores other filters wrote, and the spam score
/// that means certainly spam.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreHeaders {
    /// A number first (SpamAssassin's `X-Spam-Score: 7.2`).
    pub spam: String,
    pub spam_max: f64,
    /// A number 1 to 5 as RFC 5235 counts, or `clean`/`infected`.
    pub virus: String,
}

impl Default for ScoreHeaders {
    fn default() -> Self {
        ScoreHeaders {
            spam: "X-Spam-Score".into(),
            spam_max: 10.0,
            virus: "X-Virus-Score".into(),
        }
    }
}

/// RFC 5235 `spamtest`: "0" when no filter scored the message, else 1
/// (not spam) to 10 (certainly spam), or with `percent` 0 to 100.
pub fn spam_score(value: Option<&str>, max: f64, percent: bool) -> String {
    let Some(score) = value.and_then(leading_number) else {
        return "0".into();
    };
    let share = if max > 0.0 { (score / max).clamp(0.0, 1.0) } else { 1.0 };
    if percent {
        format!("{:.0}", share * 100.0)
    } else {
        format!("{:.0}", 1.0 + share * 9.0)
    }
}

/// RFC 5235 `virustest`: "0" untested, 1 clean to 5 certainly infected.
pub fn virus_score(value: Option<&str>) -> String {
    let Some(v) = value.map(|v| v.trim().to_ascii_lowercase()) else {
        return "0".into();
    };
    let level = match leading_number(&v) {
        Some(n) => n.clamp(0.0, 5.0) as u8,
        None if v.starts_with("clean") || v.starts_with("no") => 1,
        None if v.starts_with("infected") || v.starts_with("yes") => 5,
        None => 0,
    };
    level.to_string()
}

fn leading_number(v: &str) -> Option<f64> {
    let v = v.trim_start();
    let end = v
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && c == '-')))
        .map_or(v.len(), |(i, _)| i);
    v[..end].parse().ok().filter(|n: &f64| n.is_finite())
}

/// The addr-specs in a header value: `"A, B" <a@x>, b@y (c), g: c@z;`.
pub fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut angle: Option<String> = None;
    let mut in_angle = false;
    let mut quoted = false;
    let mut comment = 0usize;
    let mut chars = value.chars();
    let mut flush = |cur: &mut String, angle: &mut Option<String>| {
        let a = angle.take().unwrap_or_else(|| cur.clone()).trim().to_string();
        if !a.is_empty() {
            out.push(a);
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || comment > 0 => {
                chars.next();
            }
            '"' if comment == 0 && !in_angle => quoted = !quoted,
            _ if quoted => cur.push(c),
            '(' => comment += 1,
            ')' if comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            '<' => {
                in_angle = true;
                angle = Some(String::new());
            }
            '>' if in_angle => in_angle = false,
            _ if in_angle => angle.get_or_insert_with(String::new).push(c),
            // A group's display name ends at ':'; its list at ';'.
            ':' => cur.clear(),
            ',' | ';' => flush(&mut cur, &mut angle),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut angle);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold_and_repeat() {
        let h = Headers::parse(b"Subject: hello\r\n  world\r\nX-A: 1\r\nx-a: 2 \r\n\r\nX-A: body\r\n");
        assert_eq!(h.get("subject"), vec!["hello  world"]);
        assert_eq!(h.get("X-A"), vec!["1", "2"]);
        assert!(h.get("missing").is_empty());
    }

    #[test]
    fn encoded_words_decode() {
        let h = Headers::parse(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?ISO-8859-1?B?S/Zsbg==?=\r\n\r\n");
        assert_eq!(h.decoded("subject"), vec!["Grüße aus Köln"]);
        assert_eq!(decode_words("plain =? text"), "plain =? text");
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            addresses("\"Doe, J\" <j@x.example>, b@y.example (Bob), team: c@z.example;"),
            vec!["j@x.example", "b@y.example", "c@z.example"]
        );
        assert_eq!(addresses("<>"), Vec::<String>::new());
        assert_eq!(addresses("plain@x"), vec!["plain@x"]);
    }

    proptest::proptest! {
        /// Any bytes: headers parse, an unedited header renders the
        /// message back byte for byte, and dates and bodies never panic.
        #[test]
        fn unedited_headers_render_the_same_bytes(content in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut h = Headers::parse(&content);
            proptest::prop_assert_eq!(h.render(&content), content.clone());
            for v in h.get("date") {
                let _ = crate::sieve::date::Moment::parse(&v);
            }
            let _ = body(&content, &BodyTransform::Text);
            let _ = body(&content, &BodyTransform::Raw);
            h.add("X-A", "b", true);
            let edited = h.render(&content);
            proptest::prop_assert_eq!(Headers::parse(&edited).get("x-a").pop(), Some("b".to_string()));
        }

        #[test]
        fn any_date_text_parses_or_not(text in "\\PC{0,60}") {
            if let Some(m) = crate::sieve::date::Moment::parse(&text) {
                for part in [super::super::ast::DatePart::Std11, super::super::ast::DatePart::Julian] {
                    proptest::prop_assert!(!m.part(part).is_empty());
                }
            }
        }
    }
}
