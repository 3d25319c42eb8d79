//! The mail server behind greyd: SMTP server, durable queue, local
//! delivery (Maildir, mbox, pipe), authentication, and the tools around
//! them, the outbound relay (MX routing, SMTP client), and the mail store
//! with the IMAP and POP3 servers over it, webmail, and ManageSieve for
//! the users' Sieve scripts.

pub mod account;
pub mod aliases;
pub mod auth;
pub mod config;
pub use greyd_shared::datetime;
pub mod deliver;
pub mod dns;
pub mod envelope;
pub mod frontend;
pub mod greyd_control;
pub mod imap;
pub mod inbound_auth;
pub mod lists;
pub mod managesieve;
pub mod metrics;
pub mod net;
pub mod outbound;
pub mod pop3;
pub mod privileges;
pub mod privsep;
pub mod queue;
pub mod recipient;
pub mod reload;
pub mod reporting;
pub mod runner;
pub mod service;
pub mod sieve;
pub mod smtp;
pub mod stats;
pub mod store;
pub mod submit;
pub mod tls;
pub mod virtusertable;
pub mod web;
