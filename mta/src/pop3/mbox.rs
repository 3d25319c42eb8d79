//! The POP3 maildrop over an mbox file, as popa3d serves it: the file is
//! locked (dotlock and fcntl, like delivery) for the whole session, messages
//! are found by their From_ lines and presented unquoted with CRLF line
//! ends, UIDLs are digests of the headers (stable across sessions), and
//! deletions rewrite the file through a new one that replaces it.

use super::machine::Entry;
use crate::deliver::mbox::{DotLock, fcntl_lock};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long to wait for a delivery in progress before answering [IN-USE].
const LOCK_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MboxError {
    #[error("{0} is locked by another session")]
    InUse(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Where one message lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    /// The From_ line.
    start: u64,
    /// The first header line.
    content: u64,
    /// End of the message, before the blank line that separates it from the next.
    end: u64,
    /// Start of the next message (or end of the scanned file).
    next: u64,
}

/// An open, locked mbox.
pub struct MboxDrop {
    path: PathBuf,
    /// `None` if the file does not exist: an empty maildrop.
    file: Option<File>,
    spans: Vec<Span>,
    /// Bytes of the file that were scanned when the session opened it.
    scanned: u64,
    _lock: DotLock,
}

/// Un-quote one mboxrd line: `>From ` and `>>From ` lose one `>`.
fn unquote(line: &[u8]) -> &[u8] {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    if quotes > 0 && line[quotes..].starts_with(b"From ") {
        &line[1..]
    } else {
        line
    }
}

/// The CRLF form of mbox content: un-quoted, every line ending in CRLF.
pub fn crlf_form(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(unquote(line));
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Find the messages in an mbox: a From_ line at the start of the file or
/// after a blank line begins one. Returns the spans and the list entries.
fn scan(reader: impl Read) -> std::io::Result<(Vec<Span>, Vec<Entry>, u64)> {
    let mut reader = BufReader::new(reader);
    let mut spans: Vec<Span> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut seen = std::collections::HashMap::<[u8; 32], u32>::new();
    let mut pos = 0u64;
    let mut line = Vec::new();
    let mut blank_at: Option<u64> = Some(0);
    let mut header: Option<Sha256> = None;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)? as u64;
        let from_line = line.starts_with(b"From ") && blank_at.is_some();
        if (n == 0 || from_line)
            && let (Some(span), Some(entry)) = (spans.last_mut(), entries.last_mut())
        {
            // The blank line before the next From_ separates; it is not part of the message.
            match blank_at.filter(|&b| b >= span.content) {
                Some(b) => {
                    span.end = b;
                    entry.size -= 2;
                }
                None => span.end = pos,
            }
            span.next = pos;
            if let Some(h) = header.take() {
                entry.uidl = uidl(h, &mut seen);
            }
        }
        if n == 0 {
            return Ok((spans, entries, pos));
        }
        if from_line {
            spans.push(Span {
                start: pos,
                content: pos + n,
                end: pos + n,
                next: pos + n,
            });
            entries.push(Entry {
                size: 0,
                uidl: String::new(),
            });
            let mut h = Sha256::new();
            h.update(&line);
            header = Some(h);
        } else if let Some(entry) = entries.last_mut() {
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if let Some(h) = &mut header {
                if text.is_empty() {
                    entry.uidl = uidl(header.take().expect("header hash"), &mut seen);
                } else {
                    h.update(text);
                    h.update(b"\n");
                }
            }
            entry.size += unquote(text).len() as u64 + 2;
        }
        let is_blank = line == b"\n" || line == b"\r\n";
        blank_at = is_blank.then_some(pos);
        pos += n;
    }
}

