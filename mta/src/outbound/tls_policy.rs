//! Outbound TLS policy: which level a destination gets (the Postfix
//! smtp_tls_policy_maps-style table first, then MTA-STS, else opportunistic
//! `may`), whether DANE is tried for it (table `dane`, `dane-only`, and by
//! default when `[dns] dnssec` is on, as Postfix's `smtp_tls_security_level
//! = dane` with `smtp_dns_support_level = dnssec`), which of its MX hosts
//! may be used, whether a session's TLS is good enough, and how the outcome
//! is logged (`TLSv1.3 verified=yes policy=sts`, `verified=dane`).
//! Certificates are checked against the system roots plus `[outbound]
//! tls_ca_file`, or against a host's TLSA records.

use super::dane::{self, Tlsa};
use super::mta_sts::{self, Sts};
use super::route::{self, Destination};
use crate::config::Config;
use crate::dns::Dns;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Postfix's security levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, any certificate (RFC 7435).
    May,
    /// TLS required, any certificate.
    Encrypt,
    /// TLS required, the certificate must chain to a trust anchor and name the host.
    Verify,
}

/// Whether a destination's MX hosts are looked for in DANE (RFC 7672).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dane {
    Off,
    /// Postfix's `dane`: a host with usable TLSA records must match them;
    /// others get the level (`may`, or MTA-STS).
    Preferred,
    /// `dane-only`: a host without usable TLSA records is not used.
    Required,
}

/// One table entry: the level, DANE, and for `verify` the names to match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    level: Level,
    dane: Dane,
    matches: Vec<Match>,
}

/// A `match=` name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    /// The MX host name (Postfix's `hostname`, the default).
    Hostname,
    /// The recipient domain (`nexthop`).
    Nexthop,
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS policy table line {line}: {why}")]
pub struct TableError {
    pub line: usize,
    pub why: String,
}

/// `domain none|may|encrypt|verify|dane|dane-only [match=name:name...]`,
/// `.domain` for its subdomains, `#` comments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyTable {
    entries: HashMap<String, Entry>,
}

impl PolicyTable {
    pub fn parse(text: &str) -> Result<PolicyTable, TableError> {
        let mut entries = HashMap::new();
        for (n, line) in route::table_lines(text) {
            let err = |why: String| TableError { line: n, why };
            let mut words = line.split_whitespace();
            let (Some(domain), Some(level)) = (words.next(), words.next()) else {
                return Err(err("expected `domain none|may|encrypt|verify|dane|dane-only`".into()));
            };
            let (level, dane) = match level {
                "none" => (Level::None, Dane::Off),
                "may" => (Level::May, Dane::Off),
                "encrypt" => (Level::Encrypt, Dane::Off),
                "verify" => (Level::Verify, Dane::Off),
                "dane" => (Level::May, Dane::Preferred),
                "dane-only" => (Level::Encrypt, Dane::Required),
                other => return Err(err(format!("unknown level {other:?}"))),
            };
            let mut matches = Vec::new();
            for attr in words {
                let names = attr
                    .strip_prefix("match=")
                    .filter(|_| level == Level::Verify)
                    .ok_or_else(|| err(format!("unexpected {attr:?} (only match= after verify)")))?;
                for name in names.split(':').filter(|n| !n.is_empty()) {
                    matches.push(match name {
                        "hostname" => Match::Hostname,
                        "nexthop" => Match::Nexthop,
                        n if n.starts_with('.') => {
                            return Err(err(format!("sub-domain match {n:?} is not supported")));
                        }
                        n => Match::Name(n.to_ascii_lowercase()),
                    });
                }
            }
            if matches.is_empty() {
                matches.push(Match::Hostname);
            }
            entries.insert(domain.to_ascii_lowercase(), Entry { level, dane, matches });
        }
        Ok(PolicyTable { entries })
    }

    fn lookup(&self, domain: &str) -> Option<&Entry> {
        route::nearest(&self.entries, domain)
    }
}

