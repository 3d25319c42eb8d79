//! MTA-STS (RFC 8461): the `_mta-sts` TXT record and the policy file, both
//! parsed without I/O; the policy of a domain as the thin shell finds it:
//! TXT through our resolver, the file fetched over HTTPS (no redirects,
//! 10 s, 64 KiB at most) and kept on disk until its max_age, fetched again
//! when the TXT id changes.

use crate::dns::{Dns, LookupError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// RFC 8461 §3.2: max_age is at most 31557600 s (about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;
/// The policy file is small; anything bigger is refused (RFC 8461 §3.3 suggests 64 KiB).
pub const SIZE_LIMIT: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    /// `mx:` patterns, lower case: `mx.example.org` or `*.example.org`.
    pub mx: Vec<String>,
    /// Seconds, capped at [`MAX_AGE_LIMIT`].
    pub max_age: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the policy is not UTF-8")]
    NotUtf8,
    #[error("line {0} is not `key: value`")]
    BadLine(usize),
    #[error("version is not STSv1")]
    Version,
    #[error("no mode (enforce, testing or none)")]
    Mode,
    #[error("no valid max_age")]
    MaxAge,
    #[error("mode {0:?} without any mx pattern")]
    NoMx(Mode),
    #[error("bad mx pattern {0:?}")]
    BadMx(String),
    #[error("the TXT record is not `v=STSv1; id=...`")]
    Txt,
}

fn valid_pattern(p: &str) -> bool {
    let name = p.strip_prefix("*.").unwrap_or(p);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Policy {
    /// Parse the policy file (RFC 8461 §3.2): `key: value` lines ending in
    /// LF or CRLF; unknown keys are ignored, `mx` may repeat, for any other
    /// key the first occurrence counts.
    pub fn parse(bytes: &[u8]) -> Result<Policy, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = Vec::new();
        for (n, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = line.split_once(':').ok_or(ParseError::BadLine(n + 1))?;
            let value = value.trim_matches([' ', '\t']);
            match key {
                "version" => {
                    version.get_or_insert(value);
                }
                "mode" => {
                    mode.get_or_insert(value);
                }
                "max_age" => {
                    max_age.get_or_insert(value);
                }
                "mx" => {
                    let pattern = value.trim_end_matches('.').to_ascii_lowercase();
                    if !valid_pattern(&pattern) {
                        return Err(ParseError::BadMx(value.to_string()));
                    }
                    mx.push(pattern);
                }
                _ => {}
            }
        }
        if version != Some("STSv1") {
            return Err(ParseError::Version);
        }
        let mode = match mode {
            Some("enforce") => Mode::Enforce,
            Some("testing") => Mode::Testing,
            Some("none") => Mode::None,
            _ => return Err(ParseError::Mode),
        };
        let max_age = max_age
            .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(ParseError::MaxAge)?
            .min(MAX_AGE_LIMIT);
        if mx.is_empty() && mode != Mode::None {
            return Err(ParseError::NoMx(mode));
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// Whether the MX host `host` is one the policy names (RFC 8461 §4.1:
    /// a `*.` pattern stands for exactly one leftmost label).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
            None => *p == host,
        })
    }
}

/// The `id` of a `_mta-sts` TXT record (RFC 8461 §3.1): `v=STSv1` first,
/// fields split by `;`, the id 1 to 32 letters and digits.
pub fn parse_txt(record: &str) -> Result<String, ParseError> {
    let mut fields = record.split(';').map(|f| f.trim_matches([' ', '\t']));
    if fields.next() != Some("v=STSv1") {
        return Err(ParseError::Txt);
    }
    fields
        .filter_map(|f| f.split_once('='))
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_string)
        .ok_or(ParseError::Txt)
}

