//! Client commands: a framed command (see `framer`) parsed into a typed
//! [`Command`], built on the grammar primitives of `parse`. Pure; every
//! failure is a [`Rejected`], which `response` turns into the answer.

use super::parse::{NameEncoding, ParseError, Parser, Result, Unknown, is_atom_char};
use super::search::{self, SearchKey};
use super::sequence::SequenceSet;
use super::sequence_match::SequenceMatch;
use super::sort::{Criterion, SortKey};
use super::thread::Algorithm;

/// A command that did not parse, with its tag when it had a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Rejected {
    pub tag: Option<String>,
    #[source]
    pub error: ParseError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub tag: String,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreMode {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Size,
    HighestModSeq,
    /// Messages with \Deleted (IMAP4rev2).
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

/// `BODY[1.2.HEADER]`: part path (empty for the whole message) and what of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Flags,
    InternalDate,
    Rfc822Size,
    Envelope,
    /// BODY (non-extensible BODYSTRUCTURE).
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    Section {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    /// `BINARY[part]<partial>` (RFC 3516): the part with its transfer encoding undone.
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// `BINARY.SIZE[part]`: the size of that decoded content.
    BinarySize {
        part: Vec<u32>,
    },
}

/// The messages a command acts on: a sequence set, or `$`, the result
/// the last `SEARCH RETURN (SAVE)` saved (RFC 5182).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageSet {
    Set(SequenceSet),
    Saved,
}

/// One message of an APPEND (several with MULTIAPPEND, RFC 3502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<String>,
    pub date: Option<i64>,
    pub data: Vec<u8>,
    /// Sent as a plain `~{n}` literal8: the client speaks BINARY (RFC 3516 §4.3).
    pub literal8: bool,
}

/// SELECT's QRESYNC parameter: what the client knew (RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
    /// `(known-sequence-set known-uid-set)`.
    pub sequence_match: Option<SequenceMatch>,
}

/// LIST-EXTENDED selection and return options (RFC 5258, 6154, 5819).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// Selection: only subscribed names.
    pub subscribed: bool,
    /// Selection: only special-use folders.
    pub special_use: bool,
    /// Selection: also parents of matching children (CHILDINFO).
    pub recursive: bool,
    /// Return: mark \Subscribed names.
    pub return_subscribed: bool,
    /// Return: STATUS of each selectable name.
    pub status: Option<Vec<StatusItem>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    /// SEARCHRES: keep the result for `$`.
    Save,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    Login {
        user: String,
        password: String,
    },
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    Select {
        mailbox: String,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    },
    Create(String),
    Delete(String),
    Rename(String, String),
    Subscribe(String),
    Unsubscribe(String),
    /// LIST (with the LIST-EXTENDED and LIST-STATUS options) or LSUB.
    List {
        reference: String,
        patterns: Vec<String>,
        lsub: bool,
        options: ListOptions,
    },
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: String,
        messages: Vec<AppendMessage>,
    },
    Check,
    Close,
    Unselect,
    Expunge {
        uids: Option<MessageSet>,
    },
    Search {
        uid: bool,
        /// `Some` for ESEARCH (`SEARCH RETURN (...)`).
        returns: Option<Vec<SearchReturn>>,
        key: SearchKey,
    },
    Sort {
        uid: bool,
        criteria: Vec<Criterion>,
        key: SearchKey,
    },
    Thread {
        uid: bool,
        algorithm: Algorithm,
        key: SearchKey,
    },
    Fetch {
        uid: bool,
        set: MessageSet,
        attrs: Vec<FetchAttr>,
        changed_since: Option<u64>,
        /// QRESYNC's VANISHED modifier (UID FETCH with CHANGEDSINCE).
        vanished: bool,
    },
    Store {
        uid: bool,
        set: MessageSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: MessageSet,
        mailbox: String,
        remove: bool,
    },
    Idle,
    /// COMPRESS DEFLATE (the only mechanism).
    Compress,
    /// GETQUOTA: the quota root (ours is the empty name, the whole account).
    GetQuota(String),
    GetQuotaRoot(String),
    /// SETQUOTA is refused: the limit comes from the configuration.
    SetQuota,
    Enable(Vec<String>),
    Namespace,
    Id,
}

