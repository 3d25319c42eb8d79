//! What a control request does to the database, shared by the daemon (which
//! then applies the returned [`Effects`] to memory and the firewall) and by
//! greydb working on the file directly.

use std::net::IpAddr;

use super::{EntryKind, Request, Response};
use crate::db::{DbError, StoredList, Tx};
use crate::grey::{self, Decision, GreyRules, GreyTuple};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn bad(msg: impl Into<String>) -> ApplyError {
    ApplyError::Bad(msg.into())
}

/// Changes a running daemon must mirror in memory and in its firewall.
#[derive(Debug, Default)]
pub struct Effects {
    pub white_added: Vec<(IpAddr, i64)>,
    pub white_removed: Vec<IpAddr>,
    pub trapped_added: Vec<(IpAddr, i64)>,
    pub trapped_removed: Vec<IpAddr>,
    pub list_loaded: Option<StoredList>,
    pub list_dropped: Option<String>,
}

impl Effects {
    /// Add another change's white and trapped effects to these.
    pub fn extend(&mut self, other: Effects) {
        self.white_added.extend(other.white_added);
        self.white_removed.extend(other.white_removed);
        self.trapped_added.extend(other.trapped_added);
        self.trapped_removed.extend(other.trapped_removed);
    }
}

/// A greylisting decision's changes to the white and trapped sets.
impl From<&Decision> for Effects {
    fn from(decision: &Decision) -> Effects {
        let mut fx = Effects::default();
        match decision {
            Decision::Promote(whites, _) => fx.white_added.extend(whites.iter().map(|w| (w.ip, w.expire))),
            Decision::Trap(t, _) => fx.trapped_added.push((t.ip, t.expire)),
            Decision::NewGrey(_) | Decision::StillGrey(_) => {}
        }
        fx
    }
}

/// IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d; key them as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_ip(key: &str) -> Result<IpAddr, ApplyError> {
    key.parse::<IpAddr>()
        .map(canonical)
        .map_err(|_| bad(format!("not an IP address: {key:?}")))
}

fn parse_address(key: &str) -> Result<String, ApplyError> {
    let a = grey::dequote(key.trim());
    if a.contains('@') && !a.contains(char::is_whitespace) {
        Ok(a)
    } else {
        Err(bad(format!("not an email address: {key:?}")))
    }
}

/// A grey key: an IP (all its tuples) or `ip|helo|from|to`.
fn parse_grey_key(key: &str) -> Result<(IpAddr, Option<GreyTuple>), ApplyError> {
    let parts: Vec<&str> = key.split('|').collect();
    let ip = parse_ip(parts[0]).map_err(|_| bad(format!("grey key must be an IP or ip|helo|from|to: {key:?}")))?;
    match parts.as_slice() {
        [_] => Ok((ip, None)),
        [_, helo, from, to] => Ok((
            ip,
            Some(GreyTuple {
                ip,
                helo: helo.to_string(),
                from: from.to_string(),
                to: to.to_string(),
            }),
        )),
        _ => Err(bad(format!("grey key must be an IP or ip|helo|from|to: {key:?}"))),
    }
}

/// Validate every key before touching anything, so a bad key changes nothing.
fn parse_all<T>(keys: &[String], parse: impl Fn(&str) -> Result<T, ApplyError>) -> Result<Vec<T>, ApplyError> {
    if keys.is_empty() {
        return Err(bad("no keys given"));
    }
    keys.iter().map(|k| parse(k)).collect()
}

/// Apply `req` in `tx`.
pub fn apply(tx: &Tx<'_>, req: Request, rules: &GreyRules, now: i64) -> Result<(Response, Effects), ApplyError> {
    let mut fx = Effects::default();
    let changed = match req {
        Request::LoadList {
            name,
            kind,
            message,
            hard_block,
            entries,
        } => {
            if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(bad(format!("bad list name {name:?}")));
            }
            let list = StoredList {
                name,
                kind,
                message,
                hard_block,
                entries,
            };
            tx.put_list(&list, now)?;
            let n = list.entries.len();
            fx.list_loaded = Some(list);
            n
        }
        Request::DropList { name } => {
            let n = tx.delete_list(&name)?;
            fx.list_dropped = Some(name);
            n
        }
        Request::ListLists => {
            return Ok((
                Response::Lists {
                    lists: tx.list_infos()?,
                },
                fx,
            ));
        }
        Request::Dump { keys } => {
            return Ok((
                Response::Entries {
                    entries: tx.dump(&keys)?,
                },
                fx,
            ));
        }
        Request::Stats => return Err(bad("stats are kept by a running greyd, not in the database")),
        Request::OutboundPeer { ip } => {
            let w = grey::refresh_white(tx, canonical(ip), rules, now)?;
            fx.white_added.push((w.ip, w.expire));
            1
        }
        Request::Add {
            kind: EntryKind::White,
            keys,
        } => {
            for ip in parse_all(&keys, parse_ip)? {
                let w = grey::refresh_white(tx, ip, rules, now)?;
                fx.white_added.push((w.ip, w.expire));
            }
            fx.white_added.len()
        }
        Request::Add {
            kind: EntryKind::Trapped,
            keys,
        } => {
            for ip in parse_all(&keys, parse_ip)? {
                let t = grey::trap(tx, ip, rules, now)?;
                fx.trapped_added.push((t.ip, t.expire));
            }
            fx.trapped_added.len()
        }
        Request::Add {
            kind: EntryKind::Spamtrap,
            keys,
        } => parse_all(&keys, parse_address)?
            .iter()
            .map(|a| tx.add_spamtrap(a))
            .sum::<Result<usize, _>>()?,
        Request::Add {
            kind: EntryKind::Grey, ..
        } => {
            return Err(bad("GREY entries are made by the greylister, not added by hand"));
        }
        Request::Delete {
            kind: EntryKind::White,
            keys,
        } => {
            let mut n = 0;
            for ip in parse_all(&keys, parse_ip)? {
                n += tx.delete_white(ip)?;
                fx.white_removed.push(ip);
            }
            n
        }
        Request::Delete {
            kind: EntryKind::Trapped,
            keys,
        } => {
            let mut n = 0;
            for ip in parse_all(&keys, parse_ip)? {
                n += tx.delete_trapped(ip)?;
                fx.trapped_removed.push(ip);
            }
            n
        }
        Request::Delete {
            kind: EntryKind::Spamtrap,
            keys,
        } => parse_all(&keys, parse_address)?
            .iter()
            .map(|a| tx.delete_spamtrap(a))
            .sum::<Result<usize, _>>()?,
        Request::Delete {
            kind: EntryKind::Grey,
            keys,
        } => parse_all(&keys, parse_grey_key)?
            .iter()
            .map(|(ip, t)| tx.delete_grey(*ip, t.as_ref()))
            .sum::<Result<usize, _>>()?,
    };
    Ok((Response::Ok { changed }, fx))
}
