//! The POP3 session state machine (RFC 1939 AUTHORIZATION, TRANSACTION and
//! UPDATE states, RFC 2449 capabilities and response codes, RFC 2595 STLS)
//! without I/O: command lines in, [`Action`]s out. The shell does what is
//! slow or blocking (TLS, password checks, opening the maildrop, reading
//! messages, removing them) and reports the outcome back.

use super::command::{self, Command, ParseError};
use crate::smtp::lines::LineError;

/// The SASL mechanisms offered (CRAM-MD5 is left out: it needs a secret
/// most users lack, and clients such as curl prefer it when offered).
pub const MECHANISMS: &[&str] = &["PLAIN", "LOGIN", "SCRAM-SHA-256"];

/// One message of the maildrop as the session lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Octets of the message RETR sends (before byte-stuffing).
    pub size: u64,
    pub uidl: String,
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this line.
    Reply(String),
    /// Send the status line, the lines, and the terminating ".".
    Listing(String, Vec<String>),
    /// Send "+OK", then run the TLS handshake and discard pipelined input.
    StartTls,
    /// Check the password (unless throttled), then open the maildrop.
    Login { user: String, password: String },
    /// Run a SASL exchange, then open the maildrop.
    Authenticate { mechanism: String, initial: Option<String> },
    /// Send "+OK n octets" and message `index` (0-based), whole or headers plus `top` body lines.
    Retrieve { index: usize, top: Option<u32> },
    /// Remove these messages (0-based), then call [`Machine::updated`].
    Update { deleted: Vec<usize> },
    /// Send this line and close the connection.
    Close(String),
}

/// Why a login did not lead to the TRANSACTION state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong user or password.
    Credentials,
    /// Too many recent failures from this address.
    Throttled,
    /// The maildrop is locked by another session.
    InUse,
    /// The maildrop could not be opened for a reason on our side.
    Temporary,
    /// The SASL exchange was cancelled or malformed.
    Cancelled,
}

#[derive(Debug)]
enum State {
    Authorization {
        user: Option<String>,
    },
    /// Waiting for the shell to finish a login or authentication.
    LoggingIn,
    Transaction {
        messages: Vec<Entry>,
        deleted: Vec<bool>,
    },
    Update,
}

/// The session's protocol state.
#[derive(Debug)]
pub struct Machine {
    state: State,
    /// The connection is encrypted.
    tls: bool,
    /// STLS is possible (a certificate is configured and TLS is not active yet).
    stls: bool,
    errors: u32,
    max_errors: u32,
}

impl Machine {
    /// `tls`: implicit TLS (995); `tls_available`: STLS can be offered on a plain connection.
    pub fn new(tls: bool, tls_available: bool, max_errors: u32) -> Machine {
        Machine {
            state: State::Authorization { user: None },
            tls,
            stls: !tls && tls_available,
            errors: 0,
            max_errors,
        }
    }

    pub fn greeting(hostname: &str) -> String {
        format!("+OK {hostname} POP3 server ready")
    }

    /// Whether a user has logged in (the idle timeout, not the login timeout, applies).
    pub fn authenticated(&self) -> bool {
        matches!(self.state, State::Transaction { .. } | State::Update)
    }

