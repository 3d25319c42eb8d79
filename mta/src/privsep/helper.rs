//! The privileged helper: forked while mta is still one thread and root,
//! before the listeners are bound. It keeps uid 0 and nothing else (no
//! listener, no queue, no runtime): a blocking loop on its channel that
//! forks one worker per request, so a slow delivery never holds up a
//! login. It exits when the network-facing side closes the channel.
//!
//! What a worker checks before acting for the unprivileged side:
//! - every user is an existing passwd account other than root;
//! - a password is checked only with `auth.system_users` on;
//! - a Maildir or mbox target must be the user's own mailbox as the
//!   configuration puts it (re-derived here from the passwd entry), a
//!   Maildir++ folder a plain name; a program, or a file other than the
//!   mailbox, must be named in the user's own `~/.forward` (read here, not
//!   followed through a symlink, owned by the user);
//! - the delivery and the session themselves run as the user, in a child
//!   with the user's uid and gid (the existing `deliver-as-user` path and
//!   the `serve-user` subcommand).

use super::protocol::{self, Delivery, Request, Response, SessionStart};
use super::{PrivsepError, recv_frame, send_frame};
use crate::account::{self, Owner};
use crate::aliases::{self, AliasTarget};
use crate::config::{Config, MailboxFormat};
use crate::deliver::{self, Message, Target};
use nix::sys::signal::{SigHandler, Signal, signal};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{ForkResult, fork};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

/// The hidden subcommand a session's child runs.
pub const SERVE_USER: &str = "serve-user";

/// Largest ~/.forward read.
const MAX_FORWARD: u64 = 64 * 1024;

/// Fork the helper. Must be called before any other thread starts. Returns
/// the network-facing side's end of the channel; the helper never returns.
pub fn start(config: &Config, config_path: &Path) -> Result<OwnedFd, PrivsepError> {
    let (front, helper) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: the caller guarantees a single-threaded process, so the child
    // may do anything the parent could.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => Ok(front),
        ForkResult::Child => {
            drop(front);
            name_process();
            serve(&helper, config, config_path);
            std::process::exit(0)
        }
    }
}

/// `mta-privsep` in ps and /proc/PID/comm; gone with the parent.
fn name_process() {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_name(c"mta-privsep");
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    }
}

/// Take requests until the channel closes: each brings the socket its
/// worker answers on.
fn serve(channel: &OwnedFd, config: &Config, config_path: &Path) {
    // Workers are reaped by the kernel; each worker restores SIGCHLD so it
    // can wait for the children it runs as the user.
    // SAFETY: setting a disposition to SIG_IGN runs no handler code.
    let _ = unsafe { signal(Signal::SIGCHLD, SigHandler::SigIgn) };
    loop {
        let request = match recv_frame(channel.as_fd()) {
            Ok((frame, _)) if frame.is_empty() => return,
            Ok((_, Some(socket))) => socket,
            Ok((_, None)) => continue,
            Err(PrivsepError::Socket(nix::Error::EINTR)) => continue,
            Err(e) => {
                tracing::error!("privsep: channel: {e}");
                return;
            }
        };
        // SAFETY: the helper is single-threaded.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                // SAFETY: back to the default disposition, no handler code.
                let _ = unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) };
                work(&request, config, config_path);
                std::process::exit(0)
            }
            Ok(ForkResult::Parent { .. }) => {}
            Err(e) => tracing::error!("privsep: fork: {e}"),
        }
    }
}

/// Answer the one request on `socket`; a session's worker then waits for
/// the session's child, so the helper's process tree shows it.
fn work(socket: &OwnedFd, config: &Config, config_path: &Path) {
    let (response, session) = match recv_frame(socket.as_fd()) {
        Ok((frame, fd)) => match protocol::decode(&frame) {
            Ok(request) => answer(request, fd, config, config_path),
            Err(e) => (refused(format!("bad request: {e}")), None),
        },
        Err(e) => (refused(format!("bad request: {e}")), None),
    };
    if let Err(e) = send_frame(socket.as_fd(), &response.encode(), None) {
        tracing::error!("privsep: answering: {e}");
    }
    if let Some(mut child) = session {
        let _ = child.wait();
    }
}

fn refused(message: String) -> Response {
    tracing::warn!("privsep: refused: {message}");
    Response::Failed {
        temporary: false,
        message,
    }
}

