//! Greylisting rules: the (ip, helo, from, to) tuple, when a retry passes,
//! when records expire, and when a source is trapped. [`decide`] is pure
//! (evidence in, decision out); [`record_tuple`] applies its decision to the
//! database in one transaction.
//!
//! Beyond spamd, a retry may come from another address of the same sender:
//! from inside the same aggregation prefix (postgrey's lookup by subnet), or
//! from an address that, like the first one, passes SPF for the MAIL FROM
//! domain. Tuples are still stored per address exactly as spamd stores them.

mod allowed;

pub use allowed::AllowedDomains;

use std::net::IpAddr;
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

pub use crate::db::GreyTuple;
use crate::db::{DbError, GreyEntry, TrappedEntry, Tx, WhiteEntry};

/// The greylisting times (spamd's -G passtime:greyexp:whiteexp and its 24 h
/// trap time) and the prefixes retries are matched by.
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
    /// A retry from an IPv4 address inside this prefix of the first one counts (32: the same address only).
    pub aggregate_v4: u8,
    /// The same for IPv6; 64 lets a sender rotate addresses inside its /64.
    pub aggregate_v6: u8,
}

impl Default for GreyRules {
    fn default() -> Self {
        GreyRules {
            passtime: Duration::from_secs(25 * 60),
            greyexp: Duration::from_secs(4 * 3600),
            whiteexp: Duration::from_secs(36 * 24 * 3600),
            trapexp: Duration::from_secs(24 * 3600),
            aggregate_v4: 32,
            aggregate_v6: 64,
        }
    }
}

impl GreyRules {
    /// Whether `a` and `b` are one source under the aggregation prefixes.
    pub fn same_source(&self, a: IpAddr, b: IpAddr) -> bool {
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Net::new(a, self.aggregate_v4).is_ok_and(|n| n.contains(&b)),
            (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Net::new(a, self.aggregate_v6).is_ok_and(|n| n.contains(&b)),
            _ => false,
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

    /// The name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            TrapReason::Spamtrap => "spamtrap",
            TrapReason::DomainNotAllowed => "alloweddomains",
            TrapReason::LowPriorityMx => "low_priority_mx",
        }
    }
}

/// Why a retry whitelisted its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromoteReason {
    /// The same tuple from the same address, as in spamd.
    Retry,
    /// The tuple first came from another address inside the aggregation prefix.
    Subnet,
    /// The tuple first came from another address, and both pass SPF for the MAIL FROM domain.
    Spf,
}

impl PromoteReason {
    /// The name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PromoteReason::Retry => "retry",
            PromoteReason::Subnet => "subnet",
            PromoteReason::Spf => "spf",
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
    /// Retried after passtime: these sources are whitelisted now, the
    /// retrying one first, then the one the tuple first came from if another.
    Promote(Vec<WhiteEntry>, PromoteReason),
}

/// Facts about the tuple that the database does not hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct TupleFacts {
    pub to_is_spamtrap: bool,
    pub to_domain_allowed: bool,
    /// The connection arrived on the -M low-priority MX address.
    pub on_low_priority_mx: bool,
}

/// What DNS said about the sender, gathered before deciding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Addresses that pass SPF for the tuple's MAIL FROM domain.
    pub spf_pass: Vec<IpAddr>,
}

/// The same sender and recipient: a retry of `tuple` from any address.
fn same_pair(e: &GreyEntry, tuple: &GreyTuple) -> bool {
    e.tuple.from == tuple.from && e.tuple.to == tuple.to
}

/// A live entry of `seen` whose retry `tuple` is, without DNS evidence, and why.
fn retried<'a>(
    tuple: &GreyTuple,
    seen: &'a [GreyEntry],
    rules: &GreyRules,
    now: i64,
) -> Option<(&'a GreyEntry, PromoteReason)> {
    let passed = |e: &&GreyEntry| same_pair(e, tuple) && e.expire > now && now >= e.pass;
    seen.iter()
        .filter(passed)
        .find(|e| e.tuple == *tuple)
        .map(|e| (e, PromoteReason::Retry))
        .or_else(|| {
            seen.iter()
                .filter(passed)
                .find(|e| e.tuple.helo == tuple.helo && rules.same_source(e.tuple.ip, tuple.ip))
                .map(|e| (e, PromoteReason::Subnet))
        })
}

