//! SPF (RFC 7208) of both identities a client offers: the HELO name and
//! the MAIL FROM address (for `<>`, postmaster@HELO, which is the HELO
//! check again, so its answer is reused). mail-auth evaluates the records
//! with the 10-lookup limit.

use greyd_shared::spf_void;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfOutput};
use std::net::IpAddr;

pub struct Spf {
    pub helo: SpfOutput,
    pub mail_from: SpfOutput,
}

/// `sender` is the MAIL FROM address, empty for `<>`; `host` our host name
/// (the `%{r}` macro).
pub async fn check(auth: &MessageAuthenticator, ip: IpAddr, helo: &str, sender: &str, host: &str) -> Spf {
    let helo_out = spf_void::check_host(auth, SpfParameters::verify_ehlo(ip, helo, host)).await;
    let mail_from = if sender.is_empty() {
        helo_out.clone()
    } else {
        spf_void::check_host(auth, SpfParameters::verify_mail_from(ip, helo, host, sender)).await
    };
    Spf {
        helo: helo_out,
        mail_from,
    }
}
