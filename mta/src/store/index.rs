//! The per-mailbox index file `mta-index`: UIDVALIDITY, the next UID, the
//! highest MODSEQ, and one record per message (UID, MODSEQ, size, date and
//! the Maildir name it was last seen under). It is an append-only log of
//! text records, replayed on open and compacted when it grows; the Maildir
//! stays the truth for which messages exist and what their flags are.
//!
//! Records, one per line:
//! `V uidvalidity`, `N uidnext`, `H highestmodseq`, `R recentfrom`,
//! `M uid modseq size mtime info base` (added or changed; info `-` if empty),
//! `X uid modseq` (expunged), and `F modseq` (expunges up to this MODSEQ were
//! forgotten by compaction).

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const FILE: &str = "mta-index";
const MAGIC: &str = "mta-index 1";

/// Expunge records kept through compaction, for QRESYNC.
pub const KEEP_EXPUNGED: usize = 10_000;

/// What the index remembers of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub uid: u32,
    pub modseq: u64,
    /// Size of the CRLF form.
    pub size: u64,
    /// Internal date, seconds since the epoch (the file's mtime).
    pub mtime: i64,
    /// Maildir info letters (`S`, `RS`, ...).
    pub info: String,
    /// The unique part of the file name (before `:2,`).
    pub base: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub recent_from: u32,
    pub messages: BTreeMap<u32, IndexEntry>,
    /// (uid, modseq) of expunged messages, oldest first.
    pub expunged: Vec<(u32, u64)>,
    /// Expunges with a MODSEQ at or below this were forgotten.
    pub expunge_floor: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("not an mta-index file")]
    Magic,
    #[error("line {0}: malformed record")]
    Malformed(usize),
    #[error("no UIDVALIDITY record")]
    NoValidity,
}

/// One change, as appended to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Message(&'a IndexEntry),
    Expunged(u32, u64),
    Recent(u32),
}

impl Record<'_> {
    pub fn line(&self) -> String {
        match self {
            Record::Message(e) => format!(
                "M {} {} {} {} {} {}\n",
                e.uid,
                e.modseq,
                e.size,
                e.mtime,
                if e.info.is_empty() { "-" } else { &e.info },
                e.base
            ),
            Record::Expunged(uid, modseq) => format!("X {uid} {modseq}\n"),
            Record::Recent(uid) => format!("R {uid}\n"),
        }
    }
}

impl Index {
    pub fn new(uid_validity: u32) -> Index {
        Index {
            uid_validity,
            uid_next: 1,
            highest_modseq: 1,
            recent_from: 1,
            ..Index::default()
        }
    }

