//! SELECT and EXAMINE (with CONDSTORE and QRESYNC resynchronisation), and
//! bringing the client of the selected mailbox up to date after a sync.

use super::{Selected, Session, blocking, store_no};
use crate::imap::command::Qresync;
use crate::imap::listing;
use crate::imap::response::{Code, FetchItem, Kind, Response, Status, Untagged};
use crate::imap::sequence::SequenceSet;
use crate::imap::view::{self, Rules, View};
use crate::store::{Mailbox, StoreError};
use std::ops::Range;
use std::sync::Arc;

/// The UIDs below `uid_next` that become \Recent for a session: claimed
/// under SELECT, only looked at under EXAMINE, none under IMAP4rev2 (which
/// has no \Recent: the claim is left to IMAP4rev1 sessions).
pub(super) fn recent_for(
    mailbox: &Mailbox,
    uid_next: u32,
    read_only: bool,
    rev2: bool,
) -> Result<Range<u32>, StoreError> {
    Ok(if rev2 {
        0..0
    } else if read_only {
        mailbox.unclaimed_recent_from()?..uid_next
    } else {
        mailbox.claim_recent(uid_next)
    })
}

impl Session {
    pub(super) async fn select(
        &mut self,
        tag: &str,
        name: String,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    ) {
        self.saved.clear();
        if self.selected.take().is_some() && (self.rev2 || self.qresync) {
            self.send(Status::untagged(Kind::Ok, "Previous mailbox closed").with(Code::Closed));
        }
        let rev2 = self.rev2;
        if condstore {
            self.condstore = true;
        }
        let store = self.store();
        let opened = blocking(move || {
            let mailbox = store.mailbox(&name)?;
            let snapshot = mailbox.sync()?;
            let recent = recent_for(&mailbox, snapshot.uid_next, read_only, rev2)?;
            Ok((mailbox, snapshot, recent))
        })
        .await;
        let (mailbox, snapshot, recent_uids) = match opened {
            Ok(o) => o,
            Err(e) => return self.send(store_no(tag, &e)),
        };
        let exists = snapshot.messages.len();
        let recent = snapshot
            .messages
            .iter()
            .filter(|m| recent_uids.contains(&m.uid))
            .count();
        let first_unseen = snapshot.messages.iter().position(|m| !m.flags.seen);
        let ok = |code, text| Response::from(Status::untagged(Kind::Ok, text).with(code));
        let mut lines = view::flag_lines(&snapshot.keywords, read_only).to_vec();
        lines.push(Untagged::Exists(exists as u32).into());
        // IMAP4rev2 dropped RECENT and the UNSEEN code (RFC 9051 Appendix E).
        if !rev2 {
            lines.push(Untagged::Recent(recent as u32).into());
            if let Some(i) = first_unseen {
                lines.push(ok(Code::Unseen(i as u32 + 1), "First unseen"));
            }
        }
        lines.push(ok(Code::UidValidity(snapshot.uid_validity), "UIDs valid"));
        lines.push(ok(Code::UidNext(snapshot.uid_next), "Predicted next UID"));
        lines.push(ok(Code::HighestModSeq(snapshot.highest_modseq), "Highest"));
        for l in lines {
            self.send(l);
        }
        if rev2 {
            self.select_list(mailbox.name()).await;
        }
        let validity = snapshot.uid_validity;
        self.selected = Some(Selected {
            mailbox,
            view: View::new(snapshot, read_only, recent_uids),
        });
        if let Some(q) = qresync.filter(|q| q.uid_validity == validity) {
            let all = SequenceSet::parse("1:*").expect("valid set");
            let known_uids = q.known_uids.unwrap_or(all);
            let messages = &self.selected().snapshot.messages;
            let known_through = q.sequence_match.map_or(0, |m| {
                m.known_through(|seq| messages.get(seq as usize - 1).map(|m| m.uid))
            });
            self.vanished_earlier(&known_uids, q.modseq, known_through).await;
            let sel = self.selected();
            let r = known_uids.resolve(sel.max_uid());
            let lines: Vec<Untagged> = sel
                .snapshot
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.modseq > q.modseq && r.contains(m.uid))
                .map(|(i, m)| Untagged::Fetch {
                    seq: i as u32 + 1,
                    items: vec![
                        FetchItem::Uid(m.uid),
                        FetchItem::Flags(view::flag_names(&m.flags, sel.is_recent(m.uid))),
                        FetchItem::ModSeq(m.modseq),
                    ],
                })
                .collect();
            for l in lines {
                self.send(l);
            }
        }
        let mode = if read_only { Code::ReadOnly } else { Code::ReadWrite };
        self.send(Status::ok(tag, "SELECT completed").with(mode));
    }

    /// IMAP4rev2's SELECT names the mailbox in a LIST response with its
    /// attributes (RFC 9051 §6.3.2).
    pub(super) async fn select_list(&mut self, name: &str) {
        let store = self.store();
        let folders = match blocking(move || store.folders()).await {
            Ok(f) => f,
            Err(e) => return tracing::warn!("imap: folders for SELECT: {e}"),
        };
        let Some(f) = folders.iter().find(|f| f.name == name) else {
            return;
        };
        let mut attributes = vec![if f.has_children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        }];
        attributes.extend(f.special_use.map(listing::special_use_attribute));
        self.send(Untagged::List {
            lsub: false,
            attributes,
            delimiter: '/',
            name: self.names.encode(name),
            child_info: false,
        });
    }

    /// `* VANISHED (EARLIER) uids`: UIDs in `set` expunged since `modseq`
    /// (QRESYNC), leaving out those up to `known_through`, which the client's
    /// sequence match data shows it knows of.
    pub(super) async fn vanished_earlier(&mut self, set: &SequenceSet, modseq: u64, known_through: u32) {
        let sel = self.selected();
        let mailbox = Arc::clone(&sel.mailbox);
        let largest = sel.snapshot.uid_next.saturating_sub(1);
        match blocking(move || mailbox.vanished_since(modseq)).await {
            Ok(mut uids) => {
                let r = set.resolve(largest);
                uids.retain(|&u| u > known_through && r.contains(u));
                uids.sort_unstable();
                if !uids.is_empty() {
                    self.send(Untagged::Vanished { earlier: true, uids });
                }
            }
            Err(e) => tracing::warn!("imap: VANISHED: {e}"),
        }
    }

    /// Sync the selected mailbox and tell the client what changed. EXPUNGE
    /// is held back during FETCH, STORE and SEARCH by sequence number.
    pub(super) async fn update(&mut self, allow_expunge: bool) {
        let Some(sel) = &self.selected else { return };
        let mailbox = Arc::clone(&sel.mailbox);
        let (read_only, rev2) = (sel.read_only, self.rev2);
        let synced = blocking(move || {
            let snapshot = mailbox.sync()?;
            let recent = recent_for(&mailbox, snapshot.uid_next, read_only, rev2)?;
            Ok((snapshot, recent))
        })
        .await;
        let (snapshot, recent_uids) = match synced {
            Ok(s) => s,
            Err(e) => return tracing::warn!("imap: sync: {e}"),
        };
        let rules = Rules {
            allow_expunge,
            qresync: self.qresync,
            condstore: self.condstore,
            rev2,
        };
        let Some(sel) = &mut self.selected else { return };
        for l in sel.view.catch_up(snapshot, recent_uids, rules) {
            self.send(l);
        }
    }
}
