//! The sendmail-compatible front ends: `sendmail` (submit from stdin or
//! speak SMTP on stdio), `mailq` (list the queue) and `newaliases`
//! (validate the aliases file; we read it as text, so there is no database
//! to rebuild). `sendmail` hands messages to the daemon through the local
//! submission socket (`submit`), so any user can send; when no daemon runs
//! it writes straight into the queue directory (which needs write access)
//! and the daemon picks the files up within `queue.scan_interval`.

use crate::config::{Config, ConfigError};
use crate::queue::QueueError;
use crate::service::Shared;
use crate::submit::{Submission, SubmitError};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// sysexits(3) codes sendmail callers look at.
pub const EX_USAGE: i32 = 64;
pub const EX_DATAERR: i32 = 65;
pub const EX_NOUSER: i32 = 67;
pub const EX_TEMPFAIL: i32 = 75;

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("reading the message: {0}")]
    Input(std::io::Error),
    #[error("the mta daemon: {0}")]
    Daemon(String),
}

impl FrontendError {
    pub fn exit_code(&self) -> i32 {
        match self {
            FrontendError::Usage(_) => EX_USAGE,
            FrontendError::Config(_) | FrontendError::Queue(_) | FrontendError::Input(_) | FrontendError::Daemon(_) => {
                EX_TEMPFAIL
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// -bm (the default): read a message from stdin.
    Deliver,
    /// -bs: SMTP on stdin/stdout.
    Smtp,
    /// -bp: list the queue (mailq).
    Queue,
    /// -bi: check the aliases file (newaliases).
    Aliases,
    /// -q: ask the daemon to attempt every queued message now.
    RunQueue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub config: PathBuf,
    /// -t: take recipients from To:, Cc:, Bcc: (Bcc: is then removed).
    pub from_headers: bool,
    pub sender: Option<String>,
    pub full_name: Option<String>,
    /// -i / -oi: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    pub recipients: Vec<String>,
}

/// Parse sendmail's command line (without argv[0]). Unknown -o options and
/// the historic no-op flags are ignored, as sendmail does.
pub fn parse_args(args: &[String], default_mode: Mode) -> Result<Options, FrontendError> {
    let mut o = Options {
        mode: default_mode,
        config: std::env::var_os("MTA_CONFIG").map_or_else(|| "/etc/mta/mta.toml".into(), PathBuf::from),
        from_headers: false,
        sender: None,
        full_name: None,
        ignore_dots: false,
        recipients: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str, attached: &str| -> Result<String, FrontendError> {
            if attached.is_empty() {
                it.next()
                    .cloned()
                    .ok_or_else(|| FrontendError::Usage(format!("{flag} needs a value")))
            } else {
                Ok(attached.to_string())
            }
        };
        match a.as_str() {
            "--" => {
                o.recipients.extend(it.by_ref().cloned());
                break;
            }
            "-t" => o.from_headers = true,
            "-i" | "-oi" => o.ignore_dots = true,
            "-bm" => o.mode = Mode::Deliver,
            "-bs" => o.mode = Mode::Smtp,
            "-bp" => o.mode = Mode::Queue,
            "-bi" => o.mode = Mode::Aliases,
            s if s.starts_with("-q") => o.mode = Mode::RunQueue,
            s if s.starts_with("-f") || s.starts_with("-r") => o.sender = Some(value("-f", &s[2..])?),
            s if s.starts_with("-F") => o.full_name = Some(value("-F", &s[2..])?),
            s if s.starts_with("-C") => o.config = value("-C", &s[2..])?.into(),
            s if s.starts_with("-o") || s.starts_with("-O") || s == "-v" || s == "-n" || s.starts_with("-X") => {}
            s if s.starts_with("-b") => {
                return Err(FrontendError::Usage(format!("mode {s} not supported")));
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(FrontendError::Usage(format!("unknown option {s}")));
            }
            s => o.recipients.push(s.to_string()),
        }
    }
    Ok(o)
}

fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid{}", nix::unistd::getuid()), |u| u.name)
}

/// Split local input into CRLF lines, stopping at a lone "." unless `ignore_dots`.
pub fn normalize_input(input: &[u8], ignore_dots: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 40);
    for line in input.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if !ignore_dots && body == b"." {
            break;
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The header block (up to the blank line) and the body offset.
fn split_headers(msg: &[u8]) -> (&[u8], usize) {
    if msg.starts_with(b"\r\n") {
        return (&msg[..0], 0);
    }
    match msg.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => (&msg[..p + 2], p + 2),
        None => (msg, msg.len()),
    }
}

/// Unfolded header fields as (name, value, raw bytes).
fn header_fields(headers: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let mut fields: Vec<(String, String, Vec<u8>)> = Vec::new();
    for line in headers.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if (text.starts_with(' ') || text.starts_with('\t')) && !fields.is_empty() {
            let f = fields.last_mut().expect("non-empty");
            f.1.push(' ');
            f.1.push_str(text.trim());
            f.2.extend_from_slice(line);
        } else if let Some((name, value)) = text.split_once(':') {
            fields.push((
                name.trim().to_ascii_lowercase(),
                value.trim().to_string(),
                line.to_vec(),
            ));
        } else {
            fields.push((String::new(), String::new(), line.to_vec()));
        }
    }
    fields
}

/// Addresses in an address-list header value: `<a@b>` forms or bare words with `@`.
pub fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut quoted = false;
    let mut cur = String::new();
    for c in value.chars().chain(std::iter::once(',')) {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            ',' | ';' if !quoted && depth == 0 => {
                let item = std::mem::take(&mut cur);
                let addr = match (item.rfind('<'), item.rfind('>')) {
                    (Some(l), Some(r)) if l < r => item[l + 1..r].trim().to_string(),
                    // A bare address, possibly after a group name ("team: a@b").
                    _ => item.rsplit(':').next().unwrap_or("").trim().to_string(),
                };
                if addr.contains('@') && !addr.contains(char::is_whitespace) {
                    out.push(addr);
                }
                continue;
            }
            _ => {}
        }
        if depth == 0 && c != ')' {
            cur.push(c);
        }
    }
    out
}

