//! A real DNS server on loopback for the tests (hickory-server: a `Catalog`
//! with one `InMemoryZoneHandler` for the root zone, over UDP and TCP), so
//! every name either resolves or gets NXDOMAIN. Records are added while it
//! runs; a name can be made to answer SERVFAIL or to get no answer at all.

use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};
use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};
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
        match broken {
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

/// The running server; stopped when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler<TokioRuntimeProvider>>,
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

impl DnsServer {
    /// Serve the root zone on 127.0.0.1 (UDP and TCP on one free port).
    pub fn start() -> DnsServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let zone = Arc::new(InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            Name::root(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        ));
        let soa = SOA::new(name("ns.test"), name("hostmaster.test"), 1, 3600, 600, 86400, 0);
        runtime.block_on(zone.upsert(Record::from_rdata(Name::root(), 60, RData::SOA(soa)), 1));
        let mut catalog = Catalog::new();
        catalog.upsert(Name::root().into(), vec![zone.clone()]);
        let broken: BrokenNames = Arc::default();
        let handler = Handler {
            catalog,
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
        DnsServer {
            addr,
            zone,
            broken,
            runtime,
        }
    }

    fn add(&self, owner: &str, data: RData) {
        let record = Record::from_rdata(name(owner), 1, data);
        assert!(
            self.runtime.block_on(self.zone.upsert(record, 1)),
            "record for {owner} not added"
        );
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