/// The account `user` names, if it is one the helper acts for.
fn account_of(user: &str) -> Result<Owner, String> {
    match account::lookup(user) {
        Some(o) if o.uid != 0 => Ok(o),
        Some(_) => Err(format!("{user:?} is root")),
        None => Err(format!("no system user {user:?}")),
    }
}

/// The response to one request, and the session child to wait for after sending it.
fn answer(
    request: Request,
    fd: Option<OwnedFd>,
    config: &Config,
    config_path: &Path,
) -> (Response, Option<std::process::Child>) {
    match (request, fd) {
        (Request::CheckPassword { user, password }, _) => {
            let yes =
                config.auth.system_users && account_of(&user).is_ok() && crate::auth::shadow::verify(&user, &password);
            (if yes { Response::Yes } else { Response::No }, None)
        }
        (Request::Deliver(d), Some(message)) => {
            let response = match deliver_for(config, &d, message) {
                Ok(()) => Response::Delivered,
                Err(e) => Response::Failed {
                    temporary: e.temporary,
                    message: e.message,
                },
            };
            (response, None)
        }
        (Request::Session(s), Some(connection)) => match start_session(config_path, &s, connection) {
            Ok(child) => (Response::Started, Some(child)),
            Err(e) => (refused(e), None),
        },
        (_, None) => (refused("request without its descriptor".into()), None),
    }
}

/// Check `d` against the user's account, read the message, and deliver as the user.
fn deliver_for(config: &Config, d: &Delivery, message: OwnedFd) -> Result<(), deliver::DeliveryError> {
    let owner = account_of(&d.user).map_err(deliver::DeliveryError::perm)?;
    allowed_target(config, &owner, &d.target, &forward_targets(&owner)).map_err(deliver::DeliveryError::perm)?;
    let limit = config.smtp.max_message_size.saturating_mul(2).max(1 << 20);
    let mut content = Vec::new();
    std::fs::File::from(message)
        .take(limit + 1)
        .read_to_end(&mut content)
        .map_err(|e| deliver::DeliveryError::io("reading the message", e))?;
    if content.len() as u64 > limit {
        return Err(deliver::DeliveryError::perm(format!("message over {limit} bytes")));
    }
    let msg = Message {
        sender: Some(d.sender.as_str()).filter(|s| !s.is_empty()),
        recipient: &d.recipient,
        content: &content,
        arrived: d.arrived,
    };
    deliver::as_owner(&d.target, &msg, &owner)
}

/// Whether the unprivileged side may have `target` written or run as
/// `owner`: the mailbox the configuration gives the account, or what the
/// account's own .forward (`forward`) names.
pub fn allowed_target(config: &Config, owner: &Owner, target: &Target, forward: &[AliasTarget]) -> Result<(), String> {
    let (format, mailbox) = config.delivery.system_mailbox(&owner.name, &owner.home);
    let refuse = || Err(format!("{} is not a mail target of {}", target.key(), owner.name));
    match target {
        Target::Maildir { dir, folder, .. } => {
            let plain_folder = folder
                .as_deref()
                .is_none_or(|f| !f.contains('/') && !f.starts_with('.') && !f.contains(".."));
            if format == MailboxFormat::Maildir && *dir == mailbox && plain_folder {
                Ok(())
            } else {
                refuse()
            }
        }
        Target::Mbox(path) => {
            let named = forward.iter().any(|t| matches!(t, AliasTarget::File(f) if f == path));
            if (format == MailboxFormat::Mbox && *path == mailbox) || named {
                Ok(())
            } else {
                refuse()
            }
        }
        Target::Program(cmd) => {
            if forward.iter().any(|t| matches!(t, AliasTarget::Program(p) if p == cmd)) {
                Ok(())
            } else {
                refuse()
            }
        }
    }
}

/// The targets of `owner`'s ~/.forward, read without following a symlink
/// and only if the file is the owner's own.
fn forward_targets(owner: &Owner) -> Vec<AliasTarget> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(owner.home.join(".forward"))
    else {
        return Vec::new();
    };
    if !file.metadata().is_ok_and(|m| m.is_file() && m.uid() == owner.uid) {
        return Vec::new();
    }
    let mut text = String::new();
    if file.take(MAX_FORWARD).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    aliases::parse_forward(&text).unwrap_or_default()
}

