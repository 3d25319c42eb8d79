//! The base subject of RFC 5256 §2.1, which SORT SUBJECT compares and THREAD
//! groups by, and whether the subject marks a reply or forward (THREAD step 5).
//!
//! Step (1)'s RFC 2047 decoding is mail-parser's: callers pass the decoded
//! Subject. The rest works on ASCII patterns only, so byte offsets found by
//! them are always UTF-8 boundaries.

/// A subject reduced to its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseSubject {
    /// Whitespace normalised and ASCII case folded (the i;ascii-casemap
    /// collation SORT uses), so equal bases compare equal as strings.
    pub text: String,
    /// The extraction removed a `re:`/`fw:`/`fwd:` leader, a `(fwd)`
    /// trailer or a `[fwd: ...]` wrapper.
    pub reply_or_forward: bool,
}

fn is_wsp(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// RFC 5256 §2.1 steps (1) to (7) on an already decoded subject.
pub fn base_subject(subject: &str) -> BaseSubject {
    // (1) Tabs and continuations become spaces, runs of spaces one space.
    let mut text = subject
        .split(is_wsp)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let mut reply_or_forward = false;
    loop {
        // (2) Trailing "(fwd)" and whitespace, until none is left.
        let mut end = text.len();
        loop {
            let rest = &text[..end];
            if let Some(r) = rest.strip_suffix(' ') {
                end = r.len();
            } else if let Some(r) = rest.strip_suffix("(fwd)") {
                end = r.len();
                reply_or_forward = true;
            } else {
                break;
            }
        }
        // (3), (4), (5): leaders, then one [blob] if something is left after it.
        let mut start = 0;
        loop {
            let rest = &text[start..end];
            if let Some((len, refwd)) = leader(rest) {
                start += len;
                reply_or_forward |= refwd;
            } else if let Some(len) = blob(rest).filter(|&len| len < rest.len()) {
                start += len;
            } else {
                break;
            }
        }
        // (6) A "[fwd: ...]" wrapper: unwrap it and start again at (2).
        let rest = &text[start..end];
        if rest.starts_with("[fwd:") && rest.ends_with(']') {
            reply_or_forward = true;
            text = rest[5..rest.len() - 1].to_string();
            continue;
        }
        // (7)
        return BaseSubject {
            text: rest.to_string(),
            reply_or_forward,
        };
    }
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: its length at the start of `s`.
fn blob(s: &str) -> Option<usize> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find(['[', ']'])?;
    if inner.as_bytes()[close] != b']' {
        return None;
    }
    let after = &inner[close + 1..];
    Some(s.len() - after.trim_start_matches(' ').len())
}

/// `subj-leader = (*subj-blob subj-refwd) / WSP`: its length at the start of
/// `s`, and whether it was a `subj-refwd` (a reply or forward marker).
fn leader(s: &str) -> Option<(usize, bool)> {
    if s.starts_with(' ') {
        return Some((1, false));
    }
    let mut rest = s;
    while let Some(len) = blob(rest) {
        rest = &rest[len..];
    }
    // subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
    let mut after = ["re", "fwd", "fw"].iter().find_map(|w| rest.strip_prefix(w))?;
    after = after.trim_start_matches(' ');
    if let Some(len) = blob(after) {
        after = &after[len..];
    }
    let after = after.strip_prefix(':')?;
    Some((s.len() - after.len(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> (String, bool) {
        let b = base_subject(s);
        (b.text, b.reply_or_forward)
    }

    fn text(s: &str) -> String {
        base_subject(s).text
    }

    #[test]
    fn step1_whitespace_and_case() {
        assert_eq!(base("  Hello\t\tBig \r\n World  "), ("hello big world".into(), false));
        assert_eq!(text("ÄrGER über Ä"), "Ärger über Ä");
        assert_eq!(text(""), "");
        assert_eq!(text(" \t "), "");
    }

    #[test]
    fn step1_encoded_words_are_decoded_by_the_parser() {
        let raw = b"Subject: Re: =?ISO-8859-1?Q?Gr=FC=DFe?= =?UTF-8?B?YXVz?= Berlin (fwd)\r\n\r\n";
        let m = mail_parser::MessageParser::default().parse(&raw[..]).unwrap();
        assert_eq!(base(m.subject().unwrap()), ("grüßeaus berlin".into(), true));
    }

    #[test]
    fn step2_trailers() {
        assert_eq!(base("plan (fwd)"), ("plan".into(), true));
        assert_eq!(base("plan (FWD) (fwd)  "), ("plan".into(), true));
        assert_eq!(base("plan(fwd)"), ("plan".into(), true));
        // Only at the end.
        assert_eq!(base("(fwd) plan"), ("(fwd) plan".into(), false));
    }

    #[test]
    fn step3_leaders() {
        assert_eq!(base("Re: plan"), ("plan".into(), true));
        assert_eq!(base("RE:plan"), ("plan".into(), true));
        assert_eq!(base("Fw: plan"), ("plan".into(), true));
        assert_eq!(base("FWD: plan"), ("plan".into(), true));
        assert_eq!(base("Re : plan"), ("plan".into(), true));
        assert_eq!(base("Re[2]: plan"), ("plan".into(), true));
        assert_eq!(base("re [list]: plan"), ("plan".into(), true));
        assert_eq!(base("[list] Re: Re: [list] RE: plan"), ("plan".into(), true));
        // Not leaders: no colon, or a word that only starts with "re".
        assert_eq!(base("Re plan"), ("re plan".into(), false));
        assert_eq!(base("Regarding: plan"), ("regarding: plan".into(), false));
        assert_eq!(base("Fwx: plan"), ("fwx: plan".into(), false));
        assert_eq!(base("Re:"), ("".into(), true));
    }

    #[test]
    fn step4_blobs() {
        assert_eq!(base("[rust-users] plan"), ("plan".into(), false));
        assert_eq!(base("[a][b]  plan"), ("plan".into(), false));
        // The last blob stays when nothing would be left after it.
        assert_eq!(base("[only]"), ("[only]".into(), false));
        assert_eq!(base("[a] [b]"), ("[b]".into(), false));
        assert_eq!(base("[a] [b] (fwd)"), ("[b]".into(), true));
        // A '[' inside is not a blob.
        assert_eq!(base("[a[b] plan"), ("[a[b] plan".into(), false));
        assert_eq!(base("[unclosed plan"), ("[unclosed plan".into(), false));
    }

    #[test]
    fn step5_repeats_leaders_and_blobs() {
        assert_eq!(base("Re: [list] Fwd: [other] Re: plan"), ("plan".into(), true));
        assert_eq!(base("[list] [x] Re: [y] plan"), ("plan".into(), true));
    }

    #[test]
    fn step6_fwd_wrapper() {
        assert_eq!(base("[fwd: plan]"), ("plan".into(), true));
        assert_eq!(base("[Fwd: Re: plan (fwd)]"), ("plan".into(), true));
        assert_eq!(base("Re: [fwd: [fwd: plan] ] (fwd)"), ("plan".into(), true));
        // Not a wrapper when text follows: then "[fwd: plan]" is just a blob.
        assert_eq!(base("[fwd: plan] later"), ("later".into(), false));
        assert_eq!(base("[fwd:]"), ("".into(), true));
    }

    proptest::proptest! {
        #[test]
        fn extraction_is_idempotent(s in "([ \\t]|[Rr][Ee]|[Ff][Ww][Dd]?|:|\\[|\\]|\\(fwd\\)|\\[fwd:|x|ü| ){0,24}") {
            let once = text(&s);
            proptest::prop_assert_eq!(text(&once), once.clone());
            proptest::prop_assert!(!once.starts_with(' ') && !once.ends_with(' ') && !once.contains("  "));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,64}") {
            let once = text(&s);
            proptest::prop_assert_eq!(text(&once), once);
        }
    }
}
