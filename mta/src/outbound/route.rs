//! Where remote mail goes (RFC 5321 §5, RFC 7505), decided without I/O:
//! recipients grouped into one transaction per destination, MX records
//! ordered by preference (shuffled within a preference) with the loop
//! check, the address list of one attempt, and the transport(5)-style
//! table that overrides MX routing per domain.

use std::collections::HashMap;
use std::net::IpAddr;

/// Where the recipients of one domain are sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// The domain's MX hosts (or the domain itself, the implicit MX).
    Mx(String),
    /// One host, no MX lookup (`smtp:[host]:port`, the smarthost).
    Host(String, u16),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Mx(domain) => f.write_str(domain),
            Destination::Host(host, port) => write!(f, "[{host}]:{port}"),
        }
    }
}

/// Recipients of one message that share a destination, at most the
/// recipient limit of them: one SMTP transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub destination: Destination,
    /// Indices into the message's recipient list.
    pub recipients: Vec<usize>,
}

/// The domain of an address, lower case.
pub fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map_or("", |(_, d)| d).to_ascii_lowercase()
}

/// Group `(index, address)` pairs by destination, keeping first-seen order,
/// `limit` recipients per batch at most.
pub fn batches<'a>(
    recipients: impl IntoIterator<Item = (usize, &'a str)>,
    limit: usize,
    destination: impl Fn(&str) -> Destination,
) -> Vec<Batch> {
    let mut order: Vec<Destination> = Vec::new();
    let mut by_dest: HashMap<Destination, Vec<usize>> = HashMap::new();
    for (i, address) in recipients {
        let dest = destination(&domain_of(address));
        by_dest
            .entry(dest.clone())
            .or_insert_with(|| {
                order.push(dest);
                Vec::new()
            })
            .push(i);
    }
    let mut out = Vec::new();
    for dest in order {
        let all = by_dest.remove(&dest).unwrap_or_default();
        for chunk in all.chunks(limit.max(1)) {
            out.push(Batch {
                destination: dest.clone(),
                recipients: chunk.to_vec(),
            });
        }
    }
    out
}

/// What the MX records of a domain say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxPlan {
    /// Hosts to try, in order.
    Hosts(Vec<String>),
    /// RFC 7505 null MX (`0 .`): the domain accepts no mail.
    NullMx,
    /// The best MX is this host: mail would loop.
    LoopsToSelf,
}

/// Order MX records (preference, exchange): lowest preference first,
/// shuffled within equal preference by `random`; records from our own
/// preference on are dropped, since those hosts would send it back to us.
pub fn order_mx(mut records: Vec<(u16, String)>, is_self: impl Fn(&str) -> bool, mut random: u64) -> MxPlan {
    if records.iter().any(|(_, host)| host.is_empty() || host == ".") {
        return MxPlan::NullMx;
    }
    if let Some(own) = records.iter().filter(|(_, h)| is_self(h)).map(|(p, _)| *p).min() {
        records.retain(|(p, _)| *p < own);
        if records.is_empty() {
            return MxPlan::LoopsToSelf;
        }
    }
    records.sort_by_key(|(p, _)| *p);
    let mut start = 0;
    while start < records.len() {
        let pref = records[start].0;
        let end = records[start..]
            .iter()
            .position(|(p, _)| *p != pref)
            .map_or(records.len(), |n| start + n);
        // Fisher-Yates with xorshift64: enough to spread load, no crypto needed.
        for i in (start + 1..end).rev() {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let j = start + (random % (i - start + 1) as u64) as usize;
            records.swap(i, j);
        }
        start = end;
    }
    let mut hosts: Vec<String> = Vec::new();
    for (_, h) in records {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    MxPlan::Hosts(hosts)
}

/// The addresses one attempt tries: hosts in order, each address once, at most `max`.
pub fn attempt_addresses(hosts: Vec<(String, Vec<IpAddr>)>, max: usize) -> Vec<(String, IpAddr)> {
    let mut out: Vec<(String, IpAddr)> = Vec::new();
    for (host, addrs) in hosts {
        for addr in addrs {
            if out.len() < max && !out.iter().any(|(_, a)| *a == addr) {
                out.push((host.clone(), addr));
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport table line {line}: {why}")]
pub struct TransportError {
    pub line: usize,
    pub why: String,
}

/// How a transport table entry delivers a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Smtp(Destination),
    /// Here, as for our own domains (the local part is a local name).
    Local,
}

/// A transport(5)-style table: `domain smtp:[host]:port`, `domain smtp:host`
/// (MX lookup of host), `domain local`, `.domain` for its subdomains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportTable {
    entries: HashMap<String, Transport>,
}

impl TransportTable {
    pub fn parse(text: &str) -> Result<TransportTable, TransportError> {
        let mut entries = HashMap::new();
        for (n, line) in table_lines(text) {
            let err = |why: &str| TransportError {
                line: n,
                why: why.to_string(),
            };
            let mut words = line.split_whitespace();
            let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
                return Err(err("expected `domain smtp:[host]:port` or `domain local`"));
            };
            if value == "local" || value == "local:" {
                entries.insert(key.to_ascii_lowercase(), Transport::Local);
                continue;
            }
            let next = value
                .strip_prefix("smtp:")
                .ok_or_else(|| err("only smtp: and local transports are supported"))?;
            let dest = match next.strip_prefix('[') {
                Some(rest) => {
                    let (host, after) = rest.split_once(']').ok_or_else(|| err("missing ]"))?;
                    let port = match after.strip_prefix(':') {
                        Some(p) => p.parse().map_err(|_| err("bad port"))?,
                        None if after.is_empty() => 25,
                        None => return Err(err("junk after ]")),
                    };
                    Destination::Host(host.to_ascii_lowercase(), port)
                }
                None if !next.is_empty() && !next.contains(':') => Destination::Mx(next.to_ascii_lowercase()),
                None => return Err(err("expected smtp:host or smtp:[host]:port")),
            };
            entries.insert(key.to_ascii_lowercase(), Transport::Smtp(dest));
        }
        Ok(TransportTable { entries })
    }

    /// The entry for `domain`: exact, else the nearest `.parent` entry.
    pub fn lookup(&self, domain: &str) -> Option<&Transport> {
        nearest(&self.entries, domain)
    }
}

/// The lines of a Postfix-style table that hold an entry, `#` comments
/// removed, with their line numbers (from 1).
pub fn table_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, raw)| (n + 1, raw.split('#').next().unwrap_or("").trim()))
        .filter(|(_, line)| !line.is_empty())
}

