//! `cargo xtask bench steer|xdp`: benchmarks of the kernel filters, in
//! network namespaces they create (as the tests do), against the same setup
//! without the filter or with nftables, in the same run:
//!
//! - `steer`: TCP connection rate to the MTA's port with greyd's sk_lookup
//!   program attached (the client whitelisted, so it passes through the
//!   program to the MTA) against no program at all;
//! - `xdp`: packets dropped per second from hard-blocked sources among
//!   100k blocked prefixes, greyd's XDP program against an nftables set drop
//!   (greyd's own nftables backend) of the same prefixes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use greyd_tests::netns::{Pair, real_mta};

/// greyd (release) inside the server namespace; stopped with SIGTERM (so it removes its pins) on drop.
struct Greyd {
    child: Child,
    control: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Greyd {
    fn start(pair: &Pair, firewall: &str, config: &str) -> Result<Greyd> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("greyd.toml"), config)?;
        let control = dir.path().join("greyd.sock");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", pair.server.name))
            .arg(greyd_tests::bin("greyd"))
            .args(["-d", "-p", "8025", "-S", "0", "--firewall", firewall, "--config"])
            .arg(dir.path().join("greyd.toml"))
            .arg("--db")
            .arg(dir.path().join("greyd.db"))
            .arg("--control")
            .arg(&control)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .spawn()
            .context("start greyd")?;
        let end = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&control).is_err() {
            if Instant::now() > end {
                bail!("greyd did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Greyd {
            child,
            control,
            _dir: dir,
        })
    }

    fn request(&self, line: &str) -> Result<()> {
        use std::io::{BufRead, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.control)?;
        writeln!(s, "{line}")?;
        let mut answer = String::new();
        std::io::BufReader::new(s).read_line(&mut answer)?;
        anyhow::ensure!(
            answer.contains("\"ok\""),
            "greyd refused {}: {answer}",
            &line[..line.len().min(80)]
        );
        Ok(())
    }
}

impl Drop for Greyd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the firewall benchmarks need root (network namespaces, eBPF, nftables)");
    }
    Ok(())
}

