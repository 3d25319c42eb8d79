//! A user's maildrop for one POP3 session: the INBOX of their Maildir
//! (through the mail store) or their mbox file, whichever delivery writes.
//! Blocking: the session calls it from `spawn_blocking`.

use super::machine::Entry;
use super::mbox::{MboxDrop, MboxError};
use crate::account::Location;
use crate::config::MailboxFormat;
use crate::store::{FlagOp, Flags, Mailbox, Store, StoreError};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MaildropError {
    #[error("maildrop is locked by another session")]
    InUse,
    #[error("{0}")]
    Temporary(String),
}

impl From<StoreError> for MaildropError {
    fn from(e: StoreError) -> Self {
        MaildropError::Temporary(e.to_string())
    }
}

impl From<MboxError> for MaildropError {
    fn from(e: MboxError) -> Self {
        match e {
            MboxError::InUse(_) => MaildropError::InUse,
            e => MaildropError::Temporary(e.to_string()),
        }
    }
}

pub enum Maildrop {
    /// The Maildir INBOX as it was at login: the UIDs in message-number order.
    Maildir {
        inbox: Arc<Mailbox>,
        uids: Vec<u32>,
    },
    Mbox(MboxDrop),
}

/// UIDL on Maildir: UIDVALIDITY and UID, so it never changes for a message.
fn maildir_uidl(uid_validity: u32, uid: u32) -> String {
    format!("{uid_validity:08x}{uid:08x}")
}

fn flag(set: impl FnOnce(&mut Flags)) -> Flags {
    let mut flags = Flags::default();
    set(&mut flags);
    flags
}

impl Maildrop {
    pub fn open(location: &Location) -> Result<(Maildrop, Vec<Entry>), MaildropError> {
        match location.format {
            MailboxFormat::Mbox => {
                let (drop, entries) = MboxDrop::open(&location.path)?;
                Ok((Maildrop::Mbox(drop), entries))
            }
            MailboxFormat::Maildir => {
                let inbox = Store::open(&location.path, location.owner.as_ref())?.mailbox("INBOX")?;
                let snapshot = inbox.sync()?;
                let entries = snapshot
                    .messages
                    .iter()
                    .map(|m| Entry {
                        size: m.size,
                        uidl: maildir_uidl(snapshot.uid_validity, m.uid),
                    })
                    .collect();
                let uids = snapshot.messages.iter().map(|m| m.uid).collect();
                Ok((Maildrop::Maildir { inbox, uids }, entries))
            }
        }
    }

    /// Message `index` in wire form (see `store::wire`); `retrieved`: RETR (not TOP), so it is now seen.
    pub fn read(&self, index: usize, retrieved: bool) -> Result<Vec<u8>, MaildropError> {
        match self {
            Maildrop::Maildir { inbox, uids } => {
                let uid = uids[index];
                let message = inbox.read(uid)?;
                if retrieved {
                    inbox.store_flags(&[uid], FlagOp::Add, &flag(|f| f.seen = true), None)?;
                }
                Ok(message)
            }
            Maildrop::Mbox(m) => Ok(m.read(index)?),
        }
    }

    /// UPDATE: remove the messages the client deleted.
    pub fn remove(&self, deleted: &[usize]) -> Result<(), MaildropError> {
        match self {
            Maildrop::Maildir { inbox, uids } => {
                let doomed: Vec<u32> = deleted.iter().map(|&i| uids[i]).collect();
                inbox.store_flags(&doomed, FlagOp::Add, &flag(|f| f.deleted = true), None)?;
                inbox.expunge(Some(&doomed))?;
                Ok(())
            }
            Maildrop::Mbox(m) => Ok(m.remove(deleted)?),
        }
    }
}