/// Addresses that first sent this sender-recipient pair and have waited out
/// the pass time: if SPF passes for them and for `tuple`'s address, the
/// retry counts. Empty when `tuple` passes (or cannot) without that evidence.
/// The HELO may differ: hosts of one pool greet with their own names.
pub fn spf_candidates(tuple: &GreyTuple, seen: &[GreyEntry], rules: &GreyRules, now: i64) -> Vec<IpAddr> {
    if retried(tuple, seen, rules, now).is_some() {
        return Vec::new();
    }
    let mut ips: Vec<IpAddr> = seen
        .iter()
        .filter(|e| same_pair(e, tuple) && e.expire > now && now >= e.pass && e.tuple.ip != tuple.ip)
        .map(|e| e.tuple.ip)
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// The spamd rules for one tuple, given the live grey entries `seen` for its
/// sender and recipient (from any address) and what DNS said.
pub fn decide(
    tuple: &GreyTuple,
    seen: &[GreyEntry],
    facts: TupleFacts,
    evidence: &Evidence,
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
    let spf = || {
        let pass = |ip| evidence.spf_pass.contains(&ip);
        seen.iter()
            .filter(|e| same_pair(e, tuple) && e.expire > now && now >= e.pass)
            .find(|e| pass(tuple.ip) && e.tuple.ip != tuple.ip && pass(e.tuple.ip))
            .map(|e| (e, PromoteReason::Spf))
    };
    if let Some((e, reason)) = retried(tuple, seen, rules, now).or_else(spf) {
        let white = |ip| WhiteEntry {
            ip,
            first: e.first,
            pass: now,
            expire: now + secs(rules.whiteexp),
            bcount: e.bcount,
            pcount: e.pcount + 1,
        };
        let mut whites = vec![white(tuple.ip)];
        if e.tuple.ip != tuple.ip {
            whites.push(white(e.tuple.ip));
        }
        return Decision::Promote(whites, reason);
    }
    match seen.iter().find(|e| e.tuple == *tuple && e.expire > now) {
        None if facts.on_low_priority_mx => trap(TrapReason::LowPriorityMx),
        None => Decision::NewGrey(GreyEntry {
            tuple: tuple.clone(),
            first: now,
            pass: now + secs(rules.passtime),
            expire: now + secs(rules.greyexp),
            bcount: 1,
            pcount: 0,
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
    evidence: &Evidence,
    rules: &GreyRules,
    now: i64,
) -> Result<Decision, DbError> {
    let to = dequote(&tuple.to);
    let facts = TupleFacts {
        to_is_spamtrap: tx.is_spamtrap(&to)?,
        to_domain_allowed: allowed.allows(&to),
        on_low_priority_mx,
    };
    let seen = tx.greys_for(&tuple.from, &tuple.to)?;
    let decision = decide(tuple, &seen, facts, evidence, rules, now);
    match &decision {
        Decision::Trap(t, _) => {
            tx.put_trapped(t)?;
            tx.delete_grey(tuple.ip, None)?;
        }
        Decision::NewGrey(g) | Decision::StillGrey(g) => tx.put_grey(g)?,
        Decision::Promote(whites, _) => {
            for w in whites {
                tx.put_white(w)?;
                tx.delete_grey(w.ip, None)?;
            }
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

    fn none() -> Evidence {
        Evidence::default()
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
        match decide(&tuple(), &[], ok(), &none(), &rules, 1000) {
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
        let Decision::NewGrey(g) = decide(&tuple(), &[], ok(), &none(), &rules, 1000) else {
            panic!()
        };
        let Decision::StillGrey(g2) = decide(&tuple(), std::slice::from_ref(&g), ok(), &none(), &rules, 1000 + 60)
        else {
            panic!()
        };
        assert_eq!(g2.bcount, 2);
        assert_eq!(g2.first, 1000);
        let Decision::Promote(w, PromoteReason::Retry) =
            decide(&tuple(), std::slice::from_ref(&g2), ok(), &none(), &rules, g.pass)
        else {
            panic!()
        };
        assert_eq!(w.len(), 1, "only the retrying address is whitelisted");
        let w = &w[0];
        assert_eq!(
            (w.first, w.pass, w.expire, w.bcount, w.pcount),
            (1000, g.pass, g.pass + 36 * 86400, 2, 1)
        );
    }

    #[test]
    fn expired_grey_entry_starts_over() {
        let rules = GreyRules::default();
        let Decision::NewGrey(g) = decide(&tuple(), &[], ok(), &none(), &rules, 1000) else {
            panic!()
        };
        assert!(
            matches!(decide(&tuple(), std::slice::from_ref(&g), ok(), &none(), &rules, g.expire), Decision::NewGrey(n) if n.first == g.expire)
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
            decide(&tuple(), &[], spamtrap, &none(), &rules, 5),
            Decision::Trap(t, TrapReason::Spamtrap) if t.expire == 5 + 86400
        ));
        let foreign = TupleFacts {
            to_domain_allowed: false,
            ..ok()
        };
        assert!(matches!(
            decide(&tuple(), &[], foreign, &none(), &rules, 5),
            Decision::Trap(_, TrapReason::DomainNotAllowed)
        ));
        let lowmx = TupleFacts {
            on_low_priority_mx: true,
            ..ok()
        };
        assert!(matches!(
            decide(&tuple(), &[], lowmx, &none(), &rules, 5),
            Decision::Trap(_, TrapReason::LowPriorityMx)
        ));
        // A tuple already greylisted (seen on the primary MX) is not trapped on the backup.
        let Decision::NewGrey(g) = decide(&tuple(), &[], ok(), &none(), &rules, 5) else {
            panic!()
        };
        assert!(matches!(
            decide(&tuple(), std::slice::from_ref(&g), lowmx, &none(), &rules, 6),
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

    fn from(ip: &str, helo: &str) -> GreyTuple {
        GreyTuple {
            ip: ip.parse().unwrap(),
            helo: helo.into(),
            ..tuple()
        }
    }

    /// The entry greylisted at 1000 for `t`, and the time it may pass.
    fn first_sight(t: &GreyTuple, rules: &GreyRules) -> (GreyEntry, i64) {
        let Decision::NewGrey(g) = decide(t, &[], ok(), &none(), rules, 1000) else {
            panic!()
        };
        let pass = g.pass;
        (g, pass)
    }

    fn promoted(d: &Decision) -> Option<(Vec<String>, PromoteReason)> {
        match d {
            Decision::Promote(w, r) => Some((w.iter().map(|w| w.ip.to_string()).collect(), *r)),
            _ => None,
        }
    }

    #[test]
    fn ipv6_retry_inside_the_64_whitelists_both_addresses() {
        let rules = GreyRules::default();
        let (g, pass) = first_sight(&from("2001:db8:1:2::10", "mx6"), &rules);
        let retry = from("2001:db8:1:2:aaaa::7", "mx6");
        let seen = [g];
        assert!(matches!(
            decide(&retry, &seen, ok(), &none(), &rules, pass - 1),
            Decision::NewGrey(n) if n.tuple.ip == retry.ip
        ));
        assert_eq!(
            promoted(&decide(&retry, &seen, ok(), &none(), &rules, pass)),
            Some((
                vec!["2001:db8:1:2:aaaa::7".into(), "2001:db8:1:2::10".into()],
                PromoteReason::Subnet
            ))
        );
        let outside = from("2001:db8:1:3::10", "mx6");
        assert!(matches!(
            decide(&outside, &seen, ok(), &none(), &rules, pass),
            Decision::NewGrey(_)
        ));
        // The HELO is part of the tuple, as in spamd.
        assert!(matches!(
            decide(&from("2001:db8:1:2::11", "other"), &seen, ok(), &none(), &rules, pass),
            Decision::NewGrey(_)
        ));
    }

    #[test]
    fn ipv4_is_matched_by_address_unless_aggregated() {
        let mut rules = GreyRules::default();
        let (g, pass) = first_sight(&from("192.0.2.7", "mx"), &rules);
        let retry = from("192.0.2.200", "mx");
        let seen = [g];
        assert!(matches!(
            decide(&retry, &seen, ok(), &none(), &rules, pass),
            Decision::NewGrey(_)
        ));
        rules.aggregate_v4 = 24;
        assert_eq!(
            promoted(&decide(&retry, &seen, ok(), &none(), &rules, pass)).map(|p| p.1),
            Some(PromoteReason::Subnet)
        );
    }

    #[test]
    fn spf_pass_for_both_addresses_promotes_a_pool_retry() {
        let rules = GreyRules::default();
        let (g, pass) = first_sight(&from("198.51.100.1", "out1.pool"), &rules);
        let retry = from("203.0.113.9", "out2.pool");
        let seen = [g];
        assert_eq!(
            spf_candidates(&retry, &seen, &rules, pass),
            vec!["198.51.100.1".parse::<IpAddr>().unwrap()]
        );
        assert!(
            spf_candidates(&retry, &seen, &rules, pass - 1).is_empty(),
            "not yet past the pass time"
        );
        let both = Evidence {
            spf_pass: vec!["198.51.100.1".parse().unwrap(), "203.0.113.9".parse().unwrap()],
        };
        assert_eq!(
            promoted(&decide(&retry, &seen, ok(), &both, &rules, pass)),
            Some((vec!["203.0.113.9".into(), "198.51.100.1".into()], PromoteReason::Spf))
        );
        assert!(matches!(
            decide(&retry, &seen, ok(), &both, &rules, pass - 1),
            Decision::NewGrey(_)
        ));
        // Only one of the two passing is not the same sender.
        for one in ["198.51.100.1", "203.0.113.9"] {
            let one = Evidence {
                spf_pass: vec![one.parse().unwrap()],
            };
            assert!(matches!(
                decide(&retry, &seen, ok(), &one, &rules, pass),
                Decision::NewGrey(_)
            ));
        }
        // Another recipient is another tuple.
        let other_rcpt = GreyTuple {
            to: "<c@example.com>".into(),
            ..retry.clone()
        };
        assert!(spf_candidates(&other_rcpt, &seen, &rules, pass).is_empty());
    }

    #[test]
    fn an_exact_retry_needs_no_spf_lookup() {
        let rules = GreyRules::default();
        let (g, pass) = first_sight(&tuple(), &rules);
        assert!(spf_candidates(&tuple(), &[g], &rules, pass).is_empty());
    }
}
