//! One IMAP session: the state machine (not authenticated, authenticated,
//! selected) with its tokio shell. Commands come from the bounded framer
//! and parser; mailbox work goes to the store on the blocking pool. The
//! session owns sequence numbers: it keeps the UIDs (and MODSEQs) it last
//! told the client about and diffs each new store snapshot against them to
//! send EXISTS, EXPUNGE and FETCH updates.

use super::binary::{self, UnknownCte};
use super::command::{
    self, AppendMessage, Command, FetchAttr, ListOptions, MessageSet, Qresync, SearchReturn, Section, SectionText,
    StatusItem, StoreMode, Tagged,
};
use super::deflate::Deflate;
use super::framer::{Frame, Framer, Limits};
use super::listing;
use super::message;
use super::parse::NameEncoding;
use super::search::{Candidate, Context, SearchKey};
use super::sequence::{self, SequenceSet};
use super::sort::{self, Criterion};
use super::subject;
use super::thread;
use crate::auth::sasl::{self, Exchange, Step};
use crate::net::Io;
use crate::service::Shared;
use crate::store::{self, FlagOp, Flags, Mailbox, MessageMeta, NewMessage, Snapshot, Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const READ_CHUNK: usize = 16 << 10;
/// Protocol errors (BAD) before the session is closed.
const MAX_ERRORS: u32 = 20;
/// How often IDLE looks at the Maildir for changes made by other processes.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// Replies are flushed once this much is buffered (long FETCH responses).
const FLUSH_AT: usize = 256 << 10;

/// Why the session ends.
pub enum End {
    Logout,
    Closed,
}

type Flow = Result<(), End>;

struct User {
    name: String,
    store: Arc<Store>,
}

struct Selected {
    mailbox: Arc<Mailbox>,
    read_only: bool,
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
    /// STORE, FETCH FLAGS): UID → MODSEQ shown. Emptied by `update`.
    shown_above: HashMap<u32, u64>,
    snapshot: Snapshot,
    /// The keywords the client was last told of in `* FLAGS`.
    keywords: Arc<Vec<String>>,
    /// The UIDs \Recent in this session: those it claimed from the folder
    /// (each message is claimed by one session only) or, under EXAMINE,
    /// those still unclaimed.
    recent: Vec<Range<u32>>,
}

impl Selected {
    fn meta(&self, uid: u32) -> Option<&MessageMeta> {
        meta_in(&self.snapshot, uid).or_else(|| self.held_gone.get(&uid))
    }

    fn is_recent(&self, uid: u32) -> bool {
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
    fn known(&self) -> Uids<'_> {
        match &self.held {
            Some(list) => Uids::Own(list),
            None => Uids::Of(&self.snapshot.messages),
        }
    }

    fn max_uid(&self) -> u32 {
        self.known().last()
    }

    /// The client has now seen the flags of `uid` as of `modseq`.
    fn shown(&mut self, uid: u32, modseq: u64) {
        if modseq > self.reported {
            let m = self.shown_above.entry(uid).or_default();
            *m = (*m).max(modseq);
        }
    }

    /// (sequence number, UID) of the messages a set names.
    fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
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
}

/// How much of each message a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Nothing,
    /// The header block, from the folder's header cache.
    Header,
    Whole,
}

impl Need {
    fn of_fetch(attr: &FetchAttr) -> Need {
        match attr {
            FetchAttr::Envelope | FetchAttr::Rfc822Header => Need::Header,
            FetchAttr::Section { section, .. }
                if section.part.is_empty()
                    && matches!(
                        section.text,
                        Some(SectionText::Header | SectionText::HeaderFields { .. })
                    ) =>
            {
                Need::Header
            }
            FetchAttr::Body
            | FetchAttr::BodyStructure
            | FetchAttr::Section { .. }
            | FetchAttr::Binary { .. }
            | FetchAttr::BinarySize { .. }
            | FetchAttr::Rfc822
            | FetchAttr::Rfc822Text => Need::Whole,
            FetchAttr::Flags | FetchAttr::InternalDate | FetchAttr::Rfc822Size | FetchAttr::Uid | FetchAttr::ModSeq => {
                Need::Nothing
            }
        }
    }

    /// Read what is needed of `uid` (CRLF form).
    fn load(self, mailbox: &Mailbox, uid: u32) -> Result<Option<Loaded>, StoreError> {
        Ok(match self {
            Need::Nothing => None,
            Need::Header => Some(Loaded::Header(mailbox.header(uid)?)),
            Need::Whole => Some(Loaded::Whole(mailbox.read(uid)?)),
        })
    }
}

/// A message or its header, as [`Need::load`] read it.
enum Loaded {
    Header(Arc<[u8]>),
    Whole(Vec<u8>),
}

impl std::ops::Deref for Loaded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Loaded::Header(h) => h,
            Loaded::Whole(w) => w,
        }
    }
}

/// `* FLAGS` and `* OK [PERMANENTFLAGS]` for a folder with `keywords`: sent
/// at SELECT and again when a new keyword appears (RFC 3501 §7.2.6).
fn flag_lines(keywords: &[String], read_only: bool) -> [String; 2] {
    let keywords: String = keywords.iter().map(|k| format!(" {k}")).collect();
    let system = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
    let permanent = if read_only {
        String::new()
    } else {
        format!("{system}{keywords} \\*")
    };
    [
        format!("* FLAGS ({system}{keywords})"),
        format!("* OK [PERMANENTFLAGS ({permanent})] Limited"),
    ]
}

/// A list of UIDs by sequence number - 1: a session's own or a snapshot's.
#[derive(Clone, Copy)]
enum Uids<'a> {
    Own(&'a [u32]),
    Of(&'a [MessageMeta]),
}

impl Uids<'_> {
    fn len(self) -> usize {
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
    fn numbered(self) -> impl Iterator<Item = (u32, u32)> {
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

fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// `(\Seen \Flagged $Junk)`
fn render_flags(flags: &Flags, recent: bool) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (on, name) in [
        (flags.seen, "\\Seen"),
        (flags.answered, "\\Answered"),
        (flags.flagged, "\\Flagged"),
        (flags.deleted, "\\Deleted"),
        (flags.draft, "\\Draft"),
        (recent, "\\Recent"),
    ] {
        if on {
            names.push(name);
        }
    }
    names.extend(flags.keywords.iter().map(String::as_str));
    format!("({})", names.join(" "))
}

fn has_flag(flags: &Flags, name: &str) -> bool {
    match name.to_ascii_lowercase().as_str() {
        "\\seen" => flags.seen,
        "\\answered" => flags.answered,
        "\\flagged" => flags.flagged,
        "\\deleted" => flags.deleted,
        "\\draft" => flags.draft,
        _ => flags.keywords.iter().any(|k| k.eq_ignore_ascii_case(name)),
    }
}

/// Parsed flag names as store flags (`\Recent` cannot be set and is ignored).
fn to_flags(names: &[String]) -> Flags {
    let mut flags = Flags::default();
    for n in names {
        match n.as_str() {
            "\\Seen" => flags.seen = true,
            "\\Answered" => flags.answered = true,
            "\\Flagged" => flags.flagged = true,
            "\\Deleted" => flags.deleted = true,
            "\\Draft" => flags.draft = true,
            "\\Recent" => {}
            keyword => {
                flags.keywords.insert(keyword.to_string());
            }
        }
    }
    flags
}

/// Run store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Io("(task)".into(), std::io::Error::other(e))))
}

/// The response code and text for a store error.
fn store_no(e: &StoreError) -> String {
    match e {
        StoreError::NoSuchMailbox(_) => format!("NO [NONEXISTENT] {e}"),
        StoreError::Exists(_) => format!("NO [ALREADYEXISTS] {e}"),
        StoreError::BadName(_) | StoreError::Inbox => format!("NO [CANNOT] {e}"),
        StoreError::NoSuchMessage(_) => format!("NO {e}"),
        StoreError::TooManyKeywords => format!("NO [LIMIT] {e}"),
        StoreError::Io(..) => {
            tracing::error!("imap: store: {e}");
            "NO [UNAVAILABLE] Temporary mailbox error".into()
        }
    }
}

/// What THREAD needs of a message: its ids, sent date and base subject.
fn thread_item(number: u32, internal_date: i64, message: Option<&mail_parser::Message>) -> thread::Item {
    let ids = |v: &mail_parser::HeaderValue| -> Vec<String> {
        match v {
            mail_parser::HeaderValue::Text(t) => vec![format!("<{t}>")],
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| format!("<{t}>")).collect(),
            _ => Vec::new(),
        }
    };
    let mut references = message.map(|m| ids(m.references())).unwrap_or_default();
    if references.is_empty() {
        references = message.map(|m| ids(m.in_reply_to())).unwrap_or_default();
        references.truncate(1);
    }
    thread::Item {
        number,
        date: message
            .and_then(|m| m.date())
            .map_or(internal_date, |d| d.to_timestamp()),
        subject: subject::base_subject(message.and_then(|m| m.subject()).unwrap_or("")),
        message_id: message.and_then(|m| m.message_id()).map(|id| format!("<{id}>")),
        references,
    }
}

