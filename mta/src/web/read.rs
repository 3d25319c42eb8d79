//! Reading a message: the header summary, plain text with links, HTML
//! through [`super::sanitise`] in a sandboxed frame, attachments as
//! downloads, the full header and the raw source.

use super::folders::blocking;
use super::{User, layout, sanitise, url};
use crate::store::{FlagOp, Flags};
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mail_parser::{Address, HeaderValue as Hv, Message, MessageParser, MimeHeaders, PartType};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use std::sync::Arc;

/// The header fields a list or a reader shows, decoded.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub from: String,
    pub to: String,
    pub cc: String,
    pub subject: String,
    pub date: String,
}

/// `Name <addr>, …` of an address header.
pub fn addresses(a: Option<&Address>) -> String {
    a.map(|a| {
        a.iter()
            .map(|addr| match (&addr.name, &addr.address) {
                (Some(n), Some(e)) => format!("{n} <{e}>"),
                (None, Some(e)) => e.to_string(),
                (Some(n), None) => n.to_string(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

pub fn summary(m: &Message) -> Summary {
    Summary {
        from: addresses(m.from()),
        to: addresses(m.to()),
        cc: addresses(m.cc()),
        subject: m.subject().unwrap_or("").to_string(),
        date: m
            .date()
            .map(|d| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}",
                    d.year, d.month, d.day, d.hour, d.minute
                )
            })
            .unwrap_or_default(),
    }
}

#[derive(Debug, Deserialize)]
pub struct MsgQuery {
    pub f: String,
    pub uid: u32,
    /// Attachment number, for `/msg/part`.
    pub n: Option<u32>,
    /// Show remote images.
    #[serde(default)]
    pub images: bool,
}

impl MsgQuery {
    fn href(&self, path: &str) -> String {
        format!("{path}?f={}&uid={}", url::enc(&self.f), self.uid)
    }
}

/// Read message `uid` of folder `f` (and mark it read, as opening it in a client does).
async fn load(user: &User, q: &MsgQuery, mark_seen: bool) -> Result<Vec<u8>, Response> {
    let (store, folder, uid) = (Arc::clone(&user.store), q.f.clone(), q.uid);
    blocking(move || {
        let mailbox = store.mailbox(&folder)?;
        let raw = mailbox.read(uid)?;
        if mark_seen {
            let seen = Flags {
                seen: true,
                ..Flags::default()
            };
            mailbox.store_flags(&[uid], FlagOp::Add, &seen, None)?;
        }
        Ok(raw)
    })
    .await
}

/// Load and parse the message, then answer with `f`.
async fn with_message(
    user: &User,
    q: &MsgQuery,
    mark_seen: bool,
    f: impl FnOnce(&[u8], &Message) -> Response,
) -> Response {
    match load(user, q, mark_seen).await {
        Ok(raw) => match MessageParser::default().parse(&raw) {
            Some(m) => f(&raw, &m),
            None => layout::error(StatusCode::UNPROCESSABLE_ENTITY, "This message cannot be parsed."),
        },
        Err(resp) => resp,
    }
}

/// Whether the message has a real HTML part (mail-parser also offers text converted to HTML).
fn has_html(m: &Message) -> bool {
    m.html_bodies().any(|p| matches!(p.body, PartType::Html(_)))
}

/// Plain text with http(s) URLs turned into links; everything else escaped.
pub fn linkify(text: &str) -> Markup {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = ["https://", "http://"].iter().filter_map(|p| rest.find(p)).min() {
        out.push_str(&maud::html! { (rest[..at]) }.into_string());
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\''))
            .unwrap_or(tail.len());
        let link = tail[..end].trim_end_matches(['.', ',', ')', ';', ':', '!', '?']);
        out.push_str(&maud::html! { a href=(link) rel="noopener noreferrer" target="_blank" { (link) } }.into_string());
        rest = &tail[link.len()..];
    }
    out.push_str(&maud::html! { (rest) }.into_string());
    PreEscaped(out)
}

pub async fn show(user: User, Query(q): Query<MsgQuery>) -> Response {
    with_message(&user, &q, true, |_, m| {
        let s = summary(m);
        let html_part = has_html(m);
        let text = if html_part { None } else { m.body_text(0) };
        let attachments: Vec<(u32, String, usize)> = m
            .attachments()
            .enumerate()
            .filter(|(_, p)| p.content_id().is_none() || p.attachment_name().is_some())
            .map(|(i, p)| {
                (
                    i as u32,
                    p.attachment_name().unwrap_or("attachment").to_string(),
                    p.contents().len(),
                )
            })
            .collect();
        let compose = |mode: &str| format!("/compose?f={}&uid={}&mode={mode}", url::enc(&q.f), q.uid);
        let act = format!("/mail/act?f={}", url::enc(&q.f));
        let body = html! {
            p { a href=(format!("/mail?f={}", url::enc(&q.f))) { "← " (q.f) } }
            h1 { @if s.subject.is_empty() { "(no subject)" } @else { (s.subject) } }
            dl.headers {
                dt { "From" } dd { (s.from) }
                dt { "To" } dd { (s.to) }
                @if !s.cc.is_empty() { dt { "Cc" } dd { (s.cc) } }
                dt { "Date" } dd { (s.date) }
            }
            div.actions {
                a href=(compose("reply")) { "Reply" }
                a href=(compose("all")) { "Reply all" }
                a href=(compose("forward")) { "Forward" }
                a href=(q.href("/msg/headers")) { "Headers" }
                a href=(q.href("/msg/raw")) { "Source" }
            }
            (layout::form(&user, &act, html! {
                input type="hidden" name="uid" value=(q.uid);
                div.actions {
                    button type="submit" name="action" value="trash" { "Delete" }
                    button type="submit" name="action" value="junk" { "Junk" }
                    button type="submit" name="action" value="unread" { "Mark unread" }
                    button type="submit" name="action" value="flag" { "Flag" }
                }
            }))
            @if html_part {
                @if !q.images {
                    p { a href=(format!("{}&images=true", q.href("/msg"))) { "Show remote images" } }
                }
                iframe.body title="Message" sandbox="allow-popups allow-popups-to-escape-sandbox"
                    src=(if q.images { format!("{}&images=true", q.href("/msg/body")) } else { q.href("/msg/body") }) {}
            } @else {
                pre.text { (linkify(text.as_deref().unwrap_or(""))) }
            }
            @if !attachments.is_empty() {
                h2 { "Attachments" }
                ul.attachments {
                    @for (n, name, size) in &attachments {
                        li { a href=(format!("{}&n={n}", q.href("/msg/part"))) download=(name) { (name) } " (" (super::layout::human_size(*size as u64)) ")" }
                    }
                }
            }
        };
        layout::page(&s.subject, Some(&user), body).into_response()
    })
    .await
}

/// The images a message carries for its own HTML, as data URIs.
fn inline_images(m: &Message) -> sanitise::Inline {
    const SHOWN: [&str; 4] = ["png", "gif", "jpeg", "webp"];
    m.attachments()
        .filter_map(|p| {
            let id = p.content_id()?.trim_matches(['<', '>']).to_string();
            let ct = p.content_type()?;
            let sub = ct.subtype()?.to_ascii_lowercase();
            (ct.ctype().eq_ignore_ascii_case("image") && SHOWN.contains(&sub.as_str())).then(|| {
                let data = base64::engine::general_purpose::STANDARD.encode(p.contents());
                (id, format!("data:image/{sub};base64,{data}"))
            })
        })
        .collect()
}

/// The sanitised HTML body, for the sandboxed frame only.
pub async fn frame(user: User, Query(q): Query<MsgQuery>) -> Response {
    with_message(&user, &q, false, |_, m| {
        let html = m.body_html(0).unwrap_or_default();
        let (clean, _) = sanitise::clean(&html, &inline_images(m), q.images);
        let doc = format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\"></head><body>{clean}</body></html>"
        );
        let mut resp = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], doc).into_response();
        let csp = HeaderValue::from_str(&sanitise::body_csp(q.images)).expect("ASCII policy");
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
        resp
    })
    .await
}

