//! The mail store that IMAP and POP3 serve: where a user's mail lives
//! (`locate`), and Maildir with Maildir++ folders as the truth for messages
//! and flags, with a per-mailbox index beside it for UIDs and MODSEQs.

use crate::auth::shadow;
use crate::config::{Config, MailboxFormat};
use crate::deliver::Owner;
use std::path::PathBuf;

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
            let account = shadow::lookup(user)?;
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
