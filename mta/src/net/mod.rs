//! The one network layer every listener of mta uses: binding, the accept
//! loop with its connection caps (per client address, and one budget of
//! descriptors for the whole process), the TLS handshake (implicit TLS, and
//! [`upgrade_tls`] for STARTTLS/STLS), and the byte stream a session runs
//! over. SMTP, IMAP and POP3 hand it a handler; it does the rest.

mod connection;
mod gate;
mod stream;

pub use connection::{Connection, Input, ReadError};
pub use gate::{Gate, Refused, Ticket};
pub use stream::{HandshakeError, Io, upgrade_tls};

use crate::tls::Tls;
use greyd_shared::proxy::{self, ProxyError, ProxyHeader};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

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

/// What one listener does before its protocol starts.
pub struct Listener {
    /// Names the protocol in logs and in the per-client counts (`"smtp"`, `"imap"`, …).
    pub service: &'static str,
    /// Simultaneous connections one client address may hold on this service.
    pub per_client: usize,
    /// TLS from the first byte (465, 993, 995).
    pub implicit_tls: bool,
    /// How long a proxy has to send its header, and a client to finish a TLS handshake.
    pub handshake_timeout: Duration,
    /// Sent before closing a refused connection: `(too many from you, server busy)`.
    pub refusals: (&'static str, &'static str),
    /// Peers whose connections start with a PROXY v2 header naming the real client.
    pub proxy_from: Vec<IpAddr>,
}

/// An accepted connection, past PROXY header, caps and implicit TLS.
pub struct Incoming {
    pub io: Box<dyn Io>,
    /// The real client (from the PROXY header where one was required).
    pub client: SocketAddr,
    /// The stream is already TLS.
    pub tls: bool,
}

/// Accept connections on `listener` forever, one task each; `handler` runs
/// the protocol. The connection's place in `gate` is claimed before its
/// task starts and released when the handler returns.
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    spec: Arc<Listener>,
    tls: Option<Arc<Tls>>,
    gate: Arc<Gate>,
    handler: H,
) where
    H: Fn(Incoming) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends (other processes' descriptors): back off instead of spinning.
                tracing::warn!("{} accept: {e}", spec.service);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(ticket) = gate.open() else {
            tracing::warn!("{}: refusing {peer}: connection budget exhausted", spec.service);
            refuse(&sock, spec.refusals.1);
            continue;
        };
        let (spec, tls, gate, handler) = (Arc::clone(&spec), tls.clone(), Arc::clone(&gate), Arc::clone(&handler));
        tokio::spawn(async move {
            if let Some(incoming) = prepare(sock, peer, &spec, tls.as_deref(), &gate, ticket).await {
                let (incoming, _ticket) = incoming;
                handler(incoming).await;
            }
        });
    }
}

/// Best effort, never waiting: a refused client gets one line and the close.
fn refuse(sock: &TcpStream, line: &str) {
    let _ = sock.try_write(format!("{line}\r\n").as_bytes());
}

/// PROXY header, per-client cap, implicit TLS; `None` when the connection ends here.
async fn prepare(
    mut sock: TcpStream,
    peer: SocketAddr,
    spec: &Listener,
    tls: Option<&Tls>,
    gate: &Gate,
    mut ticket: Ticket,
) -> Option<(Incoming, Ticket)> {
    let _ = sock.set_nodelay(true);
    let mut client = peer;
    if spec.proxy_from.contains(&peer.ip()) {
        match tokio::time::timeout(spec.handshake_timeout, read_proxy_header(&mut sock)).await {
            Ok(Ok(header)) => client = header.source.unwrap_or(peer),
            Ok(Err(e)) => {
                tracing::warn!("PROXY header from {peer}: {e}; closing");
                return None;
            }
            Err(_) => {
                tracing::warn!("PROXY header from {peer}: timeout; closing");
                return None;
            }
        }
    }
    if let Err(Refused) = gate.enter_client(&mut ticket, spec.service, client.ip(), spec.per_client) {
        tracing::info!("{}: too many connections from {}", spec.service, client.ip());
        refuse(&sock, spec.refusals.0);
        return None;
    }
    let io: Box<dyn Io> = if spec.implicit_tls {
        match stream::handshake(sock, tls?, spec.handshake_timeout).await {
            Ok(io) => io,
            Err(e) => {
                tracing::info!("{}: TLS handshake with {client} failed: {e}", spec.service);
                return None;
            }
        }
    } else {
        Box::new(sock)
    };
    tracing::debug!("{}: connect from {client}", spec.service);
    Some((
        Incoming {
            io,
            client,
            tls: spec.implicit_tls,
        },
        ticket,
    ))
}

/// Read a PROXY v2 header exactly, so no byte of the session is consumed.
async fn read_proxy_header(sock: &mut TcpStream) -> std::io::Result<ProxyHeader> {
    use tokio::io::AsyncReadExt;
    let invalid = |e: ProxyError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut buf = vec![0u8; 16];
    sock.read_exact(&mut buf).await?;
    proxy::parse(&buf).map_err(invalid)?;
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    buf.resize(16 + len, 0);
    sock.read_exact(&mut buf[16..]).await?;
    match proxy::parse(&buf).map_err(invalid)? {
        Some((header, _)) => Ok(header),
        None => Err(invalid(ProxyError::Truncated)),
    }
}

/// Raise the soft descriptor limit to the hard one, and return the new soft
/// limit: each connection is a descriptor, and a low soft limit (1024 is
/// common) would let a few hundred idle clients starve the queue.
pub fn raise_descriptor_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!("cannot raise the descriptor limit from {soft} to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}
