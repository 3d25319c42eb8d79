//! Getting a list's bytes: over http(s) with reqwest (rustls), from a file,
//! or from a command's standard output. Gzip is recognised by its magic
//! bytes whatever the name says, and both the bytes read and the bytes
//! decompressed are capped, so a gzip bomb or an endless stream fails instead
//! of filling memory.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use flate2::bufread::MultiGzDecoder;
use indicatif::ProgressBar;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::conf::{ListSpec, Method};

/// Bounds on one source.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes read from the source, and most bytes after decompression.
    pub max_bytes: u64,
    /// Whole-transfer time limit for http(s) and exec.
    pub timeout: Duration,
}

impl Default for Limits {
    /// 256 MiB holds several million entries, ten times the largest public list.
    fn default() -> Limits {
        Limits {
            max_bytes: 256 << 20,
            timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{}", with_causes(.0))]
    Http(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(reqwest::StatusCode),
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(io::Error),
    #[error("empty command")]
    EmptyCommand,
    #[error("no complete answer within {0:?}")]
    TimedOut(Duration),
    #[error("command failed: {0}")]
    Command(std::process::ExitStatus),
}

/// reqwest's own message is generic ("error sending request"); its causes say what failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Where a list comes from, as the user would write it (for messages).
pub fn location(spec: &ListSpec) -> String {
    match spec.method {
        Method::Http => format!("http://{}", spec.file),
        Method::Https => format!("https://{}", spec.file),
        Method::File => spec.file.clone(),
        Method::Exec => format!("exec {}", spec.file),
    }
}

/// The list's contents, decompressed. Nothing partial is ever returned.
pub fn fetch(spec: &ListSpec, limits: &Limits, bar: &ProgressBar) -> Result<Vec<u8>, FetchError> {
    match spec.method {
        Method::Http | Method::Https => {
            let client = reqwest::blocking::Client::builder()
                .timeout(limits.timeout)
                .user_agent(concat!("greyd-setup/", env!("CARGO_PKG_VERSION")))
                .build()?;
            let resp = client.get(location(spec)).send()?;
            if !resp.status().is_success() {
                return Err(FetchError::Status(resp.status()));
            }
            if let Some(len) = resp.content_length() {
                bar.set_length(len);
            }
            read_capped(resp, limits, bar)
        }
        Method::File => {
            let file = std::fs::File::open(&spec.file).map_err(FetchError::Io)?;
            if let Ok(meta) = file.metadata() {
                bar.set_length(meta.len());
            }
            read_capped(file, limits, bar)
        }
        Method::Exec => exec(&spec.file, limits, bar),
    }
}

/// Run the command (split on blanks, as spamd-setup does) and take its output;
/// a failing exit status fails the source even if output came, and a command
/// still writing after `limits.timeout` is killed.
fn exec(cmdline: &str, limits: &Limits, bar: &ProgressBar) -> Result<Vec<u8>, FetchError> {
    let mut args = cmdline.split([' ', '\t']).filter(|a| !a.is_empty());
    let prog = args.next().ok_or(FetchError::EmptyCommand)?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(FetchError::Io)?;
    let stdout = child.stdout.take().expect("piped stdout");
    let pid = Pid::from_raw(child.id() as i32);
    let (read_done, done) = mpsc::channel::<()>();
    let timeout = limits.timeout;
    // Kills only before `read_done` is sent, so always before the child is reaped: the PID is still ours.
    let watchdog = std::thread::spawn(move || {
        let expired = done.recv_timeout(timeout) == Err(RecvTimeoutError::Timeout);
        if expired {
            let _ = kill(pid, Signal::SIGKILL);
        }
        expired
    });
    let out = read_capped(stdout, limits, bar);
    if out.is_err() {
        // An endless producer never exits on its own.
        let _ = child.kill();
    }
    let _ = read_done.send(());
    let expired = watchdog.join().unwrap_or(false);
    let status = child.wait().map_err(FetchError::Io)?;
    if expired {
        return Err(FetchError::TimedOut(timeout));
    }
    let out = out?;
    if !status.success() {
        return Err(FetchError::Command(status));
    }
    Ok(out)
}

/// Read everything, decompressing gzip, within `limits.max_bytes` on both sides.
pub fn read_capped(raw: impl Read, limits: &Limits, bar: &ProgressBar) -> Result<Vec<u8>, FetchError> {
    let cap = limits.max_bytes;
    let failed = |e: io::Error| {
        if e.kind() == io::ErrorKind::FileTooLarge {
            FetchError::TooLarge(cap)
        } else {
            FetchError::Io(e)
        }
    };
    let mut input = BufReader::new(bar.wrap_read(Capped::new(raw, cap)));
    let gzip = input.fill_buf().map_err(failed)?.starts_with(&[0x1f, 0x8b]);
    let mut out = Vec::new();
    if gzip {
        Capped::new(MultiGzDecoder::new(input), cap).read_to_end(&mut out)
    } else {
        input.read_to_end(&mut out)
    }
    .map_err(failed)?;
    Ok(out)
}

/// A reader that fails with `FileTooLarge` once more than `cap` bytes come through.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R> Capped<R> {
    fn new(inner: R, cap: u64) -> Capped<R> {
        Capped { inner, left: cap }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::FileTooLarge, "size cap"))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn limits(max_bytes: u64) -> Limits {
        Limits {
            max_bytes,
            ..Limits::default()
        }
    }

    #[test]
    fn plain_and_gzip_read_the_same() {
        let text = b"192.0.2.1\n192.0.2.2\n".repeat(100);
        let bar = ProgressBar::hidden();
        assert_eq!(read_capped(&text[..], &limits(1 << 20), &bar).unwrap(), text);
        assert_eq!(read_capped(&gz(&text)[..], &limits(1 << 20), &bar).unwrap(), text);
    }

    #[test]
    fn gzip_bomb_and_long_stream_fail() {
        let bar = ProgressBar::hidden();
        let bomb = gz(&vec![b'\n'; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        let err = read_capped(&bomb[..], &limits(1 << 20), &bar).unwrap_err();
        assert!(matches!(err, FetchError::TooLarge(n) if n == 1 << 20), "{err}");
        let err = read_capped(io::repeat(b'1'), &limits(1 << 20), &bar).unwrap_err();
        assert!(matches!(err, FetchError::TooLarge(_)), "{err}");
    }

    #[test]
    fn truncated_gzip_fails() {
        let data = gz(&b"192.0.2.1\n".repeat(1000));
        let cut = &data[..data.len() / 2];
        assert!(read_capped(cut, &limits(1 << 20), &ProgressBar::hidden()).is_err());
    }
}
