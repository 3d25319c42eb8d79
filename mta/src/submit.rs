//! The local submission socket: how `sendmail`, run by any user, hands a
//! message to the daemon (OpenSMTPD's smtpd.sock, Postfix's postdrop). The
//! daemon takes the caller's identity from the socket (SO_PEERCRED), routes
//! the recipients and queues the message, so users need no access to the
//! spool, the users file or the aliases.
//!
//! Wire format: one JSON line `{"sender", "recipients", "size"}`, then
//! exactly `size` bytes of message (CRLF lines, headers completed by
//! `sendmail`); the daemon answers with one JSON line (`Response`).

use crate::envelope::Address;
use crate::queue::{Client, QueueError};
use crate::recipient::Verdict;
use crate::service::{Accepted, Shared};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Longest request line: the envelope, not the message.
pub const MAX_REQUEST_LINE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request line longer than {MAX_REQUEST_LINE} bytes")]
    TooLong,
    #[error("message of {0} bytes is over the limit of {1}")]
    TooBig(u64, u64),
    #[error("{0} recipients is over the limit of {1}")]
    TooManyRecipients(usize, usize),
    #[error("no recipients")]
    NoRecipients,
    #[error("talking to the mta daemon: {0}")]
    Io(#[from] std::io::Error),
}

/// A message ready for the queue: what `sendmail` prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// Envelope sender; empty for `<>`.
    pub sender: String,
    pub recipients: Vec<String>,
    #[serde(skip)]
    pub content: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    sender: String,
    recipients: Vec<String>,
    size: u64,
}

/// The daemon's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Queue id, when at least one recipient was accepted.
    pub id: Option<String>,
    /// (recipient, SMTP-style reply) for each refused recipient.
    pub rejected: Vec<(String, String)>,
    /// Why nothing was queued, if so.
    pub error: Option<String>,
}

/// Check a request line against the limits (pure; fuzzed).
pub fn decode_request(line: &[u8], max_size: u64, max_recipients: usize) -> Result<(Submission, u64), SubmitError> {
    if line.len() > MAX_REQUEST_LINE {
        return Err(SubmitError::TooLong);
    }
    let req: Request = serde_json::from_slice(line).map_err(|e| SubmitError::Malformed(e.to_string()))?;
    if req.size > max_size {
        return Err(SubmitError::TooBig(req.size, max_size));
    }
    if req.recipients.is_empty() {
        return Err(SubmitError::NoRecipients);
    }
    if req.recipients.len() > max_recipients {
        return Err(SubmitError::TooManyRecipients(req.recipients.len(), max_recipients));
    }
    let submission = Submission {
        sender: req.sender,
        recipients: req.recipients,
        content: Vec::new(),
    };
    Ok((submission, req.size))
}

/// Route and queue a submission for local user `user` (uid `uid`). Blocking.
pub fn enqueue(shared: &Shared, sub: &Submission, uid: u32, user: &str) -> Result<Response, QueueError> {
    let client = Client {
        addr: None,
        helo: None,
        auth: Some(user.to_string()),
    };
    enqueue_from(shared, sub, client, &format!("mta sendmail, from userid {uid}"))
}

/// Route and queue a submission of an authenticated `client` (webmail, the
/// local socket); `via` names the way in, in the Received: header. Routed
/// and signed as mail from an authenticated client on port 587. Blocking.
pub fn enqueue_from(shared: &Shared, sub: &Submission, client: Client, via: &str) -> Result<Response, QueueError> {
    let host = &shared.config.hostname;
    let mut response = Response::default();
    let mut accepted = Vec::new();
    for r in &sub.recipients {
        let full = if r.contains('@') {
            r.clone()
        } else {
            format!("{r}@{host}")
        };
        // Local users may send anywhere, as sendmail lets them.
        let routed = match Address::parse(&full, true) {
            Ok(mb) => shared.route(&mb.local, &mb.domain, true),
            Err(_) => Verdict::Reject("553 5.1.3 Bad address syntax".into()),
        };
        match routed {
            Verdict::Local | Verdict::Relay => accepted.push(Accepted {
                address: full,
                params: Default::default(),
                relay: routed == Verdict::Relay,
            }),
            Verdict::Reject(reply) => response.rejected.push((r.clone(), reply)),
        }
    }
    if accepted.is_empty() {
        response.error = Some("no valid recipients".into());
        return Ok(response);
    }
    let received = |id: &str| {
        format!(
            "Received: by {host} ({via}) id {id};\r\n\t{}\r\n",
            crate::datetime::rfc5322(crate::queue::now())
        )
    };
    let sender = (!sub.sender.is_empty()).then(|| sub.sender.clone());
    let id = shared.accept_message(sender, Default::default(), &accepted, client, received, &sub.content)?;
    response.id = Some(id);
    Ok(response)
}

