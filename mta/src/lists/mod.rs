//! Mailing lists in the role of Mailman, inside mta: what mail to a list's
//! addresses does (posts distributed or held, commands, confirmations,
//! owner mail, bounces), the periodic work (bounce warnings, expiry of held
//! posts and reminders of them), and the messages the list sends, all
//! queued through `Shared::accept_message` (so they are DKIM-signed and
//! relayed like any mail we originate). Each member's copy has its own VERP
//! envelope sender `NAME-bounces+user=domain@DOMAIN`. A distribution keeps
//! a journal (`store::Journal`), so one cut by a crash resumes without
//! losing or doubling copies. The router knows list addresses from
//! `store`; no aliases are needed.

pub mod address;
pub mod archive;
pub mod bounce;
pub mod command;
pub mod digest;
pub mod post;
pub mod store;

use crate::queue::{self, QueueError};
use crate::service::{OriginateError, Shared};
use address::Role;
use bounce::Step;
use command::Command;
use store::{ARCHIVE_COPY, Action, ArchiveMode, DIGEST_COPY, List, ListError, Store, new_token};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    List(#[from] ListError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("archive: {0}")]
    Archive(crate::deliver::DeliveryError),
}

impl ProcessError {
    /// Only a list that is gone fails for good; the rest is retried.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ProcessError::List(ListError::NoSuchList(_)))
    }
}

/// A message arriving for one of a list's addresses.
pub struct Incoming<'a> {
    /// Its queue id, which names the journal of a post's distribution.
    pub id: &'a str,
    /// Envelope sender, `None` for `<>`.
    pub sender: Option<&'a str>,
    /// CRLF lines, as queued.
    pub content: &'a [u8],
}

/// The lists of this server.
pub fn store(shared: &Shared) -> Store {
    Store::new(&shared.config.lists.dir)
}

/// Handle mail to `role` of list `list` (`NAME@DOMAIN`). Blocking (it may
/// look up DMARC policies through the runtime): call from a blocking thread.
pub fn receive(shared: &Shared, list: &str, role: &Role, msg: &Incoming<'_>) -> Result<(), ProcessError> {
    let store = store(shared);
    let l = store.load(list)?;
    let now = queue::now();
    let requester = post::from_address(msg.content)
        .map(|(_, a)| a)
        .or_else(|| msg.sender.map(str::to_ascii_lowercase));
    match role {
        Role::Post => receive_post(shared, &store, &l, msg, requester.as_deref().unwrap_or(""), now),
        Role::Owner => {
            if l.settings.owners.is_empty() {
                tracing::warn!("list {list}: owner mail dropped: the list has no owners");
                return Ok(());
            }
            send(shared, &l, &l.settings.owners, msg.content)
        }
        Role::Bounces(member) => receive_bounce(shared, &store, &l, member.as_deref(), msg.content, now),
        Role::Confirm(token) => {
            let result = confirm(shared, &store, &l, token, now)?;
            tracing::info!("list {list}: confirm {token}: {result}");
            Ok(())
        }
        Role::Join | Role::Leave | Role::Request => {
            let Some(requester) = requester.filter(|_| answerable(msg)) else {
                tracing::info!("list {list}: automatic mail to {role:?} not answered");
                return Ok(());
            };
            let commands = match role {
                Role::Join => vec![Command::Subscribe(None)],
                Role::Leave => vec![Command::Unsubscribe(None)],
                _ => {
                    let parsed = mail_parser::MessageParser::new().parse(msg.content);
                    let subject = parsed.as_ref().and_then(|m| m.subject()).unwrap_or("").to_string();
                    let body = parsed
                        .as_ref()
                        .and_then(|m| m.body_text(0))
                        .map(|b| b.into_owned())
                        .unwrap_or_default();
                    command::parse(&subject, &body)
                }
            };
            let results = run_commands(shared, &store, &l, &requester, &commands, now)?;
            if *role == Role::Request {
                let body = if commands.is_empty() {
                    help(shared, &l)
                } else {
                    results.join("\n\n")
                };
                notify(shared, &l, &requester, "The results of your commands", "", &body, now)?;
            }
            Ok(())
        }
    }
}

