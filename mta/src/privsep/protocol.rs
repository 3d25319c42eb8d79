//! The privileged helper's request protocol, pure: typed requests and
//! responses and their binary encoding. One message is one datagram on a
//! SOCK_SEQPACKET pair: a kind byte, then fields, each a big-endian u16
//! length and that many bytes (numbers and flags as one or eight bytes).
//! Everything is bounded (frame size, field lengths, list lengths), names
//! are checked as passwd names, text has no NUL, and [`decode`] never panics:
//! the helper runs as root and reads what the network-facing side sends.

use crate::deliver::Target;
use std::net::SocketAddr;
use std::path::PathBuf;
use thiserror::Error;

/// Largest encoded message either way.
pub const MAX_FRAME: usize = 16 * 1024;
/// Longest text field (a path, a password, a program line, an address).
pub const MAX_FIELD: usize = 4096;
/// Longest user name (Linux's LOGIN_NAME_MAX is 256 with the NUL).
pub const MAX_USER: usize = 255;
/// Most IMAP flags a Maildir delivery may set.
pub const MAX_FLAGS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("message of {0} bytes is over the limit")]
    TooLong(usize),
    #[error("message ends early")]
    Truncated,
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("bytes left after the message")]
    Trailing,
    #[error("field of {0} bytes is over the limit")]
    FieldTooLong(usize),
    #[error("text field is not UTF-8 or holds NUL")]
    BadText,
    #[error("{0:?} is not a user name")]
    BadUser(String),
    #[error("bad socket address {0:?}")]
    BadAddress(String),
    #[error("too many flags")]
    TooManyFlags,
}

/// A session protocol the helper can hand a system user's connection to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Pop3,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "imap" => Some(Protocol::Imap),
            "pop3" => Some(Protocol::Pop3),
            _ => None,
        }
    }
}

/// A delivery for a system user; the message comes as a file descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub user: String,
    pub target: Target,
    pub sender: String,
    pub recipient: String,
    pub arrived: u64,
}

/// An authenticated session for a system user; the client's socket comes
/// as a file descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub user: String,
    pub protocol: Protocol,
    /// The IMAP tag of the LOGIN/AUTHENTICATE the child answers (empty for POP3).
    pub tag: String,
    /// How the user proved itself, for the log ("LOGIN", "PLAIN", ...).
    pub how: String,
    pub peer: SocketAddr,
    /// The client's connection is TLS (kept by the front).
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CheckPassword { user: String, password: String },
    Deliver(Delivery),
    Session(SessionStart),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The password is right.
    Yes,
    /// The password is wrong, or there is no such user.
    No,
    Delivered,
    Failed {
        temporary: bool,
        message: String,
    },
    /// The session's child runs and owns the connection now.
    Started,
}

/// Whether `name` may be a passwd user name: what useradd accepts
/// (letters, digits, `_`, `-`, `.`, a final `$`), not starting with `-`.
pub fn valid_user(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    !body.is_empty()
        && name.len() <= MAX_USER
        && !body.starts_with('-')
        && body != "."
        && body != ".."
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

const CHECK_PASSWORD: u8 = 1;
const DELIVER: u8 = 2;
const SESSION: u8 = 3;

const YES: u8 = 1;
const NO: u8 = 2;
const DELIVERED: u8 = 3;
const FAILED: u8 = 4;
const STARTED: u8 = 5;

const MAILDIR: u8 = 1;
const MBOX: u8 = 2;
const PROGRAM: u8 = 3;

struct Writer(Vec<u8>);

impl Writer {
    fn byte(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }

    fn text(&mut self, s: &str) -> &mut Self {
        let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
        self
    }

    fn number(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.0.len() < n {
            return Err(ProtocolError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool, ProtocolError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            k => Err(ProtocolError::Kind(k)),
        }
    }

    fn number(&mut self) -> Result<u64, ProtocolError> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| ProtocolError::Truncated)?;
        Ok(u64::from_be_bytes(bytes))
    }

    fn text(&mut self) -> Result<String, ProtocolError> {
        let len_bytes: [u8; 2] = self.take(2)?.try_into().map_err(|_| ProtocolError::Truncated)?;
        let len = usize::from(u16::from_be_bytes(len_bytes));
        if len > MAX_FIELD {
            return Err(ProtocolError::FieldTooLong(len));
        }
        let s = std::str::from_utf8(self.take(len)?).map_err(|_| ProtocolError::BadText)?;
        if s.contains('\0') {
            return Err(ProtocolError::BadText);
        }
        Ok(s.to_string())
    }

    fn user(&mut self) -> Result<String, ProtocolError> {
        let name = self.text()?;
        if valid_user(&name) {
            Ok(name)
        } else {
            Err(ProtocolError::BadUser(name))
        }
    }

    fn path(&mut self) -> Result<PathBuf, ProtocolError> {
        self.text().map(PathBuf::from)
    }

    fn end(&self) -> Result<(), ProtocolError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::Trailing)
        }
    }
}

