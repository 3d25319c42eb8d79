//! Batching of whitelist changes for backends that apply them with an
//! external command: changes are queued, and a writer thread hands whatever
//! has gathered to the backend in one go, so a burst of promotions costs one
//! process, never one per address.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

/// How long the writer waits for more changes to join a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteChange {
    Add(IpAddr),
    Remove(IpAddr),
}

pub struct Batcher {
    queue: Mutex<Sender<WhiteChange>>,
}

impl Batcher {
    /// Start the writer thread; `apply` gets each batch in order.
    pub fn start(name: &str, apply: impl Fn(&[WhiteChange]) + Send + 'static) -> std::io::Result<Batcher> {
        let (tx, rx) = channel();
        std::thread::Builder::new().name(name.into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                std::thread::sleep(BATCH_WINDOW);
                batch.extend(rx.try_iter());
                apply(&batch);
            }
        })?;
        Ok(Batcher { queue: Mutex::new(tx) })
    }

    pub fn push(&self, change: WhiteChange) {
        let _ = self.queue.lock().unwrap_or_else(|e| e.into_inner()).send(change);
    }
}
