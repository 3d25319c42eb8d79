//! `--firewall ebpf` (Linux): loads greyd's eBPF programs, pins their maps
//! and links under the pin directory (`/sys/fs/bpf/greyd`), and keeps the
//! maps equal to greyd's state.
//!
//! - `greyd_steer` (sk_lookup, attached to greyd's network namespace) sends
//!   TCP connections to the protected ports from non-whitelisted sources to
//!   greyd's listening sockets, kept in a sockmap; the rest reach the MTA.
//! - `greyd_block` (XDP, on the configured interfaces, native mode where the
//!   driver allows, generic otherwise) drops hard-blocked sources.
//!
//! With `keep_firewall`, maps and links stay pinned, so `bpftool map dump
//! pinned …` shows them and a restarting greyd finds them again: whitelisted
//! hosts keep reaching the MTA while it restarts. Without it the pins are
//! removed as soon as greyd holds the descriptors (while still root), so the
//! kernel detaches everything when greyd exits, however it exits, and the
//! unprivileged greyd has nothing to unlink.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap, Map, MapData, PerCpuArray, SockMap};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{SkLookup, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use greyd_ebpf as shared;
use ipnet::IpNet;

use super::{Firewall, FirewallError, FirewallState};

/// The programs, built by greyd's build script.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/greyd-ebpf"));

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const STEER_LINK: &str = "link_steer";

fn setup(msg: impl std::fmt::Display) -> FirewallError {
    FirewallError::Setup(format!(
        "{msg}; without eBPF use --firewall nftables or --firewall proxy"
    ))
}

/// The 16-byte key of an address (IPv4 mapped) and the prefix length of a net.
fn key(net: IpNet) -> Key<[u8; 16]> {
    match net {
        IpNet::V4(n) => Key::new(u32::from(n.prefix_len()) + 96, shared::mapped_v4(n.network().octets())),
        IpNet::V6(n) => Key::new(u32::from(n.prefix_len()), n.network().octets()),
    }
}

fn key_ip(ip: IpAddr) -> Key<[u8; 16]> {
    key(IpNet::from(ip))
}

/// Make sure a BPF filesystem is mounted at /sys/fs/bpf (mounting one if not).
fn ensure_bpffs() -> Result<(), FirewallError> {
    let is_bpffs = |p: &str| nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type().0 == BPF_FS_MAGIC);
    if is_bpffs("/sys/fs/bpf") {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        "/sys/fs/bpf",
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| {
        setup(format!(
            "no BPF filesystem at /sys/fs/bpf and mounting one failed ({e})"
        ))
    })
}

struct Maps {
    white: LpmTrie<MapData, [u8; 16], u8>,
    block: LpmTrie<MapData, [u8; 16], u8>,
    seen: HashMap<MapData, [u8; 16], u64>,
    socket: SockMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
}

pub struct EbpfFilter {
    maps: Mutex<Maps>,
    /// Held so the programs stay loaded and attached for as long as greyd runs.
    _bpf: Ebpf,
    _links: Vec<PinnedLink>,
}

/// Counter totals over all CPUs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub steered: u64,
    pub passed: u64,
    pub dropped: u64,
    pub refused: u64,
}

fn take<T: TryFrom<Map, Error = aya::maps::MapError>>(bpf: &mut Ebpf, name: &str) -> Result<T, FirewallError> {
    let map = bpf
        .take_map(name)
        .ok_or_else(|| setup(format!("the eBPF object has no map {name}")))?;
    T::try_from(map).map_err(|e| setup(format!("map {name}: {e}")))
}

