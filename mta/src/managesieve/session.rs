//! The ManageSieve session (RFC 5804): the non-authenticated and
//! authenticated states, STARTTLS, the capability list, and what each
//! command answers. Framed commands in, [`Action`]s out; the shell does
//! TLS, SASL exchanges and opening the user's folder, and runs the script
//! requests through [`perform`] off the reactor (the one part here that
//! touches files, through `sieve::scripts`).

use super::command::{self, Command};
use super::response::{self, Code, Response, Status};
use crate::imap::framer::Frame;
use crate::sieve::scripts::{self, ScriptError};
use crate::sieve::{self, compile::EXTENSIONS, interp::MAX_REDIRECTS};
use std::path::PathBuf;

/// The SASL mechanisms offered: those of IMAP and POP3.
pub use crate::pop3::machine::MECHANISMS;

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes.
    Send(Vec<u8>),
    /// Send OK, run the TLS handshake (dropping pipelined input), then send [`Session::tls_started`].
    StartTls,
    /// Run a SASL exchange, then report with [`Session::logged_in`] or [`Session::refused`].
    Authenticate { mechanism: String, initial: Option<String> },
    /// Run this against the user's scripts with [`perform`] and send what it returns.
    Scripts(Request),
    /// Send these bytes and close the connection.
    Close(Vec<u8>),
}

/// A command that reads or changes the user's scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Put { name: String, script: Vec<u8> },
    Check(Vec<u8>),
    List,
    SetActive(Option<String>),
    Get(String),
    Delete(String),
    Rename { from: String, to: String },
}

/// Why an AUTHENTICATE did not log the user in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong user or password.
    Credentials,
    /// Too many recent failures from this address.
    Throttled,
    /// `*`, or an answer that is not base64 or not what the mechanism expects.
    Cancelled,
    /// The account's mail is not in a Maildir, where delivery runs Sieve.
    NoMaildir,
    /// A system user while mta runs unprivileged: their files are theirs alone.
    SystemUser,
}

/// The session's protocol state.
#[derive(Debug)]
pub struct Session {
    hostname: String,
    /// The connection is encrypted.
    tls: bool,
    /// A certificate is configured, so STARTTLS can be offered.
    tls_available: bool,
    /// Set while an AUTHENTICATE runs and once it succeeded.
    authenticating: bool,
    user: Option<String>,
    errors: u32,
    max_errors: u32,
}

impl Session {
    pub fn new(hostname: &str, tls_available: bool, max_errors: u32) -> Session {
        Session {
            hostname: hostname.to_string(),
            tls: false,
            tls_available,
            authenticating: false,
            user: None,
            errors: 0,
            max_errors,
        }
    }

    /// The capabilities and the OK a client reads on connecting.
    pub fn greeting(&self) -> Vec<u8> {
        let mut out = self.capabilities();
        Response::ok(format!("{} ManageSieve ready", self.hostname)).encode(&mut out);
        out
    }

    /// The user once authenticated.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The TLS handshake after STARTTLS succeeded: the capabilities again (RFC 5804 §2.2).
    pub fn tls_started(&mut self) -> Vec<u8> {
        self.tls = true;
        let mut out = self.capabilities();
        Response::ok("TLS active").encode(&mut out);
        out
    }

    /// The capability lines (RFC 5804 §1.7), without the OK.
    fn capabilities(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let implementation = format!("mta {}", env!("CARGO_PKG_VERSION"));
        response::capability("IMPLEMENTATION", Some(&implementation), &mut out);
        if self.user.is_none() {
            // Like IMAP and POP3: no mechanism before TLS.
            let mechanisms = if self.tls { MECHANISMS.join(" ") } else { String::new() };
            response::capability("SASL", Some(&mechanisms), &mut out);
        }
        response::capability("SIEVE", Some(&EXTENSIONS.join(" ")), &mut out);
        if !self.tls && self.tls_available {
            response::capability("STARTTLS", None, &mut out);
        }
        response::capability("MAXREDIRECTS", Some(&MAX_REDIRECTS.to_string()), &mut out);
        if let Some(user) = &self.user {
            response::capability("OWNER", Some(user), &mut out);
        }
        response::capability("UNAUTHENTICATE", None, &mut out);
        response::capability("VERSION", Some("1.0"), &mut out);
        out
    }

    /// A failure the client should not repeat; too many of them end the session.
    fn error(&mut self, response: Response) -> Action {
        self.errors += 1;
        if self.errors >= self.max_errors {
            return Action::Close(Response::bye("Too many errors").to_bytes());
        }
        Action::Send(response.to_bytes())
    }

