//! The primitives of IMAP's command grammar (RFC 3501 §9, RFC 9051 §9):
//! atoms, numbers, quoted strings, literals and literal8s, astrings,
//! mailbox names in their wire encoding, flags, sequence sets and dates,
//! read off one framed command. Pure. `command` and `search` build their
//! grammars on these.

use super::date;
use super::mutf7;
use super::sequence::{SequenceError, SequenceSet};
use super::sequence_match::SequenceMatchError;
use std::fmt;

/// `tag = 1*<any ASTRING-CHAR except "+">`
pub fn is_tag(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| is_atom_char(b) && b != b'+' || b == b']')
}

pub(super) fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){%*\"\\]".contains(&b)
}

/// How mailbox names travel: modified UTF-7 (IMAP4rev1), or UTF-8 once the
/// client enabled IMAP4rev2 or UTF8=ACCEPT (RFC 9051 §5.1, RFC 6855 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameEncoding {
    #[default]
    ModifiedUtf7,
    Utf8,
}

impl NameEncoding {
    /// A mailbox name from the wire as the store's UTF-8.
    pub(super) fn label(self) -> &'static str {
        match self {
            NameEncoding::ModifiedUtf7 => "modified UTF-7",
            NameEncoding::Utf8 => "UTF-8",
        }
    }

    pub(super) fn decode(self, raw: &[u8]) -> Option<String> {
        match self {
            NameEncoding::ModifiedUtf7 => mutf7::decode(raw),
            NameEncoding::Utf8 => String::from_utf8(raw.to_vec()).ok(),
        }
    }

    /// A store name as the wire carries it.
    pub fn encode(self, name: &str) -> String {
        match self {
            NameEncoding::ModifiedUtf7 => mutf7::encode(name),
            NameEncoding::Utf8 => name.to_string(),
        }
    }
}

pub struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    names: NameEncoding,
    /// A mailbox name did not decode: the command then gets NO, not BAD.
    bad_name: bool,
}

/// What kind of word a command had where it cannot be: `unknown {kind} {word}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    Command,
    UidCommand,
    FetchItem,
    FetchModifier,
    StatusItem,
    StoreItem,
    ReturnOption,
    SearchKey,
    SortKey,
    ThreadAlgorithm,
    ListSelection,
    ListReturn,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unknown::Command => "command",
            Unknown::UidCommand => "command UID",
            Unknown::FetchItem => "FETCH item",
            Unknown::FetchModifier => "FETCH modifier",
            Unknown::StatusItem => "STATUS item",
            Unknown::StoreItem => "STORE item",
            Unknown::ReturnOption => "RETURN option",
            Unknown::SearchKey => "search key",
            Unknown::SortKey => "sort key",
            Unknown::ThreadAlgorithm => "THREAD algorithm",
            Unknown::ListSelection => "LIST selection option",
            Unknown::ListReturn => "LIST return option",
        })
    }
}

/// Why a command did not parse. The text is what the client is told
/// after `BAD` (or `NO`: see `response::Status::refusing`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("missing tag")]
    MissingTag,
    #[error("expected {0:?}")]
    Expected(char),
    #[error("unexpected text at end of command")]
    TrailingText,
    #[error("missing argument")]
    MissingArgument,
    #[error("non-ASCII atom")]
    NonAsciiAtom,
    #[error("number out of range")]
    NumberRange,
    #[error("unterminated quoted string")]
    UnterminatedQuoted,
    #[error("bad escape in quoted string")]
    BadEscape,
    #[error("literal too large")]
    LiteralTooLarge,
    #[error("short literal")]
    ShortLiteral,
    #[error("expected a string")]
    ExpectedString,
    #[error("expected a string or NIL")]
    ExpectedNString,
    #[error("expected NIL or a list")]
    ExpectedNilOrList,
    #[error("not UTF-8")]
    NotUtf8,
    #[error("unknown flag \\{0}")]
    UnknownFlag(String),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error(transparent)]
    SequenceMatch(#[from] SequenceMatchError),
    #[error("bad date")]
    BadDate,
    #[error("bad date-time")]
    BadDateTime,
    #[error("unknown {0} {1}")]
    Unknown(Unknown, String),
    #[error("unsupported SELECT parameter {0}")]
    SelectParameter(String),
    #[error("bad QRESYNC parameter")]
    BadQresync,
    #[error("bad section part")]
    SectionPart,
    #[error("bad section {0}")]
    Section(String),
    #[error("bad header field name")]
    HeaderFieldName,
    #[error("empty header field list")]
    EmptyHeaderFields,
    #[error("zero-length partial")]
    ZeroPartial,
    #[error("BINARY takes part numbers only")]
    BinaryPart,
    #[error("VANISHED needs CHANGEDSINCE")]
    VanishedWithoutChangedSince,
    #[error("VANISHED needs UID FETCH")]
    VanishedWithoutUid,
    #[error("expected UNCHANGEDSINCE")]
    ExpectedUnchangedSince,
    #[error("empty sort criteria")]
    EmptySortCriteria,
    #[error("RECURSIVEMATCH needs another selection option")]
    RecursiveMatchAlone,
    #[error("expected RETURN")]
    ExpectedReturn,
    #[error("only COMPRESS DEFLATE is supported")]
    CompressDeflateOnly,
    #[error("expected a literal or UTF8")]
    ExpectedAppendData,
    /// SEARCH, SORT and THREAD know UTF-8 and US-ASCII only.
    #[error("unsupported charset")]
    BadCharset,
    #[error("search string is not UTF-8")]
    SearchNotUtf8,
    #[error("search nested too deeply")]
    SearchTooDeep,
    #[error("missing search key")]
    MissingSearchKey,
    #[error("bad MODSEQ entry type {0}")]
    ModSeqEntryType(String),
    /// Well-formed, but a mailbox name in it does not decode: no such
    /// mailbox can exist, so the answer is NO rather than BAD.
    #[error("Mailbox name is not valid {}", .0.label())]
    MailboxName(NameEncoding),
}

