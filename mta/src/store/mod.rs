//! The mail store that IMAP and POP3 serve: Maildir with Maildir++ folders
//! as the truth for messages and flags, with a per-mailbox index beside it
//! for UIDs and MODSEQs (`mailbox`, `index`, `flags`). Message files hold LF text, or the exact
//! bytes of a message that LF text would alter, marked in the file name
//! (`wire`); every reader gives back the bytes that were sent.
//!
//! Folder names are UTF-8 with `/` as the hierarchy delimiter; on disk
//! "Lists/rust" is the Maildir++ folder `.Lists.rust` (so `.` cannot occur
//! inside a name). One process serves a user's store at a time: the daemon.

pub mod flags;
pub mod index;
pub mod mailbox;
pub mod wire;

pub use flags::{FlagOp, Flags};
pub use mailbox::{Mailbox, MessageMeta, NewMessage, Snapshot, StoreOutcome};

use crate::account::{Owner, locate};
use crate::config::{Config, MailboxFormat};
use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such mailbox: {0}")]
    NoSuchMailbox(String),
    #[error("mailbox already exists: {0}")]
    Exists(String),
    #[error("invalid mailbox name: {0}")]
    BadName(String),
    #[error("no such message: UID {0}")]
    NoSuchMessage(u32),
    #[error("INBOX cannot be deleted")]
    Inbox,
    #[error("too many keywords in this mailbox (Maildir has room for 26)")]
    TooManyKeywords,
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

pub(crate) fn io_err(path: impl Into<PathBuf>, e: std::io::Error) -> StoreError {
    StoreError::Io(path.into(), e)
}

/// Why a logged-in user's store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("This account's mail is in mbox format: use POP3")]
    Mbox,
    #[error("No mailbox for this account")]
    NoMailbox,
    #[error("Mailbox unavailable")]
    Store(#[from] StoreError),
}

/// Open an authenticated user's Maildir with its special folders, as IMAP
/// and webmail do after a login. Blocking.
pub fn open_user(config: &Config, user: &str) -> Result<Store, OpenError> {
    let loc = locate(config, user).ok_or(OpenError::NoMailbox)?;
    if loc.format != MailboxFormat::Maildir {
        return Err(OpenError::Mbox);
    }
    let store = Store::open(&loc.path, loc.owner.as_ref())?;
    store.ensure_special_folders()?;
    Ok(store)
}

/// The folders made for new users, with their RFC 6154 use.
pub const SPECIAL_FOLDERS: [(&str, SpecialUse); 5] = [
    ("Sent", SpecialUse::Sent),
    ("Drafts", SpecialUse::Drafts),
    ("Trash", SpecialUse::Trash),
    ("Junk", SpecialUse::Junk),
    ("Archive", SpecialUse::Archive),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    /// "INBOX", "Sent", "Lists/rust".
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub has_children: bool,
    pub subscribed: bool,
    /// False for a parent implied only by its children (IMAP's \NonExistent).
    pub exists: bool,
}

const SUBSCRIPTIONS: &str = "subscriptions";
const MAX_NAME: usize = 200;

/// Mailboxes open in this process, so sessions on one folder share its state.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Mailbox>>>> = LazyLock::new(Default::default);

