//! A real DNS server on loopback for the tests (hickory-server: a `Catalog`
//! with one `InMemoryZoneHandler` for the root zone, over UDP and TCP), so
//! every name either resolves or gets NXDOMAIN. Records are added while it
//! runs; a name can be made to answer SERVFAIL or to get no answer at all.
//!
//! In signed mode (DANE tests) the root zone is signed with a fresh ECDSA
//! P-256 key (NSEC for denials, re-signed after each change), whose DNSKEY
//! the mta is given as its trust anchor; child zones served beside it are
//! unsigned and delegated without DS, so their answers are provably
//! insecure.

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::dnssec::{Algorithm, DnssecSigner, SigningKey};
use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, MX, NS, SOA, TLSA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, DnssecZoneHandler, MessageResponseBuilder, ZoneType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a broken name misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    ServFail,
    /// No answer: the resolver times out.
    Silent,
}

type BrokenNames = Arc<Mutex<HashMap<String, Broken>>>;

struct Handler {
    catalog: Catalog,
    /// The root zone alone: DS records live in the parent of a zone cut.
    root: Catalog,
    broken: BrokenNames,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let name = request
            .request_info()
            .map(|info| info.query.name().to_string().trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        let broken = self.broken.lock().unwrap().get(&name).copied();
        let unanswered = || {
            ResponseInfo::from(Header {
                metadata: Metadata::response_from_request(&request.metadata),
                counts: HeaderCounts::default(),
            })
        };
        let ds = request
            .request_info()
            .is_ok_and(|info| info.query.query_type() == RecordType::DS);
        match broken {
            None if ds => self.root.handle_request::<R, T>(request, response).await,
            None => self.catalog.handle_request::<R, T>(request, response).await,
            Some(Broken::Silent) => unanswered(),
            Some(Broken::ServFail) => {
                let msg = MessageResponseBuilder::from_message_request(request)
                    .error_msg(&request.metadata, ResponseCode::ServFail);
                response.send_response(msg).await.unwrap_or_else(|_| unanswered())
            }
        }
    }
}

type Zone = Arc<InMemoryZoneHandler<TokioRuntimeProvider>>;

/// The running server; stopped when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    /// The root zone first, then its unsigned children.
    zones: Vec<(Name, Zone)>,
    /// In signed mode, the root zone's DNSKEY as a zone file line.
    trust_anchor: Option<String>,
    broken: BrokenNames,
    runtime: tokio::runtime::Runtime,
}

fn name(s: &str) -> Name {
    let s = if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    };
    Name::from_str(&s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn zone(origin: Name, soa_ttl: u32, nx_proof: Option<NxProofKind>) -> (Zone, Record) {
    let zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
        nx_proof,
    );
    let soa = SOA::new(name("ns.test"), name("hostmaster.test"), 1, 3600, 600, 86400, 0);
    (Arc::new(zone), Record::from_rdata(origin, soa_ttl, RData::SOA(soa)))
}

impl DnsServer {
    /// Serve the root zone on 127.0.0.1 (UDP and TCP on one free port).
    pub fn start() -> DnsServer {
        DnsServer::serve(false, &[])
    }

    /// Serve a signed root zone, and `unsigned` child zones (delegated
    /// without DS) beside it.
    pub fn start_signed(unsigned: &[&str]) -> DnsServer {
        DnsServer::serve(true, unsigned)
    }

