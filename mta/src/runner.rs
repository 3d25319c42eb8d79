//! The queue runner: picks up queued messages (woken by the SMTP server,
//! or by scanning for files `sendmail` dropped), delivers local recipients,
//! retries temporary failures with backoff, and bounces permanent ones or
//! those older than the queue lifetime. Recipients for other hosts go
//! through the outbound relay (`outbound::Outbound`) in the same attempt.

use crate::deliver::{self, DeliveryError, Message, Target};
use crate::envelope::RcptParams;
use crate::outbound::dsn::{self, Action, Event, RecipientReport, Report};
use crate::outbound::srs;
use crate::outbound::{Disposition, Outbound};
use crate::queue::{self, Envelope, RcptStatus, Recipient};
use crate::recipient::Resolved;
use crate::service::{OriginateError, Shared, Wake};
use crate::stats::{self, Delivery};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;

/// Delivery attempts running at once (each in a blocking thread).
const MAX_PARALLEL: usize = 8;

/// What became of a message after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Fully handled and removed from the queue.
    Done,
    /// Recipients left: try again at this time.
    RetryAt(u64),
}

/// A recipient that failed for good, with what its bounce reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub recipient: String,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// The remote server's reply (`550 5.1.1 no such user`) or our reason.
    pub diagnostic: String,
    /// The server that refused it, if one did.
    pub remote_mta: Option<String>,
}

pub async fn run(shared: Arc<Shared>, outbound: Arc<Outbound>, mut wake: UnboundedReceiver<Wake>) {
    let mut schedule: HashMap<String, u64> = HashMap::new();
    let mut running: HashSet<String> = HashSet::new();
    // Running when ETRN asked for an immediate attempt: retry at once when done.
    let mut rerun: HashSet<String> = HashSet::new();
    let mut attempts: JoinSet<(String, Result<Outcome, queue::QueueError>)> = JoinSet::new();
    let mut cleaned = std::time::Instant::now();
    clean_crash_leftovers(&shared);
    scan(&shared, &mut schedule);
    loop {
        let now = queue::now();
        let mut due: Vec<(u64, String)> = schedule
            .iter()
            .filter(|(id, t)| **t <= now && !running.contains(*id))
            .map(|(id, t)| (*t, id.clone()))
            .collect();
        due.sort();
        for (_, id) in due.into_iter().take(MAX_PARALLEL.saturating_sub(attempts.len())) {
            running.insert(id.clone());
            let (s, o) = (Arc::clone(&shared), Arc::clone(&outbound));
            attempts.spawn_blocking(move || {
                let outcome = attempt(&s, &o, &id);
                (id, outcome)
            });
        }
        // With every slot taken, the next finished attempt wakes the loop;
        // a zero timeout here would rescan the spool in a busy loop.
        let slot_free = attempts.len() < MAX_PARALLEL;
        let next_due = schedule
            .iter()
            .filter(|(id, _)| slot_free && !running.contains(*id))
            .map(|(_, t)| t.saturating_sub(queue::now()))
            .min();
        let sleep = next_due.map_or(shared.config.queue.scan_interval, |s| {
            Duration::from_secs(s).min(shared.config.queue.scan_interval)
        });
        tokio::select! {
            Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                let Ok((id, outcome)) = done else { continue };
                running.remove(&id);
                if !matches!(outcome, Ok(Outcome::RetryAt(_))) {
                    rerun.remove(&id);
                }
                match outcome {
                    Ok(Outcome::Done) => {
                        schedule.remove(&id);
                    }
                    Ok(Outcome::RetryAt(t)) => {
                        let t = if rerun.remove(&id) { 0 } else { t };
                        schedule.insert(id, t);
                    }
                    // A wake-up that came after a scan had already delivered it.
                    Err(e) if e.is_gone() => {
                        schedule.remove(&id);
                    }
                    Err(e) => {
                        tracing::error!("{id}: {e}");
                        schedule.insert(id, queue::now() + shared.config.queue.retry_interval.as_secs());
                    }
                }
            }
            msg = wake.recv() => match msg {
                Some(Wake::New(id)) => {
                    schedule.insert(id, 0);
                }
                Some(Wake::All) => {
                    schedule.values_mut().for_each(|t| *t = 0);
                    rerun.extend(running.iter().cloned());
                }
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {
                // At most a minute apart, and as often as leftovers can come of age.
                if cleaned.elapsed() >= shared.config.smtp.data_timeout.min(Duration::from_secs(60)) {
                    cleaned = std::time::Instant::now();
                    clean_crash_leftovers(&shared);
                    let s = Arc::clone(&shared);
                    tokio::task::spawn_blocking(move || crate::lists::tick(&s));
                }
                scan(&shared, &mut schedule);
            }
        }
    }
}

