//! Recipient routing with sendmail's semantics: which domains are ours
//! (hostname, `domains`, local-host-names, virtual domains), virtusertable,
//! aliases (with :include:), system users and their ~/.forward, virtual
//! users; and the relay decision for everything else. Used at RCPT time to
//! accept or refuse, and at delivery time to find the final targets.
//! Domains the transport table sends `local` count as ours.
//! SRS addresses of ours lead back to the sender they stand for.

use crate::account::{self, Owner};
use crate::aliases::{self, AliasError, AliasTarget, Aliases};
use crate::auth::Authenticator;
use crate::config::{Config, MailboxFormat};
use crate::deliver::Target;
use crate::outbound::route::{Transport, TransportError, TransportTable};
use crate::outbound::srs::{self, SrsError, SrsKey};
use crate::reload::{FileError, ReadError, Reloading, read_optional};
use crate::virtusertable::{self, VirtError, VirtTarget, Virtusertable};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Deepest alias/virtusertable/.forward chain followed (sendmail uses 10+).
const MAX_DEPTH: usize = 20;

/// One final outcome of expanding a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Deliver {
        target: Target,
        owner: Option<Owner>,
    },
    /// A remote address: stays queued for the outbound relay.
    Relay(String),
    /// One of a mailing list's addresses: `list` is `NAME@DOMAIN`.
    List {
        list: String,
        role: crate::lists::address::Role,
    },
    /// Refused, with the full SMTP reply.
    Error(String),
}

/// The RCPT-time verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Local,
    Relay,
    Reject(String),
}

/// relay-domains entries: destination domains, and client networks for
/// entries that are addresses or (sendmail-style) dotted prefixes.
#[derive(Debug, Default)]
pub struct RelayDomains {
    pub domains: Vec<String>,
    pub networks: Vec<IpNet>,
}

fn parse_relay_domains(text: &str) -> RelayDomains {
    let mut r = RelayDomains::default();
    for word in list_words(text) {
        if let Ok(net) = word.parse::<IpNet>() {
            r.networks.push(net);
        } else if let Ok(ip) = word.parse::<IpAddr>() {
            r.networks.push(IpNet::from(ip));
        } else if let Some(net) = dotted_prefix(&word) {
            r.networks.push(net);
        } else {
            r.domains.push(word.to_ascii_lowercase());
        }
    }
    r
}

/// `192.168` or `10.1.2` as a network, as sendmail reads class R.
fn dotted_prefix(s: &str) -> Option<IpNet> {
    let parts: Vec<u8> = s.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut octets = [0u8; 4];
    octets[..parts.len()].copy_from_slice(&parts);
    IpNet::new(IpAddr::from(octets), (parts.len() * 8) as u8).ok()
}

