//! spamd.conf(5): getcap(3) records naming the lists to fetch, in the order
//! of the `all` record. Parsing is pure: text in, [`Conf`] out.
//!
//! A record is `name|alias:cap:cap:...`; a backslash at the end of a line
//! continues the record on the next one; lines starting with `#` are comments;
//! `\:` (and, as spamd-setup allows, a colon inside double quotes) does not
//! end a field. String values take getcap's escapes (`\n`, `\t`, `\072`, `^X`...).

use std::path::PathBuf;

/// Whether a list's addresses are tarpitted or exempted from the black list before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Black,
    White,
}

/// How a list is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Http,
    Https,
    File,
    Exec,
}

/// The reply text of a black list: given inline or read from a file at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    File(PathBuf),
}

/// One list of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSpec {
    pub name: String,
    pub kind: Kind,
    /// Always present for black lists.
    pub message: Option<Message>,
    pub method: Method,
    /// `host/path` for http(s) (as in spamd.conf), a path for file, a command line for exec.
    pub file: String,
}

/// The lists to fetch, in order: each white list applies to the nearest black list before it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conf {
    pub lists: Vec<ListSpec>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfError {
    #[error("no \"all\" record")]
    NoAll,
    #[error("\"all\" names {0}, which has no record")]
    UnknownList(String),
    #[error("list {0}: must have \"black\" or \"white\"")]
    NoKind(String),
    #[error("black list {0}: no msg")]
    NoMessage(String),
    #[error("list {0}: no file")]
    NoFile(String),
    #[error("list {name}: unknown method {method}")]
    BadMethod { name: String, method: String },
    #[error("list name {0:?}: only letters, digits, '.', '-' and '_' are allowed")]
    BadName(String),
    #[error("list {0}: a white list must follow a black list")]
    WhiteFirst(String),
    #[error("line {0}: unterminated quote")]
    Unterminated(usize),
}

impl Conf {
    /// Check what both configuration formats must satisfy.
    pub fn validate(&self) -> Result<(), ConfError> {
        if let Some(first) = self.lists.first()
            && first.kind == Kind::White
        {
            return Err(ConfError::WhiteFirst(first.name.clone()));
        }
        for l in &self.lists {
            check_name(&l.name)?;
            if l.kind == Kind::Black && l.message.is_none() {
                return Err(ConfError::NoMessage(l.name.clone()));
            }
        }
        Ok(())
    }
}

/// List names become cache file names and greyd list names: keep them plain.
fn check_name(name: &str) -> Result<(), ConfError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfError::BadName(name.to_string()))
    }
}

impl Method {
    fn parse(name: &str, method: &str) -> Result<Method, ConfError> {
        Ok(match method {
            "http" => Method::Http,
            "https" => Method::Https,
            "file" => Method::File,
            "exec" => Method::Exec,
            _ => {
                return Err(ConfError::BadMethod {
                    name: name.to_string(),
                    method: method.to_string(),
                });
            }
        })
    }
}

/// One getcap record: its names and raw (still escaped) fields.
struct Record {
    names: Vec<String>,
    fields: Vec<String>,
}

impl Record {
    fn has(&self, cap: &str) -> bool {
        self.fields.iter().any(|f| f == cap)
    }

    /// The first `cap=value`, unescaped; getcap takes the first occurrence.
    fn string(&self, cap: &str) -> Option<String> {
        self.fields.iter().find_map(|f| {
            f.strip_prefix(cap)
                .and_then(|rest| rest.strip_prefix('='))
                .map(unescape)
        })
    }
}

/// Parse spamd.conf text.
pub fn parse(text: &str) -> Result<Conf, ConfError> {
    let records = records(text)?;
    let find = |name: &str| records.iter().find(|r| r.names.iter().any(|n| n == name));
    let all = find("all").ok_or(ConfError::NoAll)?;
    // spamd-setup splits the names in `all` on colons, spaces and tabs.
    let order: Vec<&str> = all
        .fields
        .iter()
        .flat_map(|f| f.split([' ', '\t']))
        .filter(|n| !n.is_empty())
        .collect();
    let mut conf = Conf::default();
    for name in order {
        let rec = find(name).ok_or_else(|| ConfError::UnknownList(name.to_string()))?;
        let kind = if rec.has("black") {
            Kind::Black
        } else if rec.has("white") {
            Kind::White
        } else {
            return Err(ConfError::NoKind(name.to_string()));
        };
        let message = rec
            .string("msg")
            .map(|m| match m.strip_prefix('"').and_then(|m| m.strip_suffix('"')) {
                Some(text) => Message::Text(text.to_string()),
                None => Message::File(PathBuf::from(m)),
            });
        let method = match rec.string("method") {
            Some(m) => Method::parse(name, &m)?,
            None => Method::File,
        };
        let file = rec.string("file").ok_or_else(|| ConfError::NoFile(name.to_string()))?;
        conf.lists.push(ListSpec {
            name: name.to_string(),
            kind,
            message,
            method,
            file,
        });
    }
    conf.validate()?;
    Ok(conf)
}