/// What STATUS reports on: the synced folder and the lowest UID no session
/// has claimed as \Recent, read without claiming it.
fn status_data(store: &Store, name: &str) -> Result<(Snapshot, u32), StoreError> {
    let mailbox = store.mailbox(name)?;
    let snapshot = mailbox.sync()?;
    Ok((snapshot, mailbox.unclaimed_recent_from()?))
}

/// The UIDs below `uid_next` that become \Recent for a session: claimed
/// under SELECT, only looked at under EXAMINE, none under IMAP4rev2 (which
/// has no \Recent: the claim is left to IMAP4rev1 sessions).
fn recent_for(mailbox: &Mailbox, uid_next: u32, read_only: bool, rev2: bool) -> Result<Range<u32>, StoreError> {
    Ok(if rev2 {
        0..0
    } else if read_only {
        mailbox.unclaimed_recent_from()?..uid_next
    } else {
        mailbox.claim_recent(uid_next)
    })
}

/// Whether adding `adding` bytes to the account would exceed `limit` (0: no quota).
async fn over_quota(limit: u64, store: Arc<Store>, adding: u64) -> bool {
    if limit == 0 {
        return false;
    }
    match blocking(move || store.usage()).await {
        Ok(used) => used.saturating_add(adding) > limit,
        Err(e) => {
            tracing::warn!("imap: quota usage: {e}");
            false
        }
    }
}

/// Does `name` match a LIST pattern (`*` anything, `%` anything but the delimiter)?
fn list_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| list_match(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != b'/')
            .any(|i| list_match(rest, &name[i..])),
        Some((&c, rest)) => name.first() == Some(&c) && list_match(rest, &name[1..]),
    }
}

pub struct Session {
    io: Box<dyn Io>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    tls: bool,
    framer: Framer,
    out: Vec<u8>,
    errors: u32,
    user: Option<User>,
    selected: Option<Selected>,
    condstore: bool,
    /// QRESYNC enabled: expunges are reported as VANISHED.
    qresync: bool,
    /// ENABLE IMAP4rev2: RFC 9051's response rules (no \Recent, ESEARCH, ...).
    rev2: bool,
    /// Mailbox names in UTF-8 after ENABLE IMAP4rev2 or UTF8=ACCEPT, else modified UTF-7.
    names: NameEncoding,
    /// SEARCHRES: the UIDs `SEARCH RETURN (SAVE)` kept for `$`; empty
    /// after SELECT, EXAMINE, CLOSE and UNSELECT (RFC 5182 §2.1).
    saved: Vec<u32>,
    deflate: Option<Deflate>,
    /// The client has fetched BINARY items or APPENDed a literal8, so it
    /// reads literal8: BODY[] contents with NUL go out as `~{n}` (RFC 3516 §4.3).
    binary: bool,
}

impl Session {
    pub fn new(io: Box<dyn Io>, shared: Arc<Shared>, peer: SocketAddr, tls: bool) -> Session {
        Session {
            io,
            shared,
            peer,
            tls,
            framer: Framer::new(Limits::UNAUTHENTICATED),
            out: Vec::new(),
            errors: 0,
            user: None,
            selected: None,
            condstore: false,
            qresync: false,
            rev2: false,
            names: NameEncoding::ModifiedUtf7,
            saved: Vec::new(),
            deflate: None,
            binary: false,
        }
    }

