//! Peer sync (spamd's `-Y`/`-y`): greylisting, whitelisting and trapping
//! sent to peers over UDP in spamd's wire format ([`codec`]), and received
//! updates merged with the same rules as local ones ([`merge`]).
//!
//! A target is a host (`host[:port]`, unicast) or an interface name
//! (multicast to 224.0.1.240 through it); the listen address is an address
//! (`addr[:port]`) or an interface (joins the multicast group). The port
//! defaults to spamd-sync's 8025. Received packets with a bad HMAC or
//! length, replays and our own packets are dropped and counted; the socket
//! is read one bounded packet at a time, so a flood costs no memory.

pub mod codec;

pub use codec::{DecodeError, SyncKey, SyncMessage};

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use crate::control::Effects;
use crate::db::{DbError, TrappedEntry, Tx, WhiteEntry};
use crate::grey::{self, AllowedDomains, Decision, GreyRules, GreyTuple};

pub const DEFAULT_PORT: u16 = 8025;
pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 240);
/// Recent packet HMACs remembered to reject replays.
const REPLAY_WINDOW: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync target {0:?} is neither a host nor an interface with an IPv4 address")]
    BadTarget(String),
    #[error("sync listen address {0:?} is neither an address nor an interface with an IPv4 address")]
    BadListen(String),
    #[error("sync key {path}: {source}")]
    Key { path: String, source: std::io::Error },
    #[error("sync socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of dropped packets, by reason.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub received: AtomicU64,
    pub bad_hmac: AtomicU64,
    pub malformed: AtomicU64,
    pub replayed: AtomicU64,
    pub own: AtomicU64,
}

/// Most peers whose last packet is remembered (targets, and senders of accepted packets).
const MAX_PEERS: usize = 256;

/// A sync peer and when a packet last went to it or came from it (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPeer {
    pub addr: SocketAddr,
    pub last_out: Option<i64>,
    pub last_in: Option<i64>,
}

impl SyncPeer {
    fn new(addr: SocketAddr) -> SyncPeer {
        SyncPeer {
            addr,
            last_out: None,
            last_in: None,
        }
    }
}

/// A bounded memory of recently seen packets.
#[derive(Default)]
struct ReplayWindow {
    seen: HashSet<[u8; codec::HMAC_LEN]>,
    order: VecDeque<[u8; codec::HMAC_LEN]>,
}

impl ReplayWindow {
    /// Record `hmac`; false if it was seen already.
    fn insert(&mut self, hmac: [u8; codec::HMAC_LEN]) -> bool {
        if !self.seen.insert(hmac) {
            return false;
        }
        self.order.push_back(hmac);
        if self.order.len() > REPLAY_WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// The IPv4 address of interface `name`, if it has one.
fn interface_v4(name: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|i| {
        (i.interface_name == name)
            .then(|| i.address?.as_sockaddr_in().map(|a| a.ip()))
            .flatten()
    })
}

fn with_port(text: &str, port: u16) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port)))
        .or_else(|| (text, port).to_socket_addrs().ok()?.next())
        .or_else(|| text.to_socket_addrs().ok()?.next())
}

/// A running sync endpoint.
pub struct Sync {
    socket: UdpSocket,
    local: SocketAddr,
    targets: Vec<SocketAddr>,
    key: SyncKey,
    counter: AtomicU32,
    replay: Mutex<ReplayWindow>,
    /// Last packet out and in, by peer address.
    peers: Mutex<BTreeMap<SocketAddr, SyncPeer>>,
    pub stats: SyncStats,
    pub receiving: bool,
}