impl EbpfFilter {
    pub fn new(
        ports: &[u16],
        xdp_interfaces: &[String],
        pin_dir: &Path,
        keep: bool,
    ) -> Result<EbpfFilter, FirewallError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(setup("eBPF needs root (CAP_BPF and CAP_NET_ADMIN)"));
        }
        ensure_bpffs()?;
        std::fs::create_dir_all(pin_dir).map_err(|e| setup(format!("cannot create {}: {e}", pin_dir.display())))?;
        let mut bpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .load(PROGRAMS)
            .map_err(|e| setup(format!("the kernel refused greyd's eBPF programs ({e})")))?;

        let mut port_map: HashMap<MapData, u16, u8> = take(&mut bpf, shared::MAP_PORTS)?;
        for p in port_map.keys().collect::<Result<Vec<_>, _>>().map_err(setup)? {
            let _ = port_map.remove(&p);
        }
        for &p in ports {
            port_map
                .insert(p, 1, 0)
                .map_err(|e| setup(format!("protected port {p}: {e}")))?;
        }

        // A pinned link left by the previous run still steers; keep it rather than attach twice.
        let steer_pin = pin_dir.join(STEER_LINK);
        let mut links = Vec::new();
        if let Ok(link) = PinnedLink::from_pin(&steer_pin) {
            links.push(link);
        } else {
            let prog: &mut SkLookup = bpf
                .program_mut("greyd_steer")
                .ok_or_else(|| setup("no greyd_steer program"))?
                .try_into()
                .map_err(setup)?;
            prog.load().map_err(|e| setup(format!("loading sk_lookup: {e}")))?;
            let netns = std::fs::File::open("/proc/self/ns/net").map_err(setup)?;
            let id = prog
                .attach(netns)
                .map_err(|e| setup(format!("attaching sk_lookup: {e}")))?;
            let link: FdLink = prog.take_link(id).map_err(setup)?.into();
            links.push(
                link.pin(&steer_pin)
                    .map_err(|e| setup(format!("pinning {}: {e}", steer_pin.display())))?,
            );
        }
        if !xdp_interfaces.is_empty() {
            let prog: &mut Xdp = bpf
                .program_mut("greyd_block")
                .ok_or_else(|| setup("no greyd_block program"))?
                .try_into()
                .map_err(setup)?;
            prog.load().map_err(|e| setup(format!("loading XDP: {e}")))?;
            for iface in xdp_interfaces {
                let pin = pin_dir.join(format!("link_xdp_{iface}"));
                if let Ok(link) = PinnedLink::from_pin(&pin) {
                    links.push(link);
                    continue;
                }
                // Native mode where the driver has it, generic otherwise.
                let id = prog
                    .attach(iface, XdpMode::Driver)
                    .or_else(|_| prog.attach(iface, XdpMode::Skb))
                    .map_err(|e| setup(format!("attaching XDP to interface {iface}: {e}")))?;
                let link: FdLink = prog.take_link(id).map_err(setup)?.try_into().map_err(setup)?;
                links.push(
                    link.pin(&pin)
                        .map_err(|e| setup(format!("pinning {}: {e}", pin.display())))?,
                );
            }
        }
        let maps = Maps {
            white: take(&mut bpf, shared::MAP_WHITE)?,
            block: take(&mut bpf, shared::MAP_BLOCK)?,
            seen: take(&mut bpf, shared::MAP_SEEN)?,
            socket: take(&mut bpf, shared::MAP_SOCKET)?,
            counters: take(&mut bpf, shared::MAP_COUNTERS)?,
        };
        if !keep {
            std::fs::remove_dir_all(pin_dir).map_err(|e| setup(format!("removing {}: {e}", pin_dir.display())))?;
        }
        Ok(EbpfFilter {
            maps: Mutex::new(maps),
            _bpf: bpf,
            _links: links,
        })
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counters(&self) -> Counters {
        let m = self.maps();
        let sum = |i: u32| m.counters.get(&i, 0).map_or(0, |v| v.iter().sum());
        Counters {
            steered: sum(shared::COUNT_STEERED),
            passed: sum(shared::COUNT_PASSED),
            dropped: sum(shared::COUNT_DROPPED),
            refused: sum(shared::COUNT_REFUSED),
        }
    }
}

/// Make `trie` hold exactly `wanted` (key → value), touching only what differs.
fn replace_trie(
    trie: &mut LpmTrie<MapData, [u8; 16], u8>,
    wanted: &[(Key<[u8; 16]>, u8)],
) -> Result<(), FirewallError> {
    let wanted_keys: std::collections::HashSet<(u32, [u8; 16])> =
        wanted.iter().map(|(k, _)| (k.prefix_len(), k.data())).collect();
    let stale: Vec<Key<[u8; 16]>> = trie
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !wanted_keys.contains(&(k.prefix_len(), k.data())))
        .collect();
    for k in stale {
        let _ = trie.remove(&k);
    }
    for (k, v) in wanted {
        trie.insert(k, v, 0)
            .map_err(|e| FirewallError::Setup(format!("eBPF map update: {e}")))?;
    }
    Ok(())
}

impl Firewall for EbpfFilter {
    fn upstream(&self) -> Option<std::net::SocketAddr> {
        None
    }

    fn listening(&self, listener: &tokio::net::TcpListener) -> Result<(), FirewallError> {
        let slot = match listener.local_addr().map_err(|e| FirewallError::Setup(e.to_string()))? {
            a if a.is_ipv4() => shared::SOCKET_V4,
            _ => shared::SOCKET_V6,
        };
        self.maps()
            .socket
            .set(slot, listener, 0)
            .map_err(|e| FirewallError::Setup(format!("sockmap: {e}")))
    }

    fn load(&self, state: &FirewallState) -> Result<(), FirewallError> {
        let mut m = self.maps();
        let mut white: Vec<(Key<[u8; 16]>, u8)> = state.allow.iter().map(|&n| (key(n), shared::ALLOW)).collect();
        white.extend(state.white.iter().map(|&ip| (key_ip(ip), shared::WHITE)));
        replace_trie(&mut m.white, &white)?;
        let block: Vec<(Key<[u8; 16]>, u8)> = state.block.iter().map(|&n| (key(n), 1)).collect();
        replace_trie(&mut m.block, &block)
    }

    fn white_added(&self, ip: IpAddr) -> Result<(), FirewallError> {
        self.maps()
            .white
            .insert(&key_ip(ip), shared::WHITE, 0)
            .map_err(|e| FirewallError::Setup(format!("eBPF map update: {e}")))
    }

    fn white_removed(&self, ip: IpAddr) -> Result<(), FirewallError> {
        let mut m = self.maps();
        let _ = m.white.remove(&key_ip(ip));
        let _ = m.seen.remove(&key_ip(ip).data());
        Ok(())
    }

    fn seen_white(&self) -> Vec<IpAddr> {
        let mut m = self.maps();
        let seen: Vec<[u8; 16]> = m.seen.keys().filter_map(Result::ok).collect();
        for k in &seen {
            let _ = m.seen.remove(k);
        }
        seen.into_iter()
            .map(|k| crate::control::canonical(IpAddr::from(k)))
            .collect()
    }
}