    fn line(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn capabilities(&self) -> String {
        // LITERAL+ and not LITERAL-: LITERAL+ is the superset (RFC 7888), so it serves IMAP4rev2 too.
        let mut caps = vec!["IMAP4rev1", "IMAP4rev2", "SASL-IR", "ID", "ENABLE", "LITERAL+"];
        if self.user.is_none() {
            if !self.tls {
                caps.extend(["STARTTLS", "LOGINDISABLED"]);
            } else {
                caps.extend(["AUTH=PLAIN", "AUTH=LOGIN", "AUTH=SCRAM-SHA-256"]);
            }
            return caps.join(" ");
        }
        caps.extend([
            "IDLE",
            "UIDPLUS",
            "MOVE",
            "NAMESPACE",
            "UNSELECT",
            "CHILDREN",
            "SPECIAL-USE",
            "ESEARCH",
            "CONDSTORE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "SORT",
            "QRESYNC",
            "COMPRESS=DEFLATE",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "SEARCHRES",
            "BINARY",
            "MULTIAPPEND",
            "STATUS=SIZE",
            "UTF8=ACCEPT",
        ]);
        if self.shared.config.imap.quota > 0 {
            caps.extend(["QUOTA", "QUOTA=RES-STORAGE"]);
        }
        format!(
            "{} APPENDLIMIT={}",
            caps.join(" "),
            self.shared.config.imap.max_message_size
        )
    }

    fn timeout(&self) -> Duration {
        let c = &self.shared.config.imap;
        if self.user.is_some() {
            c.idle_timeout
        } else {
            c.login_timeout
        }
    }

    async fn flush(&mut self) -> Flow {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        if let Some(d) = &mut self.deflate {
            out = d.deflate(&out);
        }
        self.io.write_all(&out).await.map_err(|_| End::Closed)?;
        self.io.flush().await.map_err(|_| End::Closed)
    }

    /// Give received bytes to the framer (inflated first under COMPRESS).
    /// `Ok(false)` when compressed input is pending but produced nothing yet.
    fn take_input(&mut self, bytes: &[u8]) -> Result<bool, End> {
        let Some(d) = &mut self.deflate else {
            self.framer.extend(bytes);
            return Ok(true);
        };
        d.push(bytes);
        match d.inflate() {
            Ok(plain) => {
                self.framer.extend(&plain);
                Ok(!plain.is_empty())
            }
            Err(e) => {
                tracing::info!("imap: {e} from {}", self.peer);
                Err(End::Closed)
            }
        }
    }

    /// Read more input (flushing replies first); on timeout say BYE.
    async fn fill(&mut self) -> Flow {
        self.flush().await?;
        // Compressed input already here is inflated a chunk at a time before reading more.
        if self.deflate.is_some() && self.take_input(&[])? {
            return Ok(());
        }
        let mut buf = vec![0u8; READ_CHUNK];
        match tokio::time::timeout(self.timeout(), self.io.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Err(End::Closed),
            Ok(Ok(n)) => {
                self.take_input(&buf[..n])?;
                Ok(())
            }
            Err(_) => {
                self.line("* BYE Autologout; idle for too long");
                let _ = self.flush().await;
                Err(End::Closed)
            }
        }
    }

    async fn next_frame(&mut self) -> Result<Frame, End> {
        loop {
            if let Some(frame) = self.framer.next_frame() {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    pub async fn run(mut self) {
        let greeting = format!(
            "* OK [CAPABILITY {}] {} IMAP ready",
            self.capabilities(),
            self.shared.config.hostname
        );
        self.line(&greeting);
        let end = self.serve().await;
        let _ = self.flush().await;
        if let Some(user) = &self.user {
            let how = if matches!(end, Err(End::Logout)) {
                "logout"
            } else {
                "disconnect"
            };
            tracing::info!("imap: {:?} {how} from {}", user.name, self.peer);
        }
    }

    async fn serve(&mut self) -> Flow {
        loop {
            match self.next_frame().await? {
                Frame::Continue => self.line("+ Ready for literal data"),
                Frame::TooLong { tag } => self.bad(tag.as_deref(), "Command line too long")?,
                Frame::TooBig { tag, fatal } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    let limit = self.framer.limits.literals;
                    self.line(&format!("{tag} NO [TOOBIG] Literal larger than {limit} bytes"));
                    if fatal {
                        self.line("* BYE Non-synchronizing literal too large");
                        return Err(End::Closed);
                    }
                }
                Frame::Command(bytes) => match command::parse_with(&bytes, self.names) {
                    Ok(Tagged { tag, command }) => self.dispatch(&tag, command).await?,
                    Err(e) if e.bad_name => self.line(&format!("{} NO {}", e.tag.as_deref().unwrap_or("*"), e.message)),
                    Err(e) => self.bad(e.tag.as_deref(), &e.message)?,
                },
            }
            if self.out.len() > FLUSH_AT {
                self.flush().await?;
            }
        }
    }

    fn bad(&mut self, tag: Option<&str>, text: &str) -> Flow {
        self.errors += 1;
        self.line(&format!("{} BAD {text}", tag.unwrap_or("*")));
        if self.errors >= MAX_ERRORS {
            self.line("* BYE Too many errors");
            return Err(End::Closed);
        }
        Ok(())
    }

    async fn dispatch(&mut self, tag: &str, command: Command) -> Flow {
        let authenticated = self.user.is_some();
        let selected = self.selected.is_some();
        match command {
            Command::Capability => {
                let caps = self.capabilities();
                self.line(&format!("* CAPABILITY {caps}"));
                self.ok(tag, "CAPABILITY completed");
            }
            Command::Noop | Command::Check => {
                if selected {
                    self.update(true).await;
                }
                self.ok(tag, "completed");
            }
            Command::Logout => {
                self.line("* BYE Logging out");
                self.ok(tag, "LOGOUT completed");
                return Err(End::Logout);
            }
            Command::StartTls => return self.starttls(tag).await,
            Command::Login { user, password } => self.login(tag, user, password).await?,
            Command::Authenticate { mechanism, initial } => self.authenticate(tag, &mechanism, initial).await?,
            Command::Id => {
                self.line("* ID (\"name\" \"greyd-mta\")");
                self.ok(tag, "ID completed");
            }
            _ if !authenticated => return self.bad(Some(tag), "Log in first"),
            Command::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => {
                if qresync.is_some() && !self.qresync {
                    return self.bad(Some(tag), "ENABLE QRESYNC first");
                }
                self.select(tag, mailbox, read_only, condstore, qresync).await
            }
            Command::Create(name) => {
                let store = self.store();
                let name = name.trim_end_matches('/').to_string();
                let r = blocking(move || store.create_folder(&name)).await;
                self.done(tag, r.map(drop), "CREATE completed");
            }
            Command::Delete(name) => {
                if self.selected.as_ref().is_some_and(|s| s.mailbox.name() == name) {
                    self.selected = None;
                }
                let store = self.store();
                let r = blocking(move || store.delete_folder(&name)).await;
                self.done(tag, r, "DELETE completed");
            }
            Command::Rename(from, to) => {
                let store = self.store();
                let r = blocking(move || store.rename_folder(&from, &to)).await;
                self.done(tag, r, "RENAME completed");
            }
            Command::Subscribe(name) => self.subscribe(tag, name, true).await,
            Command::Unsubscribe(name) => self.subscribe(tag, name, false).await,
            Command::List {
                reference,
                patterns,
                lsub,
                options,
            } => self.list(tag, &reference, &patterns, lsub, options).await,
            Command::Status { mailbox, items } => self.status(tag, mailbox, items).await,
            Command::Append { mailbox, messages } => self.append(tag, mailbox, messages).await,
            // RFC 5161 §3.1: the response rules must not change under an open mailbox.
            Command::Enable(_) if selected => return self.bad(Some(tag), "ENABLE is only valid before SELECT"),
            Command::Enable(caps) => {
                let mut enabled = Vec::new();
                for c in caps {
                    match c.as_str() {
                        "CONDSTORE" => self.condstore = true,
                        "QRESYNC" => {
                            self.condstore = true;
                            self.qresync = true;
                        }
                        "IMAP4REV2" => {
                            self.rev2 = true;
                            self.names = NameEncoding::Utf8;
                            enabled.push("IMAP4rev2".into());
                            continue;
                        }
                        "UTF8=ACCEPT" => self.names = NameEncoding::Utf8,
                        _ => continue,
                    }
                    enabled.push(c);
                }
                self.line(format!("* ENABLED {}", enabled.join(" ")).trim_end());
                self.ok(tag, "ENABLE completed");
            }
            Command::Namespace => {
                self.line("* NAMESPACE ((\"\" \"/\")) NIL NIL");
                self.ok(tag, "NAMESPACE completed");
            }
            Command::Idle => self.idle(tag).await?,
            Command::Compress => {
                if self.deflate.is_some() {
                    self.line(&format!("{tag} NO [COMPRESSIONACTIVE] Already compressing"));
                } else {
                    self.ok(tag, "DEFLATE active");
                    self.flush().await?;
                    // Whatever the client sent after COMPRESS is already compressed.
                    let rest = self.framer.take();
                    self.deflate = Some(Deflate::new());
                    self.take_input(&rest)?;
                }
            }
            Command::GetQuota(root) => {
                if root.is_empty() {
                    self.quota(tag, None).await;
                } else {
                    self.line(&format!("{tag} NO [NONEXISTENT] No such quota root"));
                }
            }
            Command::GetQuotaRoot(mailbox) => self.quota(tag, Some(mailbox)).await,
            Command::SetQuota => self.line(&format!("{tag} NO [CANNOT] Quotas are set in the configuration")),
            _ if !selected => return self.bad(Some(tag), "No mailbox selected"),
            Command::Close | Command::Unselect => {
                self.saved.clear();
                let close = matches!(command, Command::Close);
                if let Some(sel) = self.selected.take()
                    && close
                    && !sel.read_only
                {
                    let mailbox = sel.mailbox;
                    if let Err(e) = blocking(move || mailbox.expunge(None)).await {
                        tracing::warn!("imap: CLOSE expunge: {e}");
                    }
                }
                self.ok(tag, "completed");
            }
            Command::Expunge { uids } => {
                let uids = uids.map(|set| self.sequence_set(set, true));
                self.expunge(tag, uids).await
            }
            Command::Search { uid, returns, key } => {
                let key = key.with_saved(&self.saved);
                self.search(tag, uid, returns, key).await
            }
            Command::Sort { uid, criteria, key } => {
                let key = key.with_saved(&self.saved);
                self.sort(tag, uid, criteria, key).await
            }
            Command::Thread { uid, algorithm, key } => {
                let key = key.with_saved(&self.saved);
                self.thread(tag, uid, algorithm, key).await
            }
            Command::Fetch {
                uid,
                set,
                attrs,
                changed_since,
                vanished,
            } => {
                if vanished && !self.qresync {
                    return self.bad(Some(tag), "ENABLE QRESYNC first");
                }
                let set = self.sequence_set(set, uid);
                if vanished {
                    self.vanished_earlier(&set, changed_since.unwrap_or(0), 0).await;
                }
                self.fetch(tag, uid, set, attrs, changed_since).await?
            }
            Command::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                unchanged_since,
            } => {
                let set = self.sequence_set(set, uid);
                self.store_flags(tag, uid, set, mode, silent, flags, unchanged_since)
                    .await
            }
            Command::Copy {
                uid,
                set,
                mailbox,
                remove,
            } => {
                let set = self.sequence_set(set, uid);
                self.copy(tag, uid, set, mailbox, remove).await
            }
        }
        Ok(())
    }

    /// A command's message set as numbers of its kind: `$` becomes the
    /// saved UIDs, or for a command by sequence number, the numbers those
    /// messages have now. Messages expunged since the SAVE drop out.
    fn sequence_set(&self, set: MessageSet, uid: bool) -> SequenceSet {
        match set {
            MessageSet::Set(set) => set,
            MessageSet::Saved if uid => SequenceSet::from_numbers(&self.saved),
            MessageSet::Saved => {
                let saved = SequenceSet::from_numbers(&self.saved);
                let numbers: Vec<u32> = self.selected().resolve(&saved, true).iter().map(|p| p.0).collect();
                SequenceSet::from_numbers(&numbers)
            }
        }
    }

    fn ok(&mut self, tag: &str, text: &str) {
        self.line(&format!("{tag} OK {text}"));
    }

    fn done(&mut self, tag: &str, r: Result<(), StoreError>, text: &str) {
        match r {
            Ok(()) => self.ok(tag, text),
            Err(e) => self.line(&format!("{tag} {}", store_no(&e))),
        }
    }

    fn store(&self) -> Arc<Store> {
        Arc::clone(&self.user.as_ref().expect("authenticated").store)
    }

    async fn starttls(&mut self, tag: &str) -> Flow {
        let tls = match (&self.shared.tls, self.tls) {
            (_, true) => return self.bad(Some(tag), "TLS already active"),
            (None, _) => {
                self.line(&format!("{tag} NO TLS not available"));
                return Ok(());
            }
            (Some(tls), false) => Arc::clone(tls),
        };
        self.ok(tag, "Begin TLS negotiation now");
        self.flush().await?;
        // Anything pipelined after STARTTLS came in plaintext: discard it.
        self.framer.clear();
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        match tokio::time::timeout(self.timeout(), tls.acceptor().accept(io)).await {
            Ok(Ok(stream)) => {
                self.io = Box::new(stream);
                self.tls = true;
                Ok(())
            }
            _ => {
                tracing::info!("imap: TLS handshake with {} failed", self.peer);
                Err(End::Closed)
            }
        }
    }

    /// Refuse a login for a reason; `Some(reply)` when refused.
    fn login_refusal(&self, tag: &str) -> Option<String> {
        if self.user.is_some() {
            return Some(format!("{tag} BAD Already authenticated"));
        }
        if !self.tls {
            return Some(format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS first"));
        }
        if self.shared.auth.throttled(self.peer.ip()) {
            return Some(format!(
                "{tag} NO [UNAVAILABLE] Too many failed logins; try again later"
            ));
        }
        None
    }

    async fn login(&mut self, tag: &str, user: String, password: String) -> Flow {
        if let Some(reply) = self.login_refusal(tag) {
            self.line(&reply);
            return Ok(());
        }
        let ok = self.shared.auth.check_password(&user, password).await;
        self.login_result(tag, ok.then_some(user), "LOGIN").await
    }

    async fn authenticate(&mut self, tag: &str, mechanism: &str, initial: Option<String>) -> Flow {
        if let Some(reply) = self.login_refusal(tag) {
            self.line(&reply);
            return Ok(());
        }
        if mechanism == "CRAM-MD5" {
            // Offered by SMTP, but not advertised here: it needs plaintext secrets.
            self.line(&format!("{tag} NO Unsupported authentication mechanism"));
            return Ok(());
        }
        let Some((mut exchange, challenge)) = Exchange::start(mechanism, &self.shared.config.hostname) else {
            self.line(&format!("{tag} NO Unsupported authentication mechanism"));
            return Ok(());
        };
        let mut response = match initial {
            Some(init) if exchange.accepts_initial() => sasl::decode(&init),
            _ => {
                let c = challenge.unwrap_or_default();
                self.line(&format!("+ {}", B64.encode(c)));
                self.read_sasl_line().await?
            }
        };
        let users = self.shared.auth.users();
        loop {
            let Some(r) = response else {
                return self.bad(Some(tag), "Authentication cancelled or malformed");
            };
            match exchange.step(&r, users.as_ref()) {
                Step::Challenge(c) => {
                    self.line(&format!("+ {}", B64.encode(c)));
                    response = self.read_sasl_line().await?;
                }
                Step::CheckPassword { user, password } => {
                    let ok = self.shared.auth.check_password(&user, password).await;
                    return self.login_result(tag, ok.then_some(user), mechanism).await;
                }
                Step::Success { user } => return self.login_result(tag, Some(user), mechanism).await,
                Step::Failure => return self.login_result(tag, None, mechanism).await,
                Step::Malformed => return self.bad(Some(tag), "Malformed authentication response"),
            }
        }
    }

    async fn read_sasl_line(&mut self) -> Result<Option<Vec<u8>>, End> {
        match self.next_frame().await? {
            Frame::Command(line) => Ok(std::str::from_utf8(&line).ok().and_then(sasl::decode)),
            _ => Ok(None),
        }
    }

    async fn login_result(&mut self, tag: &str, user: Option<String>, how: &str) -> Flow {
        let ip = self.peer.ip();
        let Some(user) = user else {
            self.shared.auth.record_failure(ip);
            tracing::warn!("imap: {how} failed from {}", self.peer);
            self.line(&format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials"));
            return Ok(());
        };
        self.shared.auth.record_success(ip);
        let location = store::locate(&self.shared.config, &user);
        let opened = match location {
            Some(loc) if loc.format == crate::config::MailboxFormat::Maildir => blocking(move || {
                let store = Store::open(&loc.path, loc.owner.as_ref())?;
                store.ensure_special_folders()?;
                Ok(store)
            })
            .await
            .map_err(|e| {
                tracing::error!("imap: opening the mail of {user:?}: {e}");
                "Mailbox unavailable"
            }),
            Some(_) => Err("This account's mail is in mbox format: use POP3"),
            None => Err("No mailbox for this account"),
        };
        match opened {
            Ok(store) => {
                tracing::info!("imap: {user:?} logged in from {} with {how}", self.peer);
                self.user = Some(User {
                    name: user,
                    store: Arc::new(store),
                });
                self.framer.limits = Limits::authenticated(self.shared.config.imap.max_message_size);
                let caps = self.capabilities();
                self.ok(tag, &format!("[CAPABILITY {caps}] Logged in"));
            }
            Err(why) => self.line(&format!("{tag} NO [UNAVAILABLE] {why}")),
        }
        Ok(())
    }

    async fn select(&mut self, tag: &str, name: String, read_only: bool, condstore: bool, qresync: Option<Qresync>) {
        self.saved.clear();
        if self.selected.take().is_some() && (self.rev2 || self.qresync) {
            self.line("* OK [CLOSED] Previous mailbox closed");
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
            Err(e) => return self.line(&format!("{tag} {}", store_no(&e))),
        };
        let exists = snapshot.messages.len();
        let recent = snapshot
            .messages
            .iter()
            .filter(|m| recent_uids.contains(&m.uid))
            .count();
        let first_unseen = snapshot.messages.iter().position(|m| !m.flags.seen);
        let mut lines = flag_lines(&snapshot.keywords, read_only).to_vec();
        lines.push(format!("* {exists} EXISTS"));
        // IMAP4rev2 dropped RECENT and the UNSEEN code (RFC 9051 Appendix E).
        if !rev2 {
            lines.push(format!("* {recent} RECENT"));
            if let Some(i) = first_unseen {
                lines.push(format!("* OK [UNSEEN {}] First unseen", i + 1));
            }
        }
        lines.push(format!("* OK [UIDVALIDITY {}] UIDs valid", snapshot.uid_validity));
        lines.push(format!("* OK [UIDNEXT {}] Predicted next UID", snapshot.uid_next));
        lines.push(format!("* OK [HIGHESTMODSEQ {}] Highest", snapshot.highest_modseq));
        for l in lines {
            self.line(&l);
        }
        if rev2 {
            self.select_list(mailbox.name()).await;
        }
        let validity = snapshot.uid_validity;
        self.selected = Some(Selected {
            mailbox,
            read_only,
            held: None,
            held_gone: HashMap::new(),
            reported: snapshot.highest_modseq,
            shown_above: HashMap::new(),
            keywords: Arc::clone(&snapshot.keywords),
            snapshot,
            recent: vec![recent_uids],
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
            let lines: Vec<String> = sel
                .snapshot
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.modseq > q.modseq && r.contains(m.uid))
                .map(|(i, m)| {
                    let flags = render_flags(&m.flags, sel.is_recent(m.uid));
                    format!("* {} FETCH (UID {} FLAGS {flags} MODSEQ ({}))", i + 1, m.uid, m.modseq)
                })
                .collect();
            for l in lines {
                self.line(&l);
            }
        }
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        self.ok(tag, &format!("[{mode}] SELECT completed"));
    }

    /// IMAP4rev2's SELECT names the mailbox in a LIST response with its
    /// attributes (RFC 9051 §6.3.2).
    async fn select_list(&mut self, name: &str) {
        let store = self.store();
        let folders = match blocking(move || store.folders()).await {
            Ok(f) => f,
            Err(e) => return tracing::warn!("imap: folders for SELECT: {e}"),
        };
        let Some(f) = folders.iter().find(|f| f.name == name) else {
            return;
        };
        let mut attrs = vec![if f.has_children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        }];
        attrs.extend(f.special_use.map(listing::special_use_attribute));
        let mut line = format!("* LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
        message::string(&mut line, self.names.encode(name).as_bytes());
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
    }

    /// `* VANISHED (EARLIER) uids`: UIDs in `set` expunged since `modseq`
    /// (QRESYNC), leaving out those up to `known_through`, which the client's
    /// sequence match data shows it knows of.
    async fn vanished_earlier(&mut self, set: &SequenceSet, modseq: u64, known_through: u32) {
        let sel = self.selected();
        let mailbox = Arc::clone(&sel.mailbox);
        let largest = sel.snapshot.uid_next.saturating_sub(1);
        match blocking(move || mailbox.vanished_since(modseq)).await {
            Ok(mut uids) => {
                let r = set.resolve(largest);
                uids.retain(|&u| u > known_through && r.contains(u));
                uids.sort_unstable();
                if !uids.is_empty() {
                    self.line(&format!("* VANISHED (EARLIER) {}", sequence::render(&uids)));
                }
            }
            Err(e) => tracing::warn!("imap: VANISHED: {e}"),
        }
    }

    /// Sync the selected mailbox and tell the client what changed. EXPUNGE
    /// is held back during FETCH, STORE and SEARCH by sequence number.
    async fn update(&mut self, allow_expunge: bool) {
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
        let condstore = self.condstore;
        let qresync = self.qresync;
        let Some(sel) = &mut self.selected else { return };
        if read_only {
            sel.recent = vec![recent_uids];
        } else {
            sel.add_recent(recent_uids);
        }
        if sel.held.is_none() && Arc::ptr_eq(&sel.snapshot.messages, &snapshot.messages) {
            // The folder's view has not changed since the last update.
            return;
        }
        let old = std::mem::replace(&mut sel.snapshot, snapshot);
        let held = sel.held.take();
        let before = match &held {
            Some(list) => Uids::Own(list),
            None => Uids::Of(&old.messages),
        };
        let now = &sel.snapshot;
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
        if now.keywords != sel.keywords {
            lines.extend(flag_lines(&now.keywords, sel.read_only));
            sel.keywords = Arc::clone(&now.keywords);
        }
        if allow_expunge && qresync && !gone.is_empty() {
            let uids: Vec<u32> = gone.iter().map(|g| g.1).collect();
            lines.push(format!("* VANISHED {}", sequence::render(&uids)));
        } else if allow_expunge {
            // Highest first, so each number is still right when the client applies it.
            lines.extend(gone.iter().rev().map(|(seq, _)| format!("* {seq} EXPUNGE")));
        }
        let holding = !allow_expunge && !gone.is_empty();
        let told = if holding { before } else { Uids::Of(still) };
        if now.highest_modseq > sel.reported {
            let mut walk = Walk(still);
            for (seq, uid) in told.numbered() {
                let Some(m) = walk.find(uid) else { continue };
                let shown = sel.shown_above.get(&uid).copied().unwrap_or(sel.reported);
                if m.modseq > shown {
                    let modseq = if condstore {
                        format!(" MODSEQ ({})", m.modseq)
                    } else {
                        String::new()
                    };
                    let flags = render_flags(&m.flags, sel.is_recent(uid));
                    lines.push(format!("* {seq} FETCH (UID {uid} FLAGS {flags}{modseq})"));
                }
            }
            sel.reported = now.highest_modseq;
            sel.shown_above.clear();
        }
        let fresh = &now.messages[still.len()..];
        let total = told.len() + fresh.len();
        let held_gone = if holding {
            gone.iter()
                .filter_map(|&(_, u)| meta_in(&old, u).or_else(|| sel.held_gone.get(&u)).cloned())
                .map(|m| (m.uid, m))
                .collect()
        } else {
            HashMap::new()
        };
        if holding {
            let mut list: Vec<u32> = told.numbered().map(|(_, u)| u).collect();
            list.extend(fresh.iter().map(|m| m.uid));
            sel.held = Some(list);
        }
        sel.held_gone = held_gone;
        if !fresh.is_empty() {
            lines.push(format!("* {total} EXISTS"));
            if !self.rev2 {
                let recent = sel.known().numbered().filter(|&(_, u)| sel.is_recent(u)).count();
                lines.push(format!("* {recent} RECENT"));
            }
        }
        for l in lines {
            self.line(&l);
        }
    }

    async fn subscribe(&mut self, tag: &str, name: String, on: bool) {
        let store = self.store();
        let r = blocking(move || store.set_subscribed(&name, on)).await;
        self.done(tag, r, "completed");
    }

    async fn list(&mut self, tag: &str, reference: &str, patterns: &[String], lsub: bool, options: ListOptions) {
        let verb = if lsub { "LSUB" } else { "LIST" };
        if patterns.len() == 1 && patterns[0].is_empty() && options == ListOptions::default() {
            self.line(&format!("* {verb} (\\Noselect) \"/\" \"\""));
            return self.ok(tag, &format!("{verb} completed"));
        }
        let store = self.store();
        let (folders, subscriptions) = match blocking(move || Ok((store.folders()?, store.subscriptions()?))).await {
            Ok(f) => f,
            Err(e) => return self.line(&format!("{tag} {}", store_no(&e))),
        };
        let matches = |name: &str| {
            patterns.iter().any(|p| {
                let full = format!("{reference}{p}");
                if name == "INBOX" {
                    list_match(full.to_ascii_uppercase().as_bytes(), b"INBOX")
                } else {
                    list_match(full.as_bytes(), name.as_bytes())
                }
            })
        };
        let mut listed = Vec::new();
        for entry in listing::entries(&folders, &subscriptions, matches, lsub, &options) {
            let mut line = format!("* {verb} ({}) \"/\" ", entry.attrs.join(" ")).into_bytes();
            message::string(&mut line, self.names.encode(&entry.name).as_bytes());
            if entry.child_info {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
            if entry.exists {
                listed.push(entry.name);
            }
        }
        if let Some(items) = options.status {
            for name in listed {
                let store = self.store();
                let n = name.clone();
                match blocking(move || status_data(&store, &n)).await {
                    Ok((snapshot, unclaimed)) => self.status_line(&name, &snapshot, unclaimed, &items),
                    Err(e) => tracing::warn!("imap: LIST-STATUS {name:?}: {e}"),
                }
            }
        }
        self.ok(tag, &format!("{verb} completed"));
    }

    async fn status(&mut self, tag: &str, name: String, items: Vec<StatusItem>) {
        let store = self.store();
        let n = name.clone();
        match blocking(move || status_data(&store, &n)).await {
            Ok((snapshot, unclaimed)) => {
                self.status_line(&name, &snapshot, unclaimed, &items);
                self.ok(tag, "STATUS completed");
            }
            Err(e) => self.line(&format!("{tag} {}", store_no(&e))),
        }
    }

    /// `unclaimed`: the lowest UID no session has claimed as \Recent (see
    /// `status_data`). On the selected mailbox this session's own \Recent
    /// messages count too, so STATUS agrees with what SELECT said.
    fn status_line(&mut self, name: &str, snapshot: &Snapshot, unclaimed: u32, items: &[StatusItem]) {
        let m = &snapshot.messages;
        let own = self.selected.as_ref().filter(|s| {
            s.mailbox.name() == name || (s.mailbox.name() == "INBOX" && name.eq_ignore_ascii_case("INBOX"))
        });
        let recent = m
            .iter()
            .filter(|m| m.uid >= unclaimed || own.is_some_and(|s| s.is_recent(m.uid)))
            .count();
        let values: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", m.len()),
                StatusItem::Recent => format!("RECENT {recent}"),
                StatusItem::UidNext => format!("UIDNEXT {}", snapshot.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", snapshot.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", m.iter().filter(|m| !m.flags.seen).count()),
                StatusItem::Size => format!("SIZE {}", m.iter().map(|m| m.size).sum::<u64>()),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", snapshot.highest_modseq),
                StatusItem::Deleted => format!("DELETED {}", m.iter().filter(|m| m.flags.deleted).count()),
            })
            .collect();
        let mut line = b"* STATUS ".to_vec();
        message::string(&mut line, self.names.encode(name).as_bytes());
        line.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        self.out.extend_from_slice(&line);
    }

    /// GETQUOTA "" / GETQUOTAROOT: one root for the whole account, STORAGE in KiB.
    async fn quota(&mut self, tag: &str, mailbox: Option<String>) {
        let limit = self.shared.config.imap.quota;
        if let Some(name) = &mailbox {
            let mut line = b"* QUOTAROOT ".to_vec();
            message::string(&mut line, self.names.encode(name).as_bytes());
            line.extend_from_slice(if limit > 0 { b" \"\"\r\n" } else { b"\r\n" });
            self.out.extend_from_slice(&line);
        }
        if limit > 0 {
            let store = self.store();
            match blocking(move || store.usage()).await {
                Ok(used) => self.line(&format!(
                    "* QUOTA \"\" (STORAGE {} {})",
                    used.div_ceil(1024),
                    limit / 1024
                )),
                Err(e) => return self.line(&format!("{tag} {}", store_no(&e))),
            }
        } else if mailbox.is_none() {
            return self.line(&format!("{tag} NO [NONEXISTENT] No quota configured"));
        }
        self.ok(tag, "GETQUOTA completed");
    }

    /// APPEND of one message or, with MULTIAPPEND, several: all are saved or
    /// none (RFC 3502 §6.3.11).
    async fn append(&mut self, tag: &str, name: String, messages: Vec<AppendMessage>) {
        if messages.iter().any(|m| m.data.is_empty()) {
            return self.line(&format!("{tag} NO Empty message"));
        }
        self.binary |= messages.iter().any(|m| m.literal8);
        let adding = messages.iter().map(|m| m.data.len() as u64).sum();
        if over_quota(self.shared.config.imap.quota, self.store(), adding).await {
            return self.line(&format!("{tag} NO [OVERQUOTA] Mailbox quota exceeded"));
        }
        let store = self.store();
        let r = blocking(move || {
            let mailbox = store.mailbox(&name)?;
            let flags: Vec<Flags> = messages.iter().map(|m| to_flags(&m.flags)).collect();
            let new: Vec<NewMessage> = messages
                .iter()
                .zip(&flags)
                .map(|(m, flags)| NewMessage {
                    data: &m.data,
                    binary: m.literal8,
                    flags,
                    date: m.date.map(|d| UNIX_EPOCH + Duration::from_secs(d.max(0) as u64)),
                })
                .collect();
            mailbox.append_all(&new)
        })
        .await;
        // Into the selected mailbox: `* n EXISTS` comes before the tagged OK.
        if self.selected.is_some() {
            self.update(true).await;
        }
        match r {
            Ok((validity, uids)) => self.ok(
                tag,
                &format!("[APPENDUID {validity} {}] APPEND completed", sequence::render(&uids)),
            ),
            Err(StoreError::NoSuchMailbox(m)) => {
                self.line(&format!("{tag} NO [TRYCREATE] No such mailbox: {m}"));
            }
            Err(e) => self.line(&format!("{tag} {}", store_no(&e))),
        }
    }

    fn selected(&self) -> &Selected {
        self.selected.as_ref().expect("selected")
    }

    async fn expunge(&mut self, tag: &str, uids: Option<SequenceSet>) {
        if self.selected().read_only {
            return self.line(&format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
        }
        let only: Option<Vec<u32>> = uids.map(|set| self.selected().resolve(&set, true).iter().map(|p| p.1).collect());
        let mailbox = Arc::clone(&self.selected().mailbox);
        let r = blocking(move || mailbox.expunge(only.as_deref())).await;
        self.update(true).await;
        self.done(tag, r.map(drop), "EXPUNGE completed");
    }

    /// The messages matching `key` as (number, MODSEQ, what THREAD needs if
    /// `threading`), by UID or sequence number, in mailbox order or sorted by `criteria`.
    async fn matching(
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
        blocking(move || {
            let need = if key.needs_body() {
                Need::Whole
            } else if threading || key.needs_message() || criteria.iter().any(|c| c.key.needs_message()) {
                Need::Header
            } else {
                Need::Nothing
            };
            let mut found = Vec::new();
            for (seq, meta, recent) in candidates {
                let raw = match need.load(&mailbox, meta.uid) {
                    Ok(raw) => raw,
                    Err(StoreError::NoSuchMessage(_)) => continue,
                    Err(e) => return Err(e),
                };
                let parsed = raw
                    .as_deref()
                    .and_then(|r| mail_parser::MessageParser::default().parse(r));
                let flags = |f: &str| has_flag(&meta.flags, f);
                let internal_date = epoch_secs(meta.internal_date);
                let c = Candidate {
                    seq,
                    uid: meta.uid,
                    has_flag: &flags,
                    recent,
                    modseq: meta.modseq,
                    size: meta.size,
                    internal_date,
                    message: parsed.as_ref(),
                };
                if key.matches(&c, &ctx) {
                    let values: Vec<sort::Value> = criteria
                        .iter()
                        .map(|k| sort::value(k.key, internal_date, meta.size, parsed.as_ref()))
                        .collect();
                    let number = if uid { meta.uid } else { seq };
                    let item = threading.then(|| thread_item(number, internal_date, parsed.as_ref()));
                    found.push((number, meta.modseq, values, item));
                }
            }
            // Stable: equal values keep sequence order, as RFC 5256 asks.
            found.sort_by(|a, b| sort::compare(&criteria, &a.2, &b.2));
            Ok(found.into_iter().map(|(n, m, _, t)| (n, m, t)).collect())
        })
        .await
    }

    async fn sort(&mut self, tag: &str, uid: bool, criteria: Vec<Criterion>, key: SearchKey) {
        match self.matching(uid, key, criteria, false).await {
            Ok(found) => {
                let numbers: String = found.iter().map(|f| format!(" {}", f.0)).collect();
                self.line(&format!("* SORT{numbers}"));
                self.ok(tag, "SORT completed");
            }
            Err(e) => self.line(&format!("{tag} {}", store_no(&e))),
        }
    }

    async fn thread(&mut self, tag: &str, uid: bool, algorithm: thread::Algorithm, key: SearchKey) {
        match self.matching(uid, key, Vec::new(), true).await {
            Ok(found) => {
                let items: Vec<thread::Item> = found.into_iter().filter_map(|f| f.2).collect();
                let threads = tokio::task::spawn_blocking(move || thread::thread(algorithm, &items))
                    .await
                    .unwrap_or_default();
                self.line(format!("* THREAD {threads}").trim_end());
                self.ok(tag, "THREAD completed");
            }
            Err(e) => self.line(&format!("{tag} {}", store_no(&e))),
        }
    }

    async fn search(&mut self, tag: &str, uid: bool, returns: Option<Vec<SearchReturn>>, key: SearchKey) {
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
                return self.line(&format!("{tag} {}", store_no(&e)));
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
                let mut line = String::from("* SEARCH");
                for n in &numbers {
                    line.push_str(&format!(" {n}"));
                }
                if uses_modseq && let Some(m) = top_modseq {
                    line.push_str(&format!(" (MODSEQ {m})"));
                }
                self.line(&line);
            }
            Some(mut returns) => {
                if returns.is_empty() {
                    returns.push(SearchReturn::All);
                }
                let mut line = format!("* ESEARCH (TAG \"{tag}\")");
                if uid {
                    line.push_str(" UID");
                }
                for r in returns {
                    match r {
                        SearchReturn::Min if !numbers.is_empty() => line.push_str(&format!(" MIN {}", numbers[0])),
                        SearchReturn::Max if !numbers.is_empty() => {
                            line.push_str(&format!(" MAX {}", numbers[numbers.len() - 1]))
                        }
                        SearchReturn::All if !numbers.is_empty() => {
                            line.push_str(&format!(" ALL {}", sequence::render(&numbers)))
                        }
                        SearchReturn::Count => line.push_str(&format!(" COUNT {}", numbers.len())),
                        SearchReturn::Min | SearchReturn::Max | SearchReturn::All | SearchReturn::Save => {}
                    }
                }
                if uses_modseq && let Some(m) = top_modseq {
                    line.push_str(&format!(" MODSEQ {m}"));
                }
                self.line(&line);
            }
        }
        self.ok(tag, "SEARCH completed");
    }

    /// Keep a SEARCH result for `$` as UIDs. With MIN or MAX but neither ALL
    /// nor COUNT, only those messages are kept (RFC 5182 §2.4).
    fn save_result(&mut self, uid: bool, numbers: &[u32], returns: &[SearchReturn]) {
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

    async fn fetch(
        &mut self,
        tag: &str,
        uid: bool,
        set: SequenceSet,
        mut attrs: Vec<FetchAttr>,
        changed_since: Option<u64>,
    ) -> Flow {
        self.update(uid).await;
        if uid && !attrs.contains(&FetchAttr::Uid) {
            attrs.insert(0, FetchAttr::Uid);
        }
        // CHANGEDSINCE and the MODSEQ item enable CONDSTORE (RFC 7162 §3.1).
        if changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            self.condstore = true;
        }
        self.binary |= attrs
            .iter()
            .any(|a| matches!(a, FetchAttr::Binary { .. } | FetchAttr::BinarySize { .. }));
        if changed_since.is_some() && !attrs.contains(&FetchAttr::ModSeq) {
            attrs.push(FetchAttr::ModSeq);
        }
        let sel = self.selected();
        // Every message the client knows has its metadata here, even one
        // another session expunged (held back until EXPUNGE may be sent).
        let targets: Vec<(u32, MessageMeta, bool)> = sel
            .resolve(&set, uid)
            .into_iter()
            .filter_map(|(seq, u)| sel.meta(u).map(|m| (seq, m.clone(), sel.is_recent(u))))
            .filter(|(_, m, _)| changed_since.is_none_or(|c| m.modseq > c))
            .collect();
        let sets_seen = !sel.read_only
            && attrs.iter().any(|a| {
                matches!(
                    a,
                    FetchAttr::Section { peek: false, .. }
                        | FetchAttr::Binary { peek: false, .. }
                        | FetchAttr::Rfc822
                        | FetchAttr::Rfc822Text
                )
            });
        let mailbox = Arc::clone(&sel.mailbox);
        let mut targets = targets;
        if sets_seen {
            let unseen: Vec<u32> = targets.iter().filter(|t| !t.1.flags.seen).map(|t| t.1.uid).collect();
            if !unseen.is_empty() {
                let seen = Flags {
                    seen: true,
                    ..Flags::default()
                };
                let mb = Arc::clone(&mailbox);
                match blocking(move || mb.store_flags(&unseen, FlagOp::Add, &seen, None)).await {
                    Ok(outcome) => {
                        for (u, flags, modseq) in outcome.changed {
                            if let Some(t) = targets.iter_mut().find(|t| t.1.uid == u) {
                                t.1.flags = flags;
                                t.1.modseq = modseq;
                            }
                        }
                        if !attrs.contains(&FetchAttr::Flags) {
                            attrs.push(FetchAttr::Flags);
                        }
                    }
                    Err(e) => tracing::warn!("imap: setting \\Seen: {e}"),
                }
            }
        }
        let need = attrs.iter().map(Need::of_fetch).max().unwrap_or(Need::Nothing);
        let mut undecodable = None;
        let mut expunged = false;
        let attrs = Arc::new(attrs);
        let literal8 = self.binary;
        for (seq, meta, recent) in targets {
            let mb = Arc::clone(&mailbox);
            let a = Arc::clone(&attrs);
            let u = meta.uid;
            let modseq = meta.modseq;
            let reports_flags = a.contains(&FetchAttr::Flags);
            let rendered = blocking(move || {
                let (raw, gone) = match need.load(&mb, meta.uid) {
                    Ok(raw) => (raw, false),
                    // Expunged by another session: what is known still goes out, the contents as NIL.
                    Err(StoreError::NoSuchMessage(_)) => (None, need != Need::Nothing),
                    Err(e) => return Err(e),
                };
                Ok((render_fetch(seq, &meta, recent, raw.as_deref(), &a, literal8), gone))
            })
            .await;
            match rendered {
                Ok((Err(e), _)) => undecodable = Some(e),
                Ok((Ok(bytes), gone)) => {
                    expunged |= gone;
                    self.out.extend_from_slice(&bytes);
                    if reports_flags && let Some(sel) = &mut self.selected {
                        sel.shown(u, modseq);
                    }
                }
                Err(e) => {
                    tracing::warn!("imap: FETCH UID {u}: {e}");
                }
            }
            if self.out.len() > FLUSH_AT {
                self.flush().await?;
            }
        }
        match undecodable {
            Some(e) => self.line(&format!("{tag} NO [UNKNOWN-CTE] {e}")),
            None if expunged => self.ok(tag, "[EXPUNGEISSUED] Some messages were expunged meanwhile"),
            None => self.ok(tag, "FETCH completed"),
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_flags(
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
                    lines.extend(flag_lines(&keywords, false));
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
                items.push(format!("FLAGS {}", render_flags(flags, sel.is_recent(*u))));
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

    async fn copy(&mut self, tag: &str, uid: bool, set: SequenceSet, dest: String, remove: bool) {
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

    async fn idle(&mut self, tag: &str) -> Flow {
        self.line("+ idling");
        if self.selected.is_some() {
            self.update(true).await;
        }
        self.flush().await?;
        let mut changes = self.selected.as_ref().map(|s| s.mailbox.changes());
        let deadline = tokio::time::Instant::now() + self.shared.config.imap.idle_timeout;
        let mut poll = tokio::time::interval(IDLE_POLL);
        let mut buf = vec![0u8; 1024];
        enum Event {
            Input(usize),
            Change,
            Timeout,
        }
        loop {
            let event = tokio::select! {
                r = self.io.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Err(End::Closed),
                    Ok(n) => Event::Input(n),
                },
                Some(_) = async { match &mut changes { Some(c) => c.changed().await.ok(), None => std::future::pending().await } } => Event::Change,
                _ = poll.tick() => Event::Change,
                _ = tokio::time::sleep_until(deadline) => Event::Timeout,
            };
            match event {
                Event::Input(n) => {
                    self.take_input(&buf[..n])?;
                    if let Some(frame) = self.framer.next_frame() {
                        match frame {
                            Frame::Command(line) if line.eq_ignore_ascii_case(b"DONE") => {
                                self.ok(tag, "IDLE terminated");
                            }
                            _ => {
                                self.bad(Some(tag), "Expected DONE")?;
                            }
                        }
                        return Ok(());
                    }
                }
                Event::Change => {
                    if self.selected.is_some() {
                        self.update(true).await;
                    }
                }
                Event::Timeout => {
                    self.line("* BYE Autologout; idle for too long");
                    return Err(End::Closed);
                }
            }
            self.flush().await?;
        }
    }
}

/// One `* n FETCH (...)` response, or the encoding that kept a BINARY item
/// from being decoded. `raw` is `None` when no contents are asked for or the
/// message is gone: contents are then NIL. With `literal8`, BODY[] contents
/// holding NUL go out as literal8.
fn render_fetch(
    seq: u32,
    meta: &MessageMeta,
    recent: bool,
    raw: Option<&[u8]>,
    attrs: &[FetchAttr],
    literal8: bool,
) -> Result<Vec<u8>, UnknownCte> {
    let parsed = raw.and_then(|r| mail_parser::MessageParser::default().parse(r));
    let gone = raw.is_none();
    let raw = raw.unwrap_or(&[]);
    let mut out = format!("* {seq} FETCH (").into_bytes();
    for (i, attr) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        match attr {
            FetchAttr::Uid => out.extend_from_slice(format!("UID {}", meta.uid).as_bytes()),
            FetchAttr::Flags => {
                out.extend_from_slice(format!("FLAGS {}", render_flags(&meta.flags, recent)).as_bytes())
            }
            FetchAttr::ModSeq => out.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes()),
            FetchAttr::InternalDate => {
                let secs = epoch_secs(meta.internal_date).max(0) as u64;
                out.extend_from_slice(format!("INTERNALDATE \"{}\"", crate::datetime::imap(secs)).as_bytes());
            }
            FetchAttr::Rfc822Size => out.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes()),
            FetchAttr::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                match &parsed {
                    Some(m) => message::envelope(&mut out, m),
                    None => out.extend_from_slice(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
                }
            }
            FetchAttr::Body | FetchAttr::BodyStructure => {
                let extended = *attr == FetchAttr::BodyStructure;
                out.extend_from_slice(if extended { b"BODYSTRUCTURE " } else { b"BODY " });
                match &parsed {
                    Some(m) => message::body_structure(&mut out, m, extended),
                    None => out.extend_from_slice(
                        format!("(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" {} 0)", raw.len()).as_bytes(),
                    ),
                }
            }
            FetchAttr::Rfc822 | FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => {
                let (name, text) = match attr {
                    FetchAttr::Rfc822 => ("RFC822", None),
                    FetchAttr::Rfc822Header => ("RFC822.HEADER", Some(SectionText::Header)),
                    _ => ("RFC822.TEXT", Some(SectionText::Text)),
                };
                let section = Section { part: Vec::new(), text };
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
                match message::section(raw, parsed.as_ref(), &section).filter(|_| !gone) {
                    Some(bytes) => message::string(&mut out, &bytes),
                    None if gone => out.extend_from_slice(b"NIL"),
                    None => message::string(&mut out, b""),
                }
            }
            FetchAttr::Section { section, partial, .. } => {
                let bytes = message::section(raw, parsed.as_ref(), section).filter(|_| !gone);
                let mut name = message::section_name(section);
                let bytes = match (bytes, partial) {
                    (Some(b), Some((origin, length))) => {
                        name.push_str(&format!("<{origin}>"));
                        let start = (*origin as usize).min(b.len());
                        let end = start.saturating_add(*length as usize).min(b.len());
                        Some(b[start..end].to_vec())
                    }
                    (b, _) => b,
                };
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
                match bytes {
                    Some(b) if literal8 => binary::string(&mut out, &b),
                    Some(b) => message::string(&mut out, &b),
                    None => out.extend_from_slice(b"NIL"),
                }
            }
            FetchAttr::Binary { part, partial, .. } => {
                out.extend_from_slice(format!("BINARY[{}]", binary::part_name(part)).as_bytes());
                match binary::part(raw, parsed.as_ref(), part).transpose()?.filter(|_| !gone) {
                    Some(b) => {
                        let b = match partial {
                            Some((origin, length)) => {
                                out.extend_from_slice(format!("<{origin}>").as_bytes());
                                let start = (*origin as usize).min(b.len());
                                &b[start..start.saturating_add(*length as usize).min(b.len())]
                            }
                            None => &b[..],
                        };
                        out.push(b' ');
                        binary::string(&mut out, b);
                    }
                    None => out.extend_from_slice(b" NIL"),
                }
            }
            FetchAttr::BinarySize { part } => {
                let size = binary::part(raw, parsed.as_ref(), part)
                    .transpose()?
                    .map_or(0, |b| b.len());
                out.extend_from_slice(format!("BINARY.SIZE[{}] {size}", binary::part_name(part)).as_bytes());
            }
        }
    }
    out.extend_from_slice(b")\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Unflagged, MODSEQ 3, dated the epoch.
    fn meta(uid: u32, size: usize) -> MessageMeta {
        MessageMeta {
            uid,
            flags: Flags::default(),
            modseq: 3,
            size: size as u64,
            internal_date: UNIX_EPOCH,
        }
    }

    proptest! {
        #[test]
        fn a_walk_finds_what_a_lookup_finds(
            present in proptest::collection::btree_set(1u32..200, 0..50),
            asked in proptest::collection::btree_set(1u32..200, 0..50),
        ) {
            let snapshot = Snapshot {
                uid_validity: 1,
                uid_next: 200,
                highest_modseq: 1,
                messages: Arc::new(present.iter().map(|&u| meta(u, 0)).collect()),
                keywords: Arc::default(),
            };
            let mut walk = Walk(&snapshot.messages);
            for uid in asked {
                prop_assert_eq!(walk.find(uid).map(|m| m.uid), meta_in(&snapshot, uid).map(|m| m.uid));
            }
        }
    }

    #[test]
    fn list_patterns() {
        assert!(list_match(b"*", b"Lists/rust"));
        assert!(list_match(b"%", b"Sent"));
        assert!(!list_match(b"%", b"Lists/rust"));
        assert!(list_match(b"Lists/%", b"Lists/rust"));
        assert!(list_match(b"L*t", b"Lists/rust"));
        assert!(!list_match(b"Sent", b"Sent2"));
    }

    #[test]
    fn flags_round_trip() {
        let f = to_flags(&["\\Seen".into(), "\\Recent".into(), "$Junk".into()]);
        assert!(f.seen && !f.deleted);
        assert_eq!(render_flags(&f, true), "(\\Seen \\Recent $Junk)");
        assert!(has_flag(&f, "$junk"));
        assert!(has_flag(&f, "\\SEEN"));
        assert!(!has_flag(&f, "\\Draft"));
    }

    #[test]
    fn header_attributes_render_the_same_from_the_cached_header() {
        let raw = b"From: A <a@example.org>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nTo: b@example.org\r\n\r\nbody\r\n";
        let header = &raw[..raw.len() - 6];
        let meta = meta(7, raw.len());
        let parsed = super::super::command::parse(
            b"1 FETCH 1 (ENVELOPE RFC822.HEADER BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (SUBJECT)] \
              BODY.PEEK[HEADER.FIELDS.NOT (TO)] RFC822.SIZE)",
        )
        .unwrap();
        let Command::Fetch { attrs, .. } = parsed.command else {
            panic!("not a FETCH")
        };
        assert_eq!(attrs.iter().map(Need::of_fetch).max(), Some(Need::Header));
        assert_eq!(
            render_fetch(1, &meta, false, Some(header), &attrs, false),
            render_fetch(1, &meta, false, Some(raw), &attrs, false)
        );
    }

    #[test]
    fn fetch_rendering() {
        let raw = b"Subject: hi\r\n\r\nbody\r\n";
        let meta = meta(7, raw.len());
        let attrs = [
            FetchAttr::Uid,
            FetchAttr::Rfc822Size,
            FetchAttr::Section {
                peek: true,
                section: Section::default(),
                partial: Some((2, 5)),
            },
            FetchAttr::InternalDate,
        ];
        let out = render_fetch(1, &meta, false, Some(raw), &attrs, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* 1 FETCH (UID 7 RFC822.SIZE 21 BODY[]<2> \"bject\" INTERNALDATE \" 1-Jan-1970 00:00:00 +0000\")\r\n"
        );
    }

    #[test]
    fn body_contents_with_nul_go_out_as_literal8_once_binary_is_used() {
        let raw = b"Subject: b\r\n\r\na\0b\r\n";
        let meta = meta(7, raw.len());
        let attrs = [FetchAttr::Section {
            peek: true,
            section: Section {
                part: Vec::new(),
                text: Some(SectionText::Text),
            },
            partial: None,
        }];
        let render = |literal8| render_fetch(1, &meta, false, Some(raw), &attrs, literal8).unwrap();
        assert_eq!(render(true), b"* 1 FETCH (BODY[TEXT] ~{5}\r\na\0b\r\n)\r\n");
        assert_eq!(render(false), b"* 1 FETCH (BODY[TEXT] {5}\r\na\0b\r\n)\r\n");
    }
}
