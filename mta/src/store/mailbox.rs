//! One Maildir folder as IMAP and POP3 sessions see it: UIDs assigned to
//! files as they appear (whoever put them there), flag changes made by
//! other tools turned into new MODSEQs, and every change made through this
//! process announced to the other sessions on the same folder.
//!
//! All methods block on file I/O: call them from `spawn_blocking`.

use super::flags::{FlagOp, Flags, KeywordTable, split_name};
use super::index::{self, Index, IndexEntry, Record};
use super::wire::Form;
use super::{StoreError, io_err};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

const KEYWORDS_FILE: &str = "dovecot-keywords";

/// A message as the mailbox knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    pub modseq: u64,
    /// RFC822.SIZE: the size of what `Mailbox::read` returns.
    pub size: u64,
    pub internal_date: SystemTime,
}

/// A message to add with [`Mailbox::append_all`].
pub struct NewMessage<'a> {
    /// CRLF or LF line ends.
    pub data: &'a [u8],
    /// Sent as binary (an IMAP literal8): kept as it is even without CRLFs.
    pub binary: bool,
    pub flags: &'a Flags,
    /// INTERNALDATE; now if not given.
    pub date: Option<SystemTime>,
}

/// A consistent view of a mailbox at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// Ascending UID.
    pub messages: Arc<Vec<MessageMeta>>,
    /// The keywords defined in the folder (`dovecot-keywords`), sorted.
    pub keywords: Arc<Vec<String>>,
}

/// What a STORE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    /// UID, new flags, new MODSEQ of each message whose flags changed.
    pub changed: Vec<(u32, Flags, u64)>,
    /// Messages left alone because their MODSEQ is above UNCHANGEDSINCE.
    pub modified: Vec<u32>,
}

pub struct Mailbox {
    name: String,
    dir: PathBuf,
    owner: Option<(u32, u32)>,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

/// Modification times of new/ and cur/: unchanged means nothing to rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirStamp(SystemTime, SystemTime);

struct State {
    index: Index,
    by_base: HashMap<String, u32>,
    keywords: KeywordTable,
    log: File,
    log_records: usize,
    /// How new/ and cur/ looked after the last scan, or after our own
    /// changes since then.
    known: Option<DirStamp>,
    /// `known` is old enough that no change can hide behind equal timestamps.
    settled: bool,
    last_scan: Instant,
    snapshot: Option<Snapshot>,
    headers: HeaderCache,
    /// The folder was deleted or renamed away.
    gone: bool,
}

/// Header blocks already read, by UID, so SEARCH, SORT, THREAD and header
/// FETCHes over a large folder do not reread every file. A message's header
/// never changes and UIDs are never reused, so entries stay valid until
/// expunge; past the budget new headers are simply not kept.
#[derive(Default)]
struct HeaderCache {
    by_uid: HashMap<u32, Arc<[u8]>>,
    bytes: usize,
}

/// Bytes of headers kept per folder: 10k messages with 3 kB headers.
const HEADER_CACHE_BUDGET: usize = 32 << 20;

impl HeaderCache {
    fn insert(&mut self, uid: u32, header: &Arc<[u8]>) {
        if self.bytes + header.len() <= HEADER_CACHE_BUDGET && !self.by_uid.contains_key(&uid) {
            self.bytes += header.len();
            self.by_uid.insert(uid, Arc::clone(header));
        }
    }

