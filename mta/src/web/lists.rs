//! The list pages, mounted at `/lists` on mta's web listener: the list's
//! page with a subscribe form, the confirm page (GET shows, POST
//! confirms), the RFC 8058 one-click unsubscribe endpoint (POST removes,
//! GET only shows a page), the owner's moderation queue and member list,
//! and the archive by month and thread, with permalinks, search and the
//! mbox. Private archives need a member's (or owner's) login.
//!
//! These routes are mounted outside the listener's session CSRF check: a
//! mail client's one-click POST has no session. The anonymous POSTs carry
//! their own secret instead (the confirmation token, the member's HMAC
//! unsubscribe token; a forged subscribe only mails a confirmation
//! request), and the owner's moderation form is checked against the
//! session's CSRF token here. maud escapes everything a page shows.

use super::{User, WebState, layout};
use crate::lists::store::{Action, ArchiveMode, List, ListError, Store};
use crate::lists::{ProcessError, archive, post};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/{list}", get(info))
        .route("/{list}/subscribe", axum::routing::post(subscribe))
        .route("/{list}/confirm", get(confirm_page).post(confirm))
        .route("/{list}/unsubscribe", get(unsubscribe_page).post(unsubscribe))
        .route("/{list}/moderate", get(moderation).post(moderate))
        .route("/{list}/archive", get(archive_index))
        .route("/{list}/archive.mbox", get(archive_mbox))
        .route("/{list}/archive/{month}", get(archive_month))
        .route("/{list}/archive/msg/{number}", get(archive_message))
}

/// The path of a list's page `rest` (`""`, `/archive`, ...).
fn href(l: &List, rest: &str) -> String {
    format!("/lists/{}{rest}", post::url_encode(&l.address()))
}

/// Run list work off the reactor; errors become error pages.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProcessError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(ProcessError::List(ListError::NoSuchList(_) | ListError::BadName(_)))) => {
            Err(layout::error(StatusCode::NOT_FOUND, "No such list"))
        }
        Ok(Err(e)) => {
            tracing::error!("web: lists: {e}");
            Err(layout::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The list could not be read",
            ))
        }
        Err(e) => {
            tracing::error!("web: lists task: {e}");
            Err(layout::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"))
        }
    }
}

async fn load(state: &WebState, list: String) -> Result<(Store, List), Response> {
    let store = crate::lists::store(&state.shared);
    blocking(move || {
        let l = store.load(&list)?;
        Ok((store, l))
    })
    .await
}

/// A page with a heading and one paragraph.
fn message_page(title: &str, text: &str) -> Response {
    layout::page(title, None, html! { h1 { (title) } p { (text) } }).into_response()
}

/// The list's page: what it is, how to join, where its archive is.
pub fn info_html(l: &List) -> Markup {
    html! {
        h1 { (l.address()) }
        @if !l.settings.description.is_empty() { p { (l.settings.description) } }
        p { (l.members.len()) " members. Post by mailing " a href=(format!("mailto:{}", l.address())) { (l.address()) } "." }
        @if l.settings.archive != ArchiveMode::None {
            p { a href=(href(l, "/archive")) { "The archive" } @if l.settings.archive == ArchiveMode::Private { " (members only)" } }
        }
        h2 { "Subscribe" }
        form method="post" action=(href(l, "/subscribe")) {
            label { "Your address " input type="email" name="address" required; }
            button type="submit" { "Subscribe" }
        }
        p { "You will get a mail asking you to confirm." }
    }
}

async fn info(State(state): State<WebState>, Path(list): Path<String>) -> Result<Response, Response> {
    let (_, l) = load(&state, list).await?;
    Ok(layout::page(&l.address(), None, info_html(&l)).into_response())
}

#[derive(Deserialize)]
struct SubscribeForm {
    address: String,
}

