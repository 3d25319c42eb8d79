//! The thin tokio shell around the pure client: one TCP (then TLS)
//! connection to a server, the greeting, EHLO (HELO when refused),
//! STARTTLS whenever offered, AUTH for a smarthost, and transactions run
//! by `client::Transaction`, each read under its Postfix-like timeout.

use super::client::{Mail, Rcpt, Step, Transaction, Verdict};
use super::reply::{self, Capabilities, Reply, ReplyError};
use crate::smtp::data::dot_stuff;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("conversation with {0} timed out {1}")]
    Timeout(String, &'static str),
    #[error("lost connection with {0} {1}: {2}")]
    Io(String, &'static str, std::io::Error),
    #[error("lost connection with {0} {1}")]
    Closed(String, &'static str),
    #[error("{0} said: {1} ({2})")]
    Refused(String, String, &'static str),
    #[error("{0} sent a bad reply: {1}")]
    Protocol(String, ReplyError),
    #[error("TLS with {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("{0} does not offer STARTTLS, which {1} requires")]
    TlsRequired(String, &'static str),
    #[error("{0} offers no AUTH mechanism we know (PLAIN, LOGIN)")]
    NoAuth(String),
}

impl SessionError {
    /// A reply from the server that decides about the recipients (a 5xx
    /// greeting or AUTH refusal is still no reason to bounce: the next
    /// host may do better; the caller decides).
    pub fn reply(&self) -> Option<&str> {
        match self {
            SessionError::Refused(_, r, _) => Some(r),
            _ => None,
        }
    }

    /// STARTTLS was missing or its handshake failed.
    pub fn is_tls(&self) -> bool {
        matches!(self, SessionError::Tls(..) | SessionError::TlsRequired(..))
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between the plain socket and its TLS upgrade, or after a failed one.
    Gone,
}

fn gone() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::NotConnected)
}

/// Timeouts of one conversation (Postfix's smtp_*_timeout).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    pub data: Duration,
}

/// How to start a session.
pub struct Peer<'a> {
    /// `host[ip]:port`, as logs show it.
    pub name: String,
    pub host: &'a str,
    pub addr: SocketAddr,
    pub helo: &'a str,
    pub tls: Arc<rustls::ClientConfig>,
    /// AUTH credentials: TLS is then required.
    pub auth: Option<(&'a str, &'a str)>,
    /// Whether STARTTLS is used when offered (not for TLS policy `none`).
    pub starttls: bool,
    /// The TLS policy requires TLS: without it the session fails.
    pub require_tls: bool,
    pub timeouts: Timeouts,
}

pub struct Session {
    conn: Conn,
    buf: Vec<u8>,
    pub caps: Capabilities,
    /// The TLS version, when the connection is encrypted.
    pub tls: Option<String>,
    /// The server's certificate chain, leaf first, for the TLS policy to judge.
    pub certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// `host[ip]:port`.
    pub name: String,
    timeouts: Timeouts,
}

impl Session {
    async fn write(&mut self, bytes: &[u8], stage: &'static str) -> Result<(), SessionError> {
        let r = match &mut self.conn {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Tls(s) => s.write_all(bytes).await,
            Conn::Gone => Err(gone()),
        };
        let flushed = match (r, &mut self.conn) {
            (Ok(()), Conn::Tls(s)) => s.flush().await,
            (r, _) => r,
        };
        flushed.map_err(|e| SessionError::Io(self.name.clone(), stage, e))
    }

    async fn read_reply(&mut self, wait: Duration, stage: &'static str) -> Result<Reply, SessionError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match reply::parse(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(SessionError::Protocol(self.name.clone(), e)),
            }
            let mut chunk = [0u8; 4096];
            let read = async {
                match &mut self.conn {
                    Conn::Plain(s) => s.read(&mut chunk).await,
                    Conn::Tls(s) => s.read(&mut chunk).await,
                    Conn::Gone => Err(gone()),
                }
            };
            let n = tokio::time::timeout_at(deadline, read)
                .await
                .map_err(|_| SessionError::Timeout(self.name.clone(), stage))?
                .map_err(|e| SessionError::Io(self.name.clone(), stage, e))?;
            if n == 0 {
                return Err(SessionError::Closed(self.name.clone(), stage));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn command(&mut self, cmd: &str, stage: &'static str) -> Result<Reply, SessionError> {
        self.write(cmd.as_bytes(), stage).await?;
        self.read_reply(self.timeouts.command, stage).await
    }

    /// EHLO, or HELO when EHLO is refused; sets the capabilities.
    async fn hello(&mut self, helo: &str) -> Result<(), SessionError> {
        let reply = self.command(&format!("EHLO {helo}\r\n"), "after EHLO").await?;
        if reply.class() == 2 {
            self.caps = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        let reply = self.command(&format!("HELO {helo}\r\n"), "after HELO").await?;
        if reply.class() != 2 {
            return Err(SessionError::Refused(self.name.clone(), reply.one_line(), "after HELO"));
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    /// Connect, read the greeting, say hello, upgrade to TLS when offered,
    /// authenticate when asked to.
    pub async fn open(peer: Peer<'_>) -> Result<Session, SessionError> {
        let stream = tokio::time::timeout(peer.timeouts.connect, TcpStream::connect(peer.addr))
            .await
            .map_err(|_| SessionError::Timeout(peer.name.clone(), "while connecting"))?
            .map_err(|e| SessionError::Connect(peer.name.clone(), e))?;
        let mut s = Session {
            conn: Conn::Plain(stream),
            buf: Vec::new(),
            caps: Capabilities::default(),
            tls: None,
            certs: Vec::new(),
            name: peer.name.clone(),
            timeouts: peer.timeouts,
        };
        let greeting = s
            .read_reply(peer.timeouts.connect, "while receiving the initial greeting")
            .await?;
        if greeting.class() != 2 {
            return Err(SessionError::Refused(s.name, greeting.one_line(), "in the greeting"));
        }
        s.hello(peer.helo).await?;
        let must = peer.auth.is_some() || peer.require_tls;
        if s.caps.starttls && (peer.starttls || must) {
            let reply = s.command("STARTTLS\r\n", "after STARTTLS").await?;
            if reply.class() == 2 {
                s.start_tls(peer.host, peer.tls).await?;
                s.hello(peer.helo).await?;
            } else if must {
                return Err(SessionError::Refused(s.name, reply.one_line(), "after STARTTLS"));
            }
        }
        if peer.require_tls && s.tls.is_none() {
            return Err(SessionError::TlsRequired(s.name, "the TLS policy"));
        }
        if let Some((user, password)) = peer.auth {
            if s.tls.is_none() {
                return Err(SessionError::TlsRequired(s.name, "the smarthost configuration"));
            }
            s.authenticate(user, password).await?;
        }
        Ok(s)
    }

    async fn start_tls(&mut self, host: &str, config: Arc<rustls::ClientConfig>) -> Result<(), SessionError> {
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(SessionError::Tls(self.name.clone(), gone()));
        };
        // Bytes the server sent before the handshake would be a command injection.
        self.buf.clear();
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .unwrap_or_else(|_| rustls_pki_types::ServerName::try_from("invalid.invalid").expect("valid name"));
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = tokio::time::timeout(self.timeouts.command, connector.connect(name, tcp))
            .await
            .map_err(|_| SessionError::Timeout(self.name.clone(), "in the TLS handshake"))?
            .map_err(|e| SessionError::Tls(self.name.clone(), e))?;
        let conn = tls.get_ref().1;
        self.certs = conn.peer_certificates().map(<[_]>::to_vec).unwrap_or_default();
        self.tls = conn.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        });
        self.conn = Conn::Tls(Box::new(tls));
        Ok(())
    }

    async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), SessionError> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let reply = if self.caps.auth.iter().any(|m| m == "PLAIN") {
            let token = b64(&format!("\0{user}\0{password}"));
            self.command(&format!("AUTH PLAIN {token}\r\n"), "after AUTH").await?
        } else if self.caps.auth.iter().any(|m| m == "LOGIN") {
            let mut reply = self.command("AUTH LOGIN\r\n", "after AUTH").await?;
            for secret in [user, password] {
                if reply.code != 334 {
                    break;
                }
                reply = self.command(&format!("{}\r\n", b64(secret)), "after AUTH").await?;
            }
            reply
        } else {
            return Err(SessionError::NoAuth(self.name.clone()));
        };
        if reply.class() != 2 {
            return Err(SessionError::Refused(self.name.clone(), reply.one_line(), "after AUTH"));
        }
        Ok(())
    }

    /// Run one transaction: a verdict per recipient, in order.
    pub async fn transaction(
        &mut self,
        mail: &Mail,
        rcpts: Vec<Rcpt>,
        content: &[u8],
    ) -> Result<Vec<Verdict>, SessionError> {
        let (mut t, first) = Transaction::start(&self.caps, mail, rcpts);
        self.write(first.as_bytes(), "after MAIL FROM").await?;
        loop {
            let (wait, stage) = if t.awaits_dot() {
                (self.timeouts.data, "after end of data")
            } else {
                (self.timeouts.command, "after MAIL/RCPT/DATA")
            };
            let reply = self.read_reply(wait, stage).await?;
            match t.on_reply(reply) {
                Step::Read => {}
                Step::Send(bytes) => self.write(bytes.as_bytes(), stage).await?,
                Step::SendMessage => self.write(&dot_stuff(content), "while sending message data").await?,
                Step::Done(verdicts) => return Ok(verdicts),
            }
        }
    }

    /// Ready the connection for another transaction.
    pub async fn reset(&mut self) -> Result<(), SessionError> {
        let reply = self.command("RSET\r\n", "after RSET").await?;
        if reply.class() != 2 {
            return Err(SessionError::Refused(self.name.clone(), reply.one_line(), "after RSET"));
        }
        Ok(())
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.command("QUIT\r\n", "after QUIT")).await;
    }
}

/// Opportunistic TLS (RFC 7435): encrypt, but accept any certificate, as
/// Postfix's `smtp_tls_security_level = may` does; handshake signatures are
/// still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client TLS configuration of opportunistic STARTTLS.
pub fn opportunistic_tls() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}