/// Schedule messages found in the spool that we do not know yet (after a
/// restart, dropped by `sendmail`, released from hold), and forget those
/// that left the queue (deleted or held by `mtactl queue`).
/// Remove content files without an envelope and stale envelope temporaries
/// (never acknowledged: a crash came between writing and the 250) once they
/// are older than the data timeout, so nothing still being written is touched.
fn clean_crash_leftovers(shared: &Shared) {
    match shared.queue.clean_orphans(shared.config.smtp.data_timeout) {
        Ok(0) => {}
        Ok(n) => tracing::warn!("queue: removed {n} files left by a crash (never acknowledged)"),
        Err(e) => tracing::error!("{e}"),
    }
}

fn scan(shared: &Shared, schedule: &mut HashMap<String, u64>) {
    match shared.queue.list() {
        Ok(ids) => {
            let present: HashSet<&String> = ids.iter().collect();
            schedule.retain(|id, _| present.contains(id));
            for id in &ids {
                if !schedule.contains_key(id) {
                    let at = shared.queue.load(id).map(|e| e.next_attempt).unwrap_or(0);
                    schedule.insert(id.clone(), at);
                }
            }
        }
        Err(e) => tracing::error!("{e}"),
    }
    // `mtactl queue retry`, `sendmail -q`: attempt now.
    match shared.queue.take_retry_requests() {
        Some(None) => schedule.values_mut().for_each(|t| *t = 0),
        Some(Some(ids)) => {
            for id in ids {
                if let Some(t) = schedule.get_mut(&id) {
                    *t = 0;
                }
            }
        }
        None => {}
    }
}

fn backoff(shared: &Shared, attempts: u32) -> u64 {
    let base = shared.config.queue.retry_interval.as_secs().max(1);
    base.saturating_mul(1u64 << attempts.min(16))
        .min(shared.config.queue.max_backoff.as_secs().max(1))
}

/// Whether a recipient still has delivery to do (local or remote).
fn is_pending(status: &RcptStatus) -> bool {
    matches!(
        status,
        RcptStatus::Pending | RcptStatus::Relay | RcptStatus::RelayDeferred(_)
    )
}

