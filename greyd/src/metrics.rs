//! greyd's numbers, kept in one place: every event is counted here once, and
//! both the Prometheus endpoint (`--metrics ADDR`) and the control socket's
//! `stats` request read these counts. The Prometheus counters are set from
//! them (`absolute`), so the two can never disagree. Without an endpoint the
//! Prometheus side costs next to nothing (no recorder).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use ::metrics::{counter, gauge};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};
use serde::{Deserialize, Serialize};

use greyd_shared::datetime::now;

/// Serve `/metrics` on `addr` from the current tokio runtime.
pub fn install(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new().with_http_listener(addr).install()
}

/// Sources remembered for the "top trapped" ranking each day; more are not counted.
const MAX_TRAPPED_SOURCES: usize = 10_000;

/// One counter: its Prometheus name and its label, if it has one.
type Key = (&'static str, Option<(&'static str, &'static str)>);

/// Every count since greyd started, and the counts at the start of today.
#[derive(Default)]
struct Tallies {
    totals: BTreeMap<Key, u64>,
    /// Day (since the epoch, UTC) the baseline belongs to.
    day: i64,
    /// `totals` at the first event of `day`: today's count is the difference.
    at_day_start: BTreeMap<Key, u64>,
    /// Connections from trapped sources today, per source.
    trapped_sources: HashMap<IpAddr, u64>,
    /// Connections open now, by class.
    open: BTreeMap<&'static str, u64>,
}

impl Tallies {
    /// Start a new day's baseline when the date has changed since the last event.
    fn roll(&mut self, now: i64) {
        let day = now.div_euclid(86_400);
        if day != self.day {
            self.day = day;
            self.at_day_start = self.totals.clone();
            self.trapped_sources.clear();
        }
    }

    fn add(&mut self, key: Key, n: u64) -> u64 {
        let total = self.totals.entry(key).or_default();
        *total += n;
        *total
    }

    fn total(&self, key: Key) -> u64 {
        self.totals.get(&key).copied().unwrap_or(0)
    }

    fn today(&self, key: Key) -> u64 {
        self.total(key) - self.at_day_start.get(&key).copied().unwrap_or(0)
    }

    /// Sum over every label of counter `name`, today or since start.
    fn sum(&self, name: &str, today: bool) -> u64 {
        self.totals
            .keys()
            .filter(|k| k.0 == name)
            .map(|&k| if today { self.today(k) } else { self.total(k) })
            .sum()
    }
}

static TALLIES: LazyLock<Mutex<Tallies>> = LazyLock::new(Mutex::default);

fn tallies() -> std::sync::MutexGuard<'static, Tallies> {
    TALLIES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Count `n` more of `key` and publish the new total to Prometheus.
fn count(key: Key, n: u64) {
    let total = {
        let mut t = tallies();
        t.roll(now());
        t.add(key, n)
    };
    match key.1 {
        Some((label, value)) => counter!(key.0, label => value).absolute(total),
        None => counter!(key.0).absolute(total),
    }
}

const CONNECTIONS: &str = "greyd_connections_total";
const TUPLES: &str = "greyd_tuples_total";
const GREYLISTED: &str = "greyd_greylisted_total";
const PROMOTIONS: &str = "greyd_promotions_total";
const PASSED: &str = "greyd_passed_total";
const TRAP_HITS: &str = "greyd_trap_hits_total";
const TARPIT_BYTES: &str = "greyd_tarpit_bytes_total";
const TARPIT_MILLISECONDS: &str = "greyd_tarpit_milliseconds_total";
const SYNC_PACKETS: &str = "greyd_sync_packets_total";
const OPEN: &str = "greyd_connections_open";

/// A connection open now, counted in `greyd_connections_open{class}` until dropped.
pub struct Open(&'static str);

impl Drop for Open {
    fn drop(&mut self) {
        let left = {
            let mut t = tallies();
            let n = t.open.entry(self.0).or_default();
            *n = n.saturating_sub(1);
            *n
        };
        gauge!(OPEN, "class" => self.0).set(left as f64);
    }
}

/// A connection accepted, by class: `white`, `allowed`, `grey`, `black` or
/// `trapped`; it counts as open until the returned guard is dropped.
pub fn connection(class: &'static str, ip: IpAddr) -> Open {
    count((CONNECTIONS, Some(("class", class))), 1);
    let open = {
        let mut t = tallies();
        if class == "trapped" && (t.trapped_sources.len() < MAX_TRAPPED_SOURCES || t.trapped_sources.contains_key(&ip))
        {
            *t.trapped_sources.entry(ip).or_default() += 1;
        }
        let n = t.open.entry(class).or_default();
        *n += 1;
        *n
    };
    gauge!(OPEN, "class" => class).set(open as f64);
    Open(class)
}

/// A tuple seen at RCPT; `new` when it starts greylisting (first sighting).
pub fn tuple(new: bool) {
    count((TUPLES, None), 1);
    if new {
        count((GREYLISTED, None), 1);
    }
}

/// Sources whitelisted, by reason (`retry`, `subnet`, `spf`, `dnswl`).
pub fn promotions(reason: &'static str, sources: usize) {
    count((PROMOTIONS, Some(("reason", reason))), sources as u64);
}

/// A connection spliced to the MTA.
pub fn passed() {
    count((PASSED, None), 1);
}

/// A source trapped, by reason.
pub fn trap_hit(reason: &'static str) {
    count((TRAP_HITS, Some(("reason", reason))), 1);
}

/// The time and bytes a tarpit connection of `class` cost its sender.
pub fn tarpit_spent(class: &'static str, bytes: usize, time: Duration) {
    count((TARPIT_BYTES, Some(("class", class))), bytes as u64);
    count(
        (TARPIT_MILLISECONDS, Some(("class", class))),
        u64::try_from(time.as_millis()).unwrap_or(u64::MAX),
    );
}

/// Sync packets: `sent` (one per packet and target), `received` (accepted),
/// `dropped` (bad HMAC, malformed, replayed).
pub fn sync_packet(direction: &'static str) {
    count((SYNC_PACKETS, Some(("direction", direction))), 1);
}

/// The grey → white funnel: tuples greylisted, sources promoted to white,
/// connections passed to the MTA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funnel {
    pub greylisted: u64,
    pub promoted: u64,
    pub passed: u64,
}

/// What happened today (UTC), since midnight or greyd's start, whichever is later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Today {
    /// Connections accepted, by class.
    pub connections: BTreeMap<String, u64>,
    pub funnel: Funnel,
    pub trap_hits: u64,
    /// Time spammers spent in the tarpit (black, trapped and grey connections).
    pub tarpit_seconds: u64,
}

