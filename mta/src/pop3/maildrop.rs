//! A user's maildrop for one POP3 session: the INBOX of their Maildir
//! (through the mail store) or their mbox file, whichever delivery writes.
//! Blocking: the session calls it from `spawn_blocking`.

use super::machine::Entry;
use super::mbox::{MboxDrop, MboxError};
use crate::config::MailboxFormat;
use crate::store::Location;

#[derive(Debug, thiserror::Error)]
pub enum MaildropError {
    #[error("maildrop is locked by another session")]
    InUse,
    #[error("{0}")]
    Temporary(String),
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
    Mbox(MboxDrop),
}

impl Maildrop {
    pub fn open(location: &Location) -> Result<(Maildrop, Vec<Entry>), MaildropError> {
        match location.format {
            MailboxFormat::Mbox => {
                let (drop, entries) = MboxDrop::open(&location.path)?;
                Ok((Maildrop::Mbox(drop), entries))
            }
            MailboxFormat::Maildir => Err(MaildropError::Temporary("Maildir is not served yet".into())),
        }
    }

    /// Message `index` in CRLF form; `retrieved`: RETR (not TOP), so it is now seen.
    pub fn read(&self, index: usize, _retrieved: bool) -> Result<Vec<u8>, MaildropError> {
        match self {
            Maildrop::Mbox(m) => Ok(m.read(index)?),
        }
    }

    /// UPDATE: remove the messages the client deleted.
    pub fn remove(&self, deleted: &[usize]) -> Result<(), MaildropError> {
        match self {
            Maildrop::Mbox(m) => Ok(m.remove(deleted)?),
        }
    }
}