    /// The TLS handshake after STLS succeeded.
    /// The connection is TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn tls_started(&mut self) {
        self.tls = true;
        self.stls = false;
        self.state = State::Authorization { user: None };
    }

    /// A line the framing rejected (too long, bare CR/LF, NUL).
    pub fn bad_line(&mut self, e: LineError) -> Action {
        self.error(format!("-ERR {e}"))
    }

    /// A failure reply; too many of them end the session.
    fn error(&mut self, text: String) -> Action {
        self.errors += 1;
        if self.errors >= self.max_errors {
            return Action::Close("-ERR Too many errors, closing connection".into());
        }
        Action::Reply(text)
    }

    fn capabilities(&self) -> Vec<String> {
        let mut caps: Vec<String> = [
            "TOP",
            "UIDL",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "EXPIRE NEVER",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect();
        caps.push("LOGIN-DELAY 0".into());
        if self.stls {
            caps.push("STLS".into());
        }
        if self.tls && matches!(self.state, State::Authorization { .. }) {
            caps.push("USER".into());
            caps.push(format!("SASL {}", MECHANISMS.join(" ")));
        }
        caps.push(format!("IMPLEMENTATION mta {}", env!("CARGO_PKG_VERSION")));
        caps
    }

    /// Handle one command line (without CRLF).
    pub fn line(&mut self, line: &[u8]) -> Action {
        match command::parse(line) {
            Ok(cmd) => self.command(cmd),
            Err(ParseError::Unknown) => self.error("-ERR Unknown command".into()),
            Err(e) => self.error(format!("-ERR {e}")),
        }
    }

    fn command(&mut self, cmd: Command) -> Action {
        match cmd {
            Command::Capa => return Action::Listing("+OK Capability list follows".into(), self.capabilities()),
            Command::Noop => return Action::Reply("+OK".into()),
            _ => {}
        }
        let result = match &mut self.state {
            State::Authorization { user } => {
                let user = user.take();
                return self.authorization(cmd, user);
            }
            State::Transaction { deleted, .. } if cmd == Command::Quit => {
                let deleted = (0..deleted.len()).filter(|&i| deleted[i]).collect();
                self.state = State::Update;
                return Action::Update { deleted };
            }
            State::Transaction { messages, deleted } => transaction(cmd, messages, deleted),
            State::LoggingIn | State::Update => Err(Failure::Busy),
        };
        // A well-formed command that fails (no such message) is the client's
        // ordinary business, not abuse: it does not count towards `max_errors`.
        result.unwrap_or_else(|failure| Action::Reply(failure.to_string()))
    }

    fn authorization(&mut self, cmd: Command, user: Option<String>) -> Action {
        let plaintext_refused = || "-ERR [AUTH] Plaintext authentication disallowed; use STLS first".to_string();
        match cmd {
            Command::Quit => Action::Close("+OK Bye".into()),
            Command::Stls if self.stls => Action::StartTls,
            Command::Stls if self.tls => self.error("-ERR TLS already active".into()),
            Command::Stls => self.error("-ERR TLS not available".into()),
            Command::User(_) | Command::Pass(_) | Command::Auth { .. } if !self.tls => self.error(plaintext_refused()),
            Command::User(name) => {
                self.state = State::Authorization { user: Some(name) };
                Action::Reply("+OK Send PASS".into())
            }
            Command::Pass(password) => match user {
                Some(user) => {
                    self.state = State::LoggingIn;
                    Action::Login { user, password }
                }
                None => self.error("-ERR USER first".into()),
            },
            Command::Auth { mechanism: None, .. } => Action::Listing(
                "+OK Mechanisms follow".into(),
                MECHANISMS.iter().map(|m| m.to_string()).collect(),
            ),
            Command::Auth {
                mechanism: Some(mechanism),
                initial,
            } => {
                if !MECHANISMS.contains(&mechanism.as_str()) {
                    return self.error("-ERR Unsupported authentication mechanism".into());
                }
                self.state = State::LoggingIn;
                Action::Authenticate { mechanism, initial }
            }
            _ => self.error("-ERR Not logged in".into()),
        }
    }

    /// The maildrop of the authenticated user is open: enter TRANSACTION.
    pub fn logged_in(&mut self, messages: Vec<Entry>) -> Action {
        let octets: u64 = messages.iter().map(|m| m.size).sum();
        let reply = format!("+OK Maildrop has {} messages ({octets} octets)", messages.len());
        self.state = State::Transaction {
            deleted: vec![false; messages.len()],
            messages,
        };
        Action::Reply(reply)
    }

    /// The login failed: stay in AUTHORIZATION.
    pub fn refused(&mut self, why: Refusal) -> Action {
        self.state = State::Authorization { user: None };
        let text = match why {
            Refusal::Credentials => "-ERR [AUTH] Authentication failed",
            // Not LOGIN-DELAY: RFC 2449 §8.1.1 keeps that for "logged in too recently".
            Refusal::Throttled => "-ERR [SYS/TEMP] Too many failed logins; try again later",
            Refusal::InUse => "-ERR [IN-USE] Maildrop is locked by another session",
            Refusal::Temporary => "-ERR [SYS/TEMP] Maildrop cannot be opened now; try again later",
            Refusal::Cancelled => "-ERR Authentication cancelled or malformed",
        };
        self.error(text.into())
    }

    /// The size RETR announces for message `index`.
    pub fn size(&self, index: usize) -> u64 {
        match &self.state {
            State::Transaction { messages, .. } => messages.get(index).map_or(0, |m| m.size),
            _ => 0,
        }
    }

    /// The outcome of UPDATE: the connection closes either way.
    pub fn updated(&mut self, ok: bool) -> Action {
        if ok {
            Action::Close("+OK Bye".into())
        } else {
            Action::Close("-ERR [SYS/TEMP] Some deleted messages were not removed".into())
        }
    }
}