/// Mail from `<>`, or marked automatic or bulk, gets no answer (no loops
/// with auto-responders and other lists).
fn answerable(msg: &Incoming<'_>) -> bool {
    let auto = post::header(msg.content, "auto-submitted").is_some_and(|v| !v.eq_ignore_ascii_case("no"));
    let bulk = post::header(msg.content, "precedence")
        .is_some_and(|v| ["bulk", "junk", "list"].contains(&v.to_ascii_lowercase().as_str()));
    msg.sender.is_some_and(|s| !s.is_empty()) && !auto && !bulk
}

fn help(shared: &Shared, l: &List) -> String {
    let text = format!(
        "Commands for the list {addr}: send them to {req}, in the subject or one a line in the body.\n\n\
         subscribe [ADDRESS]    join the list (you will be asked to confirm)\n\
         unsubscribe [ADDRESS]  leave the list (you will be asked to confirm)\n\
         set digest on|off      a daily digest instead of single posts (members)\n\
         confirm TOKEN          confirm a request\n\
         who                    the members (owners only)\n\
         help                   this text\n\n\
         Or mail {join} to join and {leave} to leave.\n",
        addr = l.address(),
        req = l.role_address(&Role::Request),
        join = l.role_address(&Role::Join),
        leave = l.role_address(&Role::Leave),
    );
    text + &web_line(shared, l, "The list's page: ", "")
}

/// `text` and the URL of the list's page `path` as a line; nothing
/// without `[lists] web_url`.
fn web_line(shared: &Shared, l: &List, text: &str, path: &str) -> String {
    let web = shared.config.lists.web_url.trim_end_matches('/');
    if web.is_empty() {
        return String::new();
    }
    format!("{text}{web}/lists/{}{path}\n", post::url_encode(&l.address()))
}

/// Record a pending confirmation under `token`.
fn add_pending(
    store: &Store,
    l: &List,
    token: &str,
    action: Action,
    who: &str,
    reason: &str,
    now: u64,
) -> Result<(), ListError> {
    store.update(&l.address(), |l| {
        l.add_pending(token, action, who, reason, now);
        Ok(())
    })
}

/// Run mailed commands for `requester`; one result text per command.
fn run_commands(
    shared: &Shared,
    store: &Store,
    l: &List,
    requester: &str,
    commands: &[Command],
    now: u64,
) -> Result<Vec<String>, ProcessError> {
    let mut results = Vec::new();
    for c in commands {
        let result = match c {
            Command::Subscribe(who) | Command::Unsubscribe(who) => {
                let subscribe = matches!(c, Command::Subscribe(_));
                let who = who.clone().unwrap_or_else(|| requester.to_string());
                request_confirmation(shared, store, l, &who, subscribe, now)?
            }
            Command::Help => help(shared, l),
            Command::Who if l.is_owner(requester) => {
                let members: Vec<String> = l
                    .members
                    .iter()
                    .map(|m| format!("{}{}", m.address, if m.enabled { "" } else { " (disabled)" }))
                    .collect();
                format!("who: {} members\n{}", members.len(), members.join("\n"))
            }
            Command::Who => "who: only the list's owners may see the members".into(),
            Command::Confirm(token) => confirm(shared, store, l, token, now)?,
            Command::Approve(token) | Command::Discard(token) if l.is_owner(requester) => {
                let discard = matches!(c, Command::Discard(_));
                moderate(shared, store, l, token, discard, now)?
            }
            Command::Approve(_) | Command::Discard(_) => "only the list's owners may moderate".into(),
            Command::SetDigest(on) => set_digest(store, l, requester, *on)?,
        };
        results.push(result);
    }
    Ok(results)
}

/// A member's choice of digest or single posts; the result text.
fn set_digest(store: &Store, l: &List, member: &str, on: bool) -> Result<String, ListError> {
    let word = if on { "on" } else { "off" };
    if !l.settings.digest {
        return Ok(format!("set digest {word}: {} has no digest", l.address()));
    }
    let changed = store.update(&l.address(), |l| Ok::<_, ListError>(l.set_digest(member, on)))?;
    Ok(if changed {
        format!("set digest {word}: done for {member}")
    } else {
        format!("set digest {word}: {member} is not a member")
    })
}

