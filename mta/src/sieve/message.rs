//! What tests read from the message: unfolded header fields by name and
//! the addresses in address headers, parsed leniently (RFC 5322 mailbox
//! lists with display names, comments, groups).

/// The header section of a message, fields in order.
#[derive(Debug, Default)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// Parse the header section of `content` (CRLF or LF lines).
    pub fn parse(content: &[u8]) -> Headers {
        let text = String::from_utf8_lossy(content);
        let mut fields: Vec<(String, String)> = Vec::new();
        for raw in text.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = fields.last_mut() {
                    v.push_str(line);
                }
                continue;
            }
            if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim_end().to_string(), value.trim_start().to_string()));
            }
        }
        for (_, v) in &mut fields {
            let trimmed = v.trim_end().len();
            v.truncate(trimmed);
        }
        Headers { fields }
    }

    /// The values of every field called `name` (case-insensitive), in order.
    pub fn get(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
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
    fn address_lists() {
        assert_eq!(
            addresses("\"Doe, J\" <j@x.example>, b@y.example (Bob), team: c@z.example;"),
            vec!["j@x.example", "b@y.example", "c@z.example"]
        );
        assert_eq!(addresses("<>"), Vec::<String>::new());
        assert_eq!(addresses("plain@x"), vec!["plain@x"]);
    }
}
