//! How connections reach greyd and how whitelisted sources reach the MTA.
//!
//! A [`Firewall`] is told every change of the sets it enforces (whitelist,
//! allow nets, hard blocks) and says whether greyd must itself pass
//! whitelisted clients on ([`Firewall::upstream`]). Kernel backends (eBPF,
//! nftables, pf) steer in the kernel, so only non-whitelisted sources ever
//! reach greyd's socket; the `proxy` and `none` backends keep no kernel state.

mod batch;
#[cfg(all(target_os = "linux", greyd_ebpf))]
pub mod ebpf;
#[cfg(target_os = "linux")]
pub mod nftables;
pub mod pf;

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::config::{Config, FirewallKind};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(
        "--firewall {0:?} is not built yet: use --firewall proxy (greyd owns the port and passes \
         whitelisted clients to --upstream) or --firewall none"
    )]
    NotAvailable(FirewallKind),
    #[error("firewall: {0}")]
    Setup(String),
}

/// How an external command (nft, pfctl) failed.
enum CommandError {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It ran and failed; its stderr.
    Failed(String),
}

/// Run `cmd` with `input` on its standard input.
fn run_with_input(cmd: &mut std::process::Command, input: &str) -> Result<(), CommandError> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(CommandError::Spawn)?;
    // A command that exits early closes its stdin; its status and stderr tell why.
    let _ = child.stdin.take().expect("piped stdin").write_all(input.as_bytes());
    let out = child.wait_with_output().map_err(CommandError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CommandError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The state a firewall enforces; sent whole at start and after list loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallState {
    pub white: Vec<IpAddr>,
    /// Permanently allowed nets (spamd's `<nospamd>`).
    pub allow: Vec<IpNet>,
    /// Nets dropped outright.
    pub block: Vec<IpNet>,
}

pub trait Firewall: Send + Sync {
    /// The MTA greyd must splice whitelisted clients to, when the kernel does not steer them.
    fn upstream(&self) -> Option<SocketAddr>;
    /// Replace everything the firewall enforces.
    fn load(&self, state: &FirewallState) -> Result<(), FirewallError>;
    /// A source was whitelisted.
    fn white_added(&self, ip: IpAddr) -> Result<(), FirewallError>;
    /// A source's whitelisting expired or was deleted.
    fn white_removed(&self, ip: IpAddr) -> Result<(), FirewallError>;
    /// greyd listens on `listener` (kernel steering needs its socket).
    fn listening(&self, _listener: &tokio::net::TcpListener) -> Result<(), FirewallError> {
        Ok(())
    }
    /// Whitelisted sources that connected since the last call (their entries are refreshed).
    fn seen_white(&self) -> Vec<IpAddr> {
        Vec::new()
    }
    /// The address a connection was originally made to (the kernel may have redirected it).
    fn original_destination(&self, stream: &tokio::net::TcpStream) -> Option<SocketAddr> {
        stream.local_addr().ok()
    }
    /// greyd is exiting: remove kernel state unless told to keep it.
    fn shutdown(&self) -> Result<(), FirewallError> {
        Ok(())
    }
}

/// Backends without kernel state: `proxy` (with an upstream) and `none`.
pub struct Userspace {
    upstream: Option<SocketAddr>,
}

impl Firewall for Userspace {
    fn upstream(&self) -> Option<SocketAddr> {
        self.upstream
    }

    fn load(&self, _: &FirewallState) -> Result<(), FirewallError> {
        Ok(())
    }

    fn white_added(&self, _: IpAddr) -> Result<(), FirewallError> {
        Ok(())
    }

    fn white_removed(&self, _: IpAddr) -> Result<(), FirewallError> {
        Ok(())
    }
}

/// Why `kind` cannot keep the kernel up to date once greyd is no longer
/// root, if it cannot: nft and pfctl are run for every change and need root
/// (CAP_NET_ADMIN, /dev/pf) that an unprivileged greyd cannot pass on.
pub fn needs_root(kind: FirewallKind) -> Option<&'static str> {
    match kind {
        FirewallKind::Nftables => Some("--firewall nftables runs nft for every whitelisting"),
        FirewallKind::Pf => Some("--firewall pf runs pfctl for every whitelisting"),
        FirewallKind::None | FirewallKind::Proxy | FirewallKind::Ebpf => None,
    }
}

/// The backend `config` asks for.
pub fn from_config(config: &Config) -> Result<Box<dyn Firewall>, FirewallError> {
    match config.firewall {
        FirewallKind::Proxy => Ok(Box::new(Userspace {
            upstream: config.upstream,
        })),
        FirewallKind::None => Ok(Box::new(Userspace { upstream: None })),
        #[cfg(target_os = "linux")]
        FirewallKind::Nftables => Ok(Box::new(nftables::Nftables::new(
            &config.protected_ports,
            config.port,
            config.keep_firewall,
        )?)),
        #[cfg(all(target_os = "linux", greyd_ebpf))]
        FirewallKind::Ebpf => Ok(Box::new(ebpf::EbpfFilter::new(
            &config.protected_ports,
            &config.xdp_interfaces,
            &config.bpf_pin_dir,
            config.keep_firewall,
        )?)),
        FirewallKind::Pf => {
            // divert-to needs an address greyd listens on; the first -l address, loopback for a wildcard.
            let ip = config
                .listen
                .first()
                .copied()
                .filter(|ip| !ip.is_unspecified())
                .unwrap_or([127, 0, 0, 1].into());
            Ok(Box::new(pf::Pf::new(
                config.pfctl.clone(),
                &config.protected_ports,
                SocketAddr::new(ip, config.port),
                config.keep_firewall,
            )?))
        }
        // Reached on builds without eBPF, or off Linux.
        #[allow(unreachable_patterns)]
        kind => Err(FirewallError::NotAvailable(kind)),
    }
}