fn write_target(w: &mut Writer, target: &Target) {
    match target {
        Target::Maildir {
            dir,
            folder,
            create,
            flags,
        } => {
            w.byte(MAILDIR).text(&dir.to_string_lossy());
            match folder {
                Some(f) => w.byte(1).text(f),
                None => w.byte(0),
            };
            w.byte(u8::from(*create)).byte(flags.len().min(MAX_FLAGS) as u8);
            for f in flags.iter().take(MAX_FLAGS) {
                w.text(f);
            }
        }
        Target::Mbox(path) => {
            w.byte(MBOX).text(&path.to_string_lossy());
        }
        Target::Program(cmd) => {
            w.byte(PROGRAM).text(cmd);
        }
    }
}

fn read_target(r: &mut Reader<'_>) -> Result<Target, ProtocolError> {
    match r.byte()? {
        MAILDIR => {
            let dir = r.path()?;
            let folder = if r.flag()? { Some(r.text()?) } else { None };
            let create = r.flag()?;
            let count = usize::from(r.byte()?);
            if count > MAX_FLAGS {
                return Err(ProtocolError::TooManyFlags);
            }
            let flags = (0..count).map(|_| r.text()).collect::<Result<_, _>>()?;
            Ok(Target::Maildir {
                dir,
                folder,
                create,
                flags,
            })
        }
        MBOX => Ok(Target::Mbox(r.path()?)),
        PROGRAM => Ok(Target::Program(r.text()?)),
        k => Err(ProtocolError::Kind(k)),
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        match self {
            Request::CheckPassword { user, password } => {
                w.byte(CHECK_PASSWORD).text(user).text(password);
            }
            Request::Deliver(d) => {
                w.byte(DELIVER).text(&d.user);
                write_target(&mut w, &d.target);
                w.text(&d.sender).text(&d.recipient).number(d.arrived);
            }
            Request::Session(s) => {
                let protocol = match s.protocol {
                    Protocol::Imap => 1,
                    Protocol::Pop3 => 2,
                };
                w.byte(SESSION)
                    .text(&s.user)
                    .byte(protocol)
                    .text(&s.tag)
                    .text(&s.how)
                    .text(&s.peer.to_string())
                    .byte(u8::from(s.tls));
            }
        }
        w.0
    }
}

/// Read one whole frame with `read`: the size limit first, no bytes left after.
fn read_frame<T>(
    frame: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, ProtocolError>,
) -> Result<T, ProtocolError> {
    if frame.len() > MAX_FRAME {
        return Err(ProtocolError::TooLong(frame.len()));
    }
    let mut r = Reader(frame);
    let value = read(&mut r)?;
    r.end()?;
    Ok(value)
}

