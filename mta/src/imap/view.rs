//! What the client of a selected mailbox has been told: the UIDs behind its
//! sequence numbers, the flag changes it has seen, its \Recent messages and
//! keywords. [`View::catch_up`] diffs a new store snapshot against that and
//! returns the untagged EXISTS, EXPUNGE/VANISHED, FETCH and FLAGS responses
//! that bring the client up to date. Pure: no I/O, no store calls.

use super::response::{Code, FetchItem, Kind, Response, Status, Untagged};
use super::sequence::SequenceSet;
use crate::store::{Flags, MessageMeta, Snapshot};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

pub struct View {
    pub read_only: bool,
    /// The UIDs the client knows, by sequence number - 1, when they differ
    /// from `snapshot`'s (an expunge held back during FETCH, STORE or SEARCH
    /// by sequence number). Usually `None`: the session then shares the
    /// folder's snapshot and an idle session costs no list of its own.
    held: Option<Vec<u32>>,
    /// The messages in `held` that are gone from the folder, as they were
    /// last seen: FETCH still answers for them (RFC 3501 §7.4.1).
    held_gone: HashMap<u32, MessageMeta>,
    /// Flag changes up to this MODSEQ have been shown to the client (or
    /// predate SELECT): one number instead of a MODSEQ per message keeps an
    /// idle session on a large folder small.
    reported: u64,
    /// Changes above `reported` this session has already shown (its own
    /// STORE, FETCH FLAGS): UID → MODSEQ shown. Emptied by `catch_up`.
    shown_above: HashMap<u32, u64>,
    pub snapshot: Snapshot,
    /// The keywords the client was last told of in `* FLAGS`.
    pub keywords: Arc<Vec<String>>,
    /// The UIDs \Recent in this session: those it claimed from the folder
    /// (each message is claimed by one session only) or, under EXAMINE,
    /// those still unclaimed.
    recent: Vec<Range<u32>>,
}

/// The response rules `catch_up` follows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    /// EXPUNGE may be sent now (not during FETCH, STORE or SEARCH by sequence number).
    pub allow_expunge: bool,
    /// Expunges go out as VANISHED.
    pub qresync: bool,
    /// Flag updates carry MODSEQ.
    pub condstore: bool,
    /// IMAP4rev2: no RECENT.
    pub rev2: bool,
}

impl View {
    /// The client has just been told of `snapshot` (SELECT or EXAMINE).
    pub fn new(snapshot: Snapshot, read_only: bool, recent: Range<u32>) -> View {
        View {
            read_only,
            held: None,
            held_gone: HashMap::new(),
            reported: snapshot.highest_modseq,
            shown_above: HashMap::new(),
            keywords: Arc::clone(&snapshot.keywords),
            snapshot,
            recent: vec![recent],
        }
    }

    pub fn meta(&self, uid: u32) -> Option<&MessageMeta> {
        meta_in(&self.snapshot, uid).or_else(|| self.held_gone.get(&uid))
    }

    pub fn is_recent(&self, uid: u32) -> bool {
        self.recent.iter().any(|r| r.contains(&uid))
    }

    /// Add UIDs claimed (or seen unclaimed) as \Recent.
    fn add_recent(&mut self, more: Range<u32>) {
        if more.is_empty() {
            return;
        }
        match self.recent.last_mut() {
            Some(last) if last.end == more.start => last.end = more.end,
            _ => self.recent.push(more),
        }
    }