fn open_mailboxes() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Weak<Mailbox>>> {
    OPEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// One user's Maildir (its root is INBOX) with Maildir++ folders.
pub struct Store {
    root: PathBuf,
    owner: Option<(u32, u32)>,
}

impl Store {
    /// Open the Maildir at `root`, creating it if missing. When running as
    /// root, what the store creates is chowned to `owner`.
    pub fn open(root: &Path, owner: Option<&Owner>) -> Result<Store, StoreError> {
        let store = Store {
            root: root.to_path_buf(),
            owner: owner.map(|o| (o.uid, o.gid)),
        };
        store.make_maildir(root)?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn make_maildir(&self, dir: &Path) -> Result<(), StoreError> {
        let fresh = !dir.exists();
        for sub in ["cur", "new", "tmp"] {
            let p = dir.join(sub);
            if !p.is_dir() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&p)
                    .map_err(|e| io_err(&p, e))?;
                chown(&p, self.owner);
            }
        }
        if fresh {
            chown(dir, self.owner);
        }
        Ok(())
    }

    /// The directory of folder `name`, which must be a valid name.
    fn folder_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        let parts = split_folder_name(name)?;
        if parts.len() == 1 && parts[0] == "INBOX" {
            return Ok(self.root.clone());
        }
        Ok(self.root.join(format!(".{}", parts.join("."))))
    }

    /// Sent, Drafts, Trash, Junk and Archive, created and subscribed if missing.
    pub fn ensure_special_folders(&self) -> Result<(), StoreError> {
        for (name, _) in SPECIAL_FOLDERS {
            match self.create_folder(name) {
                Ok(()) => self.set_subscribed(name, true)?,
                Err(StoreError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// INBOX first, then the folders by name, parents implied by children included.
    pub fn folders(&self) -> Result<Vec<FolderInfo>, StoreError> {
        let subscribed = self.subscriptions()?;
        let mut names = std::collections::BTreeMap::<String, bool>::new();
        for entry in fs::read_dir(&self.root).map_err(|e| io_err(&self.root, e))? {
            let entry = entry.map_err(|e| io_err(&self.root, e))?;
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(dotted) = file.strip_prefix('.') else {
                continue;
            };
            if dotted.is_empty() || dotted.split('.').any(str::is_empty) || !entry.path().join("cur").is_dir() {
                continue;
            }
            let name = dotted.replace('.', "/");
            if split_folder_name(&name).is_err() {
                continue;
            }
            let mut parent = name.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                names.entry(p.to_string()).or_insert(false);
                parent = p;
            }
            names.insert(name, true);
        }
        let mut out = vec![FolderInfo {
            name: "INBOX".into(),
            special_use: None,
            has_children: names.keys().any(|n| n.starts_with("INBOX/")),
            subscribed: subscribed.iter().any(|s| s.eq_ignore_ascii_case("INBOX")),
            exists: true,
        }];
        for (name, exists) in &names {
            if name == "INBOX" {
                continue;
            }
            let prefix = format!("{name}/");
            out.push(FolderInfo {
                special_use: SPECIAL_FOLDERS.iter().find(|(n, _)| n == name).map(|(_, u)| *u),
                has_children: names
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|(n, _)| n.starts_with(&prefix)),
                subscribed: subscribed.contains(name),
                exists: *exists,
                name: name.clone(),
            });
        }
        Ok(out)
    }

    pub fn create_folder(&self, name: &str) -> Result<(), StoreError> {
        let dir = self.folder_dir(name)?;
        if dir == self.root || dir.join("cur").is_dir() {
            return Err(StoreError::Exists(name.into()));
        }
        self.make_maildir(&dir)?;
        let marker = dir.join("maildirfolder");
        File::create(&marker).map_err(|e| io_err(&marker, e))?;
        chown(&marker, self.owner);
        Ok(())
    }

    /// Delete a folder and its messages; its children stay.
    pub fn delete_folder(&self, name: &str) -> Result<(), StoreError> {
        let dir = self.folder_dir(name)?;
        if dir == self.root {
            return Err(StoreError::Inbox);
        }
        if !dir.join("cur").is_dir() {
            return Err(StoreError::NoSuchMailbox(name.into()));
        }
        // Renamed out of sight first, so no one sees a half-deleted folder.
        let graveyard = self.root.join("tmp").join(format!("deleted-{}", unique_name()));
        fs::rename(&dir, &graveyard).map_err(|e| io_err(&dir, e))?;
        forget(&dir);
        fs::remove_dir_all(&graveyard).map_err(|e| io_err(&graveyard, e))?;
        Ok(())
    }

    /// Rename a folder and its children. Renaming INBOX moves its messages
    /// into the new folder and leaves INBOX empty (RFC 3501).
    pub fn rename_folder(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let src = self.folder_dir(from)?;
        let dst = self.folder_dir(to)?;
        if dst == self.root || dst.join("cur").is_dir() {
            return Err(StoreError::Exists(to.into()));
        }
        if src == self.root {
            self.create_folder(to)?;
            for sub in ["new", "cur"] {
                for entry in fs::read_dir(src.join(sub)).map_err(|e| io_err(src.join(sub), e))? {
                    let entry = entry.map_err(|e| io_err(src.join(sub), e))?;
                    fs::rename(entry.path(), dst.join(sub).join(entry.file_name()))
                        .map_err(|e| io_err(entry.path(), e))?;
                }
            }
            return Ok(());
        }
        let src_name = src.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let dst_name = dst.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let children = format!("{src_name}.");
        let mut moves = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(|e| io_err(&self.root, e))? {
            let entry = entry.map_err(|e| io_err(&self.root, e))?;
            if let Some(file) = entry.file_name().to_str()
                && (file == src_name || file.starts_with(&children))
            {
                moves.push((
                    entry.path(),
                    self.root.join(format!("{dst_name}{}", &file[src_name.len()..])),
                ));
            }
        }
        if !moves.iter().any(|(from, _)| *from == src) {
            return Err(StoreError::NoSuchMailbox(from.into()));
        }
        for (old, new) in moves {
            if new.exists() {
                return Err(StoreError::Exists(to.into()));
            }
            fs::rename(&old, &new).map_err(|e| io_err(&old, e))?;
            forget(&old);
        }
        Ok(())
    }

    /// The text of the small file `name` at the Maildir's root (settings
    /// kept beside the mail); empty when there is none.
    pub fn read_meta(&self, name: &str) -> Result<String, StoreError> {
        let path = self.root.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(io_err(path, e)),
        }
    }

    /// Replace the small file `name` at the Maildir's root durably, owned by the mailbox's owner.
    pub fn write_meta(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.root.join(name), data, self.owner)
    }

    /// The subscribed names, which need not exist.
    pub fn subscriptions(&self) -> Result<Vec<String>, StoreError> {
        let text = self.read_meta(SUBSCRIPTIONS)?;
        Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
    }

    /// Add or remove `name` in the `subscriptions` file (one name a line,
    /// as Courier and Dovecot keep it). Names need not exist (RFC 3501).
    pub fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<(), StoreError> {
        let name = split_folder_name(name)?.join("/");
        let mut subs = self.subscriptions()?;
        let had = subs.contains(&name);
        if had == subscribed {
            return Ok(());
        }
        if subscribed {
            subs.push(name);
        } else {
            subs.retain(|s| *s != name);
        }
        let text: String = subs.iter().map(|s| format!("{s}\n")).collect();
        self.write_meta(SUBSCRIPTIONS, text.as_bytes())
    }

    /// The folder, synced with disk, shared with every other session of
    /// this process that has it open.
    pub fn mailbox(&self, name: &str) -> Result<Arc<Mailbox>, StoreError> {
        let dir = self.folder_dir(name)?;
        if !dir.join("cur").is_dir() {
            return Err(StoreError::NoSuchMailbox(name.into()));
        }
        let canonical = split_folder_name(name)?.join("/");
        let mut open = open_mailboxes();
        if let Some(mailbox) = open.get(&dir).and_then(Weak::upgrade) {
            drop(open);
            mailbox.sync()?;
            return Ok(mailbox);
        }
        let mailbox = Arc::new(Mailbox::open(&canonical, &dir, self.owner)?);
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(dir, Arc::downgrade(&mailbox));
        Ok(mailbox)
    }

    /// Bytes used by all messages (on disk), for QUOTA.
    pub fn usage(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for folder in self.folders()?.into_iter().filter(|f| f.exists) {
            let dir = self.folder_dir(&folder.name)?;
            for sub in ["cur", "new"] {
                let Ok(entries) = fs::read_dir(dir.join(sub)) else {
                    continue;
                };
                total += entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>();
            }
        }
        Ok(total)
    }
}

