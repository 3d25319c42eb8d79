//! SEARCH (with ESEARCH, SEARCHRES and CONDSTORE's MODSEQ), SORT and
//! THREAD over the messages the client knows.

use super::{Session, blocking, store_no};
use crate::imap::command::SearchReturn;
use crate::imap::query;
use crate::imap::response::{ESearchItem, Untagged};
use crate::imap::search::{Context, SearchKey};
use crate::imap::sequence::SequenceSet;
use crate::imap::sort::Criterion;
use crate::imap::thread;
use crate::store::{MessageMeta, StoreError};
use std::sync::Arc;

impl Session {
    /// The messages matching `key` as (number, MODSEQ, what THREAD needs if
    /// `threading`), by UID or sequence number, in mailbox order or sorted by `criteria`.
    pub(super) async fn matching(
        &mut self,
        uid: bool,
        key: SearchKey,
        criteria: Vec<Criterion>,
        threading: bool,
    ) -> Result<Vec<(u32, u64, Option<thread::Item>)>, StoreError> {
        self.update(uid).await;
        let sel = self.selected();
        let ctx = Context {
            max_seq: sel.known().len() as u32,
            max_uid: sel.max_uid(),
        };
        let candidates: Vec<(u32, MessageMeta, bool)> = sel
            .known()
            .numbered()
            .filter_map(|(seq, uid)| sel.meta(uid).map(|m| (seq, m.clone(), sel.is_recent(uid))))
            .collect();
        let mailbox = Arc::clone(&sel.mailbox);
        blocking(move || query::run(&mailbox, candidates, &ctx, &key, &criteria, threading, uid)).await
    }

    pub(super) async fn sort(&mut self, tag: &str, uid: bool, criteria: Vec<Criterion>, key: SearchKey) {
        match self.matching(uid, key, criteria, false).await {
            Ok(found) => {
                self.send(Untagged::Sort(found.iter().map(|f| f.0).collect()));
                self.ok(tag, "SORT completed");
            }
            Err(e) => self.send(store_no(tag, &e)),
        }
    }

    pub(super) async fn thread(&mut self, tag: &str, uid: bool, algorithm: thread::Algorithm, key: SearchKey) {
        match self.matching(uid, key, Vec::new(), true).await {
            Ok(found) => {
                let items: Vec<thread::Item> = found.into_iter().filter_map(|f| f.2).collect();
                let threads = tokio::task::spawn_blocking(move || thread::thread(algorithm, &items))
                    .await
                    .unwrap_or_default();
                self.send(Untagged::Thread(threads));
                self.ok(tag, "THREAD completed");
            }
            Err(e) => self.send(store_no(tag, &e)),
        }
    }

    pub(super) async fn search(&mut self, tag: &str, uid: bool, returns: Option<Vec<SearchReturn>>, key: SearchKey) {
        let uses_modseq = key.uses_modseq();
        // SEARCH MODSEQ enables CONDSTORE (RFC 7162 §3.1).
        self.condstore |= uses_modseq;
        let save = returns.as_ref().is_some_and(|r| r.contains(&SearchReturn::Save));
        let found = match self.matching(uid, key, Vec::new(), false).await {
            Ok(f) => f,
            Err(e) => {
                if save {
                    self.saved.clear();
                }
                return self.send(store_no(tag, &e));
            }
        };
        let numbers: Vec<u32> = found.iter().map(|f| f.0).collect();
        // With only MIN or MAX, MODSEQ is that of the messages returned (RFC 7162 §3.1.5).
        let only_ends = returns.as_ref().is_some_and(|r| {
            let has = |x| r.contains(&x);
            (has(SearchReturn::Min) || has(SearchReturn::Max)) && !has(SearchReturn::All) && !has(SearchReturn::Count)
        });
        let top_modseq = if only_ends {
            let r = returns.as_deref().unwrap_or_default();
            let min = found.first().filter(|_| r.contains(&SearchReturn::Min));
            let max = found.last().filter(|_| r.contains(&SearchReturn::Max));
            min.into_iter().chain(max).map(|f| f.1).max()
        } else {
            found.iter().map(|f| f.1).max()
        };
        if save {
            self.save_result(uid, &numbers, returns.as_deref().unwrap_or_default());
        }
        // IMAP4rev2 answers every SEARCH in the ESEARCH form (RFC 9051 §6.4.4).
        let returns = match returns {
            None if self.rev2 => Some(Vec::new()),
            Some(r) if save => {
                let rest: Vec<SearchReturn> = r.into_iter().filter(|r| *r != SearchReturn::Save).collect();
                if rest.is_empty() {
                    // SAVE alone asks for no ESEARCH response (RFC 5182 §2.1).
                    return self.ok(tag, "SEARCH completed, result saved");
                }
                Some(rest)
            }
            r => r,
        };
        match returns {
            None => {
                let modseq = top_modseq.filter(|_| uses_modseq);
                self.send(Untagged::Search { numbers, modseq });
            }
            Some(mut returns) => {
                if returns.is_empty() {
                    returns.push(SearchReturn::All);
                }
                let mut items: Vec<ESearchItem> = returns
                    .into_iter()
                    .filter_map(|r| match (r, numbers.first(), numbers.last()) {
                        (SearchReturn::Min, Some(&min), _) => Some(ESearchItem::Min(min)),
                        (SearchReturn::Max, _, Some(&max)) => Some(ESearchItem::Max(max)),
                        (SearchReturn::All, Some(_), _) => Some(ESearchItem::All(numbers.clone())),
                        (SearchReturn::Count, ..) => Some(ESearchItem::Count(numbers.len())),
                        (SearchReturn::Min | SearchReturn::Max | SearchReturn::All | SearchReturn::Save, ..) => None,
                    })
                    .collect();
                if uses_modseq && let Some(m) = top_modseq {
                    items.push(ESearchItem::ModSeq(m));
                }
                self.send(Untagged::ESearch {
                    tag: tag.to_string(),
                    uid,
                    items,
                });
            }
        }
        self.ok(tag, "SEARCH completed");
    }

    /// Keep a SEARCH result for `$` as UIDs. With MIN or MAX but neither ALL
    /// nor COUNT, only those messages are kept (RFC 5182 §2.4).
    pub(super) fn save_result(&mut self, uid: bool, numbers: &[u32], returns: &[SearchReturn]) {
        let has = |r: SearchReturn| returns.contains(&r);
        let kept: Vec<u32> = if !has(SearchReturn::All) && !has(SearchReturn::Count) {
            let mut ends = Vec::new();
            if has(SearchReturn::Min) {
                ends.extend(numbers.first());
            }
            if has(SearchReturn::Max) {
                ends.extend(numbers.last());
            }
            if ends.is_empty() { numbers.to_vec() } else { ends }
        } else {
            numbers.to_vec()
        };
        let mut uids: Vec<u32> = if uid {
            kept
        } else {
            let set = SequenceSet::from_numbers(&kept);
            self.selected().resolve(&set, false).iter().map(|p| p.1).collect()
        };
        uids.sort_unstable();
        uids.dedup();
        self.saved = uids;
    }
}