    /// What the framer made of the client's input.
    pub fn frame(&mut self, frame: Frame) -> Option<Action> {
        Some(match frame {
            Frame::Command(bytes) => self.command_bytes(&bytes),
            // No continuation in ManageSieve: a `{N}` literal just follows.
            Frame::Continue => return None,
            Frame::TooLong { .. } => self.error(Response::no("Command line too long")),
            // Clients send literals without waiting, so its bytes are on the way.
            Frame::TooBig { .. } => Action::Close(
                Response::bye(format!("Scripts are limited to {} bytes", sieve::MAX_SCRIPT))
                    .with(Code::QuotaMaxSize)
                    .to_bytes(),
            ),
        })
    }

    fn command_bytes(&mut self, bytes: &[u8]) -> Action {
        match command::parse(bytes) {
            Ok(command) => self.command(command),
            Err(e) => self.error(Response::no(e.to_string())),
        }
    }

    fn command(&mut self, command: Command) -> Action {
        let send = |r: Response| Action::Send(r.to_bytes());
        match command {
            Command::Capability => {
                let mut out = self.capabilities();
                Response::ok("Capability completed").encode(&mut out);
                Action::Send(out)
            }
            Command::Logout => Action::Close(Response::ok("Logout completed").to_bytes()),
            Command::Noop(tag) => {
                let ok = Response::ok("Done");
                send(match tag {
                    Some(tag) => ok.with(Code::Tag(tag)),
                    None => ok,
                })
            }
            Command::StartTls if self.tls => self.error(Response::no("TLS is already active")),
            Command::StartTls if !self.tls_available => self.error(Response::no("TLS is not available")),
            Command::StartTls if self.user.is_some() => self.error(Response::no("STARTTLS only before AUTHENTICATE")),
            Command::StartTls => Action::StartTls,
            Command::Authenticate { .. } if self.authenticating => self.error(Response::no("Already authenticated")),
            Command::Authenticate { .. } if !self.tls => {
                self.error(Response::no("Use STARTTLS before AUTHENTICATE").with(Code::EncryptNeeded))
            }
            Command::Authenticate { mechanism, .. } if !MECHANISMS.contains(&mechanism.as_str()) => {
                self.error(Response::no(format!("Unsupported mechanism {mechanism}")))
            }
            Command::Authenticate { mechanism, initial } => {
                self.authenticating = true;
                Action::Authenticate { mechanism, initial }
            }
            _ if self.user.is_none() => self.error(Response::no("Authenticate first")),
            Command::Unauthenticate => {
                self.user = None;
                self.authenticating = false;
                send(Response::ok("Unauthenticated"))
            }
            Command::HaveSpace { size, .. } if size > sieve::MAX_SCRIPT as u64 => send(too_large()),
            Command::HaveSpace { .. } => send(Response::ok("Putscript would succeed")),
            Command::PutScript { name, script } => Action::Scripts(Request::Put { name, script }),
            Command::CheckScript(script) => Action::Scripts(Request::Check(script)),
            Command::ListScripts => Action::Scripts(Request::List),
            Command::SetActive(name) => Action::Scripts(Request::SetActive(name)),
            Command::GetScript(name) => Action::Scripts(Request::Get(name)),
            Command::DeleteScript(name) => Action::Scripts(Request::Delete(name)),
            Command::RenameScript { from, to } => Action::Scripts(Request::Rename { from, to }),
        }
    }

    /// The SASL exchange proved `user` and its folder is open.
    pub fn logged_in(&mut self, user: String) -> Action {
        self.user = Some(user);
        Action::Send(Response::ok("Logged in").to_bytes())
    }

    /// The AUTHENTICATE failed: stay non-authenticated.
    pub fn refused(&mut self, why: Refusal) -> Action {
        self.authenticating = false;
        self.error(match why {
            Refusal::Credentials => Response::no("Authentication failed"),
            Refusal::Throttled => Response::no("Too many failed logins; try again later").with(Code::TryLater),
            Refusal::Cancelled => Response::no("Authentication cancelled or malformed"),
            Refusal::NoMaildir => Response::no("This account's mail is not in a Maildir, where Sieve runs"),
            Refusal::SystemUser => {
                Response::no("Sieve scripts of system users cannot be managed while mta runs unprivileged")
            }
        })
    }
}

fn too_large() -> Response {
    Response::no(format!("Scripts are limited to {} bytes", sieve::MAX_SCRIPT)).with(Code::QuotaMaxSize)
}