    fn remove(&mut self, uid: u32) {
        if let Some(h) = self.by_uid.remove(&uid) {
            self.bytes -= h.len();
        }
    }
}

impl Mailbox {
    /// Load (or rebuild) the index of the Maildir folder `dir` and sync it.
    pub(super) fn open(name: &str, dir: &Path, owner: Option<(u32, u32)>) -> Result<Mailbox, StoreError> {
        let keywords = match fs::read_to_string(dir.join(KEYWORDS_FILE)) {
            Ok(text) => KeywordTable::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeywordTable::default(),
            Err(e) => return Err(io_err(dir.join(KEYWORDS_FILE), e)),
        };
        let path = dir.join(index::FILE);
        let loaded = match fs::read_to_string(&path) {
            Ok(text) => Index::parse(&text).map_err(|e| {
                tracing::warn!("{}: {e}; rebuilding with a new UIDVALIDITY", path.display());
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(()),
            Err(e) => return Err(io_err(path, e)),
        };
        let (index, log_records, log) = match loaded {
            Ok((index, records)) => {
                let log = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| io_err(&path, e))?;
                (index, records, log)
            }
            Err(()) => {
                let mut index = Index::new(new_uid_validity());
                let (log, records) = write_compacted(dir, &mut index, owner)?;
                (index, records, log)
            }
        };
        let by_base = index.messages.values().map(|e| (e.base.clone(), e.uid)).collect();
        let mailbox = Mailbox {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            owner,
            state: Mutex::new(State {
                index,
                by_base,
                keywords,
                log,
                log_records,
                known: None,
                settled: false,
                last_scan: Instant::now(),
                snapshot: None,
                headers: HeaderCache::default(),
                gone: false,
            }),
            changes: watch::Sender::new(0),
        };
        mailbox.sync()?;
        Ok(mailbox)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bumped on every change made through this process.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let st = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if st.gone {
            return Err(StoreError::NoSuchMailbox(self.name.clone()));
        }
        Ok(st)
    }

    /// The folder went away (deleted or renamed): sessions get NoSuchMailbox.
    pub(super) fn mark_gone(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).gone = true;
        self.changes.send_modify(|n| *n += 1);
    }

    /// Rescan the Maildir and return the current view.
    pub fn sync(&self) -> Result<Snapshot, StoreError> {
        let mut st = self.lock()?;
        self.sync_locked(&mut st)?;
        Ok(self.snapshot(&mut st))
    }

    fn snapshot(&self, st: &mut State) -> Snapshot {
        if let Some(s) = &st.snapshot {
            return s.clone();
        }
        let messages = st
            .index
            .messages
            .values()
            .map(|e| MessageMeta {
                uid: e.uid,
                flags: st.keywords.flags(&e.info),
                modseq: e.modseq,
                size: e.size,
                internal_date: UNIX_EPOCH + Duration::from_secs(e.mtime.max(0) as u64),
            })
            .collect();
        let snap = Snapshot {
            uid_validity: st.index.uid_validity,
            uid_next: st.index.uid_next,
            highest_modseq: st.index.highest_modseq,
            messages: Arc::new(messages),
            keywords: Arc::new(st.keywords.names()),
        };
        st.snapshot = Some(snap.clone());
        snap
    }

    fn sync_locked(&self, st: &mut State) -> Result<(), StoreError> {
        let stamp = self.stamp()?;
        if st.known == Some(stamp) && (st.settled || st.last_scan.elapsed() < RECHECK) {
            return Ok(());
        }
        let moved = self.move_new_to_cur()?;
        let cur = self.dir.join("cur");
        let mut seen = HashSet::new();
        let mut fresh = Vec::new();
        let mut records = Vec::new();
        for entry in fs::read_dir(&cur).map_err(|e| io_err(&cur, e))? {
            let entry = entry.map_err(|e| io_err(&cur, e))?;
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if file.starts_with('.') {
                continue;
            }
            let (base, info) = split_name(&file);
            let info = info.unwrap_or("");
            match st.by_base.get(base) {
                Some(&uid) => {
                    seen.insert(uid);
                    let e = st.index.messages.get_mut(&uid).expect("by_base and index agree");
                    if e.info != info {
                        st.index.highest_modseq += 1;
                        e.modseq = st.index.highest_modseq;
                        e.info = info.to_string();
                        records.push(Record::Message(e).line());
                    }
                }
                None => {
                    let mtime = entry.metadata().ok().and_then(|m| m.modified().ok());
                    fresh.push((mtime.unwrap_or(UNIX_EPOCH), file.clone()));
                }
            }
        }
        let vanished: Vec<u32> = st
            .index
            .messages
            .keys()
            .filter(|u| !seen.contains(u))
            .copied()
            .collect();
        for uid in vanished {
            records.push(expunge_entry(st, uid));
        }
        fresh.sort();
        for (mtime, file) in fresh {
            let (base, info) = split_name(&file);
            let data = match fs::read(cur.join(&file)) {
                Ok(d) => d,
                // Moved or removed by another tool since readdir: the next sync sees where it went.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(cur.join(&file), e)),
            };
            let entry = IndexEntry {
                uid: st.index.uid_next,
                modseq: 0,
                size: Form::of(base).wire_size(&data),
                mtime: unix_secs(mtime),
                info: info.unwrap_or("").to_string(),
                base: base.to_string(),
            };
            records.push(add_entry(st, entry));
        }
        self.persist(st, &records)?;
        // Files moved out of new/ changed both directories after `stamp`.
        st.known = (!moved).then_some(stamp);
        // A stamp within the file system's timestamp granularity of now may
        // hide a change made in the same tick: it is rechecked until settled.
        st.settled = SystemTime::now()
            .duration_since(stamp.0.max(stamp.1))
            .unwrap_or_default()
            > SETTLE;
        st.last_scan = Instant::now();
        Ok(())
    }