impl Sync {
    /// Read the key (`key_path`; a missing file means the empty key, as in
    /// spamd), bind, and resolve the targets.
    pub fn start(targets: &[String], listen: Option<&str>, key_path: &Path, port: u16) -> Result<Sync, SyncError> {
        let key = match std::fs::read(key_path) {
            Ok(content) => SyncKey::from_file_content(&content),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SyncKey::empty(),
            Err(source) => {
                return Err(SyncError::Key {
                    path: key_path.display().to_string(),
                    source,
                });
            }
        };
        let mut resolved = Vec::new();
        let mut multicast_if = None;
        for t in targets {
            if let Some(addr) = with_port(t, port) {
                resolved.push(addr);
            } else if let Some(ip) = interface_v4(t) {
                multicast_if = Some(ip);
                resolved.push(SocketAddr::new(IpAddr::V4(MULTICAST_GROUP), port));
            } else {
                return Err(SyncError::BadTarget(t.clone()));
            }
        }
        let (bind, join) = match listen {
            None => (SocketAddr::from(([0, 0, 0, 0], 0)), None),
            Some(l) => match with_port(l, port) {
                Some(addr) => (addr, None),
                None => {
                    let ip = interface_v4(l).ok_or_else(|| SyncError::BadListen(l.to_string()))?;
                    (SocketAddr::from(([0, 0, 0, 0], port)), Some(ip))
                }
            },
        };
        let sock = socket2::Socket::new(socket2::Domain::for_address(bind), socket2::Type::DGRAM, None)?;
        sock.set_reuse_address(true)?;
        sock.bind(&bind.into())?;
        if let Some(ip) = join.or(multicast_if) {
            sock.join_multicast_v4(&MULTICAST_GROUP, &ip)?;
            sock.set_multicast_if_v4(&ip)?;
        }
        sock.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(sock.into())?;
        let mut local = socket.local_addr()?;
        if let Some(ip) = join {
            local.set_ip(IpAddr::V4(ip));
        }
        // Start the counter at the clock so it keeps rising across restarts.
        let counter = AtomicU32::new(greyd_shared::datetime::now() as u32);
        let peers = resolved.iter().map(|&addr| (addr, SyncPeer::new(addr))).collect();
        Ok(Sync {
            socket,
            local,
            targets: resolved,
            key,
            counter,
            replay: Mutex::default(),
            peers: Mutex::new(peers),
            stats: SyncStats::default(),
            receiving: listen.is_some(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Send `messages` to every target, packed into as few packets as the
    /// format allows. Best effort: UDP, no retries, as spamd.
    pub fn send(&self, messages: &[SyncMessage]) {
        if self.targets.is_empty() {
            return;
        }
        for packet in self.packets(messages) {
            for t in &self.targets {
                if self.socket.try_send_to(&packet, *t).is_ok() {
                    crate::metrics::sync_packet("sent");
                    self.saw(*t, |p, when| p.last_out = Some(when));
                }
            }
        }
    }

    /// Stamp peer `addr` with `mark` now (a new peer only while fewer than [`MAX_PEERS`] are known).
    fn saw(&self, addr: SocketAddr, mark: impl FnOnce(&mut SyncPeer, i64)) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() >= MAX_PEERS && !peers.contains_key(&addr) {
            return;
        }
        let peer = peers.entry(addr).or_insert_with(|| SyncPeer::new(addr));
        mark(peer, greyd_shared::datetime::now());
    }

    /// The peers known: the targets and the senders of accepted packets.
    pub fn peers(&self) -> Vec<SyncPeer> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.values().cloned().collect()
    }

    fn packets(&self, messages: &[SyncMessage]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        // spamd-compatible records travel together; every other record alone.
        let (plain, special): (Vec<&SyncMessage>, Vec<&SyncMessage>) =
            messages.iter().partition(|m| m.spamd_compatible());
        let mut batch: Vec<SyncMessage> = Vec::new();
        let mut size = codec::HEADER_LEN + 4;
        for m in plain {
            let len = codec::record_len(m);
            if codec::HEADER_LEN + 4 + len > codec::MAX_PACKET {
                continue; // cannot be sent in spamd's format at all
            }
            if size + len > codec::MAX_PACKET {
                out.push(codec::encode(
                    &batch,
                    self.counter.fetch_add(1, Ordering::Relaxed),
                    &self.key,
                ));
                batch.clear();
                size = codec::HEADER_LEN + 4;
            }
            size += len;
            batch.push(m.clone());
        }
        if !batch.is_empty() {
            out.push(codec::encode(
                &batch,
                self.counter.fetch_add(1, Ordering::Relaxed),
                &self.key,
            ));
        }
        for m in special {
            if codec::HEADER_LEN + 4 + codec::record_len(m) <= codec::MAX_PACKET {
                out.push(codec::encode(
                    std::slice::from_ref(m),
                    self.counter.fetch_add(1, Ordering::Relaxed),
                    &self.key,
                ));
            }
        }
        out
    }

    /// Wait for the next acceptable packet; drops (and counts) the rest.
    pub async fn recv(&self) -> std::io::Result<(SocketAddr, Vec<SyncMessage>)> {
        let mut buf = [0u8; codec::MAX_PACKET];
        loop {
            let (n, from) = self.socket.recv_from(&mut buf).await?;
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            if from == self.local {
                // Our own multicast comes back to us: expected, so only debug.
                self.stats.own.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "sync: ignored our own packet ({} so far)",
                    self.stats.own.load(Ordering::Relaxed)
                );
                continue;
            }
            match codec::decode(&buf[..n], &self.key) {
                Ok(p) => {
                    if self.replay.lock().unwrap_or_else(|e| e.into_inner()).insert(p.hmac) {
                        crate::metrics::sync_packet("received");
                        self.saw(from, |p, when| p.last_in = Some(when));
                        return Ok((from, p.messages));
                    }
                    self.stats.replayed.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::sync_packet("dropped");
                    tracing::info!(
                        "sync: dropped a replayed packet from {from} ({} so far)",
                        self.stats.replayed.load(Ordering::Relaxed)
                    );
                }
                Err(DecodeError::BadHmac) => {
                    self.stats.bad_hmac.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::sync_packet("dropped");
                    tracing::info!(
                        "sync: dropped a packet with a bad HMAC from {from} ({} so far)",
                        self.stats.bad_hmac.load(Ordering::Relaxed)
                    );
                }
                Err(e) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::sync_packet("dropped");
                    tracing::info!(
                        "sync: dropped a packet from {from}: {e} ({} so far)",
                        self.stats.malformed.load(Ordering::Relaxed)
                    );
                }
            }
        }
    }
}

