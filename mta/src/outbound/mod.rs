//! Outbound delivery: routing of remote recipients (`route`), SMTP replies
//! (`reply`), the client transaction (`client`), the connection shell
//! (`session`) and the delivery of a message's remote recipients with its
//! limits, connection reuse and logs (`deliver`).

pub mod client;
pub mod deliver;
pub mod reply;
pub mod route;
pub mod session;

pub use deliver::{Disposition, Outbound, Outcome};