/// Where a destination's policy came from, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    Table,
    Sts,
    /// An MTA-STS policy in mode testing: failures are logged, not enforced.
    StsTesting,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::Table => "table",
            Source::Sts => "sts",
            Source::StsTesting => "sts-testing",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsPolicyError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Table(PathBuf, TableError),
    #[error("{0}: {1}")]
    CaFile(PathBuf, rustls_pki_types::pem::Error),
}

/// Why a destination's policy refuses a host or a session. In MTA-STS
/// testing mode these are only logged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    #[error("MX host {host} is not in the MTA-STS policy of {nexthop}")]
    HostNotListed { host: String, nexthop: String },
    #[error("no MX host of {nexthop} is in its MTA-STS policy (mx: {})", .mx.join(", "))]
    NoHostListed { nexthop: String, mx: Vec<String> },
    #[error("{host} did not use TLS, which the {policy} policy requires")]
    NoTls { host: String, policy: Source },
    #[error("certificate of {host} not verified ({why})")]
    NotVerified { host: String, why: VerifyError },
    #[error("certificate of {host} does not match its TLSA records: {why}")]
    TlsaMismatch { host: String, why: dane::DaneError },
}

/// Why a server's certificate chain did not pass.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    #[error("no trust anchors are configured")]
    NoTrustAnchors,
    #[error("the server sent no certificate")]
    NoCertificate,
    #[error("the policy names no name to match")]
    NoName,
    #[error("{0:?} is not a valid name")]
    BadName(String),
    #[error(transparent)]
    Rejected(rustls::Error),
}

/// The policy of one destination, or of one of its hosts once its TLSA
/// records are known.
#[derive(Clone)]
pub struct Policy {
    pub level: Level,
    pub source: Source,
    pub dane: Dane,
    /// The usable TLSA records of the host: its certificate must match one.
    tlsa: Option<Vec<Tlsa>>,
    /// The domain or host the policy belongs to.
    nexthop: String,
    matches: Vec<Match>,
    /// The MTA-STS policy (enforce or testing) that limits the MX hosts.
    sts: Option<mta_sts::Policy>,
    verifier: Option<Arc<WebPkiServerVerifier>>,
}

impl Policy {
    /// STARTTLS must succeed or the host is not used.
    pub fn requires_tls(&self) -> bool {
        self.level >= Level::Encrypt
    }

    /// The policy for a host whose TLSA RRset DNSSEC proved (RFC 7672 §2.2):
    /// TLS is required; with usable records the certificate must match one
    /// of them, and DANE takes the place of MTA-STS (RFC 8461 §2); without,
    /// any certificate will do. None when the policy is `dane-only` and no
    /// record is usable.
    pub fn with_tlsa(&self, records: Vec<Tlsa>) -> Option<Policy> {
        let usable: Vec<Tlsa> = records.into_iter().filter(Tlsa::usable).collect();
        if usable.is_empty() && self.dane == Dane::Required {
            return None;
        }
        let mut host = self.clone();
        host.level = host.level.max(Level::Encrypt);
        if !usable.is_empty() {
            host.sts = None;
            host.tlsa = Some(usable);
        }
        Some(host)
    }

    /// STARTTLS is never tried.
    pub fn forbids_tls(&self) -> bool {
        self.level == Level::None
    }

    /// A failure that counts only when the policy is enforced; in testing
    /// mode it is logged and delivery goes on.
    fn judge(&self, id: &str, why: PolicyError) -> Result<(), PolicyError> {
        if self.source == Source::StsTesting {
            tracing::info!("{id}: MTA-STS testing for {}: {why}; delivering anyway", self.nexthop);
            Ok(())
        } else {
            Err(why)
        }
    }

    /// Keep the hosts the MTA-STS policy names; an error when none is left.
    pub fn filter_hosts<T>(&self, id: &str, targets: Vec<(String, T)>) -> Result<Vec<(String, T)>, PolicyError> {
        let Some(sts) = &self.sts else {
            return Ok(targets);
        };
        let mut kept = Vec::new();
        for (host, t) in targets {
            if sts.allows(&host) {
                kept.push((host, t));
            } else {
                let why = PolicyError::HostNotListed {
                    host: host.clone(),
                    nexthop: self.nexthop.clone(),
                };
                match self.judge(id, why) {
                    Ok(()) => kept.push((host, t)),
                    Err(why) => tracing::info!("{id}: {why}; skipped"),
                }
            }
        }
        if kept.is_empty() {
            return Err(PolicyError::NoHostListed {
                nexthop: self.nexthop.clone(),
                mx: sts.mx.clone(),
            });
        }
        Ok(kept)
    }