    /// The UIDs the client knows, by sequence number - 1.
    pub(crate) fn known(&self) -> Uids<'_> {
        match &self.held {
            Some(list) => Uids::Own(list),
            None => Uids::Of(&self.snapshot.messages),
        }
    }

    pub fn max_uid(&self) -> u32 {
        self.known().last()
    }

    /// The client has now seen the flags of `uid` as of `modseq`.
    pub fn shown(&mut self, uid: u32, modseq: u64) {
        if modseq > self.reported {
            let m = self.shown_above.entry(uid).or_default();
            *m = (*m).max(modseq);
        }
    }

    /// (sequence number, UID) of the messages a set names.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
        if uid {
            // `*` is the highest UID the client knows; `n:*` includes it even when n is above (RFC 3501 §6.4.8).
            let r = set.resolve(self.max_uid());
            self.known().numbered().filter(|&(_, k)| r.contains(k)).collect()
        } else {
            let known = self.known();
            let r = set.resolve(known.len() as u32);
            known.numbered().filter(|&(seq, _)| r.contains(seq)).collect()
        }
    }

    /// Take in the folder's new `snapshot` and the UIDs that became \Recent
    /// for this session, and return the responses that tell the client what
    /// changed. Expunges are held back unless `rules.allow_expunge`.
    pub fn catch_up(&mut self, snapshot: Snapshot, recent_uids: Range<u32>, rules: Rules) -> Vec<Response> {
        if self.read_only {
            self.recent = vec![recent_uids];
        } else {
            self.add_recent(recent_uids);
        }
        if self.held.is_none() && Arc::ptr_eq(&self.snapshot.messages, &snapshot.messages) {
            // The folder's view has not changed since the last update.
            return Vec::new();
        }
        let old = std::mem::replace(&mut self.snapshot, snapshot);
        let held = self.held.take();
        let before = match &held {
            Some(list) => Uids::Own(list),
            None => Uids::Of(&old.messages),
        };
        let now = &self.snapshot;
        let last = before.last();
        // UIDs are handed out in ascending order and never again, so what is
        // in `now` up to `last` is what the client knows, less `gone`.
        let still = &now.messages[..now.messages.partition_point(|m| m.uid <= last)];
        let gone: Vec<(u32, u32)> = if still.len() == before.len() {
            Vec::new()
        } else {
            let mut walk = Walk(still);
            before.numbered().filter(|&(_, u)| walk.find(u).is_none()).collect()
        };
        let mut lines = Vec::new();
        if now.keywords != self.keywords {
            lines.extend(flag_lines(&now.keywords, self.read_only));
            self.keywords = Arc::clone(&now.keywords);
        }
        if rules.allow_expunge && rules.qresync && !gone.is_empty() {
            let uids: Vec<u32> = gone.iter().map(|g| g.1).collect();
            lines.push(Untagged::Vanished { earlier: false, uids }.into());
        } else if rules.allow_expunge {
            // Highest first, so each number is still right when the client applies it.
            lines.extend(gone.iter().rev().map(|&(seq, _)| Untagged::Expunge(seq).into()));
        }
        let holding = !rules.allow_expunge && !gone.is_empty();
        let told = if holding { before } else { Uids::Of(still) };
        if now.highest_modseq > self.reported {
            let mut walk = Walk(still);
            for (seq, uid) in told.numbered() {
                let Some(m) = walk.find(uid) else { continue };
                let shown = self.shown_above.get(&uid).copied().unwrap_or(self.reported);
                if m.modseq > shown {
                    let mut items = vec![
                        FetchItem::Uid(uid),
                        FetchItem::Flags(flag_names(&m.flags, self.is_recent(uid))),
                    ];
                    if rules.condstore {
                        items.push(FetchItem::ModSeq(m.modseq));
                    }
                    lines.push(Untagged::Fetch { seq, items }.into());
                }
            }
            self.reported = now.highest_modseq;
            self.shown_above.clear();
        }
        let fresh = &now.messages[still.len()..];
        let total = told.len() + fresh.len();
        let held_gone = if holding {
            gone.iter()
                .filter_map(|&(_, u)| meta_in(&old, u).or_else(|| self.held_gone.get(&u)).cloned())
                .map(|m| (m.uid, m))
                .collect()
        } else {
            HashMap::new()
        };
        if holding {
            let mut list: Vec<u32> = told.numbered().map(|(_, u)| u).collect();
            list.extend(fresh.iter().map(|m| m.uid));
            self.held = Some(list);
        }
        self.held_gone = held_gone;
        if !fresh.is_empty() {
            lines.push(Untagged::Exists(total as u32).into());
            if !rules.rev2 {
                let recent = self.known().numbered().filter(|&(_, u)| self.is_recent(u)).count();
                lines.push(Untagged::Recent(recent as u32).into());
            }
        }
        lines
    }
}

/// `* FLAGS` and `* OK [PERMANENTFLAGS]` for a folder with `keywords`: sent
/// at SELECT and again when a new keyword appears (RFC 3501 §7.2.6).
pub fn flag_lines(keywords: &[String], read_only: bool) -> [Response; 2] {
    let system = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];
    let flags: Vec<String> = system
        .iter()
        .map(|s| s.to_string())
        .chain(keywords.iter().cloned())
        .collect();
    let permanent = if read_only {
        Vec::new()
    } else {
        let mut p = flags.clone();
        p.push("\\*".into());
        p
    };
    [
        Untagged::Flags(flags).into(),
        Status::untagged(Kind::Ok, "Limited")
            .with(Code::PermanentFlags(permanent))
            .into(),
    ]
}

/// `\Seen \Flagged $Junk`: a message's flags as FETCH FLAGS lists them.
pub fn flag_names(flags: &Flags, recent: bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (on, name) in [
        (flags.seen, "\\Seen"),
        (flags.answered, "\\Answered"),
        (flags.flagged, "\\Flagged"),
        (flags.deleted, "\\Deleted"),
        (flags.draft, "\\Draft"),
        (recent, "\\Recent"),
    ] {
        if on {
            names.push(name.into());
        }
    }
    names.extend(flags.keywords.iter().cloned());
    names
}

