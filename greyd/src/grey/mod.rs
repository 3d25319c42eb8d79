//! Greylisting rules: the (ip, helo, from, to) tuple, when a retry passes,
//! when records expire, and when a source is trapped. [`decide`] is pure;
//! [`record_tuple`] applies its decision to the database in one transaction.

mod allowed;

pub use allowed::AllowedDomains;

use std::net::IpAddr;
use std::time::Duration;

pub use crate::db::GreyTuple;
use crate::db::{DbError, GreyEntry, TrappedEntry, Tx, WhiteEntry};

/// The greylisting times (spamd's -G passtime:greyexp:whiteexp and its 24 h trap time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreyRules {
    /// A tuple retried this long after first sight passes.
    pub passtime: Duration,
    /// Grey entries that never pass are forgotten after this.
    pub greyexp: Duration,
    /// White entries live this long after their last pass.
    pub whiteexp: Duration,
    /// Trapped sources stay blacklisted this long.
    pub trapexp: Duration,
}

impl Default for GreyRules {
    fn default() -> Self {
        GreyRules {
            passtime: Duration::from_secs(25 * 60),
            greyexp: Duration::from_secs(4 * 3600),
            whiteexp: Duration::from_secs(36 * 24 * 3600),
            trapexp: Duration::from_secs(24 * 3600),
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Why a source was trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapReason {
    /// The recipient is a spamtrap address.
    Spamtrap,
    /// The recipient's domain is not one of the allowed domains.
    DomainNotAllowed,
    /// A new tuple arrived on the low-priority MX address (-M).
    LowPriorityMx,
}

impl TrapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TrapReason::Spamtrap => "spamtrap",
            TrapReason::DomainNotAllowed => "recipient domain not allowed",
            TrapReason::LowPriorityMx => "new tuple on low-priority MX",
        }
    }
}

/// What a tuple seen at RCPT does to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Blacklist the source until `TrappedEntry::expire`.
    Trap(TrappedEntry, TrapReason),
    /// First sight (or first since the old entry expired).
    NewGrey(GreyEntry),
    /// Retried too soon: counted as blocked.
    StillGrey(GreyEntry),
    /// Retried after passtime: the source is whitelisted now.
    Promote(WhiteEntry),
}

/// Facts about the tuple that the database does not hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct TupleFacts {
    pub to_is_spamtrap: bool,
    pub to_domain_allowed: bool,
    /// The connection arrived on the -M low-priority MX address.
    pub on_low_priority_mx: bool,
}

/// The spamd rules for one tuple, given its existing entry (if any).
pub fn decide(
    tuple: &GreyTuple,
    existing: Option<&GreyEntry>,
    facts: TupleFacts,
    rules: &GreyRules,
    now: i64,
) -> Decision {
    let trap = |reason| {
        Decision::Trap(
            TrappedEntry {
                ip: tuple.ip,
                expire: now + secs(rules.trapexp),
            },
            reason,
        )
    };
    if facts.to_is_spamtrap {
        return trap(TrapReason::Spamtrap);
    }
    if !facts.to_domain_allowed {
        return trap(TrapReason::DomainNotAllowed);
    }
    match existing.filter(|e| e.expire > now) {
        None if facts.on_low_priority_mx => trap(TrapReason::LowPriorityMx),
        None => Decision::NewGrey(GreyEntry {
            tuple: tuple.clone(),
            first: now,
            pass: now + secs(rules.passtime),
            expire: now + secs(rules.greyexp),
            bcount: 1,
            pcount: 0,
        }),
        Some(e) if now >= e.pass => Decision::Promote(WhiteEntry {
            ip: tuple.ip,
            first: e.first,
            pass: now,
            expire: now + secs(rules.whiteexp),
            bcount: e.bcount,
            pcount: e.pcount + 1,
        }),
        Some(e) => Decision::StillGrey(GreyEntry {
            bcount: e.bcount + 1,
            ..e.clone()
        }),
    }
}

/// Decide on `tuple` and store the outcome, in the caller's transaction.
pub fn record_tuple(
    tx: &Tx<'_>,
    tuple: &GreyTuple,
    allowed: &AllowedDomains,
    on_low_priority_mx: bool,
    rules: &GreyRules,
    now: i64,
) -> Result<Decision, DbError> {
    let to = dequote(&tuple.to);
    let facts = TupleFacts {
        to_is_spamtrap: tx.is_spamtrap(&to)?,
        to_domain_allowed: allowed.allows(&to),
        on_low_priority_mx,
    };
    let decision = decide(tuple, tx.grey(tuple)?.as_ref(), facts, rules, now);
    match &decision {
        Decision::Trap(t, _) => {
            tx.put_trapped(t)?;
            tx.delete_grey(tuple.ip, None)?;
        }
        Decision::NewGrey(g) | Decision::StillGrey(g) => tx.put_grey(g)?,
        Decision::Promote(w) => {
            tx.put_white(w)?;
            tx.delete_grey(tuple.ip, None)?;
        }
    }
    Ok(decision)
}

