//! What the daemon shares between connections: configuration, the database
//! handle, and in-memory copies of the sets consulted at every accept
//! (whitelist, trapped sources, lists), kept equal to the database because
//! every change goes through this process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};

use ipnet::IpNet;

use tracing::{info, warn};

use crate::config::Config;
use crate::control::Effects;
use crate::db::{Db, DbError, Job, ListKind, Tx};
use crate::firewall::{Firewall, FirewallState};
use crate::grey::AllowedDomains;
use crate::lists::Lists;
use crate::sync::{Sync, SyncMessage};
use greyd_shared::datetime::now;

use super::dns::Dns;
use super::limits::Limits;
use super::stutter::Stutterer;

/// Sets consulted on every connection.
#[derive(Default)]
pub struct Memory {
    /// Whitelisted sources and their expiry times.
    pub white: HashMap<IpAddr, i64>,
    /// Trapped sources and their expiry times.
    pub trapped: HashMap<IpAddr, i64>,
    pub lists: Lists,
}

pub struct Shared {
    pub config: Config,
    db: Mutex<Db>,
    /// Updates waiting for the next group commit.
    pending: Mutex<Vec<Job>>,
    pub memory: RwLock<Memory>,
    pub allowed: AllowedDomains,
    pub firewall: Box<dyn Firewall>,
    /// Peer sync, when -Y or -y is given.
    pub sync: Option<Sync>,
    /// Open tarpit connections, in all and per source.
    pub limits: Arc<Limits>,
    /// Open blacklisted connections.
    pub black: AtomicUsize,
    /// SPF and DNSWL lookups.
    pub dns: Dns,
    /// The clock every stuttered reply is sent on.
    pub stutterer: Arc<Stutterer>,
    /// When this process started (seconds since the epoch).
    pub started: i64,
}

impl Shared {
    /// Load the database into memory and hand the firewall its initial state.
    pub fn new(
        config: Config,
        mut db: Db,
        allowed: AllowedDomains,
        firewall: Box<dyn Firewall>,
        sync: Option<Sync>,
    ) -> Result<Arc<Shared>, anyhow::Error> {
        let (whites, trappeds, lists) = db.transaction(|tx| Ok((tx.whites()?, tx.trappeds()?, tx.lists()?)))?;
        let memory = Memory {
            white: whites.into_iter().map(|w| (w.ip, w.expire)).collect(),
            trapped: trappeds.into_iter().map(|t| (t.ip, t.expire)).collect(),
            lists: Lists::new(lists),
        };
        let limits = Limits::new(config.maxcon, config.max_per_source);
        let config_stutter = config.stutter;
        let dns = Dns::new(&config.nameservers, &config.hostname, config.dnswl.clone());
        let shared = Arc::new(Shared {
            config,
            db: Mutex::new(db),
            pending: Mutex::new(Vec::new()),
            memory: RwLock::new(memory),
            allowed,
            firewall,
            sync,
            limits,
            black: AtomicUsize::new(0),
            dns,
            stutterer: Stutterer::start(config_stutter),
            started: now(),
        });
        shared.firewall.load(&shared.firewall_state())?;
        Ok(shared)
    }

    /// Run `f` in the database and answer once it is committed (fsynced).
    /// Updates queue up while a commit is on its way to disk; whichever
    /// blocking task gets the database next commits all that are waiting
    /// in one transaction, each in its own savepoint.
    pub async fn with_db<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, DbError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |tx: &Tx<'_>| {
            let result = tx.savepoint(f);
            Box::new(move |committed: Result<(), &DbError>| {
                let _ = answer.send(match committed {
                    Ok(()) => result,
                    Err(e) => Err(DbError::Commit(e.to_string())),
                });
            })
        });
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).push(job);
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut db = shared.db.lock().unwrap_or_else(|e| e.into_inner());
            let jobs = std::mem::take(&mut *shared.pending.lock().unwrap_or_else(|e| e.into_inner()));
            // Empty when an earlier task's group took this job along.
            if !jobs.is_empty() {
                db.commit_group(jobs);
            }
        });
        answered
            .await
            .unwrap_or_else(|_| Err(DbError::Commit("the transaction did not begin".into())))
    }

    /// Everything the firewall enforces, from memory.
    pub fn firewall_state(&self) -> FirewallState {
        let m = self.memory.read().unwrap_or_else(|e| e.into_inner());
        let mut allow: Vec<IpNet> = self.config.nospamd.clone();
        allow.extend(
            m.lists
                .iter()
                .filter(|l| l.stored.kind == ListKind::Allow)
                .flat_map(|l| l.stored.entries.iter().copied()),
        );
        FirewallState {
            white: m.white.keys().copied().collect(),
            allow,
            block: m.lists.hard_blocks(),
        }
    }

    pub fn memory(&self) -> std::sync::RwLockReadGuard<'_, Memory> {
        self.memory.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Bring memory and the firewall in line with a committed change; `origin`
    /// names its source in the log (None: the caller has logged it already).
    pub fn mirror(&self, fx: Effects, origin: Option<&str>) {
        let mut reload = false;
        {
            let mut m = self.memory_mut();
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
                reload |= list.hard_block || list.kind == ListKind::Allow;
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
            if let Some(origin) = origin {
                info!("{ip}: whitelisted by {origin}");
            }
            if let Err(e) = self.firewall.white_added(ip) {
                warn!("{ip}: firewall: {e}");
            }
        }
        for &ip in &fx.white_removed {
            if let Some(origin) = origin {
                info!("{ip}: removed from the whitelist by {origin}");
            }
            if let Err(e) = self.firewall.white_removed(ip) {
                warn!("{ip}: firewall: {e}");
            }
        }
        if let Some(origin) = origin {
            for (ip, _) in &fx.trapped_added {
                info!("{ip}: trapped by {origin}");
            }
        }
        if reload && let Err(e) = self.firewall.load(&self.firewall_state()) {
            warn!("firewall: {e}");
        }
    }

    /// Tell sync peers about a local change.
    pub fn announce(&self, fx: &Effects) {
        let Some(sync) = &self.sync else { return };
        let ts = now() as u32;
        let mut msgs: Vec<SyncMessage> = Vec::new();
        msgs.extend(fx.white_added.iter().map(|&(ip, e)| SyncMessage::White {
            timestamp: ts,
            expire: e as u32,
            ip,
        }));
        msgs.extend(fx.trapped_added.iter().map(|&(ip, e)| SyncMessage::Trapped {
            timestamp: ts,
            expire: e as u32,
            ip,
        }));
        msgs.extend(
            fx.white_removed
                .iter()
                .map(|&ip| SyncMessage::DelWhite { timestamp: ts, ip }),
        );
        msgs.extend(
            fx.trapped_removed
                .iter()
                .map(|&ip| SyncMessage::DelTrapped { timestamp: ts, ip }),
        );
        sync.send(&msgs);
    }

    pub fn memory_mut(&self) -> std::sync::RwLockWriteGuard<'_, Memory> {
        self.memory.write().unwrap_or_else(|e| e.into_inner())
    }
}
