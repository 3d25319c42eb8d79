//! greyd's kernel programs.
//!
//! - `greyd_steer` (sk_lookup): a TCP connection to a protected port from a
//!   source not in the white trie is assigned to greyd's listening socket;
//!   everything else takes the normal lookup and reaches the MTA. No NAT, so
//!   greyd's accepted socket still has the original destination.
//! - `greyd_block` (XDP): packets from sources in the block trie are dropped
//!   before the stack sees them.
#![no_std]
#![no_main]

use aya_ebpf::bindings::{sk_action, xdp_action};
use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::macros::{map, sk_lookup, xdp};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{HashMap, LpmTrie, LruHashMap, PerCpuArray, SockMap};
use aya_ebpf::programs::{SkLookupContext, XdpContext};
use greyd_ebpf::*;

#[map(name = "GREYD_WHITE")]
static WHITE_TRIE: LpmTrie<[u8; 16], u8> = LpmTrie::pinned(MAX_WHITE, 0);
#[map(name = "GREYD_BLOCK")]
static BLOCK_TRIE: LpmTrie<[u8; 16], u8> = LpmTrie::pinned(MAX_BLOCK, 0);
#[map(name = "GREYD_PORTS")]
static PORTS: HashMap<u16, u8> = HashMap::pinned(MAX_PORTS, 0);
#[map(name = "GREYD_SOCKET")]
static SOCKET: SockMap = SockMap::pinned(2, 0);
#[map(name = "GREYD_SEEN")]
static SEEN: LruHashMap<[u8; 16], u64> = LruHashMap::pinned(MAX_WHITE, 0);
#[map(name = "GREYD_COUNTERS")]
static COUNTERS_MAP: PerCpuArray<u64> = PerCpuArray::pinned(COUNTERS, 0);

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const IPPROTO_TCP: u32 = 6;

#[inline(always)]
fn count(index: u32) {
    if let Some(c) = COUNTERS_MAP.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot, only this CPU writes it.
        unsafe { *c += 1 };
    }
}

/// The remote IPv6 address. The verifier only allows context reads at
/// constant offsets, so each word is read on its own (volatile keeps the
/// compiler from turning the reads into a computed pointer).
#[inline(always)]
fn remote_ip6(l: &aya_ebpf::bindings::bpf_sk_lookup) -> [u8; 16] {
    // SAFETY: fields of the context the kernel passed.
    let w = unsafe {
        [
            core::ptr::read_volatile(&l.remote_ip6[0]),
            core::ptr::read_volatile(&l.remote_ip6[1]),
            core::ptr::read_volatile(&l.remote_ip6[2]),
            core::ptr::read_volatile(&l.remote_ip6[3]),
        ]
    };
    let (a, b, c, d) = (
        w[0].to_ne_bytes(),
        w[1].to_ne_bytes(),
        w[2].to_ne_bytes(),
        w[3].to_ne_bytes(),
    );
    [
        a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2], d[3],
    ]
}

#[sk_lookup]
pub fn greyd_steer(ctx: SkLookupContext) -> u32 {
    // SAFETY: the kernel passes a valid bpf_sk_lookup.
    let l = unsafe { &*ctx.lookup };
    if l.protocol != IPPROTO_TCP {
        return sk_action::SK_PASS;
    }
    let port = l.local_port as u16;
    // SAFETY: map lookup of a plain key.
    if unsafe { PORTS.get(&port) }.is_none() {
        return sk_action::SK_PASS;
    }
    let (addr, slot) = match l.family {
        AF_INET => (mapped_v4(l.remote_ip4.to_ne_bytes()), SOCKET_V4),
        AF_INET6 => (remote_ip6(l), SOCKET_V6),
        _ => return sk_action::SK_PASS,
    };
    if let Some(kind) = WHITE_TRIE.get(Key::new(128, addr)) {
        if *kind == WHITE {
            // SAFETY: no preconditions.
            let now = unsafe { bpf_ktime_get_ns() };
            let _ = SEEN.insert(&addr, &now, 0);
        }
        count(COUNT_PASSED);
        return sk_action::SK_PASS;
    }
    match SOCKET.redirect_sk_lookup(&ctx, slot, 0) {
        Ok(()) => {
            count(COUNT_STEERED);
            sk_action::SK_PASS
        }
        // greyd is not there (restarting): refuse rather than hand an unknown source to the MTA.
        Err(_) => {
            count(COUNT_REFUSED);
            sk_action::SK_DROP
        }
    }
}

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// `len` bytes at `offset` of the packet, if the packet holds them.
#[inline(always)]
fn bytes<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<[u8; N]> {
    let start = ctx.data() + offset;
    if start + N > ctx.data_end() {
        return None;
    }
    // SAFETY: bounds checked against data_end just above, as the verifier requires.
    Some(unsafe { core::ptr::read_unaligned(start as *const [u8; N]) })
}

#[xdp]
pub fn greyd_block(ctx: XdpContext) -> u32 {
    let Some(ethertype) = bytes::<2>(&ctx, 12) else {
        return xdp_action::XDP_PASS;
    };
    let addr = match u16::from_be_bytes(ethertype) {
        ETH_P_IP => match bytes::<4>(&ctx, ETH_HLEN + 12) {
            Some(src) => mapped_v4(src),
            None => return xdp_action::XDP_PASS,
        },
        ETH_P_IPV6 => match bytes::<16>(&ctx, ETH_HLEN + 8) {
            Some(src) => src,
            None => return xdp_action::XDP_PASS,
        },
        _ => return xdp_action::XDP_PASS,
    };
    if BLOCK_TRIE.get(Key::new(128, addr)).is_some() {
        count(COUNT_DROPPED);
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual BSD/GPL\0";

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
