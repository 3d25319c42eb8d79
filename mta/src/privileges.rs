//! Becoming the unprivileged `user` after binding. Everything the daemon
//! reads or writes after the drop (the queue, the virtual mailboxes, the
//! users file, the TLS pair, the classic files) is checked against that
//! user first, so a wrong owner or mode is one clear refusal at start instead
//! of unknown users, a certificate that SIGHUP cannot reload, or a log line
//! every second.

use crate::config::Config;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PrivilegeError {
    #[error("user {0} (the `user` setting) does not exist")]
    NoSuchUser(String),
    #[error("as {user}, mta could not use: {}", .problems.join("; "))]
    Unusable { user: String, problems: Vec<String> },
    #[error("becoming {0}: {1}")]
    Switch(String, nix::Error),
}

/// Who the daemon becomes: the numbers permission checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    pub fn lookup(name: &str) -> Result<Identity, PrivilegeError> {
        match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok(Identity {
                name: name.to_string(),
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            }),
            _ => Err(PrivilegeError::NoSuchUser(name.to_string())),
        }
    }
}

/// Read, write, search: the bits of a mode triple.
const READ: u32 = 4;
const WRITE_SEARCH: u32 = 2 | 1;

/// Whether the owner/group/other bits of `mode` grant `want` to `who`
/// (supplementary groups are dropped with the switch, so only `who.gid` counts).
fn grants(owner: u32, group: u32, mode: u32, who: &Identity, want: u32) -> bool {
    let bits = if who.uid == owner {
        mode >> 6
    } else if who.gid == group {
        mode >> 3
    } else {
        mode
    } & 7;
    bits & want == want
}

/// What `who` needs of `path`; a missing optional file needs nothing.
fn check(path: &Path, who: &Identity, want: u32, optional: bool, problems: &mut Vec<String>) {
    match std::fs::metadata(path) {
        Ok(m) if grants(m.uid(), m.gid(), m.mode(), who, want) => {}
        Ok(m) => problems.push(format!(
            "{} (owner {}, mode {:o}: chown it to {}, or chmod it)",
            path.display(),
            m.uid(),
            m.mode() & 0o7777,
            who.name
        )),
        Err(_) if optional => {}
        Err(e) => problems.push(format!("{}: {e}", path.display())),
    }
}

/// Everything `who` must reach after the drop, or every problem found.
pub fn check_usable(config: &Config, who: &Identity) -> Result<(), PrivilegeError> {
    let mut problems = Vec::new();
    let dirs: [&PathBuf; 2] = [&config.queue.dir, &config.delivery.virtual_dir];
    for dir in dirs {
        check(dir, who, READ | WRITE_SEARCH, false, &mut problems);
    }
    let files = &config.files;
    let read: [(&PathBuf, bool); 7] = [
        (&config.auth.users_file, true),
        (&config.tls.cert, true),
        (&config.tls.key, true),
        (&files.aliases, true),
        (&files.virtusertable, true),
        (&files.local_host_names, true),
        (&files.relay_domains, true),
    ];
    for (file, optional) in read {
        check(file, who, READ, optional, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError::Unusable {
            user: who.name.clone(),
            problems,
        })
    }
}

/// Become `who` for good (groups, gid, uid).
pub fn become_user(who: &Identity) -> Result<(), PrivilegeError> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    let fail = |e| PrivilegeError::Switch(who.name.clone(), e);
    setgroups(&[Gid::from_raw(who.gid)]).map_err(fail)?;
    setgid(Gid::from_raw(who.gid)).map_err(fail)?;
    setuid(Uid::from_raw(who.uid)).map_err(fail)
}

/// Give `path` and everything under it to `who` (for files `mtactl` makes as root).
pub fn give_tree(path: &Path, who: &Identity) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(who.uid), Some(who.gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give_tree(&entry?.path(), who)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Identity {
        Identity {
            name: "_mta".into(),
            uid: 500,
            gid: 600,
        }
    }

    #[test]
    fn owner_group_and_other_bits_are_read_as_the_kernel_does() {
        let w = who();
        assert!(grants(500, 0, 0o600, &w, READ));
        assert!(!grants(0, 0, 0o600, &w, READ), "root's 0600 file");
        assert!(grants(0, 600, 0o640, &w, READ), "group-readable");
        assert!(
            !grants(500, 600, 0o060, &w, READ),
            "the owner bits win, as in the kernel"
        );
        assert!(grants(0, 0, 0o644, &w, READ));
        assert!(grants(500, 0, 0o700, &w, READ | WRITE_SEARCH));
        assert!(!grants(0, 0, 0o755, &w, READ | WRITE_SEARCH), "a root-owned queue");
    }

    #[test]
    fn every_problem_is_named_with_its_fix() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.queue.dir = dir.path().join("queue");
        config.delivery.virtual_dir = dir.path().to_path_buf();
        config.auth.users_file = dir.path().join("users");
        std::fs::write(&config.auth.users_file, "").unwrap();
        let mut me = who();
        me.uid = nix::unistd::geteuid().as_raw();
        me.gid = nix::unistd::getegid().as_raw();
        let err = check_usable(&config, &me).unwrap_err().to_string();
        assert!(err.contains("queue"), "a missing queue is named: {err}");
        std::fs::create_dir(&config.queue.dir).unwrap();
        check_usable(&config, &me).expect("all ours now");
        let stranger = Identity {
            name: "stranger".into(),
            uid: 4242,
            gid: 4242,
        };
        let err = check_usable(&config, &stranger).unwrap_err().to_string();
        assert!(err.contains("chown it to stranger"), "{err}");
    }
}
