//! Webmail sessions: a random id in a `__Host-` cookie (HttpOnly, Secure,
//! SameSite=Lax), held in memory with the user's open store and CSRF token,
//! and ended by logout or after `web.idle_timeout` without a request. The
//! [`User`] extractor is how a handler asks for the logged-in user.

use super::WebState;
use crate::store::Store;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The session cookie; `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const COOKIE: &str = "__Host-mta-session";

/// The logged-in user of a request.
#[derive(Clone)]
pub struct User {
    /// The login name (`alice@example.org`, or a system user's name).
    pub name: String,
    /// What forms must carry (see [`super::csrf`]).
    pub csrf: String,
    pub store: Arc<Store>,
    /// The session id, to end it.
    pub(super) session: String,
}

struct Entry {
    user: String,
    csrf: String,
    store: Arc<Store>,
    last_seen: Instant,
}

/// Live sessions by id.
pub struct Sessions {
    table: Mutex<HashMap<String, Entry>>,
    idle: Duration,
}

/// A fresh unguessable token (256 bits, URL- and cookie-safe hex).
pub fn token() -> String {
    crate::auth::users::random_bytes(32)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            table: Mutex::default(),
            idle,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start a session for `user`; returns its id. Expired sessions go first,
    /// so the table never holds more than the last idle period's logins.
    pub fn create(&self, user: &str, store: Arc<Store>) -> String {
        let id = token();
        let mut table = self.table();
        table.retain(|_, e| e.last_seen.elapsed() < self.idle);
        table.insert(
            id.clone(),
            Entry {
                user: user.to_string(),
                csrf: token(),
                store,
                last_seen: Instant::now(),
            },
        );
        id
    }

    /// The live session `id`, its idle time restarted; an expired one is removed.
    pub fn touch(&self, id: &str) -> Option<User> {
        let mut table = self.table();
        let entry = table.get_mut(id)?;
        if entry.last_seen.elapsed() >= self.idle {
            table.remove(id);
            return None;
        }
        entry.last_seen = Instant::now();
        Some(User {
            name: entry.user.clone(),
            csrf: entry.csrf.clone(),
            store: Arc::clone(&entry.store),
            session: id.to_string(),
        })
    }

    pub fn remove(&self, id: &str) {
        self.table().remove(id);
    }

    /// The live session a request's cookie names.
    pub fn of_request(&self, headers: &HeaderMap) -> Option<User> {
        cookie(headers, COOKIE).and_then(|id| self.touch(id))
    }
}

/// `Set-Cookie` for `name=value`, scoped to the whole site; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{age}")
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v, name))
}

/// The value of `name` in one `Cookie:` header (`a=1; b=2`), pure and total.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

impl FromRequestParts<WebState> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<User, Response> {
        state
            .sessions
            .of_request(&parts.headers)
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = "a=1; __Host-mta-session=abc; x__Host-mta-session=no";
        assert_eq!(cookie_value(h, COOKIE), Some("abc"));
        assert_eq!(cookie_value("b=2", "a"), None);
        assert_eq!(cookie_value("a=\"q\"", "a"), Some("q"));
        assert_eq!(cookie_value("junk;;=;a", "a"), None);
    }

    #[test]
    fn sessions_end_after_the_idle_time_and_on_logout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), None).unwrap());
        let sessions = Sessions::new(Duration::from_millis(200));
        let id = sessions.create("alice@example.test", Arc::clone(&store));
        let user = sessions.touch(&id).expect("live");
        assert_eq!(user.name, "alice@example.test");
        assert_eq!(user.csrf.len(), 64);
        assert!(sessions.touch("not-a-session").is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(sessions.touch(&id).is_none(), "idle session still live");
        let id = sessions.create("alice@example.test", store);
        sessions.remove(&id);
        assert!(sessions.touch(&id).is_none());
    }

    #[test]
    fn cookies_are_secure_httponly_lax() {
        let c = set_cookie(COOKIE, "v", None);
        assert_eq!(c, "__Host-mta-session=v; Path=/; Secure; HttpOnly; SameSite=Lax");
        assert!(set_cookie(COOKIE, "", Some(0)).ends_with("; Max-Age=0"));
    }

    proptest! {
        #[test]
        fn a_cookie_set_is_read_back(name in "[a-zA-Z_-]{1,20}", value in "[a-zA-Z0-9]{0,40}", other in "[a-z]{1,5}=[a-z]{0,5}") {
            let header = format!("{other}; {name}={value}");
            prop_assume!(!other.starts_with(&format!("{name}=")));
            prop_assert_eq!(cookie_value(&header, &name), Some(value.as_str()));
        }

        #[test]
        fn any_header_is_handled(header in ".{0,200}", name in ".{0,10}") {
            let _ = cookie_value(&header, &name);
        }
    }
}
