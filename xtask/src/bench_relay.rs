//! `cargo xtask bench relay`: smtp-source submits the same load to our
//! `mta` (release build) and to a private Postfix instance, one after the
//! other in the same run, and each relays every message to Postfix's
//! smtp-sink on loopback: mta through an MX record served by a hickory DNS
//! server on loopback, Postfix through a transport(5) entry. A run counts
//! from the first connection until smtp-sink has dumped every message; CPU
//! is the MTA's own (for Postfix, its master and every child). Needs root
//! (Postfix's master, smtp-sink's `-u`) and the Debian package postfix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{Name, RData, Record};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

use crate::bench_smtp::{Postfix, Running, free_port, init_mta, run_mta, smtp_source, wait_files, wait_port};
use crate::run;

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

/// User + system CPU seconds of `pid` and of its children it has reaped.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let (_, ticks) = stat(pid)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / hz)
}

/// (parent PID, utime + stime + cutime + cstime in ticks) from /proc/PID/stat.
fn stat(pid: u32) -> Result<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = text.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
    let ticks = fields[11..15]
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    Ok((fields[1].parse()?, ticks))
}

/// CPU seconds of Postfix: the master (with the children it reaped) and
/// every child still running.
fn postfix_cpu_seconds(master: u32) -> Result<f64> {
    let mut total = cpu_seconds(master)?;
    for entry in std::fs::read_dir("/proc")?.filter_map(|e| e.ok()) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if matches!(stat(pid), Ok((parent, _)) if parent == master) {
            total += cpu_seconds(pid).unwrap_or(0.0);
        }
    }
    Ok(total)
}

/// One run's figures: seconds until all were delivered, CPU seconds used.
struct Figures {
    seconds: f64,
    cpu: f64,
}

/// Submit the load to the MTA on `port`; seconds until smtp-sink dumped it all into `sink_dir`.
fn submit(port: u16, sink_dir: &Path, messages: usize, sessions: usize, size: usize) -> Result<f64> {
    wait_port(port)?;
    let start = Instant::now();
    smtp_source(port, messages, sessions, size, &format!("rcpt@{DOMAIN}"))?;
    wait_files(sink_dir, messages)?;
    Ok(start.elapsed().as_secs_f64())
}

fn mta(dir: &Path, messages: usize, sessions: usize, size: usize) -> Result<Figures> {
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
    let seconds = submit(port, &sink_dir, messages, sessions, size)?;
    Ok(Figures {
        seconds,
        cpu: cpu_seconds(daemon.0.id())?,
    })
}

fn postfix(dir: &Path, messages: usize, sessions: usize, size: usize) -> Result<Figures> {
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
    let seconds = submit(port, &sink_dir, messages, sessions, size)?;
    Ok(Figures {
        seconds,
        cpu: postfix_cpu_seconds(instance.master_pid()?)?,
    })
}

pub fn relay(messages: usize, sessions: usize, size: usize) -> Result<()> {
    for tool in ["smtp-source", "smtp-sink", "postfix"] {
        if Command::new("which")
            .arg(tool)
            .output()
            .map_or(true, |o| !o.status.success())
        {
            bail!("{tool} not found: apt-get install postfix (it is in .ci/apt-packages.txt)");
        }
    }
    run(crate::cargo().args(["build", "--release", "--quiet", "-p", "mta", "--bins"]))?;
    let work: PathBuf = tempfile::tempdir()?.keep();
    println!("{messages} messages of {size} bytes, {sessions} parallel submission sessions, relayed to smtp-sink");
    let report = |who: &str, f: &Figures| {
        println!(
            "{who:8} {:8.1} msg/s delivered ({:.2} s), CPU {:.2} ms per message",
            messages as f64 / f.seconds,
            f.seconds,
            f.cpu * 1000.0 / messages as f64
        );
    };
    let ours = mta(&work.join("mta"), messages, sessions, size)?;
    report("mta:", &ours);
    let theirs = postfix(&work.join("postfix"), messages, sessions, size)?;
    report("postfix:", &theirs);
    println!(
        "ratio mta/postfix: {:.2} in msg/s, {:.2} in CPU per message",
        theirs.seconds / ours.seconds,
        ours.cpu / theirs.cpu
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
