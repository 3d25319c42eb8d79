//! ManageSieve (RFC 5804): users upload, check, list, activate, fetch,
//! rename and delete their Sieve scripts. The pure command parser
//! (`command`), the typed responses (`response`), the session state machine
//! (`session`), and the tokio shell on 4190 (`server`). Scripts live where
//! delivery reads them (`sieve::scripts`).

pub mod command;
pub mod response;
pub mod server;
pub mod session;
