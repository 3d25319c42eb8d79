//! `--firewall pf` (OpenBSD): greyd writes its anchor `greyd` and keeps its
//! tables in sync with `pfctl`, as spamd does with its own tables.
//!
//! The anchor drops `<greyd-block>`, passes `<nogreyd>` (permanently
//! allowed) and `<greyd-white>` to the MTA, and diverts every other TCP
//! connection to the protected ports to greyd (`divert-to`, so greyd's
//! accepted socket keeps the original destination, as spamd relies on).
//! The main ruleset only needs `anchor "greyd"`. Table changes are batched
//! into one `pfctl -a greyd -t … -T add|delete -f -` per burst; full loads
//! use `-T replace`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use ipnet::IpNet;

use super::batch::{Batcher, WhiteChange};
use super::{CommandError, Firewall, FirewallError, FirewallState, run_with_input};

pub const ANCHOR: &str = "greyd";
pub const TABLE_WHITE: &str = "greyd-white";
pub const TABLE_BLOCK: &str = "greyd-block";
pub const TABLE_ALLOW: &str = "nogreyd";

/// Runs pfctl (the path is configurable so it can be a stand-in on other systems).
#[derive(Clone)]
struct Pfctl(PathBuf);

impl Pfctl {
    fn run(&self, args: &[&str], input: &str) -> Result<(), FirewallError> {
        run_with_input(Command::new(&self.0).args(args), input).map_err(|e| match e {
            CommandError::Spawn(e) => FirewallError::Setup(format!(
                "cannot run {} ({e}); pf needs OpenBSD's pfctl, elsewhere use --firewall nftables or proxy",
                self.0.display()
            )),
            CommandError::Failed(err) => FirewallError::Setup(format!("pfctl {}: {err}", args.join(" "))),
        })
    }

    /// `addresses` one per line on stdin to `pfctl -a greyd -t table -T op -f -`.
    fn table(&self, table: &str, op: &str, addresses: &[String]) -> Result<(), FirewallError> {
        let mut input = addresses.join("\n");
        input.push('\n');
        self.run(&["-a", ANCHOR, "-t", table, "-T", op, "-f", "-"], &input)
    }
}

/// The anchor's rules.
pub fn anchor_rules(ports: &[u16], greyd: SocketAddr) -> String {
    let ports = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
    format!(
        "table <{TABLE_WHITE}> persist\n\
         table <{TABLE_BLOCK}> persist\n\
         table <{TABLE_ALLOW}> persist\n\
         block drop in quick from <{TABLE_BLOCK}>\n\
         pass in quick proto tcp from <{TABLE_ALLOW}> to any port {{ {ports} }}\n\
         pass in quick proto tcp from <{TABLE_WHITE}> to any port {{ {ports} }}\n\
         pass in quick proto tcp to any port {{ {ports} }} divert-to {} port {}\n",
        greyd.ip(),
        greyd.port()
    )
}

pub struct Pf {
    pfctl: Pfctl,
    batcher: Batcher,
    keep_on_exit: bool,
}

impl Pf {
    /// Load the anchor (diverting to `greyd`) and start the batch writer.
    pub fn new(pfctl: PathBuf, ports: &[u16], greyd: SocketAddr, keep_on_exit: bool) -> Result<Pf, FirewallError> {
        let pfctl = Pfctl(pfctl);
        pfctl.run(&["-a", ANCHOR, "-f", "-"], &anchor_rules(ports, greyd))?;
        let writer = pfctl.clone();
        let batcher = Batcher::start("pfctl-writer", move |batch| {
            let (add, remove): (Vec<_>, Vec<_>) = batch.iter().partition(|c| matches!(c, WhiteChange::Add(_)));
            let addresses = |changes: Vec<&WhiteChange>| -> Vec<String> {
                changes
                    .iter()
                    .map(|c| match c {
                        WhiteChange::Add(ip) | WhiteChange::Remove(ip) => ip.to_string(),
                    })
                    .collect()
            };
            for (op, changes) in [("add", add), ("delete", remove)] {
                if !changes.is_empty()
                    && let Err(e) = writer.table(TABLE_WHITE, op, &addresses(changes))
                {
                    tracing::warn!("pf table update failed: {e}");
                }
            }
        })
        .map_err(|e| FirewallError::Setup(e.to_string()))?;
        Ok(Pf {
            pfctl,
            batcher,
            keep_on_exit,
        })
    }
}

fn nets(nets: &[IpNet]) -> Vec<String> {
    nets.iter().map(|n| n.trunc().to_string()).collect()
}

impl Firewall for Pf {
    fn upstream(&self) -> Option<SocketAddr> {
        None
    }

    fn load(&self, state: &FirewallState) -> Result<(), FirewallError> {
        let white: Vec<String> = state.white.iter().map(IpAddr::to_string).collect();
        self.pfctl.table(TABLE_WHITE, "replace", &white)?;
        self.pfctl.table(TABLE_ALLOW, "replace", &nets(&state.allow))?;
        self.pfctl.table(TABLE_BLOCK, "replace", &nets(&state.block))
    }

    fn white_added(&self, ip: IpAddr) -> Result<(), FirewallError> {
        self.batcher.push(WhiteChange::Add(ip));
        Ok(())
    }

    fn white_removed(&self, ip: IpAddr) -> Result<(), FirewallError> {
        self.batcher.push(WhiteChange::Remove(ip));
        Ok(())
    }

    fn shutdown(&self) -> Result<(), FirewallError> {
        if self.keep_on_exit {
            Ok(())
        } else {
            self.pfctl.run(&["-a", ANCHOR, "-F", "all"], "")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_diverts_all_but_white_allowed_and_blocked() {
        let r = anchor_rules(&[25], "127.0.0.1:8025".parse().unwrap());
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[3], "block drop in quick from <greyd-block>");
        assert_eq!(
            lines[5],
            "pass in quick proto tcp from <greyd-white> to any port { 25 }"
        );
        assert_eq!(
            lines[6],
            "pass in quick proto tcp to any port { 25 } divert-to 127.0.0.1 port 8025"
        );
    }
}