/// A list of UIDs by sequence number - 1: a session's own or a snapshot's.
#[derive(Clone, Copy)]
pub(crate) enum Uids<'a> {
    Own(&'a [u32]),
    Of(&'a [MessageMeta]),
}

impl Uids<'_> {
    pub(crate) fn len(self) -> usize {
        match self {
            Uids::Own(l) => l.len(),
            Uids::Of(m) => m.len(),
        }
    }

    fn get(self, i: usize) -> u32 {
        match self {
            Uids::Own(l) => l[i],
            Uids::Of(m) => m[i].uid,
        }
    }

    /// The highest, or 0 when empty.
    fn last(self) -> u32 {
        self.len().checked_sub(1).map_or(0, |i| self.get(i))
    }

    /// (sequence number, UID) pairs.
    pub(crate) fn numbered(self) -> impl Iterator<Item = (u32, u32)> {
        (0..self.len()).map(move |i| (i as u32 + 1, self.get(i)))
    }
}

/// Looks up ascending UIDs in a UID-ordered slice in one pass.
struct Walk<'a>(&'a [MessageMeta]);

impl<'a> Walk<'a> {
    /// `uid`'s message, given UIDs asked for in ascending order.
    fn find(&mut self, uid: u32) -> Option<&'a MessageMeta> {
        let skip = self.0.partition_point(|m| m.uid < uid);
        self.0 = &self.0[skip..];
        self.0.first().filter(|m| m.uid == uid)
    }
}

