//! The IMAP server (IMAP4rev1, RFC 3501, with IMAP4rev2 basics and the
//! common extensions) over the mail store. The wire grammar is our own
//! bounded, sans-I/O parser (`framer`, `command`, `search`); what the server
//! says is typed in `response`, which alone writes response syntax; `session`
//! is the state machine with its tokio shell, `server` the listeners.

pub mod binary;
pub mod command;
pub mod date;
pub mod deflate;
pub mod framer;
pub mod listing;
pub mod message;
pub mod mutf7;
pub mod parse;
pub mod query;
pub mod response;
pub mod search;
pub mod sequence;
pub mod sequence_match;
pub mod server;
pub mod session;
pub mod sort;
pub mod subject;
pub mod thread;
pub mod view;