/// Why a well-formed command failed; displays as its `-ERR` reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Failure {
    #[error("-ERR No such message")]
    NoSuchMessage,
    #[error("-ERR Message {0} already deleted")]
    AlreadyDeleted(u32),
    #[error("-ERR Already logged in")]
    AlreadyLoggedIn,
    #[error("-ERR STLS only before login")]
    StlsAfterLogin,
    #[error("-ERR Unexpected command")]
    Unexpected,
    #[error("-ERR [SYS/TEMP] Busy")]
    Busy,
}

/// A TRANSACTION-state command other than QUIT.
fn transaction(cmd: Command, messages: &[Entry], deleted: &mut [bool]) -> Result<Action, Failure> {
    let live = |n: u32| -> Result<usize, Failure> {
        let i = n as usize - 1;
        match deleted.get(i) {
            None => Err(Failure::NoSuchMessage),
            Some(true) => Err(Failure::AlreadyDeleted(n)),
            Some(false) => Ok(i),
        }
    };
    let listing = |status: &str, line: &dyn Fn(usize, &Entry) -> String| {
        let lines = messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !deleted[*i])
            .map(|(i, m)| line(i + 1, m))
            .collect();
        Action::Listing(status.into(), lines)
    };
    let (count, octets) = messages
        .iter()
        .zip(deleted.iter())
        .filter(|(_, d)| !**d)
        .fold((0, 0), |(n, o), (m, _)| (n + 1, o + m.size));
    Ok(match cmd {
        Command::Stat => Action::Reply(format!("+OK {count} {octets}")),
        Command::List(Some(n)) => Action::Reply(format!("+OK {n} {}", messages[live(n)?].size)),
        Command::List(None) => listing(&format!("+OK {count} messages ({octets} octets)"), &|n, m| {
            format!("{n} {}", m.size)
        }),
        Command::Uidl(Some(n)) => Action::Reply(format!("+OK {n} {}", messages[live(n)?].uidl)),
        Command::Uidl(None) => listing("+OK Unique-ID listing follows", &|n, m| format!("{n} {}", m.uidl)),
        Command::Retr(n) => Action::Retrieve {
            index: live(n)?,
            top: None,
        },
        Command::Top(n, lines) => Action::Retrieve {
            index: live(n)?,
            top: Some(lines),
        },
        Command::Dele(n) => {
            deleted[live(n)?] = true;
            Action::Reply(format!("+OK Message {n} deleted"))
        }
        Command::Rset => {
            deleted.iter_mut().for_each(|d| *d = false);
            let octets: u64 = messages.iter().map(|m| m.size).sum();
            Action::Reply(format!(
                "+OK Maildrop has {} messages ({octets} octets)",
                messages.len()
            ))
        }
        Command::User(_) | Command::Pass(_) | Command::Auth { .. } => return Err(Failure::AlreadyLoggedIn),
        Command::Stls => return Err(Failure::StlsAfterLogin),
        Command::Capa | Command::Noop | Command::Quit => return Err(Failure::Unexpected),
    })
}