/// Words of a one-entry-a-line file with `#` comments.
fn list_words(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

pub struct Router {
    config: Arc<Config>,
    auth: Arc<Authenticator>,
    aliases: Reloading<Aliases, FileError<AliasError>>,
    virtusers: Reloading<Virtusertable, FileError<VirtError>>,
    local_names: Reloading<Vec<String>, ReadError>,
    relay_domains: Reloading<RelayDomains, ReadError>,
    srs_key: Reloading<Option<SrsKey>, ReadError>,
    /// `[outbound] transport`, for its `local` entries.
    transport: Option<Reloading<TransportTable, FileError<TransportError>>>,
    /// The mailing lists, whose addresses need no aliases.
    lists: crate::lists::store::Store,
}

/// A parser's list of problems, tagged with the file they were found in.
fn invalid<P: std::fmt::Display + std::fmt::Debug>(path: &std::path::Path) -> impl FnOnce(Vec<P>) -> FileError<P> {
    move |problems| FileError::Invalid {
        path: path.to_path_buf(),
        problems,
    }
}

impl Router {
    pub fn new(config: Arc<Config>, auth: Arc<Authenticator>) -> Router {
        let f = &config.files;
        Router {
            aliases: Reloading::new(&f.aliases, |p| aliases::parse(&read_optional(p)?).map_err(invalid(p))),
            virtusers: Reloading::new(&f.virtusertable, |p| {
                virtusertable::parse(&read_optional(p)?).map_err(invalid(p))
            }),
            local_names: Reloading::new(&f.local_host_names, |p| {
                Ok(list_words(&read_optional(p)?)
                    .into_iter()
                    .map(|w| w.to_ascii_lowercase())
                    .collect())
            }),
            relay_domains: Reloading::new(&f.relay_domains, |p| Ok(parse_relay_domains(&read_optional(p)?))),
            srs_key: Reloading::new(&config.srs.key_file, |p| Ok(SrsKey::from_file_text(&read_optional(p)?))),
            transport: config.outbound.transport.as_ref().map(|path| {
                Reloading::new(path, |p| {
                    TransportTable::parse(&read_optional(p)?).map_err(|e| invalid(p)(vec![e]))
                })
            }),
            lists: crate::lists::store::Store::new(&config.lists.dir),
            config,
            auth,
        }
    }

    fn get<T, E: std::fmt::Display>(r: &Reloading<T, E>) -> Option<Arc<T>> {
        r.get().map_err(|e| tracing::error!("{e}")).ok()
    }

    /// The SRS key (`[srs] key_file`), if there is one: what
    /// `srs::forward` needs to rewrite the sender of forwarded mail.
    pub fn srs_key(&self) -> Option<SrsKey> {
        Self::get(&self.srs_key).and_then(|k| (*k).clone())
    }

    /// The domain of the SRS addresses we make: `[srs] domain`, else `hostname`.
    pub fn srs_domain(&self) -> &str {
        match self.config.srs.domain.as_str() {
            "" => &self.config.hostname,
            d => d,
        }
    }

    /// For an SRS local part at one of our domains: the address it stands
    /// for, or why it is not valid. `None` if it is no SRS address or we
    /// have no key (then it is looked up as any other name).
    fn srs_original(&self, local: &str) -> Option<Result<String, SrsError>> {
        if matches!(srs::parse(local), Err(SrsError::NotSrs)) {
            return None;
        }
        let key = self.srs_key()?;
        Some(srs::reverse(local, &key, crate::queue::now()))
    }

    /// The hostname, `domains`, local-host-names, `localhost` and the
    /// domains the transport table delivers `local`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.to_ascii_lowercase();
        d == "localhost"
            || d.eq_ignore_ascii_case(&self.config.hostname)
            || self.config.domains.iter().any(|x| x.eq_ignore_ascii_case(&d))
            || Self::get(&self.local_names).is_some_and(|n| n.contains(&d))
            || self
                .transport
                .as_ref()
                .and_then(Self::get)
                .is_some_and(|t| t.lookup(&d) == Some(&Transport::Local))
    }

    fn is_virtual_domain(&self, domain: &str) -> bool {
        Self::get(&self.virtusers).is_some_and(|v| v.has_domain(domain)) || self.auth.users().has_domain(domain)
    }

    pub fn is_our_domain(&self, domain: &str) -> bool {
        self.is_local_domain(domain) || self.is_virtual_domain(domain) || self.lists.has_domain(domain)
    }

    /// A list's address: its name is a list at `domain`.
    fn list_address(&self, local: &str, domain: &str) -> Option<Resolved> {
        let a = crate::lists::address::parse(local)?;
        self.lists.exists(&a.name, domain).then(|| Resolved::List {
            list: format!("{}@{}", a.name, domain.to_ascii_lowercase()),
            role: a.role,
        })
    }

    /// Clients allowed to relay without AUTH: `[relay] networks` plus the
    /// network entries of relay-domains.
    pub fn is_relay_client(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.config.relay.networks.iter().any(|n| n.contains(&ip))
            || Self::get(&self.relay_domains).is_some_and(|r| r.networks.iter().any(|n| n.contains(&ip)))
    }

    /// Destinations in relay-domains (and their subdomains).
    fn is_relay_domain(&self, domain: &str) -> bool {
        let d = domain.to_ascii_lowercase();
        Self::get(&self.relay_domains)
            .is_some_and(|r| r.domains.iter().any(|x| d == *x || d.ends_with(&format!(".{x}"))))
    }

    /// The RCPT decision. `may_relay`: the client is authenticated or in a relay network.
    pub fn check(&self, local: &str, domain: &str, may_relay: bool) -> Verdict {
        let ours = !domain.starts_with('[') && self.is_our_domain(domain);
        if !ours {
            return if may_relay || (!domain.starts_with('[') && self.is_relay_domain(domain)) {
                Verdict::Relay
            } else {
                Verdict::Reject("550 5.7.1 Relaying denied".into())
            };
        }
        let resolved = self.expand(&format!("{local}@{domain}"));
        match resolved.iter().find(|r| !matches!(r, Resolved::Error(_))) {
            Some(_) => Verdict::Local,
            None => match resolved.into_iter().next() {
                Some(Resolved::Error(e)) => Verdict::Reject(e),
                _ => Verdict::Reject("550 5.1.1 User unknown".into()),
            },
        }
    }

    /// Final targets of an address (or of a bare local name).
    pub fn expand(&self, address: &str) -> Vec<Resolved> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        self.expand_address(address, 0, &mut seen, &mut out);
        out.dedup();
        out
    }

    fn alias_owner(&self) -> Option<Owner> {
        if nix::unistd::geteuid().is_root() {
            account::lookup(&self.config.delivery.alias_user)
        } else {
            None
        }
    }

    fn expand_address(&self, address: &str, depth: usize, seen: &mut Vec<String>, out: &mut Vec<Resolved>) {
        if depth > MAX_DEPTH {
            out.push(Resolved::Error("554 5.4.6 Alias loop".into()));
            return;
        }
        let key = address.to_ascii_lowercase();
        if seen.contains(&key) {
            return;
        }
        seen.push(key);
        let Some((local, domain)) = address.rsplit_once('@') else {
            return self.expand_local(address, false, depth, seen, out);
        };
        if domain.starts_with('[') || !self.is_our_domain(domain) {
            out.push(Resolved::Relay(address.to_string()));
            return;
        }
        if let Some(original) = self.srs_original(local) {
            match original {
                Ok(a) => self.expand_address(&a, depth + 1, seen, out),
                Err(e) => out.push(Resolved::Error(format!("550 5.1.1 Invalid SRS address ({e})"))),
            }
            return;
        }
        if let Some(list) = self.list_address(local, domain) {
            out.push(list);
            return;
        }
        if let Some(v) = Self::get(&self.virtusers)
            && let Some(t) = v.lookup(local, domain)
        {
            match t {
                VirtTarget::Error(reply) => out.push(Resolved::Error(reply)),
                VirtTarget::Address(a) => self.expand_address(&a, depth + 1, seen, out),
            }
            return;
        }
        if let Some(target) = self.virtual_mailbox(local, domain) {
            out.push(Resolved::Deliver { target, owner: None });
        } else if self.is_local_domain(domain) {
            self.expand_local(local, false, depth, seen, out);
        } else if local.eq_ignore_ascii_case("postmaster") {
            // RFC 5321 §4.5.1: every domain we accept mail for has a postmaster,
            // the one of the aliases file unless the domain names its own.
            self.expand_local("postmaster", false, depth, seen, out);
        } else {
            out.push(Resolved::Error("550 5.1.1 User unknown".into()));
        }
    }

    /// A virtual user's mailbox (`user+folder@domain` picks a Maildir++ folder).
    fn virtual_mailbox(&self, local: &str, domain: &str) -> Option<Target> {
        let users = self.auth.users();
        let (user, detail) = split_detail(local);
        let name = [format!("{local}@{domain}"), format!("{user}@{domain}")]
            .into_iter()
            .find(|n| users.get(n).is_some())?;
        let (user, domain) = name.rsplit_once('@').expect("has @");
        let folder = (name.starts_with(&format!("{user}@")) && !detail.is_empty()).then(|| detail.to_string());
        Some(mailbox_target(
            self.config.delivery.virtual_mailbox(user, domain),
            folder,
        ))
    }

    fn expand_local(&self, name: &str, no_alias: bool, depth: usize, seen: &mut Vec<String>, out: &mut Vec<Resolved>) {
        let (user, detail) = split_detail(name);
        if !no_alias
            && let Some(aliases) = Self::get(&self.aliases)
            && let Some(targets) = aliases.get(name).or_else(|| aliases.get(user))
        {
            let alias_owner = self.alias_owner();
            for t in targets {
                self.expand_target(t, alias_owner.as_ref(), depth + 1, seen, out);
            }
            return;
        }
        let Some(account) = account::lookup(&user.to_ascii_lowercase()).or_else(|| account::lookup(user)) else {
            out.push(Resolved::Error("550 5.1.1 User unknown".into()));
            return;
        };
        if !no_alias && self.config.delivery.forward {
            let forward = account.home.join(".forward");
            if let Ok(text) = std::fs::read_to_string(&forward) {
                match aliases::parse_forward(&text) {
                    Ok(targets) if !targets.is_empty() => {
                        for t in &targets {
                            self.expand_target(t, Some(&account), depth + 1, seen, out);
                        }
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("{}: {e}; delivering to the mailbox", forward.display())
                    }
                }
            }
        }
        let folder = (!detail.is_empty()).then(|| detail.to_string());
        let target = mailbox_target(
            self.config.delivery.system_mailbox(&account.name, &account.home),
            folder,
        );
        out.push(Resolved::Deliver {
            target,
            owner: Some(account),
        });
    }

    fn expand_target(
        &self,
        t: &AliasTarget,
        owner: Option<&Owner>,
        depth: usize,
        seen: &mut Vec<String>,
        out: &mut Vec<Resolved>,
    ) {
        match t {
            AliasTarget::Address(a) => self.expand_address(a, depth, seen, out),
            AliasTarget::NoAlias(u) => self.expand_local(u, true, depth, seen, out),
            AliasTarget::Program(p) => out.push(Resolved::Deliver {
                target: Target::Program(p.clone()),
                owner: owner.cloned(),
            }),
            AliasTarget::File(f) => out.push(Resolved::Deliver {
                target: file_target(f),
                owner: owner.cloned(),
            }),
            AliasTarget::Include(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    let joined = text
                        .lines()
                        .filter(|l| !l.trim_start().starts_with('#'))
                        .collect::<Vec<_>>()
                        .join(",");
                    match aliases::parse_targets(&joined) {
                        Ok(targets) => {
                            for t in &targets {
                                self.expand_target(t, owner, depth + 1, seen, out);
                            }
                        }
                        Err(e) => out.push(Resolved::Error(format!("550 5.3.5 {}: {e}", path.display()))),
                    }
                }
                Err(e) => out.push(Resolved::Error(format!("451 4.3.0 {}: {e}", path.display()))),
            },
        }
    }
}

