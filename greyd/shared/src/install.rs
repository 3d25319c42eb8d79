//! Writing a host's files the way an installer must: under a staging root
//! (DESTDIR) or `/`, creating what is absent, leaving what already matches,
//! and never replacing a file an administrator edited (it is kept and
//! reported). With `dry_run`, each action is printed and nothing is written.
//! Used by `cargo xtask install` and `mtactl init --system`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file or directory could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct InstallError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Who should own what is created: a system account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The account `name` in this host's user database, if it exists.
    pub fn lookup(name: &str) -> Option<Owner> {
        let c = std::ffi::CString::new(name).ok()?;
        // SAFETY: getpwnam returns NULL or a pointer to static storage, read at once;
        // the installers are single-threaded.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if pw.is_null() {
            return None;
        }
        // SAFETY: non-NULL, so it points to a valid passwd record.
        let pw = unsafe { &*pw };
        Some(Owner {
            name: name.to_string(),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
        })
    }
}

/// The owner a path should get: an account, or root (which needs no chown).
#[derive(Debug, Clone, Copy)]
pub enum Ownership<'a> {
    Root,
    /// The account, or `None` when it does not exist on this host (a staging
    /// root for a package, whose users the package creates on installation).
    Account(&'a str, Option<&'a Owner>),
}

/// Writes under `root`, printing one line per action.
pub struct Installer {
    root: PathBuf,
    dry_run: bool,
}

