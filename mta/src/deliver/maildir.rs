//! Maildir delivery (https://cr.yp.to/proto/maildir.html): write into tmp/,
//! fsync, rename into new/, fsync new/. Maildir++ folders are `.Name`
//! subdirectories holding a `maildirfolder` file.

use super::DeliveryError;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// Create `dir` with tmp/, new/ and cur/ (mode 0700) if missing.
pub fn create(dir: &Path) -> std::io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        DirBuilder::new().recursive(true).mode(0o700).create(dir.join(sub))?;
    }
    Ok(())
}

/// A name unique per the Maildir spec: time, microseconds, pid, a
/// per-process counter, and the host name with `/` and `:` escaped.
pub fn unique_name(hostname: &str) -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let host = hostname.replace('/', "\\057").replace(':', "\\072");
    let n = DELIVERIES.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        t.as_secs(),
        t.subsec_micros(),
        std::process::id(),
        n,
        host
    )
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

/// Deliver `data` (already in local form); into `folder` if it exists, or
/// is [`JUNK`].
pub fn deliver(dir: &Path, folder: Option<&str>, data: &[u8], hostname: &str) -> Result<(), DeliveryError> {
    let box_dir = match folder.map(|f| (f, dir.join(format!(".{f}")))) {
        Some((_, path)) if path.join("maildirfolder").exists() => path,
        Some((JUNK, path)) => {
            create_folder(dir, JUNK).map_err(|e| DeliveryError::io(&format!("creating {}", path.display()), e))?
        }
        _ => dir.to_path_buf(),
    };
    create(&box_dir).map_err(|e| DeliveryError::io(&format!("creating {}", box_dir.display()), e))?;
    let name = format!("{},S={}", unique_name(hostname), data.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_into_new_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        deliver(&md, Some("nofolder"), b"a\n", "host/x:y").unwrap();
        create_folder(&md, "lists").unwrap();
        deliver(&md, Some("lists"), b"b\n", "h").unwrap();
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
        deliver(&md, Some(JUNK), b"spam\n", "h").unwrap();
        assert!(md.join(".Junk/maildirfolder").exists());
        assert_eq!(std::fs::read_dir(md.join(".Junk/new")).unwrap().count(), 1);
        assert!(std::fs::read_dir(md.join("new")).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
    }
}
