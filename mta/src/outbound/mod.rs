//! Outbound mail: routing of remote recipients (`route`), SMTP replies
//! (`reply`), the client transaction (`client`), the connection shell
//! (`session`), the delivery of a message's remote recipients with its
//! limits, connection reuse and logs (`deliver`); delivery status
//! notifications (`dsn`), DKIM signing of what we send (`dkim`), SRS for
//! what we forward (`srs`), and the TLS each destination needs
//! (`tls_policy`, with MTA-STS in `mta_sts` and DANE's TLSA matching in
//! `dane`).

pub mod client;
pub mod dane;
pub mod deliver;
pub mod dkim;
pub mod dsn;
pub mod mta_sts;
pub mod reply;
pub mod route;
pub mod session;
pub mod srs;
pub mod tls_policy;

pub use deliver::{Disposition, Outbound, Outcome};
