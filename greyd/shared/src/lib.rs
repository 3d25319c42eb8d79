//! The small pieces greyd and the mta both use, kept apart so the mta does
//! not link greyd (SQLite, eBPF) for them:
//!
//! - [`datetime`]: the clock and mail's date formats;
//! - [`duration`]: `90s`, `25m`, `4h`, `36d` as config files write them;
//! - [`install`]: an installer's file writes (absent: create, edited: keep);
//! - [`logging`]: log lines to stderr, the journal or syslog;
//! - [`proxy`]: PROXY protocol v2, greyd's encoder and the mta's parser;
//! - [`readiness`]: `READY=1` to systemd once a daemon serves;
//! - [`spf_void`]: SPF evaluation with the two-void-lookup limit.

pub mod datetime;
pub mod duration;
pub mod install;
pub mod logging;
pub mod proxy;
pub mod readiness;
pub mod spf_void;
