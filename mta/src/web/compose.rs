//! Writing mail: new, reply, reply-all and forward forms, and sending
//! through the same path as port 587 ([`crate::submit::enqueue_from`]:
//! routing, DKIM signing, the queue), with a copy in Sent; or saving to
//! Drafts. The form is multipart so files can be attached. The From is
//! one of the user's [`identities`](super::identities), checked again when
//! the form comes back.

use super::folders::blocking;
use super::identities::{self, Identity};
use super::listener::ClientAddr;
use super::mime::{Attachment, Outgoing};
use super::read::{addresses, summary};
use super::{User, WebState, layout};
use crate::queue::Client;
use crate::store::{FlagOp, Flags, Store};
use crate::submit::{Submission, enqueue_from};
use axum::extract::multipart::MultipartError;
use axum::extract::{Extension, Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use mail_parser::{Message, MessageParser};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
pub struct ComposeQuery {
    f: Option<String>,
    uid: Option<u32>,
    /// `reply`, `all` or `forward`.
    mode: Option<String>,
}

/// The sender address of a login: the login itself when it is an address, else at our host name.
pub fn identity(user: &str, hostname: &str) -> String {
    if user.contains('@') {
        user.to_string()
    } else {
        format!("{user}@{hostname}")
    }
}

/// `prefix` before the subject unless it is there already.
fn prefixed(prefix: &str, subject: &str) -> String {
    if subject.len() >= prefix.len() && subject[..prefix.len()].eq_ignore_ascii_case(prefix) {
        subject.to_string()
    } else {
        format!("{prefix} {subject}")
    }
}

/// The form's starting values for a reply (`all`: to everyone) or forward
/// of `m`. A reply is from the identity the original was addressed to, if
/// one of `mine` was; reply-all leaves all of `mine` out.
pub fn prefill(m: &Message, mode: &str, mine: &[Identity]) -> Outgoing {
    let s = summary(m);
    let addressed = recipients(&[&s.to, &s.cc]);
    let from = addressed
        .iter()
        .find_map(|a| identities::find(mine, a))
        .map(|i| i.address.clone())
        .unwrap_or_default();
    let id = m.message_id().map(|id| format!("<{id}>")).unwrap_or_default();
    if mode == "forward" {
        return Outgoing {
            subject: prefixed("Fwd:", &s.subject),
            body: "\n\n(The original message is attached.)\n".into(),
            from,
            ..Outgoing::default()
        };
    }
    let reply_to = addresses(m.reply_to());
    let to = if reply_to.is_empty() { s.from.clone() } else { reply_to };
    let cc = if mode == "all" {
        let theirs = |a: &&str| recipients(&[a]).iter().all(|r| identities::find(mine, r).is_none());
        [s.to.as_str(), s.cc.as_str()]
            .iter()
            .flat_map(|l| l.split(", "))
            .filter(|a| !a.is_empty())
            .filter(theirs)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        String::new()
    };
    let mut references: Vec<String> = match m.references() {
        mail_parser::HeaderValue::Text(t) => vec![format!("<{t}>")],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| format!("<{t}>")).collect(),
        _ => Vec::new(),
    };
    if !id.is_empty() {
        references.push(id.clone());
    }
    let quoted: String = m
        .body_text(0)
        .unwrap_or_default()
        .lines()
        .map(|l| format!("> {l}\n"))
        .collect();
    Outgoing {
        from,
        to,
        cc,
        subject: prefixed("Re:", &s.subject),
        body: format!("\n\nOn {}, {} wrote:\n{quoted}", s.date, s.from),
        in_reply_to: id,
        references: references.join(" "),
        ..Outgoing::default()
    }
}

pub async fn form(State(state): State<WebState>, user: User, Query(q): Query<ComposeQuery>) -> Response {
    let mine = match identities::of(&state, &user).await {
        Ok(ids) => ids,
        Err(resp) => return resp,
    };
    let start = match (&q.f, q.uid, q.mode.as_deref()) {
        (Some(f), Some(uid), Some(mode)) => {
            let (store, f, mode, ids) = (Arc::clone(&user.store), f.clone(), mode.to_string(), mine.clone());
            match blocking(move || {
                let raw = store.mailbox(&f)?.read(uid)?;
                Ok(MessageParser::default()
                    .parse(&raw)
                    .map(|m| prefill(&m, &mode, &ids))
                    .unwrap_or_default())
            })
            .await
            {
                Ok(o) => o,
                Err(resp) => return resp,
            }
        }
        _ => Outgoing::default(),
    };
    page(&state, &user, &mine, &q, &start, None, StatusCode::OK)
}