impl Parser<'_> {
    /// A sequence set or `$` (SEARCHRES), which stands alone.
    pub fn message_set(&mut self) -> Result<MessageSet> {
        if self.eat(b'$') {
            return Ok(MessageSet::Saved);
        }
        self.sequence_set().map(MessageSet::Set)
    }

    fn section(&mut self) -> Result<Section> {
        self.expect(b'[')?;
        let mut section = Section::default();
        if self.eat(b']') {
            return Ok(section);
        }
        loop {
            if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                let n = self.number()?;
                if n == 0 || section.part.len() == 32 {
                    return Err(ParseError::SectionPart);
                }
                section.part.push(n);
                if self.eat(b'.') {
                    continue;
                }
                break;
            }
            let word = self.run(|b| b.is_ascii_alphabetic() || b == b'.')?.to_ascii_uppercase();
            section.text = Some(match word.as_str() {
                "HEADER" => SectionText::Header,
                "TEXT" => SectionText::Text,
                "MIME" if !section.part.is_empty() => SectionText::Mime,
                "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                    self.sp()?;
                    let fields = self.list(|p| {
                        let f = p.astring()?;
                        String::from_utf8(f).map_err(|_| ParseError::HeaderFieldName)
                    })?;
                    if fields.is_empty() {
                        return Err(ParseError::EmptyHeaderFields);
                    }
                    SectionText::HeaderFields {
                        not: word.ends_with(".NOT"),
                        fields,
                    }
                }
                _ => return Err(ParseError::Section(word)),
            });
            break;
        }
        self.expect(b']')?;
        Ok(section)
    }

    /// `<origin.length>` after a section, if present.
    fn partial(&mut self) -> Result<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let origin = self.number()?;
        self.expect(b'.')?;
        let length = self.number()?;
        if length == 0 {
            return Err(ParseError::ZeroPartial);
        }
        self.expect(b'>')?;
        Ok(Some((origin, length)))
    }

    /// `[1.2]` of BINARY: part numbers only (RFC 3516 section-binary).
    fn binary_section(&mut self) -> Result<Vec<u32>> {
        let section = self.section()?;
        if section.text.is_some() {
            return Err(ParseError::BinaryPart);
        }
        Ok(section.part)
    }

    fn fetch_attr(&mut self) -> Result<FetchAttr> {
        let name = self
            .run(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'8')?
            .to_ascii_uppercase();
        Ok(match name.as_str() {
            "FLAGS" => FetchAttr::Flags,
            "INTERNALDATE" => FetchAttr::InternalDate,
            "RFC822.SIZE" => FetchAttr::Rfc822Size,
            "ENVELOPE" => FetchAttr::Envelope,
            "BODYSTRUCTURE" => FetchAttr::BodyStructure,
            "UID" => FetchAttr::Uid,
            "MODSEQ" => FetchAttr::ModSeq,
            "RFC822" => FetchAttr::Rfc822,
            "RFC822.HEADER" => FetchAttr::Rfc822Header,
            "RFC822.TEXT" => FetchAttr::Rfc822Text,
            "BODY" if self.peek() != Some(b'[') => FetchAttr::Body,
            "BODY" | "BODY.PEEK" => {
                let section = self.section()?;
                FetchAttr::Section {
                    peek: name == "BODY.PEEK",
                    section,
                    partial: self.partial()?,
                }
            }
            "BINARY" | "BINARY.PEEK" => {
                let part = self.binary_section()?;
                FetchAttr::Binary {
                    peek: name == "BINARY.PEEK",
                    part,
                    partial: self.partial()?,
                }
            }
            "BINARY.SIZE" => FetchAttr::BinarySize {
                part: self.binary_section()?,
            },
            _ => return Err(ParseError::Unknown(Unknown::FetchItem, name)),
        })
    }

    fn fetch_attrs(&mut self) -> Result<Vec<FetchAttr>> {
        use FetchAttr::*;
        if self.peek() == Some(b'(') {
            return self.list(Self::fetch_attr);
        }
        let save = self.pos();
        let word = self.atom().map(str::to_ascii_uppercase).unwrap_or_default();
        Ok(match word.as_str() {
            "ALL" => vec![Flags, InternalDate, Rfc822Size, Envelope],
            "FAST" => vec![Flags, InternalDate, Rfc822Size],
            "FULL" => vec![Flags, InternalDate, Rfc822Size, Envelope, Body],
            _ => {
                self.rewind(save);
                vec![self.fetch_attr()?]
            }
        })
    }

    fn status_item(&mut self) -> Result<StatusItem> {
        Ok(match self.keyword()?.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "SIZE" => StatusItem::Size,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "DELETED" => StatusItem::Deleted,
            other => return Err(ParseError::Unknown(Unknown::StatusItem, other.to_string())),
        })
    }

    /// FETCH modifiers: `(CHANGEDSINCE n [VANISHED])`, if present.
    fn fetch_modifiers(&mut self) -> Result<(Option<u64>, bool)> {
        let mut changed_since = None;
        let mut vanished = false;
        if self.eat(b' ') {
            self.list(|p| {
                match p.keyword()?.as_str() {
                    "CHANGEDSINCE" => {
                        p.sp()?;
                        changed_since = Some(p.number64()?);
                    }
                    "VANISHED" => vanished = true,
                    other => return Err(ParseError::Unknown(Unknown::FetchModifier, other.to_string())),
                }
                Ok(())
            })?;
        }
        if vanished && changed_since.is_none() {
            return Err(ParseError::VanishedWithoutChangedSince);
        }
        Ok((changed_since, vanished))
    }

    /// `(uidvalidity modseq [known-uids [(seqs uids)]])`
    fn qresync(&mut self) -> Result<Qresync> {
        self.sp()?;
        self.expect(b'(')?;
        let uid_validity = self.number()?;
        self.sp()?;
        let modseq = self.number64()?;
        let mut known_uids = None;
        let mut sequence_match = None;
        if self.eat(b' ') {
            if self.peek() != Some(b'(') {
                known_uids = Some(self.sequence_set()?);
                self.eat(b' ');
            }
            if self.peek() == Some(b'(') {
                self.expect(b'(')?;
                let seqs = self.sequence_set()?;
                self.sp()?;
                let uids = self.sequence_set()?;
                self.expect(b')')?;
                sequence_match = Some(SequenceMatch::new(seqs, uids)?);
            }
        }
        self.expect(b')')?;
        if uid_validity == 0 || modseq == 0 {
            return Err(ParseError::BadQresync);
        }
        Ok(Qresync {
            uid_validity,
            modseq,
            known_uids,
            sequence_match,
        })
    }

    fn search(&mut self, uid: bool) -> Result<Command> {
        let mut returns = None;
        let save = self.pos();
        if self.keyword().as_deref() == Ok("RETURN") {
            self.sp()?;
            returns = Some(self.list(|p| {
                Ok(match p.keyword()?.as_str() {
                    "MIN" => SearchReturn::Min,
                    "MAX" => SearchReturn::Max,
                    "ALL" => SearchReturn::All,
                    "COUNT" => SearchReturn::Count,
                    "SAVE" => SearchReturn::Save,
                    other => return Err(ParseError::Unknown(Unknown::ReturnOption, other.to_string())),
                })
            })?);
            self.sp()?;
        } else {
            self.rewind(save);
        }
        let save = self.pos();
        if self.keyword().as_deref() == Ok("CHARSET") {
            self.sp()?;
            let charset = self.astring()?;
            if !charset.eq_ignore_ascii_case(b"UTF-8") && !charset.eq_ignore_ascii_case(b"US-ASCII") {
                return Err(ParseError::BadCharset);
            }
            self.sp()?;
        } else {
            self.rewind(save);
        }
        let key = search::parse_keys(self)?;
        Ok(Command::Search { uid, returns, key })
    }

    /// A SORT/THREAD charset and the space after it.
    fn charset(&mut self) -> Result<()> {
        let charset = self.astring()?;
        if !charset.eq_ignore_ascii_case(b"UTF-8") && !charset.eq_ignore_ascii_case(b"US-ASCII") {
            return Err(ParseError::BadCharset);
        }
        self.sp()
    }

    fn uid_command(&mut self) -> Result<Command> {
        let name = self.keyword()?;
        self.sp()?;
        self.selected_command(&name, true)
    }

    fn selected_command(&mut self, name: &str, uid: bool) -> Result<Command> {
        Ok(match name {
            "FETCH" => {
                let set = self.message_set()?;
                self.sp()?;
                let attrs = self.fetch_attrs()?;
                let (changed_since, vanished) = self.fetch_modifiers()?;
                if vanished && !uid {
                    return Err(ParseError::VanishedWithoutUid);
                }
                Command::Fetch {
                    uid,
                    set,
                    attrs,
                    changed_since,
                    vanished,
                }
            }
            "STORE" => {
                let set = self.message_set()?;
                self.sp()?;
                let save = self.pos();
                let unchanged_since = if self.peek() == Some(b'(') {
                    let m = self.list(|p| {
                        if p.keyword()? != "UNCHANGEDSINCE" {
                            return Err(ParseError::ExpectedUnchangedSince);
                        }
                        p.sp()?;
                        p.number64()
                    })?;
                    self.sp()?;
                    m.first().copied()
                } else {
                    self.rewind(save);
                    None
                };
                let item = self
                    .run(|b| b.is_ascii_alphabetic() || b"+-.".contains(&b))?
                    .to_ascii_uppercase();
                let (mode, rest) = match item.as_bytes().first() {
                    Some(b'+') => (StoreMode::Add, &item[1..]),
                    Some(b'-') => (StoreMode::Remove, &item[1..]),
                    _ => (StoreMode::Replace, &item[..]),
                };
                let silent = match rest {
                    "FLAGS" => false,
                    "FLAGS.SILENT" => true,
                    _ => return Err(ParseError::Unknown(Unknown::StoreItem, item)),
                };
                self.sp()?;
                let flags = self.flags()?;
                Command::Store {
                    uid,
                    set,
                    mode,
                    silent,
                    flags,
                    unchanged_since,
                }
            }
            "COPY" | "MOVE" => {
                let set = self.message_set()?;
                self.sp()?;
                Command::Copy {
                    uid,
                    set,
                    mailbox: self.mailbox()?,
                    remove: name == "MOVE",
                }
            }
            "SEARCH" => self.search(uid)?,
            "THREAD" => {
                let algorithm = match self.keyword()?.as_str() {
                    "REFERENCES" => Algorithm::References,
                    "ORDEREDSUBJECT" => Algorithm::OrderedSubject,
                    other => return Err(ParseError::Unknown(Unknown::ThreadAlgorithm, other.to_string())),
                };
                self.sp()?;
                self.charset()?;
                Command::Thread {
                    uid,
                    algorithm,
                    key: search::parse_keys(self)?,
                }
            }
            "SORT" => {
                let mut reverse = false;
                let criteria = self.list(|p| {
                    let mut word = p.keyword()?;
                    if word == "REVERSE" {
                        p.sp()?;
                        word = p.keyword()?;
                        reverse = true;
                    }
                    let key =
                        SortKey::parse(&word).ok_or_else(|| ParseError::Unknown(Unknown::SortKey, word.clone()))?;
                    let c = Criterion { reverse, key };
                    reverse = false;
                    Ok(c)
                })?;
                if criteria.is_empty() {
                    return Err(ParseError::EmptySortCriteria);
                }
                self.sp()?;
                self.charset()?;
                Command::Sort {
                    uid,
                    criteria,
                    key: search::parse_keys(self)?,
                }
            }
            "EXPUNGE" if uid => Command::Expunge {
                uids: Some(self.message_set()?),
            },
            other => return Err(ParseError::Unknown(Unknown::UidCommand, other.to_string())),
        })
    }

    fn command(&mut self, name: &str) -> Result<Command> {
        let no_args = |p: &mut Self, c: Command| -> Result<Command> {
            p.end()?;
            Ok(c)
        };
        let command = match name {
            "CAPABILITY" => return no_args(self, Command::Capability),
            "NOOP" => return no_args(self, Command::Noop),
            "LOGOUT" => return no_args(self, Command::Logout),
            "STARTTLS" => return no_args(self, Command::StartTls),
            "CHECK" => return no_args(self, Command::Check),
            "CLOSE" => return no_args(self, Command::Close),
            "UNSELECT" => return no_args(self, Command::Unselect),
            "EXPUNGE" => return no_args(self, Command::Expunge { uids: None }),
            "IDLE" => return no_args(self, Command::Idle),
            "NAMESPACE" => return no_args(self, Command::Namespace),
            "ID" => {
                // The client's identification is only logged by other servers; accept NIL or a list.
                self.sp()?;
                if self.peek() == Some(b'(') {
                    self.list(|p| p.nstring().map(drop))?;
                } else if self.keyword()? != "NIL" {
                    return Err(ParseError::ExpectedNilOrList);
                }
                Command::Id
            }
            _ => {
                self.sp()?;
                match name {
                    "LOGIN" => {
                        let user = self.astring_utf8()?;
                        self.sp()?;
                        let password = self.astring_utf8()?;
                        Command::Login { user, password }
                    }
                    "AUTHENTICATE" => {
                        let mechanism = self.keyword()?;
                        let initial = if self.eat(b' ') {
                            Some(
                                self.run(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))?
                                    .to_string(),
                            )
                        } else {
                            None
                        };
                        Command::Authenticate { mechanism, initial }
                    }
                    "SELECT" | "EXAMINE" => {
                        let mailbox = self.mailbox()?;
                        let mut condstore = false;
                        let mut qresync = None;
                        if self.eat(b' ') {
                            self.list(|p| {
                                match p.keyword()?.as_str() {
                                    "CONDSTORE" => condstore = true,
                                    "QRESYNC" => qresync = Some(p.qresync()?),
                                    other => return Err(ParseError::SelectParameter(other.to_string())),
                                }
                                Ok(())
                            })?;
                        }
                        Command::Select {
                            mailbox,
                            read_only: name == "EXAMINE",
                            condstore,
                            qresync,
                        }
                    }
                    "CREATE" => Command::Create(self.mailbox()?),
                    "DELETE" => Command::Delete(self.mailbox()?),
                    "RENAME" => {
                        let from = self.mailbox()?;
                        self.sp()?;
                        Command::Rename(from, self.mailbox()?)
                    }
                    "SUBSCRIBE" => Command::Subscribe(self.mailbox()?),
                    "UNSUBSCRIBE" => Command::Unsubscribe(self.mailbox()?),
                    "LIST" | "LSUB" => {
                        let lsub = name == "LSUB";
                        let mut options = ListOptions::default();
                        if !lsub && self.peek() == Some(b'(') {
                            for o in self.list(Self::keyword)? {
                                match o.as_str() {
                                    "SUBSCRIBED" => options.subscribed = true,
                                    "SPECIAL-USE" => options.special_use = true,
                                    "RECURSIVEMATCH" => options.recursive = true,
                                    "REMOTE" => {}
                                    other => {
                                        return Err(ParseError::Unknown(Unknown::ListSelection, other.to_string()));
                                    }
                                }
                            }
                            if options.recursive && !options.subscribed {
                                return Err(ParseError::RecursiveMatchAlone);
                            }
                            self.sp()?;
                        }
                        let reference = self.list_mailbox()?;
                        self.sp()?;
                        let patterns = if !lsub && self.peek() == Some(b'(') {
                            self.list(Self::list_mailbox)?
                        } else {
                            vec![self.list_mailbox()?]
                        };
                        if !lsub && self.eat(b' ') {
                            if self.keyword()? != "RETURN" {
                                return Err(ParseError::ExpectedReturn);
                            }
                            self.sp()?;
                            self.list(|p| {
                                match p.keyword()?.as_str() {
                                    "SUBSCRIBED" => options.return_subscribed = true,
                                    "CHILDREN" | "SPECIAL-USE" => {}
                                    "STATUS" => {
                                        p.sp()?;
                                        options.status = Some(p.list(Self::status_item)?);
                                    }
                                    other => return Err(ParseError::Unknown(Unknown::ListReturn, other.to_string())),
                                }
                                Ok(())
                            })?;
                        }
                        Command::List {
                            reference,
                            patterns,
                            lsub,
                            options,
                        }
                    }
                    "STATUS" => {
                        let mailbox = self.mailbox()?;
                        self.sp()?;
                        let items = self.list(Self::status_item)?;
                        Command::Status { mailbox, items }
                    }
                    "APPEND" => {
                        let mailbox = self.mailbox()?;
                        self.sp()?;
                        let mut messages = vec![self.append_message()?];
                        // MULTIAPPEND: more messages follow, each after a space.
                        while self.eat(b' ') {
                            messages.push(self.append_message()?);
                        }
                        Command::Append { mailbox, messages }
                    }
                    "ENABLE" => {
                        let mut caps = vec![self.keyword()?];
                        while self.eat(b' ') {
                            caps.push(self.keyword()?);
                        }
                        Command::Enable(caps)
                    }
                    "COMPRESS" => {
                        if self.keyword()? != "DEFLATE" {
                            return Err(ParseError::CompressDeflateOnly);
                        }
                        Command::Compress
                    }
                    "GETQUOTA" => Command::GetQuota(self.astring_utf8()?),
                    "GETQUOTAROOT" => Command::GetQuotaRoot(self.mailbox()?),
                    "SETQUOTA" => {
                        self.skip_rest();
                        Command::SetQuota
                    }
                    "UID" => self.uid_command()?,
                    "FETCH" | "STORE" | "COPY" | "MOVE" | "SEARCH" | "SORT" | "THREAD" => {
                        self.selected_command(name, false)?
                    }
                    other => return Err(ParseError::Unknown(Unknown::Command, other.to_string())),
                }
            }
        };
        self.end()?;
        Ok(command)
    }

    /// `SP [flag-list SP] [date-time SP] (literal / literal8)`, the space before it already read.
    fn append_message(&mut self) -> Result<AppendMessage> {
        let flags = if self.peek() == Some(b'(') {
            let f = self.list(Self::flag)?;
            self.sp()?;
            f
        } else {
            Vec::new()
        };
        let date = if self.peek() == Some(b'"') {
            let d = self.date_time()?;
            self.sp()?;
            Some(d)
        } else {
            None
        };
        // UTF8=ACCEPT's `UTF8 (~{n} ...)` form (RFC 6855 §4): a message with UTF-8 headers.
        // The UTF8 form's literal8 is UTF8=ACCEPT syntax, no sign of BINARY.
        let (data, literal8) = if matches!(self.peek(), Some(b'U' | b'u')) {
            if self.keyword()? != "UTF8" {
                return Err(ParseError::ExpectedAppendData);
            }
            self.sp()?;
            self.expect(b'(')?;
            self.expect(b'~')?;
            self.expect(b'{')?;
            let data = self.literal_rest()?;
            self.expect(b')')?;
            (data, false)
        } else {
            self.literal_or_literal8()?
        };
        Ok(AppendMessage {
            flags,
            date,
            data,
            literal8,
        })
    }
}

