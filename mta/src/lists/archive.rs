//! Reading a list's archive (the mbox every post is appended to): the
//! messages in order (their number is the permalink), a summary of each,
//! months, threads, and search. Pure over the mbox bytes.

use std::collections::HashMap;

/// One archived post, as the pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Position in the archive, from 0: the permalink.
    pub number: usize,
    pub from: String,
    pub subject: String,
    /// Seconds since the epoch (0 when the Date: is missing or bad).
    pub date: i64,
    pub message_id: Option<String>,
    /// The post it answers, by In-Reply-To or the last of References.
    pub parent: Option<String>,
    /// The plain-text body (HTML bodies as text).
    pub text: String,
}

/// The messages of an mboxrd file, `>From ` quoting undone, LF lines.
pub fn messages(mbox: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut previous_blank = true;
    for line in mbox.split_inclusive(|&b| b == b'\n') {
        if previous_blank && line.starts_with(b"From ") {
            out.push(Vec::new());
            previous_blank = false;
            continue;
        }
        previous_blank = line == b"\n";
        let Some(current) = out.last_mut() else { continue };
        let unquoted = match line.iter().position(|&b| b != b'>') {
            Some(n) if n > 0 && line[n..].starts_with(b"From ") => &line[1..],
            _ => line,
        };
        current.extend_from_slice(unquoted);
    }
    // The blank line mbox puts after each message is not part of it.
    for m in &mut out {
        if m.ends_with(b"\n\n") {
            m.pop();
        }
    }
    out
}

/// Summaries of every message of `mbox`.
pub fn posts(mbox: &[u8]) -> Vec<Post> {
    messages(mbox)
        .iter()
        .enumerate()
        .map(|(number, raw)| summary(number, raw))
        .collect()
}

fn summary(number: usize, raw: &[u8]) -> Post {
    let parsed = mail_parser::MessageParser::new().parse(raw);
    let m = parsed.as_ref();
    let from = m
        .and_then(|m| m.from())
        .and_then(|f| f.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) => format!("{n} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .unwrap_or_default();
    let ids = |h: Option<&mail_parser::HeaderValue<'_>>| -> Vec<String> {
        match h {
            Some(mail_parser::HeaderValue::Text(t)) => vec![t.to_string()],
            Some(mail_parser::HeaderValue::TextList(l)) => l.iter().map(|t| t.to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let parent = m.and_then(|m| {
        ids(Some(m.in_reply_to()))
            .pop()
            .or_else(|| ids(Some(m.references())).pop())
    });
    Post {
        number,
        from,
        subject: m.and_then(|m| m.subject()).unwrap_or("(no subject)").to_string(),
        date: m.and_then(|m| m.date()).map_or(0, |d| d.to_timestamp()),
        message_id: m.and_then(|m| m.message_id()).map(str::to_string),
        parent,
        text: m
            .and_then(|m| m.body_text(0))
            .map(|t| t.into_owned())
            .unwrap_or_default(),
    }
}

/// `YYYY-MM` of a post's date (UTC).
pub fn month(post: &Post) -> String {
    // imap() gives "DD-Mon-YYYY HH:MM:SS +0000".
    let text = crate::datetime::imap(post.date.max(0) as u64);
    let mut parts = text.trim_start().split(['-', ' ']);
    let (_, mon, year) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let n = MONTHS.iter().position(|m| *m == mon).map_or(0, |i| i + 1);
    format!("{year}-{n:02}")
}

/// The months with posts, newest first, with their counts.
pub fn months(posts: &[Post]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for p in posts {
        let m = month(p);
        match counts.iter_mut().find(|(k, _)| *k == m) {
            Some((_, n)) => *n += 1,
            None => counts.push((m, 1)),
        }
    }
    counts.sort_by(|a, b| b.0.cmp(&a.0));
    counts
}

/// Threads of `posts`: each a list of (depth, post), roots in order of
/// arrival, replies under the post they answer (a reply to a post not in
/// `posts` starts its own thread).
pub fn threads(posts: &[Post]) -> Vec<Vec<(usize, &Post)>> {
    let by_id: HashMap<&str, usize> = posts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((p.message_id.as_deref()?, i)))
        .collect();
    let parent_of = |i: usize| {
        posts[i]
            .parent
            .as_deref()
            .and_then(|id| by_id.get(id).copied())
            .filter(|&p| p < i)
    };
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for i in 0..posts.len() {
        match parent_of(i) {
            Some(p) => children.entry(p).or_default().push(i),
            None => roots.push(i),
        }
    }
    roots
        .into_iter()
        .map(|root| {
            let mut thread = Vec::new();
            let mut stack = vec![(0, root)];
            while let Some((depth, i)) = stack.pop() {
                thread.push((depth, &posts[i]));
                if let Some(c) = children.get(&i) {
                    stack.extend(c.iter().rev().map(|&c| (depth + 1, c)));
                }
            }
            thread
        })
        .collect()
}

/// Posts whose subject, sender or text contain every word of `query` (any case).
pub fn search<'a>(posts: &'a [Post], query: &str) -> Vec<&'a Post> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return Vec::new();
    }
    posts
        .iter()
        .filter(|p| {
            let hay = format!("{}\n{}\n{}", p.subject, p.from, p.text).to_lowercase();
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MBOX: &[u8] = b"From a@x.test Thu Jan  1 00:00:00 2026\nFrom: A <a@x.test>\nSubject: first\n\
        Date: Thu, 1 Jan 2026 00:00:00 +0000\nMessage-ID: <1@x>\n\n>From the start\nhello\n\n\
        From b@x.test Sun Feb  1 00:00:00 2026\nFrom: b@x.test\nSubject: Re: first\n\
        Date: Sun, 1 Feb 2026 00:00:00 +0000\nMessage-ID: <2@x>\nIn-Reply-To: <1@x>\n\nreply\n\n\
        From c@x.test Sun Feb  1 00:00:00 2026\nFrom: c@x.test\nSubject: other\n\
        Date: Sun, 1 Feb 2026 00:00:00 +0000\nMessage-ID: <3@x>\n\nunrelated words\n\n";

    #[test]
    fn messages_months_threads_search() {
        let raw = messages(MBOX);
        assert_eq!(raw.len(), 3);
        assert!(
            raw[0].ends_with(b"\n\nFrom the start\nhello\n"),
            "{:?}",
            String::from_utf8_lossy(&raw[0])
        );
        let posts = posts(MBOX);
        assert_eq!(posts[0].from, "A <a@x.test>");
        assert_eq!(posts[1].parent.as_deref(), Some("1@x"));
        assert_eq!(
            months(&posts),
            vec![("2026-02".to_string(), 2), ("2026-01".to_string(), 1)]
        );
        let t = threads(&posts);
        let shape: Vec<Vec<(usize, usize)>> = t
            .iter()
            .map(|t| t.iter().map(|(d, p)| (*d, p.number)).collect())
            .collect();
        assert_eq!(shape, vec![vec![(0, 0), (1, 1)], vec![(0, 2)]]);
        assert_eq!(search(&posts, "UNRELATED words").len(), 1);
        assert_eq!(search(&posts, "first").len(), 2);
        assert!(search(&posts, "  ").is_empty());
    }

    proptest! {
        #[test]
        fn any_mbox_reads_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let posts = posts(&bytes);
            let _ = threads(&posts);
            let _ = months(&posts);
        }
    }
}
