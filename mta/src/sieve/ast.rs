//! The checked form of a script: typed commands and tests, each command
//! with its source line for run-time error messages. Strings are kept as
//! written; `${...}` is expanded at run time when `variables` is required.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub commands: Vec<Command>,
    /// `require "variables"`: strings are expanded at run time.
    pub variables: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub line: usize,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    If {
        branches: Vec<(Test, Vec<Command>)>,
        otherwise: Vec<Command>,
    },
    Stop,
    Keep {
        flags: Option<Vec<String>>,
    },
    Discard,
    FileInto {
        mailbox: String,
        create: bool,
        copy: bool,
        flags: Option<Vec<String>>,
    },
    Redirect {
        address: String,
        copy: bool,
    },
    /// `reject` and `ereject`: we refuse the message, at SMTP time when we
    /// can, else with a delivery status notification.
    Reject {
        reason: String,
    },
    /// imap4flags `setflag`, `addflag`, `removeflag`.
    Flags {
        op: FlagOp,
        variable: Option<String>,
        flags: Vec<String>,
    },
    Set {
        name: String,
        value: String,
        modifiers: Vec<Modifier>,
    },
    Vacation(Vacation),
    /// RFC 6609 `include`: run another script of the user's (`:personal`,
    /// the default) or the administrator's (`:global`) here.
    Include {
        location: Location,
        once: bool,
        optional: bool,
        name: String,
    },
    /// RFC 6609 `return`: back to the including script.
    Return,
    /// RFC 6609 `global`: these variables are shared with other scripts.
    Global(Vec<String>),
    /// RFC 5293 `addheader`: first, or last with `:last`.
    AddHeader {
        name: String,
        value: String,
        last: bool,
    },
    /// RFC 5293 `deleteheader`: the fields called `name` (only the
    /// `index`th) whose value matches one of `patterns` (any, when empty).
    DeleteHeader {
        how: Match,
        index: Option<Index>,
        name: String,
        patterns: Vec<String>,
    },
}

/// RFC 5230 `vacation`, its strings as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacation {
    /// `:days`, at least 1 (default 7).
    pub days: u64,
    pub subject: Option<String>,
    pub from: Option<String>,
    /// `:addresses`: the user's other addresses.
    pub addresses: Vec<String>,
    /// `:mime`: `reason` is a MIME entity (its own headers and body).
    pub mime: bool,
    pub handle: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

/// `set` modifiers (RFC 5229 section 4.1), applied highest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Modifier {
    Length,
    QuoteWildcard,
    LowerFirst,
    UpperFirst,
    Lower,
    Upper,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Exists(Vec<String>),
    Size {
        over: bool,
        limit: u64,
    },
    Header {
        how: Match,
        index: Option<Index>,
        names: Vec<String>,
        keys: Vec<String>,
    },
    Address {
        how: Match,
        index: Option<Index>,
        part: AddressPart,
        names: Vec<String>,
        keys: Vec<String>,
    },
    Envelope {
        how: Match,
        part: AddressPart,
        names: Vec<String>,
        keys: Vec<String>,
    },
    HasFlag {
        how: Match,
        variables: Vec<String>,
        keys: Vec<String>,
    },
    /// variables' `string` test.
    String {
        how: Match,
        sources: Vec<String>,
        keys: Vec<String>,
    },
    MailboxExists(Vec<String>),
    /// RFC 5173 `body`.
    Body {
        how: Match,
        transform: BodyTransform,
        keys: Vec<String>,
    },
    /// RFC 5235 `spamtest` and `virustest`: the score a filter wrote.
    Score {
        kind: ScoreKind,
        percent: bool,
        how: Match,
        keys: Vec<String>,
    },
    /// RFC 5260 `date` (a header's date) and `currentdate` (`header` None).
    Date {
        how: Match,
        index: Option<Index>,
        zone: Zone,
        header: Option<String>,
        part: DatePart,
        keys: Vec<String>,
    },
    /// RFC 7352 `duplicate`: whether this id was seen within `seconds`.
    Duplicate {
        handle: Option<String>,
        id: DuplicateId,
        seconds: u64,
        /// `:last`: a duplicate restarts the period.
        last: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuplicateId {
    MessageId,
    /// `:header NAME`: that field's value.
    Header(String),
    /// `:uniqueid "..."`.
    Unique(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    Personal,
    Global,
}

/// RFC 5260 `:index N [:last]`: only the Nth field of that name (1-based),
/// counted from the end with `:last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub n: u64,
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyTransform {
    /// `:raw`: the body as it is.
    Raw,
    /// `:content`: the decoded parts whose type matches one of these
    /// (`text`, `text/html`, `""` for all).
    Content(Vec<String>),
    /// `:text` (the default): the decoded text parts.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreKind {
    Spam,
    Virus,
}

/// The zone a date test sees its date in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// No tag: the server's zone, which for us is UTC.
    Local,
    /// `:zone "+0100"`.
    Fixed(String),
    /// `:originalzone`: the header's own zone.
    Original,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    Year,
    Month,
    Day,
    Date,
    Julian,
    Hour,
    Minute,
    Second,
    Time,
    Iso8601,
    Std11,
    Zone,
    Weekday,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub comparator: Comparator,
    pub kind: MatchKind,
}

impl Default for Match {
    fn default() -> Self {
        Match {
            comparator: Comparator::AsciiCasemap,
            kind: MatchKind::Is,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    AsciiNumeric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Is,
    Contains,
    Matches,
    /// relational `:value`.
    Value(Relation),
    /// relational `:count`.
    Count(Relation),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPart {
    #[default]
    All,
    LocalPart,
    Domain,
    /// subaddress: the part before the `+`.
    User,
    /// subaddress: the part after the `+`.
    Detail,
}
