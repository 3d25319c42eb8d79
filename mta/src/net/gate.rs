//! Who may hold a connection: a budget of open connections for the whole
//! process (the descriptor limit less a reserve for the queue, deliveries
//! and outbound connections) and a cap per client address and service.
//! Places are claimed before a connection's task starts and released when
//! its [`Ticket`] drops, so a burst can never run past either limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Descriptors kept back from connections at most: the queue runner,
/// local deliveries, outbound SMTP and the store need their own.
const RESERVE: u64 = 512;

/// The connection was refused: a cap is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

#[derive(Default)]
struct Counts {
    open: usize,
    per_client: HashMap<(&'static str, IpAddr), usize>,
}

pub struct Gate {
    max_open: usize,
    counts: Mutex<Counts>,
}

/// One connection's places; dropping it gives them back.
pub struct Ticket {
    gate: Arc<Gate>,
    client: Option<(&'static str, IpAddr)>,
}

impl Gate {
    /// A gate for a process whose soft descriptor limit is `descriptors`:
    /// connections may use all but a reserve (a quarter of the limit, at most [`RESERVE`]).
    pub fn for_descriptors(descriptors: u64) -> Arc<Gate> {
        let reserve = (descriptors / 4).min(RESERVE);
        Arc::new(Gate {
            max_open: usize::try_from(descriptors - reserve).unwrap_or(usize::MAX),
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Most connections open at once.
    pub fn max_open(&self) -> usize {
        self.max_open
    }

    /// Claim a place in the process-wide budget, or `None` when it is spent.
    pub fn open(self: &Arc<Self>) -> Option<Ticket> {
        let mut c = self.counts();
        if c.open >= self.max_open {
            return None;
        }
        c.open += 1;
        Some(Ticket {
            gate: Arc::clone(self),
            client: None,
        })
    }

    /// Count the ticket's connection against `ip` on `service`, unless `ip` already holds `cap`.
    pub fn enter_client(
        &self,
        ticket: &mut Ticket,
        service: &'static str,
        ip: IpAddr,
        cap: usize,
    ) -> Result<(), Refused> {
        let mut c = self.counts();
        let n = c.per_client.entry((service, ip)).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                c.per_client.remove(&(service, ip));
            }
            return Err(Refused);
        }
        *n += 1;
        ticket.client = Some((service, ip));
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.gate.counts();
        c.open -= 1;
        if let Some(key) = self.client
            && let Some(n) = c.per_client.get_mut(&key)
        {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_per_client_caps_are_exact_and_released_on_drop() {
        let gate = Gate::for_descriptors(16);
        assert_eq!(gate.max_open(), 12, "a quarter is kept back");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut t = gate.open().unwrap();
            gate.enter_client(&mut t, "imap", a, 3).unwrap();
            held.push(t);
        }
        let mut t = gate.open().unwrap();
        assert_eq!(gate.enter_client(&mut t, "imap", a, 3), Err(Refused));
        // Another service and another address have caps of their own.
        gate.enter_client(&mut t, "smtp", a, 3).unwrap();
        held.push(t);
        while held.len() < 12 {
            let mut t = gate.open().unwrap();
            gate.enter_client(&mut t, "imap", b, 100).unwrap();
            held.push(t);
        }
        assert!(gate.open().is_none(), "the budget is spent");
        held.remove(0);
        let mut t = gate.open().expect("a place came free");
        gate.enter_client(&mut t, "imap", a, 3).expect("and one of a's");
        drop(t);
        drop(held);
        assert_eq!(gate.counts().open, 0);
        assert!(gate.counts().per_client.is_empty());
    }

    #[test]
    fn a_small_limit_still_leaves_room_for_connections() {
        assert_eq!(Gate::for_descriptors(100).max_open(), 75);
        assert_eq!(Gate::for_descriptors(1 << 20).max_open(), (1 << 20) - 512);
    }
}
