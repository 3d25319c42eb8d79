//! The network-facing side's client of the privileged helper. The channel
//! is process-wide (one helper per daemon), so it is installed once at
//! start; [`installed`] is `None` when mta runs as root, as a plain user
//! (a dev tree) or in a child, where everything works as before.

use super::protocol::{Delivery, Request, Response, SessionStart, valid_user};
use super::{PrivsepError, recv_frame, send_frame};
use crate::account::Owner;
use crate::deliver::{DeliveryError, Message, Target};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

/// The channel to the helper: each request sends it a fresh socket, on
/// which one worker of the helper answers that request alone.
pub struct Privsep {
    channel: OwnedFd,
}

static INSTALLED: OnceLock<Privsep> = OnceLock::new();

/// Use `channel` (from [`super::helper::start`]) for the rest of the process.
pub fn install(channel: OwnedFd) {
    let _ = INSTALLED.set(Privsep { channel });
}

pub fn installed() -> Option<&'static Privsep> {
    INSTALLED.get()
}

/// The helper serves `user`'s sessions: privilege separation is on and
/// `user` is a system user (virtual users stay in this process).
pub fn serves_session(user: &str) -> bool {
    installed().is_some() && !user.contains('@')
}

impl Privsep {
    /// One request and its answer; `attach` rides along with the request,
    /// then `after` runs (writing a message into a pipe) before the answer is read.
    fn ask(
        &self,
        request: &Request,
        attach: Option<BorrowedFd<'_>>,
        after: impl FnOnce(),
    ) -> Result<Response, PrivsepError> {
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
        send_frame(self.channel.as_fd(), &[0], Some(theirs.as_fd()))?;
        drop(theirs);
        send_frame(ours.as_fd(), &request.encode(), attach)?;
        after();
        let (frame, _) = recv_frame(ours.as_fd())?;
        if frame.is_empty() {
            return Err(PrivsepError::Gone);
        }
        Ok(Response::decode(&frame)?)
    }

    /// Check a system user's password in /etc/shadow. Blocks: call off the reactor.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        if !valid_user(user) {
            return false;
        }
        let request = Request::CheckPassword {
            user: user.into(),
            password: password.into(),
        };
        match self.ask(&request, None, || {}) {
            Ok(Response::Yes) => true,
            Ok(_) => false,
            Err(e) => {
                tracing::error!("checking the password of {user:?}: {e}");
                false
            }
        }
    }

    /// Deliver into `owner`'s files (or run their program) as them. Blocks.
    pub fn deliver(&self, owner: &Owner, target: &Target, msg: &Message<'_>) -> Result<(), DeliveryError> {
        let request = Request::Deliver(Delivery {
            user: owner.name.clone(),
            target: target.clone(),
            sender: msg.sender.unwrap_or("").into(),
            recipient: msg.recipient.into(),
            arrived: msg.arrived,
        });
        let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| DeliveryError::temp(format!("pipe for the privileged helper: {e}")))?;
        let write_message = || {
            // A failed write shows in the helper's answer (a short message is refused there).
            let _ = std::fs::File::from(writer).write_all(msg.content);
        };
        match self.ask(&request, Some(reader.as_fd()), write_message) {
            Ok(Response::Delivered) => Ok(()),
            Ok(Response::Failed { temporary, message }) => Err(DeliveryError { temporary, message }),
            Ok(_) => Err(DeliveryError::temp(PrivsepError::Unexpected.to_string())),
            Err(e) => Err(DeliveryError::temp(e.to_string())),
        }
    }

    /// Have the helper start `start.user`'s session in a child running as
    /// them; the returned stream is the child's connection, to relay the
    /// client to. Blocks.
    pub fn open_session(&self, start: SessionStart) -> Result<std::os::unix::net::UnixStream, PrivsepError> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        match self.ask(&Request::Session(start), Some(theirs.as_fd()), || {})? {
            Response::Started => Ok(ours),
            _ => Err(PrivsepError::Unexpected),
        }
    }
}

/// Ask for `start`'s session off the reactor.
pub async fn open_session(start: SessionStart) -> Result<tokio::net::UnixStream, PrivsepError> {
    let privsep = installed().ok_or(PrivsepError::Gone)?;
    let stream = tokio::task::spawn_blocking(move || privsep.open_session(start))
        .await
        .map_err(|_| PrivsepError::Gone)??;
    stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(stream))
        .map_err(PrivsepError::Io)
}

/// Relay bytes between the client and a session's child until either side ends.
pub async fn relay(mut client: Box<dyn crate::net::Io>, mut child: tokio::net::UnixStream) {
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut child).await {
        tracing::debug!("session relay ended: {e}");
    }
}
