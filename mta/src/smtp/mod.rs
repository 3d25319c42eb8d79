//! SMTP: the pure protocol pieces (command parser, line framing, DATA
//! decoder) and the tokio server that drives sessions.

pub mod command;
pub mod data;
pub mod lines;
pub mod server;
pub mod session;
