//! Digests: every `[lists] digest_interval`, the posts a list kept for its
//! digest members (`store::Store::add_to_digest`) go out as one MIME digest
//! in the style of RFC 1153 and Mailman: a multipart/mixed of the table of
//! contents (text/plain) and a multipart/digest of the posts as
//! message/rfc822 parts. Each digest member gets a copy with the list
//! headers and their own VERP sender. The posts are cleared only after
//! every copy is queued, so a crash in between costs at most one duplicate
//! digest, never a post.

use super::address::Role;
use super::store::{List, ListError, Store, new_token};
use super::{ProcessError, post};
use crate::service::Shared;
use std::sync::Arc;

/// Run for the daemon's life: the digests, every interval.
pub async fn run(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.lists.digest_interval);
    // The first tick is immediate: the first digest waits a whole interval.
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = Arc::clone(&shared);
        if let Err(e) = tokio::task::spawn_blocking(move || send_all(&s)).await {
            tracing::error!("list digests: {e}");
        }
    }
}

/// Send the digest of every list that has posts waiting.
fn send_all(shared: &Shared) {
    let store = super::store(shared);
    for name in store.names().unwrap_or_default() {
        if let Err(e) = send(shared, &store, &name) {
            tracing::error!("list {name}: digest: {e}");
        }
    }
}

fn send(shared: &Shared, store: &Store, name: &str) -> Result<(), ProcessError> {
    let l = store.load(name)?;
    let posts = store.digest_posts(&l)?;
    if posts.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = posts.iter().map(|(n, _)| n.clone()).collect();
    let members: Vec<String> = l.digest_members().map(|m| m.address.clone()).collect();
    if !members.is_empty() {
        let now = crate::queue::now();
        // The issue number is saved first: a crash skips a number, never reuses one.
        let issue = store.update(name, |l| {
            l.digest_issue += 1;
            Ok::<_, ListError>(l.digest_issue)
        })?;
        let contents: Vec<&[u8]> = posts.iter().map(|(_, c)| c.as_slice()).collect();
        let digest = build(&l, issue, &contents, now);
        let web_url = shared.config.lists.web_url.trim_end_matches('/');
        for m in &members {
            let copy = post::prepare(
                &digest,
                &post::Distribution {
                    list: &l,
                    web_url,
                    munge: false,
                    member: Some(m),
                },
            );
            let sender = l.role_address(&Role::Bounces(Some(m.clone())));
            super::queue_message(shared, &l, &sender, std::slice::from_ref(m), &copy)?;
        }
        tracing::info!(
            "list {name}: digest issue {issue} with {} posts sent to {} members",
            posts.len(),
            members.len()
        );
    }
    store.clear_digest(&l, &names)?;
    Ok(())
}

/// "Dev Digest, Issue 3".
pub fn title(l: &List, issue: u32) -> String {
    format!("{} Digest, Issue {issue}", post::display_name(l))
}

/// The digest of `posts` (CRLF messages, oldest first): headers and body,
/// without the list headers (`post::prepare` adds those per member).
pub fn build(l: &List, issue: u32, posts: &[&[u8]], now: u64) -> Vec<u8> {
    let title = title(l, issue);
    let outer = format!("=_digest_{}", new_token());
    let inner = format!("=_posts_{}", new_token());
    let mut contents = String::new();
    for (i, p) in posts.iter().enumerate() {
        let subject = post::header(p, "subject").unwrap_or_default();
        let from = post::header(p, "from").unwrap_or_default();
        contents += &format!("   {}. {subject} ({from})\r\n", i + 1);
    }
    let mut out = format!(
        "From: {request}\r\nTo: {addr}\r\nSubject: {title}\r\nDate: {date}\r\n\
         Message-ID: <{id}.{now}@{domain}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{outer}\"\r\n\r\n\
         --{outer}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Description: {title}\r\n\r\n\
         Send submissions to {addr}.\r\nTo change to single posts or leave, write \"set digest off\" \
         or \"unsubscribe\" to {request}.\r\n\r\nToday's Topics:\r\n\r\n{contents}\r\n\
         --{outer}\r\nContent-Type: multipart/digest; boundary=\"{inner}\"\r\n\r\n",
        request = l.role_address(&Role::Request),
        addr = l.address(),
        date = crate::datetime::rfc5322(now),
        id = new_token(),
        domain = l.domain,
    )
    .into_bytes();
    for p in posts {
        out.extend_from_slice(format!("--{inner}\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes());
        out.extend_from_slice(p);
        if !p.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("--{inner}--\r\n\r\n--{outer}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::store::Settings;
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    use proptest::prelude::*;

    fn list() -> List {
        List::sample(Settings {
            digest: true,
            ..Settings::default()
        })
    }

    /// The subjects of the message/rfc822 parts of the digest, in order.
    fn digest_subjects(digest: &[u8]) -> Vec<String> {
        let msg = MessageParser::new().parse(digest).expect("parses");
        assert_eq!(msg.content_type().map(|c| c.ctype()), Some("multipart"));
        let digest_part = msg
            .parts
            .iter()
            .find(|p| p.content_type().and_then(|c| c.subtype()) == Some("digest"))
            .expect("a multipart/digest part");
        let PartType::Multipart(ids) = &digest_part.body else {
            panic!("not multipart")
        };
        ids.iter()
            .map(|&i| match &msg.parts[i as usize].body {
                PartType::Message(m) => m.subject().unwrap_or("").to_string(),
                other => panic!("not a message: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn posts_become_message_parts_of_a_multipart_digest() {
        let posts: [&[u8]; 2] = [
            b"From: a@y.test\r\nSubject: first\r\n\r\none\r\n",
            b"From: b@y.test\r\nSubject: second\r\n\r\ntwo",
        ];
        let digest = build(&list(), 7, &posts, 1_700_000_000);
        let text = String::from_utf8_lossy(&digest);
        assert!(text.contains("Subject: Dev Digest, Issue 7\r\n"), "{text}");
        assert!(
            text.contains("   1. first (a@y.test)\r\n   2. second (b@y.test)\r\n"),
            "{text}"
        );
        assert_eq!(digest_subjects(&digest), ["first", "second"]);
    }

    proptest! {
        #[test]
        fn every_post_comes_back_out(bodies in proptest::collection::vec("[ -~]{0,60}(\r\n[ -~]{0,60}){0,4}", 1..6)) {
            let posts: Vec<Vec<u8>> = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| format!("From: a@y.test\r\nSubject: post {i}\r\n\r\n{b}\r\n").into_bytes())
                .collect();
            let refs: Vec<&[u8]> = posts.iter().map(|p| p.as_slice()).collect();
            let digest = build(&list(), 1, &refs, 0);
            let want: Vec<String> = (0..posts.len()).map(|i| format!("post {i}")).collect();
            prop_assert_eq!(digest_subjects(&digest), want);
        }
    }
}