/// The value of a Postfix-style table keyed by domain: the exact key, else
/// the nearest `.parent` key (which stands for the parent's subdomains).
pub fn nearest<'a, T>(entries: &'a HashMap<String, T>, domain: &str) -> Option<&'a T> {
    if let Some(d) = entries.get(domain) {
        return Some(d);
    }
    let mut rest = domain;
    while let Some((_, parent)) = rest.split_once('.') {
        if let Some(d) = entries.get(&format!(".{parent}")) {
            return Some(d);
        }
        rest = parent;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mx(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, h)| (*p, h.to_string())).collect()
    }

    #[test]
    fn batches_by_destination_and_limit() {
        let rcpts = ["a@x.example", "b@Y.example", "c@x.example", "d@x.example"];
        let b = batches(rcpts.iter().copied().enumerate(), 2, |d| Destination::Mx(d.into()));
        assert_eq!(
            b.iter()
                .map(|b| (b.destination.to_string(), b.recipients.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("x.example".into(), vec![0, 2]),
                ("x.example".into(), vec![3]),
                ("y.example".into(), vec![1])
            ]
        );
        let one = batches(rcpts.iter().copied().enumerate(), 50, |_| {
            Destination::Host("relay".into(), 25)
        });
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn mx_order_null_and_loop() {
        assert_eq!(
            order_mx(mx(&[(20, "b"), (10, "a")]), |_| false, 1),
            MxPlan::Hosts(vec!["a".into(), "b".into()])
        );
        assert_eq!(order_mx(mx(&[(0, "")]), |_| false, 1), MxPlan::NullMx);
        assert_eq!(
            order_mx(mx(&[(10, "a"), (20, "me"), (30, "c")]), |h| h == "me", 1),
            MxPlan::Hosts(vec!["a".into()])
        );
        assert_eq!(
            order_mx(mx(&[(10, "me"), (20, "c")]), |h| h == "me", 1),
            MxPlan::LoopsToSelf
        );
    }

    #[test]
    fn equal_preference_is_spread() {
        let seen: std::collections::HashSet<String> = (1..50u64)
            .map(
                |seed| match order_mx(mx(&[(10, "a"), (10, "b"), (10, "c")]), |_| false, seed) {
                    MxPlan::Hosts(h) => h[0].clone(),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn address_cap() {
        let ip = |n: u8| IpAddr::from([127, 0, 0, n]);
        let got = attempt_addresses(
            vec![
                ("a".into(), vec![ip(1), ip(2)]),
                ("b".into(), vec![ip(2), ip(3), ip(4)]),
            ],
            3,
        );
        assert_eq!(got, vec![("a".into(), ip(1)), ("a".into(), ip(2)), ("b".into(), ip(3))]);
    }

    #[test]
    fn transport_table() {
        let t = TransportTable::parse(
            "# c\nexample.org smtp:[127.0.0.9]:2525\n.sub.test smtp:mx.other\nhere.test local\n.near.test local:\n",
        )
        .unwrap();
        let smtp = |d: Destination| Some(Transport::Smtp(d));
        assert_eq!(
            t.lookup("example.org").cloned(),
            smtp(Destination::Host("127.0.0.9".into(), 2525))
        );
        assert_eq!(
            t.lookup("a.b.sub.test").cloned(),
            smtp(Destination::Mx("mx.other".into()))
        );
        assert_eq!(t.lookup("sub.test"), None);
        assert_eq!(t.lookup("here.test"), Some(&Transport::Local));
        assert_eq!(t.lookup("x.near.test"), Some(&Transport::Local));
        assert!(TransportTable::parse("x lmtp:h\n").is_err());
        assert!(TransportTable::parse("x smtp:[h\n").is_err());
    }

    proptest! {
        #[test]
        fn mx_order_keeps_every_host_sorted(prefs in proptest::collection::vec(0u16..5, 1..12), seed in any::<u64>()) {
            let records: Vec<(u16, String)> = prefs.iter().enumerate().map(|(i, p)| (*p, format!("h{i}"))).collect();
            let MxPlan::Hosts(hosts) = order_mx(records.clone(), |_| false, seed) else { panic!() };
            prop_assert_eq!(hosts.len(), records.len());
            let pref = |h: &String| records.iter().find(|(_, n)| n == h).unwrap().0;
            prop_assert!(hosts.windows(2).all(|w| pref(&w[0]) <= pref(&w[1])));
        }
    }
}
