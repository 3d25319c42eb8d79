//! Configuration: spamd's command-line flags, the TOML file (every flag has a
//! key), and the defaults, merged in that order of precedence
//! (flag > file > default). See README.md for every key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use serde::Deserialize;

use crate::dnswl::Site;
use crate::grey::GreyRules;
use greyd_shared::duration::{DurationError, parse as parse_duration};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Toml { path: String, source: toml::de::Error },
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Why `-G` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum GOptionError {
    #[error("-G wants passtime:greyexp:whiteexp, got {0:?}")]
    Shape(String),
    #[error(transparent)]
    Duration(#[from] DurationError),
}

/// `-G passtime:greyexp:whiteexp`; bare numbers are minutes:hours:hours as in spamd.
fn parse_g(text: &str) -> Result<(Duration, Duration, Duration), GOptionError> {
    let parts: Vec<&str> = text.split(':').collect();
    let [p, g, w] = parts.as_slice() else {
        return Err(GOptionError::Shape(text.into()));
    };
    Ok((
        parse_duration(p, 60)?,
        parse_duration(g, 3600)?,
        parse_duration(w, 3600)?,
    ))
}

/// How connections reach greyd and how whitelisted sources reach the MTA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FirewallKind {
    /// Nothing steers: greyd tarpits or greylists every connection it gets.
    None,
    /// greyd owns the public port and splices whitelisted sources to the upstream MTA.
    Proxy,
    /// Linux eBPF (sk_lookup + XDP).
    Ebpf,
    /// OpenBSD pf anchor and tables.
    Pf,
    /// Linux nftables table and sets.
    Nftables,
}

/// What greyd does with a client that sends before its banner has ended
/// (postscreen's pregreet test): real MTAs wait for the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pregreet {
    /// Trap the source for the trap time, as a spamtrap hit does.
    Trap,
    /// Only log it.
    Log,
    /// Do not check.
    Off,
}

/// `greyd --version`: the version and the firewall backends this build has.
#[cfg(all(target_os = "linux", greyd_ebpf))]
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\nfirewalls: proxy none nftables ebpf");
#[cfg(all(target_os = "linux", not(greyd_ebpf)))]
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nfirewalls: proxy none nftables (ebpf not built: `cargo xtask deps` installs its toolchain)"
);
#[cfg(not(target_os = "linux"))]
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\nfirewalls: proxy none");