/// `sendmail` (-bm): read the message, add missing headers, and hand it to
/// the daemon's submission socket; without a daemon, queue it directly
/// (which needs write access to the spool).
pub fn submit(opts: &Options, input: &[u8]) -> Result<i32, FrontendError> {
    let config = Config::load(&opts.config)?;
    let sub = prepare(opts, input, &config.hostname)?;
    let response = match crate::submit::send(&config.queue.submit_socket, &sub) {
        Ok(r) => r,
        Err(SubmitError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            let shared = Shared::new(config, None, None)?;
            crate::submit::enqueue(&shared, &sub, nix::unistd::getuid().as_raw(), &current_user())?
        }
        Err(e) => return Err(FrontendError::Daemon(e.to_string())),
    };
    for (rcpt, reply) in &response.rejected {
        eprintln!("sendmail: {rcpt}: {reply}");
    }
    match (&response.id, &response.error) {
        (Some(_), _) if response.rejected.is_empty() => Ok(0),
        (Some(_), _) => Ok(EX_NOUSER),
        (None, _) if !response.rejected.is_empty() => Ok(EX_NOUSER),
        (None, error) => Err(FrontendError::Daemon(
            error.clone().unwrap_or_else(|| "nothing queued".into()),
        )),
    }
}

/// Complete the headers (From:, Date:, Message-ID:, Bcc: removed) and
/// collect the recipients (-t adds To:, Cc: and Bcc:).
fn prepare(opts: &Options, input: &[u8], host: &str) -> Result<Submission, FrontendError> {
    let user = current_user();
    let sender = opts.sender.clone().unwrap_or_else(|| format!("{user}@{host}"));
    let sender = if sender.contains('@') || sender.is_empty() {
        sender
    } else {
        format!("{sender}@{host}")
    };
    let msg = normalize_input(input, opts.ignore_dots);
    let (headers, body_at) = split_headers(&msg);
    let fields = header_fields(headers);
    let mut recipients = opts.recipients.clone();
    let mut new_headers: Vec<u8> = Vec::new();
    for (name, value, raw) in &fields {
        if opts.from_headers && matches!(name.as_str(), "to" | "cc" | "bcc") {
            recipients.extend(addresses(value));
        }
        // Bcc: recipients must not see each other (Postfix and sendmail drop the field).
        if name != "bcc" {
            new_headers.extend_from_slice(raw);
        }
    }
    if recipients.is_empty() {
        return Err(FrontendError::Usage("no recipients given".into()));
    }
    let has = |n: &str| fields.iter().any(|(name, _, _)| name == n);
    let mut added = String::new();
    if !has("from") {
        match &opts.full_name {
            Some(name) => added.push_str(&format!(
                "From: \"{}\" <{sender}>\r\n",
                name.replace(['"', '\\', '\r', '\n'], "")
            )),
            None => added.push_str(&format!("From: <{sender}>\r\n")),
        }
    }
    if !has("date") {
        added.push_str(&format!("Date: {}\r\n", crate::datetime::rfc5322(crate::queue::now())));
    }
    if !has("message-id") {
        let rnd: String = crate::auth::users::random_bytes(8)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        added.push_str(&format!("Message-ID: <{}.{rnd}@{host}>\r\n", crate::queue::now()));
    }
    let mut content = added.into_bytes();
    // Headers without a blank line after them: the whole input was headers (or no headers at all).
    content.extend_from_slice(&new_headers);
    content.extend_from_slice(&msg[body_at.min(msg.len())..]);
    Ok(Submission {
        sender,
        recipients,
        content,
    })
}

