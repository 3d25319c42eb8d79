//! Running a checked script over one message and its envelope: the list of
//! actions to take. Limits (actions, redirects, CPU steps, variable sizes)
//! and run-time errors end the run with the implicit keep and the reason,
//! so a bad script never loses a message.

use super::ast::*;
use super::date::{Moment, parse_zone};
use super::matcher;
use super::message::{self, Headers, ScoreHeaders, addresses};
use std::collections::{HashMap, HashSet};

/// Most actions one run may take.
pub const MAX_ACTIONS: usize = 32;
/// Most redirects one run may take.
pub const MAX_REDIRECTS: usize = 4;
/// How deep `include` may nest.
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// Most scripts one run may include.
pub const MAX_INCLUDES: usize = 32;
/// The CPU budget: commands, tests and comparisons (long strings cost more).
pub const MAX_STEPS: u64 = 100_000;
/// Longest value a variable may hold; longer values are cut (RFC 5229 allows it).
pub const MAX_VARIABLE: usize = 4096;

const REJECT_ALONE: &str = "reject cannot be combined with keep, fileinto, redirect or vacation";

/// What the delivery does with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Into the user's INBOX, with these IMAP flags.
    Keep {
        flags: Vec<String>,
    },
    FileInto {
        mailbox: String,
        create: bool,
        flags: Vec<String>,
    },
    Redirect {
        address: String,
    },
    Reject {
        reason: String,
    },
    /// An RFC 5230 auto-reply, strings expanded; whether it is sent is up
    /// to [`super::vacation`] and the user's memory of earlier replies.
    Vacation(Vacation),
}

/// A run that stopped early, with the line it stopped at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RunError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Never empty unless the script discarded the message.
    pub actions: Vec<Action>,
    /// Why the script was abandoned for the implicit keep.
    pub error: Option<RunError>,
    /// The `duplicate` ids to remember once the message is delivered
    /// (none when the run failed).
    pub tracked: Vec<Tracked>,
    /// The message as editheader left it, when it changed it: what the
    /// kept and filed copies hold.
    pub edited: Option<Vec<u8>>,
}

/// An id `duplicate` saw, hashed with its handle, to remember for `seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub key: String,
    pub seconds: u64,
}

/// Finds and compiles the script `include` names: `Ok(None)` when there
/// is none, `Err` with why it cannot be used.
pub type IncludeFn<'a> = dyn Fn(Location, &str) -> Result<Option<Script>, String> + 'a;

/// The message and envelope a script sees.
pub struct Input<'a> {
    pub content: &'a [u8],
    /// Envelope sender, `None` for `<>`.
    pub sender: Option<&'a str>,
    pub recipient: &'a str,
    /// Whether the user has this mailbox (`mailboxexists`).
    pub mailbox_exists: &'a dyn Fn(&str) -> bool,
    /// Unix time of the run (`currentdate`).
    pub now: i64,
    /// Where `spamtest` and `virustest` read their scores.
    pub scores: &'a ScoreHeaders,
    /// Whether `duplicate` remembers this key (a [`Tracked::key`]).
    pub seen: &'a dyn Fn(&str) -> bool,
    /// The script `include` names, compiled; `Ok(None)` when there is none.
    pub include: &'a IncludeFn<'a>,
}

pub fn run(script: &Script, input: &Input<'_>) -> Outcome {
    run_all(&[script], input)
}

/// Run scripts one after the other (global before, the user's, global
/// after), as one run: actions, flags and limits carry over, `stop` ends
/// them all; each script has its own variables.
pub fn run_all(scripts: &[&Script], input: &Input<'_>) -> Outcome {
    let mut r = Runner {
        expand_variables: false,
        input,
        headers: Headers::parse(input.content),
        actions: Vec::new(),
        cancelled_keep: false,
        flags: Vec::new(),
        variables: HashMap::new(),
        global_names: HashSet::new(),
        globals: HashMap::new(),
        captures: Vec::new(),
        included: Vec::new(),
        including: Vec::new(),
        steps: 0,
        tracked: Vec::new(),
        edited: false,
    };
    let mut result = Ok(Flow::Continue);
    for script in scripts {
        r.expand_variables = script.variables;
        r.variables.clear();
        r.global_names.clear();
        r.captures.clear();
        result = r.block(&script.commands);
        // `return` in a script nobody included is `stop` (RFC 6609 section 3.3).
        if !matches!(result, Ok(Flow::Continue)) {
            break;
        }
    }
    match result {
        Ok(_) => {
            // Every action that could clash with it (keep, reject) cancelled it.
            if !r.cancelled_keep {
                r.actions.push(Action::Keep { flags: r.flags.clone() });
            }
            Outcome {
                edited: r.edited.then(|| r.headers.render(input.content)),
                actions: r.actions,
                error: None,
                tracked: r.tracked,
            }
        }
        Err(error) => keep_after(error),
    }
}