/// Start a double opt-in: a token and a mail asking `who` to confirm.
/// Public for the web pages' subscribe form.
pub fn request_confirmation(
    shared: &Shared,
    store: &Store,
    l: &List,
    who: &str,
    subscribe: bool,
    now: u64,
) -> Result<String, ProcessError> {
    let member = l.member(who).is_some();
    let (verb, action) = if subscribe {
        ("subscribe", Action::Subscribe)
    } else {
        ("unsubscribe", Action::Unsubscribe)
    };
    if member == subscribe {
        return Ok(format!(
            "{verb} {who}: {}",
            if member { "already a member" } else { "not a member" }
        ));
    }
    let token = new_token();
    add_pending(store, l, &token, action, who, "", now)?;
    let confirm_addr = l.role_address(&Role::Confirm(token.clone()));
    let link = web_line(
        shared,
        l,
        "Or open this page and press the button:\n\n  ",
        &format!("/confirm?token={token}\n"),
    );
    let body = format!(
        "Someone (hopefully you) asked to {verb} {who} {} the list {}.\n\n\
         To confirm, reply to this message (it goes to {confirm_addr}).\n{link}\n\
         This request expires in 3 days. If you did not ask for it, ignore this message.\n",
        if subscribe { "to" } else { "from" },
        l.address(),
    );
    notify(
        shared,
        l,
        who,
        &format!("confirm {token}"),
        &format!("Reply-To: <{confirm_addr}>\r\n"),
        &body,
        now,
    )?;
    Ok(format!("{verb} {who}: a confirmation request was mailed to {who}"))
}

/// What confirming a token did (for the web pages' confirm page too).
pub fn confirm(shared: &Shared, store: &Store, l: &List, token: &str, now: u64) -> Result<String, ProcessError> {
    let taken = store.update(&l.address(), |l| {
        // A held post stays pending until it is distributed (`release`).
        if let Some(p) = l
            .pending
            .iter()
            .find(|p| p.token == token && p.action == Action::Post && p.expires > now)
        {
            return Ok::<_, ListError>(Some((p.clone(), None)));
        }
        let Some(p) = l.take_pending(token, now) else {
            return Ok(None);
        };
        let approval = (p.action == Action::Subscribe && l.settings.owner_approval).then(|| {
            let t = new_token();
            l.add_pending(&t, Action::Approve, &p.address, "subscription confirmed", now);
            t
        });
        match p.action {
            Action::Subscribe | Action::Approve if approval.is_none() => {
                l.add(&p.address, now);
            }
            Action::Unsubscribe => {
                l.remove(&p.address);
            }
            Action::Reenable => {
                if let Some(m) = l.member_mut(&p.address) {
                    m.enabled = true;
                    m.bounce = Default::default();
                }
            }
            _ => {}
        }
        Ok(Some((p, approval)))
    })?;
    let Some((p, approval)) = taken else {
        return Ok(format!("confirm {token}: no such request (or it expired)"));
    };
    let addr = l.address();
    let who = &p.address;
    Ok(match (p.action, approval) {
        (Action::Subscribe, Some(t)) => {
            let approve = l.role_address(&Role::Confirm(t.clone()));
            let body = format!(
                "{who} confirmed a subscription to {addr}, which needs an owner's approval.\n\
                 To approve, reply to this message (it goes to {approve}); to refuse, ignore it.\n"
            );
            notify_many(
                shared,
                l,
                &l.settings.owners,
                &format!("{addr}: subscription of {who} to approve"),
                &format!("Reply-To: <{approve}>\r\n"),
                &body,
                now,
            )?;
            format!("subscribe {who}: confirmed; waiting for the owners' approval")
        }
        (Action::Subscribe | Action::Approve, _) => {
            let body = format!(
                "Welcome to {addr}, {who}.\n\nPost by mailing {addr}.\n\n{}",
                help(shared, l)
            );
            notify(shared, l, who, &format!("Welcome to {addr}"), "", &body, now)?;
            format!("subscribe {who}: done")
        }
        (Action::Unsubscribe, _) => {
            let body = format!("{who} has left the list {addr}.\n");
            notify(shared, l, who, &format!("You have left {addr}"), "", &body, now)?;
            format!("unsubscribe {who}: done")
        }
        (Action::Reenable, _) => format!("{who}: delivery enabled again"),
        (Action::Post, _) => release(shared, store, l, &p, now)?,
    })
}