/// Parse one framed command of an IMAP4rev1 session (modified UTF-7 names).
pub fn parse(input: &[u8]) -> std::result::Result<Tagged, Rejected> {
    parse_with(input, NameEncoding::ModifiedUtf7)
}

/// Parse one framed command, mailbox names in `names`.
pub fn parse_with(input: &[u8], names: NameEncoding) -> std::result::Result<Tagged, Rejected> {
    let mut p = Parser::new(input, names);
    let tag = match p.run(|b| is_atom_char(b) && b != b'+' || b == b']') {
        Ok(t) => t.to_string(),
        Err(_) => {
            return Err(Rejected {
                tag: None,
                error: ParseError::MissingTag,
            });
        }
    };
    let fail = |error| Rejected {
        tag: Some(tag.clone()),
        error,
    };
    p.sp().map_err(fail)?;
    let name = p.keyword().map_err(fail)?;
    let command = p.command(&name).map_err(fail)?;
    if p.bad_name() {
        return Err(fail(ParseError::MailboxName(p.names())));
    }
    Ok(Tagged { tag, command })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(s: &str) -> Command {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}")).command
    }

    fn bad(s: &str) -> Rejected {
        parse(s.as_bytes()).expect_err(s)
    }

    #[test]
    fn undecodable_mailbox_names_are_no_not_bad() {
        for s in [
            "a SELECT \"&Jjo\"",
            "a STATUS &Jjo (MESSAGES)",
            "a CREATE \"x&AGE\"",
            "a LIST \"\" \"&*\"",
        ] {
            let e = bad(s);
            assert!(matches!(e.error, ParseError::MailboxName(_)), "{s}: {e}");
            assert_eq!(e.tag.as_deref(), Some("a"));
        }
        // Valid modified UTF-7 with atom-specials parses: the store then says NO.
        assert_eq!(
            cmd("a SELECT \"a(b)%\\\"{c\""),
            Command::Select {
                mailbox: "a(b)%\"{c".into(),
                read_only: false,
                condstore: false,
                qresync: None,
            }
        );
        assert_eq!(bad("a SELECT").error, ParseError::Expected(' '));
    }

    #[test]
    fn simple_commands() {
        assert_eq!(cmd("a CAPABILITY"), Command::Capability);
        assert_eq!(cmd("a noop"), Command::Noop);
        assert_eq!(
            cmd("a LOGIN bob \"p a\\\"ss\""),
            Command::Login {
                user: "bob".into(),
                password: "p a\"ss".into()
            }
        );
        assert_eq!(
            cmd("a LOGIN {3}\r\nbob {4+}\r\n{}\"x"),
            Command::Login {
                user: "bob".into(),
                password: "{}\"x".into()
            }
        );
        assert_eq!(
            cmd("a AUTHENTICATE plain AGJvYgBwdw=="),
            Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some("AGJvYgBwdw==".into())
            }
        );
        assert_eq!(
            cmd("a select inbox (CONDSTORE)"),
            Command::Select {
                mailbox: "INBOX".into(),
                read_only: false,
                condstore: true,
                qresync: None
            }
        );
        assert_eq!(
            cmd("a SELECT x (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:5 3:7)))"),
            Command::Select {
                mailbox: "x".into(),
                read_only: false,
                condstore: false,
                qresync: Some(Qresync {
                    uid_validity: 67890007,
                    modseq: 90060115194045000,
                    known_uids: Some(SequenceSet::parse("41:211,214:541").unwrap()),
                    sequence_match: Some(
                        SequenceMatch::new(SequenceSet::parse("1:5").unwrap(), SequenceSet::parse("3:7").unwrap())
                            .unwrap()
                    )
                })
            }
        );
        assert!(matches!(
            cmd("a UID FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)"),
            Command::Fetch {
                changed_since: Some(5),
                vanished: true,
                ..
            }
        ));
        assert!(parse(b"a FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)").is_err());
        assert!(parse(b"a UID FETCH 1:* FLAGS (VANISHED)").is_err());
        assert_eq!(cmd("a CREATE Entw&APw-rfe"), Command::Create("Entwürfe".into()));
        assert_eq!(
            cmd("a LIST \"\" *"),
            Command::List {
                reference: "".into(),
                patterns: vec!["*".into()],
                lsub: false,
                options: ListOptions::default()
            }
        );
        assert_eq!(
            cmd("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Lists/%\") RETURN (CHILDREN STATUS (MESSAGES))"),
            Command::List {
                reference: "".into(),
                patterns: vec!["INBOX".into(), "Lists/%".into()],
                lsub: false,
                options: ListOptions {
                    subscribed: true,
                    recursive: true,
                    status: Some(vec![StatusItem::Messages]),
                    ..ListOptions::default()
                }
            }
        );
        assert!(parse(b"a LIST (RECURSIVEMATCH) \"\" *").is_err());
        assert!(parse(b"a LSUB (SUBSCRIBED) \"\" *").is_err());
        assert_eq!(
            cmd("a STATUS Sent (MESSAGES UIDNEXT)"),
            Command::Status {
                mailbox: "Sent".into(),
                items: vec![StatusItem::Messages, StatusItem::UidNext]
            }
        );
        assert_eq!(
            cmd("a APPEND Drafts (\\Seen \\draft) \"17-Jul-1996 02:44:25 -0700\" {5}\r\nhello"),
            Command::Append {
                mailbox: "Drafts".into(),
                messages: vec![AppendMessage {
                    flags: vec!["\\Seen".into(), "\\Draft".into()],
                    date: Some(837596665),
                    data: b"hello".to_vec(),
                    literal8: false
                }]
            }
        );
        assert_eq!(cmd("a ID NIL"), Command::Id);
        assert_eq!(cmd("a ID (\"name\" \"x\" \"version\" NIL)"), Command::Id);
        assert_eq!(cmd("a ENABLE CONDSTORE"), Command::Enable(vec!["CONDSTORE".into()]));
        assert_eq!(cmd("a GETQUOTAROOT inbox"), Command::GetQuotaRoot("INBOX".into()));
        assert_eq!(cmd("a GETQUOTA \"\""), Command::GetQuota("".into()));
        assert_eq!(cmd("a compress deflate"), Command::Compress);
        assert!(parse(b"a COMPRESS GZIP").is_err());
        assert_eq!(cmd("a SETQUOTA \"\" (STORAGE 10)"), Command::SetQuota);
    }

    #[test]
    fn selected_commands() {
        assert_eq!(
            cmd("a UID FETCH 1:* (FLAGS BODY.PEEK[1.HEADER.FIELDS (From To)]<0.100>) (CHANGEDSINCE 7)"),
            Command::Fetch {
                uid: true,
                set: MessageSet::Set(SequenceSet::parse("1:*").unwrap()),
                attrs: vec![
                    FetchAttr::Flags,
                    FetchAttr::Section {
                        peek: true,
                        section: Section {
                            part: vec![1],
                            text: Some(SectionText::HeaderFields {
                                not: false,
                                fields: vec!["From".into(), "To".into()]
                            })
                        },
                        partial: Some((0, 100))
                    }
                ],
                changed_since: Some(7),
                vanished: false
            }
        );
        assert_eq!(
            cmd("a FETCH 2 full"),
            Command::Fetch {
                uid: false,
                set: MessageSet::Set(SequenceSet::parse("2").unwrap()),
                attrs: vec![
                    FetchAttr::Flags,
                    FetchAttr::InternalDate,
                    FetchAttr::Rfc822Size,
                    FetchAttr::Envelope,
                    FetchAttr::Body
                ],
                changed_since: None,
                vanished: false
            }
        );
        assert!(
            matches!(cmd("a FETCH 1 BODY[]"), Command::Fetch { attrs, .. } if attrs == [FetchAttr::Section { peek: false, section: Section::default(), partial: None }])
        );
        assert_eq!(
            cmd("a STORE 1,3 +FLAGS.SILENT (\\Deleted $Junk)"),
            Command::Store {
                uid: false,
                set: MessageSet::Set(SequenceSet::parse("1,3").unwrap()),
                mode: StoreMode::Add,
                silent: true,
                flags: vec!["\\Deleted".into(), "$Junk".into()],
                unchanged_since: None
            }
        );
        assert!(matches!(
            cmd("a UID STORE 5 (UNCHANGEDSINCE 9) FLAGS \\Seen"),
            Command::Store {
                unchanged_since: Some(9),
                mode: StoreMode::Replace,
                ..
            }
        ));
        assert_eq!(
            cmd("a UID MOVE 4:5 Trash"),
            Command::Copy {
                uid: true,
                set: MessageSet::Set(SequenceSet::parse("4:5").unwrap()),
                mailbox: "Trash".into(),
                remove: true
            }
        );
        assert_eq!(
            cmd("a UID EXPUNGE 3"),
            Command::Expunge {
                uids: Some(MessageSet::Set(SequenceSet::parse("3").unwrap()))
            }
        );
        assert!(matches!(
            cmd("a UID SORT (REVERSE DATE SUBJECT) UTF-8 ALL"),
            Command::Sort { uid: true, criteria, key: SearchKey::All }
                if criteria == [Criterion { reverse: true, key: SortKey::Date }, Criterion { reverse: false, key: SortKey::Subject }]
        ));
        assert!(parse(b"a SORT () UTF-8 ALL").is_err());
        assert!(matches!(
            cmd("a UID THREAD REFERENCES UTF-8 ALL"),
            Command::Thread {
                uid: true,
                algorithm: Algorithm::References,
                key: SearchKey::All
            }
        ));
        assert!(parse(b"a THREAD REFS UTF-8 ALL").is_err());
        assert!(matches!(
            cmd("a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 UNSEEN"),
            Command::Search { uid: true, returns: Some(r), key: SearchKey::Not(k) } if r == [SearchReturn::Min, SearchReturn::Count] && *k == SearchKey::Flag("\\Seen".into())
        ));
    }

    #[test]
    fn rev2_grammar() {
        assert_eq!(
            cmd("a APPEND x (\\Seen) {1+}\r\nA ~{2}\r\nB\0 \"17-Jul-1996 02:44:25 -0700\" {1}\r\nC"),
            Command::Append {
                mailbox: "x".into(),
                messages: vec![
                    AppendMessage {
                        flags: vec!["\\Seen".into()],
                        date: None,
                        data: b"A".to_vec(),
                        literal8: false
                    },
                    AppendMessage {
                        flags: vec![],
                        date: None,
                        data: b"B\0".to_vec(),
                        literal8: true
                    },
                    AppendMessage {
                        flags: vec![],
                        date: Some(837596665),
                        data: b"C".to_vec(),
                        literal8: false
                    },
                ]
            }
        );
        assert!(matches!(
            cmd("a UID FETCH $ (BINARY.PEEK[1.2]<0.10> BINARY.SIZE[1] BINARY[])"),
            Command::Fetch { uid: true, set: MessageSet::Saved, attrs, .. } if attrs == [
                FetchAttr::Binary { peek: true, part: vec![1, 2], partial: Some((0, 10)) },
                FetchAttr::BinarySize { part: vec![1] },
                FetchAttr::Binary { peek: false, part: vec![], partial: None },
            ]
        ));
        assert!(matches!(
            cmd("a STORE $ +FLAGS \\Seen"),
            Command::Store {
                set: MessageSet::Saved,
                ..
            }
        ));
        assert!(matches!(
            cmd("a MOVE $ Trash"),
            Command::Copy {
                set: MessageSet::Saved,
                ..
            }
        ));
        assert!(matches!(
            cmd("a UID EXPUNGE $"),
            Command::Expunge {
                uids: Some(MessageSet::Saved)
            }
        ));
        assert!(matches!(
            cmd("a SEARCH RETURN (SAVE MIN) OR $ UID $"),
            Command::Search { returns: Some(r), key: SearchKey::Or(a, b), .. }
                if r == [SearchReturn::Save, SearchReturn::Min] && *a == SearchKey::Saved && *b == SearchKey::Saved
        ));
        assert_eq!(
            cmd("a STATUS x (DELETED SIZE)"),
            Command::Status {
                mailbox: "x".into(),
                items: vec![StatusItem::Deleted, StatusItem::Size]
            }
        );
        assert!(matches!(
            cmd("a APPEND x UTF8 (~{2+}\r\nhi)"),
            Command::Append { messages, .. } if messages[0].data == b"hi"
        ));
        assert_eq!(
            parse_with("a SELECT \"Entwürfe&\"".as_bytes(), NameEncoding::Utf8)
                .unwrap()
                .command,
            cmd("a SELECT Entw&APw-rfe&-")
        );
        assert_eq!(
            parse_with(b"a LIST \"\" \"&*\"", NameEncoding::Utf8).unwrap().command,
            cmd("a LIST \"\" \"&-*\"")
        );
        assert!(parse_with(b"a SELECT \"\xff\"", NameEncoding::Utf8).is_err());
        assert!(parse(b"a SELECT \"\xc3\xbc\"").is_err(), "IMAP4rev1 names are 7-bit");
        for s in [
            "a FETCH $,1 FLAGS",
            "a FETCH 1:$ FLAGS",
            "a FETCH 1 BINARY[1.HEADER]",
            "a FETCH 1 BINARY[1]<0.0>",
            "a LOGIN ~{3}\r\nbob pw",
            "a APPEND x {1}\r\nA ",
            "a APPEND x ~{5}\r\nAB",
            "a APPEND x UTF8 ({2}\r\nhi)",
            "a APPEND x UTF9 (~{2}\r\nhi)",
        ] {
            assert!(parse(s.as_bytes()).is_err(), "{s}");
        }
    }

    #[test]
    fn errors_keep_the_tag() {
        assert_eq!(bad("a17 FROB").tag.as_deref(), Some("a17"));
        assert_eq!(bad("").tag, None);
        assert_eq!(bad("+x NOOP").tag, None);
        for s in [
            "a NOOP extra",
            "a LOGIN bob",
            "a FETCH 0 FLAGS",
            "a FETCH 1 (FLAGS",
            "a FETCH 1 BODY[0]",
            "a FETCH 1 BODY[]<1.0>",
            "a STORE 1 FLAGS (\\Bogus)",
            "a APPEND INBOX {10}\r\nshort",
            "a SEARCH CHARSET KOI8-R ALL",
            "a SELECT &Jjo",
            "a LOGIN \"unterminated",
            "a UID FROB 1",
        ] {
            assert!(parse(s.as_bytes()).is_err(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&b);
        }

        /// Any number of messages, as literals or literal8s, come back as they were sent.
        #[test]
        fn multiappend_round_trips(
            messages in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..40), any::<bool>()), 1..5)
        ) {
            let mut command = b"t APPEND INBOX".to_vec();
            for (data, literal8) in &messages {
                let tilde = if *literal8 { "~" } else { "" };
                command.extend_from_slice(format!(" {tilde}{{{}}}\r\n", data.len()).as_bytes());
                command.extend_from_slice(data);
            }
            let Command::Append { messages: parsed, .. } = parse(&command).unwrap().command else {
                panic!("not an APPEND");
            };
            let sent: Vec<(&Vec<u8>, bool)> = messages.iter().map(|m| (&m.0, m.1)).collect();
            let got: Vec<(&Vec<u8>, bool)> = parsed.iter().map(|m| (&m.data, m.literal8)).collect();
            prop_assert_eq!(got, sent);
        }

        #[test]
        fn never_panics_on_plausible_commands(
            name in prop::sample::select(vec![
                "FETCH 1:* ", "UID SEARCH ", "STORE 1 +FLAGS ", "APPEND x ", "LIST ", "SEARCH OR ",
                "FETCH $ ", "FETCH 1 BINARY", "SEARCH RETURN (SAVE) ", "STATUS x ",
            ]),
            rest in "[ ()\\[\\]<>.*:,$~0-9A-Za-z\\\\\"{}+\r\n-]{0,60}",
        ) {
            let _ = parse(format!("t {name}{rest}").as_bytes());
        }
    }
}
