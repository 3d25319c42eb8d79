//! The SMTP listeners: each port's rules for the network layer (PROXY v2
//! from trusted peers, the per-client cap, implicit TLS on 465), then a
//! [`Session`].

use super::session::{Port, Session};
use crate::net::{self, Gate, Incoming};
use crate::service::Shared;
use crate::stats::Event;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a trusted proxy has to send its header, and a client to finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accept connections on `listener` forever.
pub async fn serve(listener: TcpListener, port: Port, shared: Arc<Shared>, gate: Arc<Gate>) {
    let spec = net::Listener {
        service: "smtp",
        per_client: shared.config.smtp.max_connections_per_client,
        implicit_tls: port == Port::Smtps,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        refusals: (
            "421 4.7.0 Too many connections from your address",
            "421 4.3.2 Too many connections, try again later",
        ),
        proxy_from: shared.config.smtp.proxy_from.clone(),
    };
    let tls = shared.tls.clone();
    net::accept_loop(listener, Arc::new(spec), tls, gate, move |c: Incoming| {
        shared.stats.count(Event::Session(port.listener()), 1);
        Session::new(c.io, Arc::clone(&shared), port, Some(c.client), c.tls).run()
    })
    .await;
}
