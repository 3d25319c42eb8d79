//! `cargo xtask bench relay`: smtp-source submits the same load to our
//! `mta` (release build) and to a private Postfix instance, one after the
//! other in the same run, and each relays every message to Postfix's
//! smtp-sink on loopback: mta through an MX record served by a hickory DNS
//! server on loopback, Postfix through a transport(5) entry. A run counts
//! from the first connection until smtp-sink has dumped every message; CPU
//! is the MTA's process tree (for Postfix, its master and every child).
//! Rounds alternate as in `bench smtp`. Needs root (Postfix's master,
//! smtp-sink's `-u`) and the Debian packages postfix and strace.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{Name, RData, Record};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

use crate::bench_smtp::{
    Load, Postfix, Running, alternate_mta_postfix, free_port, init_mta, prepare, run_mta, smtp_source, wait_files,
    wait_port,
};
use crate::measure::{RunFigures, Window};

/// The destination domain; its MX is `SINK_HOST`.
const DOMAIN: &str = "bench-relay.test";
const SINK_HOST: &str = "sink.bench-relay.test";

/// A root zone on 127.0.0.1 (UDP and TCP) with the bench's MX and A
/// records; the runtime serving it stops when this is dropped.
struct LoopbackDns {
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

fn name(s: &str) -> Result<Name> {
    Ok(Name::from_ascii(format!("{s}."))?)
}

impl LoopbackDns {
    fn start() -> Result<LoopbackDns> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // Unsigned: no proof of non-existence kind.
        let zone =
            InMemoryZoneHandler::<TokioRuntimeProvider>::empty(Name::root(), ZoneType::Primary, AxfrPolicy::Deny, None);
        let soa = SOA::new(name("ns.test")?, name("hostmaster.test")?, 1, 3600, 600, 86400, 0);
        let records = [
            Record::from_rdata(Name::root(), 3600, RData::SOA(soa)),
            Record::from_rdata(name(DOMAIN)?, 3600, RData::MX(MX::new(10, name(SINK_HOST)?))),
            Record::from_rdata(name(SINK_HOST)?, 3600, RData::A(A::new(127, 0, 0, 1))),
        ];
        for r in records {
            anyhow::ensure!(runtime.block_on(zone.upsert(r, 1)), "DNS record not added");
        }
        let mut catalog = Catalog::new();
        catalog.upsert(Name::root().into(), vec![std::sync::Arc::new(zone)]);
        let port = free_port()?;
        runtime.block_on(async {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut server = Server::new(catalog);
            server.register_socket(tokio::net::UdpSocket::bind(addr).await?);
            server.register_listener(
                tokio::net::TcpListener::bind(addr).await?,
                std::time::Duration::from_secs(5),
                8,
            );
            tokio::spawn(async move {
                let _ = server.block_until_done().await;
            });
            Ok::<(), std::io::Error>(())
        })?;
        Ok(LoopbackDns {
            port,
            _runtime: runtime,
        })
    }
}

/// smtp-sink on 127.0.0.1:`port`, dumping each transaction into `dir` (as nobody).
fn start_sink(port: u16, dir: &Path) -> Result<Running> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    let child = Command::new("smtp-sink")
        .args(["-u", "nobody", "-d"])
        .arg(dir.join("m."))
        .args([&format!("127.0.0.1:{port}"), "256"])
        .spawn()
        .context("start smtp-sink")?;
    let sink = Running(child);
    wait_port(port)?;
    Ok(sink)
}

/// Submit the load to the MTA on `port`, until smtp-sink has dumped it all into `sink_dir`.
fn submit(port: u16, sink_dir: &Path, l: &Load) -> Result<()> {
    smtp_source(port, l, &format!("rcpt@{DOMAIN}"))?;
    wait_files(sink_dir, l.messages)
}

fn mta(dir: &Path, l: &Load) -> Result<RunFigures> {
    let sink_port = free_port()?;
    let sink_dir = dir.join("sink");
    let _sink = start_sink(sink_port, &sink_dir)?;
    let dns = LoopbackDns::start()?;
    let port = free_port()?;
    let config = init_mta(&dir.join("mta"), port - 25)?;
    let text = std::fs::read_to_string(&config)?
        .replacen("networks = []", "networks = [\"127.0.0.0/8\"]", 1)
        .replacen(
            "nameservers = []",
            &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
            1,
        )
        .replacen("port = 25\n", &format!("port = {sink_port}\n"), 1);
    std::fs::write(&config, text)?;
    let daemon = run_mta(&config)?;
    wait_port(port)?;
    let window = Window::measure(daemon.pid, || submit(port, &sink_dir, l))?;
    window.figures(&daemon.finish(), l.messages)
}

fn postfix(dir: &Path, l: &Load) -> Result<RunFigures> {
    let sink_port = free_port()?;
    let sink_dir = dir.join("sink");
    let _sink = start_sink(sink_port, &sink_dir)?;
    let conf = dir.join("postfix");
    std::fs::create_dir_all(&conf)?;
    let transport = conf.join("transport");
    std::fs::write(&transport, format!("{DOMAIN} smtp:[127.0.0.1]:{sink_port}\n"))?;
    let port = free_port()?;
    let instance = Postfix::start(
        &conf,
        port,
        &[
            "myhostname=postfix-relay.test".into(),
            format!("transport_maps=texthash:{}", transport.display()),
        ],
    )?;
    wait_port(port)?;
    let window = Window::measure(instance.master_pid()?, || submit(port, &sink_dir, l))?;
    window.figures(&instance.finish(), l.messages)
}

pub fn relay(l: &Load) -> Result<()> {
    prepare()?;
    let work: PathBuf = tempfile::tempdir()?.keep();
    println!(
        "{} messages of {} bytes, {} parallel submission sessions, relayed to smtp-sink; {} rounds, alternating",
        l.messages, l.size, l.sessions, l.rounds
    );
    alternate_mta_postfix(&work, l, mta, postfix)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
