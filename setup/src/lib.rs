//! greyd-setup: fetches the black and white lists named in spamd.conf(5)
//! (or greyd.toml's `[setup]` section), merges them and loads the result
//! into a running greyd, in the role of OpenBSD's spamd-setup(8).
//!
//! - [`conf`]: spamd.conf; [`tomlconf`]: the TOML form;
//! - [`fetch`]: http(s), file and exec sources, gzip, size caps;
//! - [`parse`]: list entries; [`merge`]: subtract and collapse to CIDRs;
//! - [`cache`]: the last good copy of each list; [`plan`]: one run;
//! - [`load`]: the control socket.

pub mod cache;
pub mod conf;
pub mod fetch;
pub mod load;
pub mod merge;
pub mod parse;
pub mod plan;
pub mod tomlconf;