/// An owner's decision on a held post (or a subscription to approve).
pub fn moderate(
    shared: &Shared,
    store: &Store,
    l: &List,
    token: &str,
    discard: bool,
    now: u64,
) -> Result<String, ProcessError> {
    if !discard {
        return confirm(shared, store, l, token, now);
    }
    let taken = store.update(&l.address(), |l| Ok::<_, ListError>(l.take_pending(token, now)))?;
    match taken {
        Some(p) => {
            store.drop_held(l, token);
            Ok(format!("discard {token}: the post from {} was discarded", p.address))
        }
        None => Ok(format!("discard {token}: no such held post")),
    }
}

/// Distribute a held post the moderator approved, then forget it. Its
/// journal is keyed by its token: approved again after a crash (the post is
/// still pending), the distribution resumes.
fn release(shared: &Shared, store: &Store, l: &List, p: &store::Pending, now: u64) -> Result<String, ProcessError> {
    let key = held_journal(&p.token);
    let mut journal = store.journal(l, &key)?;
    let content = match store.held(l, &p.token) {
        // Another approval of the same post got the journal first and sent it.
        Err(ListError::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(format!("approve {}: the post was sent already", p.token));
        }
        held => held?,
    };
    distribute(shared, store, l, &content, &p.address, &mut journal, now)?;
    store.update(&l.address(), |l| Ok::<_, ListError>(l.take_pending(&p.token, now)))?;
    store.drop_held(l, &p.token);
    store.drop_journal(l, &key);
    Ok(format!(
        "approve {}: the post from {} was sent to the list",
        p.token, p.address
    ))
}

/// The journal key of a held post's distribution.
fn held_journal(token: &str) -> String {
    format!("held-{token}")
}

/// Why a post waits for a moderator, if it must.
fn hold_reason(l: &List, content: &[u8], poster: &str, sender: Option<&str>) -> Option<String> {
    let s = &l.settings;
    let member = l.member(poster).is_some() || sender.is_some_and(|e| l.member(e).is_some());
    if s.moderated {
        Some("the list is moderated".into())
    } else if !member {
        Some(format!("{poster} is not a member"))
    } else if content.len() as u64 > s.max_message_size {
        Some(format!(
            "{} bytes is over the limit of {}",
            content.len(),
            s.max_message_size
        ))
    } else if post::recipient_count(content) > s.max_recipients {
        Some(format!("more than {} recipients in To and Cc", s.max_recipients))
    } else {
        None
    }
}

fn receive_post(
    shared: &Shared,
    store: &Store,
    l: &List,
    msg: &Incoming<'_>,
    poster: &str,
    now: u64,
) -> Result<(), ProcessError> {
    let addr = l.address();
    let been_there = post::header(msg.content, "x-beenthere").is_some_and(|v| v.eq_ignore_ascii_case(&addr))
        || post::header(msg.content, "list-id").is_some_and(|v| v.contains(&format!("<{}.{}>", l.name, l.domain)));
    if been_there {
        tracing::warn!("list {addr}: post from <{poster}> came back through the list (loop); dropped");
        return Ok(());
    }
    let Some(reason) = hold_reason(l, msg.content, poster, msg.sender) else {
        let mut journal = store.journal(l, msg.id)?;
        return distribute(shared, store, l, msg.content, poster, &mut journal, now);
    };
    let token = new_token();
    // The content first: a pending entry never points at nothing.
    store.hold(l, &token, msg.content)?;
    add_pending(store, l, &token, Action::Post, poster, &reason, now)?;
    tracing::info!("list {addr}: post from <{poster}> held ({reason}), token {token}");
    let subject = post::header(msg.content, "subject").unwrap_or_default();
    let approve = l.role_address(&Role::Confirm(token.clone()));
    let page = web_line(shared, l, "The moderation page: ", "/moderate");
    let body = format!(
        "A post to {addr} is held for approval.\n\n  From:    {poster}\n  Subject: {subject}\n  Reason:  {reason}\n\n\
         To approve it, reply to this message (it goes to {approve}).\n\
         To discard it, send \"discard {token}\" to {}.\n{page}",
        l.role_address(&Role::Request)
    );
    notify_many(
        shared,
        l,
        &l.settings.owners,
        &format!("{addr}: post from {poster} held for approval"),
        &format!("Reply-To: <{approve}>\r\n"),
        &body,
        now,
    )?;
    if !answerable(msg) || poster.is_empty() {
        return Ok(());
    }
    let body = format!(
        "Your post to {addr} is held until a moderator looks at it.\n\n  Subject: {subject}\n  Reason:  {reason}\n\n\
         Unless it is approved within {}, it will be discarded. You need do nothing now.\n",
        days(l.settings.held_lifetime)
    );
    notify(
        shared,
        l,
        poster,
        &format!("Your post to {addr} awaits approval"),
        "",
        &body,
        now,
    )
}

