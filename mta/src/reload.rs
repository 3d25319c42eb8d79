//! Files re-read when they change: each access stats the file and parses it
//! again if its modification time or size moved, so `newaliases`, edits of
//! virtusertable and `mtactl user` take effect without a restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

type Stamp = Option<(SystemTime, u64)>;

/// A file that exists but could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Why a classic text file (aliases, virtusertable, ...) could not be used:
/// unreadable, or every problem found in it (not just the first).
#[derive(Debug, thiserror::Error)]
pub enum FileError<P: fmt::Display + fmt::Debug> {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{}", Problems(path, problems))]
    Invalid { path: PathBuf, problems: Vec<P> },
}

struct Problems<'a, P>(&'a Path, &'a [P]);

impl<P: fmt::Display> fmt::Display for Problems<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.1.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{}: {problem}", self.0.display())?;
        }
        Ok(())
    }
}

pub struct Reloading<T, E> {
    path: PathBuf,
    parse: fn(&Path) -> Result<T, E>,
    cached: Mutex<Option<(Stamp, Arc<T>)>>,
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl<T, E: fmt::Display> Reloading<T, E> {
    /// `parse` must treat a missing file as empty, if that is what a missing file means.
    pub fn new(path: &Path, parse: fn(&Path) -> Result<T, E>) -> Self {
        Reloading {
            path: path.to_path_buf(),
            parse,
            cached: Mutex::new(None),
        }
    }

    /// The current contents; on a parse error the previous version is kept
    /// (and the error logged) so one bad edit does not stop mail.
    pub fn get(&self) -> Result<Arc<T>, E> {
        let now = stamp(&self.path);
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, v)) = cached.as_ref()
            && *s == now
        {
            return Ok(Arc::clone(v));
        }
        match (self.parse)(&self.path) {
            Ok(v) => {
                let v = Arc::new(v);
                *cached = Some((now, Arc::clone(&v)));
                Ok(v)
            }
            Err(e) => match cached.as_ref() {
                Some((_, old)) => {
                    tracing::error!("{}: {e}; keeping the previous version", self.path.display());
                    Ok(Arc::clone(old))
                }
                None => Err(e),
            },
        }
    }
}

/// Read a file, treating "not found" as empty.
pub fn read_optional(path: &Path) -> Result<String, ReadError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(ReadError {
            path: path.to_path_buf(),
            source,
        }),
    }
}
