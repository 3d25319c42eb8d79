//! `mta.toml`: every key with its default, the duration and size syntax, and
//! loading. Classic files (aliases, virtusertable, ...) are only named here.

use serde::{Deserialize, Deserializer, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, toml::de::Error),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name in the greeting and Received: headers; default: the system host name.
    pub hostname: String,
    /// Domains delivered locally besides the local-host-names file and `hostname`.
    pub domains: Vec<String>,
    /// User to become once the listeners are bound, when started as root:
    /// it owns the queue and the virtual mail directories. The jobs that
    /// need root (system users' passwords, acting as a system user) go to
    /// a privileged helper forked before the drop, so a daemon facing the
    /// network never keeps root. Empty stays root (no helper). Default
    /// "_mta" (made by `cargo xtask install`; mta refuses to start as root
    /// when it is missing).
    pub user: String,
    pub smtp: SmtpConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub files: FilesConfig,
    pub relay: RelayConfig,
    pub queue: QueueConfig,
    pub delivery: DeliveryConfig,
    pub imap: ImapConfig,
    pub pop3: Pop3Config,
    pub managesieve: ManageSieveConfig,
    pub dns: DnsConfig,
    pub outbound: OutboundConfig,
    pub dkim: DkimConfig,
    pub srs: SrsConfig,
    pub auth_checks: AuthChecksConfig,
    pub lists: ListsConfig,
    pub web: WebConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`http://ADDR/metrics`), e.g. `"127.0.0.1:9126"`. Default none (off).
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// MX listeners: STARTTLS offered, AUTH only after TLS. Default `["0.0.0.0:25", "[::]:25"]`.
    pub listen: Vec<SocketAddr>,
    /// Submission listeners: AUTH required, after STARTTLS. Default `["0.0.0.0:587", "[::]:587"]`.
    pub submission: Vec<SocketAddr>,
    /// Implicit-TLS submission listeners. Default `["0.0.0.0:465", "[::]:465"]`.
    pub smtps: Vec<SocketAddr>,
    /// Largest message accepted, in bytes (advertised with SIZE). Default 36700160 (35 MiB).
    pub max_message_size: u64,
    /// Recipients per message; more get 452. Default 1000 (Postfix).
    pub max_recipients: usize,
    /// Longest command line, CRLF excluded; longer gets 500 5.5.2. Default 2048.
    pub line_length_limit: usize,
    /// Errors per session before it is closed with 421. Default 20 (Postfix's hard limit).
    pub max_errors: u32,
    /// Time to wait for a command. Default "5m".
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    /// Time to wait for each block of message data. Default "10m".
    #[serde(with = "duration")]
    pub data_timeout: Duration,
    /// Simultaneous connections from one client address. Default 50 (Postfix).
    pub max_connections_per_client: usize,
    /// Answer VRFY with the result of a lookup (otherwise 252). Default false.
    pub vrfy: bool,
    /// Peers allowed to send a PROXY v2 header (greyd in proxy mode); the header
    /// is then required from them. Default none.
    pub proxy_from: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; reloaded on SIGHUP. Default "/etc/mta/cert.pem".
    pub cert: PathBuf,
    /// PEM private key. Default "/etc/mta/key.pem".
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Virtual users file (`mtactl user ...`). Default "/etc/mta/users".
    pub users_file: PathBuf,
    /// Also authenticate system users from /etc/shadow (only works as root). Default true.
    pub system_users: bool,
    /// Failed logins from one address before AUTH is refused for a while. Default 5.
    pub max_failures: u32,
    /// How long failures count against an address. Default "15m".
    #[serde(with = "duration")]
    pub failure_window: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Default "/etc/mail/aliases".
    pub aliases: PathBuf,
    /// Default "/etc/mail/virtusertable".
    pub virtusertable: PathBuf,
    /// Default "/etc/mail/local-host-names".
    pub local_host_names: PathBuf,
    /// Default "/etc/mail/relay-domains".
    pub relay_domains: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Clients allowed to relay without AUTH. Default loopback only.
    pub networks: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Spool directory. Default "/var/spool/mta".
    pub dir: PathBuf,
    /// First retry after a temporary delivery failure; doubles per attempt up to `max_backoff`. Default "5m".
    #[serde(with = "duration")]
    pub retry_interval: Duration,
    /// Longest wait between retries (Postfix's maximal_backoff_time). Default "4000s".
    #[serde(with = "duration")]
    pub max_backoff: Duration,
    /// How long a message may stay undeliverable before it bounces. Default "5d".
    #[serde(with = "duration")]
    pub lifetime: Duration,
    /// Tell the sender once when a message has waited this long and is still
    /// being retried (an RFC 3464 `Action: delayed` report; NOTIFY=DELAY or no
    /// NOTIFY); "0" turns it off. Default "4h".
    #[serde(with = "duration")]
    pub delay_warning: Duration,
    /// The local submission socket `sendmail` hands messages to (any user
    /// may connect; the daemon takes their uid from the socket). Default "/run/mta/submit.sock".
    pub submit_socket: PathBuf,
    /// How often the queue directory is scanned for messages dropped by `sendmail`. Default "1s".
    #[serde(with = "duration")]
    pub scan_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailboxFormat {
    Maildir,
    Mbox,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Mailbox format for system users (`~/Maildir/` or `mbox_dir/user`) and
    /// virtual users (`virtual_dir/domain/user/` or `virtual_dir/domain/user.mbox`). Default "maildir".
    pub format: MailboxFormat,
    /// Directory of system users' mbox files. Default "/var/mail".
    pub mbox_dir: PathBuf,
    /// Root of the virtual users' mailboxes. Default "/var/vmail".
    pub virtual_dir: PathBuf,
    /// Honour ~/.forward of system users. Default true.
    pub forward: bool,
    /// User that runs aliases-file programs and file deliveries when mta runs as root. Default "nobody".
    pub alias_user: String,
    /// Run the user's active Sieve script on Maildir deliveries. Default true.
    pub sieve: bool,
    /// Sieve script run before every user's own (for example to file spam). Default none.
    pub sieve_before: Option<PathBuf>,
    /// Sieve script run after every user's own. Default none.
    pub sieve_after: Option<PathBuf>,
    /// Folder of the scripts Sieve `include :global "NAME"` reads
    /// (`NAME.sieve`). Default none: global includes find nothing.
    pub sieve_global_dir: Option<PathBuf>,
    /// Header a spam filter writes its score in, read by Sieve `spamtest`
    /// (a number first, as SpamAssassin's). Default "X-Spam-Score".
    pub sieve_spam_header: String,
    /// The score in `sieve_spam_header` that means certainly spam: `spamtest`
    /// 10, or 100 with `:percent`. Default 10.0.
    pub sieve_spam_max: f64,
    /// Header a virus scanner writes in, read by Sieve `virustest`: a number
    /// 1 (clean) to 5 (infected) as RFC 5235, or `clean`/`infected`. Default "X-Virus-Score".
    pub sieve_virus_header: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// IMAP listeners: STARTTLS offered, LOGINDISABLED until TLS. Default `["0.0.0.0:143", "[::]:143"]`.
    pub listen: Vec<SocketAddr>,
    /// IMAPS (implicit TLS) listeners. Default `["0.0.0.0:993", "[::]:993"]`.
    pub tls_listen: Vec<SocketAddr>,
    /// Idle time allowed before login. Default "1m".
    #[serde(with = "duration")]
    pub login_timeout: Duration,
    /// Idle time allowed once authenticated, IDLE included (RFC 9051 asks for at least 30 minutes). Default "30m".
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Largest message APPEND accepts, in bytes (advertised as APPENDLIMIT). Default 36700160 (35 MiB).
    pub max_message_size: u64,
    /// Storage quota per user in bytes, reported by GETQUOTA; 0 means none. Default 0.
    pub quota: u64,
    /// Simultaneous IMAP connections per client address, then `* BYE`. Default 50.
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Config {
    /// POP3 listeners: STLS offered, no plaintext login until TLS. Default `["0.0.0.0:110", "[::]:110"]`.
    pub listen: Vec<SocketAddr>,
    /// POP3S (implicit TLS) listeners. Default `["0.0.0.0:995", "[::]:995"]`.
    pub tls_listen: Vec<SocketAddr>,
    /// Idle time allowed before login. Default "1m".
    #[serde(with = "duration")]
    pub login_timeout: Duration,
    /// Idle time allowed once authenticated (RFC 1939 asks for at least 10 minutes). Default "10m".
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Failed commands (bad syntax, overlong lines, refused logins) before the session is closed. Default 10.
    pub max_errors: u32,
    /// Simultaneous POP3 connections from one client address. Default 20.
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManageSieveConfig {
    /// ManageSieve listeners (RFC 5804, users' Sieve scripts): STARTTLS offered,
    /// AUTHENTICATE only after TLS. Default none (off); `mtactl init` sets 4190.
    pub listen: Vec<SocketAddr>,
    /// Idle time allowed before login. Default "1m".
    #[serde(with = "duration")]
    pub login_timeout: Duration,
    /// Idle time allowed once authenticated. Default "10m".
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Failed commands (bad syntax, refused logins) before the session is closed. Default 10.
    pub max_errors: u32,
    /// Simultaneous ManageSieve connections from one client address. Default 10.
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// HTTPS listeners for webmail and the status page (skipped without a certificate). Default `["0.0.0.0:443", "[::]:443"]`.
    pub listen: Vec<SocketAddr>,
    /// Users (login names) who may see the status page `/admin`. Default none.
    pub admins: Vec<String>,
    /// Idle time after which a webmail session ends. Default "30m".
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Simultaneous HTTPS connections from one client address. Default 50.
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Name servers every DNS lookup of mta asks (UDP, then TCP). Default: those of /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// Validate DNSSEC for DANE (Postfix's `smtp_dns_support_level = dnssec`):
    /// outbound MX, address and TLSA lookups go through a validating
    /// resolver, and every destination without a TLS policy table entry
    /// gets Postfix's `dane` level. The name servers must pass DNSSEC
    /// records on. Default false.
    pub dnssec: bool,
    /// DNSKEY records (zone file syntax) trusted for DNSSEC validation,
    /// read at start when `dnssec` is on. Default: hickory's built-in root
    /// key-signing keys (tags 20326 and 38696).
    pub trust_anchor: Option<PathBuf>,
}

/// Which address families outbound connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpVersion {
    Any,
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Port of MX hosts (changed only by tests). Default 25.
    pub port: u16,
    /// Address families to connect over: "any", "ipv4" or "ipv6". Default "any".
    pub ip_version: IpVersion,
    /// Send everything through this relay (`host:port`, TLS and AUTH required when a user is set). Default none.
    pub smarthost: Option<String>,
    /// User for AUTH PLAIN/LOGIN at the smarthost. Default none.
    pub smarthost_user: Option<String>,
    /// File holding the smarthost password (first line). Default none.
    pub smarthost_password_file: Option<PathBuf>,
    /// Postfix transport(5)-style table: `domain smtp:[host]:port` or `domain local`. Default none.
    pub transport: Option<PathBuf>,
    /// Recipients per SMTP transaction. Default 50.
    pub recipient_limit: usize,
    /// Addresses tried per delivery attempt of a message. Default 5.
    pub max_addresses: usize,
    /// Connections open at once to one destination. Default 20.
    pub destination_concurrency: usize,
    /// Outbound connections open at once. Default 100.
    pub max_connections: usize,
    /// Time to connect and read the greeting. Default "30s".
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Time to wait for a reply to a command. Default "5m".
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    /// Time to wait for the reply after the message data. Default "10m".
    #[serde(with = "duration")]
    pub data_timeout: Duration,
    /// How long a destination that failed to answer is left alone, so its other
    /// messages wait instead of each timing out. Default "5m".
    #[serde(with = "duration")]
    pub dead_destination: Duration,
    /// greyd's control socket: hosts we delivered to are reported there
    /// (`outbound_peer`, spamlogd's role). Default none.
    pub greyd_control: Option<PathBuf>,
    /// Postfix smtp_tls_policy_maps-style table: `domain none|may|encrypt|verify [match=a:b]`,
    /// `.domain` for subdomains; it takes precedence over MTA-STS. Default none (opportunistic TLS).
    pub tls_policy: Option<PathBuf>,
    /// Extra trust anchors (PEM) for verified TLS and MTA-STS, besides the system's roots. Default none.
    pub tls_ca_file: Option<PathBuf>,
    /// HTTPS port of MTA-STS policy servers (changed only by tests). Default 443.
    pub mta_sts_port: u16,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            port: 25,
            ip_version: IpVersion::Any,
            smarthost: None,
            smarthost_user: None,
            smarthost_password_file: None,
            transport: None,
            recipient_limit: 50,
            max_addresses: 5,
            destination_concurrency: 20,
            max_connections: 100,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            dead_destination: Duration::from_secs(300),
            greyd_control: None,
            tls_policy: None,
            tls_ca_file: None,
            mta_sts_port: 443,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    /// Signing keys, `DOMAIN.SELECTOR.key` (`mtactl dkim generate`), re-read
    /// when the directory changes. Default "/etc/mta/dkim".
    pub key_dir: PathBuf,
}

impl Default for DkimConfig {
    fn default() -> Self {
        DkimConfig {
            key_dir: PathBuf::from("/etc/mta/dkim"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrsConfig {
    /// HMAC key of our SRS addresses (`mtactl init` makes one). Default "/etc/mta/srs.key".
    pub key_file: PathBuf,
    /// Domain of the SRS addresses we make; empty means `hostname`. Default "".
    pub domain: String,
}

impl Default for SrsConfig {
    fn default() -> Self {
        SrsConfig {
            key_file: PathBuf::from("/etc/mta/srs.key"),
            domain: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListsConfig {
    /// Where the mailing lists live (`mtactl list create`). Default "/etc/mta/lists".
    pub dir: PathBuf,
    /// Base URL of the list pages for the https links in List-* headers
    /// (one-click unsubscribe needs it); empty gives mailto links only. Default "".
    pub web_url: String,
    /// How often the digests of lists with `digest` on go out to their
    /// digest members (the first one interval after start). Default "1d".
    #[serde(with = "duration")]
    pub digest_interval: Duration,
}

impl Default for ListsConfig {
    fn default() -> Self {
        ListsConfig {
            dir: PathBuf::from("/etc/mta/lists"),
            web_url: String::new(),
            digest_interval: Duration::from_secs(86400),
        }
    }
}

/// What an SPF `fail` on its own (no DMARC verdict against the mail) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfFailAction {
    /// Only written into Authentication-Results:.
    Record,
    /// Refused with 550 5.7.23 at end of DATA.
    Reject,
}

/// What a temporary DNS failure during the checks does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TempErrorAction {
    /// 451 4.7.x: the sender retries once DNS answers.
    Defer,
    /// Accepted, the temperror written into Authentication-Results:.
    Record,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthChecksConfig {
    /// SPF, DKIM, DMARC, ARC and iprev on mail arriving on port 25 from
    /// clients that neither authenticated nor are relay clients. Default true.
    pub enabled: bool,
    /// authserv-id of our Authentication-Results: header; incoming ones
    /// carrying it are removed. Empty means `hostname`. Default "".
    pub authserv_id: String,
    /// DMARC fail under `p=reject`: 550 5.7.1 at end of DATA; off files it
    /// like `p=quarantine`. Default true.
    pub dmarc_reject: bool,
    /// DMARC fail under `p=quarantine`: delivered into the recipient's Junk
    /// folder (Maildir); off delivers it as usual. Default true.
    pub dmarc_quarantine: bool,
    /// SPF `fail` without a DMARC verdict: "record" or "reject". Default "record".
    pub spf_fail: SpfFailAction,
    /// A DNS temporary error in SPF (MAIL FROM) or DMARC: "defer" (451 4.7.x)
    /// or "record". Never a 550. Default "defer".
    pub temperror: TempErrorAction,
    /// Also add a Received-SPF: header (RFC 7208 §9.1). Default false.
    pub received_spf: bool,
    /// RSA key `DOMAIN.SELECTOR.key` (PEM) to ARC-seal verified mail with,
    /// so copies we forward carry our verdict (RFC 8617). Default none.
    pub arc_key: Option<PathBuf>,
    /// Send DMARC aggregate reports (RFC 7489 §7.2) to the `rua` addresses
    /// of the domains whose mail was checked; an address outside the domain
    /// only if it authorises them (§7.1). Default false.
    pub dmarc_reports: bool,
    /// How often each domain's report goes out, and so at most one per
    /// domain in this time. Default "24h".
    #[serde(with = "duration")]
    pub dmarc_report_interval: Duration,
    /// From: and envelope sender of the reports; "" is
    /// `noreply-dmarc@HOSTNAME`. Default "".
    pub dmarc_report_from: String,
}

impl Default for AuthChecksConfig {
    fn default() -> Self {
        AuthChecksConfig {
            enabled: true,
            authserv_id: String::new(),
            dmarc_reject: true,
            dmarc_quarantine: true,
            spf_fail: SpfFailAction::Record,
            temperror: TempErrorAction::Defer,
            received_spf: false,
            arc_key: None,
            dmarc_reports: false,
            dmarc_report_interval: Duration::from_secs(86400),
            dmarc_report_from: String::new(),
        }
    }
}

fn both(port: u16) -> Vec<SocketAddr> {
    vec![
        SocketAddr::from(([0, 0, 0, 0], port)),
        SocketAddr::from(([0u16; 8], port)),
    ]
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into()),
            domains: Vec::new(),
            user: "_mta".into(),
            smtp: SmtpConfig::default(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            files: FilesConfig::default(),
            relay: RelayConfig::default(),
            queue: QueueConfig::default(),
            delivery: DeliveryConfig::default(),
            imap: ImapConfig::default(),
            pop3: Pop3Config::default(),
            managesieve: ManageSieveConfig::default(),
            dns: DnsConfig::default(),
            outbound: OutboundConfig::default(),
            dkim: DkimConfig::default(),
            srs: SrsConfig::default(),
            auth_checks: AuthChecksConfig::default(),
            lists: ListsConfig::default(),
            web: WebConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: both(443),
            admins: Vec::new(),
            idle_timeout: Duration::from_secs(1800),
            max_connections_per_client: 50,
        }
    }
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen: both(143),
            tls_listen: both(993),
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(1800),
            max_message_size: 35 << 20,
            quota: 0,
            max_connections_per_client: 50,
        }
    }
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            listen: both(110),
            tls_listen: both(995),
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
            max_errors: 10,
            max_connections_per_client: 20,
        }
    }
}

impl Default for ManageSieveConfig {
    fn default() -> Self {
        ManageSieveConfig {
            listen: Vec::new(),
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
            max_errors: 10,
            max_connections_per_client: 10,
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: both(25),
            submission: both(587),
            smtps: both(465),
            max_message_size: 35 << 20,
            max_recipients: 1000,
            line_length_limit: 2048,
            max_errors: 20,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            max_connections_per_client: 50,
            vrfy: false,
            proxy_from: Vec::new(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: "/etc/mta/cert.pem".into(),
            key: "/etc/mta/key.pem".into(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            users_file: "/etc/mta/users".into(),
            system_users: true,
            max_failures: 5,
            failure_window: Duration::from_secs(900),
        }
    }
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            aliases: "/etc/mail/aliases".into(),
            virtusertable: "/etc/mail/virtusertable".into(),
            local_host_names: "/etc/mail/local-host-names".into(),
            relay_domains: "/etc/mail/relay-domains".into(),
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            networks: vec!["127.0.0.0/8".parse().expect("net"), "::1/128".parse().expect("net")],
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            dir: "/var/spool/mta".into(),
            submit_socket: "/run/mta/submit.sock".into(),
            retry_interval: Duration::from_secs(300),
            max_backoff: Duration::from_secs(4000),
            lifetime: Duration::from_secs(5 * 86400),
            delay_warning: Duration::from_secs(4 * 3600),
            scan_interval: Duration::from_secs(1),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let scores = crate::sieve::message::ScoreHeaders::default();
        DeliveryConfig {
            format: MailboxFormat::Maildir,
            mbox_dir: "/var/mail".into(),
            virtual_dir: "/var/vmail".into(),
            forward: true,
            alias_user: "nobody".into(),
            sieve: true,
            sieve_before: None,
            sieve_after: None,
            sieve_global_dir: None,
            sieve_spam_header: scores.spam,
            sieve_spam_max: scores.spam_max,
            sieve_virus_header: scores.virus,
        }
    }
}

impl DeliveryConfig {
    /// Where Sieve's `spamtest` and `virustest` read.
    pub fn sieve_scores(&self) -> crate::sieve::message::ScoreHeaders {
        crate::sieve::message::ScoreHeaders {
            spam: self.sieve_spam_header.clone(),
            spam_max: self.sieve_spam_max,
            virus: self.sieve_virus_header.clone(),
        }
    }

    /// Where a virtual user's mail lives: `virtual_dir/domain/user/` (Maildir) or `.../user.mbox`.
    pub fn virtual_mailbox(&self, user: &str, domain: &str) -> (MailboxFormat, PathBuf) {
        let base = self.virtual_dir.join(domain.to_ascii_lowercase());
        let user = user.to_ascii_lowercase();
        match self.format {
            MailboxFormat::Maildir => (self.format, base.join(user)),
            MailboxFormat::Mbox => (self.format, base.join(format!("{user}.mbox"))),
        }
    }

    /// Where a system user's mail lives: `~/Maildir/` or `mbox_dir/name`.
    pub fn system_mailbox(&self, name: &str, home: &Path) -> (MailboxFormat, PathBuf) {
        match self.format {
            MailboxFormat::Maildir => (self.format, home.join("Maildir")),
            MailboxFormat::Mbox => (self.format, self.mbox_dir.join(name)),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e))
    }
}

mod duration {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&greyd_shared::duration::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        greyd_shared::duration::parse(&s, 1).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_toml_count_bare_seconds() {
        let c: Config = toml::from_str("[queue]\nlifetime = \"7\"\n").unwrap();
        assert_eq!(c.queue.lifetime, Duration::from_secs(7));
        let bad = toml::from_str::<Config>("[queue]\nlifetime = \"5x\"\n").unwrap_err();
        assert!(bad.to_string().contains("bad duration unit"), "{bad}");
    }

    #[test]
    fn default_roundtrips_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.smtp.max_recipients, 1000);
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }
}
