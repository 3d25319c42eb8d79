//! Logging in and out: the same credentials and failed-login throttle as
//! IMAP (`Authenticator`), the same store opening, then a session cookie.

use super::listener::ClientAddr;
use super::session::{self, COOKIE};
use super::{User, WebState, csrf, layout};
use crate::store;
use axum::extract::{Extension, Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct Credentials {
    user: String,
    password: String,
}

fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let (token, cookie) = csrf::login_token();
    let body: Markup = html! {
        div.login {
            h1 { "Log in" }
            @if let Some(p) = problem { p.error role="alert" { (p) } }
            (layout::token_form(&token, "/login", false, html! {
                label { "User " input type="text" name="user" autocomplete="username" autofocus required; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }))
        }
    };
    (
        status,
        [(header::SET_COOKIE, cookie)],
        layout::page("Log in", None, body),
    )
        .into_response()
}

pub async fn form() -> Response {
    login_page(StatusCode::OK, None)
}

pub async fn submit(
    State(state): State<WebState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    Form(creds): Form<Credentials>,
) -> Response {
    let auth = &state.shared.auth;
    if auth.throttled(client.ip()) {
        return login_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed logins; try again later."),
        );
    }
    if crate::privsep::client::serves_session(&creds.user) {
        // Webmail reads the store in this process, which cannot reach a
        // system user's files after the drop; IMAP and POP3 can.
        return login_page(
            StatusCode::FORBIDDEN,
            Some("Webmail is for virtual users (user@domain) on this server; read system mail over IMAP or POP3."),
        );
    }
    let (shared, user) = (Arc::clone(&state.shared), creds.user.clone());
    let checked = tokio::task::spawn_blocking(move || {
        if !shared.auth.verify_password(&user, &creds.password) {
            return Ok(None);
        }
        store::open_user(&shared.config, &user).map(Some)
    })
    .await;
    match checked {
        Ok(Ok(Some(store))) => {
            auth.record_success(client.ip());
            tracing::info!("web: {:?} logged in from {client}", creds.user);
            let id = state.sessions.create(&creds.user, Arc::new(store));
            let cookie = session::set_cookie(COOKIE, &id, None);
            let clear = session::set_cookie(csrf::LOGIN_COOKIE, "", Some(0));
            let mut resp = Redirect::to("/").into_response();
            resp.headers_mut()
                .append(header::SET_COOKIE, cookie.parse().expect("token is ASCII"));
            resp.headers_mut()
                .append(header::SET_COOKIE, clear.parse().expect("ASCII"));
            resp
        }
        Ok(Ok(None)) => {
            auth.record_failure(client.ip());
            tracing::warn!("web: login failed from {client}");
            login_page(StatusCode::UNAUTHORIZED, Some("Wrong user name or password."))
        }
        Ok(Err(e)) => {
            tracing::error!("web: opening the mail of {:?}: {e}", creds.user);
            login_page(StatusCode::SERVICE_UNAVAILABLE, Some(&e.to_string()))
        }
        Err(e) => {
            tracing::error!("web: login task: {e}");
            layout::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
        }
    }
}

pub async fn logout(State(state): State<WebState>, user: User) -> Response {
    state.sessions.remove(&user.session);
    tracing::info!("web: {:?} logged out", user.name);
    let clear = session::set_cookie(COOKIE, "", Some(0));
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}