/// Append a message (wire form) byte-stuffed for RETR or TOP, with the
/// terminating ".": whole, or the header, blank line and `top` body lines.
/// A bare LF inside a raw message counts as a line end, so a client that
/// splits at LF never sees an unstuffed ".".
pub fn stuffed(message: &[u8], top: Option<u32>, out: &mut Vec<u8>) {
    let mut body_lines: Option<u32> = None;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if let Some(left) = &mut body_lines {
            if top.is_some_and(|t| *left >= t) {
                break;
            }
            *left += 1;
        }
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        if body_lines.is_none() && (line == b"\r\n" || line == b"\n") {
            body_lines = Some(0);
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                size: 10,
                uidl: "a".into(),
            },
            Entry {
                size: 20,
                uidl: "b".into(),
            },
        ]
    }

    fn logged_in() -> Machine {
        let mut m = Machine::new(true, true, 10);
        assert_eq!(m.line(b"USER u"), Action::Reply("+OK Send PASS".into()));
        assert_eq!(
            m.line(b"PASS p w"),
            Action::Login {
                user: "u".into(),
                password: "p w".into()
            }
        );
        assert_eq!(
            m.logged_in(entries()),
            Action::Reply("+OK Maildrop has 2 messages (30 octets)".into())
        );
        m
    }

    fn reply(a: Action) -> String {
        match a {
            Action::Reply(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plaintext_login_refused_before_tls() {
        let mut m = Machine::new(false, true, 10);
        let Action::Listing(_, caps) = m.line(b"CAPA") else {
            panic!()
        };
        assert!(caps.contains(&"STLS".to_string()));
        assert!(!caps.iter().any(|c| c == "USER" || c.starts_with("SASL")));
        assert!(reply(m.line(b"USER u")).starts_with("-ERR [AUTH]"));
        assert!(reply(m.line(b"AUTH PLAIN")).starts_with("-ERR [AUTH]"));
        assert_eq!(m.line(b"STLS"), Action::StartTls);
        m.tls_started();
        let Action::Listing(_, caps) = m.line(b"CAPA") else {
            panic!()
        };
        assert!(!caps.contains(&"STLS".to_string()));
        assert!(caps.contains(&"USER".to_string()));
        assert!(caps.contains(&"SASL PLAIN LOGIN SCRAM-SHA-256".to_string()));
        assert!(reply(m.line(b"STLS")).starts_with("-ERR"));
    }

    #[test]
    fn expire_and_login_delay_are_advertised_in_both_states() {
        // RFC 2449 §6.5 and §6.7: both capabilities may be announced before
        // and after login; without the USER qualifier the value is the same
        // for every user. We never expire mail and impose no delay between
        // successful logins.
        for mut m in [Machine::new(true, true, 10), logged_in()] {
            let Action::Listing(_, caps) = m.line(b"CAPA") else {
                panic!()
            };
            assert!(caps.contains(&"EXPIRE NEVER".to_string()), "{caps:?}");
            assert!(caps.contains(&"LOGIN-DELAY 0".to_string()), "{caps:?}");
        }
    }

    #[test]
    fn transaction_and_update() {
        let mut m = logged_in();
        assert_eq!(reply(m.line(b"STAT")), "+OK 2 30");
        assert_eq!(reply(m.line(b"DELE 1")), "+OK Message 1 deleted");
        assert_eq!(reply(m.line(b"DELE 1")), "-ERR Message 1 already deleted");
        assert_eq!(reply(m.line(b"RETR 3")), "-ERR No such message");
        assert_eq!(reply(m.line(b"STAT")), "+OK 1 20");
        assert_eq!(
            m.line(b"UIDL"),
            Action::Listing("+OK Unique-ID listing follows".into(), vec!["2 b".into()])
        );
        assert_eq!(m.line(b"TOP 2 5"), Action::Retrieve { index: 1, top: Some(5) });
        assert!(reply(m.line(b"RSET")).starts_with("+OK Maildrop has 2"));
        assert_eq!(reply(m.line(b"LIST 1")), "+OK 1 10");
        m.line(b"DELE 2");
        assert_eq!(m.line(b"QUIT"), Action::Update { deleted: vec![1] });
        assert_eq!(m.updated(true), Action::Close("+OK Bye".into()));
    }

    #[test]
    fn refusals_and_error_limit() {
        let mut m = Machine::new(true, false, 3);
        assert_eq!(reply(m.line(b"PASS x")), "-ERR USER first");
        m.line(b"USER u");
        m.line(b"PASS x");
        assert_eq!(
            reply(m.refused(Refusal::InUse)),
            "-ERR [IN-USE] Maildrop is locked by another session"
        );
        assert!(matches!(m.line(b"BOGUS"), Action::Close(_)));
        assert_eq!(m.line(b"QUIT"), Action::Close("+OK Bye".into()));
    }

    #[test]
    fn failing_valid_commands_do_not_count_as_errors() {
        let mut m = Machine::new(true, false, 3);
        m.line(b"USER u");
        m.line(b"PASS x");
        m.logged_in(entries());
        for _ in 0..10 {
            assert_eq!(reply(m.line(b"RETR 9")), "-ERR No such message");
        }
        m.line(b"DELE 1");
        assert_eq!(reply(m.line(b"DELE 1")), "-ERR Message 1 already deleted");
        assert!(reply(m.line(b"STAT")).starts_with("+OK"));
        m.line(b"BOGUS");
        m.line(b"RETR x");
        assert!(matches!(m.line(b"BOGUS"), Action::Close(_)));
    }

    #[test]
    fn stuffing_and_top() {
        let msg = b"A: b\r\n.hidden: x\r\n\r\n.one\r\ntwo\r\n..three\r\n";
        let mut out = Vec::new();
        stuffed(msg, None, &mut out);
        assert_eq!(out, b"A: b\r\n..hidden: x\r\n\r\n..one\r\ntwo\r\n...three\r\n.\r\n");
        out.clear();
        stuffed(msg, Some(1), &mut out);
        assert_eq!(out, b"A: b\r\n..hidden: x\r\n\r\n..one\r\n.\r\n");
        out.clear();
        stuffed(b"no final newline", Some(0), &mut out);
        assert_eq!(out, b"no final newline\r\n.\r\n");
    }

    proptest! {
        /// Un-stuffing what `stuffed` sends gives the message back, and nothing
        /// before the end looks like the terminator.
        #[test]
        fn stuffing_round_trips(lines in proptest::collection::vec("[.a-z ]{0,6}", 0..12)) {
            let msg: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let mut out = Vec::new();
            stuffed(&msg, None, &mut out);
            let body = out.strip_suffix(b".\r\n").unwrap();
            let mut back = Vec::new();
            for line in body.split_inclusive(|&b| b == b'\n') {
                prop_assert_ne!(line, b".\r\n");
                back.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            }
            prop_assert_eq!(back, msg);
        }

        #[test]
        fn any_input_any_state(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..30)) {
            let mut m = Machine::new(false, true, 1000);
            for (i, line) in lines.iter().enumerate() {
                if i == 3 { m.tls_started(); }
                match m.line(line) {
                    Action::Login { .. } | Action::Authenticate { .. } => { m.logged_in(entries()); }
                    Action::Update { deleted } => prop_assert!(deleted.iter().all(|&d| d < 2)),
                    Action::Retrieve { index, .. } => prop_assert!(index < 2),
                    _ => {}
                }
            }
        }
    }
}