impl Installer {
    pub fn new(root: &Path, dry_run: bool) -> Installer {
        Installer {
            root: root.to_path_buf(),
            dry_run,
        }
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Where the host path `path` (absolute, e.g. `/etc/mta/mta.toml`) is written.
    pub fn staged(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn say(&self, what: &str, path: &Path, note: &str) {
        let what = match (self.dry_run, what) {
            (true, "created") => "would create",
            (true, "updated") => "would update",
            _ => what,
        };
        println!("{what:>12} {}{note}", self.staged(path).display());
    }

    fn error(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
        move |source| InstallError {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Give `path` to its owner: skipped (and said) when the account does not
    /// exist here, or when not running as root.
    fn chown(&self, staged: &Path, ownership: Ownership<'_>) -> Result<String, InstallError> {
        let Ownership::Account(name, owner) = ownership else {
            return Ok(String::new());
        };
        let Some(owner) = owner else {
            return Ok(format!(" (owner {name} not set: no such user here)"));
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(format!(" (owner {name} not set: not root)"));
        }
        std::os::unix::fs::lchown(staged, Some(owner.uid), Some(owner.gid)).map_err(Self::error(staged))?;
        Ok(format!(" (owner {name})"))
    }

    /// A directory with `mode`; an existing one is left as it is (its mode is
    /// reported when it differs: the admin may have chosen it).
    pub fn dir(&self, path: &Path, mode: u32, ownership: Ownership<'_>) -> Result<(), InstallError> {
        let staged = self.staged(path);
        if let Ok(meta) = std::fs::metadata(&staged) {
            let actual = meta.permissions().mode() & 0o7777;
            let note = if actual == mode {
                String::new()
            } else {
                format!(" (mode {actual:04o} kept; install would make {mode:04o})")
            };
            self.say("unchanged", path, &note);
            return Ok(());
        }
        if self.dry_run {
            self.say("created", path, &format!(" (mode {mode:04o})"));
            return Ok(());
        }
        // Parents get the usual 0755; only the directory itself gets `mode`.
        self.parent(&staged)?;
        std::fs::DirBuilder::new()
            .mode(mode)
            .create(&staged)
            .map_err(Self::error(&staged))?;
        // The umask may have narrowed the mode.
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode)).map_err(Self::error(&staged))?;
        let note = self.chown(&staged, ownership)?;
        self.say("created", path, &format!(" (mode {mode:04o}){note}"));
        Ok(())
    }

    /// A configuration file: written when absent, untouched when it already
    /// holds `content`, kept (and said) when it holds anything else.
    pub fn config(&self, path: &Path, content: &[u8], mode: u32, ownership: Ownership<'_>) -> Result<(), InstallError> {
        let staged = self.staged(path);
        match std::fs::read(&staged) {
            Ok(existing) if existing == content => self.say("unchanged", path, ""),
            Ok(_) => self.say(
                "kept",
                path,
                " (edited: differs from what install writes; left as it is)",
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.create(path, mode, ownership, || Ok(content.to_vec()))?
            }
            Err(e) => return Err(Self::error(&staged)(e)),
        }
        Ok(())
    }

    /// A file whose content is made once and never compared (a key, a
    /// certificate): `make` runs only when the file is absent.
    pub fn once(
        &self,
        path: &Path,
        mode: u32,
        ownership: Ownership<'_>,
        make: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> Result<(), InstallError> {
        if self.staged(path).exists() {
            self.say("unchanged", path, "");
            return Ok(());
        }
        self.create(path, mode, ownership, make)
    }

    /// A program: replaced when its bytes differ from `source` (an upgrade), else untouched.
    pub fn program(&self, source: &Path, path: &Path) -> Result<(), InstallError> {
        let staged = self.staged(path);
        let new = std::fs::read(source).map_err(Self::error(source))?;
        let what = match std::fs::read(&staged) {
            Ok(old) if old == new => {
                self.say("unchanged", path, "");
                return Ok(());
            }
            Ok(_) => "updated",
            Err(_) => "created",
        };
        if !self.dry_run {
            self.parent(&staged)?;
            // Written beside and renamed over, so a running daemon's binary is never half-written.
            let tmp = staged.with_extension("install-tmp");
            write_new(&tmp, &new, 0o755)?;
            std::fs::rename(&tmp, &staged).map_err(Self::error(&staged))?;
        }
        self.say(what, path, "");
        Ok(())
    }

    fn parent(&self, staged: &Path) -> Result<(), InstallError> {
        if let Some(dir) = staged.parent() {
            std::fs::create_dir_all(dir).map_err(Self::error(dir))?;
        }
        Ok(())
    }

    fn create(
        &self,
        path: &Path,
        mode: u32,
        ownership: Ownership<'_>,
        make: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> Result<(), InstallError> {
        let staged = self.staged(path);
        if self.dry_run {
            self.say("created", path, &format!(" (mode {mode:04o})"));
            return Ok(());
        }
        let content = make().map_err(Self::error(&staged))?;
        self.parent(&staged)?;
        write_new(&staged, &content, mode)?;
        let note = self.chown(&staged, ownership)?;
        self.say("created", path, &format!(" (mode {mode:04o}){note}"));
        Ok(())
    }
}

/// Create `path` (it must not exist) with `mode`, write and fsync it.
fn write_new(path: &Path, content: &[u8], mode: u32) -> Result<(), InstallError> {
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        f.write_all(content)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()
    })();
    result.map_err(Installer::error(path))
}

/// The owner and mode bits of a path, for reports and tests.
pub fn owner_and_mode(path: &Path) -> std::io::Result<(u32, u32, u32)> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.uid(), meta.gid(), meta.mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_created_then_unchanged_then_kept_when_edited() {
        let dir = tempfile::tempdir().unwrap();
        let install = Installer::new(dir.path(), false);
        let path = Path::new("/etc/x/x.conf");
        install.config(path, b"a = 1\n", 0o640, Ownership::Root).unwrap();
        let staged = dir.path().join("etc/x/x.conf");
        assert_eq!(std::fs::read(&staged).unwrap(), b"a = 1\n");
        assert_eq!(owner_and_mode(&staged).unwrap().2, 0o640);
        std::fs::write(&staged, b"a = 2\n").unwrap();
        install.config(path, b"a = 1\n", 0o640, Ownership::Root).unwrap();
        assert_eq!(std::fs::read(&staged).unwrap(), b"a = 2\n", "an edited file is kept");
    }

    #[test]
    fn dry_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let install = Installer::new(dir.path(), true);
        install.dir(Path::new("/var/x"), 0o700, Ownership::Root).unwrap();
        install
            .config(Path::new("/etc/x"), b"x", 0o644, Ownership::Root)
            .unwrap();
        install
            .once(Path::new("/etc/key"), 0o600, Ownership::Root, || {
                panic!("not made in a dry run")
            })
            .unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