/// The UIDL of a message from its From_ line and header digest; a repeated
/// digest (identical headers) is told apart by how many came before it.
fn uidl(h: Sha256, seen: &mut std::collections::HashMap<[u8; 32], u32>) -> String {
    let digest: [u8; 32] = h.finalize().into();
    let count = seen.entry(digest).or_insert(0);
    let mut d = Sha256::new();
    d.update(digest);
    d.update(count.to_be_bytes());
    *count += 1;
    d.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl MboxDrop {
    /// Lock and scan the mbox at `path` (a missing file is an empty maildrop).
    pub fn open(path: &Path) -> Result<(MboxDrop, Vec<Entry>), MboxError> {
        let io = |e| MboxError::Io(path.into(), e);
        let lock = DotLock::acquire(path, LOCK_WAIT).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => MboxError::InUse(path.into()),
            _ => io(e),
        })?;
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let drop = MboxDrop {
                    path: path.into(),
                    file: None,
                    spans: Vec::new(),
                    scanned: 0,
                    _lock: lock,
                };
                return Ok((drop, Vec::new()));
            }
            Err(e) => return Err(io(e)),
        };
        fcntl_lock(&file, false).map_err(|e| match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => MboxError::InUse(path.into()),
            _ => io(e),
        })?;
        let (spans, entries, scanned) = scan(&file).map_err(io)?;
        let drop = MboxDrop {
            path: path.into(),
            file: Some(file),
            spans,
            scanned,
            _lock: lock,
        };
        Ok((drop, entries))
    }

    /// Message `index` in CRLF form.
    pub fn read(&self, index: usize) -> Result<Vec<u8>, MboxError> {
        let (Some(file), Some(span)) = (&self.file, self.spans.get(index)) else {
            return Err(MboxError::Io(self.path.clone(), std::io::ErrorKind::NotFound.into()));
        };
        let mut raw = vec![0u8; (span.end - span.content) as usize];
        file.read_exact_at(&mut raw, span.content)
            .map_err(|e| MboxError::Io(self.path.clone(), e))?;
        Ok(crlf_form(&raw))
    }

    /// Rewrite the mbox without the messages in `deleted`: a new file beside
    /// it (same mode and owner), fsync, rename over the old one, fsync the
    /// directory. The lock stays held until the drop is dropped.
    pub fn remove(&self, deleted: &[usize]) -> Result<(), MboxError> {
        let Some(file) = &self.file else { return Ok(()) };
        if deleted.is_empty() {
            return Ok(());
        }
        let io = |e| MboxError::Io(self.path.clone(), e);
        let meta = file.metadata().map_err(io)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.pop3-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut out = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(io)?;
        let result = (|| {
            out.set_permissions(meta.permissions())?;
            if meta.uid() != nix::unistd::geteuid().as_raw() || meta.gid() != nix::unistd::getegid().as_raw() {
                std::os::unix::fs::fchown(&out, Some(meta.uid()), Some(meta.gid()))?;
            }
            let mut src = file;
            let mut copy = |from: u64, to: u64| -> std::io::Result<()> {
                src.seek(SeekFrom::Start(from))?;
                std::io::copy(&mut (&mut src).take(to - from), &mut out).map(|_| ())
            };
            copy(0, self.spans.first().map_or(self.scanned, |s| s.start))?;
            for (i, span) in self.spans.iter().enumerate() {
                if !deleted.contains(&i) {
                    copy(span.start, span.next)?;
                }
            }
            // Mail appended by a writer that ignored the lock is kept.
            copy(self.scanned, meta.len().max(self.scanned))?;
            out.flush()?;
            out.sync_all()?;
            fcntl_lock(&out, false)?;
            std::fs::rename(&tmp, &self.path)?;
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Message;
    use proptest::prelude::*;

    fn deliver(path: &Path, sender: &str, content: &[u8]) {
        let msg = Message {
            sender: Some(sender),
            recipient: "u@x",
            content,
            arrived: 0,
        };
        crate::deliver::mbox::deliver(path, &msg).unwrap();
    }

    #[test]
    fn messages_unquoted_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u");
        deliver(&path, "a@x", b"Subject: one\r\n\r\nFrom me\r\n>From you\r\n");
        deliver(&path, "b@x", b"Subject: two\r\n\r\nbody\r\n\r\n");
        deliver(&path, "c@x", b"Subject: three\r\n\r\nx\r\n");
        let (drop, entries) = MboxDrop::open(&path).unwrap();
        assert_eq!(entries.len(), 3);
        let one = drop.read(0).unwrap();
        assert_eq!(
            one,
            b"Return-Path: <a@x>\r\nSubject: one\r\n\r\nFrom me\r\n>From you\r\n"
        );
        assert_eq!(entries[0].size, one.len() as u64);
        assert_eq!(
            drop.read(1).unwrap(),
            b"Return-Path: <b@x>\r\nSubject: two\r\n\r\nbody\r\n\r\n"
        );
        assert_eq!(entries[1].size, drop.read(1).unwrap().len() as u64);
        assert!(matches!(MboxDrop::open(&path), Err(MboxError::InUse(_))));
        drop.remove(&[1]).unwrap();
        std::mem::drop(drop);
        let (again, after) = MboxDrop::open(&path).unwrap();
        assert_eq!(after, vec![entries[0].clone(), entries[2].clone()]);
        assert_eq!(
            again.read(1).unwrap(),
            b"Return-Path: <c@x>\r\nSubject: three\r\n\r\nx\r\n"
        );
        std::mem::drop(again);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("From a@x ") && text.contains("\n\nFrom c@x ") && !text.contains("two"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary or lock file left"
        );
    }

    #[test]
    fn missing_file_is_empty_and_identical_headers_differ() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u");
        assert!(MboxDrop::open(&path).unwrap().1.is_empty());
        deliver(&path, "a@x", b"Subject: same\r\n\r\n1\r\n");
        deliver(&path, "a@x", b"Subject: same\r\n\r\n2\r\n");
        let (_drop, entries) = MboxDrop::open(&path).unwrap();
        assert_ne!(entries[0].uidl, entries[1].uidl);
        assert!(entries.iter().all(|e| e.uidl.len() == 32));
    }

    proptest! {
        /// Whatever lines the messages hold, the mbox gives each back in CRLF form with its size.
        #[test]
        fn delivered_messages_come_back(bodies in proptest::collection::vec(
            proptest::collection::vec("(>{0,2}From [a-z]{0,3}|[a-z .>]{0,8}|)", 0..8), 1..5)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("u");
            let mut expected = Vec::new();
            for lines in &bodies {
                let mut content = b"Subject: s\r\n\r\n".to_vec();
                for l in lines {
                    content.extend_from_slice(l.as_bytes());
                    content.extend_from_slice(b"\r\n");
                }
                deliver(&path, "a@x", &content);
                expected.push([b"Return-Path: <a@x>\r\n".as_slice(), &content].concat());
            }
            let (drop, entries) = MboxDrop::open(&path).unwrap();
            prop_assert_eq!(entries.len(), expected.len());
            for (i, want) in expected.iter().enumerate() {
                let got = drop.read(i).unwrap();
                prop_assert_eq!(&got, want);
                prop_assert_eq!(entries[i].size, got.len() as u64);
            }
        }
    }
}
