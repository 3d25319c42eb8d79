//! Cross-site request forgery: every request that is not GET or HEAD must
//! carry a token an attacker's page cannot know, in the `csrf` query
//! parameter of the form's action URL (so urlencoded and multipart bodies
//! are covered alike, and the check runs before any body is read). Logged
//! in, the token is the session's; on the login form it is a random value
//! also set as a cookie (double submit), so a forged login is refused too.

use super::WebState;
use super::session::{self, cookie};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The query parameter forms carry the token in.
pub const PARAM: &str = "csrf";
/// The cookie of the login form's token.
pub const LOGIN_COOKIE: &str = "__Host-mta-login";

/// `url` with `token` added as the `csrf` query parameter.
pub fn action(url: &str, token: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{PARAM}={token}")
}

/// The `csrf` parameter of a query string (pure, bytes from the network).
pub fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == PARAM)
        .map(|(_, v)| v)
}

/// Equal tokens, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: refuse unsafe methods without the right token.
pub async fn check(State(state): State<WebState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let expected = match state.sessions.of_request(req.headers()) {
        Some(user) => Some(user.csrf),
        None => cookie(req.headers(), LOGIN_COOKIE).map(str::to_string),
    };
    let given = req.uri().query().and_then(query_token);
    match (expected, given) {
        (Some(e), Some(g)) if !e.is_empty() && same(&e, g) => next.run(req).await,
        _ => {
            tracing::info!(
                "web: {} {} refused: missing or wrong CSRF token",
                req.method(),
                req.uri().path()
            );
            (
                StatusCode::FORBIDDEN,
                "403 Forbidden: missing or wrong form token; reload the page\n",
            )
                .into_response()
        }
    }
}

/// A token for the login form, and the cookie that pairs with it.
pub fn login_token() -> (String, String) {
    let token = session::token();
    let cookie = session::set_cookie(LOGIN_COOKIE, &token, None);
    (token, cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_token_rides_in_the_action_url() {
        assert_eq!(action("/m/INBOX/move", "ab"), "/m/INBOX/move?csrf=ab");
        assert_eq!(action("/m?page=2", "ab"), "/m?page=2&csrf=ab");
        assert_eq!(query_token("page=2&csrf=ab"), Some("ab"));
        assert_eq!(query_token("xcsrf=ab"), None);
        assert_eq!(query_token(""), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }

    proptest! {
        #[test]
        fn an_action_url_gives_its_token_back(path in "/[a-z/]{0,20}", q in proptest::option::of("[a-z]{1,5}=[a-z0-9]{0,5}"), t in "[0-9a-f]{1,64}") {
            let url = match q { Some(q) => format!("{path}?{q}"), None => path };
            let with = action(&url, &t);
            let query = with.split_once('?').unwrap().1;
            prop_assert_eq!(query_token(query), Some(t.as_str()));
        }

        #[test]
        fn any_query_is_handled(q in ".{0,200}") {
            let _ = query_token(&q);
        }
    }
}