/// The command line, as spamd's plus greyd's long options.
#[derive(Debug, Parser)]
#[command(
    name = "greyd",
    version,
    long_version = LONG_VERSION,
    about = "Tarpit and greylister (spamd's role)",
    disable_help_flag = true
)]
pub struct Cli {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Blacklisted sources are told 450 (the default).
    #[arg(short = '4', overrides_with = "five")]
    four: bool,
    /// Blacklisted sources are told 550.
    #[arg(short = '5', overrides_with = "four")]
    five: bool,
    /// Blacklist-only mode: sources on no list are passed on, not greylisted.
    #[arg(short = 'b')]
    blacklist_only: bool,
    /// Stay in the foreground and log to stderr.
    #[arg(short = 'd')]
    pub debug: bool,
    /// Log each tuple and more detail.
    #[arg(short = 'v')]
    verbose: bool,
    /// Most blacklisted connections stuttered at once (default maxcon).
    #[arg(short = 'B', value_name = "maxblack")]
    maxblack: Option<usize>,
    /// Most concurrent connections (default 800).
    #[arg(short = 'c', value_name = "maxcon")]
    maxcon: Option<usize>,
    /// passtime:greyexp:whiteexp, in minutes:hours:hours or with s/m/h/d suffixes.
    #[arg(short = 'G', value_name = "passtime:greyexp:whiteexp", value_parser = parse_g)]
    grey_times: Option<(Duration, Duration, Duration)>,
    /// Hostname in the SMTP banner.
    #[arg(short = 'h', value_name = "hostname")]
    hostname: Option<String>,
    /// Listen address (repeatable; default all IPv4 and IPv6 addresses).
    #[arg(short = 'l', value_name = "address")]
    listen: Vec<IpAddr>,
    /// Low-priority MX address: new tuples arriving on it trap their source.
    #[arg(short = 'M', value_name = "address")]
    low_priority_mx: Option<IpAddr>,
    /// Name in the SMTP banner.
    #[arg(short = 'n', value_name = "name")]
    banner_name: Option<String>,
    /// TCP port to listen on (default 8025).
    #[arg(short = 'p', value_name = "port")]
    port: Option<u16>,
    /// Seconds greylisted connections are stuttered at (default 10).
    #[arg(short = 'S', value_name = "secs")]
    grey_stutter: Option<u64>,
    /// Seconds per byte for blacklisted connections (default 1).
    #[arg(short = 's', value_name = "secs")]
    stutter: Option<u64>,
    /// Socket receive window for blacklisted connections, in bytes.
    #[arg(short = 'w', value_name = "window")]
    window: Option<u32>,
    /// Sync target: a host (`host[:port]`, unicast) or an interface (multicast); repeatable.
    #[arg(short = 'Y', value_name = "target")]
    sync_targets: Vec<String>,
    /// Receive sync messages on this address (`addr[:port]`) or interface (multicast).
    #[arg(short = 'y', value_name = "address")]
    sync_listen: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database file.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// How connections are steered.
    #[arg(long, value_enum)]
    firewall: Option<FirewallKind>,
    /// The MTA that whitelisted sources are spliced to (proxy mode).
    #[arg(long, value_name = "ADDR")]
    upstream: Option<SocketAddr>,
    /// Control socket path.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP on this address.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Load the configuration, report what is wrong with it, and exit (status 0 when it is usable).
    #[arg(long)]
    pub check_config: bool,
}

/// The `[dns]` table: the resolver SPF and DNSWL lookups go through.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsFile {
    nameservers: Option<Vec<SocketAddr>>,
}

/// The TOML file: every key optional, each overriding a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    port: Option<u16>,
    listen: Option<Vec<IpAddr>>,
    maxcon: Option<usize>,
    maxblack: Option<usize>,
    max_per_source: Option<usize>,
    passtime: Option<String>,
    greyexp: Option<String>,
    whiteexp: Option<String>,
    trapexp: Option<String>,
    stutter: Option<u64>,
    grey_stutter: Option<u64>,
    hostname: Option<String>,
    banner_name: Option<String>,
    reply_code: Option<u16>,
    blacklist_only: Option<bool>,
    low_priority_mx: Option<IpAddr>,
    window: Option<u32>,
    verbose: Option<bool>,
    db: Option<PathBuf>,
    firewall: Option<FirewallKind>,
    upstream: Option<SocketAddr>,
    control: Option<PathBuf>,
    alloweddomains: Option<PathBuf>,
    nospamd: Option<Vec<IpNet>>,
    max_bad_commands: Option<u32>,
    pregreet: Option<Pregreet>,
    idle_timeout: Option<String>,
    expire_interval: Option<String>,
    user: Option<String>,
    sync_targets: Option<Vec<String>>,
    sync_listen: Option<String>,
    sync_key: Option<PathBuf>,
    sync_port: Option<u16>,
    protected_ports: Option<Vec<u16>>,
    keep_firewall: Option<bool>,
    xdp_interfaces: Option<Vec<String>>,
    bpf_pin_dir: Option<PathBuf>,
    pfctl: Option<PathBuf>,
    aggregate_v4: Option<u8>,
    aggregate_v6: Option<u8>,
    spf_promotion: Option<bool>,
    dnswl: Option<Vec<String>>,
    dnswl_threshold: Option<i32>,
    metrics: Option<SocketAddr>,
    dns: Option<DnsFile>,
    /// greyd-setup's `[setup]` section may share this file; greyd does not read it.
    #[serde(rename = "setup")]
    _setup: Option<toml::Table>,
}

