//! The one network layer every listener of mta uses: binding, the accept
//! loop with its connection caps (per client address, and one budget of
//! descriptors for the whole process), the TLS handshake (implicit TLS, and
//! [`upgrade_tls`] for STARTTLS/STLS), and the byte stream a session runs
//! over. SMTP, IMAP and POP3 hand it a handler; it does the rest.

mod connection;
mod gate;

pub use connection::{Connection, Input, ReadError};
pub use gate::{Gate, Refused, Ticket};

use crate::tls::Tls;
use greyd_shared::proxy::{self, ProxyError, ProxyHeader};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A bidirectional byte stream a session runs over (TCP, TLS, or stdio).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The server side of a TLS handshake on `stream`, within `timeout`.
async fn handshake<S: Io + 'static>(stream: S, tls: &Tls, timeout: Duration) -> Result<Box<dyn Io>, HandshakeError> {
    match tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(HandshakeError::Timeout),
    }
}

/// STARTTLS (SMTP, IMAP) and STLS (POP3): replace the plaintext `io` by TLS
/// over it. The caller has flushed its go-ahead and dropped whatever the
/// client pipelined after the command. On an error `io` is gone: close.
pub async fn upgrade_tls(io: &mut Box<dyn Io>, tls: &Tls, timeout: Duration) -> Result<(), HandshakeError> {
    let plain = std::mem::replace(io, Box::new(tokio::io::empty()));
    *io = handshake(plain, tls, timeout).await?;
    Ok(())
}

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
        match handshake(sock, tls?, spec.handshake_timeout).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server certificate for `mx.example`, and a client that trusts only it.
    fn pair() -> (tempfile::TempDir, Tls, tokio_rustls::TlsConnector) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        crate::tls::write_self_signed(&["mx.example".into()], &cert, &key).unwrap();
        let tls = Tls::load(&cert, &key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (dir, tls, tokio_rustls::TlsConnector::from(Arc::new(config)))
    }

    #[tokio::test]
    async fn starttls_upgrades_the_stream_in_place() {
        let (_dir, tls, connector) = pair();
        let (client, server) = tokio::io::duplex(16 << 10);
        let mut io: Box<dyn Io> = Box::new(server);
        let client = tokio::spawn(async move {
            let name = ServerName::try_from("mx.example").unwrap();
            let mut stream = connector.connect(name, client).await.unwrap();
            stream.write_all(b"EHLO client\r\n").await.unwrap();
            stream.flush().await.unwrap();
            let mut reply = [0u8; 6];
            stream.read_exact(&mut reply).await.unwrap();
            reply
        });
        upgrade_tls(&mut io, &tls, Duration::from_secs(10)).await.unwrap();
        let mut line = [0u8; 13];
        io.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"EHLO client\r\n");
        io.write_all(b"250 ok").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(&client.await.unwrap(), b"250 ok");
    }

    #[tokio::test]
    async fn a_client_that_never_starts_the_handshake_times_out() {
        let (_dir, tls, _) = pair();
        let (_client, server) = tokio::io::duplex(1024);
        let mut io: Box<dyn Io> = Box::new(server);
        let r = upgrade_tls(&mut io, &tls, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(HandshakeError::Timeout)), "{r:?}");
    }

    #[tokio::test]
    async fn plaintext_after_starttls_fails_the_handshake() {
        let (_dir, tls, _) = pair();
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io: Box<dyn Io> = Box::new(server);
        client.write_all(b"MAIL FROM:<a@b>\r\n").await.unwrap();
        let r = upgrade_tls(&mut io, &tls, Duration::from_secs(10)).await;
        assert!(matches!(r, Err(HandshakeError::Io(_))), "{r:?}");
    }
}
