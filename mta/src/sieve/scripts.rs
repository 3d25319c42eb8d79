//! Where a user's Sieve scripts live, in Pigeonhole's layout with the
//! Maildir as home: `sieve/NAME.sieve` inside the Maildir, and the active
//! one marked by the symbolic link `.dovecot.sieve` pointing at it (not a
//! Maildir++ folder: it has no `cur/`). ManageSieve edits them through the
//! functions here: names are checked, writes are atomic and durable.

use crate::store::{self, StoreError};
use std::path::{Path, PathBuf};

/// The folder of scripts inside a Maildir.
pub const DIR: &str = "sieve";
/// The link naming the active script.
pub const ACTIVE: &str = ".dovecot.sieve";

/// Longest script name in bytes.
pub const MAX_NAME: usize = 128;

/// Why a script name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty")]
    Empty,
    #[error("longer than {MAX_NAME} bytes")]
    TooLong,
    #[error("contains \"/\"")]
    Slash,
    #[error("contains a control character")]
    Control,
}

/// Whether `name` may name a script: it becomes `NAME.sieve` inside the
/// script folder, so no `/`, and nothing a listing could not show (RFC 5804 §1.6).
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    if name.contains('/') {
        return Err(NameError::Slash);
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(NameError::Control);
    }
    Ok(())
}

/// Why a change to the scripts was not made.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("no script {0:?}")]
    Nonexistent(String),
    #[error("a script {0:?} exists already")]
    AlreadyExists(String),
    #[error("script {0:?} is active")]
    Active(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path, e: std::io::Error) -> ScriptError {
    ScriptError::Store(store::io_err(path, e))
}

/// The file of script `name` in the Maildir `maildir`.
pub fn path(maildir: &Path, name: &str) -> PathBuf {
    maildir.join(DIR).join(format!("{name}.sieve"))
}

/// The active script's file, if one is marked and exists.
pub fn active(maildir: &Path) -> Option<PathBuf> {
    let link = maildir.join(ACTIVE);
    let target = std::fs::read_link(&link).ok()?;
    let file = maildir.join(target);
    file.is_file().then_some(file)
}

/// Mark script `name` active (it must exist), atomically replacing any
/// previous mark; `None` deactivates.
pub fn set_active(maildir: &Path, name: Option<&str>) -> std::io::Result<()> {
    let link = maildir.join(ACTIVE);
    let Some(name) = name else {
        return match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    if !path(maildir, name).is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no script {name:?}"),
        ));
    }
    let tmp = maildir.join(format!("{ACTIVE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(Path::new(DIR).join(format!("{name}.sieve")), &tmp)?;
    std::fs::rename(&tmp, &link)
}

/// The name of the active script, if one is marked and exists.
pub fn active_name(maildir: &Path) -> Option<String> {
    let file = active(maildir)?;
    let name = file.file_name()?.to_str()?.strip_suffix(".sieve")?;
    (path(maildir, name) == file).then(|| name.to_string())
}

/// Every script's name, sorted, and whether it is the active one.
pub fn list(maildir: &Path) -> Result<Vec<(String, bool)>, ScriptError> {
    let dir = maildir.join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir, e)),
    };
    let active = active_name(maildir);
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(&dir, e))?;
        if let Some(name) = entry.file_name().to_str().and_then(|n| n.strip_suffix(".sieve"))
            && check_name(name).is_ok()
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            names.push((name.to_string(), active.as_deref() == Some(name)));
        }
    }
    names.sort();
    Ok(names)
}

/// The text of script `name`.
pub fn read(maildir: &Path, name: &str) -> Result<Vec<u8>, ScriptError> {
    let file = path(maildir, name);
    std::fs::read(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScriptError::Nonexistent(name.to_string()),
        _ => io(&file, e),
    })
}

/// Store script `name` (replacing one of that name) durably: temporary
/// file, fsync, rename. The folder is made if missing; when running as
/// root, what is made is handed to `owner`.
pub fn write(maildir: &Path, name: &str, text: &[u8], owner: Option<(u32, u32)>) -> Result<(), ScriptError> {
    let dir = maildir.join(DIR);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        store::chown(&dir, owner);
    }
    Ok(store::write_atomic(&path(maildir, name), text, owner)?)
}

