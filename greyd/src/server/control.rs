//! Serves the control socket: each request is applied to the database in one
//! transaction, then its effects to memory and the firewall.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

use super::state::{Shared, now};
use crate::control::{Effects, MAX_REQUEST, Request, Response, apply};

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

async fn handle(shared: &Arc<Shared>, req: Request) -> Response {
    let rules = shared.config.rules;
    match shared.with_db(move |tx| Ok(apply(tx, req, &rules, now()))).await {
        Ok(Ok((response, effects))) => {
            mirror(shared, effects);
            response
        }
        Ok(Err(e)) => Response::error(e),
        Err(e) => Response::error(e),
    }
}

/// Bring memory and the firewall in line with a committed change.
fn mirror(shared: &Shared, fx: Effects) {
    let mut reload = false;
    {
        let mut m = shared.memory_mut();
        for &(ip, expire) in &fx.white_added {
            m.white.insert(ip, expire);
        }
        for ip in &fx.white_removed {
            m.white.remove(ip);
        }
        for &(ip, expire) in &fx.trapped_added {
            m.trapped.insert(ip, expire);
        }
        for ip in &fx.trapped_removed {
            m.trapped.remove(ip);
        }
        if let Some(list) = fx.list_loaded {
            info!(
                "list {} loaded: {} entries ({:?})",
                list.name,
                list.entries.len(),
                list.kind
            );
            reload |= list.hard_block || list.kind == crate::control::ListKind::Allow;
            m.lists.replace(list);
        }
        if let Some(name) = fx.list_dropped
            && m.lists.remove(&name)
        {
            info!("list {name} dropped");
            reload = true;
        }
    }
    for &(ip, _) in &fx.white_added {
        info!("{ip}: whitelisted by control request");
        if let Err(e) = shared.firewall.white_added(ip) {
            warn!("{ip}: firewall: {e}");
        }
    }
    for &ip in &fx.white_removed {
        if let Err(e) = shared.firewall.white_removed(ip) {
            warn!("{ip}: firewall: {e}");
        }
    }
    if reload && let Err(e) = shared.firewall.load(&shared.firewall_state()) {
        warn!("firewall: {e}");
    }
}