/// One delivery attempt for every pending recipient of message `id`:
/// local ones here, remote ones through `outbound` (blocking: call from a
/// blocking thread of the runtime).
pub fn attempt(shared: &Shared, outbound: &Outbound, id: &str) -> Result<Outcome, queue::QueueError> {
    let mut env = shared.queue.load(id)?;
    let content = shared.queue.read_content(id)?;
    let now = queue::now();
    let mut new_relays: Vec<(String, RcptParams)> = Vec::new();
    let mut failed: Vec<Failure> = Vec::new();
    let mut delivered: Vec<String> = Vec::new();
    for rcpt in env.recipients.iter_mut().filter(|r| r.status == RcptStatus::Pending) {
        let status = deliver_recipient(shared, id, &env.sender, env.arrived, &content, rcpt, &mut new_relays);
        match status {
            Ok(()) => {
                rcpt.status = RcptStatus::Delivered;
                shared.stats.count(stats::Event::Delivery(Delivery::Local), 1);
                delivered.push(rcpt.address.clone());
            }
            Err(DeliveryError {
                temporary: true,
                message: why,
            }) => {
                shared.stats.count(stats::Event::Delivery(Delivery::Deferred), 1);
                env.last_error = Some(why);
            }
            Err(DeliveryError { message: why, .. }) => {
                tracing::info!("{id}: to=<{}>, status=bounced ({why})", rcpt.address);
                shared.stats.count(stats::Event::Delivery(Delivery::Bounced), 1);
                failed.push(Failure {
                    recipient: rcpt.address.clone(),
                    status: dsn::status_code(&why, "5.0.0"),
                    diagnostic: why.clone(),
                    remote_mta: None,
                });
                rcpt.status = RcptStatus::Failed(why);
            }
        }
    }
    for (addr, params) in new_relays {
        if !env.recipients.iter().any(|r| r.address.eq_ignore_ascii_case(&addr)) {
            env.recipients.push(Recipient {
                address: addr,
                params,
                status: RcptStatus::Relay,
                done: Vec::new(),
                forwarded: true,
            });
        }
    }
    let relayed = relay(shared, outbound, id, &mut env, &content, &mut failed);
    notify_delivered(shared, id, &env, &content, &delivered, relayed);
    let pending = env.recipients.iter().any(|r| is_pending(&r.status));
    if pending && now.saturating_sub(env.arrived) > shared.config.queue.lifetime.as_secs() {
        for rcpt in env.recipients.iter_mut().filter(|r| is_pending(&r.status)) {
            let last = match &rcpt.status {
                RcptStatus::RelayDeferred(e) => e.clone(),
                _ => env.last_error.clone().unwrap_or_default(),
            };
            let why = format!(
                "expired after {}: {last}",
                greyd_shared::duration::format(shared.config.queue.lifetime),
            );
            tracing::info!("{id}: to=<{}>, status=expired ({why})", rcpt.address);
            failed.push(Failure {
                recipient: rcpt.address.clone(),
                status: "4.4.7".into(),
                diagnostic: why.clone(),
                remote_mta: None,
            });
            rcpt.status = RcptStatus::Failed(why);
        }
        return finish(shared, id, env, &content, &failed);
    }
    if pending {
        env.attempts += 1;
        env.next_attempt = now + backoff(shared, env.attempts - 1);
        warn_delayed(shared, id, &mut env, &content, now);
        shared.queue.write_envelope(id, &env)?;
        bounce(shared, id, &env, &content, &failed);
        return Ok(Outcome::RetryAt(env.next_attempt));
    }
    finish(shared, id, env, &content, &failed)
}

