//! Delivery of a message's remote recipients: the destination of each
//! domain (smarthost, transport table, MX with null MX, implicit MX and
//! loop check), the addresses tried, connection limits per destination and
//! overall, idle connections kept for the next message to the same server,
//! servers that did not answer left alone for a while, the DANE lookups of
//! each host (RFC 7672: MX and address records proved secure, then its TLSA
//! records), and one verdict per recipient with the maillog line of the
//! attempt.

use super::client::{Mail, Rcpt, Verdict, refuse_early};
use super::route::{self, Batch, Destination, MxPlan, Transport, TransportTable};
use super::session::{Peer, Session, SessionError, Timeouts, opportunistic_tls};
use super::tls_policy::{Dane, Policy, TlsPolicies, TlsPolicyError};
use crate::config::Config;
use crate::dns::{Dns, LookupError, Proved, TrustAnchorError};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long an idle connection waits for another message to its server.
const IDLE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Transport(PathBuf, route::TransportError),
    #[error("smarthost {0:?}: expected host:port")]
    Smarthost(String),
    #[error(transparent)]
    TlsPolicy(#[from] TlsPolicyError),
    #[error(transparent)]
    TrustAnchor(#[from] TrustAnchorError),
}

/// What happened to one recipient in this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Sent,
    Deferred,
    Bounced,
}

/// The result for one recipient, with what logs and DSNs report.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Index into the message's recipient list.
    pub index: usize,
    pub disposition: Disposition,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// The server's reply or our reason.
    pub diagnostic: String,
    /// The server that gave the reply, if one did.
    pub remote_mta: Option<String>,
    /// That server offered DSN, so the NOTIFY request went on with the
    /// message; otherwise a success is ours to report (`Action: relayed`).
    pub peer_dsn: bool,
}

/// The message side of a delivery.
pub struct Message<'a> {
    pub id: &'a str,
    pub mail: Mail,
    pub content: &'a [u8],
    pub arrived: u64,
}

/// An open session and the connection slot it holds.
struct Held {
    session: Session,
    _slot: OwnedSemaphorePermit,
    since: Instant,
}

type IdleCache = Arc<Mutex<HashMap<SocketAddr, Vec<Held>>>>;

/// Outbound state shared by all deliveries of the daemon.
pub struct Outbound {
    dns: Arc<Dns>,
    /// The validating resolver for DANE (`[dns] dnssec`).
    dnssec: Option<Dns>,
    config: crate::config::OutboundConfig,
    hostname: String,
    tls: Arc<rustls::ClientConfig>,
    tls_policies: TlsPolicies,
    transport: TransportTable,
    smarthost: Option<Destination>,
    auth: Option<(String, String)>,
    connections: Arc<Semaphore>,
    destinations: Mutex<HashMap<Destination, Arc<Semaphore>>>,
    /// Servers that did not answer, left alone until the instant.
    dead: Mutex<HashMap<SocketAddr, Instant>>,
    idle: IdleCache,
}

/// The server a batch went to: `host[ip]:port` as logged, and its address.
struct Relay {
    name: String,
    peer: Option<IpAddr>,
}

impl Relay {
    fn none() -> Relay {
        Relay {
            name: "none".into(),
            peer: None,
        }
    }
}

/// Tell greyd that we delivered to `ip`, so its replies pass the greylist
/// (spamlogd's role); one JSON line on its control socket.
async fn report_peer(socket: PathBuf, ip: IpAddr) {
    let req = serde_json::json!({"op": "outbound_peer", "ip": ip.to_string()});
    match crate::greyd_control::request(&socket, &req).await {
        Ok(answer) if answer.contains("\"ok\"") => {}
        Ok(answer) => tracing::warn!("greyd control {}: {answer}", socket.display()),
        Err(e) => tracing::warn!("greyd control {}: {e}", socket.display()),
    }
}

/// A failure of the whole batch before any server answered for the recipients.
struct BatchFailure {
    disposition: Disposition,
    status: &'static str,
    text: String,
}

impl BatchFailure {
    fn bounce(status: &'static str, text: String) -> BatchFailure {
        BatchFailure {
            disposition: Disposition::Bounced,
            status,
            text,
        }
    }

    fn defer(status: &'static str, text: String) -> BatchFailure {
        BatchFailure {
            disposition: Disposition::Deferred,
            status,
            text,
        }
    }
}

fn parse_host_port(s: &str) -> Option<Destination> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(Destination::Host(host.to_ascii_lowercase(), port.parse().ok()?))
}