/// The merged configuration greyd runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<IpAddr>,
    pub port: u16,
    pub maxcon: usize,
    pub maxblack: usize,
    /// Most tarpit connections from one IPv4 address or IPv6 /64.
    pub max_per_source: usize,
    pub rules: GreyRules,
    pub stutter: Duration,
    pub grey_stutter: Duration,
    pub hostname: String,
    pub banner_name: String,
    pub reply_code: u16,
    pub blacklist_only: bool,
    pub low_priority_mx: Option<IpAddr>,
    pub window: Option<u32>,
    pub verbose: bool,
    pub foreground: bool,
    pub db: PathBuf,
    pub firewall: FirewallKind,
    pub upstream: Option<SocketAddr>,
    pub control: PathBuf,
    pub alloweddomains: PathBuf,
    pub nospamd: Vec<IpNet>,
    pub max_bad_commands: u32,
    pub pregreet: Pregreet,
    pub idle_timeout: Duration,
    pub expire_interval: Duration,
    pub user: RunAs,
    pub sync_targets: Vec<String>,
    pub sync_listen: Option<String>,
    pub sync_key: PathBuf,
    pub sync_port: u16,
    pub protected_ports: Vec<u16>,
    pub keep_firewall: bool,
    pub xdp_interfaces: Vec<String>,
    pub bpf_pin_dir: PathBuf,
    pub pfctl: PathBuf,
    /// Whitelist a retry from another address when both pass SPF for the MAIL FROM domain.
    pub spf_promotion: bool,
    /// DNS allowlists consulted for sources that would be greylisted.
    pub dnswl: Vec<Site>,
    /// A DNSWL score at or below this passes the source and whitelists it.
    pub dnswl_threshold: i32,
    /// Where the Prometheus endpoint listens, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// DNS servers for SPF and DNSWL (empty: /etc/resolv.conf).
    pub nameservers: Vec<SocketAddr>,
}

pub const DEFAULT_DB: &str = "/var/db/greyd/greyd.db";
pub const DEFAULT_CONTROL: &str = "/var/run/greyd.sock";

/// greyd's key file, or spamd's when only that exists (so a spamd peer's key works unchanged).
/// The user greyd becomes when started as root.
pub const DEFAULT_USER: &str = "_greyd";

/// Who greyd becomes after binding, when started as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name; empty: stay root.
    pub name: String,
    /// Named by the configuration: if that user is missing greyd refuses to
    /// start, where a missing default user only costs a warning.
    pub explicit: bool,
}

fn default_sync_key() -> PathBuf {
    let ours = PathBuf::from("/etc/greyd/greyd.key");
    let spamd = PathBuf::from("/etc/mail/spamd.key");
    if !ours.exists() && spamd.exists() { spamd } else { ours }
}

fn system_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

