//! Serves the control socket: each request is applied to the database in one
//! transaction, then its effects to memory and the firewall.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::warn;

use super::state::Shared;
use crate::control::{MAX_REQUEST, Request, Response, Stats, apply};
use greyd_shared::datetime::now;

/// Bind the control socket, owner and group only.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    // A socket left by a previous run that nobody answers on is stale.
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

pub async fn serve(shared: Arc<Shared>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(session(Arc::clone(&shared), stream));
            }
            Err(e) => warn!("control socket accept: {e}"),
        }
    }
}

async fn session(shared: Arc<Shared>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(0));
    loop {
        let mut line = Vec::new();
        reader.get_mut().set_limit(MAX_REQUEST as u64 + 1);
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // An overlong request is answered, then the connection is closed: its rest is junk.
        let too_long = line.len() > MAX_REQUEST;
        let response = match Request::parse(&line) {
            Ok(req) => handle(&shared, req).await,
            Err(e) => Response::error(e),
        };
        if write.write_all(&response.to_line()).await.is_err() || too_long {
            return;
        }
    }
}

/// How many trapped sources a stats answer names.
const TOP_TRAPPED: usize = 10;

async fn handle(shared: &Arc<Shared>, req: Request) -> Response {
    if req == Request::Stats {
        return stats(shared).await;
    }
    let rules = shared.config.rules;
    match shared.with_db(move |tx| Ok(apply(tx, req, &rules, now()))).await {
        Ok(Ok((response, effects))) => {
            shared.announce(&effects);
            shared.mirror(effects, Some("control request"));
            response
        }
        Ok(Err(e)) => Response::error(e),
        Err(e) => Response::error(e),
    }
}

/// The numbers (from [`crate::metrics`], which the Prometheus endpoint reads
/// too), the lists from the database and the sync peers.
async fn stats(shared: &Arc<Shared>) -> Response {
    match shared.with_db(|tx| tx.list_infos()).await {
        Ok(lists) => Response::Stats(Box::new(Stats {
            started: shared.started,
            numbers: crate::metrics::snapshot(TOP_TRAPPED),
            lists,
            peers: shared.sync.as_ref().map(|s| s.peers()).unwrap_or_default(),
        })),
        Err(e) => Response::error(e),
    }
}