/// A lifetime in words: "14 days", or seconds when under a day (tests).
fn days(seconds: u64) -> String {
    match seconds / 86400 {
        0 => format!("{seconds} seconds"),
        1 => "1 day".into(),
        d => format!("{d} days"),
    }
}

/// Whether mail From: `domain` must not go out with that From: through a
/// list: the DMARC policy receivers apply to it is reject or quarantine,
/// decided as our inbound DMARC decides it (so both agree on organisational
/// domains). A DNS failure counts as strict.
fn strict_dmarc(shared: &Shared, domain: &str) -> bool {
    use mail_auth::dmarc::Policy;
    let policy = tokio::runtime::Handle::current().block_on(shared.inbound_auth.dmarc_policy(domain));
    matches!(policy, None | Some(Policy::Reject | Policy::Quarantine))
}

/// Send a post to every enabled member not in digest mode, each copy with
/// its own VERP sender and unsubscribe link, keep it for the digest if
/// some member takes that, and append it to the archive; each copy is
/// recorded in `journal` once made, and skipped if it was.
fn distribute(
    shared: &Shared,
    store: &Store,
    l: &List,
    content: &[u8],
    poster: &str,
    journal: &mut store::Journal,
    now: u64,
) -> Result<(), ProcessError> {
    let poster_domain = poster.rsplit_once('@').map_or("", |(_, d)| d);
    let munge = !poster_domain.is_empty()
        && !poster_domain.eq_ignore_ascii_case(&l.domain)
        && strict_dmarc(shared, poster_domain);
    let web_url = shared.config.lists.web_url.trim_end_matches('/');
    let mut sent = 0;
    for m in l.single_post_members() {
        if journal.done(&m.address) {
            continue;
        }
        let copy = post::prepare(
            content,
            &post::Distribution {
                list: l,
                web_url,
                munge,
                member: Some(&m.address),
            },
        );
        let sender = l.role_address(&Role::Bounces(Some(m.address.clone())));
        queue_message(shared, l, &sender, std::slice::from_ref(&m.address), &copy)?;
        journal.record(&m.address)?;
        sent += 1;
    }
    tracing::info!(
        "list {}: post from <{poster}> sent to {sent} members{}",
        l.address(),
        if munge { " (From: rewritten for DMARC)" } else { "" }
    );
    let copy = post::prepare(
        content,
        &post::Distribution {
            list: l,
            web_url,
            munge,
            member: None,
        },
    );
    if l.digest_members().next().is_some() && !journal.done(DIGEST_COPY) {
        store.add_to_digest(l, &copy)?;
        journal.record(DIGEST_COPY)?;
    }
    if l.settings.archive != ArchiveMode::None && !journal.done(ARCHIVE_COPY) {
        let addr = l.address();
        let message = crate::deliver::Message {
            sender: Some(poster),
            recipient: &addr,
            content: &copy,
            arrived: now,
        };
        crate::deliver::mbox::deliver(&store.archive_path(l), &message).map_err(ProcessError::Archive)?;
        journal.record(ARCHIVE_COPY)?;
    }
    Ok(())
}

fn receive_bounce(
    shared: &Shared,
    store: &Store,
    l: &List,
    verp: Option<&str>,
    content: &[u8],
    now: u64,
) -> Result<(), ProcessError> {
    let statuses = bounce::report_statuses(content);
    let bounced: Vec<(String, String)> = match verp {
        // VERP names the member whatever the report says the address was.
        Some(member) => statuses
            .into_iter()
            .take(1)
            .map(|(_, s)| (member.to_ascii_lowercase(), s))
            .collect(),
        None => statuses.into_iter().filter_map(|(r, s)| Some((r?, s))).collect(),
    };
    if bounced.is_empty() {
        tracing::info!(
            "list {}: mail to the bounce address without a delivery report ignored",
            l.address()
        );
        return Ok(());
    }
    let interval = l.settings.bounce_warning_interval;
    let addr = l.address();
    let steps = store.update(&addr, |l| {
        let mut steps = Vec::new();
        for (member, status) in &bounced {
            let Some(m) = l.member_mut(member) else { continue };
            let step = m.bounce.bounced(bounce::score(status), now, interval);
            tracing::info!(
                "list {addr}: bounce for <{member}> ({status}), score {}",
                m.bounce.score
            );
            steps.push(apply_step(l, member, step, now));
        }
        Ok::<_, ListError>(steps)
    })?;
    for s in steps {
        announce_step(shared, l, s, now)?;
    }
    Ok(())
}

