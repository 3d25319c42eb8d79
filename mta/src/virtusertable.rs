//! sendmail's virtusertable: `user@domain target`, `@domain target` (with
//! `%1` for the user part), and `error:` entries. Pure parsing and lookup.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirtTarget {
    /// A local name or an address (remote addresses are relayed).
    Address(String),
    /// A rejection, as the full SMTP reply (`550 5.1.1 User unknown`).
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct VirtError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Virtusertable {
    map: HashMap<String, VirtTarget>,
}

impl Virtusertable {
    /// Look up `local@domain`, then `local@domain` without a `+detail`, then
    /// the `@domain` catch-all, as sendmail does.
    pub fn lookup(&self, local: &str, domain: &str) -> Option<VirtTarget> {
        let domain = domain.to_ascii_lowercase();
        let local_lc = local.to_ascii_lowercase();
        let (user, detail) = match local_lc.split_once('+') {
            Some((u, d)) => (u, d),
            None => (local_lc.as_str(), ""),
        };
        let found = self
            .map
            .get(&format!("{local_lc}@{domain}"))
            .or_else(|| self.map.get(&format!("{user}@{domain}")))
            .map(|t| (t, false))
            .or_else(|| self.map.get(&format!("@{domain}")).map(|t| (t, true)))?;
        Some(match found {
            (VirtTarget::Address(a), true) => VirtTarget::Address(a.replace("%1", user).replace("%2", detail)),
            (t, _) => t.clone(),
        })
    }

    /// Domains that have entries: they are virtual domains we accept mail for.
    pub fn has_domain(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        self.map
            .keys()
            .any(|k| k.rsplit_once('@').is_some_and(|(_, d)| d == domain))
    }
}

pub fn parse(text: &str) -> Result<Virtusertable, Vec<VirtError>> {
    let mut table = Virtusertable::default();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: &str| VirtError {
            line: i + 1,
            message: message.to_string(),
        };
        let Some((key, value)) = line.split_once(char::is_whitespace) else {
            errors.push(err("missing target"));
            continue;
        };
        let key = key.to_ascii_lowercase();
        let Some((_, domain)) = key.rsplit_once('@') else {
            errors.push(err("key must be user@domain or @domain"));
            continue;
        };
        if !crate::envelope::valid_domain(domain, true) {
            errors.push(err("bad domain in key"));
            continue;
        }
        let value = value.trim();
        let target = match value.strip_prefix("error:") {
            Some(spec) => match parse_error(spec) {
                Some(reply) => VirtTarget::Error(reply),
                None => {
                    errors.push(err("bad error: entry"));
                    continue;
                }
            },
            None if value.contains(char::is_whitespace) => {
                errors.push(err("target must be one address"));
                continue;
            }
            None => VirtTarget::Address(value.to_string()),
        };
        table.map.insert(key, target);
    }
    if errors.is_empty() { Ok(table) } else { Err(errors) }
}

/// `error:D.S.N:CODE text`, `error:CODE text` or `error:nouser text`.
fn parse_error(spec: &str) -> Option<String> {
    let (head, text) = spec.split_once(' ').unwrap_or((spec, ""));
    let text = if text.trim().is_empty() {
        "Rejected"
    } else {
        text.trim()
    };
    let (status, code) = match head.split_once(':') {
        Some((status, code)) => (status.to_string(), code),
        None => match head {
            "nouser" => ("5.1.1".to_string(), "550"),
            "tempfail" => ("4.0.0".to_string(), "451"),
            code => (format!("{}.0.0", code.get(..1)?), code),
        },
    };
    let valid_code =
        code.len() == 3 && matches!(code.as_bytes()[0], b'4' | b'5') && code.bytes().all(|b| b.is_ascii_digit());
    let valid_status = status.split('.').count() == 3
        && status
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && status.as_bytes()[0] == code.as_bytes()[0];
    (valid_code && valid_status).then(|| format!("{code} {status} {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order_and_errors() {
        let t = parse(
            "info@v.example  alice\n@v.example  %1+catch@other.example\nbad@v.example error:nouser No such user\n\
             old@v.example error:5.1.6:550 Moved\n",
        )
        .unwrap();
        assert_eq!(
            t.lookup("INFO+x", "V.example"),
            Some(VirtTarget::Address("alice".into()))
        );
        assert_eq!(
            t.lookup("bob", "v.example"),
            Some(VirtTarget::Address("bob+catch@other.example".into()))
        );
        assert_eq!(
            t.lookup("bad", "v.example"),
            Some(VirtTarget::Error("550 5.1.1 No such user".into()))
        );
        assert_eq!(
            t.lookup("old", "v.example"),
            Some(VirtTarget::Error("550 5.1.6 Moved".into()))
        );
        assert_eq!(t.lookup("x", "w.example"), None);
        assert!(t.has_domain("v.example"));
    }

    #[test]
    fn reports_bad_lines() {
        let errs = parse("a@b.example\nnokey target\nx@y.example error:999 no\n").unwrap_err();
        assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[a-z0-9@%:. \n\t#.-]{0,200}", local in "[a-z+]{0,8}") {
            if let Ok(t) = parse(&text) {
                let _ = t.lookup(&local, "a.b");
            }
        }
    }
}