/// A source trapped today and how many times it connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrappedSource {
    pub ip: IpAddr,
    pub connections: u64,
}

/// A snapshot of the numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Numbers {
    /// Connections open now, by class.
    pub open: BTreeMap<String, u64>,
    pub today: Today,
    /// The funnel since greyd started (monotonic, for history kept elsewhere).
    pub since_start: Funnel,
    /// The sources trapped today that connected most, most first.
    pub top_trapped: Vec<TrappedSource>,
}

/// The numbers now, with the `top` most connecting trapped sources.
pub fn snapshot(top: usize) -> Numbers {
    let mut t = tallies();
    t.roll(now());
    let funnel = |today: bool| Funnel {
        greylisted: t.sum(GREYLISTED, today),
        promoted: t.sum(PROMOTIONS, today),
        passed: t.sum(PASSED, today),
    };
    let mut top_trapped: Vec<TrappedSource> = t
        .trapped_sources
        .iter()
        .map(|(&ip, &connections)| TrappedSource { ip, connections })
        .collect();
    top_trapped.sort_by(|a, b| b.connections.cmp(&a.connections).then(a.ip.cmp(&b.ip)));
    top_trapped.truncate(top);
    Numbers {
        open: t.open.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        today: Today {
            connections: t
                .totals
                .keys()
                .filter(|k| k.0 == CONNECTIONS)
                .filter_map(|&k| Some((k.1?.1.to_string(), t.today(k))))
                .collect(),
            funnel: funnel(true),
            trap_hits: t.sum(TRAP_HITS, true),
            tarpit_seconds: t.sum(TARPIT_MILLISECONDS, true) / 1000,
        },
        since_start: funnel(false),
        top_trapped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_is_the_difference_from_the_first_event_of_the_day() {
        let mut t = Tallies::default();
        let key = (GREYLISTED, None);
        t.roll(10 * 86_400 + 5);
        t.add(key, 3);
        assert_eq!((t.today(key), t.total(key)), (3, 3));
        t.roll(11 * 86_400 + 1);
        t.add(key, 2);
        assert_eq!((t.today(key), t.total(key)), (2, 5));
    }

    #[test]
    fn sums_add_every_label() {
        let mut t = Tallies::default();
        t.add((PROMOTIONS, Some(("reason", "retry"))), 2);
        t.add((PROMOTIONS, Some(("reason", "spf"))), 1);
        t.add((PASSED, None), 7);
        assert_eq!(t.sum(PROMOTIONS, false), 3);
        assert_eq!(t.sum(PASSED, true), 7);
    }
}
