//! mta's counters, one source for the status page and the Prometheus
//! endpoint (`[metrics] listen`): sessions by listener, messages accepted,
//! rejections by reason, deliveries by status, and greyd's grey → white
//! funnel as polled from its control socket. Per hour in a ring of the last
//! [`HOURS`] hours (saved to a small file every minute, so the charts
//! survive a restart), and since start in totals the Prometheus counters
//! are set from.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use ::metrics::{counter, gauge};
use serde::{Deserialize, Serialize};

/// Hours kept.
pub const HOURS: usize = 48;

/// What became of one recipient's delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Relayed to another server.
    Sent,
    /// Failed for now; retried later.
    Deferred,
    /// Failed for good; a bounce goes to the sender.
    Bounced,
    /// Stored in a local mailbox.
    Local,
}

impl Delivery {
    fn name(self) -> &'static str {
        match self {
            Delivery::Sent => "sent",
            Delivery::Deferred => "deferred",
            Delivery::Bounced => "bounced",
            Delivery::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection accepted on a listener (`smtp`, `submission`, `imaps`, …).
    Session(&'static str),
    /// A message queued (a 250 at the end of DATA).
    Accepted,
    /// A recipient or a message refused with a 5xx, by reason (`recipient`, `dmarc`, …).
    Rejected(&'static str),
    Delivery(Delivery),
}

/// greyd's funnel: tuples greylisted, sources promoted to white, connections passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funnel {
    pub greylisted: u64,
    pub promoted: u64,
    pub passed: u64,
}

/// One hour's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hour {
    /// Hours since the epoch.
    pub hour: u64,
    pub accepted: u64,
    /// Recipients delivered: sent on or stored locally.
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub rejected: u64,
    /// greyd's funnel in this hour.
    pub greyd: Funnel,
}

/// One counter: its Prometheus name and its label, if it has one.
type Key = (&'static str, Option<(&'static str, &'static str)>);

/// greyd's funnel totals at the last poll, and the start time of that greyd.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct GreydSeen {
    started: i64,
    totals: Funnel,
}

/// What the history file holds.
#[derive(Serialize, Deserialize)]
struct History {
    hours: Vec<Hour>,
    greyd_seen: Option<GreydSeen>,
}

#[derive(Default)]
pub struct Stats {
    ring: Mutex<Vec<Hour>>,
    totals: Mutex<BTreeMap<Key, u64>>,
    greyd_seen: Mutex<Option<GreydSeen>>,
}

/// Why the history file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0}: {1}")]
    Io(std::path::PathBuf, std::io::Error),
    #[error("{0}: not a history file: {1}")]
    Format(std::path::PathBuf, serde_json::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stats {
    /// Change the hour of `now` (seconds since the epoch) with `add`.
    fn in_hour(&self, now: u64, add: impl FnOnce(&mut Hour)) {
        let hour = now / 3600;
        let mut ring = lock(&self.ring);
        if ring.last().is_none_or(|h| h.hour < hour) {
            ring.push(Hour {
                hour,
                ..Hour::default()
            });
            let excess = ring.len().saturating_sub(HOURS);
            ring.drain(..excess);
        }
        if let Some(h) = ring.iter_mut().rev().find(|h| h.hour == hour) {
            add(h);
        }
    }

    /// Count `n` events at `now` (seconds since the epoch).
    pub fn count_at(&self, event: Event, n: u64, now: u64) {
        let key: Key = match event {
            Event::Session(listener) => ("mta_sessions_total", Some(("listener", listener))),
            Event::Accepted => ("mta_messages_accepted_total", None),
            Event::Rejected(reason) => ("mta_rejected_total", Some(("reason", reason))),
            Event::Delivery(d) => ("mta_deliveries_total", Some(("status", d.name()))),
        };
        let total = {
            let mut totals = lock(&self.totals);
            let t = totals.entry(key).or_default();
            *t += n;
            *t
        };
        match key.1 {
            Some((label, value)) => counter!(key.0, label => value).absolute(total),
            None => counter!(key.0).absolute(total),
        }
        self.in_hour(now, |h| match event {
            Event::Session(_) => {}
            Event::Accepted => h.accepted += n,
            Event::Rejected(_) => h.rejected += n,
            Event::Delivery(Delivery::Sent | Delivery::Local) => h.delivered += n,
            Event::Delivery(Delivery::Deferred) => h.deferred += n,
            Event::Delivery(Delivery::Bounced) => h.bounced += n,
        });
    }

    pub fn count(&self, event: Event, n: u64) {
        self.count_at(event, n, crate::queue::now());
    }

    /// The number of queued messages, for the `mta_queue_messages` gauge.
    pub fn queue_size(&self, messages: usize) {
        gauge!("mta_queue_messages").set(messages as f64);
    }

    /// Take greyd's funnel totals since its start (`started`) and add what
    /// is new since the last poll to the hour of `now`. A greyd that started
    /// again, or one never polled, counts from zero.
    pub fn greyd_totals_at(&self, started: i64, totals: Funnel, now: u64) {
        let before = lock(&self.greyd_seen).replace(GreydSeen { started, totals });
        let since = match before {
            Some(b) if b.started == started => b.totals,
            _ => Funnel::default(),
        };
        let new = Funnel {
            greylisted: totals.greylisted.saturating_sub(since.greylisted),
            promoted: totals.promoted.saturating_sub(since.promoted),
            passed: totals.passed.saturating_sub(since.passed),
        };
        self.in_hour(now, |h| {
            h.greyd.greylisted += new.greylisted;
            h.greyd.promoted += new.promoted;
            h.greyd.passed += new.passed;
        });
    }

    /// The last `HOURS` hours up to `now`, oldest first, quiet hours as zeros.
    pub fn hours_at(&self, now: u64) -> Vec<Hour> {
        let current = now / 3600;
        let ring = lock(&self.ring);
        (current + 1 - HOURS as u64..=current)
            .map(|hour| {
                ring.iter().find(|h| h.hour == hour).copied().unwrap_or(Hour {
                    hour,
                    ..Hour::default()
                })
            })
            .collect()
    }

    pub fn hours(&self) -> Vec<Hour> {
        self.hours_at(crate::queue::now())
    }

    /// Write the ring and the last greyd poll to `path` atomically (a
    /// temporary file, fsynced, renamed).
    pub fn save(&self, path: &Path) -> Result<(), HistoryError> {
        let history = History {
            hours: lock(&self.ring).clone(),
            greyd_seen: *lock(&self.greyd_seen),
        };
        let json = serde_json::to_vec(&history).expect("plain data serializes");
        let tmp = path.with_extension("tmp");
        let err = |e| HistoryError::Io(path.to_path_buf(), e);
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(&json).and_then(|()| file.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Take back the history saved by [`Stats::save`]; no file is an empty history.
    pub fn restore(&self, path: &Path) -> Result<(), HistoryError> {
        let json = match std::fs::read(path) {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(HistoryError::Io(path.to_path_buf(), e)),
        };
        let mut history: History =
            serde_json::from_slice(&json).map_err(|e| HistoryError::Format(path.to_path_buf(), e))?;
        history.hours.sort_by_key(|h| h.hour);
        history.hours.dedup_by_key(|h| h.hour);
        let excess = history.hours.len().saturating_sub(HOURS);
        history.hours.drain(..excess);
        *lock(&self.ring) = history.hours;
        *lock(&self.greyd_seen) = history.greyd_seen;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_hour_and_old_hours_fall_off() {
        let s = Stats::default();
        let t0 = 1_000 * 3600;
        s.count_at(Event::Delivery(Delivery::Local), 1, t0);
        s.count_at(Event::Delivery(Delivery::Sent), 1, t0);
        s.count_at(Event::Rejected("recipient"), 1, t0 + 10);
        s.count_at(Event::Delivery(Delivery::Sent), 1, t0 + 3600);
        let h = s.hours_at(t0 + 3600);
        assert_eq!(h.len(), HOURS);
        assert_eq!((h[HOURS - 2].delivered, h[HOURS - 2].rejected), (2, 1));
        assert_eq!(h[HOURS - 1].delivered, 1);
        s.count_at(Event::Delivery(Delivery::Bounced), 1, t0 + 100 * 3600);
        let h = s.hours_at(t0 + 100 * 3600);
        assert_eq!(h.iter().map(|h| h.delivered).sum::<u64>(), 0);
        assert_eq!(h[HOURS - 1].bounced, 1);
    }

    #[test]
    fn greyd_polls_add_what_is_new_and_survive_greyd_restarts() {
        let s = Stats::default();
        let t0 = 2_000 * 3600;
        let funnel = |greylisted, promoted, passed| Funnel {
            greylisted,
            promoted,
            passed,
        };
        s.greyd_totals_at(100, funnel(5, 1, 1), t0);
        s.greyd_totals_at(100, funnel(8, 2, 4), t0 + 60);
        s.greyd_totals_at(100, funnel(8, 2, 4), t0 + 90);
        // greyd restarted: its totals begin again at zero.
        s.greyd_totals_at(200, funnel(1, 0, 0), t0 + 120);
        assert_eq!(s.hours_at(t0)[HOURS - 1].greyd, funnel(9, 2, 4));
    }

    #[test]
    fn history_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        let loaded = Stats::default();
        loaded.restore(&path).unwrap();
        assert_eq!(loaded.hours_at(3600 * 50), Stats::default().hours_at(3600 * 50));
        let s = Stats::default();
        let t0 = 3_000 * 3600;
        s.count_at(Event::Accepted, 3, t0);
        s.count_at(Event::Delivery(Delivery::Deferred), 2, t0 + 3600);
        let funnel = Funnel {
            greylisted: 4,
            promoted: 1,
            passed: 2,
        };
        s.greyd_totals_at(100, funnel, t0 + 3600);
        s.save(&path).unwrap();
        loaded.restore(&path).unwrap();
        assert_eq!(loaded.hours_at(t0 + 3600), s.hours_at(t0 + 3600));
        assert_eq!(loaded.hours_at(t0 + 3600)[HOURS - 2].accepted, 3);
        // The same greyd polled after the restart: nothing counted twice.
        loaded.greyd_totals_at(100, funnel, t0 + 3660);
        assert_eq!(loaded.hours_at(t0 + 3660)[HOURS - 1].greyd, funnel);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(loaded.restore(&path), Err(HistoryError::Format(..))));
    }
}