fn mailbox_target((format, path): (MailboxFormat, PathBuf), folder: Option<String>) -> Target {
    match format {
        MailboxFormat::Maildir => Target::Maildir {
            dir: path,
            folder,
            create: false,
            flags: Vec::new(),
        },
        MailboxFormat::Mbox => Target::Mbox(path),
    }
}

/// `/path/` is a Maildir (procmail's convention), any other path an mbox.
fn file_target(path: &std::path::Path) -> Target {
    if path.as_os_str().to_string_lossy().ends_with('/') {
        Target::Maildir {
            dir: PathBuf::from(path),
            folder: None,
            create: false,
            flags: Vec::new(),
        }
    } else {
        Target::Mbox(path.to_path_buf())
    }
}

fn split_detail(local: &str) -> (&str, &str) {
    local.split_once('+').unwrap_or((local, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(dir: &std::path::Path, aliases: &str, virt: &str) -> Router {
        std::fs::write(dir.join("aliases"), aliases).unwrap();
        std::fs::write(dir.join("virtusertable"), virt).unwrap();
        std::fs::write(dir.join("relay-domains"), "# r\nrelay.example\n10.1\n").unwrap();
        let mut c = Config {
            hostname: "mx.example".into(),
            ..Config::default()
        };
        c.files.aliases = dir.join("aliases");
        c.files.virtusertable = dir.join("virtusertable");
        c.files.local_host_names = dir.join("missing");
        c.files.relay_domains = dir.join("relay-domains");
        c.auth.users_file = dir.join("users");
        c.delivery.virtual_dir = dir.join("vmail");
        let mut users = crate::auth::users::Users::default();
        users.set(crate::auth::users::VirtualUser::new("alice@v.example", "pw", false).unwrap());
        users.save(&c.auth.users_file).unwrap();
        let auth = Arc::new(Authenticator::new(&c.auth));
        Router::new(Arc::new(c), auth)
    }

    #[test]
    fn routing_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let r = router(
            dir.path(),
            "list: /tmp/x.mbox, \"|cat\", bob@remote.example\n",
            "info@v.example alice@v.example\nno@v.example error:nouser Gone\n",
        );
        assert_eq!(r.check("alice", "v.example", false), Verdict::Local);
        assert_eq!(r.check("info", "V.EXAMPLE", false), Verdict::Local);
        assert_eq!(
            r.check("no", "v.example", false),
            Verdict::Reject("550 5.1.1 Gone".into())
        );
        assert_eq!(
            r.check("nobody-here", "v.example", false),
            Verdict::Reject("550 5.1.1 User unknown".into())
        );
        assert_eq!(
            r.check("x", "other.example", false),
            Verdict::Reject("550 5.7.1 Relaying denied".into())
        );
        assert_eq!(r.check("x", "other.example", true), Verdict::Relay);
        assert_eq!(r.check("x", "sub.relay.example", false), Verdict::Relay);
        assert_eq!(
            r.check("x", "[127.0.0.1]", false),
            Verdict::Reject("550 5.7.1 Relaying denied".into())
        );
        for local in ["alice%other.example", "other.example!alice", "\"alice@other.example\""] {
            assert!(
                matches!(r.check(local, "v.example", false), Verdict::Reject(_)),
                "{local}"
            );
        }
        assert!(r.is_relay_client("10.1.2.3".parse().unwrap()));
        assert!(!r.is_relay_client("10.2.0.1".parse().unwrap()));
        let list = r.expand("list@mx.example");
        assert_eq!(list.len(), 3);
        assert_eq!(list[2], Resolved::Relay("bob@remote.example".into()));
        assert_eq!(
            r.expand("alice+lists@v.example"),
            vec![Resolved::Deliver {
                target: Target::Maildir {
                    dir: dir.path().join("vmail/v.example/alice"),
                    folder: Some("lists".into()),
                    create: false,
                    flags: Vec::new(),
                },
                owner: None
            }]
        );
    }
}
