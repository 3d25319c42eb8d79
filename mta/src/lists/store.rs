//! A list's state under `[lists] dir`: one directory per list
//! (`NAME@DOMAIN/`) holding `list.json` (settings, members with their
//! bounce records, pending confirmations), `held/TOKEN` (posts waiting for
//! a moderator) and `archive.mbox`. Changes are read-modify-write under an
//! fcntl lock and replace `list.json` atomically (write, fsync, rename), so
//! the daemon and `mtactl` can change a list at once.

use super::address;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How long a confirmation token lives (Mailman: 3 days).
pub const TOKEN_LIFETIME: u64 = 3 * 86400;

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
            secret: String::new(),
        }
    }
}

/// The keys `set` takes, for help and errors.
pub const KEYS: &str = "description, owners (comma-separated), moderated, archive, subject_prefix, footer, \
    max_message_size, max_recipients, owner_approval, bounce_warning_interval";

impl Settings {
    /// Change one setting from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ListError> {
        let bad = |why: &str| ListError::BadValue(key.to_string(), value.to_string(), why.to_string());
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
            "bounce_warning_interval" => {
                self.bounce_warning_interval = greyd_shared::duration::parse(value, 1)
                    .map_err(|e| bad(&e.to_string()))?
                    .as_secs()
            }
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
}

impl Default for Member {
    fn default() -> Self {
        Member {
            address: String::new(),
            enabled: true,
            joined: 0,
            bounce: Default::default(),
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
    /// ones go. Held posts wait for a moderator however long it takes.
    pub fn add_pending(&mut self, token: &str, action: Action, address: &str, reason: &str, now: u64) {
        self.pending.retain(|p| p.expires > now);
        let expires = match action {
            Action::Post => u64::MAX,
            _ => now + TOKEN_LIFETIME,
        };
        self.pending.push(Pending {
            token: token.to_string(),
            action,
            address: address.to_ascii_lowercase(),
            expires,
            reason: reason.to_string(),
        });
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
        crate::deliver::mbox::fcntl_lock(&file, true).map_err(Self::io(&path))?;
        Ok(file)
    }

    fn save(&self, dir: &Path, list: &List) -> Result<(), ListError> {
        let path = dir.join("list.json");
        let tmp = dir.join("list.json.tmp");
        let text = serde_json::to_vec_pretty(list).map_err(|e| ListError::Json(path.clone(), e))?;
        write_synced(&tmp, &text)?;
        std::fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Self::io(dir))
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
    fn settings_from_text() {
        let mut s = Settings::default();
        s.set("moderated", "yes").unwrap();
        s.set("archive", "private").unwrap();
        s.set("bounce_warning_interval", "2d").unwrap();
        s.set("owners", "A@x.test, b@x.test").unwrap();
        assert!(s.moderated && s.archive == ArchiveMode::Private && s.bounce_warning_interval == 2 * 86400);
        assert_eq!(s.owners, vec!["a@x.test", "b@x.test"]);
        assert!(matches!(s.set("moderated", "maybe"), Err(ListError::BadValue(..))));
        assert!(matches!(s.set("colour", "red"), Err(ListError::UnknownKey(_))));
    }
}
