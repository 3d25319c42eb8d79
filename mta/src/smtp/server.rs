//! The SMTP listeners: bind, accept, one task per connection; the PROXY v2
//! header from trusted peers, the per-client connection cap, implicit TLS
//! on 465, then a [`Session`].

use super::proxy;
use super::session::{Io, Port, Session};
use crate::service::Shared;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a trusted proxy has to send its header, and a client to finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bind `addr`; IPv6 sockets are v6-only so `0.0.0.0` and `[::]` can both be listed.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

/// Open connections per client address.
#[derive(Default)]
pub struct ConnectionCounts(Mutex<HashMap<IpAddr, usize>>);

/// Decrements the count of its address when the connection ends.
pub struct CountGuard {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl ConnectionCounts {
    /// Count a new connection, or `None` if `ip` is at the cap.
    pub fn enter(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<CountGuard> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(CountGuard {
            counts: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accept connections on `listener` forever.
pub async fn serve(listener: TcpListener, port: Port, shared: Arc<Shared>, counts: Arc<ConnectionCounts>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let shared = Arc::clone(&shared);
                let counts = Arc::clone(&counts);
                tokio::spawn(async move { connection(sock, peer, port, shared, counts).await });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Read a PROXY v2 header exactly (no byte of the session is consumed).
async fn read_proxy_header(sock: &mut TcpStream) -> Result<proxy::ProxyHeader, String> {
    let mut buf = vec![0u8; 16];
    sock.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if let Err(e) = proxy::parse(&buf) {
        return Err(e.to_string());
    }
    buf.resize(16 + len, 0);
    sock.read_exact(&mut buf[16..]).await.map_err(|e| e.to_string())?;
    match proxy::parse(&buf) {
        Ok(Some((header, _))) => Ok(header),
        Ok(None) => Err("short PROXY header".into()),
        Err(e) => Err(e.to_string()),
    }
}

async fn connection(
    mut sock: TcpStream,
    peer: SocketAddr,
    port: Port,
    shared: Arc<Shared>,
    counts: Arc<ConnectionCounts>,
) {
    let _ = sock.set_nodelay(true);
    let mut client = peer;
    if shared.config.smtp.proxy_from.contains(&peer.ip()) {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_proxy_header(&mut sock)).await {
            Ok(Ok(header)) => client = header.source.unwrap_or(peer),
            Ok(Err(e)) => return tracing::warn!("PROXY header from {peer}: {e}; closing"),
            Err(_) => return tracing::warn!("PROXY header from {peer}: timeout; closing"),
        }
    }
    let Some(_guard) = counts.enter(client.ip(), shared.config.smtp.max_connections_per_client) else {
        tracing::info!("reject: too many connections from {}", client.ip());
        let _ = sock
            .write_all(b"421 4.7.0 Too many connections from your address\r\n")
            .await;
        return;
    };
    let io: Box<dyn Io> = if port == Port::Smtps {
        let Some(tls) = &shared.tls else { return };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(sock)).await {
            Ok(Ok(stream)) => Box::new(stream),
            _ => return tracing::info!("TLS handshake with {client} failed"),
        }
    } else {
        Box::new(sock)
    };
    tracing::debug!("connect from {client} on {port:?}");
    Session::new(io, shared, port, Some(client), port == Port::Smtps)
        .run()
        .await;
}
