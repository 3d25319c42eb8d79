//! What the server says, as typed values: tagged and untagged status
//! responses ([`Status`] with its [`Code`]), untagged data ([`Untagged`])
//! and continuation requests, and the one encoder that writes them as
//! bytes (strings quoted or sent as literals, literal8 where asked).
//! The session builds these values; nothing else writes response syntax.

use super::command::Rejected;
use super::parse::ParseError;
use super::{binary, message, sequence};

/// The condition of a status response (RFC 9051 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    No,
    Bad,
    Bye,
}

/// A response code, the bracketed part of a status response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    AlreadyExists,
    AppendUid {
        validity: u32,
        uids: Vec<u32>,
    },
    AuthenticationFailed,
    /// The charsets we do know.
    BadCharset(Vec<String>),
    Cannot,
    Capability(Vec<String>),
    Closed,
    CompressionActive,
    CopyUid {
        validity: u32,
        source: Vec<u32>,
        dest: Vec<u32>,
    },
    ExpungeIssued,
    HighestModSeq(u64),
    Limit,
    /// RFC 7162 §3.1.3: the messages a conditional STORE left alone.
    Modified(Vec<u32>),
    Nonexistent,
    OverQuota,
    PermanentFlags(Vec<String>),
    PrivacyRequired,
    ReadOnly,
    ReadWrite,
    TooBig,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unavailable,
    UnknownCte,
    Unseen(u32),
}

/// `tag OK [CODE] text`, or untagged (`*`) when `tag` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub tag: Option<String>,
    pub kind: Kind,
    pub code: Option<Code>,
    pub text: String,
}

impl Status {
    pub fn tagged(tag: &str, kind: Kind, text: impl Into<String>) -> Status {
        Status {
            tag: Some(tag.to_string()),
            kind,
            code: None,
            text: text.into(),
        }
    }

    pub fn untagged(kind: Kind, text: impl Into<String>) -> Status {
        Status {
            tag: None,
            kind,
            code: None,
            text: text.into(),
        }
    }

    pub fn ok(tag: &str, text: impl Into<String>) -> Status {
        Status::tagged(tag, Kind::Ok, text)
    }

    pub fn no(tag: &str, text: impl Into<String>) -> Status {
        Status::tagged(tag, Kind::No, text)
    }

    pub fn bye(text: impl Into<String>) -> Status {
        Status::untagged(Kind::Bye, text)
    }

    /// The answer to a command that did not parse: BAD with the error's
    /// text, or NO [NONEXISTENT] for a mailbox name that cannot decode (no
    /// such mailbox can exist, so the command is not malformed).
    pub fn refusing(rejected: &Rejected) -> Status {
        let (kind, code) = match rejected.error {
            ParseError::MailboxName(_) => (Kind::No, Some(Code::Nonexistent)),
            ParseError::BadCharset => (
                Kind::Bad,
                Some(Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()])),
            ),
            _ => (Kind::Bad, None),
        };
        Status {
            tag: rejected.tag.clone(),
            kind,
            code,
            text: rejected.error.to_string(),
        }
    }

    pub fn with(self, code: Code) -> Status {
        Status {
            code: Some(code),
            ..self
        }
    }
}

/// One item of a `* n FETCH (...)` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    Uid(u32),
    Flags(Vec<String>),
    ModSeq(u64),
    /// Seconds since the epoch.
    InternalDate(u64),
    Rfc822Size(u64),
    /// The parenthesised envelope in wire form, as `message::envelope` writes it.
    Envelope(Vec<u8>),
    /// BODY or (`extended`) BODYSTRUCTURE, in wire form as `message::body_structure` writes it.
    Body {
        extended: bool,
        structure: Vec<u8>,
    },
    /// `name contents`: RFC822*, `BODY[section]<origin>` and `BINARY[part]<origin>`.
    /// `None` is NIL; with `literal8`, contents holding NUL go out as `~{n}`.
    Contents {
        name: String,
        data: Option<Vec<u8>>,
        literal8: bool,
    },
    /// `BINARY.SIZE[part] n`.
    BinarySize {
        part: String,
        size: usize,
    },
}