impl Config {
    /// Merge the command line over the file it names (if any) over the defaults.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => File::default(),
        };
        Config::merge(cli, file)
    }

    fn merge(cli: &Cli, f: File) -> Result<Config, ConfigError> {
        let mut rules = f.rules()?;
        if let Some((p, g, w)) = cli.grey_times {
            (rules.passtime, rules.greyexp, rules.whiteexp) = (p, g, w);
        }
        let maxcon = cli.maxcon.or(f.maxcon).unwrap_or(800);
        let maxblack = cli.maxblack.or(f.maxblack).unwrap_or(maxcon);
        if maxcon == 0 {
            return Err(invalid("maxcon (-c) must be at least 1"));
        }
        let max_per_source = f.max_per_source.unwrap_or(10);
        if max_per_source == 0 {
            return Err(invalid("max_per_source must be at least 1"));
        }
        if maxblack > maxcon {
            return Err(invalid(format!(
                "maxblack (-B {maxblack}) cannot exceed maxcon (-c {maxcon})"
            )));
        }
        let reply_code = if cli.five {
            550
        } else if cli.four {
            450
        } else {
            f.reply_code.unwrap_or(450)
        };
        if reply_code != 450 && reply_code != 550 {
            return Err(invalid(format!("reply_code must be 450 or 550, not {reply_code}")));
        }
        let firewall = cli.firewall.or(f.firewall).unwrap_or(FirewallKind::Proxy);
        let upstream = cli.upstream.or(f.upstream);
        if firewall == FirewallKind::Proxy && upstream.is_none() {
            return Err(invalid(
                "proxy mode needs --upstream ADDR (the MTA whitelisted sources are passed to), or use --firewall none",
            ));
        }
        let listen = if !cli.listen.is_empty() {
            cli.listen.clone()
        } else {
            f.listen
                .unwrap_or_else(|| vec![IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])])
        };
        Ok(Config {
            listen,
            port: cli.port.or(f.port).unwrap_or(8025),
            maxcon,
            maxblack,
            max_per_source,
            rules,
            stutter: Duration::from_secs(cli.stutter.or(f.stutter).unwrap_or(1)),
            grey_stutter: Duration::from_secs(cli.grey_stutter.or(f.grey_stutter).unwrap_or(10)),
            hostname: cli.hostname.clone().or(f.hostname).unwrap_or_else(system_hostname),
            banner_name: cli
                .banner_name
                .clone()
                .or(f.banner_name)
                .unwrap_or_else(|| "spamd IP-based SPAM blocker".into()),
            reply_code,
            blacklist_only: cli.blacklist_only || f.blacklist_only.unwrap_or(false),
            low_priority_mx: cli.low_priority_mx.or(f.low_priority_mx),
            window: cli.window.or(f.window),
            verbose: cli.verbose || f.verbose.unwrap_or(false),
            foreground: cli.debug,
            db: cli.db.clone().or(f.db).unwrap_or_else(|| DEFAULT_DB.into()),
            firewall,
            upstream,
            control: cli
                .control
                .clone()
                .or(f.control)
                .unwrap_or_else(|| DEFAULT_CONTROL.into()),
            alloweddomains: f
                .alloweddomains
                .unwrap_or_else(|| "/etc/mail/spamd.alloweddomains".into()),
            nospamd: f.nospamd.unwrap_or_default(),
            max_bad_commands: f.max_bad_commands.unwrap_or(20),
            pregreet: f.pregreet.unwrap_or(Pregreet::Trap),
            idle_timeout: duration_or(f.idle_timeout, Duration::from_secs(400))?,
            expire_interval: duration_or(f.expire_interval, Duration::from_secs(60))?,
            user: match f.user {
                Some(name) => RunAs { name, explicit: true },
                None => RunAs {
                    name: DEFAULT_USER.into(),
                    explicit: false,
                },
            },
            sync_targets: if cli.sync_targets.is_empty() {
                f.sync_targets.unwrap_or_default()
            } else {
                cli.sync_targets.clone()
            },
            sync_listen: cli.sync_listen.clone().or(f.sync_listen),
            sync_key: f.sync_key.unwrap_or_else(default_sync_key),
            sync_port: f.sync_port.unwrap_or(crate::sync::DEFAULT_PORT),
            protected_ports: f.protected_ports.unwrap_or_else(|| vec![25]),
            keep_firewall: f.keep_firewall.unwrap_or(false),
            xdp_interfaces: f.xdp_interfaces.unwrap_or_default(),
            bpf_pin_dir: f.bpf_pin_dir.unwrap_or_else(|| "/sys/fs/bpf/greyd".into()),
            pfctl: f.pfctl.unwrap_or_else(|| "/sbin/pfctl".into()),
            spf_promotion: f.spf_promotion.unwrap_or(true),
            dnswl: f
                .dnswl
                .unwrap_or_default()
                .iter()
                .map(|s| Site::parse(s).map_err(|e| invalid(e.to_string())))
                .collect::<Result<_, _>>()?,
            dnswl_threshold: f.dnswl_threshold.unwrap_or(-1),
            metrics: cli.metrics.or(f.metrics),
            nameservers: f.dns.and_then(|d| d.nameservers).unwrap_or_default(),
        })
    }
}

