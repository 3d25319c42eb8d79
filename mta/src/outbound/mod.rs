//! Outbound mail: routing of remote recipients (`route`), SMTP replies
//! (`reply`), the client transaction (`client`), the connection shell
//! (`session`), the delivery of a message's remote recipients with its
//! limits, connection reuse and logs (`deliver`); delivery status
//! notifications (`dsn`), DKIM signing of what we send (`dkim`) and SRS for
//! what we forward (`srs`).

pub mod client;
pub mod deliver;
pub mod dkim;
pub mod dsn;
pub mod reply;
pub mod route;
pub mod session;
pub mod srs;

pub use deliver::{Disposition, Outbound, Outcome};
