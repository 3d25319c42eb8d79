//! greyd: the tarpit and greylister in the role of OpenBSD's spamd(8).
//!
//! - [`grey`]: tuples, pass and expiry rules, traps;
//! - [`db`]: the embedded, crash-safe database;
//! - [`lists`]: black and allow lists loaded at run time;
//! - [`control`]: the Unix control socket used by greydb, greyd-setup and the MTA.

pub mod control;
pub mod db;
pub mod grey;
pub mod lists;