/// A bounce step taken under the list's lock.
struct Taken {
    member: String,
    step: Step,
    /// The warning's re-enable token.
    token: Option<String>,
    /// Warnings sent so far, this one included.
    warnings: u32,
}

fn apply_step(l: &mut List, member: &str, step: Step, now: u64) -> Taken {
    let mut taken = Taken {
        member: member.to_string(),
        step,
        token: None,
        warnings: l.member(member).map_or(0, |m| m.bounce.warnings),
    };
    match step {
        Step::Disable | Step::Warn => {
            if let Some(m) = l.member_mut(member) {
                m.enabled = false;
            }
            let token = new_token();
            l.add_pending(&token, Action::Reenable, member, "", now);
            taken.token = Some(token);
        }
        Step::Remove => {
            l.remove(member);
        }
        Step::Nothing => {}
    }
    taken
}

/// The warnings and removal notices of bounce steps.
fn announce_step(shared: &Shared, l: &List, taken: Taken, now: u64) -> Result<(), ProcessError> {
    let addr = l.address();
    let Taken {
        member,
        step,
        token,
        warnings,
    } = taken;
    match (step, token) {
        (Step::Disable | Step::Warn, Some(token)) => {
            let confirm = l.role_address(&Role::Confirm(token));
            let body = format!(
                "Mail from {addr} to {member} has been bouncing, so delivery to you is disabled.\n\n\
                 To receive the list's mail again, reply to this message (it goes to {confirm}).\n\
                 This is warning {warnings} of {}; after the last you will be removed from the list.\n",
                bounce::WARNINGS
            );
            tracing::info!("list {addr}: <{member}> disabled by bounces, warning {warnings}");
            notify(
                shared,
                l,
                &member,
                &format!("Your membership of {addr} is disabled"),
                &format!("Reply-To: <{confirm}>\r\n"),
                &body,
                now,
            )?;
        }
        (Step::Remove, _) => {
            tracing::info!("list {addr}: <{member}> removed after bounce warnings");
            let body = format!("{member} was removed from {addr}: mail to it kept bouncing.\n");
            let mut to = l.settings.owners.clone();
            to.push(member.clone());
            notify_many(shared, l, &to, &format!("{member} removed from {addr}"), "", &body, now)?;
        }
        _ => {}
    }
    Ok(())
}

/// The periodic work (the queue runner calls it about once a minute).
pub fn tick(shared: &Shared) {
    let store = store(shared);
    let now = queue::now();
    for name in store.names().unwrap_or_default() {
        if let Err(e) = tick_list(shared, &store, &name, now) {
            tracing::error!("list {name}: {e}");
        }
    }
}

/// One list's due work: the bounce warnings and removals, held posts that
/// expired, the owners' reminder of held posts, and dropping the journals
/// of distributions that are over (their message left the queue, or their
/// held post is no longer pending).
fn tick_list(shared: &Shared, store: &Store, name: &str, now: u64) -> Result<(), ProcessError> {
    let (l, taken, expired, remind) = store.update(name, |l| {
        let interval = l.settings.bounce_warning_interval;
        let due: Vec<(String, Step)> = l
            .members
            .iter_mut()
            .filter(|m| !m.enabled)
            .map(|m| (m.address.clone(), m.bounce.advance(now, interval)))
            .filter(|(_, s)| *s != Step::Nothing)
            .collect();
        let taken: Vec<Taken> = due.into_iter().map(|(m, s)| apply_step(l, &m, s, now)).collect();
        let expired = l.take_expired_holds(now);
        let remind = l.holds_to_remind(now);
        Ok::<_, ListError>((l.clone(), taken, expired, remind))
    })?;
    let logged = |r: Result<(), ProcessError>| {
        if let Err(e) = r {
            tracing::error!("list {name}: {e}");
        }
    };
    for t in taken {
        logged(announce_step(shared, &l, t, now));
    }
    if !expired.is_empty() {
        logged(announce_expired(shared, store, &l, &expired, now));
    }
    if !remind.is_empty() {
        logged(remind_owners(shared, store, &l, &remind, now));
    }
    for key in store.journals(&l) {
        let over = match key.strip_prefix("held-") {
            Some(token) => !l.pending.iter().any(|p| p.token == token),
            None => !shared.queue.content_path(&key).exists(),
        };
        if over {
            store.drop_journal(&l, &key);
        }
    }
    Ok(())
}

