//! `--firewall nftables`: an nftables table of greyd's own (`inet greyd`)
//! that drops hard-blocked sources, passes whitelisted and allowed sources
//! to the MTA, and redirects every other TCP connection to the protected
//! ports to greyd.
//!
//! Changes go to `nft -f -` as one atomic script per batch ([`Batcher`]).

use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Command;

use super::batch::{Batcher, WhiteChange};
use super::{CommandError, Firewall, FirewallError, FirewallState, run_with_input};

/// The table greyd owns; nothing else in the ruleset is touched.
pub const TABLE: &str = "greyd";

pub struct Nftables {
    batcher: Batcher,
    keep_on_exit: bool,
}

fn run_nft(script: &str) -> Result<(), FirewallError> {
    match run_with_input(Command::new("nft").args(["-f", "-"]), script) {
        Ok(()) => Ok(()),
        Err(CommandError::Spawn(e)) => Err(FirewallError::Setup(format!(
            "cannot run nft ({e}): install nftables, or use --firewall proxy"
        ))),
        Err(CommandError::Failed(err)) => {
            let hint = if err.contains("Operation not permitted") {
                " (nftables needs root or CAP_NET_ADMIN; without them use --firewall proxy)"
            } else {
                ""
            };
            Err(FirewallError::Setup(format!("nft: {err}{hint}")))
        }
    }
}

/// `{ a, b, c }` of the given family, or None when there are none.
fn elements<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> Option<String> {
    let list: Vec<String> = items.map(|i| i.to_string()).collect();
    (!list.is_empty()).then(|| format!("{{ {} }}", list.join(", ")))
}

/// Set names by family: ("white4", "white6") etc.
fn set_for(base: &str, ip_is_v4: bool) -> String {
    format!("{base}{}", if ip_is_v4 { 4 } else { 6 })
}

/// Commands that replace the contents of `base`4/`base`6 with `nets`.
fn replace_sets(script: &mut String, base: &str, nets: &[IpNet]) {
    for v4 in [true, false] {
        let set = set_for(base, v4);
        let _ = writeln!(script, "flush set inet {TABLE} {set}");
        if let Some(e) = elements(
            nets.iter()
                .filter(|n| matches!(n, IpNet::V4(_)) == v4)
                .map(|n| n.trunc()),
        ) {
            let _ = writeln!(script, "add element inet {TABLE} {set} {e}");
        }
    }
}

/// The table: sets, the early drop of blocked sources and the redirect.
pub fn ruleset(ports: &[u16], greyd_port: u16) -> String {
    let ports = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let mut s = format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    for base in ["white", "allow", "block"] {
        for (v, ty) in [(4, "ipv4_addr"), (6, "ipv6_addr")] {
            let _ = writeln!(s, "  set {base}{v} {{ type {ty}; flags interval; }}");
        }
    }
    let _ = write!(
        s,
        "  chain block {{
    type filter hook prerouting priority raw; policy accept;
    ip saddr @block4 counter drop
    ip6 saddr @block6 counter drop
  }}
  chain steer {{
    type nat hook prerouting priority dstnat; policy accept;
    tcp dport {{ {ports} }} ip saddr @white4 accept
    tcp dport {{ {ports} }} ip saddr @allow4 accept
    tcp dport {{ {ports} }} ip6 saddr @white6 accept
    tcp dport {{ {ports} }} ip6 saddr @allow6 accept
    tcp dport {{ {ports} }} redirect to :{greyd_port}
  }}
}}
"
    );
    s
}

impl Nftables {
    /// Install the table (replacing an old one) and start the batch writer.
    pub fn new(ports: &[u16], greyd_port: u16, keep_on_exit: bool) -> Result<Nftables, FirewallError> {
        run_nft(&ruleset(ports, greyd_port))?;
        let batcher = Batcher::start("nft-writer", |batch| {
            if let Err(e) = run_nft(&changes_script(batch)) {
                tracing::warn!("nftables update failed: {e}");
            }
        })
        .map_err(|e| FirewallError::Setup(e.to_string()))?;
        Ok(Nftables { batcher, keep_on_exit })
    }
}

/// One script for a batch of whitelist changes.
fn changes_script(batch: &[WhiteChange]) -> String {
    let mut script = String::new();
    for change in batch {
        let (ip, remove) = match *change {
            WhiteChange::Add(ip) => (ip, false),
            WhiteChange::Remove(ip) => (ip, true),
        };
        let set = set_for("white", ip.is_ipv4());
        let _ = writeln!(script, "add element inet {TABLE} {set} {{ {ip} }}");
        // "delete" of a missing element would sink the whole batch; after the add it cannot.
        if remove {
            let _ = writeln!(script, "delete element inet {TABLE} {set} {{ {ip} }}");
        }
    }
    script
}

impl Firewall for Nftables {
    fn upstream(&self) -> Option<std::net::SocketAddr> {
        None
    }

    fn load(&self, state: &FirewallState) -> Result<(), FirewallError> {
        let mut script = String::new();
        let white: Vec<IpNet> = state.white.iter().map(|&ip| IpNet::from(ip)).collect();
        replace_sets(&mut script, "white", &white);
        replace_sets(&mut script, "allow", &state.allow);
        replace_sets(&mut script, "block", &state.block);
        // A full load is applied at once, so it is in force when load returns.
        run_nft(&script)
    }

    fn white_added(&self, ip: IpAddr) -> Result<(), FirewallError> {
        self.batcher.push(WhiteChange::Add(ip));
        Ok(())
    }

    fn white_removed(&self, ip: IpAddr) -> Result<(), FirewallError> {
        self.batcher.push(WhiteChange::Remove(ip));
        Ok(())
    }

    /// The redirect rewrote the destination; conntrack remembers the original.
    fn original_destination(&self, stream: &tokio::net::TcpStream) -> Option<std::net::SocketAddr> {
        use nix::sys::socket::{getsockopt, sockopt};
        let local = stream.local_addr().ok()?;
        let orig = if local.is_ipv4() {
            let a = getsockopt(stream, sockopt::OriginalDst).ok()?;
            std::net::SocketAddr::from((u32::from_be(a.sin_addr.s_addr).to_be_bytes(), u16::from_be(a.sin_port)))
        } else {
            let a = getsockopt(stream, sockopt::Ip6tOriginalDst).ok()?;
            std::net::SocketAddr::from((a.sin6_addr.s6_addr, u16::from_be(a.sin6_port)))
        };
        Some(orig)
    }

    fn shutdown(&self) -> Result<(), FirewallError> {
        if self.keep_on_exit {
            Ok(())
        } else {
            run_nft(&format!("delete table inet {TABLE}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_redirects_only_non_white_sources_on_the_protected_ports() {
        let r = ruleset(&[25, 2525], 8025);
        assert!(r.contains("tcp dport { 25, 2525 } ip saddr @white4 accept"));
        assert!(r.contains("tcp dport { 25, 2525 } redirect to :8025"));
        assert!(
            r.find("@white6 accept").unwrap() < r.find("redirect").unwrap(),
            "white rules come first"
        );
    }

    #[test]
    fn set_replacement_splits_families() {
        let mut s = String::new();
        replace_sets(
            &mut s,
            "block",
            &["192.0.2.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
        );
        assert_eq!(
            s,
            "flush set inet greyd block4\nadd element inet greyd block4 { 192.0.2.0/24 }\n\
             flush set inet greyd block6\nadd element inet greyd block6 { 2001:db8::/32 }\n"
        );
    }
}