/// The scripts of one user: where they are, and who owns what is made there.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The user's Maildir (scripts are in its `sieve/`).
    pub maildir: PathBuf,
    /// The system account to hand new files to when running as root.
    pub owner: Option<(u32, u32)>,
}

/// Run `request` against `folder`: the response bytes. Blocking (files, and
/// compiling up to a megabyte of script).
pub fn perform(request: Request, folder: &Folder) -> Vec<u8> {
    let md = folder.maildir.as_path();
    let done = |result: Result<(), ScriptError>, ok: &str| outcome(result.map(|()| Response::ok(ok))).to_bytes();
    match request {
        Request::Put { script, .. } | Request::Check(script) if script.len() > sieve::MAX_SCRIPT => {
            too_large().to_bytes()
        }
        Request::Put { name, script } => match sieve::parse(&script) {
            Err(e) => Response::no(e.to_string()).to_bytes(),
            Ok(_) => done(scripts::write(md, &name, &script, folder.owner), "Script stored"),
        },
        Request::Check(script) => match sieve::parse(&script) {
            Err(e) => Response::no(e.to_string()),
            Ok(_) => Response::ok("Script is valid"),
        }
        .to_bytes(),
        Request::List => match scripts::list(md) {
            Ok(names) => {
                let mut out = Vec::new();
                for (name, active) in names {
                    response::string(name.as_bytes(), &mut out);
                    if active {
                        out.extend_from_slice(b" ACTIVE");
                    }
                    out.extend_from_slice(b"\r\n");
                }
                Response::ok("Listscripts completed").encode(&mut out);
                out
            }
            Err(e) => outcome(Err(e)).to_bytes(),
        },
        Request::SetActive(None) => done(
            scripts::set_active(md, None).map_err(|e| ScriptError::Store(crate::store::io_err(md, e))),
            "No script is active",
        ),
        Request::SetActive(Some(name)) => {
            let result = match scripts::path(md, &name).is_file() {
                false => Err(ScriptError::Nonexistent(name.clone())),
                true => scripts::set_active(md, Some(&name))
                    .map_err(|e| ScriptError::Store(crate::store::io_err(md.join(scripts::ACTIVE), e))),
            };
            done(result, "Script is active")
        }
        Request::Get(name) => match scripts::read(md, &name) {
            Ok(text) => {
                let mut out = Vec::new();
                response::literal(&text, &mut out);
                out.extend_from_slice(b"\r\n");
                Response::ok("Getscript completed").encode(&mut out);
                out
            }
            Err(e) => outcome(Err(e)).to_bytes(),
        },
        Request::Delete(name) => done(scripts::delete(md, &name), "Script deleted"),
        Request::Rename { from, to } => done(scripts::rename(md, &from, &to), "Script renamed"),
    }
}