fn duration_or(value: Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    value.map_or(Ok(default), |s| {
        parse_duration(&s, 1).map_err(|e| invalid(e.to_string()))
    })
}

impl File {
    fn rules(&self) -> Result<GreyRules, ConfigError> {
        let d = GreyRules::default();
        // Shorter prefixes would let unrelated senders pass on each other's retries.
        let prefix = |key: &str, value: Option<u8>, default: u8, range: std::ops::RangeInclusive<u8>| {
            let v = value.unwrap_or(default);
            if range.contains(&v) {
                Ok(v)
            } else {
                Err(invalid(format!(
                    "{key} must be a prefix length from {} to {}, not {v}",
                    range.start(),
                    range.end()
                )))
            }
        };
        Ok(GreyRules {
            passtime: duration_or(self.passtime.clone(), d.passtime)?,
            greyexp: duration_or(self.greyexp.clone(), d.greyexp)?,
            whiteexp: duration_or(self.whiteexp.clone(), d.whiteexp)?,
            trapexp: duration_or(self.trapexp.clone(), d.trapexp)?,
            aggregate_v4: prefix("aggregate_v4", self.aggregate_v4, d.aggregate_v4, 16..=32)?,
            aggregate_v6: prefix("aggregate_v6", self.aggregate_v6, d.aggregate_v6, 32..=128)?,
        })
    }
}

/// What the tools (greydb) take from greyd's configuration file.
#[derive(Debug, Clone)]
pub struct ToolSettings {
    pub db: PathBuf,
    pub control: PathBuf,
    pub rules: GreyRules,
}

impl ToolSettings {
    /// From the file at `path`, or the defaults without one.
    pub fn load(path: Option<&Path>) -> Result<ToolSettings, ConfigError> {
        let f = path.map(read_file).transpose()?.unwrap_or_default();
        Ok(ToolSettings {
            rules: f.rules()?,
            db: f.db.unwrap_or_else(|| DEFAULT_DB.into()),
            control: f.control.unwrap_or_else(|| DEFAULT_CONTROL.into()),
        })
    }
}