impl Outbound {
    pub fn new(config: &Config, dns: Arc<Dns>) -> Result<Outbound, OutboundError> {
        let out = &config.outbound;
        let transport = match &out.transport {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| OutboundError::Read(path.clone(), e))?;
                TransportTable::parse(&text).map_err(|e| OutboundError::Transport(path.clone(), e))?
            }
            None => TransportTable::default(),
        };
        let smarthost = match &out.smarthost {
            Some(s) => Some(parse_host_port(s).ok_or_else(|| OutboundError::Smarthost(s.clone()))?),
            None => None,
        };
        let auth = match (&out.smarthost_user, &out.smarthost_password_file) {
            (Some(user), Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| OutboundError::Read(path.clone(), e))?;
                Some((user.clone(), text.lines().next().unwrap_or("").to_string()))
            }
            _ => None,
        };
        Ok(Outbound {
            tls_policies: TlsPolicies::new(config, Arc::clone(&dns))?,
            dnssec: Dns::validating(&config.dns)?,
            dns,
            hostname: config.hostname.to_ascii_lowercase(),
            tls: opportunistic_tls(),
            transport,
            smarthost,
            auth,
            connections: Arc::new(Semaphore::new(out.max_connections.max(1))),
            destinations: Mutex::new(HashMap::new()),
            dead: Mutex::new(HashMap::new()),
            idle: Arc::new(Mutex::new(HashMap::new())),
            config: out.clone(),
        })
    }

    fn destination(&self, domain: &str) -> Destination {
        if let Some(s) = &self.smarthost {
            return s.clone();
        }
        // `local` domains are the router's (it treats them as ours): never relayed.
        match self.transport.lookup(domain) {
            Some(Transport::Smtp(dest)) => dest.clone(),
            Some(Transport::Local) | None => Destination::Mx(domain.to_string()),
        }
    }

    /// Deliver to `rcpts` (index into the message's list, recipient);
    /// `is_self` says whether a host name is this server (the loop check).
    pub async fn deliver(
        &self,
        msg: &Message<'_>,
        rcpts: Vec<(usize, Rcpt)>,
        is_self: &(dyn Fn(&str) -> bool + Sync),
    ) -> Vec<Outcome> {
        let by_index: HashMap<usize, Rcpt> = rcpts.iter().cloned().collect();
        let batches = route::batches(
            rcpts.iter().map(|(i, r)| (*i, r.address.as_str())),
            self.config.recipient_limit,
            |d| self.destination(d),
        );
        let mut outcomes = Vec::new();
        for Batch {
            destination,
            recipients,
        } in batches
        {
            let rcpts: Vec<(usize, Rcpt)> = recipients.iter().map(|i| (*i, by_index[i].clone())).collect();
            let (relay, tls, got) = self.batch(msg, &destination, rcpts.clone(), is_self).await;
            if let (Some(peer), Some(socket)) = (&relay.peer, &self.config.greyd_control)
                && got.iter().any(|o| o.disposition == Disposition::Sent)
            {
                tokio::spawn(report_peer(socket.clone(), *peer));
            }
            let relay = relay.name;
            let delay = crate::queue::now().saturating_sub(msg.arrived);
            for o in &got {
                let word = match o.disposition {
                    Disposition::Sent => "sent",
                    Disposition::Deferred => "deferred",
                    Disposition::Bounced => "bounced",
                };
                tracing::info!(
                    "{}: to=<{}>, relay={relay}, delay={delay}s, tls={}, dsn={}, status={word} ({})",
                    msg.id,
                    by_index[&o.index].address,
                    tls.as_deref().unwrap_or("none"),
                    o.status,
                    o.diagnostic.escape_debug()
                );
            }
            outcomes.extend(got);
        }
        outcomes
    }

    fn destination_slots(&self, dest: &Destination) -> Arc<Semaphore> {
        let mut map = self.destinations.lock().expect("destinations lock");
        Arc::clone(
            map.entry(dest.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.config.destination_concurrency.max(1)))),
        )
    }

    fn is_dead(&self, addr: SocketAddr) -> bool {
        let mut dead = self.dead.lock().expect("dead lock");
        dead.retain(|_, until| *until > Instant::now());
        dead.contains_key(&addr)
    }

    fn mark_dead(&self, addr: SocketAddr) {
        let until = Instant::now() + self.config.dead_destination;
        self.dead.lock().expect("dead lock").insert(addr, until);
    }

    /// An idle session to `addr`, reset for a new transaction.
    async fn take_idle(&self, addr: SocketAddr) -> Option<Held> {
        loop {
            let held = {
                let mut idle = self.idle.lock().expect("idle lock");
                let list = idle.get_mut(&addr)?;
                let held = list.pop();
                if list.is_empty() {
                    idle.remove(&addr);
                }
                held?
            };
            let mut held = held;
            if held.since.elapsed() < IDLE && held.session.reset().await.is_ok() {
                return Some(held);
            }
        }
    }

    fn keep_idle(&self, addr: SocketAddr, mut held: Held) {
        held.since = Instant::now();
        self.idle.lock().expect("idle lock").entry(addr).or_default().push(held);
        let idle = Arc::clone(&self.idle);
        tokio::spawn(async move {
            tokio::time::sleep(IDLE).await;
            let stale: Vec<Held> = {
                let mut idle = idle.lock().expect("idle lock");
                let Some(list) = idle.get_mut(&addr) else { return };
                let (old, fresh): (Vec<Held>, Vec<Held>) = list.drain(..).partition(|h| h.since.elapsed() >= IDLE);
                *list = fresh;
                if list.is_empty() {
                    idle.remove(&addr);
                }
                old
            };
            for h in stale {
                h.session.quit().await;
            }
        });
    }

    /// Hosts and addresses to try for a destination, each with whether
    /// DNSSEC proved the way to it (the MX RRset, when there is one, and the
    /// host's addresses; asked through `dns`), or why there are none.
    async fn targets(
        &self,
        dns: &Dns,
        dest: &Destination,
        is_self: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<(String, (SocketAddr, bool))>, BatchFailure> {
        let (hosts, port, mx_secure) = match dest {
            // A configured host: no MX lookup to prove.
            Destination::Host(host, port) => (vec![host.clone()], *port, true),
            Destination::Mx(domain) => {
                let mx = dns.mx_proved(domain).await;
                // An implicit MX: its address records alone decide.
                let mx_secure = mx.as_ref().map_or(true, |p| p.secure);
                let hosts = match mx.map(|p| p.records) {
                    Ok(records) if !records.is_empty() => {
                        match route::order_mx(records, is_self, getrandom::u64().unwrap_or(1) | 1) {
                            MxPlan::Hosts(h) => h,
                            MxPlan::NullMx => {
                                return Err(BatchFailure::bounce(
                                    "5.1.10",
                                    format!("domain {domain} does not accept mail (null MX)"),
                                ));
                            }
                            MxPlan::LoopsToSelf => {
                                return Err(BatchFailure::bounce(
                                    "5.4.6",
                                    format!("mail for {domain} loops back to myself"),
                                ));
                            }
                        }
                    }
                    Ok(_) | Err(LookupError::NoRecords(_)) => vec![domain.clone()],
                    Err(e @ LookupError::NoSuchDomain(_)) => {
                        return Err(BatchFailure::bounce(
                            "5.1.2",
                            format!("Host or domain name not found: {e}"),
                        ));
                    }
                    Err(e @ LookupError::Temporary(..)) => return Err(BatchFailure::defer("4.4.3", e.to_string())),
                };
                (hosts, self.config.port, mx_secure)
            }
        };
        let implicit = matches!(dest, Destination::Mx(d) if hosts.len() == 1 && hosts[0] == *d);
        let mut found = Vec::new();
        let mut secure_hosts = Vec::new();
        let mut temporary = None;
        let mut last = None;
        for host in hosts {
            if let Ok(ip) = host.parse::<IpAddr>() {
                found.push((host, vec![ip]));
                continue;
            }
            match dns.addresses_proved(&host, self.config.ip_version).await {
                Ok(Proved { records, secure }) => {
                    if secure && mx_secure {
                        secure_hosts.push(host.clone());
                    }
                    found.push((host, records));
                }
                Err(e @ LookupError::Temporary(..)) => temporary = Some(e),
                Err(e) => last = Some(e),
            }
        }
        let list = route::attempt_addresses(found, self.config.max_addresses.max(1));
        if list.is_empty() {
            return Err(match (temporary, last) {
                (Some(e), _) => BatchFailure::defer("4.4.3", e.to_string()),
                (None, e) if implicit => BatchFailure::bounce(
                    "5.1.2",
                    format!(
                        "Host or domain name not found: {}",
                        e.map(|e| e.to_string()).unwrap_or_default()
                    ),
                ),
                (None, e) => BatchFailure::bounce(
                    "5.4.4",
                    format!(
                        "no address for the mail hosts of {dest}: {}",
                        e.map(|e| e.to_string()).unwrap_or_default()
                    ),
                ),
            });
        }
        Ok(list
            .into_iter()
            .map(|(h, ip)| {
                let secure = secure_hosts.contains(&h);
                (h, (SocketAddr::new(ip, port), secure))
            })
            .collect())
    }

    /// The policy for `host` of a destination whose policy is `policy`
    /// (RFC 7672 §2.2): with DANE, a host DNSSEC leads to (`secure`) gets
    /// its TLSA records looked up at `_port._tcp.host`; a host without them
    /// keeps the destination's policy, unless it is `dane-only`. A failed
    /// TLSA lookup (bogus, SERVFAIL) is a failure of that host.
    async fn host_policy(&self, policy: &Policy, host: &str, port: u16, secure: bool) -> Result<Policy, BatchFailure> {
        let refuse = |why: String| Err(BatchFailure::defer("4.7.5", why));
        let without_dane = |why: &str| match policy.dane {
            Dane::Required => refuse(format!("{host}: {why}, and the dane-only policy requires DANE")),
            _ => Ok(policy.clone()),
        };
        if policy.dane == Dane::Off {
            return Ok(policy.clone());
        }
        let Some(dnssec) = &self.dnssec else {
            return without_dane("DNSSEC validation is off ([dns] dnssec)");
        };
        if !secure {
            return without_dane("the way to it is not DNSSEC-signed");
        }
        match dnssec.tlsa(&format!("_{port}._tcp.{host}")).await {
            Ok(Proved { records, secure: true }) => match policy.with_tlsa(records) {
                Some(host_policy) => Ok(host_policy),
                None => refuse(format!(
                    "{host}: no usable TLSA record, which the dane-only policy requires"
                )),
            },
            Ok(_) => without_dane("its TLSA records are not DNSSEC-signed"),
            Err(LookupError::NoRecords(_) | LookupError::NoSuchDomain(_)) => without_dane("no TLSA records"),
            Err(e) => refuse(format!("TLSA lookup for {host}: {e}")),
        }
    }

    /// A session with `addr` whose TLS satisfies `policy`: an idle one if
    /// it does, else a new one; `Err(None)` when the daemon is stopping.
    async fn session(
        &self,
        id: &str,
        name: &str,
        host: &str,
        addr: SocketAddr,
        dest: &Destination,
        policy: &Policy,
    ) -> Result<(Held, String), Option<BatchFailure>> {
        if let Some(held) = self.take_idle(addr).await {
            match policy.check(id, host, held.session.tls.as_deref(), &held.session.certs) {
                Ok(tls) => return Ok((held, tls)),
                // Opened for another destination, whose policy let it go without
                // STARTTLS or sent another name: this destination gets its own.
                Err(_) => held.session.quit().await,
            }
        }
        let Ok(slot) = Arc::clone(&self.connections).acquire_owned().await else {
            return Err(None);
        };
        let peer = Peer {
            name: name.to_string(),
            host,
            addr,
            helo: &self.hostname,
            tls: Arc::clone(&self.tls),
            auth: matches!(dest, Destination::Host(..))
                .then_some(self.auth.as_ref())
                .flatten()
                .map(|(u, p)| (u.as_str(), p.as_str())),
            starttls: !policy.forbids_tls(),
            require_tls: policy.requires_tls(),
            timeouts: Timeouts {
                connect: self.config.connect_timeout,
                command: self.config.command_timeout,
                data: self.config.data_timeout,
            },
        };
        let held = match Session::open(peer).await {
            Ok(session) => Held {
                session,
                _slot: slot,
                since: Instant::now(),
            },
            Err(e) => {
                // Postfix logs these too: why the next host was tried.
                tracing::info!("{id}: {e}");
                let unreachable = matches!(e, SessionError::Connect(..) | SessionError::Timeout(..));
                if unreachable {
                    self.mark_dead(addr);
                }
                return Err(Some(match e.reply() {
                    Some(r) if r.starts_with('5') => BatchFailure::bounce("5.0.0", e.to_string()),
                    _ if e.is_tls() && policy.requires_tls() => BatchFailure::defer("4.7.5", e.to_string()),
                    _ if unreachable => BatchFailure::defer("4.4.1", e.to_string()),
                    _ => BatchFailure::defer("4.4.2", e.to_string()),
                }));
            }
        };
        match policy.check(id, host, held.session.tls.as_deref(), &held.session.certs) {
            Ok(tls) => Ok((held, tls)),
            Err(why) => {
                tracing::info!("{id}: {why}");
                held.session.quit().await;
                Err(Some(BatchFailure::defer("4.7.5", why.to_string())))
            }
        }
    }

    /// One transaction for a batch: `(relay as logged, TLS version, outcomes)`.
    async fn batch(
        &self,
        msg: &Message<'_>,
        dest: &Destination,
        rcpts: Vec<(usize, Rcpt)>,
        is_self: &(dyn Fn(&str) -> bool + Sync),
    ) -> (Relay, Option<String>, Vec<Outcome>) {
        let all = |f: BatchFailure, remote: Option<String>| -> Vec<Outcome> {
            rcpts
                .iter()
                .map(|(i, _)| Outcome {
                    index: *i,
                    disposition: f.disposition.clone(),
                    status: f.status.to_string(),
                    diagnostic: f.text.clone(),
                    remote_mta: remote.clone(),
                    peer_dsn: false,
                })
                .collect()
        };
        // Only DANE needs proved answers: the validating resolver is asked for it alone.
        let dns = match (&self.dnssec, self.tls_policies.dane(dest)) {
            (Some(dnssec), Dane::Preferred | Dane::Required) => dnssec,
            _ => &*self.dns,
        };
        let targets = match self.targets(dns, dest, is_self).await {
            Ok(t) => t,
            Err(f) => return (Relay::none(), None, all(f, None)),
        };
        let policy = self.tls_policies.for_destination(dest).await;
        let targets = match policy.filter_hosts(msg.id, targets) {
            Ok(t) => t,
            Err(why) => {
                return (
                    Relay::none(),
                    None,
                    all(BatchFailure::defer("4.7.5", why.to_string()), None),
                );
            }
        };
        let slots = self.destination_slots(dest);
        let Ok(_dest_slot) = slots.acquire_owned().await else {
            return (Relay::none(), None, Vec::new());
        };
        let mut failure = BatchFailure::defer("4.4.1", format!("no server of {dest} could be reached"));
        let mut relay = Relay::none();
        for (host, (addr, secure)) in targets {
            relay = Relay {
                name: format!("{host}[{}]:{}", addr.ip(), addr.port()),
                peer: Some(addr.ip()),
            };
            if self.is_dead(addr) {
                failure = BatchFailure::defer(
                    "4.4.1",
                    format!("{} did not answer recently; not tried again yet", relay.name),
                );
                continue;
            }
            let host_policy = match self.host_policy(&policy, &host, addr.port(), secure).await {
                Ok(p) => p,
                Err(f) => {
                    tracing::info!("{}: {}", msg.id, f.text);
                    failure = f;
                    continue;
                }
            };
            let (mut held, tls) = match self.session(msg.id, &relay.name, &host, addr, dest, &host_policy).await {
                Ok((held, tls)) => (held, Some(tls)),
                Err(Some(f)) => {
                    failure = f;
                    continue;
                }
                Err(None) => break,
            };
            if let Some(refusal) = refuse_early(&held.session.caps, &msg.mail) {
                self.keep_idle(addr, held);
                return (
                    relay,
                    tls,
                    all(BatchFailure::bounce(refusal.status, refusal.text), Some(host)),
                );
            }
            let list: Vec<Rcpt> = rcpts.iter().map(|(_, r)| r.clone()).collect();
            let peer_dsn = held.session.caps.dsn;
            return match held.session.transaction(&msg.mail, list, msg.content).await {
                Ok(verdicts) => {
                    self.keep_idle(addr, held);
                    let outcomes = rcpts
                        .iter()
                        .zip(verdicts)
                        .map(|((i, _), v)| {
                            let (disposition, reply) = match v {
                                Verdict::Sent(r) => (Disposition::Sent, r),
                                Verdict::Deferred(r) => (Disposition::Deferred, r),
                                Verdict::Bounced(r) => (Disposition::Bounced, r),
                            };
                            Outcome {
                                index: *i,
                                disposition,
                                status: reply.status(),
                                diagnostic: reply.one_line(),
                                remote_mta: Some(host.clone()),
                                peer_dsn,
                            }
                        })
                        .collect();
                    (relay, tls, outcomes)
                }
                Err(e) => (relay, tls, all(BatchFailure::defer("4.4.2", e.to_string()), Some(host))),
            };
        }
        (relay, None, all(failure, None))
    }
}