/// Connections per second from `from` to `to`, `threads` clients for `seconds`
/// (failed attempts are reported, not counted).
fn connect_rate(pair: &Pair, from: &str, to: SocketAddr, threads: usize, seconds: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (done, failed, from) = (Arc::clone(&done), Arc::clone(&failed), from.parse().unwrap());
            pair.client.run(move || {
                while Instant::now() < end {
                    let Ok(s) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None) else {
                        continue;
                    };
                    // Close with a reset: no TIME_WAIT, so the ephemeral ports last the whole run.
                    let _ = s.set_linger(Some(Duration::ZERO));
                    if s.bind(&SocketAddr::new(from, 0).into()).is_ok() && s.connect(&to.into()).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!("  ({failed} connection attempts failed)");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn steer(seconds: u64, threads: usize) -> Result<()> {
    require_root()?;
    let pair = Pair::new(&["10.79.1.1"], &["10.79.1.2"]);
    real_mta(&pair.server, 25);
    let mx: SocketAddr = "10.79.1.1:25".parse()?;
    let without = connect_rate(&pair, "10.79.1.2", mx, threads, seconds);
    let pins = format!("/sys/fs/bpf/greyd-bench-{}", std::process::id());
    let greyd = Greyd::start(&pair, "ebpf", &format!("bpf_pin_dir = \"{pins}\"\n"))?;
    greyd.request(r#"{"op":"add","kind":"white","keys":["10.79.1.2"]}"#)?;
    let with = connect_rate(&pair, "10.79.1.2", mx, threads, seconds);
    drop(greyd);
    println!("bench steer: TCP connections to port 25 through a veth pair, {threads} clients, {seconds} s each");
    println!(
        "  without sk_lookup:              {without:.0}/s ({:.1} µs per connection)",
        1e6 / without
    );
    println!(
        "  with greyd's sk_lookup program: {with:.0}/s ({:.1} µs per connection)",
        1e6 / with
    );
    println!("  ratio with/without: {:.3} (aim ≥ 0.95)", with / without);
    Ok(())
}

/// The MAC address of `ifname` in namespace `ns`.
fn mac(ns: &greyd_tests::netns::Netns, ifname: &str) -> Result<pnet::util::MacAddr> {
    let out = ns.output("ip", &["-o", "link", "show", "dev", ifname]);
    let text = out
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .context("no MAC")?;
    text.parse().map_err(|e| anyhow::anyhow!("MAC {text}: {e:?}"))
}

/// Send TCP SYNs from `sources` (round robin) to `dst` on the client's veth for `seconds`; returns packets sent.
fn flood(pair: &Pair, dst_mac: pnet::util::MacAddr, sources: Arc<Vec<Ipv4Addr>>, seconds: u64) -> Result<u64> {
    use pnet::datalink::{self, Channel};
    use pnet::packet::MutablePacket;
    use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
    use pnet::packet::ip::IpNextHeaderProtocols;
    use pnet::packet::ipv4::{self, MutableIpv4Packet};
    use pnet::packet::tcp::{self, MutableTcpPacket, TcpFlags};

    let client_if = pair.client.output("ip", &["-o", "link", "show"]);
    let ifname = client_if
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .find(|n| n != "lo")
        .context("client veth")?;
    let dst: Ipv4Addr = "10.79.2.1".parse()?;
    pair.client
        .run(move || -> Result<u64> {
            let iface = datalink::interfaces()
                .into_iter()
                .find(|i| i.name == ifname)
                .context("interface")?;
            let src_mac = iface.mac.context("no MAC")?;
            let Channel::Ethernet(mut tx, _rx) = datalink::channel(&iface, Default::default())? else {
                bail!("not an Ethernet channel")
            };
            // Prebuilt frames, one per source, so the loop only sends.
            let frames: Vec<[u8; 54]> = sources
                .iter()
                .take(4096)
                .map(|&src| {
                    let mut f = [0u8; 54];
                    let mut eth = MutableEthernetPacket::new(&mut f).unwrap();
                    eth.set_destination(dst_mac);
                    eth.set_source(src_mac);
                    eth.set_ethertype(EtherTypes::Ipv4);
                    let mut ip = MutableIpv4Packet::new(eth.payload_mut()).unwrap();
                    ip.set_version(4);
                    ip.set_header_length(5);
                    ip.set_total_length(40);
                    ip.set_ttl(64);
                    ip.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
                    ip.set_source(src);
                    ip.set_destination(dst);
                    let mut t = MutableTcpPacket::new(ip.payload_mut()).unwrap();
                    t.set_source(40000);
                    t.set_destination(25);
                    t.set_data_offset(5);
                    t.set_flags(TcpFlags::SYN);
                    t.set_window(65535);
                    t.set_checksum(tcp::ipv4_checksum(&t.to_immutable(), &src, &dst));
                    let sum = ipv4::checksum(&ip.to_immutable());
                    ip.set_checksum(sum);
                    f
                })
                .collect();
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut sent = 0u64;
            while Instant::now() < end {
                for f in &frames {
                    if let Some(Ok(())) = tx.send_to(f, None) {
                        sent += 1;
                    }
                }
            }
            Ok(sent)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("flood thread panicked"))?
}

/// XDP's dropped-packet counter (all CPUs), read with bpftool.
fn xdp_dropped(pins: &str) -> Result<u64> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "lookup", "pinned"])
        .arg(Path::new(pins).join("GREYD_COUNTERS"))
        .args(["key", "2", "0", "0", "0"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("bpftool output")?;
    let byte = |b: &serde_json::Value| {
        u64::from_str_radix(b.as_str().unwrap_or("0").trim_start_matches("0x"), 16).unwrap_or(0)
    };
    Ok(v["values"]
        .as_array()
        .context("per-CPU values")?
        .iter()
        .map(|cpu| {
            cpu["value"]
                .as_array()
                .map_or(0, |bytes| bytes.iter().rev().fold(0, |acc, b| acc << 8 | byte(b)))
        })
        .sum())
}

/// Packets counted by greyd's nftables drop rule for IPv4.
fn nft_dropped(pair: &Pair) -> Result<u64> {
    let out = pair.server.output("nft", &["list", "chain", "inet", "greyd", "block"]);
    let line = out.lines().find(|l| l.contains("@block4")).context("nft block rule")?;
    let packets = line
        .split("packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .context("nft counter")?;
    Ok(packets.parse()?)
}

fn xdp(prefixes: usize, seconds: u64) -> Result<()> {
    require_root()?;
    let pair = Pair::new(&["10.79.2.1"], &["10.79.2.2"]);
    let dst_mac = mac(&pair.server, &pair.server_if)?;
    // 100.64.0.0/10 holds 4M addresses; these exist only in the benchmark's packets.
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    let sources: Arc<Vec<Ipv4Addr>> = Arc::new((0..prefixes as u32).map(|i| Ipv4Addr::from(base + i)).collect());
    let entries: Vec<String> = sources.iter().map(|a| format!("\"{a}/32\"")).collect();
    let list = format!(
        r#"{{"op":"load_list","name":"bench","kind":"black","hard_block":true,"entries":[{}]}}"#,
        entries.join(",")
    );

    let pins = format!("/sys/fs/bpf/greyd-bench-{}", std::process::id());
    let greyd = Greyd::start(
        &pair,
        "ebpf",
        &format!("bpf_pin_dir = \"{pins}\"\nxdp_interfaces = [\"{}\"]\n", pair.server_if),
    )?;
    greyd.request(&list)?;
    let before = xdp_dropped(&pins)?;
    let t = Instant::now();
    let sent_xdp = flood(&pair, dst_mac, Arc::clone(&sources), seconds)?;
    let xdp_rate = (xdp_dropped(&pins)? - before) as f64 / t.elapsed().as_secs_f64();
    drop(greyd);

    let greyd = Greyd::start(&pair, "nftables", "")?;
    greyd.request(&list)?;
    let before = nft_dropped(&pair)?;
    let t = Instant::now();
    let sent_nft = flood(&pair, dst_mac, sources, seconds)?;
    let nft_rate = (nft_dropped(&pair)? - before) as f64 / t.elapsed().as_secs_f64();
    drop(greyd);

    println!("bench xdp: SYN flood from {prefixes} blocked /32s through a veth pair, {seconds} s each");
    println!("  greyd XDP:     {xdp_rate:.0} packets dropped/s ({sent_xdp} sent)");
    println!("  nftables set:  {nft_rate:.0} packets dropped/s ({sent_nft} sent)");
    println!("  ratio XDP/nftables: {:.2} (aim ≥ 2)", xdp_rate / nft_rate);
    Ok(())
}

/// `bench_firewall steer [seconds] [clients]` or `bench_firewall xdp [prefixes] [seconds]`.
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| {
        args.get(i)
            .map_or(Ok(default), |a| a.parse::<u64>())
            .context("a number")
    };
    match args.first().map(String::as_str) {
        Some("steer") => steer(num(1, 5)?, num(2, 4)? as usize),
        Some("xdp") => xdp(num(1, 100_000)? as usize, num(2, 5)?),
        _ => bail!("usage: bench_firewall steer [seconds] [clients] | xdp [prefixes] [seconds]"),
    }
}
