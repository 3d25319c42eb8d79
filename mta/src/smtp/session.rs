//! One SMTP session over any byte stream (TCP, TLS, or stdio for
//! `sendmail -bs`): the tokio shell around the pure parsers. Replies are
//! buffered and flushed when the client's pipelined input runs dry.

use super::command::{self, Command};
use super::data::{DataDecoder, DataOutcome};
use super::lines::LineBuffer;
use crate::auth::sasl::{self, Challenger, Outcome};
use crate::envelope::{Address, Body, MailParams, RcptParams};
use crate::inbound_auth::policy::Action;
use crate::inbound_auth::{Facts, Verifier, results};
use crate::net::{Connection, Io, ReadError};
use crate::queue::Client;
use crate::recipient::Verdict;
use crate::service::{Accepted, Shared, Wake};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What kind of listener the client came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// 25: STARTTLS offered, AUTH only after TLS, relaying by address or AUTH.
    Mx,
    /// 587: AUTH (after STARTTLS) required before MAIL.
    Submission,
    /// 465: implicit TLS, AUTH required.
    Smtps,
    /// `sendmail -bs`: a local user on stdin/stdout, trusted like a relay client.
    Local,
}

impl Port {
    /// The listener's name in the session counts.
    pub fn listener(self) -> &'static str {
        match self {
            Port::Mx => "smtp",
            Port::Submission => "submission",
            Port::Smtps => "smtps",
            Port::Local => "local",
        }
    }
}

struct Transaction {
    sender: Option<Address>,
    params: MailParams,
    recipients: Vec<Accepted>,
    /// BDAT chunks so far; `None` until the first BDAT.
    chunks: Option<Vec<u8>>,
    too_big: bool,
}

/// Why the session ends early.
enum End {
    Quit,
    Closed,
}

type Flow = Result<(), End>;

pub struct Session {
    conn: Connection<LineBuffer>,
    shared: Arc<Shared>,
    port: Port,
    peer: Option<SocketAddr>,
    tls: bool,
    helo: Option<String>,
    esmtp: bool,
    auth: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
}

impl Session {
    /// `tls`: the stream is already TLS (port 465).
    pub fn new(io: Box<dyn Io>, shared: Arc<Shared>, port: Port, peer: Option<SocketAddr>, tls: bool) -> Session {
        let limit = shared.config.smtp.line_length_limit;
        Session {
            conn: Connection::new(io, LineBuffer::new(limit)),
            shared,
            port,
            peer,
            tls,
            helo: None,
            esmtp: false,
            auth: None,
            tx: None,
            errors: 0,
        }
    }

