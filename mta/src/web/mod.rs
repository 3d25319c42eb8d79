//! Webmail, the admin status page, and room for other modules' pages: one
//! HTTPS listener (rustls, on the `net` layer) serving an axum [`Router`].
//! Pages are rendered on the server with maud (auto-escaping) and work
//! without JavaScript.
//!
//! # Adding pages from another module
//!
//! A page module (say `lists`, the pages of `crate::lists`) writes a `pub fn
//! routes() -> Router<WebState>` with paths relative to its prefix, and one
//! line in [`router`] mounts it,
//! among the other routes (before the `.layer` calls, so the layers cover
//! it): `.nest("/lists", lists::routes())`. Its handlers get:
//!
//! - [`WebState`] (`State<WebState>`): the daemon's [`Shared`] (config,
//!   authenticator, router, queue: [`Shared::accept_message`] is the path
//!   port 587 takes) and the session table;
//! - [`User`] as an extractor: the logged-in user with their open [`Store`](crate::store::Store);
//!   a request without a live session is redirected to the login page;
//! - CSRF protection: every request other than GET/HEAD is refused (403)
//!   unless it carries the session's token, so forms must be built with
//!   [`layout::form`] (which puts the token in the action URL, so urlencoded
//!   and multipart forms alike are covered);
//! - [`layout::page`] for the common page frame (escaping is maud's `(…)`),
//!   and the security headers (CSP, nosniff, no-store) on every response.

pub mod admin;
pub mod charts;
pub mod compose;
pub mod csrf;
pub mod folders;
pub mod identities;
pub mod layout;
pub mod list;
pub mod listener;
pub mod lists;
pub mod login;
pub mod mime;
pub mod read;
pub mod sanitise;
pub mod session;
pub mod url;

pub use session::{Sessions, User};

use crate::service::Shared;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// What every handler may use: the daemon's shared state and the sessions.
#[derive(Clone)]
pub struct WebState {
    pub shared: Arc<Shared>,
    pub sessions: Arc<Sessions>,
}

impl WebState {
    pub fn new(shared: Arc<Shared>) -> WebState {
        let sessions = Arc::new(Sessions::new(shared.config.web.idle_timeout));
        WebState { shared, sessions }
    }
}

/// The whole site: webmail, the pages other modules add, and the layers
/// every page gets (CSRF check, security headers).
pub fn router(state: WebState) -> Router {
    // Room for the form fields and multipart framing around a message of the largest size.
    let upload_limit = usize::try_from(state.shared.config.smtp.max_message_size).unwrap_or(usize::MAX) + (1 << 20);
    Router::new()
        .route("/", get(folders::home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/style.css", get(layout::stylesheet))
        .route("/folders", post(folders::manage))
        .route("/admin", get(admin::page))
        .route("/settings/identities", get(identities::show).post(identities::submit))
        .route("/mail", get(list::list))
        .route("/mail/act", post(list::act))
        .route("/msg", get(read::show))
        .route("/msg/body", get(read::frame))
        .route("/msg/part", get(read::part))
        .route("/msg/raw", get(read::raw))
        .route("/msg/headers", get(read::headers))
        .route(
            "/compose",
            get(compose::form)
                .post(compose::submit)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), csrf::check))
        .nest("/lists", lists::routes())
        .layer(axum::middleware::from_fn(layout::security_headers))
        .with_state(state)
}
