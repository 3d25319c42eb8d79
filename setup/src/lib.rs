//! greyd-setup: fetches the black and white lists named in spamd.conf(5)
//! (or greyd.toml's `[setup]` section), merges them and loads the result
//! into a running greyd, in the role of OpenBSD's spamd-setup(8).
//!
//! - [`conf`]: spamd.conf; [`tomlconf`]: the TOML form;
//! - [`fetch`]: http(s), file and exec sources, gzip, size caps;
//! - [`parse`]: list entries; [`merge`]: subtract and collapse to CIDRs;
//! - [`cache`]: the last good copy of each list; [`plan`]: one run;
//! - [`load`]: the control socket.
//!
//! Without the default `fetch` feature only the pure parts build (the fuzz
//! targets use them that way).

#![forbid(unsafe_code)]

pub mod cache;
pub mod conf;
#[cfg(feature = "fetch")]
pub mod fetch;
#[cfg(feature = "fetch")]
pub mod load;
pub mod merge;
pub mod parse;
#[cfg(feature = "fetch")]
pub mod plan;
pub mod tomlconf;