fn clamp(t: u32) -> i64 {
    i64::from(t)
}

/// Apply a peer's message with the local rules; returns what memory and the firewall must follow.
pub fn merge(
    tx: &Tx<'_>,
    msg: &SyncMessage,
    allowed: &AllowedDomains,
    rules: &GreyRules,
    now: i64,
) -> Result<Effects, DbError> {
    let ip = crate::control::canonical(msg.ip());
    let mut fx = Effects::default();
    match msg {
        SyncMessage::Grey { helo, from, to, .. } => {
            let tuple = GreyTuple {
                ip,
                helo: helo.clone(),
                from: from.clone(),
                to: to.clone(),
            };
            fx = Effects::from(&grey::record_tuple(
                tx,
                &tuple,
                allowed,
                false,
                &grey::Evidence::default(),
                rules,
                now,
            )?);
        }
        SyncMessage::White { timestamp, expire, .. } if clamp(*expire) > now => {
            let entry = match tx.white(ip)? {
                Some(w) => WhiteEntry {
                    expire: w.expire.max(clamp(*expire)),
                    ..w
                },
                None => WhiteEntry {
                    ip,
                    first: clamp(*timestamp),
                    pass: clamp(*timestamp),
                    expire: clamp(*expire),
                    bcount: 0,
                    pcount: 0,
                },
            };
            tx.put_white(&entry)?;
            tx.delete_grey(ip, None)?;
            fx.white_added.push((ip, entry.expire));
        }
        SyncMessage::Trapped { expire, .. } if clamp(*expire) > now => {
            let expire = tx.trapped(ip)?.map_or(clamp(*expire), |t| t.expire.max(clamp(*expire)));
            let entry = TrappedEntry { ip, expire };
            tx.put_trapped(&entry)?;
            fx.trapped_added.push((ip, entry.expire));
        }
        SyncMessage::White { .. } | SyncMessage::Trapped { .. } => {}
        SyncMessage::DelWhite { .. } => {
            if tx.delete_white(ip)? > 0 {
                fx.white_removed.push(ip);
            }
        }
        SyncMessage::DelTrapped { .. } => {
            if tx.delete_trapped(ip)? > 0 {
                fx.trapped_removed.push(ip);
            }
        }
    }
    Ok(fx)
}