/// The message goes to INBOX as it is, whatever the script did so far.
fn keep_after(error: RunError) -> Outcome {
    Outcome {
        actions: vec![Action::Keep { flags: Vec::new() }],
        error: Some(error),
        tracked: Vec::new(),
        edited: None,
    }
}

enum Flow {
    Continue,
    Stop,
    Return,
}

/// What each script has of its own, set aside while it includes another.
struct Frame {
    expand_variables: bool,
    variables: HashMap<String, String>,
    global_names: HashSet<String>,
    captures: Vec<String>,
}

struct Runner<'a> {
    /// The running script required "variables".
    expand_variables: bool,
    input: &'a Input<'a>,
    headers: Headers,
    actions: Vec<Action>,
    cancelled_keep: bool,
    /// imap4flags' internal variable.
    flags: Vec<String>,
    variables: HashMap<String, String>,
    /// The running script's `global` declarations.
    global_names: HashSet<String>,
    /// Variables shared between scripts (RFC 6609 `global`).
    globals: HashMap<String, String>,
    /// `${0}`..`${9}` from the last successful `:matches`.
    captures: Vec<String>,
    /// Every script included so far (`:once`), and those running now (loops).
    included: Vec<(Location, String)>,
    including: Vec<(Location, String)>,
    steps: u64,
    tracked: Vec<Tracked>,
    /// editheader changed `headers`.
    edited: bool,
}