    fn client_name(&self) -> String {
        self.peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "local".into())
    }

    pub async fn run(mut self) {
        let host = self.shared.config.hostname.clone();
        self.reply(&format!("220 {host} ESMTP mta"));
        let result = self.serve().await;
        if matches!(result, Err(End::Quit)) {
            let _ = self.flush().await;
        }
        self.conn.shutdown().await;
        tracing::debug!("session from {} ended", self.client_name());
    }

    async fn serve(&mut self) -> Flow {
        loop {
            let line = match self.next_line(self.shared.config.smtp.command_timeout).await? {
                Ok(line) => line,
                Err(e) => {
                    self.error(e.reply())?;
                    continue;
                }
            };
            match command::parse(&line) {
                Ok(cmd) => self.command(cmd).await?,
                Err(e) => self.error(e.reply())?,
            }
        }
    }

    fn reply(&mut self, text: &str) {
        self.conn.reply(text);
    }

    /// A failure reply; too many of them end the session (Postfix's hard error limit).
    fn error(&mut self, text: &str) -> Flow {
        self.reply(text);
        self.errors += 1;
        if self.errors >= self.shared.config.smtp.max_errors {
            self.reply("421 4.7.0 Too many errors, closing connection");
            return Err(End::Quit);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Flow {
        self.conn.flush().await.map_err(|_| End::Closed)
    }

    /// Read more input (flushing replies first); a timeout sends 421.
    async fn fill(&mut self, timeout: Duration) -> Flow {
        match self.conn.fill(timeout).await {
            Ok(()) => Ok(()),
            Err(ReadError::Closed) => Err(End::Closed),
            Err(ReadError::Timeout) => {
                self.reply("421 4.4.2 Timeout, closing connection");
                Err(End::Quit)
            }
        }
    }

    async fn next_line(&mut self, timeout: Duration) -> Result<Result<Vec<u8>, super::lines::LineError>, End> {
        loop {
            if let Some(line) = self.conn.input.next_line() {
                return Ok(line);
            }
            self.fill(timeout).await?;
        }
    }

    fn may_relay(&self) -> bool {
        self.port == Port::Local
            || self.auth.is_some()
            || self.peer.is_some_and(|p| self.shared.router.is_relay_client(p.ip()))
    }

    fn auth_offered(&self) -> bool {
        self.tls && self.port != Port::Local
    }

    async fn command(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Helo(name) => self.hello(name, false),
            Command::Ehlo(name) => self.hello(name, true),
            Command::Mail(sender, params) => self.mail(sender, params),
            Command::Rcpt(rcpt, params) => self.rcpt(rcpt, params).await,
            Command::RcptPostmaster(params) => {
                let mb = Address {
                    local: "postmaster".into(),
                    domain: self.shared.config.hostname.clone(),
                };
                self.rcpt(mb, params).await
            }
            Command::Data => self.data().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            Command::Rset => {
                self.tx = None;
                self.reply("250 2.0.0 Ok");
                Ok(())
            }
            Command::Noop => {
                self.reply("250 2.0.0 Ok");
                Ok(())
            }
            Command::Quit => {
                self.reply("221 2.0.0 Bye");
                Err(End::Quit)
            }
            Command::Vrfy(arg) => self.vrfy(&arg),
            Command::Expn(_) => self.error("502 5.5.1 EXPN not available"),
            Command::Help => {
                self.reply("214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT");
                self.reply("214 2.0.0 STARTTLS AUTH ETRN VRFY HELP; see RFC 5321");
                Ok(())
            }
            Command::StartTls => self.starttls().await,
            Command::Auth { mechanism, initial } => self.authenticate(&mechanism, initial).await,
            Command::Etrn(_) => self.etrn(),
        }
    }

    fn hello(&mut self, name: String, esmtp: bool) -> Flow {
        self.tx = None;
        self.helo = Some(name.clone());
        self.esmtp = esmtp;
        let host = self.shared.config.hostname.clone();
        if !esmtp {
            self.reply(&format!("250 {host}"));
            return Ok(());
        }
        let mut caps = vec![
            format!("{host} Hello {name} [{}]", self.client_name()),
            "PIPELINING".into(),
            format!("SIZE {}", self.shared.config.smtp.max_message_size),
            "ETRN".into(),
        ];
        if !self.tls && self.shared.tls.is_some() && self.port != Port::Local {
            caps.push("STARTTLS".into());
        }
        if self.auth_offered() {
            caps.push(format!("AUTH {}", sasl::MECHANISMS.join(" ")));
        }
        caps.extend(["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"].map(String::from));
        let last = caps.len() - 1;
        for (i, c) in caps.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.conn.out.extend_from_slice(format!("250{sep}{c}\r\n").as_bytes());
        }
        Ok(())
    }

    fn mail(&mut self, sender: Option<Address>, params: MailParams) -> Flow {
        if self.helo.is_none() {
            return self.error("503 5.5.1 Send HELO or EHLO first");
        }
        if self.tx.is_some() {
            return self.error("503 5.5.1 Nested MAIL command");
        }
        if matches!(self.port, Port::Submission | Port::Smtps) && self.auth.is_none() {
            if !self.tls {
                return self.error("530 5.7.0 Must issue a STARTTLS command first");
            }
            return self.error("530 5.7.0 Authentication required");
        }
        if !self.esmtp && params != MailParams::default() {
            return self.error("555 5.5.4 Parameters need EHLO");
        }
        if params.body == Some(Body::BinaryMime) {
            return self.error("555 5.5.4 BINARYMIME not supported");
        }
        if params
            .size
            .is_some_and(|s| s > self.shared.config.smtp.max_message_size)
        {
            return self.error("552 5.3.4 Message size exceeds fixed limit");
        }
        self.tx = Some(Transaction {
            sender,
            params,
            recipients: Vec::new(),
            chunks: None,
            too_big: false,
        });
        self.reply("250 2.1.0 Ok");
        Ok(())
    }

    async fn rcpt(&mut self, rcpt: Address, params: RcptParams) -> Flow {
        let Some(tx) = &self.tx else {
            return self.error("503 5.5.1 Need MAIL before RCPT");
        };
        if tx.recipients.len() >= self.shared.config.smtp.max_recipients {
            return self.error("452 4.5.3 Too many recipients");
        }
        if !tx.params.smtputf8 && !rcpt.to_string().is_ascii() {
            return self.error("553 5.6.7 Non-ASCII address needs SMTPUTF8");
        }
        let shared = Arc::clone(&self.shared);
        let may_relay = self.may_relay();
        let (local, domain) = (rcpt.local.clone(), rcpt.domain.clone());
        // Routing may read .forward and :include: files and the passwd database.
        let verdict = tokio::task::spawn_blocking(move || shared.route(&local, &domain, may_relay))
            .await
            .unwrap_or_else(|_| Verdict::Reject("451 4.3.0 Internal error".into()));
        match verdict {
            Verdict::Local | Verdict::Relay => {
                let tx = self.tx.as_mut().expect("checked above");
                tx.recipients.push(Accepted {
                    address: rcpt.to_string(),
                    params,
                    relay: verdict == Verdict::Relay,
                });
                self.reply("250 2.1.5 Ok");
                Ok(())
            }
            Verdict::Reject(reply) => {
                tracing::info!("reject: RCPT from {} to=<{rcpt}>: {reply}", self.client_name());
                if reply.starts_with('5') {
                    self.shared.stats.count(crate::stats::Event::Rejected("recipient"), 1);
                }
                self.error(&reply)
            }
        }
    }

    /// The Received: header builder; it runs once the queue id is known.
    fn received_header(&self, recipients: &[Accepted]) -> impl FnOnce(&str) -> String + use<> {
        let helo = self.helo.clone().unwrap_or_else(|| "unknown".into());
        let client = self.client_name();
        let proto = match (self.esmtp, self.tls, self.auth.is_some()) {
            (false, false, _) => "SMTP",
            (false, true, _) => "SMTPS",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let host = self.shared.config.hostname.clone();
        let for_rcpt = match recipients {
            [one] => format!("\r\n\tfor <{}>", one.address),
            _ => String::new(),
        };
        move |id: &str| {
            format!(
                "Received: from {helo} ([{client}])\r\n\tby {host} (mta) with {proto} id {id}{for_rcpt};\r\n\t{}\r\n",
                crate::datetime::rfc5322(crate::queue::now())
            )
        }
    }

    /// Mail from another server: neither authenticated, nor a relay client, nor local.
    fn outside_client(&self) -> Option<std::net::IpAddr> {
        let outside = self.port == Port::Mx && !self.may_relay() && self.shared.inbound_auth.enabled();
        self.peer.filter(|_| outside).map(|p| p.ip())
    }

    /// Queue the finished transaction and reply with the queue id.
    async fn finish(&mut self, body: Vec<u8>) -> Flow {
        let tx = self.tx.take().expect("transaction in progress");
        let sender = tx.sender.as_ref().map(ToString::to_string).unwrap_or_default();
        let facts = self
            .outside_client()
            .map(|ip| (ip, self.helo.clone().unwrap_or_default()));
        let checked = match facts {
            Some((ip, helo)) => {
                let facts = Facts {
                    ip,
                    helo: &helo,
                    sender: &sender,
                };
                check_authentication(&self.shared.inbound_auth, &facts, body).await
            }
            None => Ok((String::new(), body)),
        };
        let (auth_headers, body) = match checked {
            Ok(checked) => checked,
            Err(reply) => {
                tracing::info!("reject: DATA from {}: {reply}", self.client_name());
                if reply.starts_with('5') {
                    self.shared
                        .stats
                        .count(crate::stats::Event::Rejected("authentication"), 1);
                }
                self.reply(reply);
                return Ok(());
            }
        };
        let shared = Arc::clone(&self.shared);
        let sender = tx.sender.as_ref().map(ToString::to_string);
        let recipients = tx.recipients.clone();
        let Ok((refusal, body)) =
            tokio::task::spawn_blocking(move || (shared.sieve_rejects(sender.as_deref(), &recipients, &body), body))
                .await
        else {
            self.reply("451 4.3.0 Internal error");
            return Ok(());
        };
        if let Some(reason) = refusal {
            let reply = format!("550 5.7.1 {}", one_line_reason(&reason));
            tracing::info!(
                "reject: DATA from {}: the recipient's Sieve script: {reply}",
                self.client_name()
            );
            self.reply(&reply);
            return Ok(());
        }
        let received = self.received_header(&tx.recipients);
        let received = move |id: &str| auth_headers + &received(id);
        let client = Client {
            addr: self.peer.map(|p| p.ip()),
            helo: self.helo.clone(),
            auth: self.auth.clone(),
        };
        let shared = Arc::clone(&self.shared);
        let sender = tx.sender.as_ref().map(ToString::to_string);
        let result = tokio::task::spawn_blocking(move || {
            shared.accept_message(sender, tx.params, &tx.recipients, client, received, &body)
        })
        .await;
        match result {
            Ok(Ok(id)) => {
                self.shared.stats.count(crate::stats::Event::Accepted, 1);
                self.reply(&format!("250 2.0.0 Ok: queued as {id}"))
            }
            Ok(Err(e)) => {
                tracing::error!("queue write failed: {e}");
                self.reply("451 4.3.0 Error writing the message to the queue");
            }
            Err(_) => self.reply("451 4.3.0 Internal error"),
        }
        Ok(())
    }

    async fn data(&mut self) -> Flow {
        match &self.tx {
            None => return self.error("503 5.5.1 Need MAIL command"),
            Some(tx) if tx.recipients.is_empty() => {
                return self.error("554 5.5.1 No valid recipients");
            }
            Some(tx) if tx.chunks.is_some() => return self.error("503 5.5.1 DATA after BDAT"),
            Some(_) => {}
        }
        self.reply("354 3.0.0 End data with <CR><LF>.<CR><LF>");
        let max = self.shared.config.smtp.max_message_size as usize;
        let mut decoder = DataDecoder::new(max);
        let mut body = Vec::new();
        let outcome = loop {
            let (used, done) = decoder.feed(self.conn.input.pending(), &mut body);
            self.conn.input.consume(used);
            if let Some(outcome) = done {
                break outcome;
            }
            self.fill(self.shared.config.smtp.data_timeout).await?;
        };
        match outcome {
            DataOutcome::Ok => self.finish(body).await,
            DataOutcome::TooBig => {
                self.tx = None;
                self.error("552 5.3.4 Message size exceeds fixed limit")
            }
            DataOutcome::BareNewline => {
                self.tx = None;
                tracing::info!("reject: DATA from {}: bare CR or LF", self.client_name());
                self.error("550 5.6.0 Message contains bare CR or LF; lines must end with CRLF")
            }
        }
    }

    async fn bdat(&mut self, size: u64, last: bool) -> Flow {
        let max = self.shared.config.smtp.max_message_size;
        // The chunk is read (or skipped) even when refused, to stay in sync with the client.
        let mut remaining = size;
        let mut chunk = Vec::new();
        let keep = self
            .tx
            .as_ref()
            .is_some_and(|tx| !tx.recipients.is_empty() && !tx.too_big);
        let so_far = self
            .tx
            .as_ref()
            .and_then(|t| t.chunks.as_ref())
            .map_or(0, |c| c.len() as u64);
        let fits = so_far.saturating_add(size) <= max;
        while remaining > 0 {
            if self.conn.input.pending().is_empty() {
                self.fill(self.shared.config.smtp.data_timeout).await?;
            }
            let take = (self.conn.input.pending().len() as u64).min(remaining) as usize;
            if keep && fits {
                chunk.extend_from_slice(&self.conn.input.pending()[..take]);
            }
            self.conn.input.consume(take);
            remaining -= take as u64;
        }
        let Some(tx) = self.tx.as_mut() else {
            return self.error("503 5.5.1 Need MAIL command");
        };
        if tx.recipients.is_empty() {
            return self.error("554 5.5.1 No valid recipients");
        }
        if !fits || tx.too_big {
            tx.too_big = true;
            if last {
                self.tx = None;
            }
            return self.error("552 5.3.4 Message size exceeds fixed limit");
        }
        let chunks = tx.chunks.get_or_insert_with(Vec::new);
        chunks.extend_from_slice(&chunk);
        if last {
            let body = std::mem::take(chunks);
            return self.finish(body).await;
        }
        self.reply(&format!("250 2.0.0 {size} octets received"));
        Ok(())
    }

    fn vrfy(&mut self, arg: &str) -> Flow {
        if !self.shared.config.smtp.vrfy {
            self.reply("252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
            return Ok(());
        }
        let arg = arg.trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = arg.rsplit_once('@').unwrap_or((arg, &self.shared.config.hostname));
        match self.shared.route(local, domain, false) {
            Verdict::Local | Verdict::Relay => {
                self.reply(&format!("250 2.1.5 <{local}@{domain}>"));
                Ok(())
            }
            Verdict::Reject(reply) => self.error(&reply),
        }
    }

    fn etrn(&mut self) -> Flow {
        if let Some(w) = &self.shared.wake {
            let _ = w.send(Wake::All);
        }
        self.reply("250 2.0.0 Queuing started");
        Ok(())
    }

    async fn starttls(&mut self) -> Flow {
        let tls = match (&self.shared.tls, self.tls, self.port) {
            (_, true, _) => return self.error("503 5.5.1 TLS already active"),
            (None, _, _) | (_, _, Port::Local) => return self.error("454 4.7.0 TLS not available"),
            (Some(tls), false, _) => Arc::clone(tls),
        };
        self.reply("220 2.0.0 Ready to start TLS");
        match self.conn.start_tls(&tls, self.shared.config.smtp.command_timeout).await {
            Ok(()) => {
                self.tls = true;
                self.helo = None;
                self.esmtp = false;
                self.tx = None;
                Ok(())
            }
            Err(e) => {
                tracing::info!("TLS handshake with {} failed: {e}", self.client_name());
                Err(End::Closed)
            }
        }
    }

    async fn read_response(&mut self) -> Result<Option<Vec<u8>>, End> {
        match self.next_line(self.shared.config.smtp.command_timeout).await? {
            Ok(line) => Ok(std::str::from_utf8(&line).ok().and_then(sasl::decode)),
            Err(_) => Ok(None),
        }
    }

    async fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> Flow {
        if !self.auth_offered() {
            return self.error("538 5.7.11 Encryption required for requested authentication mechanism");
        }
        if self.auth.is_some() || self.tx.is_some() {
            return self.error("503 5.5.1 AUTH not allowed now");
        }
        let ip = self.peer.map(|p| p.ip());
        if ip.is_some_and(|ip| self.shared.auth.throttled(ip)) {
            return self.error("454 4.7.0 Too many failed authentications; try again later");
        }
        let shared = Arc::clone(&self.shared);
        let request = sasl::Request {
            mechanism,
            initial: initial.as_deref(),
            ip,
            hostname: &shared.config.hostname,
        };
        match sasl::drive(&shared.auth, request, &mut AuthChannel(self)).await? {
            Outcome::Proved(user) => self.auth_result(Some(user), mechanism),
            Outcome::Refused => self.auth_result(None, mechanism),
            Outcome::Unsupported => self.error("504 5.5.4 Unrecognized authentication type"),
            Outcome::InitialNotAllowed => self.error("501 5.5.4 Initial response not allowed for this mechanism"),
            Outcome::Cancelled => self.error("501 5.7.0 Authentication cancelled or malformed"),
            Outcome::Malformed => self.error("501 5.5.2 Malformed authentication response"),
        }
    }

    fn auth_result(&mut self, user: Option<String>, mechanism: &str) -> Flow {
        let ip = self.peer.map(|p| p.ip());
        match user {
            Some(user) => {
                if let Some(ip) = ip {
                    self.shared.auth.record_success(ip);
                }
                tracing::info!(
                    "auth: {user:?} authenticated from {} with {mechanism}",
                    self.client_name()
                );
                self.auth = Some(user);
                self.reply("235 2.7.0 Authentication successful");
                Ok(())
            }
            None => {
                if let Some(ip) = ip {
                    self.shared.auth.record_failure(ip);
                }
                tracing::warn!("auth: {mechanism} authentication failed from {}", self.client_name());
                self.error("535 5.7.8 Authentication credentials invalid")
            }
        }
    }
}

/// SMTP AUTH challenges (RFC 4954): `334 base64`, answered by a base64 line.
struct AuthChannel<'a>(&'a mut Session);

