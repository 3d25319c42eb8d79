//! Where a user's Sieve scripts live, in Pigeonhole's layout with the
//! Maildir as home: `sieve/NAME.sieve` inside the Maildir, and the active
//! one marked by the symbolic link `.dovecot.sieve` pointing at it (not a
//! Maildir++ folder: it has no `cur/`).

use std::path::{Path, PathBuf};

/// The folder of scripts inside a Maildir.
pub const DIR: &str = "sieve";
/// The link naming the active script.
pub const ACTIVE: &str = ".dovecot.sieve";

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
}
