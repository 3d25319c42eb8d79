//! What greyd's eBPF programs and greyd share: map names (which are also the
//! pin names under `/sys/fs/bpf/greyd`), sizes, and the layout of keys and
//! values. Built `no_std` for the kernel side and as a normal library for greyd.
//!
//! Addresses are keyed as 16 bytes: IPv6 as is, IPv4 mapped into
//! `::ffff:0:0/96`, so one LPM trie serves both families (an IPv4 prefix
//! length gains 96).
#![no_std]

/// Whitelisted and allowed sources (LPM trie, key `[u8; 16]`, value [`WHITE`] or [`ALLOW`]).
pub const MAP_WHITE: &str = "GREYD_WHITE";
/// Hard-blocked sources, dropped by XDP (LPM trie, key `[u8; 16]`, value 1).
pub const MAP_BLOCK: &str = "GREYD_BLOCK";
/// Protected TCP ports (hash, key `u16`, value 1).
pub const MAP_PORTS: &str = "GREYD_PORTS";
/// greyd's listening sockets (sockmap: [`SOCKET_V4`], [`SOCKET_V6`]).
pub const MAP_SOCKET: &str = "GREYD_SOCKET";
/// Last time a whitelisted source connected (LRU hash, key `[u8; 16]`, value ns of CLOCK_MONOTONIC).
pub const MAP_SEEN: &str = "GREYD_SEEN";
/// Per-CPU counters, indexed by the `COUNT_*` constants.
pub const MAP_COUNTERS: &str = "GREYD_COUNTERS";

pub const MAX_WHITE: u32 = 1 << 20;
pub const MAX_BLOCK: u32 = 1 << 20;
pub const MAX_PORTS: u32 = 64;

/// Value of a whitelisted source in [`MAP_WHITE`]: its connections are recorded in [`MAP_SEEN`].
pub const WHITE: u8 = 1;
/// Value of a permanently allowed net in [`MAP_WHITE`].
pub const ALLOW: u8 = 2;

pub const SOCKET_V4: u32 = 0;
pub const SOCKET_V6: u32 = 1;

/// Connections steered to greyd.
pub const COUNT_STEERED: u32 = 0;
/// Connections from whitelisted or allowed sources left to the MTA.
pub const COUNT_PASSED: u32 = 1;
/// Packets from hard-blocked sources dropped by XDP.
pub const COUNT_DROPPED: u32 = 2;
/// Connections refused because greyd's socket was missing (greyd restarting).
pub const COUNT_REFUSED: u32 = 3;
pub const COUNTERS: u32 = 4;

/// An IPv4 address (network byte order octets) as a 16-byte key.
pub const fn mapped_v4(octets: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2], octets[3],
    ]
}
