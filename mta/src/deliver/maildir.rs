//! Maildir delivery (https://cr.yp.to/proto/maildir.html): write into tmp/,
//! fsync, rename into new/, fsync new/. Maildir++ folders are `.Name`
//! subdirectories holding a `maildirfolder` file.

use super::DeliveryError;
use crate::store::flags::Flags;
use crate::store::unique_name_on;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Create `dir` with tmp/, new/ and cur/ (mode 0700) if missing.
pub fn create(dir: &Path) -> std::io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        DirBuilder::new().recursive(true).mode(0o700).create(dir.join(sub))?;
    }
    Ok(())
}

/// Create the Maildir++ folder `name` inside the Maildir `dir`.
pub fn create_folder(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let folder = dir.join(format!(".{name}"));
    create(&folder)?;
    File::create(folder.join("maildirfolder"))?;
    Ok(folder)
}

/// The folder quarantined mail goes into, made when missing (the user may
/// never have logged in to IMAP, which makes it for new users).
pub const JUNK: &str = "Junk";

/// Where in a Maildir a message goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement<'a> {
    /// A Maildir++ folder name (`Lists.rust`); INBOX when `None`.
    pub folder: Option<&'a str>,
    /// Make the folder when missing (Sieve's `fileinto :create`).
    pub create: bool,
    /// IMAP flags for the message (`\Seen`, keywords).
    pub flags: &'a [String],
}

/// Deliver `data` (already in local form); into the folder if it exists,
/// is made with `create`, or is [`JUNK`]; else into INBOX. A message with
/// flags goes through the store, which owns the keyword letters.
pub fn deliver(dir: &Path, into: &Placement<'_>, data: &[u8], hostname: &str) -> Result<(), DeliveryError> {
    let folder = into.folder.filter(|f| !f.is_empty());
    let box_dir = match folder.map(|f| (f, dir.join(format!(".{f}")))) {
        Some((_, path)) if path.join("maildirfolder").exists() => path,
        Some((name, path)) if into.create || name == JUNK => {
            create_folder(dir, name).map_err(|e| DeliveryError::io(&format!("creating {}", path.display()), e))?
        }
        _ => dir.to_path_buf(),
    };
    create(&box_dir).map_err(|e| DeliveryError::io(&format!("creating {}", box_dir.display()), e))?;
    if !into.flags.is_empty() {
        let name = match box_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix('.'))
        {
            Some(dotted) if box_dir != dir => dotted.replace('.', "/"),
            _ => "INBOX".to_string(),
        };
        let store_err =
            |e: crate::store::StoreError| DeliveryError::temp(format!("delivering to {}: {e}", box_dir.display()));
        let mailbox = crate::store::Store::open(dir, None)
            .and_then(|s| s.mailbox(&name))
            .map_err(store_err)?;
        return mailbox
            .append(data, &flags(into.flags), None)
            .map(drop)
            .map_err(store_err);
    }
    let name = format!("{},S={}", unique_name_on(hostname), data.len());
    let tmp = box_dir.join("tmp").join(&name);
    let new = box_dir.join("new").join(&name);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        std::fs::rename(&tmp, &new)?;
        File::open(box_dir.join("new"))?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DeliveryError::io(&format!("delivering to {}", box_dir.display()), e)
    })
}

/// IMAP flag names as the store keeps them: system flags by name (any
/// case), anything else a keyword; `\Recent` and unknown `\` flags dropped.
pub fn flags(names: &[String]) -> Flags {
    let mut f = Flags::default();
    for n in names {
        match n.to_ascii_lowercase().as_str() {
            "\\seen" => f.seen = true,
            "\\answered" => f.answered = true,
            "\\flagged" => f.flagged = true,
            "\\deleted" => f.deleted = true,
            "\\draft" => f.draft = true,
            s if s.starts_with('\\') => {}
            _ => {
                f.keywords.insert(n.clone());
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(folder: Option<&str>) -> Placement<'_> {
        Placement {
            folder,
            ..Placement::default()
        }
    }

    #[test]
    fn delivers_into_new_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        deliver(&md, &at(Some("nofolder")), b"a\n", "host/x:y").unwrap();
        create_folder(&md, "lists").unwrap();
        deliver(&md, &at(Some("lists")), b"b\n", "h").unwrap();
        let names: Vec<_> = std::fs::read_dir(md.join("new"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        let name = names[0].to_str().unwrap().to_string();
        assert!(name.contains(".host\\057x\\072y,S=2"), "{name}");
        assert_eq!(std::fs::read(md.join("new").join(&name)).unwrap(), b"a\n");
        assert_eq!(std::fs::read_dir(md.join(".lists/new")).unwrap().count(), 1);
        assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn junk_is_made_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        deliver(&md, &at(Some(JUNK)), b"spam\n", "h").unwrap();
        assert!(md.join(".Junk/maildirfolder").exists());
        assert_eq!(std::fs::read_dir(md.join(".Junk/new")).unwrap().count(), 1);
        assert!(std::fs::read_dir(md.join("new")).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
    }
}
