//! Changing messages: STORE (with UNCHANGEDSINCE), COPY, MOVE and EXPUNGE.

use super::{Session, blocking, dest_no, over_quota, over_quota_no, read_only, store_no, to_flags};
use crate::imap::command::StoreMode;
use crate::imap::response::{Code, FetchItem, Kind, Status, Untagged};
use crate::imap::sequence::SequenceSet;
use crate::imap::view;
use crate::store::FlagOp;
use std::sync::Arc;

impl Session {
    pub(super) async fn expunge(&mut self, tag: &str, uids: Option<SequenceSet>) {
        if self.selected().read_only {
            return self.send(read_only(tag));
        }
        let only: Option<Vec<u32>> = uids.map(|set| self.selected().resolve(&set, true).iter().map(|p| p.1).collect());
        let mailbox = Arc::clone(&self.selected().mailbox);
        let r = blocking(move || mailbox.expunge(only.as_deref())).await;
        self.update(true).await;
        self.done(tag, r.map(drop), "EXPUNGE completed");
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_flags(
        &mut self,
        tag: &str,
        uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    ) {
        self.update(uid).await;
        let sel = self.selected();
        if sel.read_only {
            return self.send(read_only(tag));
        }
        if unchanged_since.is_some() {
            self.condstore = true;
        }
        let sel = self.selected();
        let targets = sel.resolve(&set, uid);
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        let op = match mode {
            StoreMode::Add => FlagOp::Add,
            StoreMode::Remove => FlagOp::Remove,
            StoreMode::Replace => FlagOp::Replace,
        };
        let flags = to_flags(&flags);
        let mailbox = Arc::clone(&sel.mailbox);
        let outcome = match blocking(move || mailbox.store_flags(&uids, op, &flags, unchanged_since)).await {
            Ok(o) => o,
            Err(e) => return self.send(store_no(tag, &e)),
        };
        let condstore = self.condstore;
        let sel = self.selected.as_mut().expect("selected");
        let mut lines = Vec::new();
        // A keyword's first use: the new FLAGS lists go out before the FETCH that carries it.
        let new_keyword = outcome
            .changed
            .iter()
            .flat_map(|c| &c.1.keywords)
            .any(|k| !sel.keywords.contains(k));
        if new_keyword {
            let mailbox = Arc::clone(&sel.mailbox);
            match blocking(move || mailbox.keywords()).await {
                Ok(keywords) => {
                    let sel = self.selected.as_mut().expect("selected");
                    lines.extend(view::flag_lines(&keywords, false));
                    sel.keywords = Arc::new(keywords);
                }
                Err(e) => tracing::warn!("imap: keywords: {e}"),
            }
        }
        let sel = self.selected.as_mut().expect("selected");
        for (u, flags, modseq) in &outcome.changed {
            let Some(&(seq, _)) = targets.iter().find(|t| t.1 == *u) else {
                continue;
            };
            sel.shown(*u, *modseq);
            let mut items = Vec::new();
            // Under CONDSTORE every untagged FETCH carries the UID (RFC 7162 §3.1).
            if uid || condstore {
                items.push(FetchItem::Uid(*u));
            }
            if !silent {
                items.push(FetchItem::Flags(view::flag_names(flags, sel.is_recent(*u))));
            }
            if condstore {
                items.push(FetchItem::ModSeq(*modseq));
            }
            if !silent || condstore {
                lines.push(Untagged::Fetch { seq, items }.into());
            }
        }
        for l in lines {
            self.send(l);
        }
        if outcome.modified.is_empty() {
            self.ok(tag, "STORE completed");
        } else {
            let mut modified: Vec<u32> = if uid {
                outcome.modified.clone()
            } else {
                targets
                    .iter()
                    .filter(|t| outcome.modified.contains(&t.1))
                    .map(|t| t.0)
                    .collect()
            };
            modified.sort_unstable();
            self.send(Status::ok(tag, "Conditional STORE failed").with(Code::Modified(modified)));
        }
    }

    pub(super) async fn copy(&mut self, tag: &str, uid: bool, set: SequenceSet, dest: String, remove: bool) {
        self.update(uid).await;
        let sel = self.selected();
        if remove && sel.read_only {
            return self.send(read_only(tag));
        }
        let uids: Vec<u32> = sel.resolve(&set, uid).iter().map(|t| t.1).collect();
        if uids.is_empty() {
            return self.ok(tag, "Nothing to do");
        }
        let adding: u64 = uids.iter().filter_map(|&u| sel.meta(u)).map(|m| m.size).sum();
        if !remove && over_quota(self.shared.config.imap.quota, self.store(), adding).await {
            return self.send(over_quota_no(tag));
        }
        let sel = self.selected();
        let source = Arc::clone(&sel.mailbox);
        let store = self.store();
        let r = blocking(move || {
            let dest = store.mailbox(&dest)?;
            if remove {
                source.move_to(&uids, &dest)
            } else {
                source.copy_to(&uids, &dest)
            }
        })
        .await;
        match r {
            Ok((validity, pairs)) => {
                let code = Code::CopyUid {
                    validity,
                    source: pairs.iter().map(|p| p.0).collect(),
                    dest: pairs.iter().map(|p| p.1).collect(),
                };
                if remove {
                    self.send(Status::untagged(Kind::Ok, "Moved").with(code));
                    self.update(true).await;
                    self.ok(tag, "MOVE completed");
                } else {
                    self.send(Status::ok(tag, "COPY completed").with(code));
                }
            }
            Err(e) => self.send(dest_no(tag, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::query::has_flag;
    use crate::imap::view::flag_names;

    #[test]
    fn flags_round_trip() {
        let f = to_flags(&["\\Seen".into(), "\\Recent".into(), "$Junk".into()]);
        assert!(f.seen && !f.deleted);
        assert_eq!(flag_names(&f, true), ["\\Seen", "\\Recent", "$Junk"]);
        assert!(has_flag(&f, "$junk"));
        assert!(has_flag(&f, "\\SEEN"));
        assert!(!has_flag(&f, "\\Draft"));
    }
}