/// Send the remote recipients (`Relay`, `RelayDeferred`) through `outbound`
/// and record each outcome in the envelope. A crash after a server's 250
/// and before the envelope is rewritten sends that recipient again once:
/// at least once, never lost. Returns the `Action: relayed` reports due for
/// recipients with NOTIFY=SUCCESS taken by a server that does not do DSN.
fn relay(
    shared: &Shared,
    outbound: &Outbound,
    id: &str,
    env: &mut Envelope,
    content: &[u8],
    failed: &mut Vec<Failure>,
) -> Vec<RecipientReport> {
    use crate::outbound::client::{Mail, Rcpt};
    let relaying = |r: &Recipient| matches!(r.status, RcptStatus::Relay | RcptStatus::RelayDeferred(_));
    let forwarding = if env.recipients.iter().any(|r| r.forwarded && relaying(r)) {
        forwarding_sender(shared, id, env.sender.as_deref())
    } else {
        env.sender.clone()
    };
    // One group per envelope sender: forwarded recipients may carry the SRS one.
    type Group = (Option<String>, Vec<(usize, Rcpt)>);
    let mut groups: Vec<Group> = Vec::new();
    for (i, r) in env.recipients.iter().enumerate() {
        if !relaying(r) {
            continue;
        }
        let sender = if r.forwarded { &forwarding } else { &env.sender };
        let rcpt = Rcpt {
            address: r.address.clone(),
            notify: r.params.notify.clone(),
            orcpt: r.params.orcpt.clone(),
        };
        match groups.iter_mut().find(|(s, _)| s == sender) {
            Some((_, list)) => list.push((i, rcpt)),
            None => groups.push((sender.clone(), vec![(i, rcpt)])),
        }
    }
    let headers_end = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(content.len());
    let hostname = shared.config.hostname.to_ascii_lowercase();
    let is_self = |host: &str| host == hostname || shared.router.is_local_domain(host);
    let mut outcomes = Vec::new();
    for (sender, rcpts) in groups {
        let needs_smtputf8 = env.params.smtputf8
            || !sender.as_deref().unwrap_or("").is_ascii()
            || rcpts.iter().any(|(_, r)| !r.address.is_ascii())
            || !content[..headers_end].is_ascii();
        let msg = crate::outbound::deliver::Message {
            id,
            mail: Mail {
                sender,
                params: env.params.clone(),
                size: content.len() as u64,
                needs_smtputf8,
            },
            content,
            arrived: env.arrived,
        };
        outcomes.extend(tokio::runtime::Handle::current().block_on(outbound.deliver(&msg, rcpts, &is_self)));
    }
    let mut relayed = Vec::new();
    let now = queue::now();
    for o in outcomes {
        let rcpt = &mut env.recipients[o.index];
        rcpt.status = match o.disposition {
            Disposition::Sent => {
                if !o.peer_dsn && dsn::wanted(&rcpt.params.notify, Event::Success) {
                    relayed.push(RecipientReport {
                        address: rcpt.address.clone(),
                        orcpt: rcpt.params.orcpt.clone(),
                        action: Action::Relayed,
                        status: o.status,
                        remote_mta: o.remote_mta,
                        diagnostic: Some(o.diagnostic),
                        last_attempt: now,
                        will_retry_until: None,
                    });
                }
                shared.stats.count(stats::Event::Delivery(Delivery::Sent), 1);
                RcptStatus::Delivered
            }
            Disposition::Deferred => {
                shared.stats.count(stats::Event::Delivery(Delivery::Deferred), 1);
                RcptStatus::RelayDeferred(o.diagnostic)
            }
            Disposition::Bounced => {
                shared.stats.count(stats::Event::Delivery(Delivery::Bounced), 1);
                failed.push(Failure {
                    recipient: rcpt.address.clone(),
                    status: o.status,
                    diagnostic: o.diagnostic.clone(),
                    remote_mta: o.remote_mta,
                });
                RcptStatus::Failed(o.diagnostic)
            }
        };
    }
    relayed
}

/// The envelope sender for recipients we forward: its SRS form, so SPF
/// passes at the receiver and bounces come back through us to the sender.
/// `<>` and senders of our own domains stay as they are, and so does every
/// sender when there is no SRS key (with a warning).
fn forwarding_sender(shared: &Shared, id: &str, sender: Option<&str>) -> Option<String> {
    let sender = sender?;
    let ours = sender
        .rsplit_once('@')
        .is_none_or(|(_, domain)| shared.router.is_our_domain(domain));
    if ours {
        return Some(sender.to_string());
    }
    let Some(key) = shared.router.srs_key() else {
        tracing::warn!("{id}: no SRS key: forwarding with the original sender <{sender}>");
        return Some(sender.to_string());
    };
    Some(srs::forward(sender, shared.router.srs_domain(), &key, queue::now()))
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("{0}: the non-delivery report could not be queued, so the message stays")]
    Report(String),
}

/// `mtactl queue delete ID --bounce`: the recipients still to do fail with
/// 5.7.0, the sender gets one non-delivery report about them (as NOTIFY
/// allows), then the message (queued or held) is removed. The report is
/// queued first: a crash in between leaves the message, never a silent loss.
/// Returns the number of recipients that were still to do.
pub fn delete_with_bounce(shared: &Shared, id: &str) -> Result<usize, DeleteError> {
    let env = shared.queue.load_any(id)?;
    let content = shared.queue.read_content(id)?;
    let failed: Vec<Failure> = env
        .recipients
        .iter()
        .filter(|r| is_pending(&r.status))
        .map(|r| Failure {
            recipient: r.address.clone(),
            status: "5.7.0".into(),
            diagnostic: "message deleted from the queue by the mail administrator".into(),
            remote_mta: None,
        })
        .collect();
    if !bounce(shared, id, &env, &content, &failed) {
        return Err(DeleteError::Report(id.to_string()));
    }
    shared.queue.delete(id)?;
    tracing::info!("{id}: removed by the administrator");
    Ok(failed.len())
}

