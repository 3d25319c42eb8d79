//! Accounts: who a user is on this machine (a system account from the
//! passwd database, or a virtual user `user@domain`) and where that user's
//! mail lives. Delivery, the store and the login servers all ask here.

use crate::config::{Config, MailboxFormat};
use std::path::PathBuf;

/// A system account: whom delivery runs as and whom the store hands its
/// files to (used only when running as root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// The passwd entry of a local account, if any.
pub fn lookup(name: &str) -> Option<Owner> {
    let user = nix::unistd::User::from_name(name).ok()??;
    Some(Owner {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
    })
}

/// A user's mail, as delivery writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub format: MailboxFormat,
    /// The Maildir root, or the mbox file.
    pub path: PathBuf,
    /// The system account that owns the files (`None` for virtual users).
    pub owner: Option<Owner>,
}

/// Find the mailbox of an authenticated user: `user@domain` is a virtual
/// user, a plain name a system account (the same rule as `verify_password`).
pub fn locate(config: &Config, user: &str) -> Option<Location> {
    match user.rsplit_once('@') {
        Some((local, domain)) => {
            let (format, path) = config.delivery.virtual_mailbox(local, domain);
            Some(Location {
                format,
                path,
                owner: None,
            })
        }
        None => {
            let account = lookup(user)?;
            let (format, path) = config.delivery.system_mailbox(&account.name, &account.home);
            Some(Location {
                format,
                path,
                owner: Some(account),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_users_live_under_virtual_dir() {
        let mut c = Config::default();
        c.delivery.virtual_dir = "/v".into();
        let l = locate(&c, "Alice@Example.ORG").unwrap();
        assert_eq!(l.path, PathBuf::from("/v/example.org/alice"));
        assert_eq!(l.format, MailboxFormat::Maildir);
        c.delivery.format = MailboxFormat::Mbox;
        assert_eq!(locate(&c, "bob@x").unwrap().path, PathBuf::from("/v/x/bob.mbox"));
        assert!(locate(&c, "no-such-account-here").is_none());
    }
}
