//! mbox delivery: dotlock (`FILE.lock`) plus an fcntl write lock, a From_
//! line, mboxrd `>From` quoting, a blank line after each message, fsync; on
//! failure the file is truncated back so no partial message remains. A
//! missing parent directory (a new virtual domain's) is created, as
//! Postfix's virtual(8) does.

use super::{DeliveryError, Message};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A dotlock older than this is considered left by a crash and broken.
const STALE_LOCK: Duration = Duration::from_secs(300);
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// `MBOX.lock`, removed on drop. Delivery and the POP3 server both take it.
pub struct DotLock(PathBuf);

impl DotLock {
    /// Create the lock file, waiting up to `wait` for another holder to
    /// finish; `ErrorKind::WouldBlock` if it is still locked then.
    pub fn acquire(mbox: &Path, wait: Duration) -> std::io::Result<DotLock> {
        let mut name = mbox.as_os_str().to_owned();
        name.push(".lock");
        let lock = PathBuf::from(name);
        let end = Instant::now() + wait;
        loop {
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&lock) {
                Ok(_) => return Ok(DotLock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        let _ = std::fs::remove_file(&lock);
                    } else if Instant::now() > end {
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    } else {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An fcntl write lock on the whole file, released on close: F_SETLKW if
/// `wait`, else F_SETLK (an error if another process holds a lock).
pub fn fcntl_lock(file: &File, wait: bool) -> std::io::Result<()> {
    // SAFETY: a zeroed flock is valid; the fields we need are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    // SAFETY: fcntl on a file descriptor we own, with a valid flock pointer.
    if unsafe { libc::fcntl(file.as_raw_fd(), if wait { libc::F_SETLKW } else { libc::F_SETLK }, &fl) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The message as it is appended: From_ line, quoted body, trailing blank line.
pub fn format(msg: &Message<'_>) -> Vec<u8> {
    let sender = match msg.sender {
        Some(s) if !s.is_empty() => s,
        _ => "MAILER-DAEMON",
    };
    let mut out = format!("From {sender} {}\n", crate::datetime::asctime(msg.arrived)).into_bytes();
    let body = msg.local_form();
    for line in body.split_inclusive(|&b| b == b'\n') {
        let unquoted = line.iter().position(|&b| b != b'>').map(|i| &line[i..]);
        if unquoted.is_some_and(|l| l.starts_with(b"From ")) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

pub fn deliver(path: &Path, msg: &Message<'_>) -> Result<(), DeliveryError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| DeliveryError::io(&format!("creating {}", parent.display()), e))?;
    }
    let _dotlock = DotLock::acquire(path, LOCK_WAIT).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => DeliveryError::temp(format!("{} is locked", path.display())),
        _ => DeliveryError::io(&format!("locking {}", path.display()), e),
    })?;
    let err = |e| DeliveryError::io(&format!("appending to {}", path.display()), e);
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    fcntl_lock(&file, true).map_err(err)?;
    let start = file.metadata().map_err(err)?.len();
    let data = format(msg);
    if let Err(e) = file.write_all(&data).and_then(|_| file.sync_data()) {
        let _ = file.set_len(start);
        return Err(err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_line_and_quoting() {
        let msg = Message {
            sender: Some("a@b.example"),
            recipient: "c@d",
            content: b"Subject: x\r\n\r\nFrom here\r\n>From there\r\nFromage\r\n",
            arrived: 0,
        };
        let dir = tempfile::tempdir().unwrap();
        // A new virtual domain's directory does not exist yet.
        let p = dir.path().join("example.org/mbox");
        deliver(&p, &msg).unwrap();
        deliver(
            &p,
            &Message {
                sender: None,
                ..msg.clone()
            },
        )
        .unwrap();
        let text = String::from_utf8(std::fs::read(&p).unwrap()).unwrap();
        let one = "Return-Path: <a@b.example>\nSubject: x\n\n>From here\n>>From there\nFromage\n\n";
        assert_eq!(
            text,
            format!(
                "From a@b.example Thu Jan  1 00:00:00 1970\n{one}From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n{}",
                one.replace("<a@b.example>", "<>")
            )
        );
        assert!(!dir.path().join("example.org/mbox.lock").exists());
    }
}