/// Nothing left to do: bounce what failed, then remove the message.
fn finish(
    shared: &Shared,
    id: &str,
    env: Envelope,
    content: &[u8],
    failed: &[Failure],
) -> Result<Outcome, queue::QueueError> {
    bounce(shared, id, &env, content, failed);
    shared.queue.remove(id)?;
    tracing::info!("{id}: removed");
    Ok(Outcome::Done)
}

/// Deliver one recipient to all its targets.
fn deliver_recipient(
    shared: &Shared,
    id: &str,
    sender: &Option<String>,
    arrived: u64,
    content: &[u8],
    rcpt: &mut Recipient,
    relays: &mut Vec<(String, RcptParams)>,
) -> Result<(), DeliveryError> {
    let mut temp: Option<String> = None;
    let mut perm: Option<String> = None;
    let mut delivered_any = false;
    let mut work = Vec::new();
    let mut seen_ids = Vec::new();
    let address = rcpt.address.clone();
    let msg = Message {
        sender: sender.as_deref(),
        recipient: &address,
        content,
        arrived,
    };
    let forwarded = dsn::forwarded_params(&rcpt.address, &rcpt.params);
    for r in shared.router.expand(&rcpt.address) {
        match r {
            Resolved::Deliver { target, owner } => {
                let filtered = match &target {
                    Target::Maildir { dir, folder, .. } => deliver::sieve::filter(
                        &shared.config.delivery,
                        &shared.config.hostname,
                        dir,
                        folder.as_deref(),
                        &msg,
                    ),
                    _ => None,
                };
                let Some(f) = filtered else {
                    work.push((target, owner, None));
                    continue;
                };
                if let Some(reason) = f.reject {
                    tracing::info!("{id}: to=<{}>, status=rejected by sieve ({reason})", rcpt.address);
                    perm = Some(format!("550 5.7.1 rejected by the recipient's filter: {reason}"));
                    continue;
                }
                if let Some(reply) = &f.vacation {
                    send_vacation(shared, id, &rcpt.address, reply);
                }
                seen_ids.extend(f.seen_ids);
                if f.targets.is_empty() && f.redirects.is_empty() {
                    tracing::info!("{id}: to=<{}>, status=discarded by sieve", rcpt.address);
                }
                delivered_any |= f.targets.is_empty();
                relays.extend(f.redirects.into_iter().map(|a| (a, forwarded.clone())));
                let edited = f.edited.map(Arc::new);
                work.extend(f.targets.into_iter().map(|t| (t, owner.clone(), edited.clone())));
            }
            Resolved::Relay(addr) => {
                relays.push((addr, forwarded.clone()));
                delivered_any = true;
            }
            Resolved::List { list, role } => {
                let key = format!("list:{}", crate::lists::address::local_part(&list, &role));
                if rcpt.done.contains(&key) {
                    delivered_any = true;
                    continue;
                }
                let msg = crate::lists::Incoming {
                    id,
                    sender: sender.as_deref(),
                    content,
                };
                match crate::lists::receive(shared, &list, &role, &msg) {
                    Ok(()) => {
                        tracing::info!("{id}: to=<{}>, relay=list, status=sent ({key})", rcpt.address);
                        rcpt.done.push(key);
                        delivered_any = true;
                    }
                    Err(e) if e.is_permanent() => perm = Some(format!("550 5.1.1 {e}")),
                    Err(e) => {
                        tracing::info!("{id}: to=<{}>, relay=list, status=deferred ({e})", rcpt.address);
                        temp = Some(e.to_string());
                    }
                }
            }
            Resolved::Error(reply) if reply.starts_with('4') => temp = Some(reply),
            Resolved::Error(reply) => perm = Some(reply),
        }
    }
    for (target, owner, edited) in work {
        let key = target.key();
        if rcpt.done.contains(&key) {
            delivered_any = true;
            continue;
        }
        let msg = match &edited {
            Some(content) => Message {
                content: content.as_slice(),
                ..msg.clone()
            },
            None => msg.clone(),
        };
        match deliver::deliver(&target, &msg, owner.as_ref(), &shared.config.hostname) {
            Ok(written) => {
                shared.delivered(&written);
                tracing::info!(
                    "{id}: to=<{}>, relay=local, delay={}s, status=sent ({key})",
                    rcpt.address,
                    queue::now().saturating_sub(arrived)
                );
                rcpt.done.push(key);
                delivered_any = true;
            }
            Err(e) if e.temporary => {
                tracing::info!("{id}: to=<{}>, relay=local, status=deferred ({key}: {e})", rcpt.address);
                temp = Some(e.message);
            }
            Err(e) => perm = Some(e.message),
        }
    }
    // Only a delivered message makes the next one with its id a duplicate:
    // a retry must not find itself already seen.
    if temp.is_none() {
        for ids in seen_ids {
            if let Err(e) = ids.remember() {
                tracing::warn!("{id}: to=<{}>: sieve: cannot remember duplicate ids: {e}", rcpt.address);
            }
        }
    }
    match (temp, perm) {
        (Some(t), _) => Err(DeliveryError::temp(t)),
        (None, Some(p)) if !delivered_any => Err(DeliveryError::perm(p)),
        (None, Some(p)) => {
            tracing::warn!("{id}: to=<{}>: part of the expansion failed: {p}", rcpt.address);
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

/// Queue a Sieve vacation reply from `<>` (DKIM-signed, out through the
/// relay like a DSN), then remember it: a crash in between may repeat a
/// reply, never lose the message.
fn send_vacation(shared: &Shared, id: &str, recipient: &str, reply: &deliver::sieve::VacationReply) {
    match shared.originate(
        None,
        std::slice::from_ref(&reply.to),
        "mta sieve vacation",
        &reply.content,
    ) {
        Ok(vid) => {
            tracing::info!("{id}: to=<{recipient}>: vacation reply to <{}>: {vid}", reply.to);
            if let Err(e) = reply.sent() {
                tracing::warn!("{id}: to=<{recipient}>: cannot remember the vacation reply: {e}");
            }
        }
        Err(e) => tracing::warn!("{id}: to=<{recipient}>: vacation reply not queued: {e}"),
    }
}

/// Queue an RFC 3464 non-delivery report for the recipients in `failed`
/// to the sender, or to the postmaster when a bounce itself failed.
fn bounce(shared: &Shared, id: &str, env: &Envelope, content: &[u8], failed: &[Failure]) -> bool {
    let now = queue::now();
    let reports = failed
        .iter()
        .filter_map(|f| {
            let rcpt = env.recipients.iter().find(|r| r.address == f.recipient)?;
            dsn::wanted(&rcpt.params.notify, Event::Failure).then(|| RecipientReport {
                address: f.recipient.clone(),
                orcpt: rcpt.params.orcpt.clone(),
                action: Action::Failed,
                status: f.status.clone(),
                remote_mta: f.remote_mta.clone(),
                diagnostic: Some(f.diagnostic.clone()),
                last_attempt: now,
                will_retry_until: None,
            })
        })
        .collect();
    send_dsn(shared, id, env, content, Event::Failure, reports)
}

/// The delay warning (Postfix's delay_warning_time): once the message has
/// waited `[queue] delay_warning`, one `Action: delayed` report for the
/// recipients still pending that want it, then never again for this message;
/// none for mail from `<>`. Until then the next attempt comes no later than
/// the warning is due, so a long backoff does not postpone it. Queued before
/// the envelope records it: a crash repeats the warning rather than lose it.
fn warn_delayed(shared: &Shared, id: &str, env: &mut Envelope, content: &[u8], now: u64) {
    let after = shared.config.queue.delay_warning.as_secs();
    if after == 0 || env.delay_warned || env.sender.is_none() {
        return;
    }
    let due = env.arrived.saturating_add(after);
    if now < due {
        env.next_attempt = env.next_attempt.min(due);
        return;
    }
    let until = env.arrived.saturating_add(shared.config.queue.lifetime.as_secs());
    let reports = env
        .recipients
        .iter()
        .filter(|r| is_pending(&r.status) && dsn::wanted(&r.params.notify, Event::Delay))
        .map(|r| {
            let why = match &r.status {
                RcptStatus::RelayDeferred(e) => Some(e.clone()),
                _ => env.last_error.clone(),
            };
            RecipientReport {
                address: r.address.clone(),
                orcpt: r.params.orcpt.clone(),
                action: Action::Delayed,
                status: dsn::status_code(why.as_deref().unwrap_or(""), "4.0.0"),
                remote_mta: None,
                diagnostic: why,
                last_attempt: now,
                will_retry_until: Some(until),
            }
        })
        .collect();
    send_dsn(shared, id, env, content, Event::Delay, reports);
    env.delay_warned = true;
}

/// Queue one success DSN for the recipients just delivered here that asked
/// for one (NOTIFY=SUCCESS; an alias that only forwarded elsewhere is
/// `expanded`) and those `relayed` to servers without DSN.
fn notify_delivered(
    shared: &Shared,
    id: &str,
    env: &Envelope,
    content: &[u8],
    delivered: &[String],
    relayed: Vec<RecipientReport>,
) {
    let now = queue::now();
    let mut reports: Vec<RecipientReport> = env
        .recipients
        .iter()
        .filter(|r| delivered.contains(&r.address) && dsn::wanted(&r.params.notify, Event::Success))
        .map(|r| RecipientReport {
            address: r.address.clone(),
            orcpt: r.params.orcpt.clone(),
            action: if r.done.is_empty() {
                Action::Expanded
            } else {
                Action::Delivered
            },
            status: "2.0.0".into(),
            remote_mta: None,
            diagnostic: None,
            last_attempt: now,
            will_retry_until: None,
        })
        .collect();
    reports.extend(relayed);
    send_dsn(shared, id, env, content, Event::Success, reports);
}

/// Build and queue one DSN about `reports` from `<>`. Mail from `<>` gets
/// none (so bounces cannot loop), except that a failed bounce is reported to
/// the postmaster, unless it was the postmaster's own. False when one was
/// due and could not be queued (logged).
fn send_dsn(
    shared: &Shared,
    id: &str,
    env: &Envelope,
    content: &[u8],
    event: Event,
    reports: Vec<RecipientReport>,
) -> bool {
    if reports.is_empty() {
        return true;
    }
    let host = &shared.config.hostname;
    let is_postmaster = |a: &str| {
        a.split('@')
            .next()
            .is_some_and(|l| l.eq_ignore_ascii_case("postmaster"))
    };
    let to = match env.sender.as_deref() {
        Some(sender) => sender.to_string(),
        None if event == Event::Failure && !reports.iter().any(|r| is_postmaster(&r.address)) => {
            format!("postmaster@{host}")
        }
        None => return true,
    };
    let report = Report {
        reporting_mta: host.clone(),
        queue_id: id.to_string(),
        to: to.clone(),
        arrival: env.arrived,
        envid: env.params.envid.clone(),
        ret: env.params.ret,
        event,
        recipients: reports,
        now: queue::now(),
    };
    let bytes = dsn::build(&report, content);
    let kind = match event {
        Event::Failure => "non-delivery",
        Event::Delay => "delay",
        Event::Success => "success",
    };
    match shared.originate(None, &[to], "mta", &bytes) {
        Ok(bid) => {
            tracing::info!("{id}: sender {kind} notification: {bid}");
            true
        }
        Err(e @ OriginateError::Refused(..)) => {
            tracing::warn!("{id}: delivery status notification to {e}");
            false
        }
        Err(e) => {
            tracing::error!("{id}: cannot queue the {kind} notification: {e}");
            false
        }
    }
}
