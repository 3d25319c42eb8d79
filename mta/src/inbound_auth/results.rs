//! The `Authentication-Results:` header (RFC 8601) on the receiving side:
//! reading the authserv-id of incoming ones (pure, bytes in), removing
//! those that claim to be ours, and recognising the junk mark our own
//! header carries when the DMARC policy filed the message as junk.

use std::borrow::Cow;

/// Header field name, compared case-insensitively.
pub const NAME: &str = "Authentication-Results";

/// Property our header adds to the DMARC result when the message goes into
/// Junk. Only trusted in the first header of queued content, which only we write.
pub const JUNK_MARK: &str = "policy.action=junk";

/// One header field: where it lies in the message and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field<'a> {
    start: usize,
    end: usize,
    name: &'a [u8],
    value: &'a [u8],
}

/// The header fields of `message`, up to the empty line (or the end). A
/// line that is neither a field nor a continuation ends the header too, as
/// it would be the start of a body without separator.
fn fields(message: &[u8]) -> impl Iterator<Item = Field<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let rest = message.get(pos..)?;
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        let colon = rest.iter().position(|&b| b == b':' || b == b'\n')?;
        if rest[colon] != b':' || colon == 0 || rest[0] == b' ' || rest[0] == b'\t' {
            return None;
        }
        // The field runs to the first line end not followed by a continuation (SP or HT).
        let mut end = colon;
        loop {
            match rest[end..].iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    end += nl + 1;
                    if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                        break;
                    }
                }
                None => {
                    end = rest.len();
                    break;
                }
            }
        }
        let field = Field {
            start: pos,
            end: pos + end,
            name: rest[..colon].trim_ascii_end(),
            value: &rest[colon + 1..end],
        };
        pos += end;
        Some(field)
    })
}

/// Skip folding white space and (nested) comments with quoted pairs.
fn skip_cfws(v: &[u8]) -> &[u8] {
    let mut i = 0;
    let mut depth = 0usize;
    while i < v.len() {
        match v[i] {
            b'\\' if depth > 0 => i += 1,
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => break,
        }
        i += 1;
    }
    v.get(i..).unwrap_or_default()
}

/// The authserv-id an `Authentication-Results:` value starts with: a token
/// or a quoted string after optional CFWS. `None` when there is none.
pub fn authserv_id(value: &[u8]) -> Option<Cow<'_, str>> {
    let v = skip_cfws(value);
    if let Some(quoted) = v.strip_prefix(b"\"") {
        let mut id = Vec::new();
        let mut bytes = quoted.iter();
        while let Some(&b) = bytes.next() {
            match b {
                b'"' => return Some(Cow::Owned(String::from_utf8_lossy(&id).into_owned())),
                b'\\' => id.push(*bytes.next()?),
                b => id.push(b),
            }
        }
        return None;
    }
    let len = v
        .iter()
        .position(|&b| b <= b' ' || b == 0x7f || b";()\"".contains(&b))
        .unwrap_or(v.len());
    (len > 0).then(|| String::from_utf8_lossy(&v[..len]))
}

fn is_results(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(NAME.as_bytes())
}

/// `message` without the `Authentication-Results:` header fields whose
/// authserv-id is `ours` (RFC 8601 §5: they were forged, or are a stale
/// copy of our own from a loop). Borrowed when there is nothing to remove.
pub fn remove_ours<'a>(message: &'a [u8], ours: &str) -> Cow<'a, [u8]> {
    let forged: Vec<(usize, usize)> = fields(message)
        .filter(|f| is_results(f.name) && authserv_id(f.value).is_some_and(|id| id.eq_ignore_ascii_case(ours)))
        .map(|f| (f.start, f.end))
        .collect();
    if forged.is_empty() {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    for (start, end) in forged {
        out.extend_from_slice(&message[pos..start]);
        pos = end;
    }
    out.extend_from_slice(&message[pos..]);
    Cow::Owned(out)
}