/// One item of an ESEARCH response (RFC 4731, RFC 7162 §3.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ESearchItem {
    Min(u32),
    Max(u32),
    All(Vec<u32>),
    Count(usize),
    ModSeq(u64),
}

/// Untagged data responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untagged {
    Capability(Vec<String>),
    Enabled(Vec<String>),
    /// RFC 2971 field/value pairs.
    Id(Vec<(String, String)>),
    /// The personal namespaces as (prefix, delimiter); we offer no other
    /// users' or shared namespaces, so those are NIL.
    Namespace {
        personal: Vec<(String, char)>,
    },
    Flags(Vec<String>),
    Exists(u32),
    Recent(u32),
    Expunge(u32),
    Vanished {
        earlier: bool,
        uids: Vec<u32>,
    },
    Fetch {
        seq: u32,
        items: Vec<FetchItem>,
    },
    /// LIST or (`lsub`) LSUB; `name` is already in the session's name encoding.
    List {
        lsub: bool,
        attributes: Vec<&'static str>,
        delimiter: char,
        name: String,
        /// RFC 5258 CHILDINFO ("SUBSCRIBED") extended data.
        child_info: bool,
    },
    Status {
        mailbox: String,
        items: Vec<(&'static str, u64)>,
    },
    QuotaRoot {
        mailbox: String,
        roots: Vec<String>,
    },
    /// (resource, usage, limit) triples.
    Quota {
        root: String,
        resources: Vec<(&'static str, u64, u64)>,
    },
    Search {
        numbers: Vec<u32>,
        modseq: Option<u64>,
    },
    ESearch {
        tag: String,
        uid: bool,
        items: Vec<ESearchItem>,
    },
    Sort(Vec<u32>),
    /// The threads in the parenthesised form `thread::thread` gives.
    Thread(String),
}

/// Everything the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Status(Status),
    Data(Untagged),
    /// `+ text`: go on (a literal, IDLE, a SASL challenge).
    Continue(String),
}

impl From<Status> for Response {
    fn from(s: Status) -> Response {
        Response::Status(s)
    }
}

impl From<Untagged> for Response {
    fn from(u: Untagged) -> Response {
        Response::Data(u)
    }
}

