//! The folder page: every folder with its unread and total counts, and
//! creating, renaming and deleting folders.

use super::{User, WebState, layout, url};
use crate::store::{SPECIAL_FOLDERS, Store, StoreError};
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

/// One folder's line on the folder page.
pub struct FolderCount {
    pub name: String,
    pub unread: usize,
    pub total: usize,
}

/// Every existing folder with its counts (blocking).
pub fn counts(store: &Store) -> Result<Vec<FolderCount>, StoreError> {
    let mut out = Vec::new();
    for f in store.folders()?.into_iter().filter(|f| f.exists) {
        let snap = store.mailbox(&f.name)?.sync()?;
        out.push(FolderCount {
            unread: snap.messages.iter().filter(|m| !m.flags.seen).count(),
            total: snap.messages.len(),
            name: f.name,
        });
    }
    Ok(out)
}

/// Run store work off the reactor; a failure becomes a 500 page.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::NoSuchMailbox(name))) => {
            Err(layout::error(StatusCode::NOT_FOUND, &format!("No folder named {name}")))
        }
        Ok(Err(
            e @ (StoreError::BadName(_) | StoreError::Exists(_) | StoreError::Inbox | StoreError::NoSuchMessage(_)),
        )) => Err(layout::error(StatusCode::BAD_REQUEST, &e.to_string())),
        Ok(Err(e)) => {
            tracing::error!("web: store: {e}");
            Err(layout::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
        }
        Err(e) => {
            tracing::error!("web: store task: {e}");
            Err(layout::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"))
        }
    }
}

pub async fn home(State(state): State<WebState>, user: User) -> Response {
    let admin = state.shared.config.web.admins.contains(&user.name);
    let store = Arc::clone(&user.store);
    let folders = match blocking(move || counts(&store)).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let body = html! {
        h1 { "Folders" }
        table.folders {
            thead { tr { th { "Folder" } th.num { "Unread" } th.num { "Total" } } }
            tbody {
                @for f in &folders {
                    tr.unread[f.unread > 0] {
                        td { a href=(format!("/mail?f={}", url::enc(&f.name))) { (f.name) } }
                        td.num { (f.unread) }
                        td.num { (f.total) }
                    }
                }
            }
        }
        p.actions {
            a href="/compose" { "Compose" }
            @if admin { a href="/admin" { "Status" } }
        }
        h2 { "Manage folders" }
        (layout::form(&user, "/folders", html! {
            div.actions {
                select name="action" aria-label="What" {
                    option value="create" { "Create" }
                    option value="rename" { "Rename" }
                    option value="delete" { "Delete" }
                }
                input type="text" name="name" placeholder="Folder" aria-label="Folder" required;
                input type="text" name="new_name" placeholder="New name (rename)" aria-label="New name";
                button type="submit" { "Go" }
            }
        }))
    };
    layout::page("Folders", Some(&user), body).into_response()
}

#[derive(Deserialize)]
pub struct FolderChange {
    action: String,
    name: String,
    #[serde(default)]
    new_name: String,
}

/// Create, rename or delete a folder (INBOX and the special folders stay).
pub fn change(store: &Store, c: &FolderChange) -> Result<(), StoreError> {
    let special = |n: &str| n.eq_ignore_ascii_case("INBOX") || SPECIAL_FOLDERS.iter().any(|(s, _)| *s == n);
    match c.action.as_str() {
        "create" => store.create_folder(c.name.trim()),
        "rename" if !special(&c.name) => store.rename_folder(&c.name, c.new_name.trim()),
        "delete" if !special(&c.name) => store.delete_folder(&c.name),
        _ => Err(StoreError::BadName(format!("{} cannot be changed that way", c.name))),
    }
}

pub async fn manage(user: User, Form(c): Form<FolderChange>) -> Response {
    let store = Arc::clone(&user.store);
    match blocking(move || change(&store, &c)).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(resp) => resp,
    }
}