    fn names(&self, host: &str) -> Vec<String> {
        self.matches
            .iter()
            .map(|m| match m {
                Match::Hostname => host.to_string(),
                Match::Nexthop => self.nexthop.clone(),
                Match::Name(n) => n.clone(),
            })
            .collect()
    }

    /// Whether `certs` (leaf first) chain to a trust anchor and name one
    /// of the names the policy wants for `host`.
    fn verify(&self, host: &str, certs: &[CertificateDer<'static>]) -> Result<(), VerifyError> {
        let Some(verifier) = &self.verifier else {
            return Err(VerifyError::NoTrustAnchors);
        };
        let Some((leaf, intermediates)) = certs.split_first() else {
            return Err(VerifyError::NoCertificate);
        };
        let mut last = VerifyError::NoName;
        for name in self.names(host) {
            let Ok(server_name) = ServerName::try_from(name.clone()) else {
                last = VerifyError::BadName(name);
                continue;
            };
            match verifier.verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now()) {
                Ok(_) => return Ok(()),
                Err(e) => last = VerifyError::Rejected(e),
            }
        }
        Err(last)
    }

    /// Judge the TLS of a session with `host` (`tls` its version, `certs`
    /// the server's chain): the log text (`TLSv1.3 verified=yes
    /// policy=sts`), or why the host must not get the message.
    pub fn check(
        &self,
        id: &str,
        host: &str,
        tls: Option<&str>,
        certs: &[CertificateDer<'static>],
    ) -> Result<String, PolicyError> {
        let Some(version) = tls else {
            if self.level >= Level::Encrypt || self.sts.is_some() {
                self.judge(
                    id,
                    PolicyError::NoTls {
                        host: host.to_string(),
                        policy: self.source,
                    },
                )?;
            }
            return Ok(format!("none policy={}", self.source));
        };
        if let Some(records) = &self.tlsa {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            return match dane::verify(records, certs, host, &provider) {
                Ok(()) => Ok(format!("{version} verified=dane policy={}", self.source)),
                Err(why) => Err(PolicyError::TlsaMismatch {
                    host: host.to_string(),
                    why,
                }),
            };
        }
        let verified = self.verify(host, certs);
        if let Err(why) = &verified
            && (self.level == Level::Verify || self.sts.is_some())
        {
            self.judge(
                id,
                PolicyError::NotVerified {
                    host: host.to_string(),
                    why: why.clone(),
                },
            )?;
        }
        let yes = if verified.is_ok() { "yes" } else { "no" };
        Ok(format!("{version} verified={yes} policy={}", self.source))
    }
}

/// The TLS policies of all destinations.
pub struct TlsPolicies {
    table: PolicyTable,
    sts: Sts,
    verifier: Option<Arc<WebPkiServerVerifier>>,
    /// DANE for destinations without a table entry: on with `[dns] dnssec`.
    default_dane: Dane,
}

/// The trust anchors: the system's roots and the extra PEM file.
fn roots(ca_file: Option<&PathBuf>) -> Result<rustls::RootCertStore, TlsPolicyError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in native.errors {
        tracing::warn!("system trust anchors: {e}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsPolicyError::CaFile(path.clone(), e))?;
        roots.add_parsable_certificates(certs);
    }
    Ok(roots)
}

impl TlsPolicies {
    pub fn new(config: &Config, dns: Arc<Dns>) -> Result<TlsPolicies, TlsPolicyError> {
        let out = &config.outbound;
        let table = match &out.tls_policy {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| TlsPolicyError::Read(path.clone(), e))?;
                PolicyTable::parse(&text).map_err(|e| TlsPolicyError::Table(path.clone(), e))?
            }
            None => PolicyTable::default(),
        };
        let roots = Arc::new(roots(out.tls_ca_file.as_ref())?);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .inspect_err(|e| tracing::warn!("outbound TLS: certificates cannot be verified: {e}"))
            .ok();
        let mut https = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        https.alpn_protocols = vec![b"http/1.1".to_vec()];
        let sts = Sts::new(dns, config.queue.dir.join("mta-sts"), out.mta_sts_port, Arc::new(https));
        let default_dane = if config.dns.dnssec { Dane::Preferred } else { Dane::Off };
        Ok(TlsPolicies {
            table,
            sts,
            verifier,
            default_dane,
        })
    }

    fn nexthop(dest: &Destination) -> &str {
        match dest {
            Destination::Mx(domain) => domain,
            Destination::Host(host, _) => host,
        }
    }

    /// Whether DANE is tried for `dest`: its table entry's, else the default.
    pub fn dane(&self, dest: &Destination) -> Dane {
        match self.table.lookup(Self::nexthop(dest)) {
            Some(entry) => entry.dane,
            None => self.default_dane,
        }
    }

    /// The policy for `dest`: its table entry, else for an MX destination
    /// its MTA-STS policy (enforce or testing), else opportunistic.
    pub async fn for_destination(&self, dest: &Destination) -> Policy {
        let mut policy = Policy {
            level: Level::May,
            source: Source::Default,
            dane: self.dane(dest),
            tlsa: None,
            nexthop: Self::nexthop(dest).to_string(),
            matches: vec![Match::Hostname],
            sts: None,
            verifier: self.verifier.clone(),
        };
        if let Some(entry) = self.table.lookup(&policy.nexthop) {
            policy.level = entry.level;
            policy.matches = entry.matches.clone();
            policy.source = Source::Table;
        } else if let Destination::Mx(domain) = dest
            && let Some(sts) = self.sts.policy(domain).await
        {
            match sts.mode {
                mta_sts::Mode::Enforce => {
                    policy.level = Level::Verify;
                    policy.source = Source::Sts;
                    policy.sts = Some(sts);
                }
                mta_sts::Mode::Testing => {
                    policy.source = Source::StsTesting;
                    policy.sts = Some(sts);
                }
                mta_sts::Mode::None => {}
            }
        }
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(level: Level, source: Source, sts: Option<mta_sts::Policy>) -> Policy {
        Policy {
            level,
            source,
            dane: Dane::Off,
            tlsa: None,
            nexthop: "example.org".into(),
            matches: vec![Match::Hostname],
            sts,
            verifier: None,
        }
    }

    #[test]
    fn table_levels_match_names_and_subdomains() {
        let t = PolicyTable::parse(
            "# policies\nexample.org verify match=hostname:mx.other.net\n.example.org encrypt\nplain.test none\n",
        )
        .unwrap();
        let e = t.lookup("example.org").unwrap();
        assert_eq!(e.level, Level::Verify);
        assert_eq!(e.matches, [Match::Hostname, Match::Name("mx.other.net".into())]);
        assert_eq!(t.lookup("a.b.example.org").unwrap().level, Level::Encrypt);
        assert_eq!(t.lookup("plain.test").unwrap().matches, [Match::Hostname]);
        assert!(t.lookup("other.test").is_none());
        assert_eq!(PolicyTable::parse("x secure\n").unwrap_err().line, 1);
        assert!(PolicyTable::parse("x may match=a\n").is_err());
        assert!(PolicyTable::parse("x verify match=.sub\n").is_err());
        assert!(PolicyTable::parse("\nx\n").is_err());
        let t = PolicyTable::parse("signed.test dane\nstrict.test dane-only\n").unwrap();
        let dane = t.lookup("signed.test").unwrap();
        assert_eq!((dane.level, dane.dane), (Level::May, Dane::Preferred));
        let only = t.lookup("strict.test").unwrap();
        assert_eq!((only.level, only.dane), (Level::Encrypt, Dane::Required));
    }

    #[test]
    fn tlsa_records_require_tls_and_a_match() {
        let mut p = policy(Level::May, Source::Default, None);
        p.dane = Dane::Preferred;
        let unusable = Tlsa {
            usage: 1,
            selector: 1,
            matching: 1,
            data: vec![0; 32],
        };
        // Only unusable records: TLS, any certificate (RFC 7672 §2.2).
        let encrypt = p.with_tlsa(vec![unusable.clone()]).unwrap();
        assert!(encrypt.requires_tls() && encrypt.tlsa.is_none());
        let dane = p
            .with_tlsa(vec![Tlsa {
                usage: 3,
                ..unusable.clone()
            }])
            .unwrap();
        assert!(dane.requires_tls());
        assert!(dane.check("Q", "mx", None, &[]).is_err());
        let why = dane.check("Q", "mx", Some("TLSv1.3"), &[]).unwrap_err();
        assert!(matches!(why, PolicyError::TlsaMismatch { .. }), "{why}");
        p.dane = Dane::Required;
        assert!(p.with_tlsa(vec![unusable]).is_none());
    }

    #[test]
    fn levels_and_log_text() {
        let may = policy(Level::May, Source::Default, None);
        assert!(!may.requires_tls());
        assert_eq!(may.check("Q", "mx", None, &[]).unwrap(), "none policy=default");
        assert_eq!(
            may.check("Q", "mx", Some("TLSv1.3"), &[]).unwrap(),
            "TLSv1.3 verified=no policy=default"
        );
        let encrypt = policy(Level::Encrypt, Source::Table, None);
        assert!(encrypt.requires_tls());
        assert!(encrypt.check("Q", "mx", None, &[]).is_err());
        assert!(encrypt.check("Q", "mx", Some("TLSv1.2"), &[]).is_ok());
        let verify = policy(Level::Verify, Source::Table, None);
        let why = verify.check("Q", "mx", Some("TLSv1.3"), &[]).unwrap_err().to_string();
        assert!(why.contains("not verified"), "{why}");
    }

    #[test]
    fn verify_wants_a_trust_anchor_and_a_matching_name() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["mail.example.org".to_string()])
            .unwrap()
            .signed_by(&key, &Issuer::new(ca, ca_key))
            .unwrap();
        let chain = [leaf.der().clone()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut p = policy(Level::Verify, Source::Table, None);
        let why = p
            .check("Q", "mail.example.org", Some("TLSv1.3"), &chain)
            .unwrap_err()
            .to_string();
        assert!(why.contains("no trust anchors"), "{why}");
        p.verifier = Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap(),
        );
        let why = p
            .check("Q", "mx.example.org", Some("TLSv1.3"), &chain)
            .unwrap_err()
            .to_string();
        assert!(why.contains("not verified"), "{why}");
        p.matches = vec![Match::Hostname, Match::Name("mail.example.org".into())];
        assert_eq!(
            p.check("Q", "mx.example.org", Some("TLSv1.3"), &chain).unwrap(),
            "TLSv1.3 verified=yes policy=table"
        );
        p.matches = vec![Match::Nexthop];
        p.nexthop = "mail.example.org".into();
        assert!(p.check("Q", "mx.example.org", Some("TLSv1.3"), &chain).is_ok());
    }

    #[test]
    fn sts_limits_hosts_unless_testing() {
        let sts = mta_sts::Policy {
            mode: mta_sts::Mode::Enforce,
            mx: vec!["*.example.org".into()],
            max_age: 60,
        };
        let hosts = || vec![("mx.example.org".to_string(), 1), ("mx.elsewhere.net".to_string(), 2)];
        let enforce = policy(Level::Verify, Source::Sts, Some(sts.clone()));
        assert_eq!(
            enforce.filter_hosts("Q", hosts()).unwrap(),
            vec![("mx.example.org".into(), 1)]
        );
        assert!(
            enforce
                .filter_hosts("Q", vec![("mx.elsewhere.net".to_string(), 2)])
                .is_err()
        );
        let testing = policy(Level::May, Source::StsTesting, Some(sts));
        assert_eq!(testing.filter_hosts("Q", hosts()).unwrap().len(), 2);
        assert_eq!(
            testing.check("Q", "mx.example.org", Some("TLSv1.3"), &[]).unwrap(),
            "TLSv1.3 verified=no policy=sts-testing"
        );
    }
}
