//! The IMAP listeners: accept, one task per connection, implicit TLS on
//! IMAPS, then a [`Session`]. Binding is `smtp::server::bind`.

use super::session::Session;
use crate::service::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long a client has to finish the TLS handshake on IMAPS.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accept connections on `listener` forever.
pub async fn serve(listener: TcpListener, implicit_tls: bool, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(connection(sock, peer, implicit_tls, shared));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("imap accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(sock: TcpStream, peer: SocketAddr, implicit_tls: bool, shared: Arc<Shared>) {
    let _ = sock.set_nodelay(true);
    let io: Box<dyn crate::smtp::session::Io> = if implicit_tls {
        let Some(tls) = &shared.tls else { return };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(sock)).await {
            Ok(Ok(stream)) => Box::new(stream),
            _ => return tracing::info!("imap: TLS handshake with {peer} failed"),
        }
    } else {
        Box::new(sock)
    };
    tracing::debug!("imap: connect from {peer}");
    Session::new(io, shared, peer, implicit_tls).run().await;
}