async fn subscribe(
    State(state): State<WebState>,
    Path(list): Path<String>,
    axum::Form(form): axum::Form<SubscribeForm>,
) -> Result<Response, Response> {
    let Ok(mb) = crate::envelope::Address::parse(form.address.trim(), false) else {
        return Err(layout::error(StatusCode::BAD_REQUEST, "That is not a mail address"));
    };
    let who = format!("{}@{}", mb.local, mb.domain).to_ascii_lowercase();
    let (store, l) = load(&state, list).await?;
    let shared = Arc::clone(&state.shared);
    let result =
        blocking(move || crate::lists::request_confirmation(&shared, &store, &l, &who, true, crate::queue::now()))
            .await?;
    Ok(message_page("Subscribe", &result))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

/// What confirming `token` would do, and the button that does it.
pub fn confirm_html(l: &List, token: &str) -> Markup {
    let now = crate::queue::now();
    let pending = l.pending.iter().find(|p| p.token == token && p.expires > now);
    html! {
        h1 { "Confirm" }
        @match pending {
            None => p { "This request does not exist or has expired." },
            Some(p) => {
                p { (match p.action {
                    Action::Subscribe => format!("Subscribe {} to {}?", p.address, l.address()),
                    Action::Unsubscribe => format!("Unsubscribe {} from {}?", p.address, l.address()),
                    Action::Approve => format!("Approve the subscription of {} to {}?", p.address, l.address()),
                    Action::Post => format!("Send the held post from {} to {}?", p.address, l.address()),
                    Action::Reenable => format!("Receive the mail of {} at {} again?", l.address(), p.address),
                }) }
                form method="post" action=(format!("{}?token={}", href(l, "/confirm"), post::url_encode(token))) {
                    button type="submit" { "Confirm" }
                }
            }
        }
    }
}

async fn confirm_page(
    State(state): State<WebState>,
    Path(list): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Response, Response> {
    let (_, l) = load(&state, list).await?;
    Ok(layout::page("Confirm", None, confirm_html(&l, &q.token)).into_response())
}

async fn confirm(
    State(state): State<WebState>,
    Path(list): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Response, Response> {
    let (store, l) = load(&state, list).await?;
    let shared = Arc::clone(&state.shared);
    let result = blocking(move || crate::lists::confirm(&shared, &store, &l, &q.token, crate::queue::now())).await?;
    Ok(message_page("Confirm", &result))
}

#[derive(Deserialize)]
struct UnsubscribeQuery {
    member: String,
    token: String,
}

/// GET of the one-click link (a person, or a scanner following links):
/// only a page with the button; nothing changes.
async fn unsubscribe_page(
    State(state): State<WebState>,
    Path(list): Path<String>,
    Query(q): Query<UnsubscribeQuery>,
) -> Result<Response, Response> {
    let (_, l) = load(&state, list).await?;
    if !l.check_unsubscribe_token(&q.member, &q.token) {
        return Err(layout::error(
            StatusCode::FORBIDDEN,
            "This unsubscribe link is not valid",
        ));
    }
    let action = format!(
        "{}?member={}&token={}",
        href(&l, "/unsubscribe"),
        post::url_encode(&q.member),
        q.token
    );
    let body = html! {
        h1 { "Unsubscribe" }
        p { "Remove " (q.member) " from " (l.address()) "?" }
        form method="post" action=(action) { button type="submit" { "Unsubscribe" } }
    };
    Ok(layout::page("Unsubscribe", None, body).into_response())
}

/// RFC 8058 one-click: the POST (body `List-Unsubscribe=One-Click`, or the
/// page's button) removes the member the link was made for.
async fn unsubscribe(
    State(state): State<WebState>,
    Path(list): Path<String>,
    Query(q): Query<UnsubscribeQuery>,
) -> Result<Response, Response> {
    let (store, l) = load(&state, list).await?;
    if !l.check_unsubscribe_token(&q.member, &q.token) {
        return Err(layout::error(
            StatusCode::FORBIDDEN,
            "This unsubscribe link is not valid",
        ));
    }
    let member = q.member.clone();
    let removed = blocking(move || Ok(store.update(&l.address(), |l| Ok::<_, ListError>(l.remove(&member)))?)).await?;
    tracing::info!(
        "web: list {}: one-click unsubscribe of <{}> ({})",
        q.member,
        q.member,
        if removed { "removed" } else { "not a member" }
    );
    Ok(message_page(
        "Unsubscribed",
        &format!("{} is no longer subscribed.", q.member),
    ))
}

/// The owner's page: held posts with approve/discard buttons, and the members.
pub fn moderation_html(l: &List, user: &User) -> Markup {
    let held: Vec<_> = l.pending.iter().filter(|p| p.action == Action::Post).collect();
    html! {
        h1 { "Moderation of " (l.address()) }
        h2 { "Held posts (" (held.len()) ")" }
        @for p in &held {
            div.held {
                p { "From " (p.address) ": " (p.reason) }
                (layout::form(user, &href(l, "/moderate"), html! {
                    input type="hidden" name="token" value=(p.token);
                    button type="submit" name="decision" value="approve" { "Approve" }
                    button type="submit" name="decision" value="discard" { "Discard" }
                }))
            }
        }
        h2 { "Members (" (l.members.len()) ")" }
        ul {
            @for m in &l.members {
                li { (m.address) @if !m.enabled { " (disabled by bounces, score " (m.bounce.score) ")" } }
            }
        }
    }
}

/// The refusal for a user who is not an owner of `l`.
fn not_owner(l: &List, user: &User) -> Option<Response> {
    (!l.is_owner(&user.name)).then(|| layout::error(StatusCode::FORBIDDEN, "Only the list's owners may see this page"))
}

async fn moderation(State(state): State<WebState>, Path(list): Path<String>, user: User) -> Result<Response, Response> {
    let (_, l) = load(&state, list).await?;
    if let Some(refused) = not_owner(&l, &user) {
        return Err(refused);
    }
    Ok(layout::page("Moderation", Some(&user), moderation_html(&l, &user)).into_response())
}

#[derive(Deserialize)]
struct Decision {
    token: String,
    decision: String,
}

/// Equal in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn moderate(
    State(state): State<WebState>,
    Path(list): Path<String>,
    user: User,
    uri: Uri,
    axum::Form(d): axum::Form<Decision>,
) -> Result<Response, Response> {
    let given = uri.query().and_then(super::csrf::query_token).unwrap_or("");
    if !same(given, &user.csrf) {
        return Err(layout::error(
            StatusCode::FORBIDDEN,
            "Missing or wrong form token; reload the page",
        ));
    }
    let (store, l) = load(&state, list).await?;
    if let Some(refused) = not_owner(&l, &user) {
        return Err(refused);
    }
    let page = href(&l, "/moderate");
    let discard = d.decision == "discard";
    let shared = Arc::clone(&state.shared);
    blocking(move || crate::lists::moderate(&shared, &store, &l, &d.token, discard, crate::queue::now())).await?;
    Ok(Redirect::to(&page).into_response())
}

/// The refusal, unless the archive is readable by `user`: public, or
/// private and `user` a member or owner.
fn may_not_read(l: &List, user: Option<&User>) -> Option<Response> {
    match (l.settings.archive, user) {
        (ArchiveMode::Public, _) => None,
        (ArchiveMode::None, _) => Some(layout::error(StatusCode::NOT_FOUND, "This list keeps no archive")),
        (ArchiveMode::Private, None) => Some(Redirect::to("/login").into_response()),
        (ArchiveMode::Private, Some(u)) if l.member(&u.name).is_some() || l.is_owner(&u.name) => None,
        (ArchiveMode::Private, Some(_)) => {
            Some(layout::error(StatusCode::FORBIDDEN, "The archive is for members only"))
        }
    }
}

async fn read_archive(state: &WebState, list: String, user: Option<&User>) -> Result<(List, Vec<u8>), Response> {
    let (store, l) = load(state, list).await?;
    if let Some(refused) = may_not_read(&l, user) {
        return Err(refused);
    }
    let path = store.archive_path(&l);
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path).unwrap_or_default())
        .await
        .unwrap_or_default();
    Ok((l, bytes))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

fn post_line(l: &List, p: &archive::Post) -> Markup {
    html! {
        a href=(href(l, &format!("/archive/msg/{}", p.number))) { (p.subject) }
        " — " (p.from) " — " (crate::datetime::rfc5322(p.date.max(0) as u64))
    }
}

/// Months with their counts, the search form, and any search results.
pub fn archive_index_html(l: &List, posts: &[archive::Post], query: Option<&str>) -> Markup {
    html! {
        h1 { "Archive of " (l.address()) }
        form method="get" action=(href(l, "/archive")) {
            input type="search" name="q" value=(query.unwrap_or(""));
            button type="submit" { "Search" }
        }
        @if let Some(q) = query {
            h2 { "Posts matching “" (q) "”" }
            ul { @for p in archive::search(posts, q) { li { (post_line(l, p)) } } }
        }
        h2 { "By month" }
        ul {
            @for (month, n) in archive::months(posts) {
                li { a href=(href(l, &format!("/archive/{month}"))) { (month) } " (" (n) ")" }
            }
        }
        p { a href=(href(l, "/archive.mbox")) { "Download the archive (mbox)" } }
    }
}

async fn archive_index(
    State(state): State<WebState>,
    Path(list): Path<String>,
    Query(q): Query<SearchQuery>,
    user: Result<User, Response>,
) -> Result<Response, Response> {
    let user = user.ok();
    let (l, bytes) = read_archive(&state, list, user.as_ref()).await?;
    let posts = archive::posts(&bytes);
    let body = archive_index_html(&l, &posts, q.q.as_deref().filter(|q| !q.trim().is_empty()));
    Ok(layout::page("Archive", user.as_ref(), body).into_response())
}

/// One month's posts, by thread.
pub fn month_html(l: &List, posts: &[archive::Post], month: &str) -> Markup {
    let in_month: Vec<archive::Post> = posts.iter().filter(|p| archive::month(p) == month).cloned().collect();
    html! {
        h1 { (l.address()) ": " (month) }
        @for thread in archive::threads(&in_month) {
            ul.thread {
                @for (depth, p) in thread {
                    li style=(format!("margin-left: {}em", depth * 2)) { (post_line(l, p)) }
                }
            }
        }
        p { a href=(href(l, "/archive")) { "All months" } }
    }
}

async fn archive_month(
    State(state): State<WebState>,
    Path((list, month)): Path<(String, String)>,
    user: Result<User, Response>,
) -> Result<Response, Response> {
    let user = user.ok();
    let (l, bytes) = read_archive(&state, list, user.as_ref()).await?;
    let body = month_html(&l, &archive::posts(&bytes), &month);
    Ok(layout::page("Archive", user.as_ref(), body).into_response())
}

/// One post (its permalink): the headers people read and the text, escaped.
pub fn message_html(l: &List, p: &archive::Post) -> Markup {
    html! {
        h1 { (p.subject) }
        p { "From " (p.from) ", " (crate::datetime::rfc5322(p.date.max(0) as u64)) }
        pre.body { (p.text) }
        p { a href=(href(l, &format!("/archive/{}", archive::month(p)))) { "The month's posts" } }
    }
}

async fn archive_message(
    State(state): State<WebState>,
    Path((list, number)): Path<(String, usize)>,
    user: Result<User, Response>,
) -> Result<Response, Response> {
    let user = user.ok();
    let (l, bytes) = read_archive(&state, list, user.as_ref()).await?;
    let posts = archive::posts(&bytes);
    let Some(p) = posts.get(number) else {
        return Err(layout::error(StatusCode::NOT_FOUND, "No such post"));
    };
    Ok(layout::page(&p.subject, user.as_ref(), message_html(&l, p)).into_response())
}

async fn archive_mbox(
    State(state): State<WebState>,
    Path(list): Path<String>,
    user: Result<User, Response>,
) -> Result<Response, Response> {
    let user = user.ok();
    let (l, bytes) = read_archive(&state, list, user.as_ref()).await?;
    let name = format!("attachment; filename=\"{}.mbox\"", l.name);
    Ok((
        [
            (header::CONTENT_TYPE, "application/mbox".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::store::Settings;

    fn list() -> List {
        List::sample(Settings {
            description: "<b>devs</b>".into(),
            secret: "k".into(),
            ..Settings::default()
        })
    }

    #[test]
    fn pages_escape_what_they_show() {
        let l = list();
        let info = info_html(&l).into_string();
        assert!(
            info.contains("&lt;b&gt;devs&lt;/b&gt;") && !info.contains("<b>devs"),
            "{info}"
        );
        assert!(info.contains(r#"action="/lists/dev%40x.test/subscribe""#), "{info}");
        let mbox =
            b"From a@x.test Thu Jan  1 00:00:00 2026\nFrom: <script>@x.test\nSubject: <img src=x onerror=alert(1)>\n\
            Date: Thu, 1 Jan 2026 00:00:00 +0000\n\n<script>alert(1)</script>\n\n";
        let posts = archive::posts(mbox);
        let page = message_html(&l, &posts[0]).into_string();
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains("<script>"),
            "{page}"
        );
        assert!(!page.contains("<img"), "{page}");
        let index = archive_index_html(&l, &posts, Some("<q>")).into_string();
        assert!(index.contains("&lt;q&gt;") && index.contains("2026-01"), "{index}");
        let month = month_html(&l, &posts, "2026-01").into_string();
        assert!(month.contains("/lists/dev%40x.test/archive/msg/0"), "{month}");
    }

    #[test]
    fn the_confirm_page_says_what_the_token_does() {
        let mut l = list();
        l.add_pending(
            "00112233445566778899",
            Action::Subscribe,
            "bob@y.test",
            "",
            crate::queue::now(),
        );
        let page = confirm_html(&l, "00112233445566778899").into_string();
        assert!(
            page.contains("Subscribe bob@y.test to dev@x.test?") && page.contains(r#"method="post""#),
            "{page}"
        );
        assert!(confirm_html(&l, "ffff").into_string().contains("does not exist"));
    }
}
