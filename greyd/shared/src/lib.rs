//! The small pieces greyd and the mta both use, kept apart so the mta does
//! not link greyd (SQLite, eBPF) for them:
//!
//! - [`datetime`]: the clock and mail's date formats;
//! - [`logging`]: log lines to stderr or syslog;
//! - [`proxy`]: PROXY protocol v2, greyd's encoder and the mta's parser.

pub mod datetime;
pub mod logging;
pub mod proxy;
