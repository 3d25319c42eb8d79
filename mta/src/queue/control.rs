//! What queue listings show (`mailq`, `mtactl queue list|show`): one entry
//! per message with each recipient's state and last error, printed in
//! Postfix's mailq format or as JSON.

use super::{Queue, QueueError, RcptStatus};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct RecipientState {
    pub address: String,
    /// `pending`, `deferred`, `delivered` or `failed`.
    pub state: &'static str,
    /// Why it is not delivered yet (or failed).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    pub size: u64,
    pub arrived: u64,
    /// Empty for `<>`.
    pub sender: String,
    pub held: bool,
    pub attempts: u32,
    pub next_attempt: u64,
    pub recipients: Vec<RecipientState>,
}

/// The entry of one message (queued or held).
pub fn entry(queue: &Queue, id: &str) -> Result<Entry, QueueError> {
    let env = queue.load_any(id)?;
    let size = std::fs::metadata(queue.content_path(id)).map_or(0, |m| m.len());
    let recipients = env
        .recipients
        .iter()
        .map(|r| {
            let (state, reason) = match &r.status {
                RcptStatus::Pending => ("pending", env.last_error.clone()),
                RcptStatus::Relay => ("pending", None),
                RcptStatus::RelayDeferred(why) => ("deferred", Some(why.clone())),
                RcptStatus::Delivered => ("delivered", None),
                RcptStatus::Failed(why) => ("failed", Some(why.clone())),
            };
            RecipientState {
                address: r.address.clone(),
                state,
                reason,
            }
        })
        .collect();
    Ok(Entry {
        id: id.to_string(),
        size,
        arrived: env.arrived,
        sender: env.sender.unwrap_or_default(),
        held: queue.is_held(id),
        attempts: env.attempts,
        next_attempt: env.next_attempt,
        recipients,
    })
}

/// Every queued and held message, oldest first.
pub fn entries(queue: &Queue) -> Result<Vec<Entry>, QueueError> {
    let mut ids = queue.list()?;
    ids.extend(queue.list_held()?);
    ids.sort();
    // A message may leave the queue between listing and reading: skip it.
    Ok(ids.iter().filter_map(|id| entry(queue, id).ok()).collect())
}

/// `Thu Dec  3 12:00:00` from the epoch seconds, as Postfix's mailq shows it.
fn arrival(secs: u64) -> String {
    let date = crate::datetime::rfc5322(secs);
    let parts: Vec<&str> = date.split_whitespace().collect();
    match parts.as_slice() {
        [wd, day, mon, _, time, _] => format!("{} {mon} {day:>2} {time}", wd.trim_end_matches(',')),
        _ => date,
    }
}

/// The listing in Postfix's mailq format: `!` marks held messages; the
/// recipients still to do are grouped under their last error.
pub fn mailq(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".into();
    }
    let mut out = String::from("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut total = 0;
    for e in entries {
        total += e.size;
        let mark = if e.held { "!" } else { "" };
        let sender = if e.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &e.sender
        };
        out.push_str(&format!(
            "{:<12}{:>8} {} {sender}\n",
            format!("{}{mark}", e.id),
            e.size,
            arrival(e.arrived)
        ));
        let mut reasons: Vec<Option<&str>> = Vec::new();
        for r in e.recipients.iter().filter(|r| r.state != "delivered") {
            if !reasons.contains(&r.reason.as_deref()) {
                reasons.push(r.reason.as_deref());
            }
        }
        for reason in reasons {
            if let Some(why) = reason {
                out.push_str(&format!("{:41}({why})\n", ""));
            }
            for r in e
                .recipients
                .iter()
                .filter(|r| r.state != "delivered" && r.reason.as_deref() == reason)
            {
                out.push_str(&format!("{:41}{}\n", "", r.address));
            }
        }
        out.push('\n');
    }
    let n = entries.len();
    out.push_str(&format!(
        "-- {} Kbytes in {n} Request{}.\n",
        total.div_ceil(1024),
        if n == 1 { "" } else { "s" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_format() {
        let e = Entry {
            id: "ABC".into(),
            size: 2000,
            arrived: 1_795_833_931,
            sender: String::new(),
            held: true,
            attempts: 1,
            next_attempt: 0,
            recipients: vec![
                RecipientState {
                    address: "a@x.test".into(),
                    state: "deferred",
                    reason: Some("451 later".into()),
                },
                RecipientState {
                    address: "b@x.test".into(),
                    state: "delivered",
                    reason: None,
                },
            ],
        };
        let text = mailq(&[e]);
        assert!(
            text.contains("ABC!            2000 Sat Nov 28 02:45:31 MAILER-DAEMON\n"),
            "{text}"
        );
        assert!(text.contains("(451 later)\n") && text.contains("a@x.test\n") && !text.contains("b@x.test"));
        assert!(text.ends_with("-- 2 Kbytes in 1 Request.\n"), "{text}");
        assert_eq!(mailq(&[]), "Mail queue is empty\n");
    }
}
