//! Local delivery agents: Maildir, mbox and pipe. Each takes the queued
//! message (CRLF lines) and writes it in the local convention (LF lines,
//! `Return-Path:` first). When the daemon runs as root, deliveries for a
//! user run in a child process with that user's uid and gid; after the
//! drop to `user`, the privileged helper starts that child.

pub mod maildir;
pub mod mbox;
pub mod pipe;
pub mod sieve;
pub mod sieve_memory;

use crate::account::Owner;
use std::path::PathBuf;

/// Where one recipient's copy goes, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Maildir; `folder` is a Maildir++ folder name used if it exists
    /// (or made, with `create`); `flags` are IMAP flags the message gets.
    Maildir {
        dir: PathBuf,
        folder: Option<String>,
        create: bool,
        flags: Vec<String>,
    },
    Mbox(PathBuf),
    Program(String),
}

impl Target {
    /// Stable key recorded in the envelope once this target is done.
    pub fn key(&self) -> String {
        match self {
            Target::Maildir { dir, folder, .. } => match folder {
                Some(f) => format!("maildir:{}/.{f}", dir.display()),
                None => format!("maildir:{}", dir.display()),
            },
            Target::Mbox(p) => format!("mbox:{}", p.display()),
            Target::Program(p) => format!("pipe:{p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Worth retrying later (full disk, lock held, EX_TEMPFAIL).
    pub temporary: bool,
    pub message: String,
}

impl DeliveryError {
    pub fn temp(message: impl Into<String>) -> Self {
        DeliveryError {
            temporary: true,
            message: message.into(),
        }
    }

    pub fn perm(message: impl Into<String>) -> Self {
        DeliveryError {
            temporary: false,
            message: message.into(),
        }
    }

    /// I/O errors are temporary: the file system may recover (quota, space, NFS).
    pub fn io(what: &str, e: std::io::Error) -> Self {
        Self::temp(format!("{what}: {e}"))
    }
}

/// What every agent needs to know about the message.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// Envelope sender (`None` for `<>`).
    pub sender: Option<&'a str>,
    pub recipient: &'a str,
    /// Queued content, CRLF lines.
    pub content: &'a [u8],
    pub arrived: u64,
}

impl Message<'_> {
    /// The content with LF lines and a `Return-Path:` header in front.
    pub fn local_form(&self) -> Vec<u8> {
        let mut out = format!("Return-Path: <{}>\n", self.sender.unwrap_or("")).into_bytes();
        out.reserve(self.content.len());
        let mut i = 0;
        let c = self.content;
        while i < c.len() {
            if c[i] == b'\r' && c.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            out.push(c[i]);
            i += 1;
        }
        out
    }
}

/// Deliver in this process (the caller already has the right identity).
pub fn deliver_here(target: &Target, msg: &Message<'_>, hostname: &str) -> Result<(), DeliveryError> {
    match target {
        Target::Maildir {
            dir,
            folder,
            create,
            flags,
        } => maildir::deliver(
            dir,
            &maildir::Placement {
                folder: folder.as_deref(),
                create: *create,
                flags,
            },
            &msg.local_form(),
            hostname,
        ),
        Target::Mbox(path) => mbox::deliver(path, msg),
        Target::Program(cmd) => pipe::deliver(cmd, msg, None),
    }
}

/// Deliver as `owner` when we are root and the owner is someone else, else here.
/// Returns the target the message went into: the Junk folder for mail marked junk.
pub fn deliver(
    target: &Target,
    msg: &Message<'_>,
    owner: Option<&Owner>,
    hostname: &str,
) -> Result<Target, DeliveryError> {
    let target = junk_target(target, msg).unwrap_or_else(|| target.clone());
    let me = nix::unistd::geteuid();
    // After the drop, only the privileged helper can act as someone else.
    match (
        owner.filter(|o| o.uid != me.as_raw()),
        crate::privsep::client::installed(),
    ) {
        (Some(o), _) if me.is_root() => as_owner(&target, msg, o),
        (Some(o), Some(privsep)) => privsep.deliver(o, &target, msg),
        _ => deliver_here(&target, msg, hostname),
    }?;
    Ok(target)
}

/// Deliver as `owner`, in a child with their uid and gid (we are root).
pub fn as_owner(target: &Target, msg: &Message<'_>, owner: &Owner) -> Result<(), DeliveryError> {
    match target {
        Target::Program(cmd) => pipe::deliver(cmd, msg, Some(owner)),
        _ => helper::deliver_as(owner, target, msg),
    }
}

/// Mail our Authentication-Results: marks as junk (a DMARC quarantine) goes
/// into the Junk folder of a Maildir; mbox and programs get it as usual.
fn junk_target(target: &Target, msg: &Message<'_>) -> Option<Target> {
    match target {
        Target::Maildir { dir, flags, .. } if crate::inbound_auth::results::marked_junk(msg.content) => {
            Some(Target::Maildir {
                dir: dir.clone(),
                folder: Some(maildir::JUNK.into()),
                create: true,
                flags: flags.clone(),
            })
        }
        _ => None,
    }
}

/// Make `cmd` run as `owner`: its uid and gid, HOME and USER. (std drops the
/// supplementary groups itself when root sets a uid.)
pub(crate) fn run_as(cmd: &mut std::process::Command, owner: &Owner) {
    use std::os::unix::process::CommandExt;
    cmd.uid(owner.uid)
        .gid(owner.gid)
        .env("HOME", &owner.home)
        .env("USER", &owner.name);
}

/// Run `cmd` with `input` on its stdin. Exit 0 is success, EX_TEMPFAIL or a
/// signal a temporary failure, anything else permanent; stderr is the reason.
fn run_with_input(cmd: &mut std::process::Command, input: &[u8], what: &str) -> Result<(), DeliveryError> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DeliveryError::io(&format!("running {what}"), e))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // A program may exit without reading everything; its exit status decides.
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| DeliveryError::io(&format!("waiting for {what}"), e))?;
    let why = format!("{what}: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    match out.status.code() {
        Some(0) => Ok(()),
        Some(pipe::EX_TEMPFAIL) | None => Err(DeliveryError::temp(why)),
        Some(_) => Err(DeliveryError::perm(why)),
    }
}