    /// Before we change cur/ ourselves: whether we knew its state.
    fn in_step(&self, st: &State) -> bool {
        st.known.is_some() && self.stamp().ok() == st.known
    }

    /// After our own change: if we were in step, the new look of the
    /// directories is known too, and no rescan is needed for it.
    fn note_own_change(&self, st: &mut State, in_step: bool) {
        st.known = if in_step { self.stamp().ok() } else { None };
        st.settled = false;
    }

    fn stamp(&self) -> Result<DirStamp, StoreError> {
        let mtime = |sub: &str| {
            let p = self.dir.join(sub);
            fs::metadata(&p).and_then(|m| m.modified()).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::NoSuchMailbox(self.name.clone()),
                _ => io_err(&p, e),
            })
        };
        Ok(DirStamp(mtime("new")?, mtime("cur")?))
    }

    /// Files in new/ are moved into cur/ (with an empty info) as a MUA
    /// does once it has seen them. Returns whether any moved.
    fn move_new_to_cur(&self) -> Result<bool, StoreError> {
        let new = self.dir.join("new");
        let mut moved = false;
        for entry in fs::read_dir(&new).map_err(|e| io_err(&new, e))? {
            let entry = entry.map_err(|e| io_err(&new, e))?;
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if file.starts_with('.') {
                continue;
            }
            let target = match split_name(&file) {
                (_, Some(_)) => file.clone(),
                (base, None) => format!("{base}:2,"),
            };
            match fs::rename(entry.path(), self.dir.join("cur").join(target)) {
                Ok(()) => moved = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(entry.path(), e)),
            }
        }
        Ok(moved)
    }

    /// Append `records` to the log (fdatasync'd: UIDs handed out must never
    /// be handed out again), compacting it when it has grown, and tell the
    /// other sessions.
    fn persist(&self, st: &mut State, records: &[String]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(index::FILE);
        let live = st.index.messages.len() + st.index.expunged.len();
        if st.log_records + records.len() > 2 * live + 64 {
            let (log, n) = write_compacted(&self.dir, &mut st.index, self.owner)?;
            st.log = log;
            st.log_records = n;
        } else {
            st.log
                .write_all(records.concat().as_bytes())
                .and_then(|()| st.log.sync_data())
                .map_err(|e| io_err(&path, e))?;
            st.log_records += records.len();
        }
        st.snapshot = None;
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    fn file_path(&self, e: &IndexEntry) -> PathBuf {
        self.dir.join("cur").join(format!("{}:2,{}", e.base, e.info))
    }

    /// The message in wire form: CRLF lines, or the exact bytes of a raw file.
    pub fn read(&self, uid: u32) -> Result<Vec<u8>, StoreError> {
        self.with_file(uid, |path, form| fs::read(path).map(|data| form.wire(data)))
    }

    /// The header of a message up to and including the empty line that ends
    /// it, in wire form: what SEARCH, SORT, THREAD, ENVELOPE and header
    /// FETCHes need, without reading the body.
    pub fn header(&self, uid: u32) -> Result<Arc<[u8]>, StoreError> {
        if let Some(h) = self.lock()?.headers.by_uid.get(&uid) {
            return Ok(Arc::clone(h));
        }
        let header: Arc<[u8]> = self.with_file(uid, read_header)?.into();
        self.lock()?.headers.insert(uid, &header);
        Ok(header)
    }

    /// Run `f` on the file of `uid`, rescanning once if another tool renamed
    /// it (a flag change) since the last scan.
    fn with_file<T>(&self, uid: u32, f: impl Fn(&Path, Form) -> std::io::Result<T>) -> Result<T, StoreError> {
        for attempt in 0..2 {
            let (path, form) = {
                let mut st = self.lock()?;
                if attempt > 0 {
                    st.known = None;
                    self.sync_locked(&mut st)?;
                }
                let e = st.index.messages.get(&uid).ok_or(StoreError::NoSuchMessage(uid))?;
                (self.file_path(e), Form::of(&e.base))
            };
            match f(&path, form) {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(path, e)),
            }
        }
        Err(StoreError::NoSuchMessage(uid))
    }

    /// Change the flags of `uids` (missing ones are skipped, as IMAP wants
    /// for messages expunged meanwhile).
    pub fn store_flags(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<StoreOutcome, StoreError> {
        let mut st = self.lock()?;
        let mut in_step = self.in_step(&st);
        let mut out = StoreOutcome::default();
        let mut records = Vec::new();
        for &uid in uids {
            let Some(e) = st.index.messages.get(&uid) else {
                continue;
            };
            if unchanged_since.is_some_and(|m| e.modseq > m) {
                out.modified.push(uid);
                continue;
            }
            let current = st.keywords.flags(&e.info);
            let wanted = current.apply(op, flags);
            if wanted == current {
                continue;
            }
            let from = self.file_path(e);
            let base = e.base.clone();
            let Some(grew) = st.keywords.assign(&wanted) else {
                return Err(StoreError::TooManyKeywords);
            };
            if grew {
                self.save_keywords(&st.keywords)?;
            }
            let info = st.keywords.info(&wanted);
            let to = self.dir.join("cur").join(format!("{base}:2,{info}"));
            match fs::rename(&from, &to) {
                Ok(()) => {}
                // Gone or renamed by another tool: the next sync sorts it out.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    in_step = false;
                    continue;
                }
                Err(e) => return Err(io_err(from, e)),
            }
            st.index.highest_modseq += 1;
            let modseq = st.index.highest_modseq;
            let e = st.index.messages.get_mut(&uid).expect("present above");
            e.info = info;
            e.modseq = modseq;
            records.push(Record::Message(e).line());
            out.changed.push((uid, wanted, modseq));
        }
        if !records.is_empty() || !in_step {
            self.note_own_change(&mut st, in_step);
        }
        self.persist(&mut st, &records)?;
        Ok(out)
    }

    /// Save a message (CRLF or LF lines; stored with LF as Maildir tools
    /// expect unless that would alter it, see `wire`). Returns (UIDVALIDITY, UID).
    pub fn append(&self, data: &[u8], flags: &Flags, date: Option<SystemTime>) -> Result<(u32, u32), StoreError> {
        let (validity, uids) = self.append_all(&[NewMessage {
            data,
            binary: false,
            flags,
            date,
        }])?;
        Ok((validity, uids[0]))
    }

    /// Add several messages at once (MULTIAPPEND): all are added or none,
    /// and other sessions never see some without the others. Returns
    /// UIDVALIDITY and the new UIDs in order.
    pub fn append_all(&self, messages: &[NewMessage<'_>]) -> Result<(u32, Vec<u32>), StoreError> {
        let mut written = Vec::with_capacity(messages.len());
        for m in messages {
            let form = Form::for_new(m.data, m.binary);
            match self.write_tmp(&form.stored(m.data), form, m.date) {
                Ok(tmp) => written.push(tmp),
                Err(e) => {
                    written.iter().for_each(|t| drop(fs::remove_file(&t.0)));
                    return Err(e);
                }
            }
        }
        let mut st = self.lock()?;
        let in_step = self.in_step(&st);
        let mut uids = Vec::with_capacity(messages.len());
        // Under the lock no other session syncs, so an undo here is unseen.
        let mut failure = None;
        for (m, tmp) in messages.iter().zip(&written) {
            match self.admit(&mut st, tmp, m.flags, m.date) {
                Ok(uid) => uids.push(uid),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            written[uids.len()..].iter().for_each(|t| drop(fs::remove_file(&t.0)));
            let undone = self.remove(&mut st, &uids);
            self.note_own_change(&mut st, in_step);
            undone?;
            return Err(e);
        }
        self.note_own_change(&mut st, in_step);
        let records: Vec<String> = uids
            .iter()
            .map(|u| Record::Message(&st.index.messages[u]).line())
            .collect();
        self.persist(&mut st, &records)?;
        Ok((st.index.uid_validity, uids))
    }

    /// Write the file contents `data` of a message in `form` into tmp/:
    /// (path, unique name, wire size).
    fn write_tmp(
        &self,
        data: &[u8],
        form: Form,
        date: Option<SystemTime>,
    ) -> Result<(PathBuf, String, u64), StoreError> {
        let base = form.mark(super::unique_name());
        let path = self.dir.join("tmp").join(&base);
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(data)?;
            if let Some(date) = date {
                f.set_modified(date)?;
            }
            f.sync_data()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&path);
            io_err(&path, e)
        })?;
        super::chown(&path, self.owner);
        Ok((path, base, form.wire_size(data)))
    }

    /// Move a file from tmp/ into cur/ with `flags` and give it the next UID.
    fn admit(
        &self,
        st: &mut State,
        (tmp, base, size): &(PathBuf, String, u64),
        flags: &Flags,
        date: Option<SystemTime>,
    ) -> Result<u32, StoreError> {
        let Some(grew) = st.keywords.assign(flags) else {
            return Err(StoreError::TooManyKeywords);
        };
        if grew {
            self.save_keywords(&st.keywords)?;
        }
        let info = st.keywords.info(flags);
        let cur = self.dir.join("cur");
        fs::rename(tmp, cur.join(format!("{base}:2,{info}"))).map_err(|e| io_err(tmp, e))?;
        File::open(&cur)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&cur, e))?;
        let entry = IndexEntry {
            uid: st.index.uid_next,
            modseq: 0,
            size: *size,
            mtime: unix_secs(date.unwrap_or_else(SystemTime::now)),
            info,
            base: base.clone(),
        };
        let uid = entry.uid;
        add_entry(st, entry);
        Ok(uid)
    }

    fn save_keywords(&self, table: &KeywordTable) -> Result<(), StoreError> {
        super::write_atomic(&self.dir.join(KEYWORDS_FILE), table.render().as_bytes(), self.owner)
    }

    /// Remove the messages flagged \Deleted (only those in `only`, if given).
    pub fn expunge(&self, only: Option<&[u32]>) -> Result<Vec<u32>, StoreError> {
        let mut st = self.lock()?;
        let doomed: Vec<u32> = st
            .index
            .messages
            .values()
            .filter(|e| only.is_none_or(|o| o.contains(&e.uid)) && st.keywords.flags(&e.info).deleted)
            .map(|e| e.uid)
            .collect();
        self.remove(&mut st, &doomed)?;
        Ok(doomed)
    }

    /// Unlink the files of `uids` and record their expunge.
    fn remove(&self, st: &mut State, uids: &[u32]) -> Result<(), StoreError> {
        if uids.is_empty() {
            return Ok(());
        }
        let in_step = self.in_step(st);
        let mut records = Vec::new();
        for &uid in uids {
            let Some(e) = st.index.messages.get(&uid) else {
                continue;
            };
            let path = self.file_path(e);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(path, e)),
            }
            records.push(expunge_entry(st, uid));
        }
        self.note_own_change(st, in_step);
        self.persist(st, &records)
    }

    /// COPY: the messages are hard-linked (copied across file systems) into
    /// `dest` with their flags. Returns dest's UIDVALIDITY and (source, dest) UID pairs.
    pub fn copy_to(&self, uids: &[u32], dest: &Mailbox) -> Result<(u32, Vec<(u32, u32)>), StoreError> {
        let mut sources: Vec<(u32, PathBuf, Form, Flags, SystemTime)> = {
            let st = self.lock()?;
            uids.iter()
                .filter_map(|uid| st.index.messages.get(uid))
                .map(|e| {
                    let date = UNIX_EPOCH + Duration::from_secs(e.mtime.max(0) as u64);
                    let form = Form::of(&e.base);
                    (e.uid, self.file_path(e), form, st.keywords.flags(&e.info), date)
                })
                .collect()
        };
        sources.sort_by_key(|s| s.0);
        sources.dedup_by_key(|s| s.0);
        // The source lock is released before the destination's is taken, so
        // two opposite COPYs cannot deadlock.
        let mut staged = Vec::new();
        for (uid, path, form, flags, date) in sources {
            match dest.link_tmp(&path, form, date) {
                Ok(tmp) => staged.push((uid, tmp, flags, date)),
                Err(StoreError::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    for (_, tmp, _, _) in &staged {
                        let _ = fs::remove_file(&tmp.0);
                    }
                    return Err(e);
                }
            }
        }
        let mut st = dest.lock()?;
        let in_step = dest.in_step(&st);
        let mut pairs = Vec::new();
        let mut records = Vec::new();
        for (i, (uid, tmp, flags, date)) in staged.iter().enumerate() {
            match dest.admit(&mut st, tmp, flags, Some(*date)) {
                Ok(new_uid) => {
                    pairs.push((*uid, new_uid));
                    records.push(Record::Message(&st.index.messages[&new_uid]).line());
                }
                Err(e) => {
                    for (_, tmp, _, _) in &staged[i..] {
                        let _ = fs::remove_file(&tmp.0);
                    }
                    dest.note_own_change(&mut st, in_step);
                    dest.persist(&mut st, &records)?;
                    return Err(e);
                }
            }
        }
        dest.note_own_change(&mut st, in_step);
        dest.persist(&mut st, &records)?;
        Ok((st.index.uid_validity, pairs))
    }

    /// Put a copy of `source`, a file in `form`, into tmp/ (a hard link when possible).
    fn link_tmp(&self, source: &Path, form: Form, date: SystemTime) -> Result<(PathBuf, String, u64), StoreError> {
        let base = form.mark(super::unique_name());
        let path = self.dir.join("tmp").join(&base);
        match fs::hard_link(source, &path) {
            Ok(()) => {
                let data = fs::read(&path).map_err(|e| io_err(&path, e))?;
                Ok((path, base, form.wire_size(&data)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(io_err(source, e)),
            Err(_) => {
                let data = fs::read(source).map_err(|e| io_err(source, e))?;
                self.write_tmp(&data, form, Some(date))
            }
        }
    }

    /// MOVE: COPY, then expunge the sources whatever their flags.
    pub fn move_to(&self, uids: &[u32], dest: &Mailbox) -> Result<(u32, Vec<(u32, u32)>), StoreError> {
        let (validity, pairs) = self.copy_to(uids, dest)?;
        let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let mut st = self.lock()?;
        self.remove(&mut st, &moved)?;
        Ok((validity, pairs))
    }

    /// UIDs expunged with a MODSEQ above `since` (QRESYNC).
    pub fn vanished_since(&self, since: u64) -> Result<Vec<u32>, StoreError> {
        Ok(self.lock()?.index.vanished_since(since))
    }

    /// \Recent: the UIDs below `up_to` (the UID next of the caller's
    /// snapshot) no session has claimed yet, now the caller's alone, so each
    /// message is \Recent in exactly one session.
    pub fn claim_recent(&self, up_to: u32) -> Range<u32> {
        let Ok(mut st) = self.lock() else {
            return 0..0;
        };
        let from = st.index.recent_from;
        if up_to > from {
            st.index.recent_from = up_to;
            let line = Record::Recent(up_to).line();
            // Losing this record only makes messages recent once more.
            if st.log.write_all(line.as_bytes()).is_ok() {
                st.log_records += 1;
            }
        }
        from..up_to.max(from)
    }

    /// The keywords defined in the folder now, sorted.
    pub fn keywords(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.lock()?.keywords.names())
    }

    /// The lowest UID no session has claimed as \Recent yet, read without
    /// claiming (STATUS RECENT counts the messages from here on).
    pub fn unclaimed_recent_from(&self) -> Result<u32, StoreError> {
        Ok(self.lock()?.index.recent_from)
    }
}

/// Timestamps are coarse (a kernel tick): a directory changed less than
/// this long ago is not trusted to be unchanged when its mtime is.
const SETTLE: Duration = Duration::from_secs(1);

/// How often an unsettled directory is rescanned anyway, so a change by
/// another tool in the same tick as ours is seen within this time.
pub(crate) const RECHECK: Duration = Duration::from_millis(200);

fn add_entry(st: &mut State, mut entry: IndexEntry) -> String {
    st.index.highest_modseq += 1;
    entry.modseq = st.index.highest_modseq;
    st.index.uid_next = entry.uid + 1;
    st.by_base.insert(entry.base.clone(), entry.uid);
    let line = Record::Message(&entry).line();
    st.index.messages.insert(entry.uid, entry);
    line
}

fn expunge_entry(st: &mut State, uid: u32) -> String {
    st.index.highest_modseq += 1;
    let modseq = st.index.highest_modseq;
    if let Some(e) = st.index.messages.remove(&uid) {
        st.by_base.remove(&e.base);
    }
    st.headers.remove(uid);
    st.index.expunged.push((uid, modseq));
    Record::Expunged(uid, modseq).line()
}

/// Rewrite the index compactly (tmp, fsync, rename) and open it for appending.
fn write_compacted(dir: &Path, index: &mut Index, owner: Option<(u32, u32)>) -> Result<(File, usize), StoreError> {
    let (text, records) = index.render();
    let path = dir.join(index::FILE);
    super::write_atomic(&path, text.as_bytes(), owner)?;
    let log = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    Ok((log, records))
}

/// A UIDVALIDITY never given before by this process, and (from the clock)
/// larger than any given by an earlier one.
fn new_uid_validity() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static LAST: AtomicU32 = AtomicU32::new(0);
    let now = unix_secs(SystemTime::now()) as u32;
    let prev = LAST.fetch_max(now, Ordering::Relaxed).max(now);
    if prev >= now {
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        now
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The header block of the file at `path` (through the empty line, or the
/// whole file if it has none), in wire form, without reading the body of a
/// large message.
fn read_header(path: &Path, form: Form) -> std::io::Result<Vec<u8>> {
    header_from(File::open(path)?, form, 8192)
}

fn header_from(mut source: impl std::io::Read, form: Form, chunk: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let scanned = data.len();
        let n = source.read(&mut buf)?;
        data.extend_from_slice(&buf[..n]);
        // An empty line may straddle two reads.
        if let Some(end) = header_end(&data, scanned.saturating_sub(2)) {
            data.truncate(end);
            break;
        }
        if n == 0 {
            break;
        }
    }
    Ok(form.wire(data))
}

/// Where the header ends (just past the empty line), searching from `from`.
fn header_end(data: &[u8], from: usize) -> Option<usize> {
    if from == 0 {
        if data.starts_with(b"\n") {
            return Some(1);
        }
        if data.starts_with(b"\r\n") {
            return Some(2);
        }
    }
    (from..data.len()).find_map(|i| match &data[i..] {
        [b'\n', b'\n', ..] => Some(i + 2),
        [b'\n', b'\r', b'\n', ..] => Some(i + 3),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uid_validity_is_unique_and_increasing() {
        let a = new_uid_validity();
        let b = new_uid_validity();
        assert!(b > a, "{a} {b}");
    }

    proptest! {
        /// In either form the header is a prefix of what `read` returns;
        /// from an LF file it ends at the first empty line.
        #[test]
        fn header_is_the_part_before_the_first_empty_line(
            data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..64),
            chunk in 1usize..9,
            raw: bool,
        ) {
            let form = if raw { Form::Raw } else { Form::Lf };
            let header = header_from(&data[..], form, chunk).unwrap();
            prop_assert_eq!(&header, &header_from(&data[..], form, 8192).unwrap());
            let whole = form.wire(data.clone());
            prop_assert!(whole.starts_with(&header));
            if !raw {
                if header.len() < whole.len() {
                    prop_assert!(header == b"\r\n" || header.ends_with(b"\r\n\r\n"));
                }
                // No empty line before the end.
                let inner = &header[..header.len().saturating_sub(2)];
                prop_assert!(!inner.starts_with(b"\r\n"));
                prop_assert!(inner.windows(4).all(|w| w != b"\r\n\r\n"));
            }
        }
    }
}
