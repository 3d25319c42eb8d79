//! From the generic grammar to the checked script: `require` first and only
//! known extensions, every command and test known, used only when its
//! extension was required, with the arguments it takes.

use super::CompileError;
use super::ast::*;
use super::grammar::{Argument, Node};
use std::collections::BTreeSet;

/// Extensions a script may require.
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "envelope",
    "reject",
    "ereject",
    "imap4flags",
    "copy",
    "variables",
    "relational",
    "subaddress",
    "mailbox",
    "vacation",
    "body",
    "date",
    "index",
    "spamtest",
    "spamtestplus",
    "virustest",
    "duplicate",
    "editheader",
    "include",
    "comparator-i;ascii-numeric",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
];

/// RFC 5230: replies to one sender at most once a week unless `:days` says otherwise.
pub const DEFAULT_VACATION_DAYS: u64 = 7;
/// How long `duplicate` remembers an id without `:seconds`: a week.
pub const DEFAULT_DUPLICATE_SECONDS: u64 = 7 * 24 * 3600;
/// The longest `:seconds` we keep an id: 30 days.
pub const MAX_DUPLICATE_SECONDS: u64 = 30 * 24 * 3600;

pub fn compile(nodes: &[Node]) -> Result<Script, CompileError> {
    let mut c = Checker::default();
    let mut rest = nodes;
    while let Some((first, tail)) = rest.split_first()
        && first.name == "require"
    {
        c.require(first)?;
        rest = tail;
    }
    let commands = c.block(rest)?;
    Ok(Script {
        commands,
        variables: c.has("variables"),
    })
}

#[derive(Default)]
struct Checker {
    required: BTreeSet<String>,
}

/// A node's arguments split into tags (with the value the tag takes, if
/// it takes one) and the positional arguments left in order.
struct Args {
    line: usize,
    tags: Vec<(String, Option<Argument>)>,
    positional: Vec<Argument>,
}

impl Args {
    /// `valued` names the tags that take the argument after them.
    fn split(node: &Node, valued: &[&str]) -> Result<Args, CompileError> {
        let mut tags = Vec::new();
        let mut positional = Vec::new();
        let mut it = node.args.iter();
        while let Some(a) = it.next() {
            match a {
                Argument::Tag(t) if valued.contains(&t.as_str()) => {
                    let v = it
                        .next()
                        .cloned()
                        .ok_or_else(|| CompileError::new(node.line, format!(":{t} needs an argument")))?;
                    tags.push((t.clone(), Some(v)));
                }
                Argument::Tag(t) => tags.push((t.clone(), None)),
                other => positional.push(other.clone()),
            }
        }
        Ok(Args {
            line: node.line,
            tags,
            positional,
        })
    }