/// Whether queued content is marked for the Junk folder: its first header
/// is our `Authentication-Results:` carrying [`JUNK_MARK`].
pub fn marked_junk(content: &[u8]) -> bool {
    fields(content).next().is_some_and(|f| {
        is_results(f.name)
            && f.value
                .split(|&b| b == b' ' || b == b'\t' || b == b'\r' || b == b'\n' || b == b';')
                .any(|t| t == JUNK_MARK.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_authserv_id() {
        assert_eq!(authserv_id(b" mx.test; spf=pass").as_deref(), Some("mx.test"));
        assert_eq!(
            authserv_id(b" (comment (nested)) mx.test 1; none").as_deref(),
            Some("mx.test")
        );
        assert_eq!(authserv_id(b" \"mx\\\".test\"; none").as_deref(), Some("mx\".test"));
        assert_eq!(
            authserv_id(b"\r\n\tmx.test;\r\n\tdkim=pass").as_deref(),
            Some("mx.test")
        );
        assert_eq!(authserv_id(b" ; none"), None);
        assert_eq!(authserv_id(b" \"unterminated"), None);
        assert_eq!(authserv_id(b" (open comment"), None);
    }

    #[test]
    fn removes_only_ours_in_the_header() {
        let msg = b"Received: x\r\nAuthentication-Results: MX.test;\r\n\tdkim=pass\r\n\
authentication-results: other.example; spf=pass\r\nSubject: s\r\n\
Authentication-Results: (c) mx.test; none\r\n\r\nAuthentication-Results: mx.test; body\r\n";
        let out = remove_ours(msg, "mx.test");
        assert_eq!(
            out.as_ref(),
            b"Received: x\r\nauthentication-results: other.example; spf=pass\r\nSubject: s\r\n\
\r\nAuthentication-Results: mx.test; body\r\n"
        );
        assert!(matches!(
            remove_ours(b"Subject: s\r\n\r\nb", "mx.test"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_header_without_separator_or_final_newline() {
        assert_eq!(
            remove_ours(b"Authentication-Results: mx.test; none", "mx.test").as_ref(),
            b""
        );
        let odd = b"Subject: s\r\nnot a header line\r\nAuthentication-Results: mx.test; none\r\n";
        assert_eq!(remove_ours(odd, "mx.test").as_ref(), odd);
    }

    #[test]
    fn junk_mark_only_in_the_first_header() {
        let ours = format!(
            "Authentication-Results: mx.test;\r\n\tdmarc=fail header.from=q.test {JUNK_MARK}\r\nReceived: x\r\n\r\n"
        );
        assert!(marked_junk(ours.as_bytes()));
        let later = format!("Received: x\r\nAuthentication-Results: mx.test; dmarc=fail {JUNK_MARK}\r\n\r\n");
        assert!(!marked_junk(later.as_bytes()));
        assert!(!marked_junk(
            b"Authentication-Results: mx.test; dmarc=fail policy.dmarc=quarantine\r\n\r\n"
        ));
    }

    proptest! {
        #[test]
        fn never_panics_and_never_grows(msg in proptest::collection::vec(any::<u8>(), 0..512), id in "[a-z.]{0,12}") {
            let out = remove_ours(&msg, &id);
            prop_assert!(out.len() <= msg.len());
            let _ = marked_junk(&msg);
        }

        #[test]
        fn removal_keeps_every_other_field(
            names in proptest::collection::vec(prop_oneof![Just("Subject"), Just("To"), Just("Authentication-Results")], 0..8),
            ids in proptest::collection::vec(prop_oneof![Just("mx.test"), Just("other.example"), Just("(c) mx.test")], 8),
        ) {
            let mut msg = String::new();
            let mut kept = String::new();
            for (name, id) in names.iter().zip(&ids) {
                let field = format!("{name}: {id}; x\r\n\tfolded\r\n");
                if !(*name == "Authentication-Results" && id.ends_with("mx.test")) {
                    kept.push_str(&field);
                }
                msg.push_str(&field);
            }
            msg.push_str("\r\nbody\r\n");
            kept.push_str("\r\nbody\r\n");
            let out = remove_ours(msg.as_bytes(), "mx.test");
            prop_assert_eq!(out.as_ref(), kept.as_bytes());
        }
    }
}
