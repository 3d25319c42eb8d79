//! The control socket: a Unix stream socket (mode 0660) on which greydb,
//! greyd-setup and the MTA talk to a running greyd.
//!
//! The protocol is JSON lines: one [`Request`] per line, answered by one
//! [`Response`] line. Parsing is pure ([`Request::parse`]) and bounded by
//! [`MAX_REQUEST`], so a client cannot make greyd buffer without limit.

mod apply;
mod client;

pub use apply::{ApplyError, Effects, apply, canonical};
pub use client::{Client, ClientError};

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::db::Entry;
pub use crate::db::{ListInfo, ListKind};
pub use crate::metrics::Numbers;
pub use crate::sync::SyncPeer;

/// Largest request line accepted: room for a million IPv6 prefixes.
pub const MAX_REQUEST: usize = 64 << 20;

/// The kinds of database entries a request can add or delete (spamdb's -t, -T, -G).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    White,
    Grey,
    Trapped,
    Spamtrap,
}

/// One control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create or atomically replace the named list.
    LoadList {
        name: String,
        kind: ListKind,
        /// Reply text for black lists; `%A` becomes the client address, `\n` starts a new reply line.
        #[serde(default)]
        message: String,
        /// Also drop these sources in the kernel filter (greyd-setup -b).
        #[serde(default)]
        hard_block: bool,
        entries: Vec<IpNet>,
    },
    /// Remove a named list (absent lists are not an error).
    DropList { name: String },
    /// Names, kinds and sizes of the loaded lists.
    ListLists,
    /// Add (or refresh) entries: IPs for White/Trapped, addresses for Spamtrap.
    Add { kind: EntryKind, keys: Vec<String> },
    /// Delete entries. For Grey a key is an IP (all its tuples) or `ip|helo|from|to`.
    Delete { kind: EntryKind, keys: Vec<String> },
    /// All entries, or those whose IP or address equals one of `keys`.
    Dump {
        #[serde(default)]
        keys: Vec<String>,
    },
    /// The MTA delivered to this host: whitelist it (spamlogd's outbound role).
    OutboundPeer { ip: IpAddr },
    /// What a running greyd is doing: its numbers, lists and sync peers.
    Stats,
}

/// One control response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    Ok {
        /// How many entries or lists the request changed.
        changed: usize,
    },
    Entries {
        entries: Vec<Entry>,
    },
    Lists {
        lists: Vec<ListInfo>,
    },
    Stats(Box<Stats>),
    Error {
        message: String,
    },
}

/// The answer to [`Request::Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// When this greyd started (seconds since the epoch): counts since start begin there.
    pub started: i64,
    pub numbers: Numbers,
    pub lists: Vec<ListInfo>,
    pub peers: Vec<SyncPeer>,
}

/// Why a request line was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("request longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("bad request: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl Request {
    /// Parse one request line (trailing CR/LF allowed).
    pub fn parse(line: &[u8]) -> Result<Request, ProtocolError> {
        if line.len() > MAX_REQUEST {
            return Err(ProtocolError::TooLong);
        }
        Ok(serde_json::from_slice(line.trim_ascii_end())?)
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        encode_line(self)
    }
}

impl Response {
    pub fn parse(line: &[u8]) -> Result<Response, ProtocolError> {
        Ok(serde_json::from_slice(line.trim_ascii_end())?)
    }

    pub fn to_line(&self) -> Vec<u8> {
        encode_line(self)
    }

    pub fn error(message: impl std::fmt::Display) -> Response {
        Response::Error {
            message: message.to_string(),
        }
    }
}

fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain data types cannot fail.
    let mut line = serde_json::to_vec(value).expect("serializable");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn load_list_round_trips() {
        let req = Request::LoadList {
            name: "uatraps".into(),
            kind: ListKind::Black,
            message: "Your address %A is in the uatraps list".into(),
            hard_block: false,
            entries: vec!["192.0.2.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
        };
        let line = req.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(Request::parse(&line).unwrap(), req);
    }

    #[test]
    fn wire_form_is_readable_json() {
        let line = Request::parse(br#"{"op":"add","kind":"white","keys":["192.0.2.1"]}"#).unwrap();
        assert_eq!(
            line,
            Request::Add {
                kind: EntryKind::White,
                keys: vec!["192.0.2.1".into()]
            }
        );
    }

    #[test]
    fn stats_answer_round_trips() {
        let mut numbers = Numbers::default();
        numbers.open.insert("grey".into(), 2);
        numbers.today.funnel.greylisted = 5;
        numbers.top_trapped.push(crate::metrics::TrappedSource {
            ip: "192.0.2.9".parse().unwrap(),
            connections: 3,
        });
        let answer = Response::Stats(Box::new(Stats {
            started: 1_700_000_000,
            numbers,
            lists: vec![ListInfo {
                name: "uatraps".into(),
                kind: ListKind::Black,
                hard_block: false,
                entries: 12,
                loaded: Some(1_700_000_100),
            }],
            peers: vec![SyncPeer {
                addr: "127.0.0.1:8025".parse().unwrap(),
                last_out: Some(1_700_000_200),
                last_in: None,
            }],
        }));
        let line = answer.to_line();
        assert!(
            line.starts_with(br#"{"status":"stats","started":1700000000"#),
            "{}",
            String::from_utf8_lossy(&line)
        );
        assert_eq!(Response::parse(&line).unwrap(), answer);
        assert_eq!(Request::parse(br#"{"op":"stats"}"#).unwrap(), Request::Stats);
    }

    #[test]
    fn bad_requests_are_errors() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"op\":\"nope\"}",
            b"\0\0",
            b"{\"op\":\"load_list\",\"name\":1}",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Request::parse(&bytes);
        }

        #[test]
        fn dump_keys_round_trip(keys in proptest::collection::vec(".{0,40}", 0..8)) {
            let req = Request::Dump { keys };
            prop_assert_eq!(Request::parse(&req.to_line()).unwrap(), req);
        }
    }
}
