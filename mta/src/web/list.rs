//! A folder's message list: 50 a page, sorted by date, sender, subject or
//! size, or threaded, searched by subject, sender, recipient and body (the
//! IMAP SEARCH/SORT/THREAD engine, [`crate::imap::query`]), with a form
//! that marks, flags, moves, junks or deletes the ticked messages.

use super::folders::blocking;
use super::{User, layout, url};
use crate::imap::search::{Context, SearchKey};
use crate::imap::sort::{Criterion, SortKey};
use crate::imap::{query, thread};
use crate::store::{FlagOp, Flags, Mailbox, MessageMeta, Store, StoreError};
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;

pub const PAGE_SIZE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// The folder; INBOX when absent.
    pub f: Option<String>,
    /// Page, from 0.
    #[serde(default)]
    pub page: usize,
    /// `date` (default), `from`, `subject` or `size`.
    pub sort: Option<String>,
    /// Oldest (smallest, A–Z) first instead.
    #[serde(default)]
    pub asc: bool,
    /// Show threads.
    #[serde(default)]
    pub threads: bool,
    /// Search text (subject, from, to, body).
    pub q: Option<String>,
}

impl ListQuery {
    pub fn folder(&self) -> &str {
        self.f.as_deref().filter(|f| !f.is_empty()).unwrap_or("INBOX")
    }

    fn criterion(&self) -> Criterion {
        let key = match self.sort.as_deref() {
            Some("from") => SortKey::From,
            Some("subject") => SortKey::Subject,
            Some("size") => SortKey::Size,
            _ => SortKey::Date,
        };
        // Dates and sizes read best largest first; names A–Z.
        let natural_desc = matches!(key, SortKey::Date | SortKey::Size);
        Criterion {
            key,
            reverse: natural_desc != self.asc,
        }
    }

    /// This list's URL with some parameters changed.
    fn href(&self, page: usize, sort: Option<&str>, asc: bool, threads: bool) -> String {
        let mut u = format!("/mail?f={}&page={page}", url::enc(self.folder()));
        if let Some(s) = sort {
            u.push_str(&format!("&sort={s}"));
        }
        if asc {
            u.push_str("&asc=true");
        }
        if threads {
            u.push_str("&threads=true");
        }
        if let Some(q) = self.q.as_deref().filter(|q| !q.is_empty()) {
            u.push_str(&format!("&q={}", url::enc(q)));
        }
        u
    }
}

/// The search for webmail's one box: the text in subject, from, to or body.
pub fn search_key(text: &str) -> SearchKey {
    let header = |f: &str| Box::new(SearchKey::Header(f.into(), text.into()));
    SearchKey::Or(
        header("subject"),
        Box::new(SearchKey::Or(
            header("from"),
            Box::new(SearchKey::Or(header("to"), Box::new(SearchKey::Body(text.into())))),
        )),
    )
}

/// One line of the list.
pub struct Row {
    pub uid: u32,
    pub depth: usize,
    pub meta: MessageMeta,
    pub from: String,
    pub subject: String,
    pub date: String,
}

/// The messages of the page asked for, and how many match in all (blocking).
pub fn rows(mailbox: &Mailbox, q: &ListQuery) -> Result<(Vec<Row>, usize), StoreError> {
    let snap = mailbox.sync()?;
    let candidates: Vec<(u32, MessageMeta, bool)> = (1u32..)
        .zip(snap.messages.iter())
        .map(|(seq, m)| (seq, m.clone(), false))
        .collect();
    let ctx = Context {
        max_seq: candidates.len() as u32,
        max_uid: snap.uid_next.saturating_sub(1),
    };
    let key =
        q.q.as_deref()
            .filter(|t| !t.is_empty())
            .map_or(SearchKey::All, search_key);
    let order: Vec<(u32, usize)> = if q.threads {
        let found = query::run(mailbox, candidates, &ctx, &key, &[], true, true)?;
        let items: Vec<thread::Item> = found.into_iter().filter_map(|f| f.2).collect();
        let mut threads = thread::threaded(thread::Algorithm::References, &items);
        if !q.asc {
            threads = newest_threads_first(threads);
        }
        threads
    } else {
        let found = query::run(mailbox, candidates, &ctx, &key, &[q.criterion()], false, true)?;
        found.into_iter().map(|f| (f.0, 0)).collect()
    };
    let total = order.len();
    let mut out = Vec::new();
    for (uid, depth) in order.into_iter().skip(q.page * PAGE_SIZE).take(PAGE_SIZE) {
        let Some(meta) = snap.messages.iter().find(|m| m.uid == uid).cloned() else {
            continue;
        };
        let header = match mailbox.header(uid) {
            Ok(h) => h,
            Err(StoreError::NoSuchMessage(_)) => continue,
            Err(e) => return Err(e),
        };
        let parsed = mail_parser::MessageParser::default().parse_headers(&header[..]);
        let summary = parsed.as_ref().map(super::read::summary).unwrap_or_default();
        out.push(Row {
            uid,
            depth,
            meta,
            from: summary.from,
            subject: summary.subject,
            date: summary.date,
        });
    }
    Ok((out, total))
}

