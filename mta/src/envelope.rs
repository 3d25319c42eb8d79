//! The envelope's vocabulary, below every protocol that carries it: an
//! address (`local@domain`), the MAIL FROM and RCPT TO parameters, and the syntax
//! checks of RFC 5321 local parts and domains. Pure: no I/O.

use thiserror::Error;

/// Not an RFC 5321 `local@domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("bad address syntax")]
pub struct BadAddress;

/// An address `local@domain` as given on the wire (source routes stripped).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl Address {
    /// Parse `local@domain` (no angle brackets); `utf8` allows non-ASCII (SMTPUTF8).
    pub fn parse(s: &str, utf8: bool) -> Result<Address, BadAddress> {
        let at = s.rfind('@').ok_or(BadAddress)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if !valid_local(local, utf8) || !valid_domain(domain, utf8) {
            return Err(BadAddress);
        }
        Ok(Address {
            local: local.to_string(),
            domain: domain.to_string(),
        })
    }
}

/// Parameters of MAIL FROM that we understand (RFC 1870, 6152, 3461, 6531, 4954).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Body {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ret {
    Full,
    Hdrs,
}

/// DSN parameters of RCPT TO (RFC 3461), kept for the DSNs the relay will send.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RcptParams {
    /// NOTIFY keywords as given (NEVER, SUCCESS, FAILURE, DELAY).
    pub notify: Vec<String>,
    pub orcpt: Option<String>,
}

fn atext(c: char, utf8: bool) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || (utf8 && !c.is_ascii())
}

/// Dot-string or quoted-string (RFC 5321 4.1.2), at most 64 octets.
fn valid_local(s: &str, utf8: bool) -> bool {
    if s.is_empty() || s.len() > 64 {
        return false;
    }
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                if !(' '..='~').contains(&c) {
                    return false;
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || !((' '..='~').contains(&c) || (utf8 && !c.is_ascii())) {
                return false;
            }
        }
        return !escaped;
    }
    s.split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(|c| atext(c, utf8)))
}

/// A domain name of letters, digits and hyphens, or an address literal.
pub fn valid_domain(s: &str, utf8: bool) -> bool {
    if let Some(lit) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return match lit.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => lit.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || (utf8 && !c.is_ascii()))
        })
}
