//! What Sieve remembers per user between deliveries: the senders that got
//! a vacation reply (`sieve/.vacation/`) and, for `duplicate`, the ids
//! already seen (`sieve/.duplicate/`), inside the user's Maildir. One
//! small file per key (a hash), holding the Unix time it expires; written
//! durably (fsync, rename, fsync of the folder) and pruned when expired.

use std::io::Write;
use std::path::{Path, PathBuf};

/// One kind of memory in one Maildir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    dir: PathBuf,
}

impl Memory {
    /// `kind` is `vacation` or `duplicate`.
    pub fn new(maildir: &Path, kind: &str) -> Memory {
        Memory {
            dir: maildir.join(crate::sieve::scripts::DIR).join(format!(".{kind}")),
        }
    }

    /// Whether `key` was remembered and has not expired at `now`.
    pub fn remembers(&self, key: &str, now: u64) -> bool {
        self.expiry(&self.dir.join(key)).is_some_and(|until| until > now)
    }

    fn expiry(&self, file: &Path) -> Option<u64> {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Remember `key` until `until`, durably; expired keys are removed.
    /// The files belong to the Maildir's owner, as the rest of it does.
    pub fn remember(&self, key: &str, until: u64, now: u64) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!("{key}.{}.tmp", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(until.to_string().as_bytes())?;
        f.sync_all()?;
        drop(f);
        self.give_to_owner(&tmp);
        std::fs::rename(&tmp, self.dir.join(key))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.prune(now);
        Ok(())
    }

    /// When we run as root, the memory belongs to whoever owns the Maildir.
    fn give_to_owner(&self, file: &Path) {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let Some(maildir) = self.dir.parent().and_then(Path::parent) else {
            return;
        };
        if let Ok(meta) = std::fs::metadata(maildir) {
            for path in [file, self.dir.as_path(), self.dir.parent().unwrap_or(&self.dir)] {
                let _ = std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()));
            }
        }
    }

    fn prune(&self, now: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let stale_tmp = path.extension().is_some_and(|x| x == "tmp")
                && e.metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
            if stale_tmp || self.expiry(&path).is_some_and(|until| until <= now) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry_and_prunes() {
        let tmp = tempfile::tempdir().unwrap();
        let m = Memory::new(tmp.path(), "vacation");
        assert!(!m.remembers("a", 100));
        m.remember("a", 200, 100).unwrap();
        assert!(m.remembers("a", 199));
        assert!(!m.remembers("a", 200));
        assert!(!m.remembers("b", 100));
        // Remembering "b" after "a" expired removes "a"'s file.
        m.remember("b", 900, 300).unwrap();
        assert!(!tmp.path().join("sieve/.vacation/a").exists());
        assert!(m.remembers("b", 300));
        assert!(!Memory::new(tmp.path(), "duplicate").remembers("b", 300));
    }
}
