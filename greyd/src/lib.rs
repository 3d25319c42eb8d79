//! greyd: the tarpit and greylister in the role of OpenBSD's spamd(8).
//!
//! - [`smtp`]: the tarpit/greylist dialogue, a pure state machine;
//! - [`grey`]: tuples, pass and expiry rules, traps;
//! - [`dnswl`]: DNS allowlist sites and scores;
//! - [`db`]: the embedded, crash-safe database;
//! - [`lists`]: black and allow lists loaded at run time;
//! - [`firewall`]: how connections reach greyd (one trait, several backends);
//! - [`control`]: the Unix control socket used by greydb, greyd-setup and the MTA;
//! - [`config`]: command line and TOML configuration;
//! - [`metrics`]: greyd's counters, read by the Prometheus endpoint and the `stats` request;
//! - [`sync`]: peer sync in spamd's wire format;
//! - [`server`]: the async daemon that ties them together.

pub mod config;
pub mod control;
pub mod db;
pub mod dnswl;
pub mod firewall;
pub mod grey;
pub mod lists;
pub mod metrics;
pub mod server;
pub mod smtp;
pub mod sync;
