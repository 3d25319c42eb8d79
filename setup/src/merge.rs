//! Address sets as sorted, disjoint, non-adjacent ranges per family: built
//! from list entries, white lists subtracted, and written out as the minimal
//! set of non-overlapping CIDRs that covers exactly the same addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::parse::Entry;

/// A set of IPv4 and IPv6 addresses. IPv4 ranges are kept in `u128` so both
/// families share one implementation; they never exceed `u32::MAX`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl Set {
    pub fn from_entries(entries: &[Entry]) -> Set {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for e in entries {
            match *e {
                Entry::V4(lo, hi) => v4.push((u128::from(lo), u128::from(hi))),
                Entry::V6(lo, hi) => v6.push((lo, hi)),
            }
        }
        Set {
            v4: normalize(v4),
            v6: normalize(v6),
        }
    }

    /// The addresses of `self` that are not in `other`.
    pub fn subtract(&self, other: &Set) -> Set {
        Set {
            v4: subtract(&self.v4, &other.v4),
            v6: subtract(&self.v6, &other.v6),
        }
    }

    /// The minimal CIDR cover, IPv4 first, each family in address order.
    pub fn to_cidrs(&self) -> Vec<IpNet> {
        let mut out = Vec::new();
        for &(lo, hi) in &self.v4 {
            cidrs(lo, hi, 32, &mut |addr, prefix| {
                // lo..=hi came from u32 values, so addr fits.
                let a = Ipv4Addr::from(addr as u32);
                out.push(IpNet::V4(Ipv4Net::new_assert(a, prefix)));
            });
        }
        for &(lo, hi) in &self.v6 {
            cidrs(lo, hi, 128, &mut |addr, prefix| {
                out.push(IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(addr), prefix)));
            });
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// Sort and merge overlapping or adjacent ranges.
fn normalize(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Both inputs normalized; so is the result.
fn subtract(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &(lo, hi) in a {
        // Ranges of b wholly before this one cannot touch later ones either.
        while j < b.len() && b[j].1 < lo {
            j += 1;
        }
        let mut start = lo;
        let mut k = j;
        loop {
            match b.get(k) {
                Some(&(wlo, whi)) if wlo <= hi => {
                    if wlo > start {
                        out.push((start, wlo - 1));
                    }
                    if whi >= hi {
                        break;
                    }
                    start = whi + 1;
                    k += 1;
                }
                _ => {
                    out.push((start, hi));
                    break;
                }
            }
        }
    }
    out
}

/// Cut `lo..=hi` into the largest aligned blocks, calling `emit(network, prefix)`.
fn cidrs(mut lo: u128, hi: u128, bits: u32, emit: &mut dyn FnMut(u128, u8)) {
    loop {
        // The largest block aligned at lo that stays within the family and hi.
        let mut size = lo.trailing_zeros().min(bits);
        while size > 0 && !fits(lo, hi, size) {
            size -= 1;
        }
        emit(lo, (bits - size) as u8);
        match 1u128.checked_shl(size).and_then(|step| lo.checked_add(step)) {
            Some(next) if next <= hi => lo = next,
            _ => return,
        }
    }
}

/// Whether the block of 2^size addresses at lo ends at or before hi.
fn fits(lo: u128, hi: u128, size: u32) -> bool {
    match 1u128.checked_shl(size) {
        Some(step) => hi - lo >= step - 1,
        None => lo == 0 && hi == u128::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(lines: &str) -> Set {
        Set::from_entries(&crate::parse::parse_list(lines.as_bytes()).entries)
    }

    fn strings(s: &Set) -> Vec<String> {
        s.to_cidrs().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn white_punches_holes() {
        let black = set("10.0.0.0/24\n2001:db8::/126\n");
        let white = set("10.0.0.128/25\n10.0.0.1\n2001:db8::3\n");
        assert_eq!(
            strings(&black.subtract(&white)),
            [
                "10.0.0.0/32",
                "10.0.0.2/31",
                "10.0.0.4/30",
                "10.0.0.8/29",
                "10.0.0.16/28",
                "10.0.0.32/27",
                "10.0.0.64/26",
                "2001:db8::/127",
                "2001:db8::2/128"
            ]
        );
    }

    #[test]
    fn whole_spaces_and_edges() {
        assert_eq!(strings(&set("0.0.0.0 - 255.255.255.255")), ["0.0.0.0/0"]);
        assert_eq!(strings(&set("::/0")), ["::/0"]);
        assert_eq!(strings(&set("::/1\n8000::/1")), ["::/0"]);
        assert_eq!(
            strings(&set(
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe - ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            )),
            ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"]
        );
        assert_eq!(strings(&set("255.255.255.255")), ["255.255.255.255/32"]);
        assert!(set("10.0.0.0/8").subtract(&set("0.0.0.0/0")).is_empty());
    }

    /// Reference: membership of each of the 256 addresses of one /24 (or /120).
    fn members(entries: &[(u8, u8)]) -> [bool; 256] {
        let mut m = [false; 256];
        for &(a, b) in entries {
            for x in a.min(b)..=a.max(b) {
                m[usize::from(x)] = true;
            }
        }
        m
    }

    /// Reference minimal cover: every aligned block inside the set whose parent block is not.
    fn maximal_blocks(m: &[bool; 256]) -> Vec<(usize, u8)> {
        let inside = |start: usize, len: usize| m[start..start + len].iter().all(|&x| x);
        let mut out = Vec::new();
        for size in 0..=8u32 {
            let len = 1usize << size;
            for start in (0..256).step_by(len) {
                let parent = len * 2;
                let parent_start = start & !(parent - 1);
                if inside(start, len) && (size == 8 || !inside(parent_start, parent)) {
                    out.push((start, (8 - size) as u8));
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The entries as `a - b` lines inside 10.9.8.0/24 or 2001:db8::/120.
    fn lines(v6: bool, entries: &[(u8, u8)]) -> String {
        entries
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.min(b), a.max(b));
                if v6 {
                    format!("2001:db8::{a:x} - 2001:db8::{b:x}\n")
                } else {
                    format!("10.9.8.{a} - 10.9.8.{b}\n")
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn subtract_and_collapse_match_brute_force(
            black in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..12),
            white in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..6),
        ) {
            let (b, w) = (members(&black), members(&white));
            let want = maximal_blocks(&std::array::from_fn(|i| b[i] && !w[i]));
            for v6 in [false, true] {
                let got = set(&lines(v6, &black)).subtract(&set(&lines(v6, &white))).to_cidrs();
                let got: Vec<(usize, u8)> = got
                    .iter()
                    .map(|n| {
                        let last = match n {
                            IpNet::V4(n) => n.network().octets()[3],
                            IpNet::V6(n) => n.network().octets()[15],
                        };
                        // The reference counts prefixes within the last byte.
                        (usize::from(last), 8 - (n.max_prefix_len() - n.prefix_len()))
                    })
                    .collect();
                prop_assert_eq!(&got, &want);
            }
        }
    }
}