/// `sendmail`'s side: hand `sub` to the daemon listening on `socket`.
pub fn send(socket: &Path, sub: &Submission) -> Result<Response, SubmitError> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    let request = Request {
        sender: sub.sender.clone(),
        recipients: sub.recipients.clone(),
        size: sub.content.len() as u64,
    };
    let mut line = serde_json::to_vec(&request).map_err(|e| SubmitError::Malformed(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line)?;
    stream.write_all(&sub.content)?;
    let mut reply = String::new();
    BufReader::new(stream.take(MAX_REQUEST_LINE as u64)).read_line(&mut reply)?;
    serde_json::from_str(&reply).map_err(|e| SubmitError::Malformed(format!("daemon reply: {e}")))
}

/// Bind the socket, world-writable (anyone may submit; the daemon knows who).
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    Ok(listener)
}

/// The daemon's side: one task per submitting process.
pub async fn serve(listener: tokio::net::UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let timeout = shared.config.smtp.command_timeout;
                    match tokio::time::timeout(timeout, session(stream, &shared)).await {
                        Ok(Err(e)) => tracing::warn!("local submission: {e}"),
                        Err(_) => tracing::warn!("local submission: timed out"),
                        Ok(Ok(())) => {}
                    }
                });
            }
            Err(e) => {
                tracing::error!("local submission socket: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

async fn session(stream: tokio::net::UnixStream, shared: &Arc<Shared>) -> Result<(), SubmitError> {
    let uid = stream.peer_cred()?.uid();
    let user = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid{uid}"), |u| u.name);
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_REQUEST_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    let limits = &shared.config.smtp;
    let response = match decode_request(line.trim_ascii_end(), limits.max_message_size, limits.max_recipients) {
        Ok((mut sub, size)) => {
            sub.content = vec![0; size as usize];
            reader.read_exact(&mut sub.content).await?;
            let shared = Arc::clone(shared);
            match tokio::task::spawn_blocking(move || enqueue(&shared, &sub, uid, &user)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Response {
                    error: Some(format!("queue: {e}")),
                    ..Response::default()
                },
                Err(e) => Response {
                    error: Some(format!("internal error: {e}")),
                    ..Response::default()
                },
            }
        }
        Err(e) => Response {
            error: Some(e.to_string()),
            ..Response::default()
        },
    };
    let mut out = serde_json::to_vec(&response).map_err(|e| SubmitError::Malformed(e.to_string()))?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_are_checked_against_the_limits() {
        let ok = br#"{"sender":"me@h","recipients":["a","b@x"],"size":10}"#;
        let (sub, size) = decode_request(ok, 100, 5).unwrap();
        assert_eq!((sub.sender.as_str(), sub.recipients.len(), size), ("me@h", 2, 10));
        assert!(matches!(decode_request(ok, 9, 5), Err(SubmitError::TooBig(10, 9))));
        assert!(matches!(
            decode_request(ok, 100, 1),
            Err(SubmitError::TooManyRecipients(2, 1))
        ));
        let none = br#"{"sender":"","recipients":[],"size":1}"#;
        assert!(matches!(decode_request(none, 100, 5), Err(SubmitError::NoRecipients)));
        assert!(matches!(decode_request(b"{", 100, 5), Err(SubmitError::Malformed(_))));
        let long = vec![b' '; MAX_REQUEST_LINE + 1];
        assert!(matches!(decode_request(&long, 100, 5), Err(SubmitError::TooLong)));
    }

    proptest! {
        #[test]
        fn decode_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_request(&line, 1000, 10);
        }
    }
}