fn read_file(path: &Path) -> Result<File, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Toml {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("greyd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn spamd_defaults() {
        let c = Config::merge(&cli(&["--firewall", "none"]), File::default()).unwrap();
        assert_eq!((c.port, c.maxcon, c.maxblack, c.reply_code), (8025, 800, 800, 450));
        assert_eq!(c.rules, GreyRules::default());
        assert_eq!((c.stutter.as_secs(), c.grey_stutter.as_secs()), (1, 10));
        assert_eq!(c.idle_timeout.as_secs(), 400);
        assert_eq!(c.max_bad_commands, 20);
        assert_eq!(c.max_per_source, 10);
        assert_eq!(c.pregreet, Pregreet::Trap);
        assert_eq!((c.rules.aggregate_v4, c.rules.aggregate_v6), (32, 64));
        assert!(c.spf_promotion);
        assert_eq!((c.dnswl.len(), c.dnswl_threshold), (0, -1));
        assert!(c.nameservers.is_empty() && c.metrics.is_none());
        assert_eq!(
            c.user,
            RunAs {
                name: "_greyd".into(),
                explicit: false
            }
        );
    }

    #[test]
    fn a_configured_user_is_explicit() {
        let file: File = toml::from_str("user = \"_other\"").unwrap();
        let c = Config::merge(&cli(&["--firewall", "none"]), file).unwrap();
        assert_eq!(
            c.user,
            RunAs {
                name: "_other".into(),
                explicit: true
            }
        );
    }

    #[test]
    fn smart_greylisting_keys() {
        let file: File = toml::from_str(
            "aggregate_v4 = 24\naggregate_v6 = 56\nspf_promotion = false\n\
             dnswl = [\"list.dnswl.example=127.0.[0..255].[1..3]*-5\"]\ndnswl_threshold = -3\n\
             metrics = \"127.0.0.1:9100\"\n[dns]\nnameservers = [\"127.0.0.1:5353\"]\n",
        )
        .unwrap();
        let c = Config::merge(&cli(&["--firewall", "none"]), file).unwrap();
        assert_eq!((c.rules.aggregate_v4, c.rules.aggregate_v6), (24, 56));
        assert!(!c.spf_promotion);
        assert_eq!(
            (c.dnswl[0].domain.as_str(), c.dnswl[0].weight, c.dnswl_threshold),
            ("list.dnswl.example", -5, -3)
        );
        assert_eq!(c.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.nameservers, vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
        let wide: File = toml::from_str("aggregate_v4 = 8").unwrap();
        let err = Config::merge(&cli(&["--firewall", "none"]), wide).unwrap_err();
        assert!(err.to_string().contains("aggregate_v4"), "{err}");
        let bad: File = toml::from_str("dnswl = [\"wl.example*x\"]").unwrap();
        let err = Config::merge(&cli(&["--firewall", "none"]), bad).unwrap_err();
        assert!(err.to_string().contains("wl.example*x"), "{err}");
    }

    #[test]
    fn pregreet_is_trap_log_or_off() {
        let file: File = toml::from_str("pregreet = \"off\"").unwrap();
        let c = Config::merge(&cli(&["--firewall", "none"]), file).unwrap();
        assert_eq!(c.pregreet, Pregreet::Off);
        assert!(toml::from_str::<File>("pregreet = \"drop\"").is_err());
    }

    #[test]
    fn g_flag_takes_spamd_units_or_suffixes() {
        let c = Config::merge(&cli(&["--firewall", "none", "-G", "2:3:4"]), File::default()).unwrap();
        assert_eq!(
            (
                c.rules.passtime.as_secs(),
                c.rules.greyexp.as_secs(),
                c.rules.whiteexp.as_secs()
            ),
            (120, 3 * 3600, 4 * 3600)
        );
        let c = Config::merge(&cli(&["--firewall", "none", "-G", "2s:1m:1h"]), File::default()).unwrap();
        assert_eq!(
            (
                c.rules.passtime.as_secs(),
                c.rules.greyexp.as_secs(),
                c.rules.whiteexp.as_secs()
            ),
            (2, 60, 3600)
        );
        assert!(Cli::try_parse_from(["greyd", "-G", "1:2"]).is_err());
        assert!(Cli::try_parse_from(["greyd", "-G", "1x:2:3"]).is_err());
    }

    #[test]
    fn flags_override_file() {
        let file: File = toml::from_str("port = 2525\nmaxcon = 50\nreply_code = 550\nfirewall = \"none\"\n").unwrap();
        let c = Config::merge(&cli(&["-p", "26", "-4"]), file).unwrap();
        assert_eq!((c.port, c.maxcon, c.maxblack, c.reply_code), (26, 50, 50, 450));
    }

    #[test]
    fn bad_settings_are_explained() {
        let err = Config::merge(&cli(&[]), File::default()).unwrap_err().to_string();
        assert!(err.contains("--upstream"), "{err}");
        let err = Config::merge(&cli(&["--firewall", "none", "-c", "5", "-B", "6"]), File::default()).unwrap_err();
        assert!(err.to_string().contains("maxblack"), "{err}");
        let zero: File = toml::from_str("max_per_source = 0").unwrap();
        let err = Config::merge(&cli(&["--firewall", "none"]), zero).unwrap_err();
        assert!(err.to_string().contains("max_per_source"), "{err}");
        assert!(toml::from_str::<File>("prot = 1").is_err());
    }

    #[test]
    fn greyd_setup_section_is_allowed_and_ignored() {
        let file: File = toml::from_str("port = 8026\n[setup]\ncache = \"/tmp/lists\"\n").unwrap();
        let c = Config::merge(&cli(&["--firewall", "none"]), file).unwrap();
        assert_eq!(c.port, 8026);
    }
}
