//! Counters of what mta did, per hour, for the status page: deliveries
//! (local and relayed), bounces, and recipients refused at RCPT. A ring of
//! the last [`HOURS`] hours in memory; a restart starts it afresh.

use std::sync::{Mutex, PoisonError};

/// Hours kept.
pub const HOURS: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Delivered,
    Bounced,
    Rejected,
}

/// One hour's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hour {
    /// Hours since the epoch.
    pub hour: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub rejected: u64,
}

#[derive(Default)]
pub struct Stats {
    ring: Mutex<Vec<Hour>>,
}

impl Stats {
    /// Count `n` events at `now` (seconds since the epoch).
    pub fn count_at(&self, event: Event, n: u64, now: u64) {
        let hour = now / 3600;
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.last().is_none_or(|h| h.hour < hour) {
            ring.push(Hour {
                hour,
                ..Hour::default()
            });
            let excess = ring.len().saturating_sub(HOURS);
            ring.drain(..excess);
        }
        let slot = ring.iter_mut().rev().find(|h| h.hour == hour);
        if let Some(h) = slot {
            match event {
                Event::Delivered => h.delivered += n,
                Event::Bounced => h.bounced += n,
                Event::Rejected => h.rejected += n,
            }
        }
    }

    pub fn count(&self, event: Event, n: u64) {
        self.count_at(event, n, crate::queue::now());
    }

    /// The last `HOURS` hours up to `now`, oldest first, quiet hours as zeros.
    pub fn hours_at(&self, now: u64) -> Vec<Hour> {
        let current = now / 3600;
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_hour_and_old_hours_fall_off() {
        let s = Stats::default();
        let t0 = 1_000 * 3600;
        s.count_at(Event::Delivered, 2, t0);
        s.count_at(Event::Rejected, 1, t0 + 10);
        s.count_at(Event::Delivered, 1, t0 + 3600);
        let h = s.hours_at(t0 + 3600);
        assert_eq!(h.len(), HOURS);
        assert_eq!((h[HOURS - 2].delivered, h[HOURS - 2].rejected), (2, 1));
        assert_eq!(h[HOURS - 1].delivered, 1);
        s.count_at(Event::Bounced, 1, t0 + 100 * 3600);
        let h = s.hours_at(t0 + 100 * 3600);
        assert_eq!(h.iter().map(|h| h.delivered).sum::<u64>(), 0);
        assert_eq!(h[HOURS - 1].bounced, 1);
    }
}
