//! greyd's own DNS lookups, through the resolver the admin configures
//! (`[dns] nameservers`, else /etc/resolv.conf): whether an address passes
//! SPF for a MAIL FROM domain (mail-auth, with the void-lookup limit of
//! `greyd_shared::spf_void`), and a source's DNSWL score.
//!
//! Answers are cached and every lookup is bounded in time: a slow or dead DNS
//! server delays only the one connection that asked, by at most
//! [`LOOKUP_TIMEOUT`], and such a failure counts as "no evidence".

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use greyd_shared::spf_void;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfResult};
use tracing::{debug, warn};

use crate::dnswl::{self, Site};

/// The longest one SPF evaluation or DNSWL query may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(4);

/// How long an answer is reused.
const CACHE_TTL: Duration = Duration::from_secs(600);

/// Entries a cache holds before it starts over (bounds memory under a flood of sources).
const CACHE_MAX: usize = 50_000;

/// A small time-bounded cache.
struct Cache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Copy> Cache<K, V> {
    fn new() -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, t)| t.elapsed() < CACHE_TTL)
            .map(|(v, _)| *v)
    }

    fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (_, t)| t.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }
}

pub struct Dns {
    resolver: TokioResolver,
    /// The SPF evaluator, on the same resolver.
    auth: MessageAuthenticator,
    /// Our name, for SPF's %{r} macro.
    hostname: String,
    sites: Vec<Site>,
    spf: Cache<(IpAddr, String), bool>,
    dnswl: Cache<IpAddr, i32>,
}

fn resolver(nameservers: &[SocketAddr]) -> TokioResolver {
    let provider = TokioRuntimeProvider::default();
    let builder = if nameservers.is_empty() {
        TokioResolver::builder(provider.clone()).unwrap_or_else(|e| {
            warn!("dns: /etc/resolv.conf: {e}; SPF promotion and DNSWL get no answers");
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(Vec::new()), provider)
        })
    } else {
        let server = |addr: &SocketAddr| {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut server.connections {
                c.port = addr.port();
            }
            server
        };
        let servers = nameservers.iter().map(server).collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder.with_options(opts).build().expect("resolver without TLS builds")
}

impl Dns {
    pub fn new(nameservers: &[SocketAddr], hostname: &str, sites: Vec<Site>) -> Dns {
        let resolver = resolver(nameservers);
        Dns {
            auth: MessageAuthenticator(resolver.clone()),
            resolver,
            hostname: hostname.to_string(),
            sites,
            spf: Cache::new(),
            dnswl: Cache::new(),
        }
    }

    /// Whether `ip` passes SPF for `sender`'s domain (`sender` without angle brackets).
    pub async fn spf_passes(&self, ip: IpAddr, helo: &str, sender: &str) -> bool {
        let Some((_, domain)) = sender.rsplit_once('@').filter(|(_, d)| !d.is_empty()) else {
            return false;
        };
        let key = (ip, domain.to_ascii_lowercase());
        if let Some(pass) = self.spf.get(&key) {
            return pass;
        }
        let params = SpfParameters::verify_mail_from(ip, helo, &self.hostname, sender);
        let result = match tokio::time::timeout(LOOKUP_TIMEOUT, spf_void::check_host(&self.auth, params)).await {
            Ok(out) => out.result(),
            Err(_) => SpfResult::TempError,
        };
        debug!("{ip}: SPF for {domain}: {result:?}");
        // A temporary failure is not an answer: ask again next time.
        if result != SpfResult::TempError {
            self.spf.insert(key, result == SpfResult::Pass);
        }
        result == SpfResult::Pass
    }

    /// Whether any DNSWL is configured.
    pub fn has_dnswl(&self) -> bool {
        !self.sites.is_empty()
    }

    /// The DNSWL score of `ip`: the sites are asked at once; one that does
    /// not answer in time counts as not listing it (and the score is not cached).
    pub async fn dnswl_score(&self, ip: IpAddr) -> i32 {
        if let Some(score) = self.dnswl.get(&ip) {
            return score;
        }
        let mut queries = tokio::task::JoinSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            let (resolver, name) = (self.resolver.clone(), site.query(ip));
            queries.spawn(async move { (i, listing(&resolver, name).await) });
        }
        let mut replies: Vec<Option<Vec<Ipv4Addr>>> = vec![None; self.sites.len()];
        while let Some(done) = queries.join_next().await {
            if let Ok((i, r)) = done {
                replies[i] = r;
            }
        }
        let complete = replies.iter().all(Option::is_some);
        let replies: Vec<Vec<Ipv4Addr>> = replies.into_iter().map(Option::unwrap_or_default).collect();
        let score = dnswl::score(self.sites.iter().zip(replies.iter().map(Vec::as_slice)));
        debug!("{ip}: DNSWL score {score}");
        if complete {
            self.dnswl.insert(ip, score);
        }
        score
    }
}

/// The A records of one DNSWL query (empty: not listed); None when the list did not answer.
async fn listing(resolver: &TokioResolver, name: String) -> Option<Vec<Ipv4Addr>> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.ipv4_lookup(name.as_str())).await {
        Ok(Ok(l)) => Some(
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect(),
        ),
        Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => Some(Vec::new()),
        Ok(Err(e)) => {
            debug!("DNSWL {name}: {e}");
            None
        }
        Err(_) => None,
    }
}
