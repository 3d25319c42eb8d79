//! One shared clock for every stuttered reply. spamd's tarpit sends one byte
//! per `stutter` seconds; a timer and a task wake-up per byte per connection
//! is most of greyd's CPU when thousands of senders are held. Here one task
//! ticks ten times per stutter period and writes the next byte of every
//! reply that is due, straight to its socket; the connection's own task
//! sleeps until its whole reply is out.
//!
//! A reply waits in one of [`SLOTS`] buckets, the one of the tick it was
//! handed over on, so it is served once per full turn: one byte per period.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Ticks per stutter period: the first byte of a reply goes out at once,
/// the next ones one period apart, give or take one tick.
const SLOTS: usize = 10;

/// How a stuttered reply ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every byte was written.
    Sent,
    /// The stutter time ran out: the caller writes these remaining bytes at once.
    Rest(VecDeque<u8>),
    /// Writing failed: the client is gone.
    Failed(std::io::Error),
}

struct Job {
    stream: Arc<TcpStream>,
    bytes: VecDeque<u8>,
    /// Stop stuttering then (greylisted sources are stuttered for the first -S seconds).
    until: Option<Instant>,
    done: oneshot::Sender<Outcome>,
}

impl Job {
    /// Write the next byte; returns the job back unless it has ended.
    fn step(mut self, now: Instant) -> Option<Job> {
        if self.done.is_closed() {
            // The connection gave up waiting (idle limit) or went away.
            return None;
        }
        if self.until.is_some_and(|u| now >= u) {
            let _ = self.done.send(Outcome::Rest(self.bytes));
            return None;
        }
        let Some(&byte) = self.bytes.front() else {
            let _ = self.done.send(Outcome::Sent);
            return None;
        };
        match self.stream.try_write(&[byte]) {
            Ok(_) => {
                self.bytes.pop_front();
                if self.bytes.is_empty() {
                    let _ = self.done.send(Outcome::Sent);
                    return None;
                }
                Some(self)
            }
            // The client does not read and its window is full: try again next turn.
            Err(e) if e.kind() == ErrorKind::WouldBlock => Some(self),
            Err(e) => {
                let _ = self.done.send(Outcome::Failed(e));
                None
            }
        }
    }
}

struct Wheel {
    slots: Vec<Vec<Job>>,
    /// The slot the next tick serves.
    current: usize,
}

/// The shared stutter clock; [`Stutterer::start`] spawns its task.
pub struct Stutterer {
    wheel: Mutex<Wheel>,
}

impl Stutterer {
    /// Start the clock for one byte per `delay` (zero: nothing is ever stuttered).
    pub fn start(delay: Duration) -> Arc<Stutterer> {
        let stutterer = Arc::new(Stutterer {
            wheel: Mutex::new(Wheel {
                slots: (0..SLOTS).map(|_| Vec::new()).collect(),
                current: 0,
            }),
        });
        if !delay.is_zero() {
            let s = Arc::clone(&stutterer);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(delay / SLOTS as u32);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    s.tick(Instant::now());
                }
            });
        }
        stutterer
    }

    fn wheel(&self) -> std::sync::MutexGuard<'_, Wheel> {
        self.wheel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serve the due slot: one byte for each of its replies.
    fn tick(&self, now: Instant) {
        // The writes happen outside the lock, so connections handing over replies never wait for them.
        let (slot, jobs) = {
            let mut wheel = self.wheel();
            let slot = wheel.current;
            wheel.current = (slot + 1) % SLOTS;
            (slot, std::mem::take(&mut wheel.slots[slot]))
        };
        let kept: Vec<Job> = jobs.into_iter().filter_map(|j| j.step(now)).collect();
        self.wheel().slots[slot].extend(kept);
    }

    /// Send `bytes` one per period, writing the first now; resolves when all
    /// are written, the stutter time is over, or the client is gone.
    pub async fn send(&self, stream: &Arc<TcpStream>, bytes: &[u8], until: Option<Instant>) -> Outcome {
        let (done, finished) = oneshot::channel();
        let job = Job {
            stream: Arc::clone(stream),
            bytes: bytes.iter().copied().collect(),
            until,
            done,
        };
        if let Some(job) = job.step(Instant::now()) {
            let mut wheel = self.wheel();
            // Served next when the clock comes round to the slot just served.
            let slot = (wheel.current + SLOTS - 1) % SLOTS;
            wheel.slots[slot].push(job);
        }
        finished
            .await
            .unwrap_or_else(|_| Outcome::Failed(ErrorKind::BrokenPipe.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Arc::new(server), client)
    }

    #[tokio::test]
    async fn one_byte_per_period() {
        let stutterer = Stutterer::start(Duration::from_millis(100));
        let (server, mut client) = pair().await;
        let started = Instant::now();
        let sent = stutterer.send(&server, b"abcd", None).await;
        assert!(matches!(sent, Outcome::Sent), "{sent:?}");
        // The first byte at once, then three periods (less at most one tick
        // for the first). The upper bound only says "not stuck": a loaded
        // machine delays ticks, and speed is not what this test checks.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(290), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        let mut got = [0u8; 4];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcd");
    }

    #[tokio::test]
    async fn the_rest_comes_back_when_the_stutter_time_is_over() {
        let stutterer = Stutterer::start(Duration::from_millis(100));
        let (server, mut client) = pair().await;
        let until = Instant::now() + Duration::from_millis(150);
        let Outcome::Rest(rest) = stutterer.send(&server, b"abcdefgh", Some(until)).await else {
            panic!("stutter time ran out");
        };
        let written = 8 - rest.len();
        assert!((1..=3).contains(&written), "{written} bytes stuttered");
        let mut got = vec![0u8; written];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, &b"abcdefgh"[..written]);
        assert_eq!(rest.iter().copied().collect::<Vec<u8>>(), &b"abcdefgh"[written..]);
    }

    #[tokio::test]
    async fn a_closed_client_ends_the_reply() {
        let stutterer = Stutterer::start(Duration::from_millis(20));
        let (server, client) = pair().await;
        drop(client);
        let sent = stutterer.send(&server, &[b'x'; 64], None).await;
        assert!(matches!(sent, Outcome::Failed(_)), "{sent:?}");
    }
}
