//! The commands on mailboxes as a whole: LIST/LSUB (with LIST-EXTENDED
//! and LIST-STATUS), SUBSCRIBE, STATUS, GETQUOTA/GETQUOTAROOT and APPEND.

use super::{Session, blocking, dest_no, over_quota, over_quota_no, store_no, to_flags};
use crate::imap::command::{AppendMessage, ListOptions, StatusItem};
use crate::imap::listing;
use crate::imap::response::{Code, Status, Untagged};
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
            self.send(Untagged::List {
                lsub,
                attributes: vec!["\\Noselect"],
                delimiter: '/',
                name: String::new(),
                child_info: false,
            });
            return self.ok(tag, &format!("{verb} completed"));
        }
        let store = self.store();
        let (folders, subscriptions) = match blocking(move || Ok((store.folders()?, store.subscriptions()?))).await {
            Ok(f) => f,
            Err(e) => return self.send(store_no(tag, &e)),
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
            self.send(Untagged::List {
                lsub,
                attributes: entry.attrs,
                delimiter: '/',
                name: self.names.encode(&entry.name),
                child_info: entry.child_info,
            });
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
            Err(e) => self.send(store_no(tag, &e)),
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
        let count = |f: fn(&Flags) -> bool| m.iter().filter(|m| f(&m.flags)).count() as u64;
        let items = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => ("MESSAGES", m.len() as u64),
                StatusItem::Recent => ("RECENT", recent as u64),
                StatusItem::UidNext => ("UIDNEXT", u64::from(snapshot.uid_next)),
                StatusItem::UidValidity => ("UIDVALIDITY", u64::from(snapshot.uid_validity)),
                StatusItem::Unseen => ("UNSEEN", count(|f| !f.seen)),
                StatusItem::Size => ("SIZE", m.iter().map(|m| m.size).sum::<u64>()),
                StatusItem::HighestModSeq => ("HIGHESTMODSEQ", snapshot.highest_modseq),
                StatusItem::Deleted => ("DELETED", count(|f| f.deleted)),
            })
            .collect();
        self.send(Untagged::Status {
            mailbox: self.names.encode(name),
            items,
        });
    }

    /// GETQUOTA "" / GETQUOTAROOT: one root for the whole account, STORAGE in KiB.
    pub(super) async fn quota(&mut self, tag: &str, mailbox: Option<String>) {
        let limit = self.shared.config.imap.quota;
        if let Some(name) = &mailbox {
            let roots = if limit > 0 { vec![String::new()] } else { Vec::new() };
            self.send(Untagged::QuotaRoot {
                mailbox: self.names.encode(name),
                roots,
            });
        }
        if limit > 0 {
            let store = self.store();
            match blocking(move || store.usage()).await {
                Ok(used) => self.send(Untagged::Quota {
                    root: String::new(),
                    resources: vec![("STORAGE", used.div_ceil(1024), limit / 1024)],
                }),
                Err(e) => return self.send(store_no(tag, &e)),
            }
        } else if mailbox.is_none() {
            return self.send(Status::no(tag, "No quota configured").with(Code::Nonexistent));
        }
        self.ok(tag, "GETQUOTA completed");
    }

    /// APPEND of one message or, with MULTIAPPEND, several: all are saved or
    /// none (RFC 3502 §6.3.11).
    pub(super) async fn append(&mut self, tag: &str, name: String, messages: Vec<AppendMessage>) {
        if messages.iter().any(|m| m.data.is_empty()) {
            return self.send(Status::no(tag, "Empty message"));
        }
        self.binary |= messages.iter().any(|m| m.literal8);
        let adding = messages.iter().map(|m| m.data.len() as u64).sum();
        if over_quota(self.shared.config.imap.quota, self.store(), adding).await {
            return self.send(over_quota_no(tag));
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
            Ok((validity, uids)) => {
                self.send(Status::ok(tag, "APPEND completed").with(Code::AppendUid { validity, uids }))
            }
            Err(e) => self.send(dest_no(tag, &e)),
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