/// The id the TXT records announce: exactly one record starting with
/// `v=STSv1`, else none (RFC 8461 §3.1).
pub fn announced_id(records: &[String]) -> Option<String> {
    let mut sts = records.iter().filter(|r| r.starts_with("v=STSv1"));
    match (sts.next(), sts.next()) {
        (Some(one), None) => parse_txt(one).ok(),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Dns(#[from] LookupError),
    #[error("HTTPS: {0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("the policy is larger than {SIZE_LIMIT} bytes")]
    TooBig,
    #[error("the policy is served as {0:?}, not text/plain")]
    MediaType(String),
    #[error("bad policy: {0}")]
    Parse(#[from] ParseError),
}

/// A policy as kept on disk between fetches.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    id: String,
    /// Unix time of the fetch.
    fetched: u64,
    policy: Policy,
}

impl Cached {
    fn fresh(&self, now: u64) -> bool {
        now < self.fetched.saturating_add(self.policy.max_age)
    }
}

/// Finds, fetches and caches the MTA-STS policies of recipient domains.
pub struct Sts {
    dns: Arc<Dns>,
    dir: PathBuf,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
}

impl Sts {
    /// `dir` holds the cache; `tls` verifies the policy servers
    /// (our trust anchors); `port` is 443 except in tests.
    pub fn new(dns: Arc<Dns>, dir: PathBuf, port: u16, tls: Arc<rustls::ClientConfig>) -> Sts {
        Sts { dns, dir, port, tls }
    }

    fn cache_path(&self, domain: &str) -> PathBuf {
        self.dir.join(domain)
    }

    fn read_cache(&self, domain: &str) -> Option<Cached> {
        let bytes = std::fs::read(self.cache_path(domain)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write_cache(&self, domain: &str, cached: &Cached) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{domain}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(cached).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, self.cache_path(domain))
    }

    /// The policy in force for `domain`, or none: a cached policy serves
    /// until its max_age unless the TXT id changed; when the TXT record is
    /// gone, the DNS fails or a fetch fails, an unexpired cached policy
    /// still counts (RFC 8461 §5.1), and without one the domain has none.
    pub async fn policy(&self, domain: &str) -> Option<Policy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if domain.contains(['/', '\\']) || domain.starts_with('.') {
            return None;
        }
        let now = crate::queue::now();
        let cached = self.read_cache(&domain).filter(|c| c.fresh(now));
        let id = match self.dns.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => announced_id(&records),
            Err(e) => {
                if let LookupError::Temporary(..) = e {
                    tracing::warn!("mta-sts {domain}: {e}");
                }
                None
            }
        };
        let Some(id) = id else {
            return cached.map(|c| c.policy);
        };
        if let Some(c) = cached.as_ref().filter(|c| c.id == id) {
            return Some(c.policy.clone());
        }
        match self.fetch(&domain).await {
            Ok(policy) => {
                let entry = Cached {
                    id,
                    fetched: now,
                    policy: policy.clone(),
                };
                if let Err(e) = self.write_cache(&domain, &entry) {
                    tracing::warn!("mta-sts {domain}: caching the policy in {}: {e}", self.dir.display());
                }
                tracing::info!("mta-sts {domain}: policy id {} mode {:?}", entry.id, policy.mode);
                Some(policy)
            }
            Err(e) => {
                tracing::warn!("mta-sts {domain}: fetching the policy: {e}");
                cached.map(|c| c.policy)
            }
        }
    }

    /// GET `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, the host
    /// resolved through our resolver.
    async fn fetch(&self, domain: &str) -> Result<Policy, FetchError> {
        let host = format!("mta-sts.{domain}");
        let addrs: Vec<SocketAddr> = self
            .dns
            .addresses(&host, crate::config::IpVersion::Any)
            .await?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, self.port))
            .collect();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .no_proxy()
            .resolve_to_addrs(&host, &addrs)
            .build()?;
        let url = match self.port {
            443 => format!("https://{host}/.well-known/mta-sts.txt"),
            port => format!("https://{host}:{port}/.well-known/mta-sts.txt"),
        };
        let mut response = client.get(url).send().await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let media = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_text_plain(&media) {
            return Err(FetchError::MediaType(media));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > SIZE_LIMIT {
                return Err(FetchError::TooBig);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Policy::parse(&body)?)
    }
}

