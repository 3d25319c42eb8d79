//! What a ManageSieve server says (RFC 5804 §4): `OK`, `NO` and `BYE` with
//! their response codes and text, and the strings around them (quoted when
//! they can be, literals `{N}` otherwise). The only place that writes the
//! response syntax.

use crate::imap::message::quoted_or_literal;

/// Longest quoted string (RFC 5804 §4 `quoted`); longer text goes as a literal.
const MAX_QUOTED: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bye,
}

/// Response codes (RFC 5804 §1.3) the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// AUTHENTICATE before STARTTLS.
    EncryptNeeded,
    /// The script is larger than the server takes.
    QuotaMaxSize,
    /// Too many failures; try again later.
    TryLater,
    /// The active script cannot be deleted.
    Active,
    /// No script of that name.
    Nonexistent,
    /// A script of the new name exists already.
    AlreadyExists,
    /// NOOP's tag, echoed.
    Tag(Vec<u8>),
}

/// A status response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub code: Option<Code>,
    pub text: String,
}

impl Response {
    pub fn ok(text: impl Into<String>) -> Response {
        Response::new(Status::Ok, None, text)
    }

    pub fn no(text: impl Into<String>) -> Response {
        Response::new(Status::No, None, text)
    }

    pub fn bye(text: impl Into<String>) -> Response {
        Response::new(Status::Bye, None, text)
    }

    pub fn new(status: Status, code: Option<Code>, text: impl Into<String>) -> Response {
        Response {
            status,
            code,
            text: text.into(),
        }
    }

    pub fn with(mut self, code: Code) -> Response {
        self.code = Some(code);
        self
    }

    /// Append the response line, CRLF included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.status {
            Status::Ok => b"OK",
            Status::No => b"NO",
            Status::Bye => b"BYE",
        });
        if let Some(code) = &self.code {
            out.extend_from_slice(b" (");
            match code {
                Code::EncryptNeeded => out.extend_from_slice(b"ENCRYPT-NEEDED"),
                Code::QuotaMaxSize => out.extend_from_slice(b"QUOTA/MAXSIZE"),
                Code::TryLater => out.extend_from_slice(b"TRYLATER"),
                Code::Active => out.extend_from_slice(b"ACTIVE"),
                Code::Nonexistent => out.extend_from_slice(b"NONEXISTENT"),
                Code::AlreadyExists => out.extend_from_slice(b"ALREADYEXISTS"),
                Code::Tag(tag) => {
                    out.extend_from_slice(b"TAG ");
                    string(tag, out);
                }
            }
            out.push(b')');
        }
        if !self.text.is_empty() {
            out.push(b' ');
            string(self.text.as_bytes(), out);
        }
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Append `s` as a quoted string, or as a literal when quoting cannot
/// carry it (RFC 5804 quoted strings are UTF-8 without CR, LF or NUL).
pub fn string(s: &[u8], out: &mut Vec<u8>) {
    let quotable = s.len() <= MAX_QUOTED && !s.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
    quoted_or_literal(out, s, quotable);
}

/// Append `s` as a literal `{N}` CRLF and the octets.
pub fn literal(s: &[u8], out: &mut Vec<u8>) {
    quoted_or_literal(out, s, false);
}

/// Append one capability line: `"NAME"` or `"NAME" "value"`.
pub fn capability(name: &str, value: Option<&str>, out: &mut Vec<u8>) {
    string(name.as_bytes(), out);
    if let Some(v) = value {
        out.push(b' ');
        string(v.as_bytes(), out);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Response) -> String {
        String::from_utf8(r.to_bytes()).unwrap()
    }

    #[test]
    fn responses_with_codes_and_strings() {
        assert_eq!(text(Response::ok("")), "OK\r\n");
        assert_eq!(
            text(Response::no("no \"x\" here").with(Code::Nonexistent)),
            "NO (NONEXISTENT) \"no \\\"x\\\" here\"\r\n"
        );
        assert_eq!(
            text(Response::ok("Done").with(Code::Tag(b"t1".to_vec()))),
            "OK (TAG \"t1\") \"Done\"\r\n"
        );
        assert_eq!(
            text(Response::bye("two\nlines").with(Code::QuotaMaxSize)),
            "BYE (QUOTA/MAXSIZE) {9}\r\ntwo\nlines\r\n"
        );
        let mut out = Vec::new();
        capability("SIEVE", Some("fileinto"), &mut out);
        capability("STARTTLS", None, &mut out);
        assert_eq!(out, b"\"SIEVE\" \"fileinto\"\r\n\"STARTTLS\"\r\n");
        let mut long = Vec::new();
        string(&[b'a'; 1025], &mut long);
        assert!(long.starts_with(b"{1025}\r\naaa"));
    }
}
