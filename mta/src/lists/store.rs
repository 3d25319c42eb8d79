//! A list's state under `[lists] dir`: one directory per list
//! (`NAME@DOMAIN/`) holding `list.json` (settings, members with their
//! bounce records, pending confirmations), `held/TOKEN` (posts waiting for
//! a moderator), `digest/` (posts waiting for the next digest),
//! `distributing/KEY` (the progress of each distribution, see [`Journal`])
//! and `archive.mbox`. Changes are read-modify-write under an fcntl lock
//! and replace `list.json` atomically (write, fsync, rename), so the daemon
//! and `mtactl` can change a list at once.

use super::address;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How long a confirmation token lives (Mailman: 3 days).
pub const TOKEN_LIFETIME: u64 = 3 * 86400;
/// The journal line of a distribution's archive copy and of its digest
/// copy (no member address lacks an `@`).
pub const ARCHIVE_COPY: &str = "archive";
pub const DIGEST_COPY: &str = "digest";

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Json(PathBuf, serde_json::Error),
    #[error("no list {0}")]
    NoSuchList(String),
    #[error("list {0} exists")]
    Exists(String),
    #[error(
        "{0:?} is not a list address NAME@DOMAIN (NAME of letters, digits, . _ -, not ending in a role suffix like -request)"
    )]
    BadName(String),
    #[error("{0}: bad value {1:?} ({2})")]
    BadValue(String, String, String),
    #[error("unknown setting {0:?}")]
    UnknownKey(String),
}

/// Who may read the archive on the web.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveMode {
    Public,
    /// Members only (after logging in).
    Private,
    /// No archive is kept.
    None,
}

/// A list's settings (`mtactl list set NAME@DOMAIN KEY VALUE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub description: String,
    pub owners: Vec<String>,
    /// Hold every post, members' too.
    pub moderated: bool,
    pub archive: ArchiveMode,
    /// Put in front of the subject unless already there, e.g. `[dev]`.
    pub subject_prefix: String,
    /// Appended to plain-text posts.
    pub footer: String,
    /// Posts larger than this are held.
    pub max_message_size: u64,
    /// Posts with more To/Cc addresses than this are held.
    pub max_recipients: usize,
    /// Subscriptions need an owner's approval after the subscriber's confirmation.
    pub owner_approval: bool,
    /// Between bounce warnings to a disabled member, and before removal.
    pub bounce_warning_interval: u64,
    /// Members may take a daily digest instead of single posts.
    pub digest: bool,
    /// Seconds a held post waits for a moderator before it is discarded
    /// and the owners told (Mailman: 14 days).
    pub held_lifetime: u64,
    /// Seconds between reminders to the owners of posts still held.
    pub held_reminder_interval: u64,
    /// Key of the one-click unsubscribe links (random hex, made at create).
    pub secret: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            description: String::new(),
            owners: Vec::new(),
            moderated: false,
            archive: ArchiveMode::Public,
            subject_prefix: String::new(),
            footer: String::new(),
            max_message_size: 1024 * 1024,
            max_recipients: 10,
            owner_approval: false,
            bounce_warning_interval: 7 * 86400,
            digest: false,
            held_lifetime: 14 * 86400,
            held_reminder_interval: 86400,
            secret: String::new(),
        }
    }
}

/// The keys `set` takes, for help and errors.
pub const KEYS: &str = "description, owners (comma-separated), moderated, archive, subject_prefix, footer, \
    max_message_size, max_recipients, owner_approval, bounce_warning_interval, digest, held_lifetime, \
    held_reminder_interval";