/// The messages announcing a local decision to peers.
pub fn announce(decision: &Decision, tuple: &GreyTuple, now: i64) -> Vec<SyncMessage> {
    let ts = now as u32;
    match decision {
        Decision::Promote(whites, _) => whites
            .iter()
            .map(|w| SyncMessage::White {
                timestamp: ts,
                expire: w.expire as u32,
                ip: w.ip,
            })
            .collect(),
        Decision::Trap(t, _) => vec![SyncMessage::Trapped {
            timestamp: ts,
            expire: t.expire as u32,
            ip: t.ip,
        }],
        Decision::NewGrey(_) | Decision::StillGrey(_) => vec![SyncMessage::Grey {
            timestamp: ts,
            ip: tuple.ip,
            helo: tuple.helo.clone(),
            from: tuple.from.clone(),
            to: tuple.to.clone(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("g.db")).unwrap();
        (dir, db)
    }

    #[test]
    fn received_white_and_trapped_keep_the_later_expiry_and_clear_grey() {
        let (_d, mut db) = db();
        let rules = GreyRules::default();
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        let allowed = AllowedDomains::default();
        let grey = SyncMessage::Grey {
            timestamp: 1,
            ip,
            helo: "h".into(),
            from: "a@b".into(),
            to: "c@d".into(),
        };
        db.transaction(|tx| merge(tx, &grey, &allowed, &rules, 100)).unwrap();
        assert!(matches!(db.dump(&[]).unwrap()[..], [crate::db::Entry::Grey(_)]));
        let white = SyncMessage::White {
            timestamp: 90,
            expire: 5000,
            ip,
        };
        let fx = db.transaction(|tx| merge(tx, &white, &allowed, &rules, 100)).unwrap();
        assert_eq!(fx.white_added, vec![(ip, 5000)]);
        let older = SyncMessage::White {
            timestamp: 90,
            expire: 3000,
            ip,
        };
        db.transaction(|tx| merge(tx, &older, &allowed, &rules, 100)).unwrap();
        match &db.dump(&[]).unwrap()[..] {
            [crate::db::Entry::White(w)] => assert_eq!((w.first, w.expire), (90, 5000)),
            other => panic!("{other:?}"),
        }
        let stale = SyncMessage::Trapped {
            timestamp: 1,
            expire: 50,
            ip,
        };
        assert!(
            db.transaction(|tx| merge(tx, &stale, &allowed, &rules, 100))
                .unwrap()
                .trapped_added
                .is_empty()
        );
        let del = SyncMessage::DelWhite { timestamp: 101, ip };
        let fx = db.transaction(|tx| merge(tx, &del, &allowed, &rules, 101)).unwrap();
        assert_eq!(fx.white_removed, vec![ip]);
        assert!(db.dump(&[]).unwrap().is_empty());
    }

    #[test]
    fn replay_window_is_bounded() {
        let mut w = ReplayWindow::default();
        assert!(w.insert([1; 20]));
        assert!(!w.insert([1; 20]));
        for i in 0..REPLAY_WINDOW as u32 + 10 {
            let mut h = [0u8; 20];
            h[..4].copy_from_slice(&i.to_be_bytes());
            h[19] = 9;
            w.insert(h);
        }
        assert_eq!(w.order.len(), REPLAY_WINDOW);
        assert_eq!(w.seen.len(), REPLAY_WINDOW);
    }

    #[tokio::test]
    async fn packets_split_at_the_size_limit_and_isolate_extensions() {
        let s = Sync::start(
            &["127.0.0.1:9".into()],
            None,
            Path::new("/nonexistent/key"),
            DEFAULT_PORT,
        )
        .unwrap();
        let many: Vec<SyncMessage> = (0..200u32)
            .map(|i| SyncMessage::White {
                timestamp: i,
                expire: i,
                ip: IpAddr::V4(i.into()),
            })
            .chain([SyncMessage::DelWhite {
                timestamp: 0,
                ip: "192.0.2.1".parse().unwrap(),
            }])
            .collect();
        let packets = s.packets(&many);
        assert!(packets.iter().all(|p| p.len() <= codec::MAX_PACKET));
        let decoded: Vec<_> = packets
            .iter()
            .map(|p| codec::decode(p, &SyncKey::empty()).unwrap().messages)
            .collect();
        assert_eq!(decoded.iter().map(Vec::len).sum::<usize>(), 201);
        assert_eq!(decoded.last().unwrap().len(), 1, "the extension record travels alone");
    }
}