pub mod helper {
    //! Maildir/mbox delivery as another user: re-run our own binary
    //! (`mta deliver-as-user ...`) with the user's uid/gid, message on stdin.

    use super::*;
    use std::process::Command;

    /// The hidden subcommand the child runs.
    pub const SUBCOMMAND: &str = "deliver-as-user";

    pub fn deliver_as(owner: &Owner, target: &Target, msg: &Message<'_>) -> Result<(), DeliveryError> {
        let exe = std::env::current_exe().map_err(|e| DeliveryError::io("current_exe", e))?;
        let mut cmd = Command::new(exe);
        cmd.arg(SUBCOMMAND)
            .arg("--sender")
            .arg(msg.sender.unwrap_or(""))
            .arg("--recipient")
            .arg(msg.recipient)
            .arg("--arrived")
            .arg(msg.arrived.to_string());
        match target {
            Target::Maildir {
                dir,
                folder,
                create,
                flags,
            } => {
                cmd.arg("--maildir").arg(dir);
                if let Some(f) = folder {
                    cmd.arg("--folder").arg(f);
                }
                if *create {
                    cmd.arg("--create");
                }
                for f in flags {
                    cmd.arg("--flag").arg(f);
                }
            }
            Target::Mbox(p) => {
                cmd.arg("--mbox").arg(p);
            }
            Target::Program(_) => unreachable!("programs are run by pipe::deliver"),
        }
        super::run_as(&mut cmd, owner);
        super::run_with_input(&mut cmd, msg.content, SUBCOMMAND)
    }
}
