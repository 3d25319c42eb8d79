//! The ManageSieve listener and the tokio shell around [`Session`]: accept,
//! command framing with bounded literals, timeouts, STARTTLS, SASL
//! exchanges with IMAP's users and throttling, and the script requests
//! (off the reactor).

use super::command;
use super::response::{self, Code, Response};
use super::session::{Action, Folder, Refusal, Session, perform};
use crate::auth::sasl::{self, Challenger, Outcome};
use crate::config::MailboxFormat;
use crate::imap::framer::{Frame, Framer, Limits};
use crate::net::{self, Connection, Gate, Incoming, ReadError};
use crate::service::Shared;
use crate::sieve::MAX_SCRIPT;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Before login: commands and SASL responses only, with room for any
/// PLAIN or SCRAM-SHA-256 response.
const UNAUTHENTICATED: Limits = Limits {
    text: 16 << 10,
    literals: 16 << 10,
};

/// Once authenticated: a script up to twice the limit is read, so that one
/// slightly over it gets `NO (QUOTA/MAXSIZE)`; larger ones end the session.
const AUTHENTICATED: Limits = Limits {
    text: 16 << 10,
    literals: 2 * MAX_SCRIPT as u64,
};

/// Accept ManageSieve connections on `listener` forever.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, gate: Arc<Gate>) {
    let config = &shared.config.managesieve;
    let spec = net::Listener {
        service: "managesieve",
        per_client: config.max_connections_per_client,
        implicit_tls: false,
        handshake_timeout: config.login_timeout,
        refusals: (
            "BYE (TRYLATER) \"Too many connections from your address\"",
            "BYE (TRYLATER) \"Too many connections, try again later\"",
        ),
        proxy_from: Vec::new(),
    };
    let tls = shared.tls.clone();
    net::accept_loop(listener, Arc::new(spec), tls, gate, move |c: Incoming| {
        let config = &shared.config;
        let mut shell = Shell {
            conn: Connection::new(c.io, Framer::new(UNAUTHENTICATED)),
            session: Session::new(&config.hostname, shared.tls.is_some(), config.managesieve.max_errors),
            shared: Arc::clone(&shared),
            peer: c.client,
            folder: None,
        };
        async move { shell.run().await }
    })
    .await;
}

/// Why the session ends.
enum End {
    /// Send what is buffered, then close.
    Quit,
    /// The client went away.
    Closed,
}

type Flow = Result<(), End>;

struct Shell {
    conn: Connection<Framer>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    session: Session,
    /// The logged-in user's scripts.
    folder: Option<Folder>,
}

impl Shell {
    async fn run(&mut self) {
        let greeting = self.session.greeting();
        self.conn.out.extend_from_slice(&greeting);
        if let Err(End::Quit) = self.serve().await {
            let _ = self.conn.flush().await;
        }
        self.conn.shutdown().await;
        tracing::debug!("managesieve: session from {} ended", self.peer);
    }

    async fn serve(&mut self) -> Flow {
        loop {
            let frame = self.next_frame().await?;
            if let Some(action) = self.session.frame(frame) {
                self.act(action).await?;
            }
            // UNAUTHENTICATE, a login: the limits follow the state.
            self.conn.input.limits = match self.session.user() {
                Some(_) => AUTHENTICATED,
                None => UNAUTHENTICATED,
            };
        }
    }

    /// The next frame, flushing responses whenever the client's input runs dry.
    async fn next_frame(&mut self) -> Result<Frame, End> {
        let config = &self.shared.config.managesieve;
        let timeout = match self.session.user() {
            Some(_) => config.idle_timeout,
            None => config.login_timeout,
        };
        loop {
            if let Some(frame) = self.conn.input.next_frame() {
                return Ok(frame);
            }
            match self.conn.fill(timeout).await {
                Ok(()) => {}
                Err(ReadError::Closed) => return Err(End::Closed),
                Err(ReadError::Timeout) => {
                    Response::bye("Idle for too long").encode(&mut self.conn.out);
                    return Err(End::Quit);
                }
            }
        }
    }