/// The form: `o.from` is the address of the identity preselected.
fn page(
    state: &WebState,
    user: &User,
    mine: &[Identity],
    q: &ComposeQuery,
    o: &Outgoing,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let limit = state.shared.config.smtp.max_message_size;
    let body = html! {
        h1 { "Compose" }
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        (layout::token_form(&user.csrf, "/compose", true, html! {
            @if let (Some(f), Some(uid), Some(mode)) = (&q.f, q.uid, &q.mode) {
                input type="hidden" name="f" value=(f);
                input type="hidden" name="uid" value=(uid);
                input type="hidden" name="mode" value=(mode);
            }
            input type="hidden" name="in_reply_to" value=(o.in_reply_to);
            input type="hidden" name="references" value=(o.references);
            p {
                label { "From " select name="from" {
                    @for id in mine {
                        option value=(id.address) selected[id.address.eq_ignore_ascii_case(&o.from) || id.header() == o.from] { (id.header()) }
                    }
                } }
                " " a href="/settings/identities" { "Identities" }
            }
            p { label { "To " input type="text" name="to" value=(o.to) size="60"; } }
            p { label { "Cc " input type="text" name="cc" value=(o.cc) size="60"; } }
            p { label { "Bcc " input type="text" name="bcc" size="60"; } }
            p { label { "Subject " input type="text" name="subject" value=(o.subject) size="60"; } }
            p { textarea name="body" aria-label="Message" { (o.body) } }
            p { label { "Attach " input type="file" name="attach" multiple; } }
            p.hint { "Messages up to " (super::layout::human_size(limit)) " once encoded (attachments grow by a third)." }
            div.actions {
                button type="submit" name="action" value="send" { "Send" }
                button type="submit" name="action" value="draft" { "Save draft" }
            }
        }))
    };
    (status, layout::page("Compose", Some(user), body)).into_response()
}

/// The compose form as submitted.
#[derive(Debug, Default)]
pub struct Posted {
    pub message: Outgoing,
    pub bcc: String,
    pub action: String,
    pub original: Option<(String, u32, String)>,
}

/// The submitted form could not be read (cut short, too large, not
/// multipart); shown as axum words it.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.body_text())]
pub struct FormError(#[from] MultipartError);

/// Read the multipart form into [`Posted`]; unknown fields are ignored,
/// empty file inputs skipped.
pub async fn read_form(mut form: Multipart) -> Result<Posted, FormError> {
    let mut p = Posted::default();
    let (mut f, mut uid, mut mode) = (None, None, None);
    while let Some(field) = form.next_field().await? {
        let name = field.name().unwrap_or("").to_string();
        if name == "attach" {
            let file = field.file_name().unwrap_or("").to_string();
            let ct = field.content_type().unwrap_or("application/octet-stream").to_string();
            let data = field.bytes().await?;
            if !file.is_empty() || !data.is_empty() {
                p.message.attachments.push(Attachment {
                    name: file,
                    content_type: ct,
                    data: data.to_vec(),
                });
            }
            continue;
        }
        let value = field.text().await?;
        set_field(&mut p, &name, value, (&mut f, &mut uid, &mut mode));
    }
    if let (Some(f), Some(uid), Some(mode)) = (f, uid, mode) {
        p.original = Some((f, uid, mode));
    }
    Ok(p)
}

type OriginalParts<'a> = (&'a mut Option<String>, &'a mut Option<u32>, &'a mut Option<String>);

/// One text field of the form (pure).
pub fn set_field(p: &mut Posted, name: &str, value: String, original: OriginalParts) {
    let m = &mut p.message;
    match name {
        "from" => m.from = value,
        "to" => m.to = value,
        "cc" => m.cc = value,
        "bcc" => p.bcc = value,
        "subject" => m.subject = value,
        "body" => m.body = value,
        "in_reply_to" => m.in_reply_to = value,
        "references" => m.references = value,
        "action" => p.action = value,
        "f" => *original.0 = Some(value),
        "uid" => *original.1 = value.parse().ok(),
        "mode" => *original.2 = Some(value),
        _ => {}
    }
}

