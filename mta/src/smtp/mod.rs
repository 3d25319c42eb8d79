//! SMTP: the pure protocol pieces (command parser, line framing, DATA
//! decoder, PROXY v2 header) and the tokio server that drives sessions.

pub mod command;
pub mod data;
pub mod lines;
pub mod proxy;
pub mod server;
pub mod session;
