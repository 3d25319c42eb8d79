//! Becoming the configured user once the firewall is loaded and the sockets
//! are bound: the database and the control socket are handed to that user,
//! then groups, gid and uid (real, effective, saved) are switched, which
//! clears every capability. The kernel filter keeps working through the
//! descriptors opened as root (eBPF map fds, the bound sockets). The
//! backends that run nft or pfctl for each change need root throughout
//! ([`firewall::needs_root`]), so with them greyd does not drop.

use std::path::{Path, PathBuf};

use nix::unistd::User;
use tracing::{info, warn};

use crate::config::{Config, FirewallKind, RunAs};
use crate::firewall;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("user {0} (the `user` setting) does not exist: create it, or set `user = \"\"` to stay root")]
    NoSuchUser(String),
    #[error("looking up user {0}: {1}")]
    Lookup(String, nix::Error),
    #[error("handing {} to {user}: {err}", .path.display())]
    Chown {
        path: PathBuf,
        user: String,
        err: nix::Error,
    },
    #[error("becoming {0}: {1}")]
    Switch(String, nix::Error),
}

/// Who to become, decided before anything is loaded so a wrong `user` is
/// refused before the firewall changes the kernel. None: stay as started
/// (not root, `user = ""`, or, with a warning, the firewall needs root or
/// the default user is missing).
pub fn target(run_as: &RunAs, firewall: FirewallKind) -> Result<Option<User>, PrivilegeError> {
    if !nix::unistd::geteuid().is_root() || run_as.name.is_empty() {
        return Ok(None);
    }
    if let Some(reason) = firewall::needs_root(firewall) {
        // Not refused even when configured: the installer names the user, and pf is OpenBSD's default.
        warn!("{reason}: running as root, not as {}", run_as.name);
        return Ok(None);
    }
    match User::from_name(&run_as.name).map_err(|e| PrivilegeError::Lookup(run_as.name.clone(), e))? {
        Some(user) => Ok(Some(user)),
        None if run_as.explicit => Err(PrivilegeError::NoSuchUser(run_as.name.clone())),
        None => {
            warn!(
                "user {} does not exist: running as root (create it to drop privileges)",
                run_as.name
            );
            Ok(None)
        }
    }
}

/// Hand the database (with its WAL files and directory) and the control socket to `user` and become it.
pub fn become_user(config: &Config, user: &User) -> Result<(), PrivilegeError> {
    let own = |path: &Path| {
        nix::unistd::chown(path, Some(user.uid), Some(user.gid)).map_err(|err| PrivilegeError::Chown {
            path: path.to_path_buf(),
            user: user.name.clone(),
            err,
        })
    };
    if let Some(dir) = config.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        own(dir)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = config.db.clone().into_os_string();
        path.push(suffix);
        let path = PathBuf::from(path);
        if path.exists() {
            own(&path)?;
        }
    }
    own(&config.control)?;
    let switch = |e| PrivilegeError::Switch(user.name.clone(), e);
    nix::unistd::setgroups(&[user.gid]).map_err(switch)?;
    nix::unistd::setgid(user.gid).map_err(switch)?;
    nix::unistd::setuid(user.uid).map_err(switch)?;
    info!("running as {}", user.name);
    Ok(())
}