/// `sendmail -bs`: an SMTP session on stdin/stdout.
pub fn smtp_on_stdio(opts: &Options) -> Result<i32, FrontendError> {
    let config = Config::load(&opts.config)?;
    let shared = Arc::new(Shared::new(config, None, None)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(FrontendError::Input)?;
    rt.block_on(async {
        let io = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
        crate::smtp::session::Session::new(Box::new(io), shared, crate::smtp::session::Port::Local, None, false)
            .run()
            .await;
    });
    Ok(0)
}

/// `mailq`: the queue in Postfix's format.
pub fn mailq(opts: &Options, out: &mut dyn Write) -> Result<i32, FrontendError> {
    let config = Config::load(&opts.config)?;
    let queue = crate::queue::Queue::open(&config.queue.dir)?;
    let _ = out.write_all(crate::queue::control::mailq(&crate::queue::control::entries(&queue)?).as_bytes());
    Ok(0)
}

/// `newaliases`: parse the aliases file and report every error with its line.
pub fn newaliases(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, FrontendError> {
    let config = Config::load(&opts.config)?;
    let path = &config.files.aliases;
    let text = match crate::reload::read_optional(path) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "newaliases: {e}");
            return Ok(EX_DATAERR);
        }
    };
    match crate::aliases::parse(&text) {
        Ok(a) => {
            let _ = writeln!(out, "{}: {} aliases", path.display(), a.len());
            Ok(0)
        }
        Err(errors) => {
            for e in errors {
                let _ = writeln!(err, "{}:{}: {}", path.display(), e.line, e.problem);
            }
            Ok(EX_DATAERR)
        }
    }
}

/// The whole command: `sendmail`, `mailq` and `newaliases` differ only in
/// their default mode. Returns the exit code.
pub fn main(name: &str, default_mode: Mode) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&args, default_mode).and_then(|opts| match opts.mode {
        Mode::Deliver => {
            let mut input = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut input).map_err(FrontendError::Input)?;
            submit(&opts, &input)
        }
        Mode::Smtp => smtp_on_stdio(&opts),
        Mode::Queue => mailq(&opts, &mut std::io::stdout()),
        Mode::Aliases => newaliases(&opts, &mut std::io::stdout(), &mut std::io::stderr()),
        Mode::RunQueue => {
            let config = Config::load(&opts.config)?;
            crate::queue::Queue::open(&config.queue.dir)?.request_retry(None)?;
            Ok(0)
        }
    });
    result.unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        e.exit_code()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn sendmail_flags() {
        let o = parse_args(&args("-t -oi -f me@x -FMy -C /c.toml -odb a b"), Mode::Deliver).unwrap();
        assert!(o.from_headers && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("me@x"));
        assert_eq!(o.full_name.as_deref(), Some("My"));
        assert_eq!(o.config, PathBuf::from("/c.toml"));
        assert_eq!(o.recipients, vec!["a", "b"]);
        assert_eq!(parse_args(&args("-bs"), Mode::Deliver).unwrap().mode, Mode::Smtp);
        assert!(parse_args(&args("-f"), Mode::Deliver).is_err());
    }

    #[test]
    fn input_and_addresses() {
        assert_eq!(normalize_input(b"a\n.\nb\n", false), b"a\r\n");
        assert_eq!(normalize_input(b"a\r\n.\nb", true), b"a\r\n.\r\nb\r\n");
        assert_eq!(
            addresses("Al <al@x.example>, bob@y.example (Bob), \"c, d\" <cd@z.example>; undisclosed:;"),
            vec!["al@x.example", "bob@y.example", "cd@z.example"]
        );
    }
}