/// A whitelisted source passed again: refresh its expiry (spamlogd's role).
pub fn refresh_white(tx: &Tx<'_>, ip: IpAddr, rules: &GreyRules, now: i64) -> Result<WhiteEntry, DbError> {
    let entry = match tx.white(ip)? {
        Some(w) => WhiteEntry {
            pass: now,
            expire: now + secs(rules.whiteexp),
            pcount: w.pcount + 1,
            ..w
        },
        None => WhiteEntry {
            ip,
            first: now,
            pass: now,
            expire: now + secs(rules.whiteexp),
            bcount: 0,
            pcount: 1,
        },
    };
    tx.put_white(&entry)?;
    Ok(entry)
}

/// Trap `ip` by hand (greydb -t -a), for the usual trap time.
pub fn trap(tx: &Tx<'_>, ip: IpAddr, rules: &GreyRules, now: i64) -> Result<TrappedEntry, DbError> {
    let entry = TrappedEntry {
        ip,
        expire: now + secs(rules.trapexp),
    };
    tx.put_trapped(&entry)?;
    Ok(entry)
}

/// An address as spamtraps and allowed domains are compared (spamd's
/// `dequotetolower`): one leading `<` and one final `>` removed, lower-cased.
pub fn dequote(address: &str) -> String {
    let inner = address.strip_prefix('<').unwrap_or(address);
    let inner = inner.strip_suffix('>').unwrap_or(inner);
    inner.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> GreyTuple {
        GreyTuple {
            ip: "192.0.2.7".parse().unwrap(),
            helo: "mx.example.org".into(),
            from: "<a@example.org>".into(),
            to: "<b@example.com>".into(),
        }
    }

    fn ok() -> TupleFacts {
        TupleFacts {
            to_domain_allowed: true,
            ..TupleFacts::default()
        }
    }

    #[test]
    fn first_sight_greylists_with_spamd_times() {
        let rules = GreyRules::default();
        match decide(&tuple(), None, ok(), &rules, 1000) {
            Decision::NewGrey(g) => {
                assert_eq!((g.first, g.pass, g.expire), (1000, 1000 + 25 * 60, 1000 + 4 * 3600));
                assert_eq!((g.bcount, g.pcount), (1, 0));
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn early_retry_counts_as_blocked_and_late_retry_promotes() {
        let rules = GreyRules::default();
        let Decision::NewGrey(g) = decide(&tuple(), None, ok(), &rules, 1000) else {
            panic!()
        };
        let Decision::StillGrey(g2) = decide(&tuple(), Some(&g), ok(), &rules, 1000 + 60) else {
            panic!()
        };
        assert_eq!(g2.bcount, 2);
        assert_eq!(g2.first, 1000);
        let Decision::Promote(w) = decide(&tuple(), Some(&g2), ok(), &rules, g.pass) else {
            panic!()
        };
        assert_eq!(
            (w.first, w.pass, w.expire, w.bcount, w.pcount),
            (1000, g.pass, g.pass + 36 * 86400, 2, 1)
        );
    }

    #[test]
    fn expired_grey_entry_starts_over() {
        let rules = GreyRules::default();
        let Decision::NewGrey(g) = decide(&tuple(), None, ok(), &rules, 1000) else {
            panic!()
        };
        assert!(
            matches!(decide(&tuple(), Some(&g), ok(), &rules, g.expire), Decision::NewGrey(n) if n.first == g.expire)
        );
    }

    #[test]
    fn traps() {
        let rules = GreyRules::default();
        let spamtrap = TupleFacts {
            to_is_spamtrap: true,
            ..ok()
        };
        assert!(matches!(
            decide(&tuple(), None, spamtrap, &rules, 5),
            Decision::Trap(t, TrapReason::Spamtrap) if t.expire == 5 + 86400
        ));
        let foreign = TupleFacts {
            to_domain_allowed: false,
            ..ok()
        };
        assert!(matches!(
            decide(&tuple(), None, foreign, &rules, 5),
            Decision::Trap(_, TrapReason::DomainNotAllowed)
        ));
        let lowmx = TupleFacts {
            on_low_priority_mx: true,
            ..ok()
        };
        assert!(matches!(
            decide(&tuple(), None, lowmx, &rules, 5),
            Decision::Trap(_, TrapReason::LowPriorityMx)
        ));
        // A tuple already greylisted (seen on the primary MX) is not trapped on the backup.
        let Decision::NewGrey(g) = decide(&tuple(), None, ok(), &rules, 5) else {
            panic!()
        };
        assert!(matches!(
            decide(&tuple(), Some(&g), lowmx, &rules, 6),
            Decision::StillGrey(_)
        ));
    }

    #[test]
    fn addresses_are_dequoted_as_spamd_does() {
        assert_eq!(dequote("<Bob@Example.COM>"), "bob@example.com");
        assert_eq!(dequote("bob@x.org"), "bob@x.org");
        assert_eq!(dequote("<>"), "");
        assert_eq!(dequote("<<a@b>>"), "<a@b>");
    }
}
