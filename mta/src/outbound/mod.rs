//! Outbound mail: delivery status notifications, DKIM signing of what we
//! send, and SRS for what we forward.

pub mod dkim;
pub mod dsn;
pub mod srs;
