//! The daemon: binds the listeners and the control socket, drops privileges,
//! then runs one task per connection, the control server and the expiry sweep.

mod conn;
mod control;
mod dns;
mod limits;
mod privileges;
mod state;
mod stutter;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::db::Db;
use crate::firewall;
use crate::grey::AllowedDomains;
use crate::sync::Sync;
use greyd_shared::datetime::now;
use state::Shared;

/// A listening socket; IPv6 sockets are v6-only so `0.0.0.0` and `::` can both be bound.
fn listen(ip: IpAddr, port: u16) -> Result<TcpListener> {
    let addr = SocketAddr::new(ip, port);
    let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if ip.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    sock.listen(1024)?;
    Ok(TcpListener::from_std(sock.into())?)
}

/// Create the database's directory if needed and open it.
fn open_db(path: &Path) -> Result<Db> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(Db::open(path)?)
}

/// Run greyd until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<()> {
    let user = privileges::target(&config.user, config.firewall)?;
    let db = open_db(&config.db)?;
    let allowed = AllowedDomains::load(&config.alloweddomains)
        .with_context(|| format!("cannot read {}", config.alloweddomains.display()))?;
    let fw = firewall::from_config(&config)?;
    let listeners = config
        .listen
        .iter()
        .map(|&ip| listen(ip, config.port))
        .collect::<Result<Vec<_>>>()?;
    let control = control::bind(&config.control)
        .with_context(|| format!("cannot create control socket {}", config.control.display()))?;
    let sync = if config.sync_targets.is_empty() && config.sync_listen.is_none() {
        None
    } else {
        Some(Sync::start(
            &config.sync_targets,
            config.sync_listen.as_deref(),
            &config.sync_key,
            config.sync_port,
        )?)
    };
    if let Some(addr) = config.metrics {
        crate::metrics::install(addr).with_context(|| format!("cannot serve metrics on {addr}"))?;
        info!("metrics on http://{addr}/metrics");
    }
    let shared = Shared::new(config, db, allowed, fw, sync)?;
    for l in &listeners {
        info!("listening on {}", l.local_addr()?);
        shared.firewall.listening(l)?;
    }
    if let Some(user) = &user {
        privileges::become_user(&shared.config, user)?;
    }
    for l in listeners {
        tokio::spawn(accept_loop(Arc::clone(&shared), l));
    }
    tokio::spawn(control::serve(Arc::clone(&shared), control));
    tokio::spawn(sweep(Arc::clone(&shared)));
    if let Some(sync) = shared.sync.as_ref().filter(|s| s.receiving) {
        info!("sync: receiving on {}", sync.local_addr());
        tokio::spawn(receive_sync(Arc::clone(&shared)));
    }
    info!(
        "greyd ready: firewall {:?}, passtime {}s, greyexp {}s, whiteexp {}s",
        shared.config.firewall,
        shared.config.rules.passtime.as_secs(),
        shared.config.rules.greyexp.as_secs(),
        shared.config.rules.whiteexp.as_secs()
    );
    greyd_shared::readiness::notify_ready("serving");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("exiting");
    greyd_shared::readiness::notify_stopping();
    if let Err(e) = shared.firewall.shutdown() {
        warn!("{e}");
    }
    let _ = std::fs::remove_file(&shared.config.control);
    Ok(())
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors: back off instead of spinning.
                warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        conn::start(&shared, stream, peer);
    }
}

/// Merge what peers send, one packet at a time.
async fn receive_sync(shared: Arc<Shared>) {
    let Some(sync) = shared.sync.as_ref() else { return };
    loop {
        let (from, messages) = match sync.recv().await {
            Ok(m) => m,
            Err(e) => {
                warn!("sync: receive: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let count = messages.len();
        let s2 = Arc::clone(&shared);
        let merged = shared
            .with_db(move |tx| {
                let rules = s2.config.rules;
                let when = now();
                let mut all = crate::control::Effects::default();
                for m in &messages {
                    all.extend(crate::sync::merge(tx, m, &s2.allowed, &rules, when)?);
                }
                Ok(all)
            })
            .await;
        match merged {
            Ok(fx) => {
                debug!("sync: merged {count} entries from {from}");
                shared.mirror(fx, Some(&format!("sync peer {from}")));
            }
            Err(e) => warn!("sync: cannot merge entries from {from}: {e}"),
        }
    }
}

/// Whitelisted hosts that keep talking stay whitelisted: refresh the entries
/// of those the kernel filter saw (spamlogd's inbound role).
async fn refresh_seen(shared: &Arc<Shared>) {
    let seen: Vec<_> = {
        let m = shared.memory();
        shared
            .firewall
            .seen_white()
            .into_iter()
            .filter(|ip| m.white.contains_key(ip))
            .collect()
    };
    if seen.is_empty() {
        return;
    }
    let rules = shared.config.rules;
    let refreshed = shared
        .with_db(move |tx| {
            seen.iter()
                .map(|&ip| crate::grey::refresh_white(tx, ip, &rules, now()))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    match refreshed {
        Ok(entries) => {
            let mut m = shared.memory_mut();
            for w in entries {
                m.white.insert(w.ip, w.expire);
            }
        }
        Err(e) => warn!("refreshing whitelist entries: {e}"),
    }
}

/// Delete expired records every `expire_interval`.
async fn sweep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.expire_interval);
    loop {
        tick.tick().await;
        refresh_seen(&shared).await;
        let expired = match shared.with_db(|tx| tx.expire(now())).await {
            Ok(e) => e,
            Err(e) => {
                warn!("expiry sweep: {e}");
                continue;
            }
        };
        {
            let mut m = shared.memory_mut();
            for ip in &expired.white {
                m.white.remove(ip);
            }
            for ip in &expired.trapped {
                m.trapped.remove(ip);
            }
        }
        for ip in &expired.white {
            info!("{ip}: whitelist entry expired");
            if let Err(e) = shared.firewall.white_removed(*ip) {
                warn!("{ip}: firewall: {e}");
            }
        }
        if expired.grey + expired.white.len() + expired.trapped.len() > 0 {
            info!(
                "expired {} grey, {} white, {} trapped entries",
                expired.grey,
                expired.white.len(),
                expired.trapped.len()
            );
        }
    }
}
