//! A webmail user's sender identities: the account address (always, first)
//! and the extra addresses added on the settings page, each with a display
//! name. Kept in the file `webmail-identities` at the root of the user's
//! Maildir (one `address<TAB>name` a line). An extra address is accepted
//! only if the router delivers mail to it into this user's Maildir (an
//! alias, a virtusertable entry, a `user+tag` subaddress), so nobody can
//! send as an address that is not theirs.

use super::folders::blocking;
use super::{User, WebState, layout};
use crate::deliver::Target;
use crate::recipient::{Resolved, Router};
use crate::store::{Store, StoreError};
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// The file at the Maildir's root.
pub const FILE: &str = "webmail-identities";

/// One address the user may send from, with the name shown beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub address: String,
}

impl Identity {
    /// As a From: header value: `"Name" <address>`, or the bare address without a name.
    pub fn header(&self) -> String {
        if self.name.is_empty() {
            self.address.clone()
        } else {
            format!("\"{}\" <{}>", self.name, self.address)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0:?} is not an address: write it as name@domain.")]
    NotAnAddress(String),
    #[error("Mail to {0} does not reach this account, so it cannot be one of your sender addresses.")]
    NotYours(String),
    #[error("{0} is one of your identities already.")]
    Duplicate(String),
    #[error("{0} is not one of your identities.")]
    Unknown(String),
    #[error("The account address cannot be removed.")]
    Account,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A display name as typed, without what would break the header or the
/// file: quotes, backslashes, angle brackets, commas, control characters.
pub fn clean_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| !matches!(c, '"' | '\\' | '<' | '>' | ','))
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// An address as typed, if it is one plain `local@domain` with nothing around it.
pub fn clean_address(address: &str) -> Option<String> {
    let a = address.trim();
    let (local, domain) = a.rsplit_once('@')?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_graphic()
                    && !matches!(
                        c,
                        '<' | '>' | ',' | '"' | '(' | ')' | '[' | ']' | '\\' | ';' | ':' | '@'
                    )
            })
    };
    (plain(local) && plain(domain)).then(|| a.to_string())
}

/// The identities in the file's `text`, `account` first (with its name if
/// the file gives one), then the others in the order they were added.
pub fn parse(text: &str, account: &str) -> Vec<Identity> {
    let mut out = vec![Identity {
        name: String::new(),
        address: account.to_string(),
    }];
    for line in text.lines() {
        let (address, name) = line.split_once('\t').unwrap_or((line, ""));
        let name = clean_name(name);
        // The account is whatever the login makes it, so it is matched before the address check.
        if address.trim().eq_ignore_ascii_case(account) {
            out[0].name = name;
            continue;
        }
        let Some(address) = clean_address(address) else {
            continue;
        };
        if find(&out, &address).is_none() {
            out.push(Identity { name, address });
        }
    }
    out
}

/// The file's text for `ids`.
pub fn render(ids: &[Identity]) -> String {
    ids.iter().map(|i| format!("{}\t{}\n", i.address, i.name)).collect()
}

/// The identity with `address` (compared without regard to case).
pub fn find<'a>(ids: &'a [Identity], address: &str) -> Option<&'a Identity> {
    ids.iter().find(|i| i.address.eq_ignore_ascii_case(address.trim()))
}

/// Whether the router delivers mail to `address` into the Maildir at `maildir`.
pub fn reaches(router: &Router, address: &str, maildir: &Path) -> bool {
    let same = |dir: &Path| dir == maildir || dir.canonicalize().ok() == maildir.canonicalize().ok();
    router
        .expand(address)
        .iter()
        .any(|r| matches!(r, Resolved::Deliver { target: Target::Maildir { dir, .. }, .. } if same(dir)))
}

/// The user's identities, read from their Maildir. Blocking.
pub fn load(store: &Store, account: &str) -> Result<Vec<Identity>, StoreError> {
    Ok(parse(&store.read_meta(FILE)?, account))
}

/// One change asked for on the settings page.
#[derive(Debug, Deserialize)]
pub struct IdentityChange {
    /// `add`, `name` (set the display name) or `remove`.
    action: String,
    address: String,
    #[serde(default)]
    name: String,
}

/// Apply `c` to `ids` (pure apart from `reaches`, asked only when adding).
pub fn change(
    ids: &mut Vec<Identity>,
    c: &IdentityChange,
    reaches: impl FnOnce(&str) -> bool,
) -> Result<(), IdentityError> {
    let address = clean_address(&c.address).ok_or_else(|| IdentityError::NotAnAddress(c.address.clone()))?;
    let at = ids.iter().position(|i| i.address.eq_ignore_ascii_case(&address));
    match (c.action.as_str(), at) {
        ("add", Some(_)) => Err(IdentityError::Duplicate(address)),
        ("add", None) if !reaches(&address) => Err(IdentityError::NotYours(address)),
        ("add", None) => {
            ids.push(Identity {
                name: clean_name(&c.name),
                address,
            });
            Ok(())
        }
        ("name", Some(at)) => {
            ids[at].name = clean_name(&c.name);
            Ok(())
        }
        ("remove", Some(0)) => Err(IdentityError::Account),
        ("remove", Some(at)) => {
            ids.remove(at);
            Ok(())
        }
        _ => Err(IdentityError::Unknown(address)),
    }
}

/// The user's identities, or the error page.
pub async fn of(state: &WebState, user: &User) -> Result<Vec<Identity>, Response> {
    let account = super::compose::identity(&user.name, &state.shared.config.hostname);
    let store = Arc::clone(&user.store);
    blocking(move || load(&store, &account)).await
}