/// Read one request, checking every limit; never panics.
pub fn decode(frame: &[u8]) -> Result<Request, ProtocolError> {
    read_frame(frame, |r| {
        Ok(match r.byte()? {
            CHECK_PASSWORD => Request::CheckPassword {
                user: r.user()?,
                password: r.text()?,
            },
            DELIVER => Request::Deliver(Delivery {
                user: r.user()?,
                target: read_target(r)?,
                sender: r.text()?,
                recipient: r.text()?,
                arrived: r.number()?,
            }),
            SESSION => {
                let user = r.user()?;
                let protocol = match r.byte()? {
                    1 => Protocol::Imap,
                    2 => Protocol::Pop3,
                    k => return Err(ProtocolError::Kind(k)),
                };
                let tag = r.text()?;
                let how = r.text()?;
                let peer = r.text()?;
                Request::Session(SessionStart {
                    user,
                    protocol,
                    tag,
                    how,
                    peer: peer.parse().map_err(|_| ProtocolError::BadAddress(peer))?,
                    tls: r.flag()?,
                })
            }
            k => return Err(ProtocolError::Kind(k)),
        })
    })
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        match self {
            Response::Yes => w.byte(YES),
            Response::No => w.byte(NO),
            Response::Delivered => w.byte(DELIVERED),
            Response::Failed { temporary, message } => w.byte(FAILED).byte(u8::from(*temporary)).text(message),
            Response::Started => w.byte(STARTED),
        };
        w.0
    }

    /// Read one response (the front trusts the helper, but not blindly).
    pub fn decode(frame: &[u8]) -> Result<Response, ProtocolError> {
        read_frame(frame, |r| {
            Ok(match r.byte()? {
                YES => Response::Yes,
                NO => Response::No,
                DELIVERED => Response::Delivered,
                FAILED => Response::Failed {
                    temporary: r.flag()?,
                    message: r.text()?,
                },
                STARTED => Response::Started,
                k => return Err(ProtocolError::Kind(k)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[^\0]{0,40}"
    }

    fn user() -> impl Strategy<Value = String> {
        "[a-z_][a-z0-9_.-]{0,30}\\$?"
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            (
                text(),
                proptest::option::of(text()),
                any::<bool>(),
                proptest::collection::vec(text(), 0..4)
            )
                .prop_map(|(dir, folder, create, flags)| Target::Maildir {
                    dir: dir.into(),
                    folder,
                    create,
                    flags
                }),
            text().prop_map(|p| Target::Mbox(p.into())),
            text().prop_map(Target::Program),
        ]
    }

    /// Addresses as the front knows its clients (no IPv6 flow or scope).
    fn peer() -> impl Strategy<Value = SocketAddr> {
        (any::<std::net::IpAddr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (user(), text()).prop_map(|(user, password)| Request::CheckPassword { user, password }),
            (user(), target(), text(), text(), any::<u64>()).prop_map(|(user, target, sender, recipient, arrived)| {
                Request::Deliver(Delivery {
                    user,
                    target,
                    sender,
                    recipient,
                    arrived,
                })
            }),
            (user(), any::<bool>(), text(), text(), peer(), any::<bool>()).prop_map(
                |(user, imap, tag, how, peer, tls)| Request::Session(SessionStart {
                    user,
                    protocol: if imap { Protocol::Imap } else { Protocol::Pop3 },
                    tag,
                    how,
                    peer,
                    tls,
                })
            ),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(req in request()) {
            prop_assert_eq!(decode(&req.encode()), Ok(req));
        }

        #[test]
        fn responses_round_trip(temporary in any::<bool>(), message in text()) {
            for r in [Response::Yes, Response::No, Response::Delivered, Response::Started, Response::Failed { temporary, message }] {
                prop_assert_eq!(Response::decode(&r.encode()), Ok(r));
            }
        }

        #[test]
        fn garbage_is_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let _ = Response::decode(&bytes);
        }

        #[test]
        fn a_cut_request_is_truncated(req in request(), cut in 0usize..64) {
            let bytes = req.encode();
            let cut = cut.min(bytes.len().saturating_sub(1));
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn names_and_limits_are_enforced() {
        let with_user = |user: &str| {
            Request::CheckPassword {
                user: user.into(),
                password: "pw".into(),
            }
            .encode()
        };
        assert!(decode(&with_user("alice")).is_ok());
        assert!(decode(&with_user("machine$")).is_ok());
        for bad in ["", "-rf", "a/b", "..", "a b", "a\0b", "ä"] {
            assert!(
                matches!(
                    decode(&with_user(bad)),
                    Err(ProtocolError::BadUser(_) | ProtocolError::BadText)
                ),
                "{bad:?}"
            );
        }
        let mut long = with_user("alice");
        long.resize(MAX_FRAME + 1, 0);
        assert_eq!(decode(&long), Err(ProtocolError::TooLong(MAX_FRAME + 1)));
        let mut trailing = with_user("alice");
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(ProtocolError::Trailing));
        let mut field = vec![CHECK_PASSWORD, 0, 5];
        field.extend_from_slice(b"alice");
        field.extend_from_slice(&u16::try_from(MAX_FIELD + 1).unwrap().to_be_bytes());
        field.resize(field.len() + MAX_FIELD + 1, b'x');
        assert_eq!(decode(&field), Err(ProtocolError::FieldTooLong(MAX_FIELD + 1)));
    }
}