/// Validate a folder name and split it at `/`; INBOX is matched without
/// regard to case and spelled "INBOX". A trailing `/` is allowed (IMAP CREATE).
pub fn split_folder_name(name: &str) -> Result<Vec<String>, StoreError> {
    let bad = || StoreError::BadName(name.escape_debug().to_string());
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > MAX_NAME {
        return Err(bad());
    }
    let mut parts = Vec::new();
    for (i, part) in trimmed.split('/').enumerate() {
        if part.is_empty() || part.contains('.') || part.chars().any(char::is_control) || part.starts_with('~') {
            return Err(bad());
        }
        parts.push(if i == 0 && part.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            part.to_string()
        });
    }
    Ok(parts)
}

/// Mail was just delivered into the Maildir `dir` (or its `folder`): sessions
/// of this process with it open sync now, so IDLE reports it at once rather
/// than at its next poll.
pub fn delivered(dir: &Path, folder: Option<&str>) {
    let boxes = [Some(dir.to_path_buf()), folder.map(|f| dir.join(format!(".{f}")))];
    for path in boxes.into_iter().flatten() {
        let open = open_mailboxes().get(&path).and_then(Weak::upgrade);
        if let Some(mailbox) = open
            && let Err(e) = mailbox.sync()
        {
            tracing::warn!("{}: {e}", path.display());
        }
    }
}