    fn strings(&mut self, what: &str) -> Result<Vec<String>, CompileError> {
        if self.positional.is_empty() {
            return Err(CompileError::new(self.line, format!("missing {what}")));
        }
        match self.positional.remove(0) {
            Argument::Strings(s) => Ok(s),
            _ => Err(CompileError::new(
                self.line,
                format!("{what} must be a string or string list"),
            )),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, CompileError> {
        let mut list = self.strings(what)?;
        if list.len() != 1 {
            return Err(CompileError::new(self.line, format!("{what} must be a single string")));
        }
        Ok(list.remove(0))
    }

    fn number(&mut self, what: &str) -> Result<u64, CompileError> {
        match self.positional.first() {
            Some(Argument::Number(n)) => {
                let n = *n;
                self.positional.remove(0);
                Ok(n)
            }
            _ => Err(CompileError::new(self.line, format!("missing {what} (a number)"))),
        }
    }

    fn done(&self, name: &str) -> Result<(), CompileError> {
        if !self.positional.is_empty() || !self.tags.is_empty() {
            return Err(CompileError::new(self.line, format!("too many arguments to {name}")));
        }
        Ok(())
    }
}

fn single(v: Option<Argument>, line: usize, tag: &str) -> Result<String, CompileError> {
    match v {
        Some(Argument::Strings(mut s)) if s.len() == 1 => Ok(s.remove(0)),
        _ => Err(CompileError::new(line, format!(":{tag} takes one string"))),
    }
}

fn no_tests(node: &Node) -> Result<(), CompileError> {
    if !node.tests.is_empty() {
        return Err(CompileError::new(node.line, format!("{} takes no test", node.name)));
    }
    Ok(())
}

impl Checker {
    fn has(&self, ext: &str) -> bool {
        self.required.contains(ext)
    }

    fn need(&self, ext: &str, line: usize, what: &str) -> Result<(), CompileError> {
        if self.has(ext) {
            return Ok(());
        }
        Err(CompileError::new(line, format!("{what} needs require \"{ext}\"")))
    }

    fn require(&mut self, node: &Node) -> Result<(), CompileError> {
        no_tests(node)?;
        if node.block.is_some() {
            return Err(CompileError::new(node.line, "require takes no block"));
        }
        let mut args = Args::split(node, &[])?;
        let names = args.strings("extension names")?;
        args.done("require")?;
        for n in names {
            if !EXTENSIONS.contains(&n.as_str()) {
                return Err(CompileError::new(node.line, format!("unsupported extension \"{n}\"")));
            }
            self.required.insert(n);
        }
        Ok(())
    }

    fn block(&self, nodes: &[Node]) -> Result<Vec<Command>, CompileError> {
        let mut out: Vec<Command> = Vec::new();
        // Whether the last command is an `if` that may still take elsif/else.
        let mut open_if = false;
        for node in nodes {
            if matches!(node.name.as_str(), "elsif" | "else") {
                let Some(Command {
                    kind: CommandKind::If { branches, otherwise },
                    ..
                }) = out.last_mut().filter(|_| open_if)
                else {
                    return Err(CompileError::new(node.line, format!("{} without if", node.name)));
                };
                let body = self.body(node)?;
                if node.name == "elsif" {
                    branches.push((self.one_test(node)?, body));
                } else {
                    no_tests(node)?;
                    *otherwise = body;
                    open_if = false;
                }
                continue;
            }
            let kind = self.command(node)?;
            open_if = matches!(kind, CommandKind::If { .. });
            out.push(Command { line: node.line, kind });
        }
        Ok(out)
    }

    fn body(&self, node: &Node) -> Result<Vec<Command>, CompileError> {
        match &node.block {
            Some(b) => self.block(b),
            None => Err(CompileError::new(node.line, format!("{} needs a block", node.name))),
        }
    }

    fn one_test(&self, node: &Node) -> Result<Test, CompileError> {
        match node.tests.as_slice() {
            [t] => self.test(t),
            _ => Err(CompileError::new(
                node.line,
                format!("{} needs exactly one test", node.name),
            )),
        }
    }

    fn command(&self, node: &Node) -> Result<CommandKind, CompileError> {
        let line = node.line;
        if node.name == "if" {
            let body = self.body(node)?;
            if !node.args.is_empty() {
                return Err(CompileError::new(line, "if takes only a test"));
            }
            return Ok(CommandKind::If {
                branches: vec![(self.one_test(node)?, body)],
                otherwise: Vec::new(),
            });
        }
        no_tests(node)?;
        if node.block.is_some() {
            return Err(CompileError::new(line, format!("{} takes no block", node.name)));
        }
        if node.name == "deleteheader" {
            self.need("editheader", line, "deleteheader")?;
            // Its arguments are those of a header test with one name and optional keys.
            let Test::Header {
                how,
                index,
                mut names,
                keys,
            } = self.test_or_deleteheader(node)?
            else {
                return Err(CompileError::new(line, "bad deleteheader"));
            };
            return Ok(CommandKind::DeleteHeader {
                how,
                index,
                name: names.remove(0),
                patterns: keys,
            });
        }
        let mut args = Args::split(node, &["flags", "days", "subject", "from", "addresses", "handle"])?;
        let mut last = false;
        let mut location = None;
        let mut once = false;
        let mut optional = false;
        let mut copy = false;
        let mut create = false;
        let mut flags = None;
        let mut modifiers = Vec::new();
        let mut vacation = Vacation {
            days: DEFAULT_VACATION_DAYS,
            subject: None,
            from: None,
            addresses: Vec::new(),
            mime: false,
            handle: None,
            reason: String::new(),
        };
        for (tag, value) in std::mem::take(&mut args.tags) {
            match (tag.as_str(), node.name.as_str()) {
                ("days", "vacation") => match value {
                    Some(Argument::Number(n)) => vacation.days = n.max(1),
                    _ => return Err(CompileError::new(line, ":days takes a number")),
                },
                ("subject", "vacation") => vacation.subject = Some(single(value, line, &tag)?),
                ("from", "vacation") => vacation.from = Some(single(value, line, &tag)?),
                ("handle", "vacation") => vacation.handle = Some(single(value, line, &tag)?),
                ("addresses", "vacation") => match value {
                    Some(Argument::Strings(s)) => vacation.addresses = s,
                    _ => return Err(CompileError::new(line, ":addresses takes a string list")),
                },
                ("mime", "vacation") => vacation.mime = true,
                ("last", "addheader") => last = true,
                ("personal" | "global", "include") if location.is_none() => {
                    location = Some(if tag == "global" {
                        Location::Global
                    } else {
                        Location::Personal
                    });
                }
                ("once", "include") => once = true,
                ("optional", "include") => optional = true,
                ("copy", "fileinto" | "redirect") => {
                    self.need("copy", line, ":copy")?;
                    copy = true;
                }
                ("create", "fileinto") => {
                    self.need("mailbox", line, ":create")?;
                    create = true;
                }
                ("flags", "fileinto" | "keep") => {
                    self.need("imap4flags", line, ":flags")?;
                    match value {
                        Some(Argument::Strings(s)) => flags = Some(s),
                        _ => return Err(CompileError::new(line, ":flags takes a string list")),
                    }
                }
                (m, "set") => {
                    modifiers.push(match m {
                        "lower" => Modifier::Lower,
                        "upper" => Modifier::Upper,
                        "lowerfirst" => Modifier::LowerFirst,
                        "upperfirst" => Modifier::UpperFirst,
                        "quotewildcard" => Modifier::QuoteWildcard,
                        "length" => Modifier::Length,
                        _ => return Err(CompileError::new(line, format!("unknown modifier :{m}"))),
                    });
                }
                _ => return Err(CompileError::new(line, format!("{} does not take :{tag}", node.name))),
            }
        }
        let kind = match node.name.as_str() {
            "stop" => CommandKind::Stop,
            "keep" => CommandKind::Keep { flags },
            "discard" => CommandKind::Discard,
            "fileinto" => {
                self.need("fileinto", line, "fileinto")?;
                CommandKind::FileInto {
                    mailbox: args.string("mailbox name")?,
                    create,
                    copy,
                    flags,
                }
            }
            "redirect" => CommandKind::Redirect {
                address: args.string("address")?,
                copy,
            },
            "reject" | "ereject" => {
                self.need(&node.name, line, &node.name)?;
                CommandKind::Reject {
                    reason: args.string("reason")?,
                }
            }
            "setflag" | "addflag" | "removeflag" => {
                self.need("imap4flags", line, &node.name)?;
                let first = args.strings("flags")?;
                let (variable, flags) = if args.positional.is_empty() {
                    (None, first)
                } else {
                    self.need("variables", line, "a flag variable")?;
                    let [v] = <[String; 1]>::try_from(first)
                        .map_err(|_| CompileError::new(line, "the variable name must be a single string"))?;
                    (Some(v), args.strings("flags")?)
                };
                let op = match node.name.as_str() {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                CommandKind::Flags { op, variable, flags }
            }
            "set" => {
                self.need("variables", line, "set")?;
                let name = args.string("variable name")?;
                if !is_variable_name(&name) {
                    return Err(CompileError::new(line, format!("bad variable name {name:?}")));
                }
                modifiers.sort();
                modifiers.dedup();
                CommandKind::Set {
                    name: name.to_ascii_lowercase(),
                    value: args.string("value")?,
                    modifiers,
                }
            }
            "vacation" => {
                self.need("vacation", line, "vacation")?;
                vacation.reason = args.string("reason")?;
                CommandKind::Vacation(vacation)
            }
            "include" => {
                self.need("include", line, "include")?;
                let name = args.string("script name")?;
                if !is_script_name(&name) {
                    return Err(CompileError::new(line, format!("bad script name {name:?}")));
                }
                CommandKind::Include {
                    location: location.unwrap_or(Location::Personal),
                    once,
                    optional,
                    name,
                }
            }
            "return" => {
                self.need("include", line, "return")?;
                CommandKind::Return
            }
            "global" => {
                self.need("include", line, "global")?;
                self.need("variables", line, "global")?;
                let names = args.strings("variable names")?;
                if let Some(bad) = names.iter().find(|n| !is_variable_name(n)) {
                    return Err(CompileError::new(line, format!("bad variable name {bad:?}")));
                }
                CommandKind::Global(names.iter().map(|n| n.to_ascii_lowercase()).collect())
            }
            "addheader" => {
                self.need("editheader", line, "addheader")?;
                let name = args.string("field name")?;
                if !super::message::is_field_name(&name) {
                    return Err(CompileError::new(line, format!("bad header field name {name:?}")));
                }
                CommandKind::AddHeader {
                    name,
                    value: args.string("value")?,
                    last,
                }
            }
            "require" => return Err(CompileError::new(line, "require must come before any other command")),
            other => return Err(CompileError::new(line, format!("unknown command {other:?}"))),
        };
        args.done(&node.name)?;
        Ok(kind)
    }

    fn test(&self, node: &Node) -> Result<Test, CompileError> {
        if node.name == "deleteheader" {
            return Err(CompileError::new(node.line, "unknown test \"deleteheader\""));
        }
        self.test_or_deleteheader(node)
    }

    /// A test, or the arguments of `deleteheader` (which are a header test's).
    fn test_or_deleteheader(&self, node: &Node) -> Result<Test, CompileError> {
        let line = node.line;
        let name = node.name.as_str();
        match name {
            "not" => {
                Args::split(node, &[])?.done(name)?;
                return Ok(Test::Not(Box::new(self.one_test(node)?)));
            }
            "allof" | "anyof" => {
                Args::split(node, &[])?.done(name)?;
                if node.tests.is_empty() {
                    return Err(CompileError::new(line, format!("{name} needs a test list")));
                }
                let tests = node.tests.iter().map(|t| self.test(t)).collect::<Result<Vec<_>, _>>()?;
                return Ok(if name == "allof" {
                    Test::AllOf(tests)
                } else {
                    Test::AnyOf(tests)
                });
            }
            _ => no_tests(node)?,
        }
        let mut args = Args::split(
            node,
            &[
                "comparator",
                "value",
                "count",
                "content",
                "zone",
                "index",
                "handle",
                "header",
                "uniqueid",
                "seconds",
            ],
        )?;
        let mut how = Match::default();
        let mut part = None;
        let mut over = None;
        let mut kind_given = false;
        let mut index = None;
        let mut last = false;
        let mut transform = None;
        let mut percent = false;
        let mut zone = None;
        let mut handle = None;
        let mut duplicate_id = None;
        let mut seconds = DEFAULT_DUPLICATE_SECONDS;
        for (tag, value) in std::mem::take(&mut args.tags) {
            let mut set_kind = |how: &mut Match, kind| {
                if std::mem::replace(&mut kind_given, true) {
                    return Err(CompileError::new(line, "more than one match type"));
                }
                how.kind = kind;
                Ok(())
            };
            match tag.as_str() {
                "is" => set_kind(&mut how, MatchKind::Is)?,
                "contains" => set_kind(&mut how, MatchKind::Contains)?,
                "matches" => set_kind(&mut how, MatchKind::Matches)?,
                "value" | "count" => {
                    self.need("relational", line, &format!(":{tag}"))?;
                    let rel = relation(&single(value, line, &tag)?, line)?;
                    let kind = if tag == "value" {
                        MatchKind::Value(rel)
                    } else {
                        MatchKind::Count(rel)
                    };
                    set_kind(&mut how, kind)?;
                }
                "comparator" => {
                    how.comparator = match single(value, line, &tag)?.as_str() {
                        "i;octet" => Comparator::Octet,
                        "i;ascii-casemap" => Comparator::AsciiCasemap,
                        "i;ascii-numeric" => {
                            self.need("comparator-i;ascii-numeric", line, "i;ascii-numeric")?;
                            Comparator::AsciiNumeric
                        }
                        other => return Err(CompileError::new(line, format!("unknown comparator {other:?}"))),
                    }
                }
                "all" | "localpart" | "domain" | "user" | "detail" if matches!(name, "address" | "envelope") => {
                    if part.is_some() {
                        return Err(CompileError::new(line, "more than one address part"));
                    }
                    part = Some(match tag.as_str() {
                        "all" => AddressPart::All,
                        "localpart" => AddressPart::LocalPart,
                        "domain" => AddressPart::Domain,
                        t => {
                            self.need("subaddress", line, &format!(":{t}"))?;
                            if t == "user" {
                                AddressPart::User
                            } else {
                                AddressPart::Detail
                            }
                        }
                    });
                }
                "over" | "under" if name == "size" && over.is_none() => over = Some(tag == "over"),
                "index" if matches!(name, "header" | "address" | "date" | "deleteheader") => {
                    if name != "deleteheader" {
                        self.need("index", line, ":index")?;
                    }
                    index = match value {
                        Some(Argument::Number(n)) if n >= 1 => Some(n),
                        _ => return Err(CompileError::new(line, ":index takes a number from 1")),
                    };
                }
                "handle" if name == "duplicate" => handle = Some(single(value, line, &tag)?),
                "header" | "uniqueid" if name == "duplicate" && duplicate_id.is_none() => {
                    let v = single(value, line, &tag)?;
                    duplicate_id = Some(if tag == "header" {
                        DuplicateId::Header(v)
                    } else {
                        DuplicateId::Unique(v)
                    });
                }
                "seconds" if name == "duplicate" => match value {
                    Some(Argument::Number(n)) => seconds = n.min(MAX_DUPLICATE_SECONDS),
                    _ => return Err(CompileError::new(line, ":seconds takes a number")),
                },
                "last" if name == "duplicate" => last = true,
                "last" if matches!(name, "header" | "address" | "date" | "deleteheader") => {
                    if name != "deleteheader" {
                        self.need("index", line, ":last")?;
                    }
                    last = true;
                }
                "raw" | "text" | "content" if name == "body" && transform.is_none() => {
                    transform = Some(match (tag.as_str(), value) {
                        ("raw", _) => BodyTransform::Raw,
                        ("text", _) => BodyTransform::Text,
                        (_, Some(Argument::Strings(types))) => BodyTransform::Content(types),
                        _ => return Err(CompileError::new(line, ":content takes a string list")),
                    });
                }
                "percent" if name == "spamtest" => {
                    self.need("spamtestplus", line, ":percent")?;
                    percent = true;
                }
                "zone" | "originalzone" if matches!(name, "date" | "currentdate") && zone.is_none() => {
                    zone = Some(if tag == "zone" {
                        Zone::Fixed(single(value, line, &tag)?)
                    } else if name == "date" {
                        Zone::Original
                    } else {
                        return Err(CompileError::new(line, "currentdate does not take :originalzone"));
                    });
                }
                _ => return Err(CompileError::new(line, format!("{name} does not take :{tag}"))),
            }
        }
        let part = part.unwrap_or_default();
        if last && index.is_none() && name != "duplicate" {
            return Err(CompileError::new(line, ":last needs :index"));
        }
        let index = index.map(|n| Index { n, last });
        let test = match name {
            "true" => Test::True,
            "false" => Test::False,
            "exists" => Test::Exists(args.strings("header names")?),
            "size" => Test::Size {
                over: over.ok_or_else(|| CompileError::new(line, "size needs :over or :under"))?,
                limit: args.number("limit")?,
            },
            "header" => Test::Header {
                how,
                index,
                names: args.strings("header names")?,
                keys: args.strings("keys")?,
            },
            "address" => Test::Address {
                how,
                index,
                part,
                names: args.strings("header names")?,
                keys: args.strings("keys")?,
            },
            "envelope" => {
                self.need("envelope", line, "envelope")?;
                let names = args.strings("envelope parts")?;
                if let Some(bad) = names
                    .iter()
                    .find(|n| !["from", "to"].contains(&n.to_ascii_lowercase().as_str()))
                {
                    return Err(CompileError::new(line, format!("unknown envelope part {bad:?}")));
                }
                Test::Envelope {
                    how,
                    part,
                    names,
                    keys: args.strings("keys")?,
                }
            }
            "hasflag" => {
                self.need("imap4flags", line, "hasflag")?;
                let first = args.strings("flags")?;
                let (variables, keys) = if args.positional.is_empty() {
                    (Vec::new(), first)
                } else {
                    self.need("variables", line, "a flag variable")?;
                    (first, args.strings("flags")?)
                };
                Test::HasFlag { how, variables, keys }
            }
            "string" => {
                self.need("variables", line, "string")?;
                Test::String {
                    how,
                    sources: args.strings("source")?,
                    keys: args.strings("keys")?,
                }
            }
            "mailboxexists" => {
                self.need("mailbox", line, "mailboxexists")?;
                Test::MailboxExists(args.strings("mailbox names")?)
            }
            "body" => {
                self.need("body", line, "body")?;
                Test::Body {
                    how,
                    transform: transform.unwrap_or(BodyTransform::Text),
                    keys: args.strings("keys")?,
                }
            }
            "spamtest" | "virustest" => {
                if name == "virustest" {
                    self.need("virustest", line, "virustest")?;
                } else if !self.has("spamtestplus") {
                    self.need("spamtest", line, "spamtest")?;
                }
                Test::Score {
                    kind: if name == "spamtest" {
                        ScoreKind::Spam
                    } else {
                        ScoreKind::Virus
                    },
                    percent,
                    how,
                    keys: args.strings("value")?,
                }
            }
            "date" | "currentdate" => {
                self.need("date", line, name)?;
                let header = (name == "date").then(|| args.string("header name")).transpose()?;
                let part = date_part(&args.string("date part")?, line)?;
                Test::Date {
                    how,
                    index,
                    zone: zone.unwrap_or(Zone::Local),
                    header,
                    part,
                    keys: args.strings("keys")?,
                }
            }
            "deleteheader" => {
                let name = args.string("field name")?;
                if !super::message::is_field_name(&name) {
                    return Err(CompileError::new(line, format!("bad header field name {name:?}")));
                }
                let keys = if args.positional.is_empty() {
                    Vec::new()
                } else {
                    args.strings("value patterns")?
                };
                Test::Header {
                    how,
                    index,
                    names: vec![name],
                    keys,
                }
            }
            "duplicate" => {
                self.need("duplicate", line, "duplicate")?;
                Test::Duplicate {
                    handle,
                    id: duplicate_id.unwrap_or(DuplicateId::MessageId),
                    seconds,
                    last,
                }
            }
            other => return Err(CompileError::new(line, format!("unknown test {other:?}"))),
        };
        args.done(name)?;
        Ok(test)
    }
}

fn date_part(s: &str, line: usize) -> Result<DatePart, CompileError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "year" => DatePart::Year,
        "month" => DatePart::Month,
        "day" => DatePart::Day,
        "date" => DatePart::Date,
        "julian" => DatePart::Julian,
        "hour" => DatePart::Hour,
        "minute" => DatePart::Minute,
        "second" => DatePart::Second,
        "time" => DatePart::Time,
        "iso8601" => DatePart::Iso8601,
        "std11" => DatePart::Std11,
        "zone" => DatePart::Zone,
        "weekday" => DatePart::Weekday,
        _ => return Err(CompileError::new(line, format!("unknown date part {s:?}"))),
    })
}

fn relation(s: &str, line: usize) -> Result<Relation, CompileError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "gt" => Relation::Gt,
        "ge" => Relation::Ge,
        "lt" => Relation::Lt,
        "le" => Relation::Le,
        "eq" => Relation::Eq,
        "ne" => Relation::Ne,
        _ => return Err(CompileError::new(line, format!("unknown relation {s:?}"))),
    })
}

/// A name `include` may take: a file in one folder, so no `/`, no
/// leading dot, no controls.
pub fn is_script_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && !s.starts_with('.') && !s.chars().any(|c| c == '/' || c.is_control())
}

/// `identifier *("." identifier)`, or a match variable's digits.
fn is_variable_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            let mut c = p.chars();
            c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        })
}