/// The addresses of a To/Cc/Bcc field, parsed as a header would be.
pub fn recipients(fields: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fields {
        let header = format!("To: {}\r\n\r\n", f.replace(['\r', '\n'], " "));
        if let Some(m) = MessageParser::default().parse_headers(header.as_bytes())
            && let Some(to) = m.to()
        {
            out.extend(to.iter().filter_map(|a| a.address.as_deref()).map(str::to_string));
        }
    }
    out
}

fn flag(store: &Store, folder: &str, uid: u32, flags: Flags) -> Result<(), crate::store::StoreError> {
    store
        .mailbox(folder)?
        .store_flags(&[uid], FlagOp::Add, &flags, None)
        .map(|_| ())
}

pub async fn submit(
    State(state): State<WebState>,
    user: User,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    form: Multipart,
) -> Response {
    let mut posted = match read_form(form).await {
        Ok(p) => p,
        Err(e) => return layout::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let config = &state.shared.config;
    let mine = match identities::of(&state, &user).await {
        Ok(ids) => ids,
        Err(resp) => return resp,
    };
    // The select offers only the user's identities, but the form is the client's.
    let Some(me) = identities::find(&mine, &posted.message.from).cloned() else {
        let why = format!("{:?} is not one of your identities.", posted.message.from);
        return layout::error(StatusCode::BAD_REQUEST, &why);
    };
    posted.message.from = me.header();
    let q = ComposeQuery {
        f: posted.original.as_ref().map(|o| o.0.clone()),
        uid: posted.original.as_ref().map(|o| o.1),
        mode: posted.original.as_ref().map(|o| o.2.clone()),
    };
    if let Some((f, uid, mode)) = posted.original.clone()
        && mode == "forward"
    {
        let store = Arc::clone(&user.store);
        match blocking(move || store.mailbox(&f)?.read(uid)).await {
            Ok(raw) => posted.message.forwarded = Some(raw),
            Err(resp) => return resp,
        }
    }
    let now = crate::queue::now();
    let id = format!("<{}@{}>", &super::session::token()[..32], config.hostname);
    let boundary = format!("=_{}", &super::session::token()[..24]);
    let raw = super::mime::build(&posted.message, &crate::datetime::rfc5322(now), &id, &boundary);
    if raw.len() as u64 > config.smtp.max_message_size {
        let why = format!(
            "The message is {} once encoded, over the limit of {}.",
            super::layout::human_size(raw.len() as u64),
            super::layout::human_size(config.smtp.max_message_size)
        );
        return page(
            &state,
            &user,
            &mine,
            &q,
            &posted.message,
            Some(&why),
            StatusCode::PAYLOAD_TOO_LARGE,
        );
    }
    let store = Arc::clone(&user.store);
    if posted.action == "draft" {
        let draft = Flags {
            draft: true,
            seen: true,
            ..Flags::default()
        };
        return match blocking(move || store.mailbox("Drafts")?.append(&raw, &draft, None)).await {
            Ok(_) => Redirect::to("/mail?f=Drafts").into_response(),
            Err(resp) => resp,
        };
    }
    let m = &posted.message;
    let to = recipients(&[&m.to, &m.cc, &posted.bcc]);
    if to.is_empty() {
        return page(
            &state,
            &user,
            &mine,
            &q,
            m,
            Some("Give at least one recipient."),
            StatusCode::BAD_REQUEST,
        );
    }
    let sub = Submission {
        sender: me.address,
        recipients: to,
        content: raw.clone(),
    };
    let client = Client {
        addr: Some(client.ip()),
        helo: None,
        auth: Some(user.name.clone()),
    };
    let via = format!("mta webmail, from [{}]", client.addr.expect("set"));
    let shared = Arc::clone(&state.shared);
    let queued = tokio::task::spawn_blocking(move || enqueue_from(&shared, &sub, client, &via)).await;
    let response = match queued {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!("web: queueing for {:?}: {e}", user.name);
            return page(
                &state,
                &user,
                &mine,
                &q,
                m,
                Some("The queue is unavailable; try again."),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
        Err(e) => return layout::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if response.id.is_none() {
        let why = response
            .rejected
            .iter()
            .map(|(r, why)| format!("{r}: {why}"))
            .chain(response.error.clone())
            .collect::<Vec<_>>()
            .join("; ");
        return page(&state, &user, &mine, &q, m, Some(&why), StatusCode::BAD_REQUEST);
    }
    tracing::info!("web: {:?} sent {}", user.name, response.id.as_deref().unwrap_or(""));
    let original = posted.original.clone();
    let saved = blocking(move || {
        let seen = Flags {
            seen: true,
            ..Flags::default()
        };
        store.mailbox("Sent")?.append(&raw, &seen, None)?;
        if let Some((f, uid, mode)) = original {
            let mut done = Flags::default();
            if mode == "forward" {
                done.keywords.insert("$Forwarded".into());
            } else {
                done.answered = true;
            }
            flag(&store, &f, uid, done)?;
        }
        Ok(())
    })
    .await;
    if let Err(resp) = saved {
        return resp;
    }
    let refused = &response.rejected;
    if refused.is_empty() {
        Redirect::to("/mail?f=Sent").into_response()
    } else {
        let body = html! {
            h1 { "Sent, with refusals" }
            ul { @for (r, why) in refused { li { (r) ": " (why) } } }
            p { a href="/mail?f=Sent" { "Sent folder" } }
        };
        layout::page("Sent", Some(&user), body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replies_go_to_the_sender_and_thread_under_the_original() {
        let raw = b"From: Bob <bob@remote.test>\r\nTo: alice@example.test, carol@example.test\r\nCc: dave@x.test\r\nSubject: plans\r\nMessage-ID: <m1@remote.test>\r\nReferences: <m0@remote.test>\r\n\r\nline one\r\n";
        let m = MessageParser::default().parse(&raw[..]).unwrap();
        let alice = identities::parse("", "alice@example.test");
        let r = prefill(&m, "reply", &alice);
        assert_eq!(r.to, "Bob <bob@remote.test>");
        assert_eq!(r.cc, "");
        assert_eq!(r.subject, "Re: plans");
        assert_eq!(r.in_reply_to, "<m1@remote.test>");
        assert_eq!(r.references, "<m0@remote.test> <m1@remote.test>");
        assert!(r.body.contains("> line one"), "{}", r.body);
        let all = prefill(&m, "all", &alice);
        assert_eq!(all.cc, "carol@example.test, dave@x.test");
        let fwd = prefill(&m, "forward", &alice);
        assert_eq!((fwd.subject.as_str(), fwd.to.as_str()), ("Fwd: plans", ""));
        assert_eq!(prefixed("Re:", "RE: x"), "RE: x");
    }

    #[test]
    fn a_reply_is_from_the_identity_the_original_was_addressed_to() {
        let raw = b"From: Bob <bob@remote.test>\r\nTo: Sales <SALES@example.test>, carol@example.test\r\nCc: alice@example.test\r\nSubject: order\r\n\r\nhi\r\n";
        let m = MessageParser::default().parse(&raw[..]).unwrap();
        let mine = identities::parse("sales@example.test\tSales\n", "alice@example.test");
        assert_eq!(prefill(&m, "reply", &mine).from, "sales@example.test");
        assert_eq!(prefill(&m, "all", &mine).cc, "carol@example.test");
        let alice = identities::parse("", "alice@example.test");
        assert_eq!(prefill(&m, "reply", &alice).from, "alice@example.test");
        let other = identities::parse("", "dave@example.test");
        assert_eq!(prefill(&m, "reply", &other).from, "");
    }

    #[test]
    fn recipients_come_from_every_field() {
        let got = recipients(&["Bob <bob@x.test>, \"Last, First\" <lf@x.test>", "", "c@y.test"]);
        assert_eq!(got, ["bob@x.test", "lf@x.test", "c@y.test"]);
    }

    proptest! {
        #[test]
        fn any_field_text_is_handled(name in ".{0,12}", value in ".{0,80}") {
            let mut p = Posted::default();
            let (mut f, mut uid, mut mode) = (None, None, None);
            set_field(&mut p, &name, value.clone(), (&mut f, &mut uid, &mut mode));
            let _ = recipients(&[&value]);
        }
    }
}