/// Sessions holding a mailbox that moved or vanished learn it is gone.
fn forget(dir: &Path) {
    let gone: Vec<Arc<Mailbox>> = {
        let mut open = open_mailboxes();
        let keys: Vec<PathBuf> = open.keys().filter(|k| k.starts_with(dir)).cloned().collect();
        keys.iter()
            .filter_map(|k| open.remove(k))
            .filter_map(|w| w.upgrade())
            .collect()
    };
    for mailbox in gone {
        mailbox.mark_gone();
    }
}

/// A Maildir unique name for a file this process creates.
pub(crate) fn unique_name() -> String {
    static HOST: LazyLock<String> = LazyLock::new(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    });
    unique_name_on(&HOST)
}

/// A name unique per the Maildir spec: time, microseconds, pid, a
/// per-process counter, and the host name with `/` and `:` escaped.
pub fn unique_name_on(hostname: &str) -> String {
    static CREATED: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let host = hostname.replace('/', "\\057").replace(':', "\\072");
    let n = CREATED.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        t.as_secs(),
        t.subsec_micros(),
        std::process::id(),
        n,
        host
    )
}

/// When running as root, hand what we created to the mailbox owner.
pub(crate) fn chown(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner
        && nix::unistd::geteuid().is_root()
        && let Err(e) = nix::unistd::chown(path, Some(uid.into()), Some(gid.into()))
    {
        tracing::warn!("chown {}: {e}", path.display());
    }
}

