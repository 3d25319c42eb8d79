//! The IMAP listeners: IMAP's rules for the network layer (per-client cap,
//! implicit TLS on IMAPS), then a [`Session`].

use super::session::Session;
use crate::net::{self, Gate, Incoming};
use crate::service::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client has to finish the TLS handshake on IMAPS.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accept connections on `listener` forever.
pub async fn serve(listener: TcpListener, implicit_tls: bool, shared: Arc<Shared>, gate: Arc<Gate>) {
    let spec = net::Listener {
        service: "imap",
        per_client: shared.config.imap.max_connections_per_client,
        implicit_tls,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        refusals: (
            "* BYE [UNAVAILABLE] Too many connections from your address",
            "* BYE [UNAVAILABLE] Too many connections, try again later",
        ),
        proxy_from: Vec::new(),
    };
    let tls = shared.tls.clone();
    let name = if implicit_tls { "imaps" } else { "imap" };
    net::accept_loop(listener, Arc::new(spec), tls, gate, move |c: Incoming| {
        shared.stats.count(crate::stats::Event::Session(name), 1);
        Session::new(c.io, Arc::clone(&shared), c.client, c.tls).run()
    })
    .await;
}
