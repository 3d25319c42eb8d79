//! spamd.alloweddomains: when the list is non-empty, a greylisted tuple whose
//! recipient is in none of these domains traps its source.
//!
//! As in spamd, an entry `@example.com` matches exactly that domain and an
//! entry `example.com` also matches its subdomains.

use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedDomains {
    entries: Vec<String>,
}

impl AllowedDomains {
    /// Parse the file's text: one domain per line, `#` comments.
    pub fn parse(text: &str) -> AllowedDomains {
        let entries = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_ascii_lowercase())
            .filter(|l| !l.is_empty())
            .collect();
        AllowedDomains { entries }
    }

    /// Read the file; a missing file means "no restriction", as in spamd.
    pub fn load(path: &Path) -> std::io::Result<AllowedDomains> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(AllowedDomains::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AllowedDomains::default()),
            Err(e) => Err(e),
        }
    }

    /// Whether mail to `address` (already normalized) is for an allowed domain.
    pub fn allows(&self, address: &str) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        let Some((_, domain)) = address.rsplit_once('@') else {
            return false;
        };
        self.entries.iter().any(|e| match e.strip_prefix('@') {
            Some(exact) => domain == exact,
            None => domain == e || domain.strip_suffix(e.as_str()).is_some_and(|sub| sub.ends_with('.')),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_allows_everything() {
        assert!(AllowedDomains::default().allows("x@anything.example"));
    }

    #[test]
    fn suffix_and_exact_entries() {
        let a = AllowedDomains::parse("# ours\nexample.com\n@example.org\n");
        assert!(a.allows("u@example.com"));
        assert!(a.allows("u@mail.example.com"));
        assert!(!a.allows("u@badexample.com"));
        assert!(a.allows("u@example.org"));
        assert!(!a.allows("u@sub.example.org"));
        assert!(!a.allows("u@example.net"));
        assert!(!a.allows("no-domain"));
    }
}