impl Runner<'_> {
    fn charge(&mut self, line: usize, steps: u64) -> Result<(), RunError> {
        self.steps += steps;
        if self.steps > MAX_STEPS {
            return Err(fail(line, format!("over the limit of {MAX_STEPS} steps")));
        }
        Ok(())
    }

    fn block(&mut self, commands: &[Command]) -> Result<Flow, RunError> {
        for c in commands {
            match self.command(c)? {
                Flow::Continue => {}
                end => return Ok(end),
            }
        }
        Ok(Flow::Continue)
    }

    fn command(&mut self, cmd: &Command) -> Result<Flow, RunError> {
        let line = cmd.line;
        self.charge(line, 1)?;
        match &cmd.kind {
            CommandKind::If { branches, otherwise } => {
                for (test, body) in branches {
                    if self.test(test, line)? {
                        return self.block(body);
                    }
                }
                return self.block(otherwise);
            }
            CommandKind::Stop => return Ok(Flow::Stop),
            CommandKind::Return => return Ok(Flow::Return),
            CommandKind::Global(names) => self.global_names.extend(names.iter().cloned()),
            CommandKind::Include {
                location,
                once,
                optional,
                name,
            } => return self.include(*location, *once, *optional, name, line),
            CommandKind::Keep { flags } => {
                let flags = self.flags_or_current(flags.as_deref(), line)?;
                self.cancelled_keep = true;
                self.add_keep(line, flags)?;
            }
            CommandKind::Discard => self.cancelled_keep = true,
            CommandKind::FileInto {
                mailbox,
                create,
                copy,
                flags,
            } => {
                let flags = self.flags_or_current(flags.as_deref(), line)?;
                let mailbox = self.expand(mailbox, line)?;
                self.cancelled_keep |= !copy;
                if mailbox.eq_ignore_ascii_case("INBOX") {
                    self.add_keep(line, flags)?;
                } else if !self
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::FileInto { mailbox: m, .. } if *m == mailbox))
                {
                    self.push(
                        line,
                        Action::FileInto {
                            mailbox,
                            create: *create,
                            flags,
                        },
                    )?;
                }
            }
            CommandKind::Redirect { address, copy } => {
                let address = self.expand(address, line)?;
                if !plausible_address(&address) {
                    return Err(fail(line, format!("redirect to a bad address {address:?}")));
                }
                self.cancelled_keep |= !copy;
                let redirects = self
                    .actions
                    .iter()
                    .filter(|a| matches!(a, Action::Redirect { .. }))
                    .count();
                if !self.actions.contains(&Action::Redirect {
                    address: address.clone(),
                }) {
                    if redirects >= MAX_REDIRECTS {
                        return Err(fail(line, format!("more than {MAX_REDIRECTS} redirects")));
                    }
                    self.push(line, Action::Redirect { address })?;
                }
            }
            CommandKind::Reject { reason } => {
                let reason = self.expand(reason, line)?;
                self.cancelled_keep = true;
                self.push(line, Action::Reject { reason })?;
            }
            CommandKind::Flags { op, variable, flags } => {
                let given = self.flag_list(flags, line)?;
                let mut current = match variable {
                    Some(v) => split_flags(&self.variable(v)),
                    None => self.flags.clone(),
                };
                match op {
                    FlagOp::Set => current = given,
                    FlagOp::Add => {
                        for f in given {
                            if !current.iter().any(|c| c.eq_ignore_ascii_case(&f)) {
                                current.push(f);
                            }
                        }
                    }
                    FlagOp::Remove => current.retain(|c| !given.iter().any(|g| g.eq_ignore_ascii_case(c))),
                }
                match variable {
                    Some(v) => self.set_variable(v, current.join(" ")),
                    None => self.flags = current,
                }
            }
            CommandKind::Vacation(v) => {
                if self.actions.iter().any(|a| matches!(a, Action::Vacation(_))) {
                    return Err(fail(line, "more than one vacation"));
                }
                let expanded = Vacation {
                    days: v.days,
                    subject: v.subject.as_ref().map(|s| self.expand(s, line)).transpose()?,
                    from: v.from.as_ref().map(|s| self.expand(s, line)).transpose()?,
                    addresses: self.expand_all(&v.addresses, line)?,
                    mime: v.mime,
                    handle: v.handle.as_ref().map(|s| self.expand(s, line)).transpose()?,
                    reason: self.expand(&v.reason, line)?,
                };
                self.push(line, Action::Vacation(expanded))?;
            }
            CommandKind::AddHeader { name, value, last } => {
                let name = self.expand(name, line)?;
                let value = self.expand(value, line)?;
                if !message::is_field_name(&name) {
                    return Err(fail(line, format!("addheader: bad field name {name:?}")));
                }
                if !protected(&name) {
                    let value = crate::web::mime::encode_word(&message::one_line(&value));
                    self.charge(line, 1 + value.len() as u64 / 64)?;
                    self.headers.add(&name, &value, *last);
                    self.edited = true;
                }
            }
            CommandKind::DeleteHeader {
                how,
                index,
                name,
                patterns,
            } => {
                let name = self.expand(name, line)?;
                let patterns = self.expand_all(patterns, line)?;
                if !protected(&name) {
                    let mut steps = 0;
                    let deleted = self.headers.delete(&name, |values| {
                        let chosen = pick((0..values.len()).collect(), *index);
                        values
                            .iter()
                            .enumerate()
                            .map(|(i, v)| {
                                let found = matcher::test(how, std::slice::from_ref(v), &patterns);
                                steps += found.steps + 1;
                                chosen.contains(&i) && (patterns.is_empty() || found.matched)
                            })
                            .collect()
                    });
                    self.charge(line, steps)?;
                    self.edited |= deleted > 0;
                }
            }
            CommandKind::Set { name, value, modifiers } => {
                let mut v = self.expand(value, line)?;
                for m in modifiers.iter().rev() {
                    v = modify(*m, &v);
                }
                self.set_variable(name, v);
            }
        }
        Ok(Flow::Continue)
    }

    fn add_keep(&mut self, line: usize, flags: Vec<String>) -> Result<(), RunError> {
        if self.actions.iter().any(|a| matches!(a, Action::Reject { .. })) {
            return Err(fail(line, REJECT_ALONE));
        }
        if let Some(Action::Keep { flags: f }) = self.actions.iter_mut().find(|a| matches!(a, Action::Keep { .. })) {
            *f = flags;
        } else {
            self.actions.push(Action::Keep { flags });
        }
        Ok(())
    }

    fn push(&mut self, line: usize, action: Action) -> Result<(), RunError> {
        if self.actions.len() >= MAX_ACTIONS {
            return Err(fail(line, format!("more than {MAX_ACTIONS} actions")));
        }
        let rejects = matches!(action, Action::Reject { .. });
        if self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }) != rejects)
        {
            return Err(fail(line, REJECT_ALONE));
        }
        self.actions.push(action);
        Ok(())
    }

    fn flags_or_current(&mut self, given: Option<&[String]>, line: usize) -> Result<Vec<String>, RunError> {
        match given {
            Some(g) => self.flag_list(g, line),
            None => Ok(self.flags.clone()),
        }
    }

    /// Flag arguments: expanded, split at spaces, duplicates dropped.
    fn flag_list(&mut self, given: &[String], line: usize) -> Result<Vec<String>, RunError> {
        let mut out: Vec<String> = Vec::new();
        for g in given {
            for f in split_flags(&self.expand(g, line)?) {
                if !out.iter().any(|o| o.eq_ignore_ascii_case(&f)) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// Run the included script in its own frame; its `stop` ends the
    /// run, its `return` (or end) comes back here.
    fn include(
        &mut self,
        location: Location,
        once: bool,
        optional: bool,
        name: &str,
        line: usize,
    ) -> Result<Flow, RunError> {
        let name = self.expand(name, line)?;
        if !super::compile::is_script_name(&name) {
            return Err(fail(line, format!("include: bad script name {name:?}")));
        }
        let key = (location, name.clone());
        if once && self.included.contains(&key) {
            return Ok(Flow::Continue);
        }
        if self.including.contains(&key) {
            return Err(fail(line, format!("include loop: {name:?} includes itself")));
        }
        if self.including.len() >= MAX_INCLUDE_DEPTH {
            return Err(fail(line, format!("includes nested deeper than {MAX_INCLUDE_DEPTH}")));
        }
        if self.included.len() >= MAX_INCLUDES {
            return Err(fail(line, format!("more than {MAX_INCLUDES} includes")));
        }
        let script = match (self.input.include)(location, &name) {
            Ok(Some(script)) => script,
            Ok(None) if optional => return Ok(Flow::Continue),
            Ok(None) => return Err(fail(line, format!("include: no script {name:?}"))),
            Err(e) => return Err(fail(line, format!("include {name:?}: {e}"))),
        };
        self.included.push(key.clone());
        self.including.push(key);
        let outer = Frame {
            expand_variables: std::mem::replace(&mut self.expand_variables, script.variables),
            variables: std::mem::take(&mut self.variables),
            global_names: std::mem::take(&mut self.global_names),
            captures: std::mem::take(&mut self.captures),
        };
        let flow = self.block(&script.commands);
        self.expand_variables = outer.expand_variables;
        self.variables = outer.variables;
        self.global_names = outer.global_names;
        self.captures = outer.captures;
        self.including.pop();
        match flow? {
            Flow::Stop => Ok(Flow::Stop),
            Flow::Continue | Flow::Return => Ok(Flow::Continue),
        }
    }

    /// Where a variable lives: a shared one when declared `global` or
    /// named `global.NAME`, else the running script's.
    fn scope(&mut self, name: &str) -> (&mut HashMap<String, String>, String) {
        let name = name.to_ascii_lowercase();
        if let Some(shared) = name.strip_prefix("global.") {
            let shared = shared.to_string();
            return (&mut self.globals, shared);
        }
        if self.global_names.contains(&name) {
            return (&mut self.globals, name);
        }
        (&mut self.variables, name)
    }

    fn variable(&mut self, name: &str) -> String {
        let (scope, name) = self.scope(name);
        scope.get(&name).cloned().unwrap_or_default()
    }

    fn set_variable(&mut self, name: &str, mut value: String) {
        truncate(&mut value, MAX_VARIABLE);
        let (scope, name) = self.scope(name);
        scope.insert(name, value);
    }

    /// `${name}` and `${N}` replaced when the script uses variables.
    fn expand(&mut self, s: &str, line: usize) -> Result<String, RunError> {
        if !self.expand_variables || !s.contains("${") {
            return Ok(s.to_string());
        }
        self.charge(line, 1 + s.len() as u64 / 64)?;
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) if valid_reference(&after[..end]) => {
                    let name = &after[..end];
                    let value = match name.parse::<usize>() {
                        Ok(n) => self.captures.get(n).cloned().unwrap_or_default(),
                        Err(_) => self.variable(name),
                    };
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push_str("${");
                    rest = after;
                }
            }
            if out.len() > MAX_VARIABLE * 4 {
                return Err(fail(line, "string too long after expanding variables"));
            }
        }
        out.push_str(rest);
        self.charge(line, out.len() as u64 / 64)?;
        Ok(out)
    }

    fn expand_all(&mut self, list: &[String], line: usize) -> Result<Vec<String>, RunError> {
        list.iter().map(|s| self.expand(s, line)).collect()
    }

    fn test(&mut self, test: &Test, line: usize) -> Result<bool, RunError> {
        self.charge(line, 1)?;
        let (how, values, keys) = match test {
            Test::True => return Ok(true),
            Test::False => return Ok(false),
            Test::Not(t) => return Ok(!self.test(t, line)?),
            Test::AllOf(ts) => {
                for t in ts {
                    if !self.test(t, line)? {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            Test::AnyOf(ts) => {
                for t in ts {
                    if self.test(t, line)? {
                        return Ok(true);
                    }
                }
                return Ok(false);
            }
            Test::Exists(names) => {
                let names = self.expand_all(names, line)?;
                return Ok(names.iter().all(|n| !self.headers.get(n).is_empty()));
            }
            Test::Size { over, limit } => {
                let size = self.input.content.len() as u64;
                return Ok(if *over { size > *limit } else { size < *limit });
            }
            Test::MailboxExists(names) => {
                let names = self.expand_all(names, line)?;
                return Ok(names.iter().all(|n| (self.input.mailbox_exists)(n)));
            }
            Test::Header {
                how,
                index,
                names,
                keys,
            } => {
                let names = self.expand_all(names, line)?;
                let values = names.iter().flat_map(|n| self.headers.decoded(n)).collect();
                (how, pick(values, *index), keys)
            }
            Test::Address {
                how,
                index,
                part,
                names,
                keys,
            } => {
                let names = self.expand_all(names, line)?;
                let fields = names.iter().flat_map(|n| self.headers.get(n)).collect();
                let values = pick(fields, *index)
                    .iter()
                    .flat_map(|v| addresses(v))
                    .filter_map(|a| address_part(&a, *part))
                    .collect();
                (how, values, keys)
            }
            Test::Envelope { how, part, names, keys } => {
                let values = names
                    .iter()
                    .map(|n| match n.to_ascii_lowercase().as_str() {
                        "from" => self.input.sender.unwrap_or(""),
                        _ => self.input.recipient,
                    })
                    .filter_map(|a| match (a, part) {
                        // The null sender matches "" with :all only.
                        ("", AddressPart::All) => Some(String::new()),
                        ("", _) => None,
                        (a, p) => address_part(a, *p),
                    })
                    .collect();
                (how, values, keys)
            }
            Test::HasFlag { how, variables, keys } => {
                let values = if variables.is_empty() {
                    self.flags.clone()
                } else {
                    variables.iter().flat_map(|v| split_flags(&self.variable(v))).collect()
                };
                (how, values, keys)
            }
            Test::String { how, sources, keys } => (how, self.expand_all(sources, line)?, keys),
            Test::Duplicate {
                handle,
                id,
                seconds,
                last,
            } => {
                let value = match id {
                    DuplicateId::MessageId => self.headers.get("message-id").into_iter().next(),
                    DuplicateId::Header(name) => {
                        let name = self.expand(name, line)?;
                        self.headers.get(&name).into_iter().next()
                    }
                    DuplicateId::Unique(u) => Some(self.expand(u, line)?),
                };
                let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
                    return Ok(false);
                };
                let handle = handle.as_ref().map(|h| self.expand(h, line)).transpose()?;
                let key = super::state_key(&["duplicate", handle.as_deref().unwrap_or(""), value.trim()]);
                let seen = (self.input.seen)(&key);
                if (!seen || *last) && !self.tracked.iter().any(|t| t.key == key) {
                    self.tracked.push(Tracked { key, seconds: *seconds });
                }
                return Ok(seen);
            }
            Test::Body { how, transform, keys } => {
                let values = message::body(self.input.content, transform);
                self.charge(line, values.iter().map(|v| v.len() as u64 / 64).sum())?;
                (how, values, keys)
            }
            Test::Score {
                kind,
                percent,
                how,
                keys,
            } => {
                let scores = self.input.scores;
                let header = |name: &str| self.headers.get(name).into_iter().next();
                let value = match kind {
                    ScoreKind::Spam => message::spam_score(header(&scores.spam).as_deref(), scores.spam_max, *percent),
                    ScoreKind::Virus => message::virus_score(header(&scores.virus).as_deref()),
                };
                (how, vec![value], keys)
            }
            Test::Date {
                how,
                index,
                zone,
                header,
                part,
                keys,
            } => {
                let moments = match header {
                    Some(name) => {
                        let name = self.expand(name, line)?;
                        let fields = pick(self.headers.get(&name), *index);
                        let received = name.eq_ignore_ascii_case("received");
                        fields
                            .iter()
                            .map(|v| if received { v.rsplit(';').next().unwrap_or(v) } else { v })
                            .filter_map(Moment::parse)
                            .collect()
                    }
                    None => vec![Moment {
                        utc: self.input.now,
                        offset: 0,
                    }],
                };
                let offset = match zone {
                    Zone::Local => Some(0),
                    Zone::Original => None,
                    Zone::Fixed(z) => {
                        let z = self.expand(z, line)?;
                        Some(parse_zone(&z).ok_or_else(|| fail(line, format!("bad :zone {z:?}")))?)
                    }
                };
                let values = moments
                    .into_iter()
                    .map(|m| offset.map_or(m, |o| m.in_zone(o)).part(*part))
                    .collect();
                (how, values, keys)
            }
        };
        let keys = self.expand_all(keys, line)?;
        let found = matcher::test(how, &values, &keys);
        self.charge(line, found.steps)?;
        if found.matched
            && self.expand_variables
            && let Some(c) = found.captures
        {
            self.captures = c;
        }
        Ok(found.matched)
    }
}

/// Fields editheader leaves alone (RFC 5293 section 7): the trace and
/// the mark that stops auto-reply loops.
fn protected(name: &str) -> bool {
    ["received", "auto-submitted"].contains(&name.to_ascii_lowercase().as_str())
}

/// With `:index`, only the field it names (RFC 5260 section 6).
fn pick<T>(mut fields: Vec<T>, index: Option<Index>) -> Vec<T> {
    let Some(Index { n, last }) = index else {
        return fields;
    };
    let len = fields.len() as u64;
    if n > len {
        return Vec::new();
    }
    let at = if last { len - n } else { n - 1 };
    vec![fields.swap_remove(at as usize)]
}

fn fail(line: usize, message: impl Into<String>) -> RunError {
    RunError {
        line,
        message: message.into(),
    }
}

fn valid_reference(name: &str) -> bool {
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()))
        || (!name.is_empty()
            && name.split('.').all(|p| {
                p.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                    && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }))
}

fn split_flags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn modify(m: Modifier, v: &str) -> String {
    let mut chars = v.chars();
    match m {
        Modifier::Lower => v.to_lowercase(),
        Modifier::Upper => v.to_uppercase(),
        Modifier::LowerFirst => chars
            .next()
            .map(|c| c.to_lowercase().chain(chars).collect())
            .unwrap_or_default(),
        Modifier::UpperFirst => chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default(),
        Modifier::QuoteWildcard => v
            .chars()
            .flat_map(|c| match c {
                '*' | '?' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect(),
        Modifier::Length => v.chars().count().to_string(),
    }
}

/// `local@domain` minus what `part` leaves out; `None` when there is no such part.
fn address_part(addr: &str, part: AddressPart) -> Option<String> {
    let (local, domain) = addr.rsplit_once('@').unwrap_or((addr, ""));
    Some(match part {
        AddressPart::All => addr.to_string(),
        AddressPart::LocalPart => local.to_string(),
        AddressPart::Domain => domain.to_string(),
        AddressPart::User => local.split_once('+').map_or(local, |(u, _)| u).to_string(),
        AddressPart::Detail => local.split_once('+')?.1.to_string(),
    })
}

fn plausible_address(a: &str) -> bool {
    a.rsplit_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}
