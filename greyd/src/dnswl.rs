//! DNS allowlists in postscreen_dnsbl_sites syntax: `domain[=filter][*weight]`,
//! the query name for a source, and the score its answers add up to. Pure:
//! the lookups themselves are the daemon's (`server::dns`).
//!
//! A filter is four dot-separated octet patterns, each a number, a range
//! `[lo..hi]` or a list `[a;b;c]`; without one any 127.x answer counts. A
//! site counts once however many of its answers match; weights default to 1,
//! and allowlists carry negative ones (`list.dnswl.example*-5`).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    #[error("DNSWL site {0:?}: empty domain")]
    NoDomain(String),
    #[error("DNSWL site {0:?}: weight is not an integer")]
    BadWeight(String),
    #[error("DNSWL site {0:?}: filter must be four octet patterns (n, [lo..hi] or [a;b])")]
    BadFilter(String),
}

/// One octet pattern of a reply filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Octet {
    Range(u8, u8),
    List(Vec<u8>),
}

impl Octet {
    fn parse(text: &str) -> Option<Octet> {
        let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
            let n = text.parse().ok()?;
            return Some(Octet::Range(n, n));
        };
        if let Some((lo, hi)) = inner.split_once("..") {
            let (lo, hi) = (lo.parse().ok()?, hi.parse().ok()?);
            return (lo <= hi).then_some(Octet::Range(lo, hi));
        }
        inner
            .split(';')
            .map(|n| n.parse().ok())
            .collect::<Option<Vec<u8>>>()
            .map(Octet::List)
    }

    fn matches(&self, n: u8) -> bool {
        match self {
            Octet::Range(lo, hi) => (*lo..=*hi).contains(&n),
            Octet::List(l) => l.contains(&n),
        }
    }
}

/// The dot-separated patterns of a filter; dots inside `[..]` belong to a range.
fn octet_patterns(filter: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0usize;
    filter.split(move |c| {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        c == '.' && depth == 0
    })
}

/// One configured list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub domain: String,
    filter: Option<[Octet; 4]>,
    pub weight: i32,
}

impl Site {
    pub fn parse(text: &str) -> Result<Site, SiteError> {
        let (rest, weight) = match text.rsplit_once('*') {
            Some((rest, w)) => (rest, w.trim().parse().map_err(|_| SiteError::BadWeight(text.into()))?),
            None => (text, 1),
        };
        let (domain, filter) = match rest.split_once('=') {
            Some((d, f)) => {
                let octets: Option<Vec<Octet>> = octet_patterns(f.trim()).map(Octet::parse).collect();
                let octets = octets
                    .and_then(|o| <[Octet; 4]>::try_from(o).ok())
                    .ok_or_else(|| SiteError::BadFilter(text.into()))?;
                (d, Some(octets))
            }
            None => (rest, None),
        };
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            return Err(SiteError::NoDomain(text.into()));
        }
        Ok(Site { domain, filter, weight })
    }

    /// Whether a reply address is a listing this site counts.
    pub fn matches(&self, reply: Ipv4Addr) -> bool {
        let o = reply.octets();
        match &self.filter {
            Some(f) => f.iter().zip(o).all(|(p, n)| p.matches(n)),
            None => o[0] == 127,
        }
    }

    /// The absolute name to look up for `ip`: its reversed octets (IPv4) or
    /// nibbles (IPv6) under the site's domain.
    pub fn query(&self, ip: IpAddr) -> String {
        let mut name = String::new();
        match ip {
            IpAddr::V4(v4) => {
                for o in v4.octets().iter().rev() {
                    let _ = write!(name, "{o}.");
                }
            }
            IpAddr::V6(v6) => {
                for b in v6.octets().iter().rev() {
                    let _ = write!(name, "{:x}.{:x}.", b & 0xf, b >> 4);
                }
            }
        }
        format!("{name}{}.", self.domain)
    }
}

/// The sum of the weights of the sites with a matching reply; `answers`
/// pairs each site with the A records its query returned.
pub fn score<'a>(answers: impl IntoIterator<Item = (&'a Site, &'a [Ipv4Addr])>) -> i32 {
    answers
        .into_iter()
        .filter(|(site, replies)| replies.iter().any(|r| site.matches(*r)))
        .map(|(site, _)| site.weight)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn postscreen_syntax() {
        let s = Site::parse("list.dnswl.example=127.0.[0..255].[1..3]*-5").unwrap();
        assert_eq!((s.domain.as_str(), s.weight), ("list.dnswl.example", -5));
        assert!(s.matches(Ipv4Addr::new(127, 0, 9, 2)));
        assert!(!s.matches(Ipv4Addr::new(127, 0, 9, 0)));
        assert!(!s.matches(Ipv4Addr::new(127, 1, 9, 2)));
        let plain = Site::parse("wl.example.").unwrap();
        assert_eq!((plain.domain.as_str(), plain.weight), ("wl.example", 1));
        assert!(plain.matches(Ipv4Addr::new(127, 0, 0, 2)));
        assert!(
            !plain.matches(Ipv4Addr::new(10, 0, 0, 2)),
            "only loopback-style answers are listings"
        );
        let list = Site::parse("wl.example=127.0.0.[2;4]*-2").unwrap();
        assert!(list.matches(Ipv4Addr::new(127, 0, 0, 4)));
        assert!(!list.matches(Ipv4Addr::new(127, 0, 0, 3)));
    }

    #[test]
    fn bad_sites_are_explained() {
        assert!(matches!(Site::parse("*-5"), Err(SiteError::NoDomain(_))));
        assert!(matches!(Site::parse("wl.example*x"), Err(SiteError::BadWeight(_))));
        assert!(matches!(
            Site::parse("wl.example=127.0.0"),
            Err(SiteError::BadFilter(_))
        ));
        assert!(matches!(
            Site::parse("wl.example=127.0.0.[3..1]"),
            Err(SiteError::BadFilter(_))
        ));
        assert!(matches!(
            Site::parse("wl.example=127.0.0.256"),
            Err(SiteError::BadFilter(_))
        ));
    }

    #[test]
    fn query_names() {
        let s = Site::parse("wl.example").unwrap();
        assert_eq!(s.query("192.0.2.7".parse().unwrap()), "7.2.0.192.wl.example.");
        let v6 = s.query("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.wl.example."), "{v6}");
        assert_eq!(v6.split('.').count(), 32 + 3);
    }

    #[test]
    fn each_site_counts_once() {
        let allow = Site::parse("a.example*-5").unwrap();
        let block = Site::parse("b.example=127.0.0.2*3").unwrap();
        let two = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
        assert_eq!(score([(&allow, &two[..]), (&block, &two[..])]), -2);
        assert_eq!(score([(&allow, &[][..]), (&block, &two[1..])]), 0);
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = Site::parse(&text);
        }

        #[test]
        fn weights_and_ranges_round_trip(w in -100i32..100, lo in 0u8..=255, span in 0u8..=255, n in 0u8..=255) {
            let hi = lo.saturating_add(span);
            let s = Site::parse(&format!("wl.example=127.0.0.[{lo}..{hi}]*{w}")).unwrap();
            prop_assert_eq!(s.weight, w);
            prop_assert_eq!(s.matches(Ipv4Addr::new(127, 0, 0, n)), (lo..=hi).contains(&n));
        }
    }
}