impl Settings {
    /// Change one setting from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ListError> {
        let bad = |why: &str| ListError::BadValue(key.to_string(), value.to_string(), why.to_string());
        let seconds = || {
            greyd_shared::duration::parse(value, 1)
                .map(|d| d.as_secs())
                .map_err(|e| bad(&e.to_string()))
        };
        let boolean = || match value {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(bad("true or false")),
        };
        match key {
            "description" => self.description = value.to_string(),
            "owners" => {
                let owners: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect();
                if owners.is_empty() || owners.iter().any(|o| !o.contains('@')) {
                    return Err(bad("one or more addresses"));
                }
                self.owners = owners;
            }
            "moderated" => self.moderated = boolean()?,
            "owner_approval" => self.owner_approval = boolean()?,
            "archive" => {
                self.archive = <ArchiveMode as clap::ValueEnum>::from_str(value, true)
                    .map_err(|_| bad("public, private or none"))?
            }
            "subject_prefix" => self.subject_prefix = value.to_string(),
            "footer" => self.footer = value.replace("\\n", "\n"),
            "max_message_size" => self.max_message_size = value.parse().map_err(|_| bad("bytes"))?,
            "max_recipients" => self.max_recipients = value.parse().map_err(|_| bad("a number"))?,
            "bounce_warning_interval" => self.bounce_warning_interval = seconds()?,
            "digest" => self.digest = boolean()?,
            "held_lifetime" => self.held_lifetime = seconds()?,
            "held_reminder_interval" => self.held_reminder_interval = seconds()?,
            _ => return Err(ListError::UnknownKey(key.to_string())),
        }
        Ok(())
    }
}

/// One subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Member {
    /// Lowercase address.
    pub address: String,
    /// False once bounces disabled delivery.
    pub enabled: bool,
    pub joined: u64,
    pub bounce: super::bounce::BounceRecord,
    /// Takes the digest (when the list has `digest` on) instead of single posts.
    pub digest: bool,
}

impl Default for Member {
    fn default() -> Self {
        Member {
            address: String::new(),
            enabled: true,
            joined: 0,
            bounce: Default::default(),
            digest: false,
        }
    }
}

/// What a token, once confirmed, does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Subscribe,
    Unsubscribe,
    /// A subscription the subscriber confirmed, waiting for an owner.
    Approve,
    /// A held post (its content in `held/TOKEN`).
    Post,
    /// A member disabled by bounces asks to be enabled again.
    Reenable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub token: String,
    pub action: Action,
    pub address: String,
    pub expires: u64,
    /// For held posts: why (non-member, moderated, too big, ...).
    #[serde(default)]
    pub reason: String,
    /// When it was made.
    #[serde(default)]
    pub created: u64,
}

/// Everything in `list.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List {
    /// Lowercase list name and domain.
    pub name: String,
    pub domain: String,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// When the owners were last reminded of held posts.
    #[serde(default)]
    pub held_reminded: u64,
    /// The number of the last digest sent.
    #[serde(default)]
    pub digest_issue: u32,
}

impl List {
    pub fn address(&self) -> String {
        format!("{}@{}", self.name, self.domain)
    }

    /// The address of one of the list's roles.
    pub fn role_address(&self, role: &address::Role) -> String {
        format!("{}@{}", address::local_part(&self.name, role), self.domain)
    }

