//! The one DNS resolver of mta (hickory, from `[dns] nameservers` or
//! /etc/resolv.conf), and the lookups mail routing needs, with answers
//! (MX, addresses, TXT) sorted into what routing decides on: records, no such domain, no
//! records, or a temporary failure.

use crate::config::{DnsConfig, IpVersion};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use std::net::IpAddr;
use std::time::Duration;

/// Why a lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// NXDOMAIN: the name does not exist.
    #[error("{0}: no such domain")]
    NoSuchDomain(String),
    /// The name exists without records of the asked type.
    #[error("{0}: no records")]
    NoRecords(String),
    /// SERVFAIL, timeout, unreachable server: try again later.
    #[error("{0}: temporary DNS failure: {1}")]
    Temporary(String, String),
}

pub struct Dns {
    resolver: TokioResolver,
}

fn classify(name: &str, e: NetError) -> LookupError {
    if e.is_nx_domain() {
        LookupError::NoSuchDomain(name.to_string())
    } else if e.is_no_records_found() {
        LookupError::NoRecords(name.to_string())
    } else {
        LookupError::Temporary(name.to_string(), e.to_string())
    }
}

/// A name as an absolute DNS name, so no search domain is appended.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

impl Dns {
    /// Build the resolver; a missing /etc/resolv.conf leaves one with no
    /// servers, whose lookups fail temporarily (mail waits, nothing bounces).
    pub fn new(config: &DnsConfig) -> Dns {
        let provider = TokioRuntimeProvider::default();
        let builder = if config.nameservers.is_empty() {
            TokioResolver::builder(provider.clone()).unwrap_or_else(|e| {
                tracing::error!("dns: /etc/resolv.conf: {e}");
                TokioResolver::builder_with_config(ResolverConfig::from_name_servers(Vec::new()), provider)
            })
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|addr| {
                    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                        .into_iter()
                        .map(|mut c| {
                            c.port = addr.port();
                            c
                        })
                        .collect();
                    NameServerConfig::new(addr.ip(), true, connections)
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        let resolver = builder.with_options(opts).build().expect("resolver without TLS builds");
        Dns { resolver }
    }

    /// mail-auth's authenticator over this resolver, so SPF, DKIM, DMARC and
    /// iprev lookups go where `[dns]` says.
    pub fn authenticator(&self) -> mail_auth::MessageAuthenticator {
        mail_auth::MessageAuthenticator(self.resolver.clone())
    }

    /// MX records of `domain` as (preference, exchange without the final dot).
    pub async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, LookupError> {
        let lookup = self
            .resolver
            .mx_lookup(absolute(domain))
            .await
            .map_err(|e| classify(domain, e))?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                hickory_resolver::proto::rr::RData::MX(mx) => Some((
                    mx.preference,
                    mx.exchange.to_ascii().trim_end_matches('.').to_ascii_lowercase(),
                )),
                _ => None,
            })
            .collect())
    }

    /// TXT records at `name`, each record's character-strings joined
    /// (RFC 7208 §3.3, RFC 8461 §3.1); records that are not UTF-8 are left out.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        let lookup = self
            .resolver
            .txt_lookup(absolute(name))
            .await
            .map_err(|e| classify(name, e))?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                hickory_resolver::proto::rr::RData::TXT(t) => String::from_utf8(t.txt_data.concat()).ok(),
                _ => None,
            })
            .collect())
    }

    /// Addresses of `host` of the wanted families, IPv6 first for "any".
    pub async fn addresses(&self, host: &str, version: IpVersion) -> Result<Vec<IpAddr>, LookupError> {
        let mut found = Vec::new();
        let mut first_error = None;
        if version != IpVersion::Ipv4 {
            match self.resolver.ipv6_lookup(absolute(host)).await {
                Ok(l) => found.extend(l.answers().iter().filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) => first_error = Some(classify(host, e)),
            }
        }
        if version != IpVersion::Ipv6 {
            match self.resolver.ipv4_lookup(absolute(host)).await {
                Ok(l) => found.extend(l.answers().iter().filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
                    _ => None,
                })),
                Err(e) => {
                    // A temporary failure of either family outweighs "no records" of the other.
                    let e = classify(host, e);
                    if first_error.is_none() || matches!(e, LookupError::Temporary(..)) {
                        first_error = Some(e);
                    }
                }
            }
        }
        match (found.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(LookupError::NoRecords(host.to_string())),
            (false, _) => Ok(found),
        }
    }
}