/// A filename safe inside a quoted header parameter (the UTF-8 form goes in `filename*`).
fn ascii_filename(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | ';') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.trim().is_empty() {
        "attachment".into()
    } else {
        safe
    }
}

/// An attachment, downloaded byte for byte, never rendered.
pub async fn part(user: User, Query(q): Query<MsgQuery>) -> Response {
    with_message(&user, &q, false, |_, m| {
        let Some(p) = q.n.and_then(|n| m.attachments().nth(n as usize)) else {
            return layout::error(StatusCode::NOT_FOUND, "No such attachment.");
        };
        let name = p.attachment_name().unwrap_or("attachment");
        let disposition = format!(
            "attachment; filename=\"{}\"; filename*=UTF-8''{}",
            ascii_filename(name),
            url::enc(name)
        );
        (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; sandbox".to_string(),
                ),
            ],
            p.contents().to_vec(),
        )
            .into_response()
    })
    .await
}

/// The message as stored, as plain text.
pub async fn raw(user: User, Query(q): Query<MsgQuery>) -> Response {
    match load(&user, &q, false).await {
        Ok(raw) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"),
            ],
            raw,
        )
            .into_response(),
        Err(resp) => resp,
    }
}

/// Every header field, as sent (decoded where it is encoded).
pub async fn headers(user: User, Query(q): Query<MsgQuery>) -> Response {
    with_message(&user, &q, false, |raw, m| {
        let fields: Vec<(String, String)> = m
            .root_part()
            .headers
            .iter()
            .map(|h| {
                let value = match &h.value {
                    Hv::Text(t) => t.to_string(),
                    _ => {
                        String::from_utf8_lossy(raw.get(h.offset_start as usize..h.offset_end as usize).unwrap_or(&[]))
                            .trim()
                            .to_string()
                    }
                };
                (h.name().to_string(), value)
            })
            .collect();
        let body = html! {
            p { a href=(q.href("/msg")) { "← Message" } }
            h1 { "Headers" }
            dl.headers { @for (k, v) in &fields { dt { (k) } dd { (v) } } }
        };
        layout::page("Headers", Some(&user), body).into_response()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_links_are_links_and_the_rest_is_escaped() {
        let out = linkify("see https://example.test/a?b=1&c=2. <b>not bold</b>").into_string();
        assert_eq!(
            out,
            "see <a href=\"https://example.test/a?b=1&amp;c=2\" rel=\"noopener noreferrer\" target=\"_blank\">https://example.test/a?b=1&amp;c=2</a>. &lt;b&gt;not bold&lt;/b&gt;"
        );
        assert_eq!(linkify("javascript:alert(1)").into_string(), "javascript:alert(1)");
    }

    #[test]
    fn download_names_cannot_break_the_header() {
        assert_eq!(ascii_filename("a\"b;c/d\r\n.txt"), "a_b_c_d__.txt");
        assert_eq!(ascii_filename("réa.pdf"), "r_a.pdf");
        assert_eq!(ascii_filename(""), "attachment");
    }
}