impl Response {
    /// Append the wire form, CRLF included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Response::Status(s) => s.encode(out),
            Response::Data(u) => u.encode(out),
            Response::Continue(text) => {
                out.extend_from_slice(b"+ ");
                out.extend_from_slice(text.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The wire form as one buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn push(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
}

/// ` a b c` (each word after a space).
fn words<S: AsRef<str>>(out: &mut Vec<u8>, words: &[S]) {
    for w in words {
        out.push(b' ');
        push(out, w.as_ref());
    }
}

/// `(a b c)`
fn list<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    message::parenthesized(out, items, |out, w| push(out, w.as_ref()));
}

fn numbers(out: &mut Vec<u8>, numbers: &[u32]) {
    for n in numbers {
        push(out, &format!(" {n}"));
    }
}

impl Status {
    fn encode(&self, out: &mut Vec<u8>) {
        push(out, self.tag.as_deref().unwrap_or("*"));
        push(
            out,
            match self.kind {
                Kind::Ok => " OK ",
                Kind::No => " NO ",
                Kind::Bad => " BAD ",
                Kind::Bye => " BYE ",
            },
        );
        if let Some(code) = &self.code {
            out.push(b'[');
            code.encode(out);
            push(out, "] ");
        }
        push(out, &self.text);
    }
}

impl Code {
    fn encode(&self, out: &mut Vec<u8>) {
        let atom = match self {
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::AuthenticationFailed => "AUTHENTICATIONFAILED",
            Code::Cannot => "CANNOT",
            Code::Closed => "CLOSED",
            Code::CompressionActive => "COMPRESSIONACTIVE",
            Code::ExpungeIssued => "EXPUNGEISSUED",
            Code::Limit => "LIMIT",
            Code::Nonexistent => "NONEXISTENT",
            Code::OverQuota => "OVERQUOTA",
            Code::PrivacyRequired => "PRIVACYREQUIRED",
            Code::ReadOnly => "READ-ONLY",
            Code::ReadWrite => "READ-WRITE",
            Code::TooBig => "TOOBIG",
            Code::TryCreate => "TRYCREATE",
            Code::Unavailable => "UNAVAILABLE",
            Code::UnknownCte => "UNKNOWN-CTE",
            Code::AppendUid { validity, uids } => {
                return push(out, &format!("APPENDUID {validity} {}", sequence::render(uids)));
            }
            Code::BadCharset(charsets) => {
                push(out, "BADCHARSET ");
                return list(out, charsets);
            }
            Code::Capability(caps) => {
                push(out, "CAPABILITY");
                return words(out, caps);
            }
            Code::CopyUid { validity, source, dest } => {
                let (s, d) = (sequence::render(source), sequence::render(dest));
                return push(out, &format!("COPYUID {validity} {s} {d}"));
            }
            Code::HighestModSeq(m) => return push(out, &format!("HIGHESTMODSEQ {m}")),
            Code::Modified(set) => return push(out, &format!("MODIFIED {}", sequence::render(set))),
            Code::PermanentFlags(flags) => {
                push(out, "PERMANENTFLAGS ");
                return list(out, flags);
            }
            Code::UidNext(n) => return push(out, &format!("UIDNEXT {n}")),
            Code::UidValidity(n) => return push(out, &format!("UIDVALIDITY {n}")),
            Code::Unseen(n) => return push(out, &format!("UNSEEN {n}")),
        };
        push(out, atom);
    }
}

impl FetchItem {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FetchItem::Uid(u) => push(out, &format!("UID {u}")),
            FetchItem::Flags(flags) => {
                push(out, "FLAGS ");
                list(out, flags);
            }
            FetchItem::ModSeq(m) => push(out, &format!("MODSEQ ({m})")),
            FetchItem::InternalDate(secs) => {
                push(out, "INTERNALDATE ");
                message::string(out, crate::datetime::imap(*secs).as_bytes());
            }
            FetchItem::Rfc822Size(n) => push(out, &format!("RFC822.SIZE {n}")),
            FetchItem::Envelope(wire) => {
                push(out, "ENVELOPE ");
                out.extend_from_slice(wire);
            }
            FetchItem::Body { extended, structure } => {
                push(out, if *extended { "BODYSTRUCTURE " } else { "BODY " });
                out.extend_from_slice(structure);
            }
            FetchItem::Contents { name, data, literal8 } => {
                push(out, name);
                out.push(b' ');
                match data {
                    Some(b) if *literal8 => binary::string(out, b),
                    Some(b) => message::string(out, b),
                    None => push(out, "NIL"),
                }
            }
            FetchItem::BinarySize { part, size } => push(out, &format!("BINARY.SIZE[{part}] {size}")),
        }
    }
}

