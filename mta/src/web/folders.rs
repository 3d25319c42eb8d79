//! The folder page: every folder with its unread and total counts.

use super::{User, layout};
use crate::store::{Store, StoreError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
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

pub async fn home(user: User) -> Response {
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
                    tr {
                        td { (f.name) }
                        td.num { (f.unread) }
                        td.num { (f.total) }
                    }
                }
            }
        }
    };
    layout::page("Folders", Some(&user), body).into_response()
}
