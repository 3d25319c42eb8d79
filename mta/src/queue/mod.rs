//! The durable queue: one envelope file (`ID.env`, JSON) and one content
//! file (`ID.msg`, the message as received, CRLF lines, Received: first)
//! per message in the spool directory. A message exists once its envelope
//! has been renamed into place; both files (fdatasync) and the directory are fsynced
//! before `store` returns, so a 250 is only sent for mail that survives a
//! crash. A message put on hold (`mtactl queue hold`) has its envelope
//! renamed to `ID.hold`, so the runner no longer sees it.

use crate::envelope::{MailParams, RcptParams};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod control;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptStatus {
    /// Local delivery still to do (or to retry).
    Pending,
    /// For a remote host: not attempted yet.
    Relay,
    /// For a remote host: the last attempt failed temporarily with this
    /// error; retried with the message (`Envelope::next_attempt`).
    RelayDeferred(String),
    Delivered,
    /// Permanently failed, with the reason; a bounce has been queued.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub params: RcptParams,
    pub status: RcptStatus,
    /// Final destinations (mailbox paths, programs) already delivered, so a
    /// retry after a partial failure does not deliver twice.
    pub done: Vec<String>,
    /// Reached by forwarding (aliases, .forward, virtusertable) a local
    /// recipient elsewhere: sent with the SRS form of the sender.
    #[serde(default)]
    pub forwarded: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub addr: Option<IpAddr>,
    pub helo: Option<String>,
    /// Authenticated identity, if any.
    pub auth: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Reverse path; `None` is `<>` (bounces).
    pub sender: Option<String>,
    pub params: MailParams,
    pub recipients: Vec<Recipient>,
    pub client: Client,
    /// Arrival, seconds since the epoch.
    pub arrived: u64,
    pub attempts: u32,
    pub next_attempt: u64,
    pub last_error: Option<String>,
    /// The sender has been told that the message is delayed (once per message).
    #[serde(default)]
    pub delay_warned: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("envelope {0}: {1}")]
    Envelope(PathBuf, serde_json::Error),
}

impl QueueError {
    /// The message is no longer in the queue (delivered, deleted or held meanwhile).
    pub fn is_gone(&self) -> bool {
        matches!(self, QueueError::Io(_, e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Time, process and sequence make ids unique across the daemon and
/// `sendmail` processes writing the same spool; `create_new` guards the rest.
fn new_id() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:09X}{:05X}{:05X}{:04X}",
        t.as_secs(),
        t.subsec_micros(),
        std::process::id() & 0xFFFFF,
        seq & 0xFFFF
    )
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T, QueueError> {
    r.map_err(|e| QueueError::Io(path.to_path_buf(), e))
}

impl Queue {
    pub fn open(dir: &Path) -> Result<Queue, QueueError> {
        // Mail is private: the spool and its files are for the mta user only.
        io(dir, std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir))?;
        Ok(Queue { dir: dir.to_path_buf() })
    }

    pub fn content_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }

