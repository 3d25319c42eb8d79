//! The HTTPS listener: the `net` layer accepts (caps, implicit TLS), hyper
//! speaks HTTP/1.1 on the stream, and the axum router answers.

use crate::net::{self, Gate, Incoming};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a client has for the TLS handshake, and for each request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Accept HTTPS connections on `listener` forever.
pub async fn serve(listener: TcpListener, app: Router, shared: Arc<crate::service::Shared>, gate: Arc<Gate>) {
    let spec = net::Listener {
        service: "https",
        per_client: shared.config.web.max_connections_per_client,
        implicit_tls: true,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        refusals: ("", ""),
        proxy_from: Vec::new(),
    };
    let tls = shared.tls.clone();
    net::accept_loop(listener, Arc::new(spec), tls, gate, move |c: Incoming| {
        shared.stats.count(crate::stats::Event::Session("https"), 1);
        connection(c, app.clone())
    })
    .await;
}

async fn connection(c: Incoming, app: Router) {
    let client = ClientAddr(c.client);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(client);
        app.clone().oneshot(req)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(TokioIo::new(c.io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("https: {}: {e}", c.client);
    }
}
