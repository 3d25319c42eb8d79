//! Privilege separation: when mta starts as root with a `user` to become,
//! a small privileged helper is forked before anything else starts; the
//! network-facing rest drops to `user` after binding and asks the helper
//! for the two jobs that need root: checking a system user's password
//! against /etc/shadow, and acting as a system user (delivering into their
//! files, running their programs, serving their IMAP/POP3 session in a
//! child that runs as them). Requests go over SOCK_SEQPACKET socketpairs
//! in the narrow [`protocol`]; see [`helper`] for what the helper checks.

pub mod client;
pub mod helper;
pub mod protocol;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PrivsepError {
    #[error("privileged helper: {0}")]
    Socket(#[from] nix::Error),
    #[error("privileged helper: {0}")]
    Io(#[from] std::io::Error),
    #[error("privileged helper: {0}")]
    Protocol(#[from] protocol::ProtocolError),
    #[error("privileged helper went away")]
    Gone,
    #[error("privileged helper sent a message over the size limit")]
    Truncated,
    #[error("privileged helper gave an unexpected answer")]
    Unexpected,
}

/// Send one message, with `fd` attached when given.
fn send_frame(socket: BorrowedFd<'_>, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> Result<(), PrivsepError> {
    let fds: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs: Vec<ControlMessage<'_>> = match fds.is_empty() {
        true => Vec::new(),
        false => vec![ControlMessage::ScmRights(&fds)],
    };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &cmsgs,
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Receive one message and the descriptor sent with it, if any. An empty
/// message is the other end closing.
fn recv_frame(socket: BorrowedFd<'_>) -> Result<(Vec<u8>, Option<OwnedFd>), PrivsepError> {
    let mut buf = vec![0u8; protocol::MAX_FRAME + 1];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let (bytes, truncated, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                fds.extend(received);
            }
        }
        let truncated = msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        (msg.bytes, truncated, fds)
    };
    // SAFETY: the kernel just gave us these descriptors; nothing else owns them.
    let mut fds: Vec<OwnedFd> = fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }).collect();
    if truncated {
        return Err(PrivsepError::Truncated);
    }
    if fds.len() > 1 {
        return Err(PrivsepError::Unexpected);
    }
    buf.truncate(bytes);
    Ok((buf, fds.pop()))
}