    fn envelope_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.env"))
    }

    fn held_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.hold"))
    }

    /// The file asking the runner for immediate attempts (`retry_requests`).
    fn retry_path(&self) -> PathBuf {
        self.dir.join("retry")
    }

    /// Write a new message durably: `header(id)` (the Received: line, which
    /// names the queue id) then `body`. Returns the queue id.
    pub fn store(
        &self,
        envelope: &Envelope,
        header: impl FnOnce(&str) -> String,
        body: &[u8],
    ) -> Result<String, QueueError> {
        let (id, msg) = loop {
            let id = new_id();
            let path = self.content_path(&id);
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(f) => break (id, (path, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(QueueError::Io(path, e)),
            }
        };
        let (msg_path, file) = msg;
        let mut w = std::io::BufWriter::new(file);
        let written = w
            .write_all(header(&id).as_bytes())
            .and_then(|_| w.write_all(body))
            .and_then(|_| w.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_data());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&msg_path);
            return Err(QueueError::Io(msg_path, e));
        }
        if let Err(e) = self.write_envelope(&id, envelope) {
            let _ = std::fs::remove_file(&msg_path);
            return Err(e);
        }
        Ok(id)
    }

    /// Replace the envelope atomically (tmp, fsync, rename, fsync directory).
    pub fn write_envelope(&self, id: &str, envelope: &Envelope) -> Result<(), QueueError> {
        let tmp = self.dir.join(format!("{id}.env.tmp"));
        let json = serde_json::to_vec_pretty(envelope).map_err(|e| QueueError::Envelope(tmp.clone(), e))?;
        let mut f = io(
            &tmp,
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp),
        )?;
        io(&tmp, f.write_all(&json).and_then(|_| f.sync_data()))?;
        let path = self.envelope_path(id);
        io(&path, std::fs::rename(&tmp, &path))?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), QueueError> {
        io(&self.dir, File::open(&self.dir).and_then(|d| d.sync_all()))
    }

    pub fn load(&self, id: &str) -> Result<Envelope, QueueError> {
        let path = self.envelope_path(id);
        let bytes = io(&path, std::fs::read(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| QueueError::Envelope(path, e))
    }

    pub fn read_content(&self, id: &str) -> Result<Vec<u8>, QueueError> {
        let path = self.content_path(id);
        io(&path, std::fs::read(&path))
    }

    /// Remove a finished message: envelope first, so a crash leaves at most
    /// an orphan content file (removed by `clean_orphans`), never a message
    /// without content. The directory is not fsynced here: if a crash undoes
    /// the removal the message is delivered again (at least once, never lost),
    /// which costs less than an fsync per message.
    pub fn remove(&self, id: &str) -> Result<(), QueueError> {
        let env = self.envelope_path(id);
        io(&env, std::fs::remove_file(&env))?;
        let msg = self.content_path(id);
        io(&msg, std::fs::remove_file(&msg))
    }

    /// Ids of all queued messages, oldest first (ids sort by time).
    pub fn list(&self) -> Result<Vec<String>, QueueError> {
        let mut ids: Vec<String> = io(&self.dir, std::fs::read_dir(&self.dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".env").map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Ids of the messages on hold, oldest first.
    pub fn list_held(&self) -> Result<Vec<String>, QueueError> {
        let mut ids: Vec<String> = io(&self.dir, std::fs::read_dir(&self.dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".hold").map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Whether `id` is on hold.
    pub fn is_held(&self, id: &str) -> bool {
        self.held_path(id).exists()
    }

    /// The envelope of a queued or held message.
    pub fn load_any(&self, id: &str) -> Result<Envelope, QueueError> {
        if self.is_held(id) {
            let path = self.held_path(id);
            let bytes = io(&path, std::fs::read(&path))?;
            return serde_json::from_slice(&bytes).map_err(|e| QueueError::Envelope(path, e));
        }
        self.load(id)
    }

    /// Put a message on hold: the runner no longer sees it (Postfix's hold queue).
    pub fn hold(&self, id: &str) -> Result<(), QueueError> {
        let path = self.held_path(id);
        io(&path, std::fs::rename(self.envelope_path(id), &path))?;
        self.sync_dir()
    }

    /// Give a held message back to the runner.
    pub fn release(&self, id: &str) -> Result<(), QueueError> {
        let path = self.envelope_path(id);
        io(&path, std::fs::rename(self.held_path(id), &path))?;
        self.sync_dir()
    }

    /// Remove a queued or held message for good.
    pub fn delete(&self, id: &str) -> Result<(), QueueError> {
        if self.is_held(id) {
            let held = self.held_path(id);
            io(&held, std::fs::remove_file(&held))?;
            let msg = self.content_path(id);
            return io(&msg, std::fs::remove_file(&msg));
        }
        self.remove(id)
    }

    /// Ask the runner to attempt `ids` now (`None`: every message).
    pub fn request_retry(&self, ids: Option<&[String]>) -> Result<(), QueueError> {
        let path = self.retry_path();
        let text = match ids {
            Some(ids) => ids.iter().map(|id| format!("{id}\n")).collect(),
            None => "all\n".to_string(),
        };
        let mut f = io(
            &path,
            OpenOptions::new().create(true).append(true).mode(0o600).open(&path),
        )?;
        io(&path, f.write_all(text.as_bytes()))
    }

    /// Take the pending retry requests: `Some(None)` asks for every message,
    /// `Some(Some(ids))` for those; `None` when nothing was asked.
    pub fn take_retry_requests(&self) -> Option<Option<Vec<String>>> {
        let path = self.retry_path();
        let taken = self.dir.join("retry.taken");
        std::fs::rename(&path, &taken).ok()?;
        let text = std::fs::read_to_string(&taken).unwrap_or_default();
        let _ = std::fs::remove_file(&taken);
        let ids: Vec<String> = text.lines().map(str::to_string).collect();
        Some((!ids.iter().any(|l| l == "all")).then_some(ids))
    }

    /// Delete content files without an envelope and stale envelope temporaries
    /// left by a crash; only files older than `older_than`, since an SMTP
    /// session or a `sendmail` process may be writing a new one right now.
    pub fn clean_orphans(&self, older_than: std::time::Duration) -> Result<usize, QueueError> {
        let mut removed = 0;
        let cutoff = SystemTime::now() - older_than;
        for entry in io(&self.dir, std::fs::read_dir(&self.dir))?.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan = match name.strip_suffix(".msg") {
                Some(id) => !self.envelope_path(id).exists() && !self.held_path(id).exists(),
                None => name.ends_with(".env.tmp"),
            };
            let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
            if orphan && old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            sender: Some("a@b.example".into()),
            params: MailParams::default(),
            recipients: vec![Recipient {
                address: "c@d.example".into(),
                params: RcptParams::default(),
                status: RcptStatus::Pending,
                done: vec![],
                forwarded: false,
            }],
            client: Client::default(),
            arrived: now(),
            attempts: 0,
            next_attempt: 0,
            last_error: None,
            delay_warned: false,
        }
    }

    #[test]
    fn a_removed_message_is_gone_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let id = q.store(&envelope(), |_| String::new(), b"x\r\n").unwrap();
        q.remove(&id).unwrap();
        assert!(q.load(&id).unwrap_err().is_gone());
        let id = q.store(&envelope(), |_| String::new(), b"x\r\n").unwrap();
        std::fs::write(q.envelope_path(&id), b"{").unwrap();
        assert!(!q.load(&id).unwrap_err().is_gone());
    }

    #[test]
    fn crash_leftovers_older_than_the_cutoff_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let kept = q.store(&envelope(), |_| String::new(), b"x\r\n").unwrap();
        let held = q.store(&envelope(), |_| String::new(), b"x\r\n").unwrap();
        q.hold(&held).unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(660);
        for name in ["crashed.msg", "crashed.env.tmp", &format!("{kept}.env.tmp")] {
            let f = File::create(dir.path().join(name)).unwrap();
            f.set_modified(old).unwrap();
        }
        std::fs::write(dir.path().join("writing.msg"), b"fresh").unwrap();
        for file in [q.content_path(&kept), q.content_path(&held)] {
            File::options()
                .write(true)
                .open(file)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        assert_eq!(q.clean_orphans(std::time::Duration::from_secs(600)).unwrap(), 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            format!("{kept}.env"),
            format!("{kept}.msg"),
            format!("{held}.hold"),
            format!("{held}.msg"),
            "writing.msg".to_string(),
        ];
        expected.sort();
        assert_eq!(left, expected);
    }

    #[test]
    fn store_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let a = q
            .store(&envelope(), |id| format!("X-Id: {id}\r\n"), b"body\r\n")
            .unwrap();
        let b = q.store(&envelope(), |_| String::new(), b"two\r\n").unwrap();
        assert_ne!(a, b);
        assert_eq!(q.list().unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(q.load(&a).unwrap(), envelope_with_time(&q, &a));
        assert_eq!(q.read_content(&b).unwrap(), b"two\r\n");
        assert_eq!(
            q.read_content(&a).unwrap(),
            format!("X-Id: {a}\r\nbody\r\n").into_bytes()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&q.content_path(&a)), 0o600);
        assert_eq!(mode(&dir.path().join(format!("{a}.env"))), 0o600);
        q.remove(&a).unwrap();
        assert_eq!(q.list().unwrap(), vec![b]);
    }

    fn envelope_with_time(q: &Queue, id: &str) -> Envelope {
        let mut e = envelope();
        e.arrived = q.load(id).unwrap().arrived;
        e
    }
}