/// Run `mta serve-user` as the session's user, on `connection`.
fn start_session(config_path: &Path, s: &SessionStart, connection: OwnedFd) -> Result<std::process::Child, String> {
    let owner = account_of(&s.user)?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let input = connection.try_clone().map_err(|e| format!("dup: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config")
        .arg(config_path)
        .arg(SERVE_USER)
        .arg("--protocol")
        .arg(s.protocol.name())
        .arg("--user")
        .arg(&owner.name)
        .arg("--tag")
        .arg(&s.tag)
        .arg("--how")
        .arg(&s.how)
        .arg("--peer")
        .arg(s.peer.to_string());
    if s.tls {
        cmd.arg("--tls");
    }
    deliver::run_as(&mut cmd, &owner);
    cmd.current_dir(if owner.home.is_dir() {
        owner.home.as_path()
    } else {
        Path::new("/")
    })
    .stdin(Stdio::from(input))
    .stdout(Stdio::from(connection))
    .spawn()
    .map_err(|e| format!("starting the session of {}: {e}", owner.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn owner() -> Owner {
        Owner {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            home: PathBuf::from("/home/alice"),
        }
    }

    fn maildir(dir: &str, folder: Option<&str>) -> Target {
        Target::Maildir {
            dir: dir.into(),
            folder: folder.map(String::from),
            create: true,
            flags: Vec::new(),
        }
    }

    #[test]
    fn a_delivery_outside_the_users_mailbox_is_refused_before_anything_is_read() {
        let config = Config::default();
        let (reader, writer) = nix::unistd::pipe().unwrap();
        drop(writer);
        let request = Request::Deliver(Delivery {
            user: "nobody".into(),
            target: maildir("/tmp/not-nobodys-maildir", None),
            sender: String::new(),
            recipient: "nobody@localhost".into(),
            arrived: 0,
        });
        let (response, child) = answer(request, Some(reader), &config, Path::new("/dev/null"));
        assert!(child.is_none());
        match response {
            Response::Failed { temporary, message } => {
                assert!(!temporary);
                assert!(message.contains("is not a mail target of nobody"), "{message}");
            }
            other => panic!("delivered: {other:?}"),
        }
        assert!(!Path::new("/tmp/not-nobodys-maildir").exists());
        let root = Request::CheckPassword {
            user: "root".into(),
            password: "anything".into(),
        };
        assert_eq!(answer(root, None, &config, Path::new("/dev/null")).0, Response::No);
    }

    #[test]
    fn only_the_users_own_mailbox_and_forward_targets_are_delivered_to() {
        let mut config = Config::default();
        config.delivery.format = MailboxFormat::Maildir;
        let alice = owner();
        let ok = |t: &Target, forward: &[AliasTarget]| allowed_target(&config, &alice, t, forward);
        assert!(ok(&maildir("/home/alice/Maildir", None), &[]).is_ok());
        assert!(ok(&maildir("/home/alice/Maildir", Some("Lists.rust")), &[]).is_ok());
        for (dir, folder) in [
            ("/home/bob/Maildir", None),
            ("/etc", None),
            ("/home/alice/Maildir/../../bob/Maildir", None),
            ("/home/alice/Maildir", Some("../../bob")),
            ("/home/alice/Maildir", Some("/etc")),
        ] {
            let err = ok(&maildir(dir, folder), &[]).unwrap_err();
            assert!(err.contains("is not a mail target of alice"), "{err}");
        }
        assert!(
            ok(&Target::Mbox("/var/mail/alice".into()), &[]).is_err(),
            "not the Maildir format"
        );
        assert!(ok(&Target::Program("cat > /tmp/x".into()), &[]).is_err());
        let forward = aliases::parse_forward("\"|/usr/bin/procmail\"\n# old\n/home/alice/archive\n").unwrap();
        assert!(ok(&Target::Program("/usr/bin/procmail".into()), &forward).is_ok());
        assert!(ok(&Target::Mbox("/home/alice/archive".into()), &forward).is_ok());
        assert!(ok(&Target::Program("/usr/bin/other".into()), &forward).is_err());
        config.delivery.format = MailboxFormat::Mbox;
        config.delivery.mbox_dir = "/var/mail".into();
        let ok = |t: &Target| allowed_target(&config, &alice, t, &[]);
        assert!(ok(&Target::Mbox("/var/mail/alice".into())).is_ok());
        assert!(ok(&Target::Mbox("/var/mail/bob".into())).is_err());
        assert!(ok(&maildir("/home/alice/Maildir", None)).is_err());
    }
}
