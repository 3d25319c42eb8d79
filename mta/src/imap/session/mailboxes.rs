//! The commands on mailboxes as a whole: LIST/LSUB (with LIST-EXTENDED
//! and LIST-STATUS), SUBSCRIBE, STATUS, GETQUOTA/GETQUOTAROOT and APPEND.

use super::{Session, blocking, over_quota, store_no, to_flags};
use crate::imap::command::{AppendMessage, ListOptions, StatusItem};
use crate::imap::listing;
use crate::imap::message;
use crate::imap::sequence;
use crate::store::{Flags, NewMessage, Snapshot, Store, StoreError};
use std::time::{Duration, UNIX_EPOCH};

/// What STATUS reports on: the synced folder and the lowest UID no session
/// has claimed as \Recent, read without claiming it.
fn status_data(store: &Store, name: &str) -> Result<(Snapshot, u32), StoreError> {
    let mailbox = store.mailbox(name)?;
    let snapshot = mailbox.sync()?;
    Ok((snapshot, mailbox.unclaimed_recent_from()?))
}

/// Does `name` match a LIST pattern (`*` anything, `%` anything but the delimiter)?
fn list_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| list_match(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != b'/')
            .any(|i| list_match(rest, &name[i..])),
        Some((&c, rest)) => name.first() == Some(&c) && list_match(rest, &name[1..]),
    }
}

impl Session {
    pub(super) async fn subscribe(&mut self, tag: &str, name: String, on: bool) {
        let store = self.store();
        let r = blocking(move || store.set_subscribed(&name, on)).await;
        self.done(tag, r, "completed");
    }

