//! The POP3 listeners and the tokio shell around [`Machine`]: accept,
//! implicit TLS on 995, line framing, timeouts, STLS, password checks and
//! SASL exchanges, and the maildrop calls (off the reactor).

use super::command::{MAX_LINE, MAX_SASL_LINE};
use super::machine::{self, Action, Machine, Refusal};
use super::maildrop::{Maildrop, MaildropError};
use crate::auth::sasl::{self, Challenger, Outcome};
use crate::net::{self, Connection, Gate, Incoming, ReadError};
use crate::privsep::protocol::{Protocol, SessionStart};
use crate::service::Shared;
use crate::smtp::lines::{LineBuffer, LineError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Replies buffered beyond this are written out before the next command runs.
const FLUSH_AT: usize = 64 * 1024;

/// Accept connections on `listener` forever; `implicit_tls` for POP3S.
pub async fn serve(listener: TcpListener, implicit_tls: bool, shared: Arc<Shared>, gate: Arc<Gate>) {
    let spec = net::Listener {
        service: "pop3",
        per_client: shared.config.pop3.max_connections_per_client,
        implicit_tls,
        handshake_timeout: shared.config.pop3.login_timeout,
        refusals: (
            "-ERR [SYS/TEMP] Too many connections from your address",
            "-ERR [SYS/TEMP] Too many connections, try again later",
        ),
        proxy_from: Vec::new(),
    };
    let tls = shared.tls.clone();
    let name = if implicit_tls { "pop3s" } else { "pop3" };
    net::accept_loop(listener, Arc::new(spec), tls, gate, move |c: Incoming| {
        shared.stats.count(crate::stats::Event::Session(name), 1);
        let machine = Machine::new(c.tls, shared.tls.is_some(), shared.config.pop3.max_errors);
        let session = Session::new(c.io, Arc::clone(&shared), c.client, machine);
        async move { session.run().await }
    })
    .await;
}

/// Why the session ends.
enum End {
    /// Send what is buffered, then close.
    Quit,
    /// The client went away.
    Closed,
    /// A system user's session goes on in a child of the privileged helper.
    HandOff(tokio::net::UnixStream),
}

type Flow = Result<(), End>;

struct Session {
    conn: Connection<LineBuffer>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    machine: Machine,
    maildrop: Option<Arc<Maildrop>>,
}

/// Serve an already-authenticated system user in the child the privileged
/// helper started: answer the front's PASS or AUTH with the maildrop
/// opened here, as the user.
pub async fn resume(io: Box<dyn net::Io>, shared: Arc<Shared>, peer: SocketAddr, tls: bool, user: String) {
    let machine = Machine::new(tls, false, shared.config.pop3.max_errors);
    let mut session = Session::new(io, shared, peer, machine);
    let opened = match session.login(Some(user), Refusal::Temporary).await {
        Ok(action) => session.act(action).await,
        Err(end) => Err(end),
    };
    if opened.is_err() || !session.machine.authenticated() {
        let _ = session.flush().await;
        return;
    }
    session.serve_to_end().await;
}

impl Session {
    fn new(io: Box<dyn net::Io>, shared: Arc<Shared>, peer: SocketAddr, machine: Machine) -> Session {
        Session {
            conn: Connection::new(io, LineBuffer::new(MAX_LINE - 2)),
            shared,
            peer,
            machine,
            maildrop: None,
        }
    }

    async fn run(mut self) {
        self.reply(&Machine::greeting(&self.shared.config.hostname));
        self.serve_to_end().await;
    }

    async fn serve_to_end(mut self) {
        match self.serve().await {
            Err(End::Quit) => {
                let _ = self.flush().await;
            }
            Err(End::HandOff(child)) => {
                let _ = self.flush().await;
                crate::privsep::client::relay(self.conn.into_io(), child).await;
                return;
            }
            _ => {}
        }
        self.conn.shutdown().await;
        tracing::debug!("pop3: session from {} ended", self.peer);
    }

    async fn serve(&mut self) -> Flow {
        loop {
            let action = match self.next_line().await? {
                Ok(line) => self.machine.line(&line),
                Err(e) => self.machine.bad_line(e),
            };
            self.act(action).await?;
        }
    }

    fn reply(&mut self, text: &str) {
        self.conn.reply(text);
    }

    async fn flush(&mut self) -> Flow {
        self.conn.flush().await.map_err(|_| End::Closed)
    }

    /// The next line, flushing replies whenever the client's input runs dry.
    async fn next_line(&mut self) -> Result<Result<Vec<u8>, LineError>, End> {
        let pop3 = &self.shared.config.pop3;
        let timeout = if self.machine.authenticated() {
            pop3.idle_timeout
        } else {
            pop3.login_timeout
        };
        loop {
            if let Some(line) = self.conn.input.next_line() {
                return Ok(line);
            }
            match self.conn.fill(timeout).await {
                Ok(()) => {}
                Err(ReadError::Closed) => return Err(End::Closed),
                Err(ReadError::Timeout) => {
                    self.reply("-ERR Autologout; idle for too long");
                    return Err(End::Quit);
                }
            }
        }
    }

    async fn act(&mut self, action: Action) -> Flow {
        match action {
            Action::Reply(text) => self.reply(&text),
            Action::Listing(status, lines) => {
                self.reply(&status);
                for line in lines {
                    self.reply(&line);
                }
                self.reply(".");
            }
            Action::StartTls => return self.starttls().await,
            Action::Login { user, password } => {
                let ok = self.check_password(&user, password).await;
                let action = self.login(ok.then_some(user), Refusal::Credentials).await?;
                return Box::pin(self.act(action)).await;
            }
            Action::Authenticate { mechanism, initial } => {
                let action = self.authenticate(&mechanism, initial).await?;
                return Box::pin(self.act(action)).await;
            }
            Action::Retrieve { index, top } => {
                let size = self.machine.size(index);
                match self.blocking(move |m| m.read(index, top.is_none())).await {
                    Ok(message) => {
                        self.reply(&format!("+OK {size} octets"));
                        machine::stuffed(&message, top, &mut self.conn.out);
                        if self.conn.out.len() > FLUSH_AT {
                            self.flush().await?;
                        }
                    }
                    Err(e) => {
                        tracing::error!("pop3: reading message {} for {}: {e}", index + 1, self.peer);
                        self.reply("-ERR [SYS/TEMP] Message cannot be read now");
                    }
                }
            }
            Action::Update { deleted } => {
                let result = self.blocking(move |m| m.remove(&deleted)).await;
                if let Err(e) = &result {
                    tracing::error!("pop3: removing deleted messages for {}: {e}", self.peer);
                }
                let action = self.machine.updated(result.is_ok());
                return Box::pin(self.act(action)).await;
            }
            Action::Close(text) => {
                self.reply(&text);
                return Err(End::Quit);
            }
        }
        Ok(())
    }

    /// Run a maildrop call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Maildrop) -> Result<T, MaildropError> + Send + 'static,
    ) -> Result<T, MaildropError> {
        let Some(maildrop) = self.maildrop.clone() else {
            return Err(MaildropError::Temporary("no maildrop open".into()));
        };
        tokio::task::spawn_blocking(move || f(&maildrop))
            .await
            .unwrap_or_else(|e| Err(MaildropError::Temporary(e.to_string())))
    }

    async fn starttls(&mut self) -> Flow {
        let Some(tls) = self.shared.tls.clone() else {
            return Err(End::Closed);
        };
        self.reply("+OK Begin TLS negotiation");
        match self.conn.start_tls(&tls, self.shared.config.pop3.login_timeout).await {
            Ok(()) => {
                self.machine.tls_started();
                Ok(())
            }
            Err(e) => {
                tracing::info!("pop3: TLS handshake with {} failed: {e}", self.peer);
                Err(End::Closed)
            }
        }
    }

    async fn check_password(&mut self, user: &str, password: String) -> bool {
        if self.shared.auth.throttled(self.peer.ip()) {
            return false;
        }
        self.shared.auth.check_password(user, password).await
    }

    /// After a password check or SASL exchange: `user` if it proved itself.
    /// Opens the maildrop and enters TRANSACTION, or refuses with `failure`.
    async fn login(&mut self, user: Option<String>, failure: Refusal) -> Result<Action, End> {
        let ip = self.peer.ip();
        let Some(user) = user else {
            if self.shared.auth.throttled(ip) {
                return Ok(self.machine.refused(Refusal::Throttled));
            }
            self.shared.auth.record_failure(ip);
            tracing::warn!("pop3: authentication failed from {ip}");
            return Ok(self.machine.refused(failure));
        };
        self.shared.auth.record_success(ip);
        if crate::privsep::client::serves_session(&user) {
            return self.hand_off(user).await;
        }
        let config = Arc::clone(&self.shared.config);
        let u = user.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let location = crate::account::locate(&config, &u)
                .ok_or_else(|| MaildropError::Temporary(format!("no mailbox for {u:?}")))?;
            Maildrop::open(&location)
        })
        .await
        .unwrap_or_else(|e| Err(MaildropError::Temporary(e.to_string())));
        match opened {
            Ok((maildrop, entries)) => {
                tracing::info!("pop3: {user:?} logged in from {ip} ({} messages)", entries.len());
                self.maildrop = Some(Arc::new(maildrop));
                Ok(self.machine.logged_in(entries))
            }
            Err(MaildropError::InUse) => {
                tracing::info!("pop3: maildrop of {user:?} is in use");
                Ok(self.machine.refused(Refusal::InUse))
            }
            Err(e) => {
                tracing::error!("pop3: opening the maildrop of {user:?}: {e}");
                Ok(self.machine.refused(Refusal::Temporary))
            }
        }
    }

    /// One client response in a SASL exchange: `None` for `*` or garbage.
    async fn sasl_response(&mut self) -> Result<Option<Vec<u8>>, End> {
        self.conn.input.set_limit(MAX_SASL_LINE);
        let line = self.next_line().await;
        self.conn.input.set_limit(MAX_LINE - 2);
        match line? {
            Ok(line) => Ok(std::str::from_utf8(&line).ok().and_then(sasl::decode)),
            Err(_) => Ok(None),
        }
    }

    /// RFC 5034 AUTH: "+ base64" challenges, an optional initial response.
    async fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> Result<Action, End> {
        if self.shared.auth.throttled(self.peer.ip()) {
            return Ok(self.machine.refused(Refusal::Throttled));
        }
        let shared = Arc::clone(&self.shared);
        let request = sasl::Request {
            mechanism,
            initial: initial.as_deref(),
            ip: Some(self.peer.ip()),
            hostname: &shared.config.hostname,
        };
        match sasl::drive(&shared.auth, request, self).await? {
            Outcome::Proved(user) => self.login(Some(user), Refusal::Credentials).await,
            Outcome::Refused => self.login(None, Refusal::Credentials).await,
            Outcome::Unsupported | Outcome::InitialNotAllowed | Outcome::Cancelled | Outcome::Malformed => {
                Ok(self.machine.refused(Refusal::Cancelled))
            }
        }
    }

    /// Have the privileged helper start `user`'s session as them; that
    /// child opens the maildrop and answers, this process relays.
    async fn hand_off(&mut self, user: String) -> Result<Action, End> {
        let start = SessionStart {
            user: user.clone(),
            protocol: Protocol::Pop3,
            tag: String::new(),
            how: "PASS".into(),
            peer: self.peer,
            tls: self.machine.tls(),
        };
        match crate::privsep::client::open_session(start).await {
            Ok(child) => {
                tracing::info!("pop3: {user:?} logged in from {}; served as the user", self.peer.ip());
                Err(End::HandOff(child))
            }
            Err(e) => {
                tracing::error!("pop3: session of {user:?}: {e}");
                Ok(self.machine.refused(Refusal::Temporary))
            }
        }
    }
}

/// POP3 AUTH challenges (RFC 5034): `+ base64`, answered by a base64 line.
impl Challenger for Session {
    type Error = End;
    async fn challenge(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, End> {
        self.reply(&format!("+ {}", B64.encode(challenge)));
        self.sasl_response().await
    }
}