/// Tell the owners which held posts expired, and drop them.
fn announce_expired(
    shared: &Shared,
    store: &Store,
    l: &List,
    expired: &[store::Pending],
    now: u64,
) -> Result<(), ProcessError> {
    let name = l.address();
    let listed = describe_holds(store, l, expired);
    for p in expired {
        store.drop_held(l, &p.token);
    }
    tracing::info!("list {name}: {} held posts expired unmoderated", expired.len());
    let body = format!(
        "These posts to {name} waited {} for a moderator and were discarded:\n\n{listed}",
        days(l.settings.held_lifetime)
    );
    let subject = format!("{name}: {} held posts expired", expired.len());
    notify_many(shared, l, &l.settings.owners, &subject, "", &body, now)
}

/// Remind the owners of the posts still held.
fn remind_owners(
    shared: &Shared,
    store: &Store,
    l: &List,
    held: &[store::Pending],
    now: u64,
) -> Result<(), ProcessError> {
    let name = l.address();
    let listed = describe_holds(store, l, held);
    let page = web_line(shared, l, "The moderation page: ", "/moderate");
    let body = format!(
        "{} posts to {name} wait for a moderator:\n\n{listed}\
         To approve one, send \"approve TOKEN\" to {req}; to discard it, \"discard TOKEN\".\n{page}",
        held.len(),
        req = l.role_address(&Role::Request),
    );
    let subject = format!("{name}: {} posts wait for a moderator", held.len());
    notify_many(shared, l, &l.settings.owners, &subject, "", &body, now)
}

/// Held posts as text for the owners: poster, subject, reason and token of each.
fn describe_holds(store: &Store, l: &List, held: &[store::Pending]) -> String {
    held.iter()
        .map(|p| {
            let subject = store
                .held(l, &p.token)
                .ok()
                .and_then(|c| post::header(&c, "subject"))
                .unwrap_or_default();
            format!(
                "  From:    {}\n  Subject: {subject}\n  Reason:  {}\n  Token:   {}\n\n",
                p.address, p.reason, p.token
            )
        })
        .collect()
}

/// A notice from the list's -request address to one address.
fn notify(
    shared: &Shared,
    l: &List,
    to: &str,
    subject: &str,
    extra: &str,
    body: &str,
    now: u64,
) -> Result<(), ProcessError> {
    notify_many(shared, l, &[to.to_string()], subject, extra, body, now)
}

fn notify_many(
    shared: &Shared,
    l: &List,
    to: &[String],
    subject: &str,
    extra: &str,
    body: &str,
    now: u64,
) -> Result<(), ProcessError> {
    if to.is_empty() {
        return Ok(());
    }
    let from = l.role_address(&Role::Request);
    let content = post::notice(l, &from, &to.join(">, <"), subject, extra, body, now);
    send(shared, l, to, &content)
}

/// Queue list mail with the list's plain bounce address as sender.
fn send(shared: &Shared, l: &List, to: &[String], content: &[u8]) -> Result<(), ProcessError> {
    queue_message(shared, l, &l.role_address(&Role::Bounces(None)), to, content)
}

fn queue_message(shared: &Shared, l: &List, sender: &str, to: &[String], content: &[u8]) -> Result<(), ProcessError> {
    let list = l.address();
    match shared.originate(Some(sender.to_string()), to, &format!("mta list {list}"), content) {
        Ok(_) => Ok(()),
        Err(OriginateError::Refused(a, why)) => {
            tracing::warn!("list {list}: <{a}> refused: {why}");
            Ok(())
        }
        Err(OriginateError::Queue(e)) => Err(e.into()),
    }
}
