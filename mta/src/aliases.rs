//! The aliases file in sendmail's /etc/mail/aliases format: `name: target, ...`
//! with continuation lines, `#` comments, `|program`, `/file`,
//! `:include:/path` and `\user` (no further aliasing). Pure parsing; the
//! expansion lives in `recipient`.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasTarget {
    /// A local name or a full address, itself subject to aliasing.
    Address(String),
    /// `\user`: deliver to the local user, no further aliasing.
    NoAlias(String),
    Program(String),
    File(PathBuf),
    Include(PathBuf),
}

/// A syntax error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct AliasError {
    pub line: usize,
    pub problem: AliasProblem,
}

/// What is wrong with one alias entry or one target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasProblem {
    #[error("missing ':' after the alias name")]
    MissingColon,
    #[error("bad alias name {0:?}")]
    BadName(String),
    #[error("alias {0} has no targets")]
    NoTargets(String),
    #[error("alias {0} defined twice")]
    DefinedTwice(String),
    #[error("alias {name}: {problem}")]
    InAlias { name: String, problem: Box<AliasProblem> },
    #[error("empty program")]
    EmptyProgram,
    #[error("include path {0:?} is not absolute")]
    RelativeInclude(String),
    #[error("bad address {0:?}")]
    BadAddress(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    map: HashMap<String, Vec<AliasTarget>>,
}

impl Aliases {
    /// Targets of `name` (matched case-insensitively, as sendmail does).
    pub fn get(&self, name: &str) -> Option<&[AliasTarget]> {
        self.map.get(&name.to_ascii_lowercase()).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Parse a whole aliases file; every error is reported, not just the first.
pub fn parse(text: &str) -> Result<Aliases, Vec<AliasError>> {
    let mut aliases = Aliases::default();
    let mut errors = Vec::new();
    for (line, entry) in logical_lines(text) {
        let err = |problem: AliasProblem| AliasError { line, problem };
        let Some((name, value)) = entry.split_once(':') else {
            errors.push(err(AliasProblem::MissingColon));
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(err(AliasProblem::BadName(name)));
            continue;
        }
        match parse_targets(value) {
            Ok(targets) if targets.is_empty() => errors.push(err(AliasProblem::NoTargets(name))),
            Ok(targets) => {
                if aliases.map.insert(name.clone(), targets).is_some() {
                    errors.push(err(AliasProblem::DefinedTwice(name)));
                }
            }
            Err(problem) => errors.push(err(AliasProblem::InAlias {
                name,
                problem: Box::new(problem),
            })),
        }
    }
    if errors.is_empty() { Ok(aliases) } else { Err(errors) }
}

/// Comma-separated targets, as in an alias value or an :include: file.
pub fn parse_targets(value: &str) -> Result<Vec<AliasTarget>, AliasProblem> {
    split_commas(value)
        .into_iter()
        .map(|item| parse_target(&item))
        .collect()
}

/// The targets of a ~/.forward file: lines of targets, `#` lines ignored.
pub fn parse_forward(text: &str) -> Result<Vec<AliasTarget>, AliasProblem> {
    parse_targets(
        &text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn parse_target(item: &str) -> Result<AliasTarget, AliasProblem> {
    let unquoted = item
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|s| s.starts_with('|') || s.starts_with('/'))
        .unwrap_or(item);
    if let Some(program) = unquoted.strip_prefix('|') {
        if program.trim().is_empty() {
            return Err(AliasProblem::EmptyProgram);
        }
        return Ok(AliasTarget::Program(program.trim().to_string()));
    }
    if unquoted.starts_with('/') {
        return Ok(AliasTarget::File(PathBuf::from(unquoted)));
    }
    if let Some(path) = item.strip_prefix(":include:") {
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(AliasProblem::RelativeInclude(path.to_string()));
        }
        return Ok(AliasTarget::Include(PathBuf::from(path)));
    }
    let (no_alias, addr) = match item.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, item),
    };
    if addr.is_empty()
        || addr
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return Err(AliasProblem::BadAddress(item.to_string()));
    }
    if let Some((local, domain)) = addr.rsplit_once('@')
        && (local.is_empty() || !crate::envelope::valid_domain(domain, true))
    {
        return Err(AliasProblem::BadAddress(item.to_string()));
    }
    Ok(if no_alias {
        AliasTarget::NoAlias(addr.to_string())
    } else {
        AliasTarget::Address(addr.to_string())
    })
}

/// Split on commas outside double quotes; trims items and drops empty ones.
fn split_commas(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    items.push(cur);
    items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Join continuation lines (starting with a blank) onto their entry and drop
/// comments and blank lines; yields (first line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((_, entry)) if line.starts_with([' ', '\t']) => {
                entry.push(' ');
                entry.push_str(line.trim());
            }
            _ => out.push((i + 1, line.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendmail_forms() {
        let a = parse(
            "# comment\nPostmaster: root\nlist: alice, bob@example.org,\n  \"|/usr/bin/prog arg\", /var/log/mail.log\n\
             inc: :include:/etc/mail/list.txt\nroot: \\root, alice\n",
        )
        .unwrap();
        assert_eq!(a.get("postmaster"), Some(&[AliasTarget::Address("root".into())][..]));
        assert_eq!(
            a.get("LIST").unwrap(),
            &[
                AliasTarget::Address("alice".into()),
                AliasTarget::Address("bob@example.org".into()),
                AliasTarget::Program("/usr/bin/prog arg".into()),
                AliasTarget::File("/var/log/mail.log".into()),
            ]
        );
        assert_eq!(
            a.get("inc").unwrap(),
            &[AliasTarget::Include("/etc/mail/list.txt".into())]
        );
        assert_eq!(a.get("root").unwrap()[0], AliasTarget::NoAlias("root".into()));
    }

    #[test]
    fn errors_carry_line_numbers() {
        let errs = parse("ok: a\nbroken line\n\nempty:\nx: a b\nok: c\n").unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 6]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[a-z:,|/\"\\\\ \n\t#@.-]{0,200}") {
            let _ = parse(&text);
        }
    }
}