    /// Replay a log. Returns the index and its number of records.
    pub fn parse(text: &str) -> Result<(Index, usize), IndexError> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(IndexError::Magic);
        }
        let mut ix = Index::new(0);
        let mut records = 0;
        for (n, line) in lines.enumerate() {
            let bad = || IndexError::Malformed(n + 2);
            let mut f = line.splitn(7, ' ');
            let kind = f.next().ok_or_else(bad)?;
            let mut num = || -> Result<u64, IndexError> { f.next().and_then(|s| s.parse().ok()).ok_or_else(bad) };
            match kind {
                "V" => ix.uid_validity = u32::try_from(num()?).map_err(|_| bad())?,
                "N" => ix.uid_next = ix.uid_next.max(u32::try_from(num()?).map_err(|_| bad())?),
                "H" => ix.highest_modseq = ix.highest_modseq.max(num()?),
                "R" => ix.recent_from = u32::try_from(num()?).map_err(|_| bad())?,
                "F" => ix.expunge_floor = ix.expunge_floor.max(num()?),
                "X" => {
                    let uid = u32::try_from(num()?).map_err(|_| bad())?;
                    let modseq = num()?;
                    ix.messages.remove(&uid);
                    ix.expunged.push((uid, modseq));
                    ix.note(uid, modseq);
                }
                "M" => {
                    let uid = u32::try_from(num()?).map_err(|_| bad())?;
                    let modseq = num()?;
                    let size = num()?;
                    let mtime = i64::try_from(num()?).map_err(|_| bad())?;
                    let info = f.next().ok_or_else(bad)?;
                    let base = f.next().filter(|b| !b.is_empty()).ok_or_else(bad)?;
                    if uid == 0 {
                        return Err(bad());
                    }
                    ix.note(uid, modseq);
                    ix.messages.insert(
                        uid,
                        IndexEntry {
                            uid,
                            modseq,
                            size,
                            mtime,
                            info: if info == "-" { String::new() } else { info.to_string() },
                            base: base.to_string(),
                        },
                    );
                }
                _ => return Err(bad()),
            }
            records += 1;
        }
        if ix.uid_validity == 0 {
            return Err(IndexError::NoValidity);
        }
        Ok((ix, records))
    }

    fn note(&mut self, uid: u32, modseq: u64) {
        self.uid_next = self.uid_next.max(uid.saturating_add(1));
        self.highest_modseq = self.highest_modseq.max(modseq);
    }

    /// The compacted log: the header, the live messages, and the newest
    /// expunges. Returns the text and its number of records.
    pub fn render(&mut self) -> (String, usize) {
        if self.expunged.len() > KEEP_EXPUNGED {
            let drop = self.expunged.len() - KEEP_EXPUNGED;
            let floor = self.expunged.drain(..drop).map(|(_, m)| m).max().unwrap_or(0);
            self.expunge_floor = self.expunge_floor.max(floor);
        }
        let mut out = String::with_capacity(64 * (self.messages.len() + 8));
        let _ = writeln!(out, "{MAGIC}");
        let _ = writeln!(out, "V {}", self.uid_validity);
        let _ = writeln!(out, "N {}", self.uid_next);
        let _ = writeln!(out, "H {}", self.highest_modseq);
        let _ = writeln!(out, "R {}", self.recent_from);
        let _ = writeln!(out, "F {}", self.expunge_floor);
        for (uid, modseq) in &self.expunged {
            out.push_str(&Record::Expunged(*uid, *modseq).line());
        }
        for e in self.messages.values() {
            out.push_str(&Record::Message(e).line());
        }
        (out, 5 + self.expunged.len() + self.messages.len())
    }

    /// UIDs expunged with a MODSEQ above `since`. When compaction forgot
    /// some of them, every UID below `uid_next` that is not live is returned
    /// instead: RFC 7162 allows VANISHED (EARLIER) to name UIDs that never existed.
    pub fn vanished_since(&self, since: u64) -> Vec<u32> {
        if since < self.expunge_floor {
            return (1..self.uid_next).filter(|u| !self.messages.contains_key(u)).collect();
        }
        let mut uids: Vec<u32> = self
            .expunged
            .iter()
            .filter(|(_, m)| *m > since)
            .map(|(u, _)| *u)
            .collect();
        uids.sort_unstable();
        uids.dedup();
        uids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(uid: u32, modseq: u64, info: &str) -> IndexEntry {
        IndexEntry {
            uid,
            modseq,
            size: 100 + uid as u64,
            mtime: 1_700_000_000,
            info: info.into(),
            base: format!("1700000000.M{uid}P1.host,S=99"),
        }
    }

    #[test]
    fn log_replays_and_compacts() {
        let mut log = format!("{MAGIC}\nV 42\n");
        log += &Record::Message(&entry(1, 2, "")).line();
        log += &Record::Message(&entry(2, 3, "S")).line();
        log += &Record::Message(&entry(1, 4, "RS")).line();
        log += &Record::Expunged(2, 5).line();
        log += &Record::Recent(3).line();
        let (mut ix, records) = Index::parse(&log).unwrap();
        assert_eq!(records, 6);
        assert_eq!(
            (ix.uid_validity, ix.uid_next, ix.highest_modseq, ix.recent_from),
            (42, 3, 5, 3)
        );
        assert_eq!(ix.messages.len(), 1);
        assert_eq!(ix.messages[&1].info, "RS");
        assert_eq!(ix.vanished_since(4), vec![2]);
        assert_eq!(ix.vanished_since(5), Vec::<u32>::new());
        let (text, _) = ix.render();
        assert_eq!(Index::parse(&text).unwrap().0, ix);
    }

    #[test]
    fn uid_next_survives_expunging_the_last_message() {
        let mut ix = Index::new(7);
        ix.messages.insert(1, entry(1, 2, ""));
        ix.uid_next = 9;
        ix.messages.clear();
        let (text, _) = ix.render();
        assert_eq!(Index::parse(&text).unwrap().0.uid_next, 9);
    }

    #[test]
    fn forgotten_expunges_give_a_superset() {
        let mut ix = Index::new(1);
        for uid in 1..=(KEEP_EXPUNGED as u32 + 5) {
            ix.expunged.push((uid, uid as u64 + 1));
        }
        ix.uid_next = KEEP_EXPUNGED as u32 + 7;
        ix.messages
            .insert(KEEP_EXPUNGED as u32 + 6, entry(KEEP_EXPUNGED as u32 + 6, 2, ""));
        let (text, _) = ix.render();
        let (ix, _) = Index::parse(&text).unwrap();
        assert_eq!(ix.expunged.len(), KEEP_EXPUNGED);
        let all = ix.vanished_since(0);
        assert_eq!(all.len(), KEEP_EXPUNGED + 5);
        assert!(!all.contains(&(KEEP_EXPUNGED as u32 + 6)));
        assert_eq!(
            ix.vanished_since(KEEP_EXPUNGED as u64 + 5),
            vec![KEEP_EXPUNGED as u32 + 5]
        );
    }

    #[test]
    fn damage_is_reported() {
        assert_eq!(Index::parse("junk\n"), Err(IndexError::Magic));
        assert_eq!(
            Index::parse(&format!("{MAGIC}\nV 1\nM 1 2\n")),
            Err(IndexError::Malformed(3))
        );
        assert_eq!(Index::parse(&format!("{MAGIC}\nN 4\n")), Err(IndexError::NoValidity));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "(mta-index 1\n)?[VNHRFXM0-9 \n-]{0,200}") {
            let _ = Index::parse(&text);
        }

        #[test]
        fn render_round_trips(infos in proptest::collection::vec("[DFRST]{0,3}", 0..20), validity in 1u32..) {
            let mut ix = Index::new(validity);
            for (i, info) in infos.iter().enumerate() {
                let uid = i as u32 * 2 + 1;
                ix.messages.insert(uid, entry(uid, i as u64 + 2, info));
                ix.uid_next = uid + 1;
                ix.highest_modseq = i as u64 + 2;
            }
            let (text, _) = ix.render();
            prop_assert_eq!(Index::parse(&text).unwrap().0, ix);
        }
    }
}
