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
        names: Vec<String>,
        keys: Vec<String>,
    },
    Address {
        how: Match,
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