/// RFC 8461 §3.3 serves the policy as `text/plain`; a page of another type
/// (a web server's HTML error page, say) is not a policy.
fn is_text_plain(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("");
    media.trim().eq_ignore_ascii_case("text/plain")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_text_plain_is_a_policy() {
        assert!(is_text_plain("text/plain"));
        assert!(is_text_plain("Text/Plain; charset=utf-8"));
        assert!(!is_text_plain("text/html"));
        assert!(!is_text_plain(""));
        assert!(!is_text_plain("text/plainx"));
    }

    #[test]
    fn rfc_example_policy() {
        let p = Policy::parse(
            b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert_eq!(p.mx, ["mail.example.com", "*.example.net", "backupmx.example.com"]);
        assert!(p.allows("MAIL.example.com."));
        assert!(p.allows("mx1.example.net"));
        assert!(!p.allows("a.b.example.net"));
        assert!(!p.allows("example.net"));
        assert!(!p.allows("mail.example.org"));
    }

    #[test]
    fn bad_policies() {
        assert_eq!(
            Policy::parse(b"mode: enforce\nmx: a\nmax_age: 1\n"),
            Err(ParseError::Version)
        );
        assert_eq!(
            Policy::parse(b"version: STSv1\nmx: a\nmax_age: 1\n"),
            Err(ParseError::Mode)
        );
        assert_eq!(
            Policy::parse(b"version: STSv1\nmode: enforce\nmax_age: 1\n"),
            Err(ParseError::NoMx(Mode::Enforce))
        );
        assert_eq!(
            Policy::parse(b"version: STSv1\nmode: testing\nmx: a\nmax_age: -1\n"),
            Err(ParseError::MaxAge)
        );
        assert_eq!(Policy::parse(b"version: STSv1\ngarbage\n"), Err(ParseError::BadLine(2)));
        assert_eq!(
            Policy::parse(b"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n"),
            Err(ParseError::BadMx("a..b".into()))
        );
        assert_eq!(Policy::parse(b"\xff"), Err(ParseError::NotUtf8));
        let none = Policy::parse(b"version: STSv1\nmode: none\nmax_age: 99999999999\n");
        assert_eq!(none, Err(ParseError::MaxAge));
        let capped = Policy::parse(b"version: STSv1\nmode: none\nmax_age: 9999999999\nfuture: x\n").unwrap();
        assert_eq!(capped.max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn txt_records() {
        assert_eq!(parse_txt("v=STSv1; id=20160831085700Z;").unwrap(), "20160831085700Z");
        assert_eq!(parse_txt("v=STSv1;id=abc").unwrap(), "abc");
        assert!(parse_txt("v=STSv2; id=abc").is_err());
        assert!(parse_txt("id=abc; v=STSv1").is_err());
        assert!(parse_txt("v=STSv1; id=a-b").is_err());
        let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(announced_id(&r(&["v=spf1 -all", "v=STSv1; id=x1"])), Some("x1".into()));
        assert_eq!(announced_id(&r(&["v=STSv1; id=x1", "v=STSv1; id=x2"])), None);
        assert_eq!(announced_id(&r(&[])), None);
    }

    #[test]
    fn cache_freshness() {
        let c = Cached {
            id: "1".into(),
            fetched: 1000,
            policy: Policy {
                mode: Mode::Enforce,
                mx: vec!["a".into()],
                max_age: 60,
            },
        };
        assert!(c.fresh(1059));
        assert!(!c.fresh(1060));
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Policy::parse(&bytes);
            let _ = parse_txt(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn written_policies_parse_back(
            mode in prop_oneof![Just("enforce"), Just("testing")],
            hosts in proptest::collection::vec("(\\*\\.)?[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,3}", 1..6),
            max_age in 0u64..100_000_000,
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = format!("version: STSv1{eol}mode: {mode}{eol}");
            for h in &hosts {
                text.push_str(&format!("mx: {h}{eol}"));
            }
            text.push_str(&format!("max_age: {max_age}{eol}"));
            let p = Policy::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(&p.mx, &hosts);
            prop_assert_eq!(p.max_age, max_age.min(MAX_AGE_LIMIT));
            for h in hosts.iter().filter(|h| !h.starts_with('*')) {
                prop_assert!(p.allows(h));
            }
        }
    }
}
