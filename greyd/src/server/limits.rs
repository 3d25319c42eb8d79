//! How many tarpit connections greyd holds at once: at most `maxcon` in all
//! and `max_per_source` from one source (an IPv4 address or an IPv6 /64), so
//! one address cannot fill the tarpit. A slot is claimed in the accept loop,
//! before the connection's task starts, and released when its [`Slot`]
//! drops, so the count is exact under any burst. Passed connections
//! (WHITE, allow lists, `nospamd`) claim nothing, as a kernel filter would
//! never have sent them to greyd.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The unit the per-source cap counts: one IPv4 address, or one IPv6 /64
/// (what a single customer of an ISP is usually given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    V6Net([u8; 8]),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut net = [0u8; 8];
                    net.copy_from_slice(&v6.octets()[..8]);
                    Source::V6Net(net)
                }
            },
        }
    }
}

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `maxcon` tarpit connections are open.
    Full,
    /// This source holds `max_per_source` of them.
    SourceFull,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<Source, usize>,
}

/// The open tarpit connections, counted.
#[derive(Debug)]
pub struct Limits {
    maxcon: usize,
    max_per_source: usize,
    open: Mutex<Open>,
}

impl Limits {
    pub fn new(maxcon: usize, max_per_source: usize) -> Arc<Limits> {
        Arc::new(Limits {
            maxcon,
            max_per_source,
            open: Mutex::new(Open::default()),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim a slot for a tarpit connection from `ip`, if both limits allow.
    pub fn claim(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let source = Source::from(ip);
        let mut open = self.open();
        if open.total >= self.maxcon {
            return Err(Refusal::Full);
        }
        let held = open.by_source.entry(source).or_insert(0);
        if *held >= self.max_per_source {
            return Err(Refusal::SourceFull);
        }
        *held += 1;
        open.total += 1;
        Ok(Slot {
            limits: Arc::clone(self),
            source,
        })
    }

    /// Tarpit connections open now.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.open().total
    }
}

/// One claimed tarpit connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Limits>,
    source: Source,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open();
        open.total -= 1;
        if let Some(held) = open.by_source.get_mut(&self.source) {
            *held -= 1;
            if *held == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_cap_counts_ipv4_addresses_and_ipv6_slash_64s() {
        let limits = Limits::new(100, 2);
        let a = [
            limits.claim(ip("192.0.2.1")).unwrap(),
            limits.claim(ip("::ffff:192.0.2.1")).unwrap(),
        ];
        assert_eq!(limits.claim(ip("192.0.2.1")).unwrap_err(), Refusal::SourceFull);
        let _other = limits.claim(ip("192.0.2.2")).unwrap();
        let _v6 = [
            limits.claim(ip("2001:db8::1")).unwrap(),
            limits.claim(ip("2001:db8::ffff:2")).unwrap(),
        ];
        assert_eq!(
            limits.claim(ip("2001:db8::3")).unwrap_err(),
            Refusal::SourceFull,
            "same /64"
        );
        let _next_net = limits.claim(ip("2001:db8:0:1::1")).unwrap();
        drop(a);
        let _again = limits.claim(ip("192.0.2.1")).unwrap();
        assert_eq!(limits.total(), 5);
    }

    #[test]
    fn maxcon_is_checked_before_the_source() {
        let limits = Limits::new(1, 5);
        let held = limits.claim(ip("192.0.2.1")).unwrap();
        assert_eq!(limits.claim(ip("192.0.2.9")).unwrap_err(), Refusal::Full);
        drop(held);
        assert!(limits.claim(ip("192.0.2.9")).is_ok());
    }

    proptest! {
        /// Whatever the order of claims and releases, neither limit is passed
        /// and every release gives its slot back.
        #[test]
        fn limits_hold_and_slots_come_back(ops in proptest::collection::vec((0u8..6, any::<bool>()), 0..200)) {
            let limits = Limits::new(7, 3);
            let mut held: Vec<(u8, Slot)> = Vec::new();
            for (src, release) in ops {
                if release && !held.is_empty() {
                    held.swap_remove(usize::from(src) % held.len());
                } else if let Ok(slot) = limits.claim(IpAddr::from([192, 0, 2, src])) {
                    held.push((src, slot));
                }
                prop_assert!(limits.total() <= 7);
                prop_assert_eq!(limits.total(), held.len());
                for s in 0..6 {
                    prop_assert!(held.iter().filter(|(h, _)| *h == s).count() <= 3);
                }
            }
            drop(held);
            prop_assert_eq!(limits.total(), 0);
            prop_assert!(limits.open().by_source.is_empty());
        }
    }
}
