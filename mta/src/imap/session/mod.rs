//! One IMAP session: the state machine (not authenticated, authenticated,
//! selected) with its tokio shell, and the dispatch of commands to the
//! concerns in this folder as `impl Session` blocks: `auth` (STARTTLS,
//! LOGIN, AUTHENTICATE), `select` (SELECT/EXAMINE and the updates of the
//! selected mailbox), `mailboxes` (LIST, STATUS, APPEND, QUOTA, ...),
//! `search` (SEARCH, SORT, THREAD), `fetch`, `store` (STORE, COPY, MOVE,
//! EXPUNGE) and `idle`. Commands come from the bounded framer and parser;
//! mailbox work goes to the store on the blocking pool. What the client
//! knows of the selected mailbox is a pure [`View`].

mod auth;
pub(crate) mod fetch;
mod idle;
mod mailboxes;
mod search;
mod select;
mod store;

use super::command::{self, Command, MessageSet, Tagged};
use super::deflate::Compressed;
use super::framer::{Frame, Framer, Limits};
use super::parse::NameEncoding;
use super::response::{Code, Kind, Response, Status, Untagged};
use super::sequence::SequenceSet;
use super::view::View;
use crate::imap::query::epoch_secs;
use crate::net::{Connection, Io, ReadError};
use crate::service::Shared;
use crate::store::{Flags, Mailbox, Store, StoreError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Protocol errors (BAD) before the session is closed.
const MAX_ERRORS: u32 = 20;

/// Replies are flushed once this much is buffered (long FETCH responses).
const FLUSH_AT: usize = 256 << 10;

/// Why the session ends.
pub enum End {
    Logout,
    Closed,
    /// A system user's session goes on in a child of the privileged helper.
    HandOff(tokio::net::UnixStream),
}

type Flow = Result<(), End>;

struct User {
    name: String,
    store: Arc<Store>,
}

/// The selected mailbox and what its client has been told of it.
struct Selected {
    mailbox: Arc<Mailbox>,
    view: View,
}

impl std::ops::Deref for Selected {
    type Target = View;

    fn deref(&self) -> &View {
        &self.view
    }
}

impl std::ops::DerefMut for Selected {
    fn deref_mut(&mut self) -> &mut View {
        &mut self.view
    }
}

/// Run store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Io("(task)".into(), std::io::Error::other(e))))
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

/// The tagged NO, with its response code, for a store error.
fn store_no(tag: &str, e: &StoreError) -> Status {
    let no = Status::no(tag, e.to_string());
    match e {
        StoreError::NoSuchMailbox(_) => no.with(Code::Nonexistent),
        StoreError::Exists(_) => no.with(Code::AlreadyExists),
        StoreError::BadName(_) | StoreError::Inbox => no.with(Code::Cannot),
        StoreError::NoSuchMessage(_) => no,
        StoreError::TooManyKeywords => no.with(Code::Limit),
        StoreError::Io(..) => {
            tracing::error!("imap: store: {e}");
            Status::no(tag, "Temporary mailbox error").with(Code::Unavailable)
        }
    }
}

/// The tagged NO for a COPY, MOVE or APPEND whose destination failed: a
/// missing one is TRYCREATE, so the client may create it and retry.
fn dest_no(tag: &str, e: &StoreError) -> Status {
    match e {
        StoreError::NoSuchMailbox(m) => Status::no(tag, format!("No such mailbox: {m}")).with(Code::TryCreate),
        e => store_no(tag, e),
    }
}

fn read_only(tag: &str) -> Status {
    Status::no(tag, "Mailbox is read-only").with(Code::ReadOnly)
}

fn over_quota_no(tag: &str) -> Status {
    Status::no(tag, "Mailbox quota exceeded").with(Code::OverQuota)
}

pub struct Session {
    /// The stream, the framed input and the replies not yet sent.
    conn: Connection<Framer>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    tls: bool,
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
    /// COMPRESS=DEFLATE is on: the connection's stream is [`Compressed`].
    compressing: bool,
    /// The client has fetched BINARY items or APPENDed a literal8, so it
    /// reads literal8: BODY[] contents with NUL go out as `~{n}` (RFC 3516 §4.3).
    binary: bool,
}

impl Session {
    pub fn new(io: Box<dyn Io>, shared: Arc<Shared>, peer: SocketAddr, tls: bool) -> Session {
        Session {
            conn: Connection::new(io, Framer::new(Limits::UNAUTHENTICATED)),
            shared,
            peer,
            tls,
            errors: 0,
            user: None,
            selected: None,
            condstore: false,
            qresync: false,
            rev2: false,
            names: NameEncoding::ModifiedUtf7,
            saved: Vec::new(),
            compressing: false,
            binary: false,
        }
    }

    fn send(&mut self, response: impl Into<Response>) {
        response.into().encode(&mut self.conn.out);
    }

    fn capabilities(&self) -> Vec<String> {
        // LITERAL+ and not LITERAL-: LITERAL+ is the superset (RFC 7888), so it serves IMAP4rev2 too.
        let mut caps = vec!["IMAP4rev1", "IMAP4rev2", "SASL-IR", "ID", "ENABLE", "LITERAL+"];
        if self.user.is_none() {
            if !self.tls {
                caps.extend(["STARTTLS", "LOGINDISABLED"]);
            } else {
                caps.extend(["AUTH=PLAIN", "AUTH=LOGIN", "AUTH=SCRAM-SHA-256"]);
            }
            return caps.into_iter().map(String::from).collect();
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
        let mut caps: Vec<String> = caps.into_iter().map(String::from).collect();
        caps.push(format!("APPENDLIMIT={}", self.shared.config.imap.max_message_size));
        caps
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
        self.conn.flush().await.map_err(|_| End::Closed)
    }

    /// Read more input (flushing replies first); on timeout say BYE.
    async fn fill(&mut self) -> Flow {
        let timeout = self.timeout();
        match self.conn.fill(timeout).await {
            Ok(()) => Ok(()),
            Err(ReadError::Closed) => Err(End::Closed),
            Err(ReadError::Timeout) => {
                self.send(Status::bye("Autologout; idle for too long"));
                let _ = self.flush().await;
                Err(End::Closed)
            }
        }
    }

    async fn next_frame(&mut self) -> Result<Frame, End> {
        loop {
            if let Some(frame) = self.conn.input.next_frame() {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    pub async fn run(mut self) {
        let greeting = Status::untagged(Kind::Ok, format!("{} IMAP ready", self.shared.config.hostname))
            .with(Code::Capability(self.capabilities()));
        self.send(greeting);
        self.serve_to_end().await;
    }

    /// Serve an already-authenticated system user in the child the
    /// privileged helper started: answer the front's LOGIN or AUTHENTICATE
    /// (`tag`) with the store opened here, as the user.
    pub async fn resume(mut self, user: String, tag: &str, how: &str) {
        let _ = self.login_result(tag, Some(user), how).await;
        if self.user.is_none() {
            let _ = self.flush().await;
            return;
        }
        self.serve_to_end().await;
    }

    async fn serve_to_end(mut self) {
        let end = self.serve().await;
        let _ = self.flush().await;
        if let Err(End::HandOff(child)) = end {
            crate::privsep::client::relay(self.conn.into_io(), child).await;
            return;
        }
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
                Frame::Continue => self.send(Response::Continue("Ready for literal data".into())),
                Frame::TooLong { tag } => self.bad(tag.as_deref(), "Command line too long")?,
                Frame::TooBig { tag, fatal } => {
                    let limit = self.conn.input.limits.literals;
                    self.send(Status {
                        tag,
                        kind: Kind::No,
                        code: Some(Code::TooBig),
                        text: format!("Literal larger than {limit} bytes"),
                    });
                    if fatal {
                        self.send(Status::bye("Non-synchronizing literal too large"));
                        return Err(End::Closed);
                    }
                }
                Frame::Command(bytes) => match command::parse_with(&bytes, self.names) {
                    Ok(Tagged { tag, command }) => self.dispatch(&tag, command).await?,
                    Err(rejected) => self.refuse(Status::refusing(&rejected))?,
                },
            }
            if self.conn.out.len() > FLUSH_AT {
                self.flush().await?;
            }
        }
    }

    fn bad(&mut self, tag: Option<&str>, text: &str) -> Flow {
        self.refuse(Status {
            tag: tag.map(String::from),
            kind: Kind::Bad,
            code: None,
            text: text.into(),
        })
    }

    /// Answer a command refused; a BAD counts toward [`MAX_ERRORS`].
    fn refuse(&mut self, status: Status) -> Flow {
        let bad = status.kind == Kind::Bad;
        self.send(status);
        if !bad {
            return Ok(());
        }
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.send(Status::bye("Too many errors"));
            return Err(End::Closed);
        }
        Ok(())
    }

    async fn dispatch(&mut self, tag: &str, command: Command) -> Flow {
        let authenticated = self.user.is_some();
        let selected = self.selected.is_some();
        match command {
            Command::Capability => {
                self.send(Untagged::Capability(self.capabilities()));
                self.ok(tag, "CAPABILITY completed");
            }
            Command::Noop | Command::Check => {
                if selected {
                    self.update(true).await;
                }
                self.ok(tag, "completed");
            }
            Command::Logout => {
                self.send(Status::bye("Logging out"));
                self.ok(tag, "LOGOUT completed");
                return Err(End::Logout);
            }
            Command::StartTls => return self.starttls(tag).await,
            Command::Login { user, password } => self.login(tag, user, password).await?,
            Command::Authenticate { mechanism, initial } => self.authenticate(tag, &mechanism, initial).await?,
            Command::Id => {
                self.send(Untagged::Id(vec![("name".into(), "greyd-mta".into())]));
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
                self.send(Untagged::Enabled(enabled));
                self.ok(tag, "ENABLE completed");
            }
            Command::Namespace => {
                self.send(Untagged::Namespace {
                    personal: vec![(String::new(), '/')],
                });
                self.ok(tag, "NAMESPACE completed");
            }
            Command::Idle => self.idle(tag).await?,
            Command::Compress => {
                if self.compressing {
                    self.send(Status::no(tag, "Already compressing").with(Code::CompressionActive));
                } else {
                    self.ok(tag, "DEFLATE active");
                    self.flush().await?;
                    // Whatever the client sent after COMPRESS is already compressed.
                    let rest = self.conn.input.take();
                    let peer = self.peer;
                    self.conn.wrap(|io| Box::new(Compressed::new(io, peer, &rest)));
                    self.compressing = true;
                }
            }
            Command::GetQuota(root) => {
                if root.is_empty() {
                    self.quota(tag, None).await;
                } else {
                    self.send(Status::no(tag, "No such quota root").with(Code::Nonexistent));
                }
            }
            Command::GetQuotaRoot(mailbox) => self.quota(tag, Some(mailbox)).await,
            Command::SetQuota => self.send(Status::no(tag, "Quotas are set in the configuration").with(Code::Cannot)),
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
        self.send(Status::ok(tag, text));
    }

    fn done(&mut self, tag: &str, r: Result<(), StoreError>, text: &str) {
        match r {
            Ok(()) => self.ok(tag, text),
            Err(e) => self.send(store_no(tag, &e)),
        }
    }

    fn store(&self) -> Arc<Store> {
        Arc::clone(&self.user.as_ref().expect("authenticated").store)
    }

    fn selected(&self) -> &Selected {
        self.selected.as_ref().expect("selected")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn wire(s: Status) -> String {
        String::from_utf8(Response::from(s).to_bytes()).unwrap()
    }

    #[test]
    fn store_errors_become_a_no_with_the_code_a_client_acts_on() {
        let cases = [
            (
                StoreError::NoSuchMailbox("X".into()),
                "a NO [NONEXISTENT] no such mailbox: X",
            ),
            (
                StoreError::Exists("X".into()),
                "a NO [ALREADYEXISTS] mailbox already exists: X",
            ),
            (
                StoreError::BadName("..".into()),
                "a NO [CANNOT] invalid mailbox name: ..",
            ),
            (StoreError::Inbox, "a NO [CANNOT] INBOX cannot be deleted"),
            (StoreError::NoSuchMessage(4), "a NO no such message: UID 4"),
            (
                StoreError::TooManyKeywords,
                "a NO [LIMIT] too many keywords in this mailbox (Maildir has room for 26)",
            ),
            // The path stays in the log: the client learns only that it may retry.
            (
                StoreError::Io("/var/mail/x".into(), std::io::Error::other("disk")),
                "a NO [UNAVAILABLE] Temporary mailbox error",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(wire(store_no("a", &e)), format!("{text}\r\n"));
        }
    }

    /// A whole dialogue over an in-memory pipe: what a plaintext client
    /// sees before it may log in, byte for byte.
    #[tokio::test]
    async fn a_plaintext_client_is_sent_to_starttls_before_it_may_log_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config {
            hostname: "mx.test".into(),
            ..Default::default()
        };
        config.queue.dir = dir.path().join("queue");
        let shared = Arc::new(Shared::new(config, None, None).unwrap());
        let (mut client, server) = tokio::io::duplex(64 << 10);
        let peer = "127.0.0.1:40000".parse().unwrap();
        let session = tokio::spawn(Session::new(Box::new(server), shared, peer, false).run());
        client
            .write_all(b"a CAPABILITY\r\nb LOGIN u p\r\nc STARTTLS\r\nd SELECT INBOX\r\ne ENABLE\r\nf LOGOUT\r\n")
            .await
            .unwrap();
        let mut transcript = String::new();
        client.read_to_string(&mut transcript).await.unwrap();
        session.await.unwrap();
        let caps = "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE LITERAL+ STARTTLS LOGINDISABLED";
        assert_eq!(
            transcript,
            format!(
                "* OK [CAPABILITY {caps}] mx.test IMAP ready\r\n\
                 * CAPABILITY {caps}\r\n\
                 a OK CAPABILITY completed\r\n\
                 b NO [PRIVACYREQUIRED] Use STARTTLS first\r\n\
                 c NO TLS not available\r\n\
                 d BAD Log in first\r\n\
                 e BAD expected ' '\r\n\
                 * BYE Logging out\r\n\
                 f OK LOGOUT completed\r\n"
            )
        );
    }

    #[test]
    fn a_missing_destination_asks_the_client_to_create_it() {
        let missing = StoreError::NoSuchMailbox("Archive".into());
        assert_eq!(
            wire(dest_no("c", &missing)),
            "c NO [TRYCREATE] No such mailbox: Archive\r\n"
        );
        assert_eq!(
            wire(dest_no("c", &StoreError::TooManyKeywords)),
            wire(store_no("c", &StoreError::TooManyKeywords))
        );
        assert_eq!(wire(read_only("d")), "d NO [READ-ONLY] Mailbox is read-only\r\n");
        assert_eq!(wire(over_quota_no("e")), "e NO [OVERQUOTA] Mailbox quota exceeded\r\n");
    }
}
