//! The named lists loaded through the control socket: black lists (tarpit
//! with the list's message) and allow lists (spamd's `<nospamd>`), with fast
//! lookup of the lists that contain a source address.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::db::ListKind;
use crate::db::StoredList;

/// One list ready for lookups: its nets as sorted, merged address ranges.
#[derive(Debug, Clone)]
pub struct List {
    pub stored: StoredList,
    ranges: Vec<(u128, u128)>,
}

/// IPv4 addresses live in the IPv4-mapped part of the IPv6 space, so one
/// range type covers both families.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(u128::from(v6), |v4| u128::from(v4.to_ipv6_mapped())),
    }
}

fn range(net: &IpNet) -> (u128, u128) {
    (key(net.network()), key(net.broadcast()))
}

impl List {
    pub fn new(stored: StoredList) -> List {
        let mut ranges: Vec<(u128, u128)> = stored.entries.iter().map(range).collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        List { stored, ranges: merged }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let k = key(ip);
        let i = self.ranges.partition_point(|&(lo, _)| lo <= k);
        i > 0 && self.ranges[i - 1].1 >= k
    }
}

/// All loaded lists, in name order.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    lists: Vec<List>,
}

impl Lists {
    pub fn new(stored: Vec<StoredList>) -> Lists {
        let mut lists = Lists::default();
        for s in stored {
            lists.replace(s);
        }
        lists
    }

    /// Add or replace the list with `stored.name`.
    pub fn replace(&mut self, stored: StoredList) {
        let list = List::new(stored);
        match self.lists.binary_search_by(|l| l.stored.name.cmp(&list.stored.name)) {
            Ok(i) => self.lists[i] = list,
            Err(i) => self.lists.insert(i, list),
        }
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.lists.len();
        self.lists.retain(|l| l.stored.name != name);
        self.lists.len() != before
    }

    pub fn iter(&self) -> impl Iterator<Item = &List> {
        self.lists.iter()
    }

    /// Whether an allow list contains `ip`.
    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.lists
            .iter()
            .any(|l| l.stored.kind == ListKind::Allow && l.contains(ip))
    }

    /// The black lists that contain `ip`.
    pub fn black_matches(&self, ip: IpAddr) -> Vec<&StoredList> {
        self.lists
            .iter()
            .filter(|l| l.stored.kind == ListKind::Black && l.contains(ip))
            .map(|l| &l.stored)
            .collect()
    }

    /// Every net of the lists marked for kernel blocking.
    pub fn hard_blocks(&self) -> Vec<IpNet> {
        self.lists
            .iter()
            .filter(|l| l.stored.hard_block)
            .flat_map(|l| l.stored.entries.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(kind: ListKind, nets: &[&str]) -> StoredList {
        StoredList {
            name: format!("{kind:?}"),
            kind,
            message: String::new(),
            hard_block: false,
            entries: nets.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn lookup_v4_v6_and_mapped() {
        let l = List::new(list(
            ListKind::Black,
            &["192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32"],
        ));
        assert!(l.contains("192.0.2.255".parse().unwrap()));
        assert!(!l.contains("192.0.3.0".parse().unwrap()));
        assert!(l.contains("198.51.100.7".parse().unwrap()));
        assert!(!l.contains("198.51.100.8".parse().unwrap()));
        assert!(l.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(l.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!l.contains("2001:db9::".parse().unwrap()));
    }

    #[test]
    fn kinds_are_kept_apart() {
        let lists = Lists::new(vec![
            list(ListKind::Black, &["10.0.0.0/8"]),
            list(ListKind::Allow, &["10.1.0.0/16"]),
        ]);
        let ip = "10.1.2.3".parse().unwrap();
        assert!(lists.allowed(ip));
        assert_eq!(lists.black_matches(ip).len(), 1);
        assert!(!lists.allowed("10.2.0.1".parse().unwrap()));
    }

    proptest! {
        #[test]
        fn contains_matches_brute_force(
            nets in proptest::collection::vec((any::<u32>(), 8u8..=32), 0..40),
            probes in proptest::collection::vec(any::<u32>(), 0..100),
        ) {
            let entries: Vec<IpNet> = nets
                .iter()
                .map(|&(a, p)| IpNet::new(IpAddr::V4(a.into()), p).unwrap().trunc())
                .collect();
            let l = List::new(StoredList { entries: entries.clone(), ..list(ListKind::Black, &[]) });
            for p in probes {
                let ip = IpAddr::V4(p.into());
                prop_assert_eq!(l.contains(ip), entries.iter().any(|n| n.contains(&ip)));
            }
        }
    }
}
