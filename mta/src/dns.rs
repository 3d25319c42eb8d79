//! The one DNS resolver of mta (hickory, from `[dns] nameservers` or
//! /etc/resolv.conf), and the lookups mail routing needs, with answers
//! (MX, addresses, TXT, TLSA) sorted into what routing decides on: records, no such domain, no
//! records, or a temporary failure. The same servers can be asked through
//! a DNSSEC-validating resolver (`[dns] dnssec`, for DANE), whose answers
//! also say whether they were proved secure; a bogus answer is a temporary
//! failure.

use crate::config::{DnsConfig, IpVersion};
use crate::outbound::dane::Tlsa;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
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

#[derive(Debug, thiserror::Error)]
#[error("DNSSEC trust anchor {0}: {1}")]
pub struct TrustAnchorError(PathBuf, String);

pub struct Dns {
    resolver: TokioResolver,
}

/// Records and whether DNSSEC proved them (always false from a resolver
/// that does not validate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proved<T> {
    pub records: T,
    pub secure: bool,
}

/// The records of `kind` in an answer, and whether all of them were proved
/// secure; records proved bogus make the answer a temporary failure.
fn proved<'a>(
    name: &str,
    records: impl Iterator<Item = &'a Record>,
    kind: RecordType,
) -> Result<Proved<Vec<&'a RData>>, LookupError> {
    let mut out = Vec::new();
    let mut secure = true;
    for r in records.filter(|r| r.record_type() == kind) {
        match r.proof {
            Proof::Bogus => {
                return Err(LookupError::Temporary(
                    name.to_string(),
                    "DNSSEC validation failed (bogus)".into(),
                ));
            }
            Proof::Secure => {}
            _ => secure = false,
        }
        out.push(&r.data);
    }
    Ok(Proved {
        secure: secure && !out.is_empty(),
        records: out,
    })
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

/// A resolver of `config`'s servers; validating DNSSEC with `trust_anchor` when given.
fn resolver(config: &DnsConfig, trust_anchor: Option<Arc<TrustAnchors>>) -> TokioResolver {
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
    let builder = builder.with_options(opts);
    let builder = match trust_anchor {
        Some(anchors) => builder.with_trust_anchor(anchors),
        None => builder,
    };
    builder.build().expect("resolver without TLS builds")
}

impl Dns {
    /// Build the resolver; a missing /etc/resolv.conf leaves one with no
    /// servers, whose lookups fail temporarily (mail waits, nothing bounces).
    pub fn new(config: &DnsConfig) -> Dns {
        Dns {
            resolver: resolver(config, None),
        }
    }

    /// A resolver of the same servers that validates DNSSEC, trusting
    /// `[dns] trust_anchor` (else hickory's root keys); None unless
    /// `[dns] dnssec` is on.
    pub fn validating(config: &DnsConfig) -> Result<Option<Dns>, TrustAnchorError> {
        if !config.dnssec {
            return Ok(None);
        }
        let anchors = match &config.trust_anchor {
            Some(path) => {
                let anchors =
                    TrustAnchors::from_file(path).map_err(|e| TrustAnchorError(path.clone(), e.to_string()))?;
                if anchors.is_empty() {
                    return Err(TrustAnchorError(
                        path.clone(),
                        "no DNSKEY record of the root zone".into(),
                    ));
                }
                anchors
            }
            None => TrustAnchors::default(),
        };
        Ok(Some(Dns {
            resolver: resolver(config, Some(Arc::new(anchors))),
        }))
    }

    /// mail-auth's authenticator over this resolver, so SPF, DKIM, DMARC and
    /// iprev lookups go where `[dns]` says.
    pub fn authenticator(&self) -> mail_auth::MessageAuthenticator {
        mail_auth::MessageAuthenticator(self.resolver.clone())
    }

    /// MX records of `domain` as (preference, exchange without the final dot).
    pub async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, LookupError> {
        Ok(self.mx_proved(domain).await?.records)
    }

    /// The `kind` records at `name`, each converted, with whether DNSSEC proved them.
    async fn lookup_proved<T>(
        &self,
        name: &str,
        kind: RecordType,
        convert: impl Fn(&RData) -> Option<T>,
    ) -> Result<Proved<Vec<T>>, LookupError> {
        let lookup = self
            .resolver
            .lookup(absolute(name), kind)
            .await
            .map_err(|e| classify(name, e))?;
        let found = proved(name, lookup.answers().iter(), kind)?;
        Ok(Proved {
            secure: found.secure,
            records: found.records.into_iter().filter_map(convert).collect(),
        })
    }

    /// [`Dns::mx`], with whether DNSSEC proved the RRset.
    pub async fn mx_proved(&self, domain: &str) -> Result<Proved<Vec<(u16, String)>>, LookupError> {
        self.lookup_proved(domain, RecordType::MX, |data| match data {
            RData::MX(mx) => Some((
                mx.preference,
                mx.exchange.to_ascii().trim_end_matches('.').to_ascii_lowercase(),
            )),
            _ => None,
        })
        .await
    }

    /// TLSA records at `name` (`_25._tcp.mx.example.org`), with whether
    /// DNSSEC proved them.
    pub async fn tlsa(&self, name: &str) -> Result<Proved<Vec<Tlsa>>, LookupError> {
        self.lookup_proved(name, RecordType::TLSA, |data| match data {
            RData::TLSA(t) => Some(Tlsa {
                usage: t.cert_usage.into(),
                selector: t.selector.into(),
                matching: t.matching.into(),
                data: t.cert_data.clone(),
            }),
            _ => None,
        })
        .await
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
                RData::TXT(t) => String::from_utf8(t.txt_data.concat()).ok(),
                _ => None,
            })
            .collect())
    }

    /// Addresses of `host` of the wanted families, IPv6 first for "any".
    pub async fn addresses(&self, host: &str, version: IpVersion) -> Result<Vec<IpAddr>, LookupError> {
        Ok(self.addresses_proved(host, version).await?.records)
    }

    /// [`Dns::addresses`], with whether DNSSEC proved every address RRset found.
    pub async fn addresses_proved(&self, host: &str, version: IpVersion) -> Result<Proved<Vec<IpAddr>>, LookupError> {
        let mut found = Vec::new();
        let mut secure = true;
        let mut first_error = None;
        for kind in [RecordType::AAAA, RecordType::A] {
            let wanted = match kind {
                RecordType::AAAA => version != IpVersion::Ipv4,
                _ => version != IpVersion::Ipv6,
            };
            if !wanted {
                continue;
            }
            let answer = self
                .lookup_proved(host, kind, |data| match data {
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    _ => None,
                })
                .await;
            match answer {
                Ok(Proved {
                    records,
                    secure: family_secure,
                }) => {
                    secure &= family_secure || records.is_empty();
                    found.extend(records);
                }
                Err(e) => {
                    // A temporary failure of either family outweighs "no records" of the other.
                    if first_error.is_none() || matches!(e, LookupError::Temporary(..)) {
                        first_error = Some(e);
                    }
                }
            }
        }
        match (found.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(LookupError::NoRecords(host.to_string())),
            (false, _) => Ok(Proved { records: found, secure }),
        }
    }
}
