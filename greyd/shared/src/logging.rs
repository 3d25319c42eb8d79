//! Log output: tracing lines to stderr in the foreground, to the journal
//! under systemd, to syslog (facility mail, like spamd's and sendmail's
//! maillog lines) otherwise. Shared by greyd and mta.

use std::ffi::CString;
use std::io::Write;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// syslog(3)'s priority for a tracing level (the journal's `<N>` prefix uses the same numbers).
fn priority(level: &Level) -> libc::c_int {
    match *level {
        Level::ERROR => libc::LOG_ERR,
        Level::WARN => libc::LOG_WARNING,
        Level::INFO => libc::LOG_INFO,
        Level::DEBUG | Level::TRACE => libc::LOG_DEBUG,
    }
}

/// A writer that sends each formatted line to syslog(3) at one priority.
struct Syslog(libc::c_int);

impl Write for Syslog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Ok(c) = CString::new(line.replace('\0', "")) {
                // SAFETY: "%s" with a valid NUL-terminated string.
                unsafe { libc::syslog(libc::LOG_MAIL | self.0, c"%s".as_ptr(), c.as_ptr()) };
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes a [`Syslog`] writer at the priority of each event's level.
struct SyslogWriters;

impl<'a> MakeWriter<'a> for SyslogWriters {
    type Writer = Syslog;

    fn make_writer(&'a self) -> Syslog {
        Syslog(libc::LOG_INFO)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Syslog {
        Syslog(priority(meta.level()))
    }
}

/// A line to stderr behind the `<N>` priority prefix the journal reads (sd-daemon(3)).
struct Journal(libc::c_int);

impl Write for Journal {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut line = format!("<{}>", self.0).into_bytes();
        line.extend_from_slice(buf);
        // One write per line, so lines of several threads do not interleave.
        std::io::stderr().lock().write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Makes a [`Journal`] writer at the priority of each event's level.
struct JournalWriters;

impl<'a> MakeWriter<'a> for JournalWriters {
    type Writer = Journal;

    fn make_writer(&'a self) -> Journal {
        Journal(libc::LOG_INFO)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Journal {
        Journal(priority(meta.level()))
    }
}

/// Whether stderr is systemd's journal stream: `JOURNAL_STREAM` names its
/// device and inode (systemd.exec(5)); a child that inherited the variable
/// but not the descriptor does not count.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills `st` for a valid descriptor and fails otherwise.
    if unsafe { libc::fstat(libc::STDERR_FILENO, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    dev.parse::<libc::dev_t>() == Ok(st.st_dev) && ino.parse::<libc::ino_t>() == Ok(st.st_ino)
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// stderr with timestamps (a terminal or a file).
    Stderr,
    /// stderr for the journal: priority prefixes, no timestamps (the journal adds them).
    Journal,
    /// syslog(3), facility mail: `ident[PID]: message`, the maillog lines.
    Syslog,
}

impl Destination {
    /// The journal when stderr is one, else stderr in the foreground, else syslog.
    pub fn choose(foreground: bool) -> Destination {
        if stderr_is_journal() {
            Destination::Journal
        } else if foreground {
            Destination::Stderr
        } else {
            Destination::Syslog
        }
    }
}

/// Install the global subscriber. The environment variable `filter_env`
/// (`RUST_LOG` for greyd) overrides the level.
pub fn init(ident: &'static std::ffi::CStr, filter_env: &str, destination: Destination, verbose: bool) {
    let filter =
        EnvFilter::try_from_env(filter_env).unwrap_or_else(|_| EnvFilter::new(if verbose { "debug" } else { "info" }));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match destination {
        Destination::Stderr => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init();
        }
        // The priority says the level; the message alone is the maillog line.
        Destination::Journal => builder
            .without_time()
            .with_ansi(false)
            .with_level(false)
            .with_target(false)
            .with_writer(JournalWriters)
            .init(),
        Destination::Syslog => {
            // SAFETY: `ident` is 'static, as openlog(3) requires.
            unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_MAIL) };
            builder
                .without_time()
                .with_ansi(false)
                .with_level(false)
                .with_target(false)
                .with_writer(SyslogWriters)
                .init();
        }
    }
}