/// Remove script `name`; the active one is refused.
pub fn delete(maildir: &Path, name: &str) -> Result<(), ScriptError> {
    if active_name(maildir).as_deref() == Some(name) {
        return Err(ScriptError::Active(name.to_string()));
    }
    let file = path(maildir, name);
    std::fs::remove_file(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScriptError::Nonexistent(name.to_string()),
        _ => io(&file, e),
    })
}

/// Rename script `from` to `to`, which must not exist; an active script
/// stays active. The new name is linked before the old one goes, so
/// delivery always finds the active script under one name or the other.
pub fn rename(maildir: &Path, from: &str, to: &str) -> Result<(), ScriptError> {
    let (old, new) = (path(maildir, from), path(maildir, to));
    if !old.is_file() {
        return Err(ScriptError::Nonexistent(from.to_string()));
    }
    std::fs::hard_link(&old, &new).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => ScriptError::AlreadyExists(to.to_string()),
        std::io::ErrorKind::NotFound => ScriptError::Nonexistent(from.to_string()),
        _ => io(&new, e),
    })?;
    if active_name(maildir).as_deref() == Some(from) {
        set_active(maildir, Some(to)).map_err(|e| io(&maildir.join(ACTIVE), e))?;
    }
    std::fs::remove_file(&old).map_err(|e| io(&old, e))?;
    let dir = maildir.join(DIR);
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(&dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_link_follows_set_active() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path();
        assert_eq!(active(md), None);
        std::fs::create_dir(md.join(DIR)).unwrap();
        std::fs::write(path(md, "main"), "keep;").unwrap();
        std::fs::write(path(md, "other"), "discard;").unwrap();
        assert!(set_active(md, Some("missing")).is_err());
        set_active(md, Some("main")).unwrap();
        assert_eq!(active(md), Some(path(md, "main")));
        set_active(md, Some("other")).unwrap();
        assert_eq!(active(md), Some(path(md, "other")));
        set_active(md, None).unwrap();
        assert_eq!(active(md), None);
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("vacation rules"), Ok(()));
        assert_eq!(check_name("..sieve"), Ok(()), "inside the folder all the same");
        assert_eq!(check_name("../x"), Err(NameError::Slash));
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name("a\u{7f}"), Err(NameError::Control));
        assert_eq!(check_name(&"x".repeat(MAX_NAME)), Ok(()));
        assert_eq!(check_name(&"x".repeat(MAX_NAME + 1)), Err(NameError::TooLong));
    }

    #[test]
    fn write_list_rename_delete() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path();
        assert_eq!(list(md).unwrap(), vec![]);
        write(md, "main", b"keep;", None).unwrap();
        write(md, "b", b"discard;", None).unwrap();
        write(md, "main", b"stop;", None).unwrap();
        assert_eq!(read(md, "main").unwrap(), b"stop;");
        assert!(matches!(read(md, "none"), Err(ScriptError::Nonexistent(_))));
        set_active(md, Some("main")).unwrap();
        assert_eq!(list(md).unwrap(), vec![("b".into(), false), ("main".into(), true)]);
        assert!(matches!(delete(md, "main"), Err(ScriptError::Active(_))));
        assert!(matches!(rename(md, "main", "b"), Err(ScriptError::AlreadyExists(_))));
        assert!(matches!(rename(md, "none", "c"), Err(ScriptError::Nonexistent(_))));
        rename(md, "main", "renamed").unwrap();
        assert_eq!(active_name(md).as_deref(), Some("renamed"));
        assert_eq!(read(md, "renamed").unwrap(), b"stop;");
        delete(md, "b").unwrap();
        assert!(matches!(delete(md, "b"), Err(ScriptError::Nonexistent(_))));
        assert_eq!(list(md).unwrap(), vec![("renamed".into(), true)]);
        let names: Vec<_> = std::fs::read_dir(md.join(DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("renamed.sieve")],
            "no temporary files left"
        );
    }
}