    fn serve(signed: bool, unsigned: &[&str]) -> DnsServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (root, soa) = zone(Name::root(), 60, signed.then_some(NxProofKind::Nsec));
        runtime.block_on(root.upsert(soa, 1));
        let trust_anchor = signed.then(|| runtime.block_on(sign(&root)));
        let mut zones = vec![(Name::root(), root.clone())];
        for origin in unsigned {
            let origin = name(origin);
            let (child, soa) = zone(origin.clone(), 60, None);
            let ns = |zone: &Zone| {
                let record = Record::from_rdata(origin.clone(), 60, RData::NS(NS(name("ns.test"))));
                runtime.block_on(zone.upsert(record, 1))
            };
            runtime.block_on(child.upsert(soa, 1));
            assert!(ns(&child) && ns(&root), "delegation of {origin}");
            zones.push((origin, child));
        }
        let mut catalog = Catalog::new();
        for (origin, zone) in &zones {
            catalog.upsert(origin.clone().into(), vec![zone.clone()]);
        }
        let mut root_catalog = Catalog::new();
        root_catalog.upsert(Name::root().into(), vec![root.clone()]);
        let broken: BrokenNames = Arc::default();
        let handler = Handler {
            catalog,
            root: root_catalog,
            broken: Arc::clone(&broken),
        };
        let addr = runtime.block_on(async {
            let port = crate::free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let udp = tokio::net::UdpSocket::bind(addr).await.unwrap();
            let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
            let mut server = Server::new(handler);
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 8);
            tokio::spawn(async move {
                let _ = server.block_until_done().await;
            });
            addr
        });
        let server = DnsServer {
            addr,
            zones,
            trust_anchor,
            broken,
            runtime,
        };
        server.resign();
        server
    }

    /// The signed root's DNSKEY, as the mta's `[dns] trust_anchor` file holds it.
    pub fn trust_anchor(&self) -> &str {
        self.trust_anchor.as_deref().expect("a signed server")
    }

    /// Sign the root zone again (and its NSEC chain) after a change.
    fn resign(&self) {
        if self.trust_anchor.is_some() {
            self.runtime
                .block_on(self.zones[0].1.secure_zone())
                .expect("root zone signed");
        }
    }

    fn add(&self, owner: &str, data: RData) {
        let owner = name(owner);
        let (_, zone) = self
            .zones
            .iter()
            .rev()
            .find(|(origin, _)| origin.zone_of(&owner))
            .expect("the root zone holds every name");
        let record = Record::from_rdata(owner.clone(), 1, data);
        assert!(
            self.runtime.block_on(zone.upsert(record, 1)),
            "record for {owner} not added"
        );
        self.resign();
    }

    /// A TLSA record (usage, selector, matching, data) at `owner`, e.g.
    /// `_25._tcp.mx.example.test`.
    pub fn tlsa(&self, owner: &str, usage: u8, selector: u8, matching: u8, data: &[u8]) {
        let tlsa = TLSA::new(
            CertUsage::from(usage),
            Selector::from(selector),
            Matching::from(matching),
            data.to_vec(),
        );
        self.add(owner, RData::TLSA(tlsa));
    }

    pub fn mx(&self, domain: &str, preference: u16, host: &str) {
        self.add(domain, RData::MX(MX::new(preference, name(host))));
    }

    /// RFC 7505: `domain MX 0 .`.
    pub fn null_mx(&self, domain: &str) {
        self.add(domain, RData::MX(MX::new(0, Name::root())));
    }

    pub fn a(&self, host: &str, ip: Ipv4Addr) {
        self.add(host, RData::A(A(ip)));
    }

    pub fn aaaa(&self, host: &str, ip: Ipv6Addr) {
        self.add(host, RData::AAAA(AAAA(ip)));
    }

    /// A TXT record; text longer than 255 bytes (a DKIM key) is split into
    /// several character-strings, which readers join.
    pub fn txt(&self, owner: &str, text: &str) {
        let strings = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8(c.to_vec()).expect("ASCII TXT text"))
            .collect();
        self.add(owner, RData::TXT(TXT::new(strings)));
    }

    /// Make every query for `owner` misbehave.
    pub fn break_name(&self, owner: &str, how: Broken) {
        self.broken.lock().unwrap().insert(owner.to_ascii_lowercase(), how);
    }
}

/// Give `zone` a fresh signing key (KSK and ZSK in one); its DNSKEY record as a
/// zone file line.
async fn sign(zone: &Zone) -> String {
    let algorithm = Algorithm::ECDSAP256SHA256;
    let pkcs8 = EcdsaSigningKey::generate_pkcs8(algorithm).unwrap();
    let key = EcdsaSigningKey::from_pkcs8(&pkcs8, algorithm).unwrap();
    let dnskey = DNSKEY::from_key(&key.to_public_key().unwrap());
    let line = format!(". 3600 IN DNSKEY {dnskey}\n");
    let signer = DnssecSigner::new(dnskey, Box::new(key), Name::root(), Duration::from_secs(7 * 86400));
    zone.add_zone_signing_key(signer).await.unwrap();
    line
}