/// Threads in the order their first messages came, newest first; each
/// thread's replies stay under it.
fn newest_threads_first(flat: Vec<(u32, usize)>) -> Vec<(u32, usize)> {
    let mut threads: Vec<Vec<(u32, usize)>> = Vec::new();
    for entry in flat {
        match threads.last_mut() {
            Some(t) if entry.1 > 0 => t.push(entry),
            _ => threads.push(vec![entry]),
        }
    }
    threads.into_iter().rev().flatten().collect()
}

pub async fn list(user: User, Query(q): Query<ListQuery>) -> Response {
    let store = Arc::clone(&user.store);
    let folder = q.folder().to_string();
    let (q, loaded) = {
        let folder = folder.clone();
        let found = blocking(move || {
            let mailbox = store.mailbox(&folder)?;
            let rows = rows(&mailbox, &q)?;
            let folders = store
                .folders()?
                .into_iter()
                .filter(|f| f.exists)
                .map(|f| f.name)
                .collect();
            Ok((q, rows, folders))
        })
        .await;
        match found {
            Ok((q, rows, folders)) => (q, (rows, folders)),
            Err(resp) => return resp,
        }
    };
    let ((rows, total), folders): ((Vec<Row>, usize), Vec<String>) = loaded;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let sort = q.sort.as_deref().unwrap_or("date");
    let sort_link = |key: &str, label: &str| -> Markup {
        let asc = key == sort && !q.asc;
        html! { a href=(q.href(0, Some(key), asc, false)) { (label) } }
    };
    let act = format!("/mail/act?f={}", url::enc(&folder));
    let body = html! {
        h1 { (folder) }
        form.search method="get" action="/mail" {
            input type="hidden" name="f" value=(folder);
            input type="search" name="q" value=(q.q.as_deref().unwrap_or("")) placeholder="Search subject, from, to, body" aria-label="Search";
            button type="submit" { "Search" }
        }
        p.actions {
            a href="/compose" { "Compose" }
            @if q.threads { a href=(q.href(0, q.sort.as_deref(), q.asc, false)) { "List" } }
            @else { a href=(q.href(0, None, false, true)) { "Threads" } }
            @if folder == "Trash" || folder == "Junk" {
                (layout::form(&user, &act, html! {
                    input type="hidden" name="action" value="empty";
                    button type="submit" { "Empty " (folder) }
                }))
            }
        }
        (layout::form(&user, &act, html! {
            div.actions {
                select name="action" aria-label="Action" {
                    option value="read" { "Mark read" }
                    option value="unread" { "Mark unread" }
                    option value="flag" { "Flag" }
                    option value="unflag" { "Unflag" }
                    option value="trash" { "Delete" }
                    option value="junk" { "Junk" }
                    option value="move" { "Move to:" }
                }
                select name="target" aria-label="Folder" {
                    @for f in &folders { @if *f != folder { option value=(f) { (f) } } }
                }
                button type="submit" name="go" value="1" { "Apply" }
            }
            table.messages {
                thead { tr {
                    th { "" }
                    th { (sort_link("from", "From")) }
                    th { (sort_link("subject", "Subject")) }
                    th.wide { (sort_link("date", "Date")) }
                    th.num.wide { (sort_link("size", "Size")) }
                } }
                tbody {
                    @for r in &rows {
                        tr.unread[!r.meta.flags.seen] {
                            td { input type="checkbox" name="uid" value=(r.uid) aria-label="Select"; @if r.meta.flags.flagged { " ⚑" } }
                            td { (r.from) }
                            td style=[(r.depth > 0).then(|| format!("padding-left:{}rem", r.depth.min(8)))] {
                                a href=(format!("/msg?f={}&uid={}", url::enc(&folder), r.uid)) {
                                    @if r.subject.is_empty() { "(no subject)" } @else { (r.subject) }
                                }
                            }
                            td.wide { (r.date) }
                            td.num.wide { (layout::human_size(r.meta.size)) }
                        }
                    }
                }
            }
        }))
        @if rows.is_empty() { p { "No messages." } }
        p.pages {
            @if q.page > 0 { a href=(q.href(q.page - 1, q.sort.as_deref(), q.asc, q.threads)) { "← Newer" } " " }
            "Page " (q.page + 1) " of " (pages) " (" (total) " messages)"
            @if q.page + 1 < pages { " " a href=(q.href(q.page + 1, q.sort.as_deref(), q.asc, q.threads)) { "Older →" } }
        }
    };
    layout::page(&folder, Some(&user), body).into_response()
}

