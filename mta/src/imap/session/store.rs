//! Changing messages: STORE (with UNCHANGEDSINCE), COPY, MOVE and EXPUNGE.

use super::{Session, blocking, over_quota, store_no, to_flags};
use crate::imap::command::StoreMode;
use crate::imap::sequence::{self, SequenceSet};
use crate::imap::view;
use crate::store::{FlagOp, StoreError};
use std::sync::Arc;

impl Session {
    pub(super) async fn expunge(&mut self, tag: &str, uids: Option<SequenceSet>) {
        if self.selected().read_only {
            return self.line(&format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
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
            return self.line(&format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
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
            Err(e) => return self.line(&format!("{tag} {}", store_no(&e))),
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
                items.push(format!("UID {u}"));
            }
            if !silent {
                items.push(format!("FLAGS {}", view::render_flags(flags, sel.is_recent(*u))));
            }
            if condstore {
                items.push(format!("MODSEQ ({modseq})"));
            }
            if !silent || condstore {
                lines.push(format!("* {seq} FETCH ({})", items.join(" ")));
            }
        }
        for l in lines {
            self.line(&l);
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
            self.ok(
                tag,
                &format!("[MODIFIED {}] Conditional STORE failed", sequence::render(&modified)),
            );
        }
    }

    pub(super) async fn copy(&mut self, tag: &str, uid: bool, set: SequenceSet, dest: String, remove: bool) {
        self.update(uid).await;
        let sel = self.selected();
        if remove && sel.read_only {
            return self.line(&format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
        }
        let uids: Vec<u32> = sel.resolve(&set, uid).iter().map(|t| t.1).collect();
        if uids.is_empty() {
            return self.ok(tag, "Nothing to do");
        }
        let adding: u64 = uids.iter().filter_map(|&u| sel.meta(u)).map(|m| m.size).sum();
        if !remove && over_quota(self.shared.config.imap.quota, self.store(), adding).await {
            return self.line(&format!("{tag} NO [OVERQUOTA] Mailbox quota exceeded"));
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
                let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
                let dst: Vec<u32> = pairs.iter().map(|p| p.1).collect();
                let code = format!(
                    "[COPYUID {validity} {} {}]",
                    sequence::render(&src),
                    sequence::render(&dst)
                );
                if remove {
                    self.line(&format!("* OK {code} Moved"));
                    self.update(true).await;
                    self.ok(tag, "MOVE completed");
                } else {
                    self.ok(tag, &format!("{code} COPY completed"));
                }
            }
            Err(StoreError::NoSuchMailbox(m)) => self.line(&format!("{tag} NO [TRYCREATE] No such mailbox: {m}")),
            Err(e) => self.line(&format!("{tag} {}", store_no(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::query::has_flag;
    use crate::imap::view::render_flags;

    #[test]
    fn flags_round_trip() {
        let f = to_flags(&["\\Seen".into(), "\\Recent".into(), "$Junk".into()]);
        assert!(f.seen && !f.deleted);
        assert_eq!(render_flags(&f, true), "(\\Seen \\Recent $Junk)");
        assert!(has_flag(&f, "$junk"));
        assert!(has_flag(&f, "\\SEEN"));
        assert!(!has_flag(&f, "\\Draft"));
    }
}
