//! The last good copy of each list, kept on disk (one `NAME.list` file of
//! CIDRs per list) so that a source that fails today leaves yesterday's
//! entries in force instead of none.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::merge::Set;
use crate::parse::parse_list;

/// The default directory, beside greyd's database.
pub const DEFAULT_DIR: &str = "/var/db/greyd/lists";

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.list"))
    }

    /// Replace the copy of `name` atomically: a crash leaves the old copy or the new, never half.
    pub fn store(&self, name: &str, set: &Set) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = io::BufWriter::new(std::fs::File::create(&tmp)?);
        for net in set.to_cidrs() {
            writeln!(file, "{net}")?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, self.path(name))?;
        sync_dir(&self.dir)
    }

    /// The stored copy, if there is one.
    pub fn load(&self, name: &str) -> io::Result<Option<Set>> {
        match std::fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(Set::from_entries(&parse_list(&bytes).entries))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Make the rename durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("lists"));
        assert_eq!(cache.load("a").unwrap(), None);
        let first = Set::from_entries(&parse_list(b"192.0.2.0/24\n2001:db8::/48\n").entries);
        cache.store("a", &first).unwrap();
        assert_eq!(cache.load("a").unwrap(), Some(first));
        let second = Set::from_entries(&parse_list(b"198.51.100.1\n").entries);
        cache.store("a", &second).unwrap();
        assert_eq!(cache.load("a").unwrap(), Some(second));
    }
}