#[derive(Deserialize)]
pub struct Act {
    #[serde(default)]
    uid: Vec<u32>,
    action: String,
    target: Option<String>,
}

/// What one action does to the ticked messages of `folder` (blocking).
pub fn apply(store: &Store, folder: &str, act: &Act) -> Result<(), StoreError> {
    let mailbox = store.mailbox(folder)?;
    let flag = |op: FlagOp, flags: Flags| mailbox.store_flags(&act.uid, op, &flags, None).map(|_| ());
    let seen = Flags {
        seen: true,
        ..Flags::default()
    };
    let flagged = Flags {
        flagged: true,
        ..Flags::default()
    };
    let move_to = |dest: &str| -> Result<(), StoreError> {
        if dest == folder {
            return Ok(());
        }
        mailbox.move_to(&act.uid, &*store.mailbox(dest)?).map(|_| ())
    };
    match act.action.as_str() {
        "read" => flag(FlagOp::Add, seen),
        "unread" => flag(FlagOp::Remove, seen),
        "flag" => flag(FlagOp::Add, flagged),
        "unflag" => flag(FlagOp::Remove, flagged),
        // Deleting in Trash is for good; elsewhere it is a move to Trash.
        "trash" if folder == "Trash" => {
            flag(FlagOp::Add, deleted())?;
            mailbox.expunge(Some(&act.uid)).map(|_| ())
        }
        "trash" => move_to("Trash"),
        "junk" => move_to("Junk"),
        "move" => move_to(act.target.as_deref().unwrap_or(folder)),
        "empty" if folder == "Trash" || folder == "Junk" => {
            let all: Vec<u32> = mailbox.sync()?.messages.iter().map(|m| m.uid).collect();
            mailbox.store_flags(&all, FlagOp::Add, &deleted(), None)?;
            mailbox.expunge(None).map(|_| ())
        }
        other => Err(StoreError::BadName(format!("unknown action {other:?}"))),
    }
}

fn deleted() -> Flags {
    Flags {
        deleted: true,
        ..Flags::default()
    }
}

#[derive(Deserialize)]
pub struct FolderParam {
    f: Option<String>,
}

pub async fn act(
    user: User,
    Query(FolderParam { f }): Query<FolderParam>,
    axum_extra::extract::Form(act): axum_extra::extract::Form<Act>,
) -> Response {
    let folder = f.unwrap_or_else(|| "INBOX".into());
    let store = Arc::clone(&user.store);
    let back = format!("/mail?f={}", url::enc(&folder));
    match blocking(move || apply(&store, &folder, &act)).await {
        Ok(()) => Redirect::to(&back).into_response(),
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_keep_their_replies_when_reversed() {
        let flat = vec![(1, 0), (3, 1), (2, 0), (4, 0), (5, 1), (6, 2)];
        assert_eq!(
            newest_threads_first(flat),
            vec![(4, 0), (5, 1), (6, 2), (2, 0), (1, 0), (3, 1)]
        );
    }
}