    async fn act(&mut self, action: Action) -> Flow {
        match action {
            Action::Send(bytes) => self.conn.out.extend_from_slice(&bytes),
            Action::Close(bytes) => {
                self.conn.out.extend_from_slice(&bytes);
                return Err(End::Quit);
            }
            Action::StartTls => return self.starttls().await,
            Action::Authenticate { mechanism, initial } => {
                let action = self.authenticate(&mechanism, initial).await?;
                return Box::pin(self.act(action)).await;
            }
            Action::Scripts(request) => {
                let Some(folder) = self.folder.clone() else {
                    return Err(End::Closed);
                };
                let bytes = tokio::task::spawn_blocking(move || perform(request, &folder))
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!("managesieve: script request failed: {e}");
                        Response::no("Scripts cannot be changed now")
                            .with(Code::TryLater)
                            .to_bytes()
                    });
                self.conn.out.extend_from_slice(&bytes);
            }
        }
        Ok(())
    }

    async fn starttls(&mut self) -> Flow {
        let Some(tls) = self.shared.tls.clone() else {
            return Err(End::Closed);
        };
        Response::ok("Begin TLS negotiation").encode(&mut self.conn.out);
        let timeout = self.shared.config.managesieve.login_timeout;
        match self.conn.start_tls(&tls, timeout).await {
            Ok(()) => {
                let capabilities = self.session.tls_started();
                self.conn.out.extend_from_slice(&capabilities);
                Ok(())
            }
            Err(e) => {
                tracing::info!("managesieve: TLS handshake with {} failed: {e}", self.peer);
                Err(End::Closed)
            }
        }
    }

    /// RFC 5804 §2.1 AUTHENTICATE: challenges and answers are strings.
    async fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> Result<Action, End> {
        let ip = self.peer.ip();
        if self.shared.auth.throttled(ip) {
            return Ok(self.session.refused(Refusal::Throttled));
        }
        let shared = Arc::clone(&self.shared);
        let request = sasl::Request {
            mechanism,
            initial: initial.as_deref(),
            ip: Some(ip),
            hostname: &shared.config.hostname,
        };
        let user = match sasl::drive(&shared.auth, request, self).await? {
            Outcome::Proved(user) => user,
            Outcome::Refused => {
                if self.shared.auth.throttled(ip) {
                    return Ok(self.session.refused(Refusal::Throttled));
                }
                self.shared.auth.record_failure(ip);
                tracing::warn!("managesieve: authentication failed from {ip}");
                return Ok(self.session.refused(Refusal::Credentials));
            }
            Outcome::Unsupported | Outcome::InitialNotAllowed | Outcome::Cancelled | Outcome::Malformed => {
                return Ok(self.session.refused(Refusal::Cancelled));
            }
        };
        self.shared.auth.record_success(ip);
        if crate::privsep::client::serves_session(&user) {
            tracing::info!("managesieve: {user:?}: system users' scripts are out of reach of the unprivileged daemon");
            return Ok(self.session.refused(Refusal::SystemUser));
        }
        let config = Arc::clone(&self.shared.config);
        let name = user.clone();
        let location = tokio::task::spawn_blocking(move || crate::account::locate(&config, &name))
            .await
            .ok()
            .flatten();
        match location {
            Some(l) if matches!(l.format, MailboxFormat::Maildir) => {
                tracing::info!("managesieve: {user:?} logged in from {ip}");
                self.folder = Some(Folder {
                    maildir: l.path,
                    owner: l.owner.map(|o| (o.uid, o.gid)),
                });
                Ok(self.session.logged_in(user))
            }
            _ => {
                tracing::info!("managesieve: {user:?} has no Maildir for Sieve scripts");
                Ok(self.session.refused(Refusal::NoMaildir))
            }
        }
    }
}

/// ManageSieve challenges (RFC 5804 §2.1): a base64 string, answered by a
/// string (or `"*"` to cancel).
impl Challenger for Shell {
    type Error = End;
    async fn challenge(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, End> {
        response::string(B64.encode(challenge).as_bytes(), &mut self.conn.out);
        self.conn.out.extend_from_slice(b"\r\n");
        let frame = loop {
            match self.next_frame().await? {
                Frame::Continue => {}
                frame => break frame,
            }
        };
        Ok(match frame {
            Frame::Command(bytes) => command::sasl_response(&bytes).ok().and_then(|s| sasl::decode(&s)),
            _ => None,
        })
    }
}
