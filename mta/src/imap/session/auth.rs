//! Getting authenticated: STARTTLS, LOGIN and AUTHENTICATE (SASL), with
//! the failed-login throttle, and opening the user's store on success.

use super::{End, Flow, Session, User};
use crate::auth::sasl::{self, Challenger, Outcome};
use crate::imap::framer::{Frame, Limits};
use crate::imap::response::{Code, Kind, Response, Status};
use crate::privsep::protocol::{Protocol, SessionStart};
use crate::store;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::sync::Arc;

impl Session {
    pub(super) async fn starttls(&mut self, tag: &str) -> Flow {
        let tls = match (&self.shared.tls, self.tls) {
            (_, true) => return self.bad(Some(tag), "TLS already active"),
            (None, _) => {
                self.send(Status::no(tag, "TLS not available"));
                return Ok(());
            }
            (Some(tls), false) => Arc::clone(tls),
        };
        self.ok(tag, "Begin TLS negotiation now");
        // The connection drops anything pipelined after STARTTLS in plaintext.
        let timeout = self.timeout();
        match self.conn.start_tls(&tls, timeout).await {
            Ok(()) => {
                self.tls = true;
                Ok(())
            }
            Err(e) => {
                tracing::info!("imap: TLS handshake with {} failed: {e}", self.peer);
                Err(End::Closed)
            }
        }
    }

    /// Refuse a login for a reason; `Some(reply)` when refused.
    pub(super) fn login_refusal(&self, tag: &str) -> Option<Status> {
        if self.user.is_some() {
            return Some(Status::tagged(tag, Kind::Bad, "Already authenticated"));
        }
        if !self.tls {
            return Some(Status::no(tag, "Use STARTTLS first").with(Code::PrivacyRequired));
        }
        if self.shared.auth.throttled(self.peer.ip()) {
            return Some(Status::no(tag, "Too many failed logins; try again later").with(Code::Unavailable));
        }
        None
    }

    pub(super) async fn login(&mut self, tag: &str, user: String, password: String) -> Flow {
        if let Some(reply) = self.login_refusal(tag) {
            self.send(reply);
            return Ok(());
        }
        let ok = self.shared.auth.check_password(&user, password).await;
        self.login_result(tag, ok.then_some(user), "LOGIN").await
    }

    pub(super) async fn authenticate(&mut self, tag: &str, mechanism: &str, initial: Option<String>) -> Flow {
        if let Some(reply) = self.login_refusal(tag) {
            self.send(reply);
            return Ok(());
        }
        if mechanism == "CRAM-MD5" {
            // Offered by SMTP, but not advertised here: it needs plaintext secrets.
            self.send(Status::no(tag, "Unsupported authentication mechanism"));
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let request = sasl::Request {
            mechanism,
            initial: initial.as_deref(),
            ip: Some(self.peer.ip()),
            hostname: &shared.config.hostname,
        };
        match sasl::drive(&shared.auth, request, &mut AuthChannel(self)).await? {
            Outcome::Proved(user) => self.login_result(tag, Some(user), mechanism).await,
            Outcome::Refused => self.login_result(tag, None, mechanism).await,
            Outcome::Unsupported => {
                self.send(Status::no(tag, "Unsupported authentication mechanism"));
                Ok(())
            }
            Outcome::InitialNotAllowed => self.bad(Some(tag), "Initial response not allowed for this mechanism"),
            Outcome::Cancelled => self.bad(Some(tag), "Authentication cancelled or malformed"),
            Outcome::Malformed => self.bad(Some(tag), "Malformed authentication response"),
        }
    }

    async fn read_sasl_line(&mut self) -> Result<Option<Vec<u8>>, End> {
        match self.next_frame().await? {
            Frame::Command(line) => Ok(std::str::from_utf8(&line).ok().and_then(sasl::decode)),
            _ => Ok(None),
        }
    }

    pub(super) async fn login_result(&mut self, tag: &str, user: Option<String>, how: &str) -> Flow {
        let ip = self.peer.ip();
        let Some(user) = user else {
            self.shared.auth.record_failure(ip);
            tracing::warn!("imap: {how} failed from {}", self.peer);
            self.send(Status::no(tag, "Invalid credentials").with(Code::AuthenticationFailed));
            return Ok(());
        };
        self.shared.auth.record_success(ip);
        if crate::privsep::client::serves_session(&user) {
            return self.hand_off(tag, user, how).await;
        }
        let config = Arc::clone(&self.shared.config);
        let who = user.clone();
        let opened = tokio::task::spawn_blocking(move || store::open_user(&config, &who))
            .await
            .unwrap_or_else(|e| Err(store::StoreError::Io("(task)".into(), std::io::Error::other(e)).into()))
            .inspect_err(|e| {
                if let store::OpenError::Store(e) = e {
                    tracing::error!("imap: opening the mail of {user:?}: {e}");
                }
            });
        match opened {
            Ok(store) => {
                tracing::info!("imap: {user:?} logged in from {} with {how}", self.peer);
                self.user = Some(User {
                    name: user,
                    store: Arc::new(store),
                });
                self.conn.input.limits = Limits::authenticated(self.shared.config.imap.max_message_size);
                self.send(Status::ok(tag, "Logged in").with(Code::Capability(self.capabilities())));
            }
            Err(why) => self.send(Status::no(tag, why.to_string()).with(Code::Unavailable)),
        }
        Ok(())
    }
}

impl Session {
    /// Have the privileged helper start `user`'s session as them; that
    /// child answers `tag` and serves the rest, this process relays.
    async fn hand_off(&mut self, tag: &str, user: String, how: &str) -> Flow {
        let start = SessionStart {
            user: user.clone(),
            protocol: Protocol::Imap,
            tag: tag.into(),
            how: how.into(),
            peer: self.peer,
            tls: self.tls,
        };
        match crate::privsep::client::open_session(start).await {
            Ok(child) => {
                tracing::info!(
                    "imap: {user:?} logged in from {} with {how}; served as the user",
                    self.peer
                );
                Err(End::HandOff(child))
            }
            Err(e) => {
                tracing::error!("imap: session of {user:?}: {e}");
                self.send(Status::no(tag, "Mailbox cannot be opened now").with(Code::Unavailable));
                Ok(())
            }
        }
    }
}

/// IMAP AUTHENTICATE challenges (RFC 9051 §6.2.2): `+ base64`, answered by a
/// base64 line.
struct AuthChannel<'a>(&'a mut Session);

impl Challenger for AuthChannel<'_> {
    type Error = End;
    async fn challenge(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, End> {
        self.0.send(Response::Continue(B64.encode(challenge)));
        self.0.read_sasl_line().await
    }
}