fn meta_in(snapshot: &Snapshot, uid: u32) -> Option<&MessageMeta> {
    let m = &snapshot.messages;
    m.binary_search_by_key(&uid, |m| m.uid).ok().map(|i| &m[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    /// Unflagged, MODSEQ `uid`, dated the epoch.
    fn meta(uid: u32) -> MessageMeta {
        MessageMeta {
            uid,
            flags: Flags::default(),
            modseq: u64::from(uid),
            size: 0,
            internal_date: UNIX_EPOCH,
        }
    }

    fn snapshot(messages: Vec<MessageMeta>, keywords: &[&str]) -> Snapshot {
        let highest_modseq = messages.iter().map(|m| m.modseq).max().unwrap_or(0);
        Snapshot {
            uid_validity: 1,
            uid_next: messages.last().map_or(1, |m| m.uid + 1),
            highest_modseq,
            messages: Arc::new(messages),
            keywords: Arc::new(keywords.iter().map(|k| k.to_string()).collect()),
        }
    }

    fn rules(allow_expunge: bool) -> Rules {
        Rules {
            allow_expunge,
            ..Rules::default()
        }
    }

    /// The responses as the client reads them, a line each.
    fn wire(responses: Vec<Response>) -> Vec<String> {
        let lines = responses.iter().map(|r| String::from_utf8(r.to_bytes()).unwrap());
        lines.map(|l| l.trim_end_matches("\r\n").to_string()).collect()
    }

    fn uids(view: &View) -> Vec<u32> {
        view.known().numbered().map(|p| p.1).collect()
    }

    #[test]
    fn nothing_new_says_nothing() {
        let s = snapshot(vec![meta(1), meta(2)], &[]);
        let mut view = View::new(s.clone(), false, 0..0);
        assert!(view.catch_up(s, 0..0, rules(true)).is_empty());
    }

    #[test]
    fn new_mail_is_announced_with_exists_and_recent() {
        let mut view = View::new(snapshot(vec![meta(1)], &[]), false, 0..0);
        let lines = wire(view.catch_up(snapshot(vec![meta(1), meta(2), meta(3)], &[]), 2..4, rules(true)));
        assert_eq!(lines, ["* 3 EXISTS", "* 2 RECENT"]);
        assert!(view.is_recent(3) && !view.is_recent(1));
        let rev2 = Rules {
            rev2: true,
            ..rules(true)
        };
        let lines = wire(view.catch_up(snapshot(vec![meta(1), meta(2), meta(3), meta(4)], &[]), 4..5, rev2));
        assert_eq!(lines, ["* 4 EXISTS"], "IMAP4rev2 has no RECENT");
    }

    #[test]
    fn expunges_wait_until_they_may_be_sent() {
        let mut view = View::new(snapshot(vec![meta(1), meta(2), meta(3)], &[]), false, 0..0);
        // Another session expunged 2 and delivered 4 during a FETCH by sequence number.
        let lines = wire(view.catch_up(snapshot(vec![meta(1), meta(3), meta(4)], &[]), 0..0, rules(false)));
        assert_eq!(lines, ["* 4 EXISTS", "* 0 RECENT"]);
        assert_eq!(
            uids(&view),
            [1, 2, 3, 4],
            "sequence numbers stay as the client knows them"
        );
        assert_eq!(view.meta(2).map(|m| m.uid), Some(2), "FETCH still answers for 2");
        assert_eq!(
            view.resolve(&SequenceSet::parse("2:3").unwrap(), false),
            [(2, 2), (3, 3)]
        );
        // Later, when EXPUNGE may go out, it does, highest first.
        let s = snapshot(vec![meta(3), meta(4)], &[]);
        let lines = wire(view.catch_up(s, 0..0, rules(true)));
        assert_eq!(lines, ["* 2 EXPUNGE", "* 1 EXPUNGE"]);
        assert_eq!(uids(&view), [3, 4]);
        assert!(view.meta(2).is_none());
    }

    #[test]
    fn qresync_reports_vanished_uids() {
        let mut view = View::new(snapshot(vec![meta(1), meta(2), meta(3)], &[]), false, 0..0);
        let q = Rules {
            qresync: true,
            ..rules(true)
        };
        assert_eq!(
            wire(view.catch_up(snapshot(vec![meta(2)], &[]), 0..0, q)),
            ["* VANISHED 1,3"]
        );
    }

    #[test]
    fn flag_changes_go_out_once_and_a_new_keyword_first() {
        let mut view = View::new(snapshot(vec![meta(1), meta(2)], &[]), false, 0..0);
        let mut changed = meta(2);
        changed.flags.keywords.insert("$Work".into());
        changed.modseq = 5;
        let condstore = Rules {
            condstore: true,
            ..rules(true)
        };
        let lines = wire(view.catch_up(snapshot(vec![meta(1), changed.clone()], &["$Work"]), 0..0, condstore));
        assert_eq!(
            lines,
            [
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
                "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Limited",
                "* 2 FETCH (UID 2 FLAGS ($Work) MODSEQ (5))",
            ]
        );
        // A change the session showed itself (its own STORE) is not repeated.
        changed.flags.seen = true;
        changed.modseq = 6;
        view.shown(2, 6);
        let lines = wire(view.catch_up(snapshot(vec![meta(1), changed], &["$Work"]), 0..0, condstore));
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn examine_sees_recent_without_keeping_it() {
        let mut view = View::new(snapshot(vec![meta(1)], &[]), true, 1..2);
        assert!(view.is_recent(1));
        view.catch_up(snapshot(vec![meta(1)], &[]), 2..2, rules(true));
        assert!(!view.is_recent(1), "another session claimed it meanwhile");
    }

    proptest! {
        #[test]
        fn a_walk_finds_what_a_lookup_finds(
            present in proptest::collection::btree_set(1u32..200, 0..50),
            asked in proptest::collection::btree_set(1u32..200, 0..50),
        ) {
            let snapshot = snapshot(present.iter().map(|&u| meta(u)).collect(), &[]);
            let mut walk = Walk(&snapshot.messages);
            for uid in asked {
                prop_assert_eq!(walk.find(uid).map(|m| m.uid), meta_in(&snapshot, uid).map(|m| m.uid));
            }
        }

        /// After any sequence of changes, once expunges may be sent, the
        /// client's sequence numbers are the folder's, and the EXISTS
        /// and EXPUNGE lines it was sent account for every change in count.
        #[test]
        fn the_client_ends_in_step_with_the_folder(
            steps in proptest::collection::vec((proptest::collection::btree_set(1u32..40, 0..20), any::<bool>()), 1..8),
        ) {
            let mut view = View::new(snapshot(Vec::new(), &[]), false, 0..0);
            let mut count: i64 = 0;
            let mut next = 1;
            for (present, allow) in steps {
                // UIDs only grow: keep those below `next` that are present, then add new ones.
                let mut uids: Vec<u32> = view.snapshot.messages.iter().map(|m| m.uid).filter(|u| present.contains(u)).collect();
                let fresh = present.iter().filter(|&&u| u >= next).count() as u32;
                uids.extend(next..next + fresh);
                next += fresh;
                let s = snapshot(uids.iter().map(|&u| meta(u)).collect(), &[]);
                for response in view.catch_up(s, 0..0, rules(allow)) {
                    match response {
                        Response::Data(Untagged::Exists(n)) => count = i64::from(n),
                        Response::Data(Untagged::Expunge(_)) => count -= 1,
                        _ => {}
                    }
                }
                prop_assert_eq!(count as usize, view.known().len());
            }
            let now = snapshot(view.snapshot.messages.to_vec(), &[]);
            view.catch_up(now, 0..0, rules(true));
            prop_assert_eq!(uids(&view), view.snapshot.messages.iter().map(|m| m.uid).collect::<Vec<_>>());
        }
    }
}
