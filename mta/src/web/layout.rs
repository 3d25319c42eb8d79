//! The page frame every page shares (viewport for phones, one small
//! stylesheet, the user's bar), forms that carry the CSRF token, error
//! pages, the headers every response gets, and sizes as people write them.

use super::{User, csrf};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// Pages load nothing from elsewhere and run no script; a handler that
/// needs another policy (the message frame) sets its own.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
     frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("style.css");

/// A whole page: `title`, the user's bar when logged in, and `body`.
pub fn page(title: &str, user: Option<&User>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mail" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                @if let Some(user) = user {
                    header.bar {
                        a href="/" { "Mail" }
                        span.who { (user.name) }
                        (form(user, "/logout", html! { button type="submit" { "Log out" } }))
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A POST form to `action` carrying `user`'s CSRF token.
pub fn form(user: &User, action: &str, body: Markup) -> Markup {
    token_form(&user.csrf, action, false, body)
}

/// A POST form with an explicit token (the login form's); `multipart` for uploads.
pub fn token_form(token: &str, action: &str, multipart: bool, body: Markup) -> Markup {
    let enctype = if multipart {
        "multipart/form-data"
    } else {
        "application/x-www-form-urlencoded"
    };
    html! {
        form method="post" action=(csrf::action(action, token)) enctype=(enctype) { (body) }
    }
}

/// An error page with `status` and a one-line explanation.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = page(
        status.canonical_reason().unwrap_or("Error"),
        None,
        html! { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p { (message) } p { a href="/" { "Back" } } },
    );
    (status, body).into_response()
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// Middleware: mail is private, pages are not framed by others, types are not sniffed.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(PAGE_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    resp
}

/// A size as people write it: "10 B", "2 kB", "3.0 MB".
pub fn human_size(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{} kB", n.div_ceil(1024)),
        _ => format!("{:.1} MB", n as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(2048), "2 kB");
        assert_eq!(human_size(3 << 20), "3.0 MB");
    }
}