    pub(super) async fn list(
        &mut self,
        tag: &str,
        reference: &str,
        patterns: &[String],
        lsub: bool,
        options: ListOptions,
    ) {
        let verb = if lsub { "LSUB" } else { "LIST" };
        if patterns.len() == 1 && patterns[0].is_empty() && options == ListOptions::default() {
            self.line(&format!("* {verb} (\\Noselect) \"/\" \"\""));
            return self.ok(tag, &format!("{verb} completed"));
        }
        let store = self.store();
        let (folders, subscriptions) = match blocking(move || Ok((store.folders()?, store.subscriptions()?))).await {
            Ok(f) => f,
            Err(e) => return self.line(&format!("{tag} {}", store_no(&e))),
        };
        let matches = |name: &str| {
            patterns.iter().any(|p| {
                let full = format!("{reference}{p}");
                if name == "INBOX" {
                    list_match(full.to_ascii_uppercase().as_bytes(), b"INBOX")
                } else {
                    list_match(full.as_bytes(), name.as_bytes())
                }
            })
        };
        let mut listed = Vec::new();
        for entry in listing::entries(&folders, &subscriptions, matches, lsub, &options) {
            let mut line = format!("* {verb} ({}) \"/\" ", entry.attrs.join(" ")).into_bytes();
            message::string(&mut line, self.names.encode(&entry.name).as_bytes());
            if entry.child_info {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
            if entry.exists {
                listed.push(entry.name);
            }
        }
        if let Some(items) = options.status {
            for name in listed {
                let store = self.store();
                let n = name.clone();
                match blocking(move || status_data(&store, &n)).await {
                    Ok((snapshot, unclaimed)) => self.status_line(&name, &snapshot, unclaimed, &items),
                    Err(e) => tracing::warn!("imap: LIST-STATUS {name:?}: {e}"),
                }
            }
        }
        self.ok(tag, &format!("{verb} completed"));
    }

    pub(super) async fn status(&mut self, tag: &str, name: String, items: Vec<StatusItem>) {
        let store = self.store();
        let n = name.clone();
        match blocking(move || status_data(&store, &n)).await {
            Ok((snapshot, unclaimed)) => {
                self.status_line(&name, &snapshot, unclaimed, &items);
                self.ok(tag, "STATUS completed");
            }
            Err(e) => self.line(&format!("{tag} {}", store_no(&e))),
        }
    }

    /// `unclaimed`: the lowest UID no session has claimed as \Recent (see
    /// `status_data`). On the selected mailbox this session's own \Recent
    /// messages count too, so STATUS agrees with what SELECT said.
    pub(super) fn status_line(&mut self, name: &str, snapshot: &Snapshot, unclaimed: u32, items: &[StatusItem]) {
        let m = &snapshot.messages;
        let own = self.selected.as_ref().filter(|s| {
            s.mailbox.name() == name || (s.mailbox.name() == "INBOX" && name.eq_ignore_ascii_case("INBOX"))
        });
        let recent = m
            .iter()
            .filter(|m| m.uid >= unclaimed || own.is_some_and(|s| s.is_recent(m.uid)))
            .count();
        let values: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", m.len()),
                StatusItem::Recent => format!("RECENT {recent}"),
                StatusItem::UidNext => format!("UIDNEXT {}", snapshot.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", snapshot.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", m.iter().filter(|m| !m.flags.seen).count()),
                StatusItem::Size => format!("SIZE {}", m.iter().map(|m| m.size).sum::<u64>()),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", snapshot.highest_modseq),
                StatusItem::Deleted => format!("DELETED {}", m.iter().filter(|m| m.flags.deleted).count()),
            })
            .collect();
        let mut line = b"* STATUS ".to_vec();
        message::string(&mut line, self.names.encode(name).as_bytes());
        line.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        self.out.extend_from_slice(&line);
    }

    /// GETQUOTA "" / GETQUOTAROOT: one root for the whole account, STORAGE in KiB.
    pub(super) async fn quota(&mut self, tag: &str, mailbox: Option<String>) {
        let limit = self.shared.config.imap.quota;
        if let Some(name) = &mailbox {
            let mut line = b"* QUOTAROOT ".to_vec();
            message::string(&mut line, self.names.encode(name).as_bytes());
            line.extend_from_slice(if limit > 0 { b" \"\"\r\n" } else { b"\r\n" });
            self.out.extend_from_slice(&line);
        }
        if limit > 0 {
            let store = self.store();
            match blocking(move || store.usage()).await {
                Ok(used) => self.line(&format!(
                    "* QUOTA \"\" (STORAGE {} {})",
                    used.div_ceil(1024),
                    limit / 1024
                )),
                Err(e) => return self.line(&format!("{tag} {}", store_no(&e))),
            }
        } else if mailbox.is_none() {
            return self.line(&format!("{tag} NO [NONEXISTENT] No quota configured"));
        }
        self.ok(tag, "GETQUOTA completed");
    }

    /// APPEND of one message or, with MULTIAPPEND, several: all are saved or
    /// none (RFC 3502 §6.3.11).
    pub(super) async fn append(&mut self, tag: &str, name: String, messages: Vec<AppendMessage>) {
        if messages.iter().any(|m| m.data.is_empty()) {
            return self.line(&format!("{tag} NO Empty message"));
        }
        self.binary |= messages.iter().any(|m| m.literal8);
        let adding = messages.iter().map(|m| m.data.len() as u64).sum();
        if over_quota(self.shared.config.imap.quota, self.store(), adding).await {
            return self.line(&format!("{tag} NO [OVERQUOTA] Mailbox quota exceeded"));
        }
        let store = self.store();
        let r = blocking(move || {
            let mailbox = store.mailbox(&name)?;
            let flags: Vec<Flags> = messages.iter().map(|m| to_flags(&m.flags)).collect();
            let new: Vec<NewMessage> = messages
                .iter()
                .zip(&flags)
                .map(|(m, flags)| NewMessage {
                    data: &m.data,
                    binary: m.literal8,
                    flags,
                    date: m.date.map(|d| UNIX_EPOCH + Duration::from_secs(d.max(0) as u64)),
                })
                .collect();
            mailbox.append_all(&new)
        })
        .await;
        // Into the selected mailbox: `* n EXISTS` comes before the tagged OK.
        if self.selected.is_some() {
            self.update(true).await;
        }
        match r {
            Ok((validity, uids)) => self.ok(
                tag,
                &format!("[APPENDUID {validity} {}] APPEND completed", sequence::render(&uids)),
            ),
            Err(StoreError::NoSuchMailbox(m)) => {
                self.line(&format!("{tag} NO [TRYCREATE] No such mailbox: {m}"));
            }
            Err(e) => self.line(&format!("{tag} {}", store_no(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(list_match(b"*", b"Lists/rust"));
        assert!(list_match(b"%", b"Sent"));
        assert!(!list_match(b"%", b"Lists/rust"));
        assert!(list_match(b"Lists/%", b"Lists/rust"));
        assert!(list_match(b"L*t", b"Lists/rust"));
        assert!(!list_match(b"Sent", b"Sent2"));
    }
}