pub(super) type Result<T> = std::result::Result<T, ParseError>;

impl<'a> Parser<'a> {
    pub fn new(s: &'a [u8], names: NameEncoding) -> Parser<'a> {
        Parser {
            s,
            i: 0,
            names,
            bad_name: false,
        }
    }

    pub fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    pub fn at_end(&self) -> bool {
        self.i == self.s.len()
    }

    pub fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(ParseError::Expected(b as char))
        }
    }

    pub fn sp(&mut self) -> Result<()> {
        self.expect(b' ')
    }

    pub fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    pub fn end(&self) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(ParseError::TrailingText)
        }
    }

    /// Characters while `ok`, at least one.
    pub(super) fn run(&mut self, ok: impl Fn(u8) -> bool) -> Result<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(&ok) {
            self.i += 1;
        }
        if start == self.i {
            return Err(ParseError::MissingArgument);
        }
        // All accepted characters are ASCII.
        std::str::from_utf8(&self.s[start..self.i]).map_err(|_| ParseError::NonAsciiAtom)
    }

    pub fn atom(&mut self) -> Result<&'a str> {
        self.run(is_atom_char)
    }

    /// An atom, uppercased (command names, keywords).
    pub(super) fn keyword(&mut self) -> Result<String> {
        Ok(self.atom()?.to_ascii_uppercase())
    }

    pub fn number(&mut self) -> Result<u32> {
        self.run(|b| b.is_ascii_digit())?
            .parse()
            .map_err(|_| ParseError::NumberRange)
    }

    pub fn number64(&mut self) -> Result<u64> {
        self.run(|b| b.is_ascii_digit())?
            .parse()
            .map_err(|_| ParseError::NumberRange)
    }

    pub(super) fn quoted(&mut self) -> Result<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r' | b'\n' | 0) => return Err(ParseError::UnterminatedQuoted),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err(ParseError::BadEscape),
                    }
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    pub(super) fn literal(&mut self) -> Result<Vec<u8>> {
        self.expect(b'{')?;
        self.literal_rest()
    }

    /// A literal or, where BINARY allows it (APPEND), a literal8 `~{n}`;
    /// true for a literal8.
    pub(super) fn literal_or_literal8(&mut self) -> Result<(Vec<u8>, bool)> {
        if self.eat(b'~') {
            self.expect(b'{')?;
            return Ok((self.literal_rest()?, true));
        }
        Ok((self.literal()?, false))
    }

    /// A literal after its `{`.
    pub(super) fn literal_rest(&mut self) -> Result<Vec<u8>> {
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}')?;
        self.eat(b'\r');
        self.expect(b'\n')?;
        let n = usize::try_from(n).map_err(|_| ParseError::LiteralTooLarge)?;
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.s.len())
            .ok_or(ParseError::ShortLiteral)?;
        let data = self.s[self.i..end].to_vec();
        self.i = end;
        Ok(data)
    }

    pub fn string(&mut self) -> Result<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err(ParseError::ExpectedString),
        }
    }

    pub fn astring(&mut self) -> Result<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => Ok(self.run(|b| is_atom_char(b) || b == b']')?.as_bytes().to_vec()),
        }
    }

    pub(super) fn astring_utf8(&mut self) -> Result<String> {
        String::from_utf8(self.astring()?).map_err(|_| ParseError::NotUtf8)
    }

    pub(super) fn mailbox(&mut self) -> Result<String> {
        let raw = self.astring()?;
        let name = self.decode_name(&raw);
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        Ok(name)
    }

    /// LIST patterns: astring plus the wildcards.
    pub(super) fn list_mailbox(&mut self) -> Result<String> {
        let raw = match self.peek() {
            Some(b'"' | b'{') => self.string()?,
            _ => self
                .run(|b| is_atom_char(b) || b"%*]".contains(&b))?
                .as_bytes()
                .to_vec(),
        };
        Ok(self.decode_name(&raw))
    }

    /// A mailbox name from the wire; one that does not decode is noted, and
    /// parsing goes on so the command gets NO.
    pub(super) fn decode_name(&mut self, raw: &[u8]) -> String {
        self.names.decode(raw).unwrap_or_else(|| {
            self.bad_name = true;
            String::from_utf8_lossy(raw).into_owned()
        })
    }

    /// `( item SP item ... )` with `item` parsed by `f`.
    pub(super) fn list<T>(&mut self, mut f: impl FnMut(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        if self.eat(b')') {
            return Ok(items);
        }
        loop {
            items.push(f(self)?);
            if self.eat(b')') {
                return Ok(items);
            }
            self.sp()?;
        }
    }

    pub(super) fn flag(&mut self) -> Result<String> {
        let backslash = self.eat(b'\\');
        let name = self.atom()?;
        if !backslash {
            return Ok(name.to_string());
        }
        let system = ["Seen", "Answered", "Flagged", "Deleted", "Draft", "Recent"]
            .into_iter()
            .find(|f| f.eq_ignore_ascii_case(name))
            .ok_or_else(|| ParseError::UnknownFlag(name.to_string()))?;
        Ok(format!("\\{system}"))
    }

    pub(super) fn flags(&mut self) -> Result<Vec<String>> {
        if self.peek() == Some(b'(') {
            self.list(Self::flag)
        } else {
            let mut flags = vec![self.flag()?];
            while self.eat(b' ') {
                flags.push(self.flag()?);
            }
            Ok(flags)
        }
    }

    pub fn sequence_set(&mut self) -> Result<SequenceSet> {
        let text = self.run(|b| b.is_ascii_digit() || b":,*".contains(&b))?;
        Ok(SequenceSet::parse(text)?)
    }

    /// `"17-Jul-1996 02:44:25 -0700"`, as seconds since the epoch.
    pub(super) fn date_time(&mut self) -> Result<i64> {
        let raw = self.quoted()?;
        let text = std::str::from_utf8(&raw).map_err(|_| ParseError::BadDate)?;
        date::parse_date_time(text).ok_or(ParseError::BadDateTime)
    }

    /// `1-Feb-1994` (quoted or not), as days since the epoch.
    pub fn date(&mut self) -> Result<i64> {
        let raw = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.atom()?.as_bytes().to_vec()
        };
        let text = std::str::from_utf8(&raw).map_err(|_| ParseError::BadDate)?;
        date::parse_date(text).ok_or(ParseError::BadDate)
    }

    pub(super) fn nstring(&mut self) -> Result<Option<Vec<u8>>> {
        if matches!(self.peek(), Some(b'"' | b'{')) {
            return self.string().map(Some);
        }
        if self.keyword()? == "NIL" {
            Ok(None)
        } else {
            Err(ParseError::ExpectedNString)
        }
    }

    /// Where the parser stands, to come back to with [`Parser::rewind`].
    pub(super) fn pos(&self) -> usize {
        self.i
    }

    pub(super) fn rewind(&mut self, pos: usize) {
        self.i = pos;
    }

    /// Take the rest of the command as read (for commands whose arguments are ignored).
    pub(super) fn skip_rest(&mut self) {
        self.i = self.s.len();
    }

    /// The mailbox names' encoding.
    pub(super) fn names(&self) -> NameEncoding {
        self.names
    }

    /// Whether a mailbox name did not decode.
    pub(super) fn bad_name(&self) -> bool {
        self.bad_name
    }
}