/// Replace `path` with `data` durably: write a temporary file, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8], owner: Option<(u32, u32)>) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        chown(&tmp, owner);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::maildir;

    fn cur_files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn seen() -> Flags {
        Flags {
            seen: true,
            ..Flags::default()
        }
    }

    #[test]
    fn delivered_mail_gets_uids_that_survive_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("Maildir");
        maildir::deliver(&root, &Default::default(), b"Subject: one\n\nbody\n", "h").unwrap();
        let store = Store::open(&root, None).unwrap();
        let inbox = store.mailbox("inbox").unwrap();
        let snap = inbox.sync().unwrap();
        assert_eq!(snap.messages.len(), 1);
        let first = &snap.messages[0];
        assert_eq!((first.uid, snap.uid_next), (1, 2));
        assert_eq!(inbox.read(1).unwrap(), b"Subject: one\r\n\r\nbody\r\n");
        assert_eq!(first.size, inbox.read(1).unwrap().len() as u64);
        assert_eq!(fs::read_dir(root.join("new")).unwrap().count(), 0, "moved into cur/");
        let validity = snap.uid_validity;
        drop(inbox);

        maildir::deliver(&root, &Default::default(), b"Subject: two\n\n", "h").unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        let snap = inbox.sync().unwrap();
        assert_eq!(snap.uid_validity, validity);
        let uids: Vec<u32> = snap.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, [1, 2]);
        assert_eq!(inbox.read(2).unwrap(), b"Subject: two\r\n\r\n");
    }

    #[test]
    fn changes_by_other_tools_are_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let store = Store::open(&root, None).unwrap();
        for n in 0..3 {
            maildir::deliver(&root, &Default::default(), format!("n: {n}\n").as_bytes(), "h").unwrap();
        }
        let inbox = store.mailbox("INBOX").unwrap();
        let before = inbox.sync().unwrap();
        assert_eq!(before.messages.len(), 3);
        let files = cur_files(&root);
        // mutt marks the second message read, and deletes the third.
        let second = &files[1];
        fs::rename(
            root.join("cur").join(second),
            root.join("cur").join(format!("{second}S")),
        )
        .unwrap();
        fs::remove_file(root.join("cur").join(&files[2])).unwrap();
        let after = inbox.sync().unwrap();
        assert_eq!(after.messages.len(), 2);
        assert!(after.messages[1].flags.seen);
        assert!(after.messages[1].modseq > before.highest_modseq);
        assert_eq!(after.messages[0].modseq, before.messages[0].modseq);
        let vanished = inbox.vanished_since(before.highest_modseq).unwrap();
        assert_eq!(vanished, [3]);
        // A file someone drops in later never takes a used UID.
        maildir::deliver(&root, &Default::default(), b"n: 4\n", "h").unwrap();
        assert_eq!(inbox.sync().unwrap().messages.last().unwrap().uid, 4);
    }

    #[test]
    fn a_change_by_another_tool_right_after_ours_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        for _ in 0..3 {
            let (_, uid) = inbox.append(b"ours\r\n", &Flags::default(), None).unwrap();
            let name = cur_files(tmp.path()).into_iter().find(|f| !f.ends_with('S')).unwrap();
            fs::rename(
                tmp.path().join("cur").join(&name),
                tmp.path().join("cur").join(format!("{name}S")),
            )
            .unwrap();
            std::thread::sleep(mailbox::RECHECK + std::time::Duration::from_millis(50));
            let snap = inbox.sync().unwrap();
            assert!(
                snap.messages.iter().all(|m| m.flags.seen),
                "uid {uid}: {:?}",
                snap.messages
            );
        }
    }

    #[test]
    fn delivery_wakes_sessions_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        let mut changes = inbox.changes();
        changes.mark_unchanged();
        maildir::deliver(tmp.path(), &Default::default(), b"x\n", "h").unwrap();
        delivered(tmp.path(), Some("nofolder"));
        assert!(changes.has_changed().unwrap());
    }

    #[test]
    fn a_lost_index_is_rebuilt_with_a_new_uidvalidity() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        maildir::deliver(tmp.path(), &Default::default(), b"x\n", "h").unwrap();
        let old = store.mailbox("INBOX").unwrap().sync().unwrap().uid_validity;
        fs::remove_file(tmp.path().join(index::FILE)).unwrap();
        let snap = Mailbox::open("INBOX", tmp.path(), None).unwrap().sync().unwrap();
        assert_ne!(snap.uid_validity, old);
        assert_eq!(snap.messages.len(), 1);
    }

    #[test]
    fn flags_live_in_file_names_and_keywords_in_dovecot_keywords() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        let mut changes = inbox.changes();
        let (_, uid) = inbox.append(b"Subject: a\r\n\r\nhi\r\n", &seen(), None).unwrap();
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert!(cur_files(tmp.path())[0].ends_with(":2,S"));
        let mut add = Flags {
            flagged: true,
            ..Flags::default()
        };
        add.keywords.insert("$Forwarded".into());
        let out = inbox.store_flags(&[uid, 99], FlagOp::Add, &add, None).unwrap();
        assert_eq!(out.changed.len(), 1);
        assert!(
            cur_files(tmp.path())[0].ends_with(":2,FSa"),
            "{:?}",
            cur_files(tmp.path())
        );
        assert_eq!(
            fs::read_to_string(tmp.path().join("dovecot-keywords")).unwrap(),
            "0 $Forwarded\n"
        );
        let modseq = out.changed[0].2;
        // CONDSTORE: a STORE conditional on an older MODSEQ leaves it alone.
        let out = inbox
            .store_flags(&[uid], FlagOp::Remove, &seen(), Some(modseq - 1))
            .unwrap();
        assert_eq!(out.modified, [uid]);
        assert!(out.changed.is_empty());
        let snap = inbox.sync().unwrap();
        assert!(snap.messages[0].flags.seen && snap.messages[0].flags.keywords.contains("$Forwarded"));
        assert_eq!(inbox.read(uid).unwrap(), b"Subject: a\r\n\r\nhi\r\n");
    }

    #[test]
    fn append_keeps_the_date_and_expunge_removes_only_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        let date = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        let deleted = Flags {
            deleted: true,
            ..Flags::default()
        };
        let (_, a) = inbox.append(b"a\r\n", &deleted, Some(date)).unwrap();
        let (_, b) = inbox.append(b"b\r\n", &Flags::default(), None).unwrap();
        let (_, c) = inbox.append(b"c\r\n", &deleted, None).unwrap();
        assert_eq!(inbox.sync().unwrap().messages[0].internal_date, date);
        assert_eq!(inbox.expunge(Some(&[c])).unwrap(), [c]);
        assert_eq!(inbox.expunge(None).unwrap(), [a]);
        let uids: Vec<u32> = inbox.sync().unwrap().messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, [b]);
        assert_eq!(cur_files(tmp.path()).len(), 1);
    }

    #[test]
    fn append_all_adds_every_message_or_none() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        let plain = Flags::default();
        let (_, uids) = inbox
            .append_all(&[
                NewMessage {
                    data: b"a\r\n",
                    binary: false,
                    flags: &plain,
                    date: None,
                },
                NewMessage {
                    data: b"b\r\n",
                    binary: false,
                    flags: &seen(),
                    date: None,
                },
            ])
            .unwrap();
        assert_eq!(uids, [1, 2]);
        // 26 keywords fill every letter; a second message wanting one more fails the whole call.
        let full = Flags {
            keywords: (0..26).map(|i| format!("k{i}")).collect(),
            ..Flags::default()
        };
        let one_more = Flags {
            keywords: ["extra".to_string()].into(),
            ..Flags::default()
        };
        let err = inbox
            .append_all(&[
                NewMessage {
                    data: b"c\r\n",
                    binary: false,
                    flags: &full,
                    date: None,
                },
                NewMessage {
                    data: b"d\r\n",
                    binary: false,
                    flags: &one_more,
                    date: None,
                },
            ])
            .unwrap_err();
        assert!(matches!(err, StoreError::TooManyKeywords), "{err}");
        let snapshot = inbox.sync().unwrap();
        assert_eq!(snapshot.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(cur_files(tmp.path()).len(), 2);
        assert_eq!(std::fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
        // The UID the undone message had is not given again.
        let (_, next) = inbox.append(b"e\r\n", &plain, None).unwrap();
        assert_eq!(next, 4);
    }

    #[test]
    fn copy_and_move_report_uid_pairs() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        store.create_folder("Archive").unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        let archive = store.mailbox("Archive").unwrap();
        let (_, a) = inbox.append(b"a\r\n", &seen(), None).unwrap();
        let (_, b) = inbox.append(b"b\r\n", &Flags::default(), None).unwrap();
        let (validity, pairs) = inbox.copy_to(&[b, a, 77], &archive).unwrap();
        assert_eq!(validity, archive.sync().unwrap().uid_validity);
        assert_eq!(pairs, [(a, 1), (b, 2)]);
        assert!(archive.sync().unwrap().messages[0].flags.seen);
        let (_, pairs) = inbox.move_to(&[a], &archive).unwrap();
        assert_eq!(pairs, [(a, 3)]);
        assert_eq!(inbox.sync().unwrap().messages.len(), 1);
        assert_eq!(archive.read(3).unwrap(), b"a\r\n");
    }

    /// A BINARY APPEND with NUL and bare LFs (issue 11): every reader gives
    /// back the bytes as sent and RFC822.SIZE counts exactly those, through
    /// flag changes, COPY, MOVE and a rebuilt index.
    #[test]
    fn binary_messages_keep_their_exact_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        store.create_folder("Archive").unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        let archive = store.mailbox("Archive").unwrap();
        let data: &[u8] = b"Subject: bin\r\nX: bare\nLF\r\n\r\n\0\x01\n\r\n\n.\n";
        let (_, uids) = inbox
            .append_all(&[NewMessage {
                data,
                binary: true,
                flags: &Flags::default(),
                date: None,
            }])
            .unwrap();
        let uid = uids[0];
        let file = &cur_files(tmp.path())[0];
        assert!(file.ends_with(",raw:2,"), "{file}");
        assert_eq!(fs::read(tmp.path().join("cur").join(file)).unwrap(), data);
        let check = |mailbox: &Mailbox, uid: u32| {
            let snap = mailbox.sync().unwrap();
            let meta = snap.messages.iter().find(|m| m.uid == uid).unwrap();
            assert_eq!(mailbox.read(uid).unwrap(), data);
            assert_eq!(meta.size, data.len() as u64);
            assert_eq!(
                &mailbox.header(uid).unwrap()[..],
                b"Subject: bin\r\nX: bare\nLF\r\n\r\n"
            );
        };
        check(&inbox, uid);
        inbox.store_flags(&[uid], FlagOp::Add, &seen(), None).unwrap();
        check(&inbox, uid);
        let (_, pairs) = inbox.copy_to(&[uid], &archive).unwrap();
        check(&archive, pairs[0].1);
        let (_, pairs) = archive.move_to(&[pairs[0].1], &inbox).unwrap();
        check(&inbox, pairs[0].1);
        // The mark is in the file name, so a rebuilt index sizes it right too.
        fs::remove_file(tmp.path().join(index::FILE)).unwrap();
        let rebuilt = Mailbox::open("INBOX", tmp.path(), None).unwrap();
        for m in rebuilt.sync().unwrap().messages.iter() {
            check(&rebuilt, m.uid);
        }
    }

    /// Ordinary mail keeps today's format: LF on disk, CRLF when read.
    #[test]
    fn text_messages_are_stored_with_lf() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        let inbox = store.mailbox("INBOX").unwrap();
        let (_, crlf) = inbox
            .append(b"A: b\r\n\r\nNUL\0ok\r\n", &Flags::default(), None)
            .unwrap();
        let (_, lf) = inbox.append(b"A: b\n\nlf\n", &Flags::default(), None).unwrap();
        let (_, mixed) = inbox
            .append(b"A: b\r\n\r\nbare\nlf\r\n", &Flags::default(), None)
            .unwrap();
        let files = cur_files(tmp.path());
        assert_eq!(files.iter().filter(|f| f.contains(",raw")).count(), 1, "{files:?}");
        assert_eq!(inbox.read(crlf).unwrap(), b"A: b\r\n\r\nNUL\0ok\r\n");
        assert_eq!(inbox.read(lf).unwrap(), b"A: b\r\n\r\nlf\r\n");
        assert_eq!(inbox.read(mixed).unwrap(), b"A: b\r\n\r\nbare\nlf\r\n");
        let snap = inbox.sync().unwrap();
        for m in snap.messages.iter() {
            assert_eq!(m.size, inbox.read(m.uid).unwrap().len() as u64);
        }
    }

    #[test]
    fn folders_nest_rename_and_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        store.ensure_special_folders().unwrap();
        store.create_folder("Lists/rust").unwrap();
        assert!(matches!(store.create_folder("Sent"), Err(StoreError::Exists(_))));
        assert!(matches!(store.create_folder("a.b"), Err(StoreError::BadName(_))));
        assert!(matches!(store.create_folder("a//b"), Err(StoreError::BadName(_))));
        assert!(tmp.path().join(".Lists.rust/maildirfolder").exists());
        let list = store.folders().unwrap();
        let names: Vec<&str> = list.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "INBOX",
                "Archive",
                "Drafts",
                "Junk",
                "Lists",
                "Lists/rust",
                "Sent",
                "Trash"
            ]
        );
        let lists = &list[4];
        assert!(!lists.exists && lists.has_children);
        assert_eq!(list[6].special_use, Some(SpecialUse::Sent));
        assert!(list[6].subscribed && !list[5].subscribed);

        let rust = store.mailbox("Lists/rust").unwrap();
        rust.append(b"x\r\n", &Flags::default(), None).unwrap();
        assert!(matches!(
            store.rename_folder("Lists", "Groups"),
            Err(StoreError::NoSuchMailbox(_))
        ));
        store.create_folder("Lists").unwrap();
        store.rename_folder("Lists", "Groups").unwrap();
        assert!(matches!(rust.sync(), Err(StoreError::NoSuchMailbox(_))));
        assert_eq!(store.mailbox("Groups/rust").unwrap().sync().unwrap().messages.len(), 1);

        let inbox = store.mailbox("INBOX").unwrap();
        inbox.append(b"y\r\n", &Flags::default(), None).unwrap();
        store.rename_folder("INBOX", "Old").unwrap();
        assert_eq!(inbox.sync().unwrap().messages.len(), 0);
        assert_eq!(store.mailbox("Old").unwrap().sync().unwrap().messages.len(), 1);

        assert!(matches!(store.delete_folder("inbox"), Err(StoreError::Inbox)));
        store.delete_folder("Groups").unwrap();
        assert!(store.mailbox("Groups/rust").is_ok(), "children stay");
        assert!(matches!(store.mailbox("Groups"), Err(StoreError::NoSuchMailbox(_))));
        assert!(store.usage().unwrap() > 0);
    }

    #[test]
    fn sessions_share_one_mailbox() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), None).unwrap();
        let a = store.mailbox("INBOX").unwrap();
        let b = Store::open(tmp.path(), None).unwrap().mailbox("INBOX").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.claim_recent(b.sync().unwrap().uid_next), 1..1);
        a.append(b"z\r\n", &Flags::default(), None).unwrap();
        // Looking does not claim: STATUS can ask as often as it likes.
        assert_eq!(a.unclaimed_recent_from().unwrap(), 1);
        assert_eq!(a.unclaimed_recent_from().unwrap(), 1);
        // A claim reaches only as far as the claimer's snapshot.
        a.append(b"y\r\n", &Flags::default(), None).unwrap();
        assert_eq!(a.claim_recent(2), 1..2);
        assert_eq!(b.unclaimed_recent_from().unwrap(), 2);
        // Each message is recent in one session only.
        assert_eq!(b.claim_recent(3), 2..3);
        assert_eq!(a.claim_recent(3), 3..3);
        assert_eq!(a.claim_recent(2), 3..3);
    }
}