/// The response to a script operation's result.
fn outcome(result: Result<Response, ScriptError>) -> Response {
    let e = match result {
        Ok(response) => return response,
        Err(e) => e,
    };
    let code = match &e {
        ScriptError::Nonexistent(_) => Code::Nonexistent,
        ScriptError::AlreadyExists(_) => Code::AlreadyExists,
        ScriptError::Active(_) => Code::Active,
        ScriptError::Store(store) => {
            tracing::error!("managesieve: {store}");
            return Response::new(Status::No, Some(Code::TryLater), "Scripts cannot be changed now");
        }
    };
    Response::no(capitalized(&e.to_string())).with(code)
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(action: Action) -> String {
        match action {
            Action::Send(bytes) | Action::Close(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn command(s: &mut Session, line: &[u8]) -> Action {
        s.frame(Frame::Command(line.to_vec())).unwrap()
    }

    fn logged_in() -> Session {
        let mut s = Session::new("mx.example", true, 5);
        assert_eq!(command(&mut s, b"STARTTLS"), Action::StartTls);
        assert!(s.tls_started().ends_with(b"OK \"TLS active\"\r\n"));
        assert_eq!(
            command(&mut s, b"AUTHENTICATE \"PLAIN\""),
            Action::Authenticate {
                mechanism: "PLAIN".into(),
                initial: None
            }
        );
        assert_eq!(text(s.logged_in("alice@example.org".into())), "OK \"Logged in\"\r\n");
        s
    }

    #[test]
    fn authenticate_waits_for_tls_and_the_capabilities_follow_the_state() {
        let mut s = Session::new("mx.example", true, 5);
        let greeting = String::from_utf8(s.greeting()).unwrap();
        assert!(greeting.contains("\"SASL\" \"\"\r\n\"SIEVE\" \"fileinto"), "{greeting}");
        assert!(greeting.contains("\"STARTTLS\"\r\n"));
        assert!(greeting.ends_with("OK \"mx.example ManageSieve ready\"\r\n"));
        assert_eq!(
            text(command(&mut s, b"AUTHENTICATE \"PLAIN\" \"AGEAYg==\"")),
            "NO (ENCRYPT-NEEDED) \"Use STARTTLS before AUTHENTICATE\"\r\n"
        );
        assert_eq!(text(command(&mut s, b"LISTSCRIPTS")), "NO \"Authenticate first\"\r\n");
        let mut s = logged_in();
        let caps = text(command(&mut s, b"CAPABILITY"));
        assert!(!caps.contains("SASL") && !caps.contains("STARTTLS"), "{caps}");
        assert!(caps.contains("\"OWNER\" \"alice@example.org\"\r\n"));
        assert_eq!(text(command(&mut s, b"STARTTLS")), "NO \"TLS is already active\"\r\n");
        assert_eq!(
            text(command(&mut s, b"AUTHENTICATE \"PLAIN\"")),
            "NO \"Already authenticated\"\r\n"
        );
        assert_eq!(command(&mut s, b"LISTSCRIPTS"), Action::Scripts(Request::List));
        assert_eq!(text(command(&mut s, b"UNAUTHENTICATE")), "OK \"Unauthenticated\"\r\n");
        assert_eq!(s.user(), None);
        assert!(matches!(
            command(&mut s, b"AUTHENTICATE \"SCRAM-SHA-256\""),
            Action::Authenticate { .. }
        ));
        assert_eq!(
            text(s.refused(Refusal::Throttled)),
            "NO (TRYLATER) \"Too many failed logins; try again later\"\r\n"
        );
    }

    #[test]
    fn errors_are_counted_and_oversized_literals_end_the_session() {
        let mut s = Session::new("mx.example", false, 3);
        assert_eq!(text(command(&mut s, b"STARTTLS")), "NO \"TLS is not available\"\r\n");
        assert_eq!(text(command(&mut s, b"BOGUS")), "NO \"Unknown command\"\r\n");
        assert_eq!(s.frame(Frame::Continue), None);
        assert_eq!(
            text(command(&mut s, b"NOOP")),
            "OK \"Done\"\r\n",
            "a good command is not counted"
        );
        assert_eq!(
            text(command(&mut s, b"GETSCRIPT \"a/b\"")),
            "BYE \"Too many errors\"\r\n"
        );
        let mut s = logged_in();
        let big = s.frame(Frame::TooBig { tag: None, fatal: true }).unwrap();
        assert_eq!(
            text(big),
            "BYE (QUOTA/MAXSIZE) \"Scripts are limited to 1048576 bytes\"\r\n"
        );
    }

    #[test]
    fn script_requests_against_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder {
            maildir: dir.path().to_path_buf(),
            owner: None,
        };
        let run = |r: Request| String::from_utf8(perform(r, &folder)).unwrap();
        let put = |name: &str, script: &str| Request::Put {
            name: name.into(),
            script: script.as_bytes().to_vec(),
        };
        assert_eq!(
            run(put("bad", "keep;\nif true {\n  fileinto \"x\";\n}")),
            "NO \"line 3: fileinto needs require \\\"fileinto\\\"\"\r\n"
        );
        assert_eq!(run(put("main", "keep;\r\n")), "OK \"Script stored\"\r\n");
        assert_eq!(run(Request::List), "\"main\"\r\nOK \"Listscripts completed\"\r\n");
        assert_eq!(
            run(Request::SetActive(Some("main".into()))),
            "OK \"Script is active\"\r\n"
        );
        assert_eq!(
            run(Request::Get("main".into())),
            "{7}\r\nkeep;\r\n\r\nOK \"Getscript completed\"\r\n"
        );
        assert_eq!(
            run(Request::Delete("main".into())),
            "NO (ACTIVE) \"Script \\\"main\\\" is active\"\r\n"
        );
        assert_eq!(run(Request::SetActive(None)), "OK \"No script is active\"\r\n");
        assert_eq!(run(Request::Delete("main".into())), "OK \"Script deleted\"\r\n");
        assert_eq!(
            run(Request::Get("main".into())),
            "NO (NONEXISTENT) \"No script \\\"main\\\"\"\r\n"
        );
        let huge = vec![b'#'; sieve::MAX_SCRIPT + 1];
        assert_eq!(
            run(Request::Check(huge)),
            "NO (QUOTA/MAXSIZE) \"Scripts are limited to 1048576 bytes\"\r\n"
        );
    }
}