    pub fn member(&self, address: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.address.eq_ignore_ascii_case(address))
    }

    pub fn member_mut(&mut self, address: &str) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.address.eq_ignore_ascii_case(address))
    }

    pub fn is_owner(&self, address: &str) -> bool {
        self.settings.owners.iter().any(|o| o.eq_ignore_ascii_case(address))
    }

    /// Add a member; false if already one.
    pub fn add(&mut self, address: &str, now: u64) -> bool {
        if self.member(address).is_some() {
            return false;
        }
        self.members.push(Member {
            address: address.to_ascii_lowercase(),
            joined: now,
            ..Member::default()
        });
        true
    }

    /// Remove a member; false if none.
    pub fn remove(&mut self, address: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|m| !m.address.eq_ignore_ascii_case(address));
        self.members.len() != before
    }

    /// A new pending confirmation under `token` (from `new_token`); expired
    /// ones go, but expired held posts stay for `take_expired_holds` (the
    /// owners are told of them).
    pub fn add_pending(&mut self, token: &str, action: Action, address: &str, reason: &str, now: u64) {
        self.pending.retain(|p| p.expires > now || p.action == Action::Post);
        let expires = match action {
            Action::Post => now.saturating_add(self.settings.held_lifetime),
            _ => now + TOKEN_LIFETIME,
        };
        self.pending.push(Pending {
            token: token.to_string(),
            action,
            address: address.to_ascii_lowercase(),
            expires,
            reason: reason.to_string(),
            created: now,
        });
    }

    /// Remove and return the held posts whose time is up.
    pub fn take_expired_holds(&mut self, now: u64) -> Vec<Pending> {
        let (expired, kept) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.action == Action::Post && p.expires <= now);
        self.pending = kept;
        expired
    }

    /// The held posts, when the owners are due a reminder of them: some has
    /// waited `held_reminder_interval`, and so long has passed since the
    /// last reminder. Marks them reminded.
    pub fn holds_to_remind(&mut self, now: u64) -> Vec<Pending> {
        let interval = self.settings.held_reminder_interval;
        let held: Vec<Pending> = self
            .pending
            .iter()
            .filter(|p| p.action == Action::Post && p.expires > now)
            .cloned()
            .collect();
        let waited = held.iter().any(|p| p.created.saturating_add(interval) <= now);
        if !waited || self.held_reminded.saturating_add(interval) > now {
            return Vec::new();
        }
        self.held_reminded = now;
        held
    }

    /// A member takes the digest (`on`) or single posts; false if no member.
    pub fn set_digest(&mut self, member: &str, on: bool) -> bool {
        self.member_mut(member).map(|m| m.digest = on).is_some()
    }

    /// Enabled members who get every post on its own.
    pub fn single_post_members(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| m.enabled && !(m.digest && self.settings.digest))
    }

    /// Enabled members who get the digest.
    pub fn digest_members(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| m.enabled && m.digest && self.settings.digest)
    }

    /// Take a pending confirmation that has not expired.
    pub fn take_pending(&mut self, token: &str, now: u64) -> Option<Pending> {
        let i = self.pending.iter().position(|p| p.token == token && p.expires > now)?;
        Some(self.pending.remove(i))
    }

    /// The one-click unsubscribe token of `member`: HMAC-SHA256 of the
    /// address under the list's secret, so links need no stored state.
    pub fn unsubscribe_token(&self, member: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.settings.secret.as_bytes()).expect("any key length");
        mac.update(member.to_ascii_lowercase().as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `token` is `member`'s one-click token (constant time).
    pub fn check_unsubscribe_token(&self, member: &str, token: &str) -> bool {
        let want = self.unsubscribe_token(member);
        want.len() == token.len() && want.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 20 random hex digits.
pub fn new_token() -> String {
    let mut buf = [0u8; 10];
    getrandom::fill(&mut buf).expect("the system's random source");
    hex(&buf)
}

/// The lists directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// `NAME@DOMAIN` checked and split into lowercase name and domain.
pub fn split_address(list: &str) -> Result<(String, String), ListError> {
    let lower = list.to_ascii_lowercase();
    let (name, domain) = lower.split_once('@').ok_or_else(|| ListError::BadName(list.into()))?;
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !address::creatable(name) || !domain_ok {
        return Err(ListError::BadName(list.into()));
    }
    Ok((name.to_string(), domain.to_string()))
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store { dir: dir.to_path_buf() }
    }

    fn list_dir(&self, name: &str, domain: &str) -> PathBuf {
        self.dir.join(format!("{name}@{domain}"))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ListError + '_ {
        move |e| ListError::Io(path.to_path_buf(), e)
    }

    /// Every list, as `NAME@DOMAIN`, sorted.
    pub fn names(&self) -> Result<Vec<String>, ListError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ListError::Io(self.dir.clone(), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("list.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether `name@domain` is a list (cheap: one stat, for routing).
    pub fn exists(&self, name: &str, domain: &str) -> bool {
        self.list_dir(&name.to_ascii_lowercase(), &domain.to_ascii_lowercase())
            .join("list.json")
            .exists()
    }

    /// Whether some list lives at `domain`.
    pub fn has_domain(&self, domain: &str) -> bool {
        let suffix = format!("@{}", domain.to_ascii_lowercase());
        self.names().is_ok_and(|n| n.iter().any(|l| l.ends_with(&suffix)))
    }

    pub fn create(&self, list: &str, settings: Settings) -> Result<List, ListError> {
        let (name, domain) = split_address(list)?;
        let dir = self.list_dir(&name, &domain);
        if dir.join("list.json").exists() {
            return Err(ListError::Exists(list.into()));
        }
        std::fs::create_dir_all(dir.join("held")).map_err(Self::io(&dir))?;
        let list = List {
            name,
            domain,
            settings: Settings {
                secret: new_token() + &new_token(),
                ..settings
            },
            members: Vec::new(),
            pending: Vec::new(),
            held_reminded: 0,
            digest_issue: 0,
        };
        let _lock = self.lock(&dir)?;
        self.save(&dir, &list)?;
        Ok(list)
    }

    pub fn delete(&self, list: &str) -> Result<(), ListError> {
        let (name, domain) = split_address(list)?;
        let dir = self.list_dir(&name, &domain);
        if !dir.join("list.json").exists() {
            return Err(ListError::NoSuchList(list.into()));
        }
        std::fs::remove_dir_all(&dir).map_err(Self::io(&dir))
    }

    pub fn load(&self, list: &str) -> Result<List, ListError> {
        let (name, domain) = split_address(list)?;
        Self::read(&self.list_dir(&name, &domain), list)
    }

    fn read(dir: &Path, list: &str) -> Result<List, ListError> {
        let path = dir.join("list.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ListError::Json(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ListError::NoSuchList(list.into())),
            Err(e) => Err(ListError::Io(path, e)),
        }
    }

    /// Change a list under its lock; the change is saved only if `f` returns Ok.
    pub fn update<T, E: From<ListError>>(&self, list: &str, f: impl FnOnce(&mut List) -> Result<T, E>) -> Result<T, E> {
        let (name, domain) = split_address(list)?;
        let dir = self.list_dir(&name, &domain);
        let _lock = self.lock(&dir)?;
        let mut state = Self::read(&dir, list)?;
        let before = state.clone();
        let out = f(&mut state)?;
        if state != before {
            self.save(&dir, &state)?;
        }
        Ok(out)
    }

    fn lock(&self, dir: &Path) -> Result<std::fs::File, ListError> {
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Self::io(&path))?;
        lock_exclusive(&file, &path)?;
        Ok(file)
    }

    fn save(&self, dir: &Path, list: &List) -> Result<(), ListError> {
        let path = dir.join("list.json");
        let tmp = dir.join("list.json.tmp");
        let text = serde_json::to_vec_pretty(list).map_err(|e| ListError::Json(path.clone(), e))?;
        write_synced(&tmp, &text)?;
        std::fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        sync_dir(dir)
    }

    fn held_path(&self, list: &List, token: &str) -> PathBuf {
        self.list_dir(&list.name, &list.domain).join("held").join(token)
    }

    /// Keep a post for the moderators (fsynced: the message was acknowledged).
    pub fn hold(&self, list: &List, token: &str, content: &[u8]) -> Result<(), ListError> {
        write_synced(&self.held_path(list, token), content)
    }

    pub fn held(&self, list: &List, token: &str) -> Result<Vec<u8>, ListError> {
        let path = self.held_path(list, token);
        std::fs::read(&path).map_err(Self::io(&path))
    }

    pub fn drop_held(&self, list: &List, token: &str) {
        let _ = std::fs::remove_file(self.held_path(list, token));
    }

    pub fn archive_path(&self, list: &List) -> PathBuf {
        self.list_dir(&list.name, &list.domain).join("archive.mbox")
    }

    fn digest_dir(&self, list: &List) -> PathBuf {
        self.list_dir(&list.name, &list.domain).join("digest")
    }

    /// Keep a post's copy for the next digest, durably (tmp, fsync, rename,
    /// fsync directory): a digest never holds half a post.
    pub fn add_to_digest(&self, list: &List, content: &[u8]) -> Result<(), ListError> {
        let dir = self.digest_dir(list);
        std::fs::create_dir_all(&dir).map_err(Self::io(&dir))?;
        // Nanoseconds: posts of the same second keep their order.
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{at:030}-{}", new_token());
        let tmp = dir.join(format!(".{name}"));
        write_synced(&tmp, content)?;
        let path = dir.join(&name);
        std::fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        sync_dir(&dir)
    }

    /// The posts waiting for the next digest, oldest first, by name.
    pub fn digest_posts(&self, list: &List) -> Result<Vec<(String, Vec<u8>)>, ListError> {
        let dir = self.digest_dir(list);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ListError::Io(dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| -> Result<(String, Vec<u8>), ListError> {
                let path = dir.join(&n);
                let content = std::fs::read(&path).map_err(Self::io(&path))?;
                Ok((n, content))
            })
            .collect()
    }

    /// Forget posts a digest was queued with (only those: posts that came
    /// in meanwhile wait for the next one).
    pub fn clear_digest(&self, list: &List, names: &[String]) -> Result<(), ListError> {
        let dir = self.digest_dir(list);
        for n in names {
            let path = dir.join(n);
            std::fs::remove_file(&path).map_err(Self::io(&path))?;
        }
        sync_dir(&dir)
    }

    fn journal_dir(&self, list: &List) -> PathBuf {
        self.list_dir(&list.name, &list.domain).join("distributing")
    }

    /// The journal of distribution `key` (new or left by a crash), locked:
    /// a second distribution of the same key (two owners approving one
    /// post) waits for the first, then finds its copies made.
    pub fn journal(&self, list: &List, key: &str) -> Result<Journal, ListError> {
        let dir = self.journal_dir(list);
        std::fs::create_dir_all(&dir).map_err(Self::io(&dir))?;
        let path = dir.join(key);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(Self::io(&path))?;
        if !existed {
            sync_dir(&dir)?;
        }
        lock_exclusive(&file, &path)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(Self::io(&path))?;
        // A line cut by a crash was never acknowledged: its copy is made again.
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        let done = complete.lines().map(str::to_string).collect();
        Ok(Journal { file, path, done })
    }

    /// The keys of the journals of `list`.
    pub fn journals(&self, list: &List) -> Vec<String> {
        std::fs::read_dir(self.journal_dir(list))
            .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default()
    }

    /// Drop a finished distribution's journal.
    pub fn drop_journal(&self, list: &List, key: &str) {
        let _ = std::fs::remove_file(self.journal_dir(list).join(key));
    }
}

/// The progress of one distribution of a post: one line per copy made (a
/// member's address, [`ARCHIVE_COPY`], [`DIGEST_COPY`]), written and
/// fsynced after the copy was queued or stored. Run again after a crash,
/// the distribution skips what is recorded, so only the copy made just
/// before the crash can be made twice.
pub struct Journal {
    file: std::fs::File,
    path: PathBuf,
    done: std::collections::HashSet<String>,
}

impl Journal {
    pub fn done(&self, copy: &str) -> bool {
        self.done.contains(copy)
    }

    pub fn record(&mut self, copy: &str) -> Result<(), ListError> {
        let io = |e| ListError::Io(self.path.clone(), e);
        self.file.write_all(format!("{copy}\n").as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.done.insert(copy.to_string());
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), ListError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ListError::Io(dir.to_path_buf(), e))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ListError> {
    let io = |e| ListError::Io(path.to_path_buf(), e);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
impl List {
    /// dev@x.test with `settings`, no members and nothing pending.
    pub fn sample(settings: Settings) -> List {
        List {
            name: "dev".into(),
            domain: "x.test".into(),
            settings,
            members: Vec::new(),
            pending: Vec::new(),
            held_reminded: 0,
            digest_issue: 0,
        }
    }
}

/// Wait for an exclusive lock on `file`. flock, not fcntl: an fcntl lock
/// belongs to the process, so it would not keep the daemon's web handlers
/// and its runner (threads of one process) out of each other's way.
fn lock_exclusive(file: &std::fs::File, path: &Path) -> Result<(), ListError> {
    // SAFETY: flock(2) on a descriptor we own.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(file), libc::LOCK_EX) } == -1 {
        return Err(ListError::Io(path.to_path_buf(), std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_update_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(matches!(
            store.create("dev-request@x.test", Settings::default()),
            Err(ListError::BadName(_))
        ));
        store.create("Dev@X.test", Settings::default()).unwrap();
        assert!(matches!(
            store.create("dev@x.test", Settings::default()),
            Err(ListError::Exists(_))
        ));
        assert!(store.exists("DEV", "x.TEST") && store.has_domain("x.test") && !store.has_domain("y.test"));
        assert_eq!(store.names().unwrap(), vec!["dev@x.test"]);
        let token = store
            .update("dev@x.test", |l| {
                assert!(l.add("Bob@Y.test", 1));
                assert!(!l.add("bob@y.test", 1));
                let token = new_token();
                l.add_pending(&token, Action::Subscribe, "carol@y.test", "", 100);
                Ok::<_, ListError>(token)
            })
            .unwrap();
        let mut l = store.load("dev@x.test").unwrap();
        assert_eq!(l.members[0].address, "bob@y.test");
        assert_eq!(l.take_pending(&token, 100 + TOKEN_LIFETIME), None, "expired");
        assert_eq!(l.take_pending(&token, 200).unwrap().address, "carol@y.test");
        let t = l.unsubscribe_token("bob@y.test");
        assert!(l.check_unsubscribe_token("BOB@y.test", &t));
        assert!(!l.check_unsubscribe_token("carol@y.test", &t));
        store.delete("dev@x.test").unwrap();
        assert!(matches!(store.load("dev@x.test"), Err(ListError::NoSuchList(_))));
    }

    #[test]
    fn updates_from_two_threads_of_one_process_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::new(dir.path()));
        store.create("dev@x.test", Settings::default()).unwrap();
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..40 {
                        store
                            .update("dev@x.test", |l| {
                                Ok::<_, ListError>(l.add(&format!("m{t}-{i}@y.test"), 1))
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.load("dev@x.test").unwrap().members.len(), 80);
    }

    #[test]
    fn held_posts_expire_and_are_reminded() {
        let mut l = List {
            name: "dev".into(),
            domain: "x.test".into(),
            settings: Settings {
                held_lifetime: 100,
                held_reminder_interval: 10,
                ..Settings::default()
            },
            members: Vec::new(),
            pending: Vec::new(),
            held_reminded: 0,
            digest_issue: 0,
        };
        l.add_pending("aaaaaaaa", Action::Post, "dave@y.test", "not a member", 1000);
        assert!(l.holds_to_remind(1005).is_empty(), "not waited long enough");
        assert_eq!(l.holds_to_remind(1010).len(), 1);
        assert!(l.holds_to_remind(1015).is_empty(), "reminded just now");
        assert_eq!(l.holds_to_remind(1020).len(), 1);
        // A later token's clean-up leaves the expired hold for the owners' notice.
        l.add_pending("bbbbbbbb", Action::Subscribe, "eve@y.test", "", 1200);
        assert!(l.take_pending("aaaaaaaa", 1200).is_none(), "expired");
        let expired = l.take_expired_holds(1200);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].address, "dave@y.test");
        assert_eq!(l.pending.len(), 1);
        assert!(l.take_expired_holds(1200).is_empty());
    }

    #[test]
    fn a_journal_resumes_where_a_crash_left_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let l = store.create("dev@x.test", Settings::default()).unwrap();
        {
            let mut j = store.journal(&l, "Q1").unwrap();
            j.record("a@y.test").unwrap();
            j.record(ARCHIVE_COPY).unwrap();
        }
        // A line cut short by the crash does not count.
        let path = dir.path().join("dev@x.test/distributing/Q1");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"b@y.t")
            .unwrap();
        let j = store.journal(&l, "Q1").unwrap();
        assert!(j.done("a@y.test") && j.done(ARCHIVE_COPY) && !j.done("b@y.t") && !j.done(DIGEST_COPY));
        drop(j);
        assert_eq!(store.journals(&l), vec!["Q1"]);
        store.drop_journal(&l, "Q1");
        assert!(store.journals(&l).is_empty());
    }

    #[test]
    fn digest_posts_are_kept_in_order_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let l = store.create("dev@x.test", Settings::default()).unwrap();
        assert!(store.digest_posts(&l).unwrap().is_empty());
        store.add_to_digest(&l, b"one").unwrap();
        store.add_to_digest(&l, b"two").unwrap();
        let posts = store.digest_posts(&l).unwrap();
        let contents: Vec<&[u8]> = posts.iter().map(|(_, c)| c.as_slice()).collect();
        assert_eq!(contents, [b"one".as_slice(), b"two"]);
        store.add_to_digest(&l, b"three").unwrap();
        store
            .clear_digest(&l, &[posts[0].0.clone(), posts[1].0.clone()])
            .unwrap();
        let left = store.digest_posts(&l).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1, b"three");
    }

    #[test]
    fn settings_from_text() {
        let mut s = Settings::default();
        s.set("moderated", "yes").unwrap();
        s.set("archive", "private").unwrap();
        s.set("bounce_warning_interval", "2d").unwrap();
        s.set("owners", "A@x.test, b@x.test").unwrap();
        s.set("held_lifetime", "3d").unwrap();
        s.set("digest", "on").unwrap();
        assert!(s.moderated && s.archive == ArchiveMode::Private && s.bounce_warning_interval == 2 * 86400);
        assert!(s.digest && s.held_lifetime == 3 * 86400);
        assert_eq!(s.owners, vec!["a@x.test", "b@x.test"]);
        assert!(matches!(s.set("moderated", "maybe"), Err(ListError::BadValue(..))));
        assert!(matches!(s.set("colour", "red"), Err(ListError::UnknownKey(_))));
    }
}