/// Split the text into records: join continuation lines, drop comments and
/// blank lines, cut fields at colons that are neither escaped nor quoted.
fn records(text: &str) -> Result<Vec<Record>, ConfError> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut start_line = 0;
    for (i, line) in text.lines().enumerate() {
        if logical.is_empty() {
            start_line = i + 1;
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
        }
        // A continuation line's leading blanks are indentation, not content.
        let piece = if logical.is_empty() { line } else { line.trim_start() };
        // An odd run of trailing backslashes continues the line; `\\` is a backslash.
        let trailing = piece.bytes().rev().take_while(|&b| b == b'\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&piece[..piece.len() - 1]);
        } else {
            logical.push_str(piece);
            out.push(record(&logical, start_line)?);
            logical.clear();
        }
    }
    if !logical.is_empty() {
        out.push(record(&logical, start_line)?);
    }
    Ok(out)
}

fn record(line: &str, line_no: usize) -> Result<Record, ConfError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                field.push(c);
                if let Some(next) = chars.next() {
                    field.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                field.push(c);
            }
            ':' if quoted => field.push_str("\\072"),
            ':' => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(ConfError::Unterminated(line_no));
    }
    fields.push(field);
    let mut fields = fields.into_iter();
    let names = fields
        .next()
        .unwrap_or_default()
        .split('|')
        .map(|n| n.trim().to_string())
        .collect();
    Ok(Record {
        names,
        fields: fields.map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect(),
    })
}

/// getcap(3) string escapes: `\E` `\n` `\r` `\t` `\b` `\f` `\\` `\:` `\ddd`, `^X`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '^' => match chars.next() {
                Some(x) => out.push(char::from(x as u8 & 0x1f)),
                None => out.push('^'),
            },
            '\\' => match chars.next() {
                Some('E' | 'e') => out.push('\x1b'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('b') => out.push('\x08'),
                Some('f') => out.push('\x0c'),
                Some('c' | 'C') => out.push(':'),
                Some(d @ '0'..='7') => {
                    let mut n = d.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(v) => {
                                n = n * 8 + v;
                                chars.next();
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(n & 0xff).unwrap_or('?'));
                }
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stock OpenBSD spamd.conf shape: continuation lines, quoted colons, a message file.
    const SAMPLE: &str = r#"# spamd.conf
all:\
	:uatraps:override:local:

# Trapped addresses
uatraps:\
	:black:\
	:msg="Your address %A has sent mail to a spamtrap\n\
	 within the last 24 hours":\
	:method=https:\
	:file=www.openbsd.org/spamd/traplist.gz:

override|white override:\
	:white:\
	:method=file:\
	:file=/etc/mail/override.txt:

local:black:msg=/etc/mail/local.msg:method=exec:file=/usr/local/bin/list -v:
"#;

    #[test]
    fn stock_shape() {
        let conf = parse(SAMPLE).unwrap();
        let names: Vec<&str> = conf.lists.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["uatraps", "override", "local"]);
        let u = &conf.lists[0];
        assert_eq!(u.kind, Kind::Black);
        assert_eq!(u.method, Method::Https);
        assert_eq!(u.file, "www.openbsd.org/spamd/traplist.gz");
        assert_eq!(
            u.message,
            Some(Message::Text(
                "Your address %A has sent mail to a spamtrap\nwithin the last 24 hours".into()
            ))
        );
        let o = &conf.lists[1];
        assert_eq!((o.kind, o.method, o.message.clone()), (Kind::White, Method::File, None));
        let l = &conf.lists[2];
        assert_eq!(l.message, Some(Message::File("/etc/mail/local.msg".into())));
        assert_eq!((l.method, l.file.as_str()), (Method::Exec, "/usr/local/bin/list -v"));
    }

    #[test]
    fn colons_quoted_or_escaped_stay_in_values() {
        let conf = parse("all:a:\na:black:msg=\"port 25: go away\":method=http:file=h\\:8080/x:\n").unwrap();
        assert_eq!(conf.lists[0].message, Some(Message::Text("port 25: go away".into())));
        assert_eq!(conf.lists[0].file, "h:8080/x");
    }

    #[test]
    fn getcap_escapes() {
        assert_eq!(unescape(r"a\tb\072c^Gd\\e\:f"), "a\tb:c\x07d\\e:f");
    }

    #[test]
    fn method_defaults_to_file() {
        let conf = parse("all:a\na:black:msg=\"m\":file=/x:\n").unwrap();
        assert_eq!(conf.lists[0].method, Method::File);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("a:black:msg=\"m\":file=x:\n", ConfError::NoAll),
            ("all:b:\n", ConfError::UnknownList("b".into())),
            ("all:b:\nb:file=x:\n", ConfError::NoKind("b".into())),
            ("all:b:\nb:black:file=x:\n", ConfError::NoMessage("b".into())),
            ("all:b:\nb:black:msg=\"m\":\n", ConfError::NoFile("b".into())),
            (
                "all:b:\nb:black:msg=\"m\":method=ftp:file=x:\n",
                ConfError::BadMethod {
                    name: "b".into(),
                    method: "ftp".into(),
                },
            ),
            ("all:w:\nw:white:file=x:\n", ConfError::WhiteFirst("w".into())),
            (
                "all:a/b:\na/b:black:msg=\"m\":file=x:\n",
                ConfError::BadName("a/b".into()),
            ),
            ("all:b:\nb:black:msg=\"m:file=x:\n", ConfError::Unterminated(2)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Err(want), "{text}");
        }
    }
}