impl Untagged {
    fn encode(&self, out: &mut Vec<u8>) {
        push(out, "* ");
        match self {
            Untagged::Capability(caps) => {
                push(out, "CAPABILITY");
                words(out, caps);
            }
            Untagged::Enabled(caps) => {
                push(out, "ENABLED");
                words(out, caps);
            }
            Untagged::Id(fields) => {
                push(out, "ID ");
                message::parenthesized(out, fields, |out, (k, v)| {
                    message::string(out, k.as_bytes());
                    out.push(b' ');
                    message::string(out, v.as_bytes());
                });
            }
            Untagged::Namespace { personal } => {
                push(out, "NAMESPACE (");
                for (prefix, delimiter) in personal {
                    out.push(b'(');
                    message::string(out, prefix.as_bytes());
                    out.push(b' ');
                    message::string(out, delimiter.to_string().as_bytes());
                    out.push(b')');
                }
                push(out, ") NIL NIL");
            }
            Untagged::Flags(flags) => {
                push(out, "FLAGS ");
                list(out, flags);
            }
            Untagged::Exists(n) => push(out, &format!("{n} EXISTS")),
            Untagged::Recent(n) => push(out, &format!("{n} RECENT")),
            Untagged::Expunge(n) => push(out, &format!("{n} EXPUNGE")),
            Untagged::Vanished { earlier, uids } => {
                push(out, if *earlier { "VANISHED (EARLIER) " } else { "VANISHED " });
                push(out, &sequence::render(uids));
            }
            Untagged::Fetch { seq, items } => {
                push(out, &format!("{seq} FETCH "));
                message::parenthesized(out, items, |out, item| item.encode(out));
            }
            Untagged::List {
                lsub,
                attributes,
                delimiter,
                name,
                child_info,
            } => {
                push(out, if *lsub { "LSUB " } else { "LIST " });
                list(out, attributes);
                out.push(b' ');
                message::string(out, delimiter.to_string().as_bytes());
                out.push(b' ');
                message::string(out, name.as_bytes());
                if *child_info {
                    push(out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
                }
            }
            Untagged::Status { mailbox, items } => {
                push(out, "STATUS ");
                message::string(out, mailbox.as_bytes());
                let items: Vec<String> = items.iter().map(|(k, v)| format!("{k} {v}")).collect();
                out.push(b' ');
                list(out, &items);
            }
            Untagged::QuotaRoot { mailbox, roots } => {
                push(out, "QUOTAROOT ");
                message::string(out, mailbox.as_bytes());
                for root in roots {
                    out.push(b' ');
                    message::string(out, root.as_bytes());
                }
            }
            Untagged::Quota { root, resources } => {
                push(out, "QUOTA ");
                message::string(out, root.as_bytes());
                let items: Vec<String> = resources.iter().map(|(r, u, l)| format!("{r} {u} {l}")).collect();
                out.push(b' ');
                list(out, &items);
            }
            Untagged::Search { numbers: n, modseq } => {
                push(out, "SEARCH");
                numbers(out, n);
                if let Some(m) = modseq {
                    push(out, &format!(" (MODSEQ {m})"));
                }
            }
            Untagged::ESearch { tag, uid, items } => {
                push(out, "ESEARCH (TAG ");
                message::string(out, tag.as_bytes());
                out.push(b')');
                if *uid {
                    push(out, " UID");
                }
                for item in items {
                    push(
                        out,
                        &match item {
                            ESearchItem::Min(n) => format!(" MIN {n}"),
                            ESearchItem::Max(n) => format!(" MAX {n}"),
                            ESearchItem::All(set) => format!(" ALL {}", sequence::render(set)),
                            ESearchItem::Count(n) => format!(" COUNT {n}"),
                            ESearchItem::ModSeq(m) => format!(" MODSEQ {m}"),
                        },
                    );
                }
            }
            Untagged::Sort(n) => {
                push(out, "SORT");
                numbers(out, n);
            }
            Untagged::Thread(threads) => {
                push(out, "THREAD");
                if !threads.is_empty() {
                    out.push(b' ');
                    push(out, threads);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command;
    use proptest::prelude::*;

    /// The response a client gets for `s`.
    fn answer(s: &str) -> String {
        let rejected = command::parse(s.as_bytes()).expect_err(s);
        let wire = Response::from(Status::refusing(&rejected)).to_bytes();
        String::from_utf8(wire).unwrap()
    }

    #[test]
    fn the_answer_is_derived_from_the_error() {
        let cases = [
            ("a17 FROB x", "a17 BAD unknown command FROB"),
            ("", "* BAD missing tag"),
            ("a NOOP x", "a BAD unexpected text at end of command"),
            ("a UID FROB 1", "a BAD unknown command UID FROB"),
            ("a FETCH 1 (FLAGS BOGUS)", "a BAD unknown FETCH item BOGUS"),
            ("a FETCH 1:x FLAGS", "a BAD invalid sequence set"),
            ("a LOGIN \"unterminated", "a BAD unterminated quoted string"),
            ("a STORE 1 +FLAGS (\\Bogus)", "a BAD unknown flag \\Bogus"),
            ("a SEARCH FROB", "a BAD unknown search key FROB"),
            (
                "a SEARCH CHARSET KOI8-R ALL",
                "a BAD [BADCHARSET (UTF-8 US-ASCII)] unsupported charset",
            ),
            (
                "a SORT (DATE) ISO-8859-1 ALL",
                "a BAD [BADCHARSET (UTF-8 US-ASCII)] unsupported charset",
            ),
            (
                "a SELECT \"&Jjo\"",
                "a NO [NONEXISTENT] Mailbox name is not valid modified UTF-7",
            ),
        ];
        for (command, response) in cases {
            assert_eq!(answer(command), format!("{response}\r\n"), "{command}");
        }
    }

    proptest! {
        /// Whatever a client sends, a refusal is one response line: the
        /// client's words in its text cannot start another.
        #[test]
        fn a_refusal_is_one_line(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Err(rejected) = command::parse(&b) {
                let wire = Response::from(Status::refusing(&rejected)).to_bytes();
                prop_assert!(wire.ends_with(b"\r\n"));
                let body = &wire[..wire.len() - 2];
                prop_assert!(!body.contains(&b'\r') && !body.contains(&b'\n'), "{:?}", String::from_utf8_lossy(&wire));
            }
        }
    }

    fn wire(r: impl Into<Response>) -> String {
        String::from_utf8(r.into().to_bytes()).unwrap()
    }

    fn s(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn status_responses() {
        assert_eq!(wire(Status::ok("a1", "LOGOUT completed")), "a1 OK LOGOUT completed\r\n");
        assert_eq!(wire(Status::bye("Logging out")), "* BYE Logging out\r\n");
        assert_eq!(
            wire(Status::tagged("a2", Kind::Bad, "Log in first")),
            "a2 BAD Log in first\r\n"
        );
        assert_eq!(
            wire(Status::no("a3", "No such mailbox: X").with(Code::TryCreate)),
            "a3 NO [TRYCREATE] No such mailbox: X\r\n"
        );
        assert_eq!(
            wire(Status::untagged(Kind::Ok, "Previous mailbox closed").with(Code::Closed)),
            "* OK [CLOSED] Previous mailbox closed\r\n"
        );
        assert_eq!(wire(Response::Continue("idling".into())), "+ idling\r\n");
    }

    #[test]
    fn every_code_in_its_wire_form() {
        let cases = [
            (Code::AlreadyExists, "ALREADYEXISTS"),
            (Code::AuthenticationFailed, "AUTHENTICATIONFAILED"),
            (Code::Cannot, "CANNOT"),
            (Code::Closed, "CLOSED"),
            (Code::CompressionActive, "COMPRESSIONACTIVE"),
            (Code::ExpungeIssued, "EXPUNGEISSUED"),
            (Code::Limit, "LIMIT"),
            (Code::Nonexistent, "NONEXISTENT"),
            (Code::OverQuota, "OVERQUOTA"),
            (Code::PrivacyRequired, "PRIVACYREQUIRED"),
            (Code::ReadOnly, "READ-ONLY"),
            (Code::ReadWrite, "READ-WRITE"),
            (Code::TooBig, "TOOBIG"),
            (Code::TryCreate, "TRYCREATE"),
            (Code::Unavailable, "UNAVAILABLE"),
            (Code::UnknownCte, "UNKNOWN-CTE"),
            (
                Code::AppendUid {
                    validity: 9,
                    uids: vec![4, 5, 6, 8],
                },
                "APPENDUID 9 4:6,8",
            ),
            (
                Code::BadCharset(s(&["UTF-8", "US-ASCII"])),
                "BADCHARSET (UTF-8 US-ASCII)",
            ),
            (Code::Capability(s(&["IMAP4rev1", "IDLE"])), "CAPABILITY IMAP4rev1 IDLE"),
            (
                Code::CopyUid {
                    validity: 7,
                    source: vec![1, 2],
                    dest: vec![10, 11],
                },
                "COPYUID 7 1:2 10:11",
            ),
            (Code::HighestModSeq(42), "HIGHESTMODSEQ 42"),
            (Code::Modified(vec![3, 7, 8]), "MODIFIED 3,7:8"),
            (
                Code::PermanentFlags(s(&["\\Seen", "\\*"])),
                "PERMANENTFLAGS (\\Seen \\*)",
            ),
            (Code::PermanentFlags(Vec::new()), "PERMANENTFLAGS ()"),
            (Code::UidNext(12), "UIDNEXT 12"),
            (Code::UidValidity(1700000000), "UIDVALIDITY 1700000000"),
            (Code::Unseen(3), "UNSEEN 3"),
        ];
        for (code, text) in cases {
            assert_eq!(wire(Status::ok("t", "x").with(code)), format!("t OK [{text}] x\r\n"));
        }
    }

    #[test]
    fn simple_untagged_data() {
        let cases = [
            (
                Untagged::Capability(s(&["IMAP4rev2", "IDLE"])),
                "* CAPABILITY IMAP4rev2 IDLE",
            ),
            (Untagged::Enabled(s(&["CONDSTORE"])), "* ENABLED CONDSTORE"),
            (Untagged::Enabled(Vec::new()), "* ENABLED"),
            (
                Untagged::Id(vec![("name".into(), "greyd-mta".into())]),
                "* ID (\"name\" \"greyd-mta\")",
            ),
            (
                Untagged::Namespace {
                    personal: vec![(String::new(), '/')],
                },
                "* NAMESPACE ((\"\" \"/\")) NIL NIL",
            ),
            (Untagged::Flags(s(&["\\Seen", "$Work"])), "* FLAGS (\\Seen $Work)"),
            (Untagged::Exists(3), "* 3 EXISTS"),
            (Untagged::Recent(0), "* 0 RECENT"),
            (Untagged::Expunge(2), "* 2 EXPUNGE"),
            (
                Untagged::Vanished {
                    earlier: false,
                    uids: vec![1, 2, 3, 9],
                },
                "* VANISHED 1:3,9",
            ),
            (
                Untagged::Vanished {
                    earlier: true,
                    uids: vec![5],
                },
                "* VANISHED (EARLIER) 5",
            ),
            (
                Untagged::Status {
                    mailbox: "INBOX".into(),
                    items: vec![("MESSAGES", 2), ("UIDNEXT", 5)],
                },
                "* STATUS \"INBOX\" (MESSAGES 2 UIDNEXT 5)",
            ),
            (
                Untagged::QuotaRoot {
                    mailbox: "INBOX".into(),
                    roots: vec![String::new()],
                },
                "* QUOTAROOT \"INBOX\" \"\"",
            ),
            (
                Untagged::QuotaRoot {
                    mailbox: "INBOX".into(),
                    roots: Vec::new(),
                },
                "* QUOTAROOT \"INBOX\"",
            ),
            (
                Untagged::Quota {
                    root: String::new(),
                    resources: vec![("STORAGE", 10, 512)],
                },
                "* QUOTA \"\" (STORAGE 10 512)",
            ),
            (
                Untagged::Search {
                    numbers: vec![2, 4],
                    modseq: Some(9),
                },
                "* SEARCH 2 4 (MODSEQ 9)",
            ),
            (
                Untagged::Search {
                    numbers: Vec::new(),
                    modseq: None,
                },
                "* SEARCH",
            ),
            (
                Untagged::ESearch {
                    tag: "a7".into(),
                    uid: true,
                    items: vec![
                        ESearchItem::Min(2),
                        ESearchItem::Max(9),
                        ESearchItem::All(vec![2, 3, 4, 9]),
                        ESearchItem::Count(4),
                        ESearchItem::ModSeq(17),
                    ],
                },
                "* ESEARCH (TAG \"a7\") UID MIN 2 MAX 9 ALL 2:4,9 COUNT 4 MODSEQ 17",
            ),
            (Untagged::Sort(vec![3, 1, 2]), "* SORT 3 1 2"),
            (Untagged::Sort(Vec::new()), "* SORT"),
            (Untagged::Thread("(1)(2 3)".into()), "* THREAD (1)(2 3)"),
            (Untagged::Thread(String::new()), "* THREAD"),
        ];
        for (data, text) in cases {
            assert_eq!(wire(data), format!("{text}\r\n"));
        }
    }

    #[test]
    fn list_names_are_strings_and_literals_when_they_must_be() {
        let list = |name: &str, child_info| Untagged::List {
            lsub: false,
            attributes: vec!["\\HasNoChildren", "\\Sent"],
            delimiter: '/',
            name: name.into(),
            child_info,
        };
        assert_eq!(
            wire(list("Sent", false)),
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n"
        );
        assert_eq!(
            wire(list("a\"b", true)),
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"a\\\"b\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        );
        assert_eq!(
            wire(list("caf\u{e9}", false)),
            "* LIST (\\HasNoChildren \\Sent) \"/\" {5}\r\ncaf\u{e9}\r\n"
        );
        let lsub = Untagged::List {
            lsub: true,
            attributes: vec!["\\Noselect"],
            delimiter: '/',
            name: String::new(),
            child_info: false,
        };
        assert_eq!(wire(lsub), "* LSUB (\\Noselect) \"/\" \"\"\r\n");
    }

    #[test]
    fn fetch_items() {
        let fetch = Untagged::Fetch {
            seq: 4,
            items: vec![
                FetchItem::Uid(7),
                FetchItem::Flags(s(&["\\Seen", "\\Recent"])),
                FetchItem::ModSeq(12),
                FetchItem::InternalDate(0),
                FetchItem::Rfc822Size(21),
                FetchItem::Envelope(b"(NIL)".to_vec()),
                FetchItem::Body {
                    extended: true,
                    structure: b"(\"TEXT\")".to_vec(),
                },
                FetchItem::Body {
                    extended: false,
                    structure: b"(\"TEXT\")".to_vec(),
                },
                FetchItem::BinarySize {
                    part: "1.2".into(),
                    size: 30,
                },
            ],
        };
        assert_eq!(
            wire(fetch),
            "* 4 FETCH (UID 7 FLAGS (\\Seen \\Recent) MODSEQ (12) \
             INTERNALDATE \" 1-Jan-1970 00:00:00 +0000\" RFC822.SIZE 21 ENVELOPE (NIL) \
             BODYSTRUCTURE (\"TEXT\") BODY (\"TEXT\") BINARY.SIZE[1.2] 30)\r\n"
        );
        let contents = |data: Option<&[u8]>, literal8| {
            Response::from(Untagged::Fetch {
                seq: 1,
                items: vec![FetchItem::Contents {
                    name: "BODY[TEXT]<2>".into(),
                    data: data.map(<[u8]>::to_vec),
                    literal8,
                }],
            })
        };
        type Case<'a> = (Option<&'a [u8]>, bool, &'a [u8]);
        let cases: [Case; 6] = [
            (Some(b"hi"), false, b"\"hi\""),
            (Some(b"hi"), true, b"\"hi\""),
            (None, true, b"NIL"),
            (Some(b"a\r\nb"), false, b"{4}\r\na\r\nb"),
            (Some(b"a\0b"), false, b"{3}\r\na\0b"),
            (Some(b"a\0b"), true, b"~{3}\r\na\0b"),
        ];
        for (data, literal8, value) in cases {
            let want = [&b"* 1 FETCH (BODY[TEXT]<2> "[..], value, b")\r\n"].concat();
            assert_eq!(
                contents(data, literal8).to_bytes(),
                want,
                "{data:?} literal8={literal8}"
            );
        }
    }
}
