//! The record types and their spamdb(8) text form.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The greylisting key. `from` and `to` are the paths as the client sent
/// them (`<a@example.org>`), as spamd stores and syncs them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GreyTuple {
    pub ip: IpAddr,
    pub helo: String,
    pub from: String,
    pub to: String,
}

/// A greylisted tuple and its times (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreyEntry {
    #[serde(flatten)]
    pub tuple: GreyTuple,
    /// First seen.
    pub first: i64,
    /// From this time on a retry passes.
    pub pass: i64,
    pub expire: i64,
    /// Connections blocked (tarpitted) so far.
    pub bcount: i64,
    /// Connections passed so far.
    pub pcount: i64,
}

/// A whitelisted source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhiteEntry {
    pub ip: IpAddr,
    pub first: i64,
    pub pass: i64,
    pub expire: i64,
    pub bcount: i64,
    pub pcount: i64,
}

/// A source that mailed a spamtrap, blacklisted until `expire`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrappedEntry {
    pub ip: IpAddr,
    pub expire: i64,
}

/// Any database record, as greydb lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Entry {
    Grey(GreyEntry),
    White(WhiteEntry),
    Trapped(TrappedEntry),
    Spamtrap { address: String },
}

impl Entry {
    /// Whether `key` (an IP or a spamtrap address) names this entry.
    pub fn key_matches(&self, key: &str) -> bool {
        let ip = match self {
            Entry::Grey(g) => g.tuple.ip,
            Entry::White(w) => w.ip,
            Entry::Trapped(t) => t.ip,
            Entry::Spamtrap { address } => return address.eq_ignore_ascii_case(key),
        };
        key.parse::<IpAddr>() == Ok(ip)
    }
}

/// spamdb's line format.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Grey(g) => write!(
                f,
                "GREY|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                g.tuple.ip, g.tuple.helo, g.tuple.from, g.tuple.to, g.first, g.pass, g.expire, g.bcount, g.pcount
            ),
            Entry::White(w) => {
                write!(
                    f,
                    "WHITE|{}|||{}|{}|{}|{}|{}",
                    w.ip, w.first, w.pass, w.expire, w.bcount, w.pcount
                )
            }
            Entry::Trapped(t) => write!(f, "TRAPPED|{}|{}", t.ip, t.expire),
            Entry::Spamtrap { address } => write!(f, "SPAMTRAP|{address}"),
        }
    }
}