fn page(user: &User, ids: &[Identity], problem: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        h1 { "Identities" }
        p { "The addresses you can send from. Another address can be added when mail to it reaches you (an alias of yours, or you+anything)." }
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        table {
            tr { th { "Address" } th { "Name" } th {} }
            @for (n, id) in ids.iter().enumerate() {
                tr {
                    td { (id.address) }
                    td {
                        (layout::form(user, "/settings/identities", html! {
                            input type="hidden" name="action" value="name";
                            input type="hidden" name="address" value=(id.address);
                            input type="text" name="name" value=(id.name) aria-label="Name";
                            button type="submit" { "Save" }
                        }))
                    }
                    td {
                        @if n > 0 {
                            (layout::form(user, "/settings/identities", html! {
                                input type="hidden" name="action" value="remove";
                                input type="hidden" name="address" value=(id.address);
                                button type="submit" { "Remove" }
                            }))
                        }
                    }
                }
            }
        }
        h2 { "Add an identity" }
        (layout::form(user, "/settings/identities", html! {
            input type="hidden" name="action" value="add";
            p { label { "Name " input type="text" name="name" size="30"; } }
            p { label { "Address " input type="text" name="address" size="40"; } }
            button type="submit" { "Add" }
        }))
        p { a href="/compose" { "Compose" } }
    };
    (status, layout::page("Identities", Some(user), body)).into_response()
}

pub async fn show(State(state): State<WebState>, user: User) -> Response {
    match of(&state, &user).await {
        Ok(ids) => page(&user, &ids, None, StatusCode::OK),
        Err(resp) => resp,
    }
}

pub async fn submit(State(state): State<WebState>, user: User, Form(c): Form<IdentityChange>) -> Response {
    let account = super::compose::identity(&user.name, &state.shared.config.hostname);
    let (store, router) = (Arc::clone(&user.store), Arc::clone(&state.shared.router));
    let changed = tokio::task::spawn_blocking(move || {
        let mut ids = load(&store, &account)?;
        let result = change(&mut ids, &c, |a| reaches(&router, a, store.root()));
        if result.is_ok() {
            store.write_meta(FILE, render(&ids).as_bytes())?;
        }
        Ok::<_, StoreError>((ids, result))
    })
    .await;
    match changed {
        Ok(Ok((_, Ok(())))) => Redirect::to("/settings/identities").into_response(),
        Ok(Ok((ids, Err(e)))) => page(&user, &ids, Some(&e.to_string()), StatusCode::BAD_REQUEST),
        Ok(Err(e)) => {
            tracing::error!("web: identities of {:?}: {e}", user.name);
            layout::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
        Err(e) => layout::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ask(action: &str, address: &str, name: &str) -> IdentityChange {
        IdentityChange {
            action: action.into(),
            address: address.into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_account_comes_first_and_the_file_round_trips() {
        let ids = parse(
            "sales@example.test\tSales Desk\nalice@example.test\tAlice A\nnot an address\tx\n",
            "alice@example.test",
        );
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].header(), "\"Alice A\" <alice@example.test>");
        assert_eq!(ids[1].header(), "\"Sales Desk\" <sales@example.test>");
        assert_eq!(parse(&render(&ids), "alice@example.test"), ids);
        assert_eq!(parse("", "alice@example.test")[0].header(), "alice@example.test");
        let root = Identity {
            name: "Root".into(),
            address: "root".into(),
        };
        assert_eq!(parse(&render(&[root]), "root")[0].header(), "\"Root\" <root>");
        assert_eq!(find(&ids, "SALES@example.test "), Some(&ids[1]));
    }

    #[test]
    fn changes_are_checked() {
        let mut ids = parse("", "alice@example.test");
        let yes = |_: &str| true;
        change(
            &mut ids,
            &ask("add", " sales@example.test ", "Sales \"Desk\", <x>"),
            yes,
        )
        .unwrap();
        assert_eq!(ids[1].header(), "\"Sales Desk x\" <sales@example.test>");
        let no = |_: &str| false;
        assert!(matches!(
            change(&mut ids, &ask("add", "bob@example.test", ""), no),
            Err(IdentityError::NotYours(_))
        ));
        assert!(matches!(
            change(&mut ids, &ask("add", "Sales@example.test", ""), yes),
            Err(IdentityError::Duplicate(_))
        ));
        assert!(matches!(
            change(&mut ids, &ask("add", "a@b.test>, evil@x.test", ""), yes),
            Err(IdentityError::NotAnAddress(_))
        ));
        assert!(matches!(
            change(&mut ids, &ask("remove", "alice@example.test", ""), yes),
            Err(IdentityError::Account)
        ));
        change(&mut ids, &ask("name", "alice@example.test", "Alice"), yes).unwrap();
        change(&mut ids, &ask("remove", "sales@example.test", ""), yes).unwrap();
        assert_eq!(ids, parse("alice@example.test\tAlice\n", "alice@example.test"));
    }

    proptest! {
        #[test]
        fn any_file_parses_to_safe_identities(text in "(?s).{0,300}") {
            let ids = parse(&text, "me@example.test");
            prop_assert_eq!(&ids[0].address, "me@example.test");
            for id in &ids {
                let header = id.header();
                prop_assert!(!header.contains(['\r', '\n', ',']), "{:?}", header);
                prop_assert_eq!(header.matches('<').count(), usize::from(!id.name.is_empty()));
            }
            prop_assert_eq!(parse(&render(&ids), "me@example.test"), ids);
        }
    }
}
