//! POP3 (RFC 1939, 2449, 2595, 5034) over the users' mail: the pure command
//! parser and session state machine, the maildrops (Maildir INBOX through
//! the store, or an mbox locked for the session as popa3d does), and the
//! tokio server on 110 (STLS) and 995 (implicit TLS).

pub mod command;
pub mod machine;
pub mod maildrop;
pub mod mbox;
pub mod server;