impl Challenger for AuthChannel<'_> {
    type Error = End;
    async fn challenge(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, End> {
        self.0.reply(&format!("334 {}", B64.encode(challenge)));
        self.0.read_response().await
    }
}

/// Verify mail from outside (SPF, DKIM, DMARC, ARC, iprev). `Err` is the
/// refusal reply; `Ok` the headers to prepend and the message without
/// forged results carrying our authserv-id.
async fn check_authentication(
    verifier: &Verifier,
    facts: &Facts<'_>,
    body: Vec<u8>,
) -> Result<(String, Vec<u8>), &'static str> {
    let verdict = verifier.verify(facts, &body).await;
    if let Action::Refuse(reply) = verdict.action {
        return Err(reply);
    }
    let cleaned = match results::remove_ours(&body, verifier.authserv_id()) {
        Cow::Owned(cleaned) => Some(cleaned),
        Cow::Borrowed(_) => None,
    };
    Ok((verdict.headers, cleaned.unwrap_or(body)))
}

/// A Sieve reject reason as the text of one ASCII reply line: line breaks
/// and controls become spaces, other non-ASCII `?`, and it is cut well
/// inside the 512-octet line.
fn one_line_reason(reason: &str) -> String {
    let flat: String = reason
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if c.is_ascii() => c,
            _ => '?',
        })
        .take(400)
        .collect();
    match flat.split_whitespace().collect::<Vec<_>>().join(" ") {
        s if s.is_empty() => "Rejected by the recipient's filter".to_string(),
        s => s,
    }
}
