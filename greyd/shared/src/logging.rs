//! Log output: tracing lines to stderr in the foreground, to syslog
//! (facility mail, like spamd's and sendmail's maillog lines) otherwise.
//! Shared by greyd and mta.

use std::ffi::CString;
use std::io::Write;

use tracing_subscriber::EnvFilter;

/// A writer that sends each formatted line to syslog(3).
struct Syslog;

impl Write for Syslog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Ok(c) = CString::new(line.replace('\0', "")) {
                // SAFETY: "%s" with a valid NUL-terminated string.
                unsafe { libc::syslog(libc::LOG_MAIL | libc::LOG_INFO, c"%s".as_ptr(), c.as_ptr()) };
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install the global subscriber. The environment variable `filter_env`
/// (`RUST_LOG` for greyd) overrides the level.
pub fn init(ident: &'static std::ffi::CStr, filter_env: &str, foreground: bool, verbose: bool) {
    let filter =
        EnvFilter::try_from_env(filter_env).unwrap_or_else(|_| EnvFilter::new(if verbose { "debug" } else { "info" }));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if foreground {
        use std::io::IsTerminal;
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init();
    } else {
        // SAFETY: `ident` is 'static, as openlog(3) requires.
        unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_MAIL) };
        builder.without_time().with_ansi(false).with_writer(|| Syslog).init();
    }
}
