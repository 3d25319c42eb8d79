//! `mtactl`: set up and manage the mail server (smtpctl/doveadm's role):
//! `init` a self-contained configuration, manage virtual `user`s, make a
//! self-signed `cert`, `dkim generate` signing keys, `sieve check` and
//! `sieve test` scripts, mailing `list`s.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use greyd_shared::install::{Installer, Owner, Ownership};
use mta::auth::users::{Users, VirtualUser};
use mta::config::Config;
use mta::lists::store::ArchiveMode;
use mta::outbound::dkim::{self, KeyAlgorithm};
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(about = "Manage the mta mail server")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a complete configuration: rooted in DIR (runs without root with
    /// --port-offset), or with --system the host's own (/etc/mta, /etc/mail,
    /// /var/spool/mta...), staged under --root when given. Files that exist are
    /// never overwritten: an edited one is kept and reported.
    Init {
        /// The configuration's directory; with --system, the staging root (DESTDIR, default /).
        #[arg(long, required_unless_present = "system")]
        root: Option<PathBuf>,
        /// Write the standard system paths instead of a self-contained directory.
        #[arg(long)]
        system: bool,
        /// Print each action; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Host name for the greeting, Received: and the certificate; default: the system's.
        #[arg(long)]
        hostname: Option<String>,
        /// Mail domain delivered locally; default: the host name.
        #[arg(long)]
        domain: Option<String>,
        /// Address to listen on (default 127.0.0.1; with --system all addresses).
        #[arg(long, conflicts_with = "system")]
        listen: Option<IpAddr>,
        /// Added to every standard port (25, 587, 465, 143, 993, 110, 995, 443).
        #[arg(long, default_value_t = 0, conflicts_with = "system")]
        port_offset: u16,
    },
    /// Virtual users.
    User {
        #[command(subcommand)]
        action: UserCmd,
        #[arg(long, global = true, default_value = "/etc/mta/mta.toml", env = "MTA_CONFIG")]
        config: PathBuf,
    },
    /// The mail queue: list, inspect, retry, hold, release, delete messages.
    Queue {
        #[command(subcommand)]
        action: QueueCmd,
        #[arg(long, global = true, default_value = "/etc/mta/mta.toml", env = "MTA_CONFIG")]
        config: PathBuf,
    },
    /// Write a self-signed certificate and key to the paths in the configuration.
    Cert {
        #[arg(long, default_value = "/etc/mta/mta.toml", env = "MTA_CONFIG")]
        config: PathBuf,
        /// Names for the certificate; default: the configured host name.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Sieve scripts: check one, or show what it would do with a message.
    Sieve {
        #[command(subcommand)]
        action: SieveCmd,
    },
    /// Mailing lists; `mtactl list` alone lists them.
    List {
        #[command(subcommand)]
        action: Option<ListCmd>,
        #[arg(long, global = true, default_value = "/etc/mta/mta.toml", env = "MTA_CONFIG")]
        config: PathBuf,
    },
    /// DKIM signing keys.
    Dkim {
        #[command(subcommand)]
        action: DkimCmd,
        #[arg(long, global = true, default_value = "/etc/mta/mta.toml", env = "MTA_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DkimCmd {
    /// Make a key for DOMAIN in `[dkim] key_dir` and print the DNS TXT record to publish.
    Generate {
        domain: String,
        /// Default "mta" for RSA, "mta-ed25519" for Ed25519, so both can sign at once.
        #[arg(long)]
        selector: Option<String>,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: KeyAlgorithm,
    },
}

#[derive(Subcommand)]
enum SieveCmd {
    /// Compile FILE; errors name the line.
    Check { file: PathBuf },
    /// Run FILE over MESSAGE and print the actions; nothing is delivered.
    Test {
        file: PathBuf,
        message: PathBuf,
        /// Envelope sender; default: the message's Return-Path, else `<>`.
        #[arg(long)]
        sender: Option<String>,
        /// Envelope recipient.
        #[arg(long, default_value = "user@localhost")]
        recipient: String,
    },
}

#[derive(Subcommand)]
enum ListCmd {
    /// Make a list; its addresses (NAME-request, -join, -leave, ...) work at once.
    Create {
        list: String,
        /// An owner's address (repeat for more).
        #[arg(long, required = true)]
        owner: Vec<String>,
        /// Hold every post for an owner.
        #[arg(long)]
        moderated: bool,
        #[arg(long, value_enum, default_value = "public")]
        archive: ArchiveMode,
    },
    /// Remove a list with its members, held posts and archive.
    Delete { list: String },
    /// The list's settings and counts.
    Show { list: String },
    /// Change a setting (see `show` for the keys).
    Set { list: String, key: String, value: String },
    /// The members, one a line (or JSON with their bounce records).
    Members {
        list: String,
        #[arg(long)]
        json: bool,
    },
    /// Add members directly (no confirmation).
    Add {
        list: String,
        #[arg(required = true)]
        address: Vec<String>,
    },
    /// Remove a member directly (no confirmation).
    Remove { list: String, address: String },
    /// Give a member the daily digest (`on`) or single posts (`off`); the
    /// list needs `digest` on.
    Digest {
        list: String,
        address: String,
        #[arg(value_parser = ["on", "off"])]
        value: String,
    },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Every queued and held message (mailq's format, or JSON).
    List {
        #[arg(long)]
        json: bool,
    },
    /// One message: envelope state as JSON, then the message.
    Show { id: String },
    /// Attempt a message (or `all`) now.
    Retry { id: String },
    /// Keep a message from delivery until released.
    Hold { id: String },
    /// Give a held message back to the queue runner.
    Release { id: String },
    /// Remove a message without delivering it.
    Delete {
        id: String,
        /// Tell the sender: one non-delivery report (5.7.0, deleted by the administrator).
        #[arg(long)]
        bounce: bool,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user (creating its Maildir); the password is read from stdin.
    Add {
        address: String,
        /// Read the password from the first line of stdin (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Also keep a password-equivalent secret so CRAM-MD5 works for this user.
        #[arg(long)]
        allow_cram_md5: bool,
    },
    /// Remove a user (its mail is kept).
    Del { address: String },
    /// Change a user's password (read from stdin).
    Passwd {
        address: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        allow_cram_md5: bool,
    },
    /// List users.
    List,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Init {
            root,
            system,
            dry_run,
            hostname,
            domain,
            listen,
            port_offset,
        } => {
            let mut config = Config::default();
            if let Some(h) = hostname {
                config.hostname = h;
            }
            config.domains = vec![domain.unwrap_or_else(|| config.hostname.clone())];
            let (install, config) = if system {
                let install = Installer::new(root.as_deref().unwrap_or(Path::new("/")), dry_run);
                (install, config)
            } else {
                let root = root.context("--root DIR is required without --system")?;
                let listen = listen.unwrap_or(IpAddr::from([127, 0, 0, 1]));
                (
                    Installer::new(Path::new("/"), dry_run),
                    rooted(config, &root, listen, port_offset)?,
                )
            };
            init(&install, config, system)
        }
        Cmd::User { action, config } => user(action, &Config::load(&config)?),
        Cmd::Queue { action, config } => queue(action, &Config::load(&config)?),
        Cmd::Sieve { action } => sieve(action),
        Cmd::List { action, config } => list(action, &Config::load(&config)?),
        Cmd::Dkim {
            action:
                DkimCmd::Generate {
                    domain,
                    selector,
                    algorithm,
                },
            config,
        } => dkim_generate(&Config::load(&config)?, &domain, selector, algorithm),
        Cmd::Cert { config, names } => {
            let config = Config::load(&config)?;
            let names = if names.is_empty() {
                vec![config.hostname.clone()]
            } else {
                names
            };
            mta::tls::write_self_signed(&names, &config.tls.cert, &config.tls.key)?;
            println!("wrote {} and {}", config.tls.cert.display(), config.tls.key.display());
            Ok(())
        }
    }
}

fn sieve(action: SieveCmd) -> Result<()> {
    use mta::sieve::{self, Action};
    let (file, test) = match action {
        SieveCmd::Check { file } => (file, None),
        SieveCmd::Test {
            file,
            message,
            sender,
            recipient,
        } => (file, Some((message, sender, recipient))),
    };
    let src = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let script = sieve::parse(&src).with_context(|| file.display().to_string())?;
    let Some((message, sender, recipient)) = test else {
        println!("{}: ok", file.display());
        return Ok(());
    };
    let content = std::fs::read(&message).with_context(|| format!("reading {}", message.display()))?;
    let return_path = sieve::message::Headers::parse(&content)
        .get("return-path")
        .first()
        .and_then(|v| sieve::message::addresses(v).into_iter().next());
    let sender = sender.or(return_path).filter(|s| !s.is_empty());
    let exists = |_: &str| true;
    let outcome = sieve::run(
        &script,
        &sieve::Input {
            content: &content,
            sender: sender.as_deref(),
            recipient: &recipient,
            mailbox_exists: &exists,
            now: mta::datetime::now(),
            scores: &Default::default(),
            seen: &|_| false,
            include: &|_, _| Ok(None),
        },
    );
    if let Some(e) = &outcome.error {
        println!("error: {e}; the message would be kept");
    }
    if outcome.actions.is_empty() {
        println!("discard");
    }
    for a in &outcome.actions {
        let flags = |f: &[String]| {
            if f.is_empty() {
                String::new()
            } else {
                format!(" flags {}", f.join(" "))
            }
        };
        match a {
            Action::Keep { flags: f } => println!("keep into INBOX{}", flags(f)),
            Action::FileInto {
                mailbox,
                create,
                flags: f,
            } => {
                println!(
                    "fileinto {mailbox}{}{}",
                    if *create { " (create)" } else { "" },
                    flags(f)
                )
            }
            Action::Redirect { address } => println!("redirect to {address}"),
            Action::Reject { reason } => println!("reject: {reason}"),
            Action::Vacation(v) => {
                let headers = sieve::message::Headers::parse(&content);
                match sieve::vacation::check(v, &headers, sender.as_deref(), &recipient) {
                    Ok(to) => println!("vacation reply to {to} (at most once every {} days)", v.days),
                    Err(why) => println!("vacation: no reply, {why}"),
                }
            }
        }
    }
    Ok(())
}

fn list(action: Option<ListCmd>, config: &Config) -> Result<()> {
    use mta::lists::store::{ListError, Settings, Store};
    let store = Store::new(&config.lists.dir);
    let now = mta::queue::now();
    let member_address = |a: &str| -> Result<String> {
        let (local, domain) = check_address(a)?;
        Ok(format!("{local}@{domain}"))
    };
    let Some(action) = action else {
        for name in store.names()? {
            let l = store.load(&name)?;
            println!("{name}\t{} members\t{}", l.members.len(), l.settings.description);
        }
        return Ok(());
    };
    match action {
        ListCmd::Create {
            list,
            owner,
            moderated,
            archive,
        } => {
            let owners = owner.iter().map(|o| member_address(o)).collect::<Result<Vec<_>>>()?;
            let l = store.create(
                &list,
                Settings {
                    owners,
                    moderated,
                    archive,
                    ..Settings::default()
                },
            )?;
            println!("created {}", l.address());
        }
        ListCmd::Delete { list } => {
            store.delete(&list)?;
            println!("deleted {list}");
        }
        ListCmd::Show { list } => {
            let l = store.load(&list)?;
            let mut settings = serde_json::to_value(&l.settings)?;
            if let Some(s) = settings.as_object_mut() {
                s.remove("secret");
            }
            println!("{}", serde_json::to_string_pretty(&settings)?);
            let held = l
                .pending
                .iter()
                .filter(|p| p.action == mta::lists::store::Action::Post)
                .count();
            let disabled = l.members.iter().filter(|m| !m.enabled).count();
            println!("members: {} ({disabled} disabled by bounces)", l.members.len());
            println!("held posts: {held}");
        }
        ListCmd::Set { list, key, value } => {
            store.update(&list, |l| l.settings.set(&key, &value))?;
            println!("{list}: {key} set");
        }
        ListCmd::Members { list, json } => {
            let l = store.load(&list)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&l.members)?);
            } else {
                for m in &l.members {
                    let digest = if m.digest && l.settings.digest { " (digest)" } else { "" };
                    if m.enabled {
                        println!("{}{digest}", m.address);
                    } else {
                        println!("{}{digest} (disabled, bounce score {})", m.address, m.bounce.score);
                    }
                }
            }
        }
        ListCmd::Add { list, address } => {
            let addresses = address.iter().map(|a| member_address(a)).collect::<Result<Vec<_>>>()?;
            let present = store.update(&list, |l| {
                // All or none: a member already there fails the whole command.
                let present: Vec<String> = addresses.iter().filter(|a| l.member(a).is_some()).cloned().collect();
                if present.is_empty() {
                    for a in &addresses {
                        l.add(a, now);
                    }
                }
                Ok::<_, ListError>(present)
            })?;
            if !present.is_empty() {
                bail!("already members of {list}: {}", present.join(", "));
            }
            for a in &addresses {
                println!("added {a} to {list}");
            }
        }
        ListCmd::Remove { list, address } => {
            if !store.update(&list, |l| Ok::<_, ListError>(l.remove(&address)))? {
                bail!("{address} is not a member of {list}");
            }
            println!("removed {address} from {list}");
        }
        ListCmd::Digest { list, address, value } => {
            let l = store.load(&list)?;
            if !l.settings.digest {
                bail!("{list} has no digest (mtactl list set {list} digest on)");
            }
            if !store.update(&l.address(), |l| {
                Ok::<_, ListError>(l.set_digest(&address, value == "on"))
            })? {
                bail!("{address} is not a member of {list}");
            }
            println!("{address}: digest {value}");
        }
    }
    Ok(())
}

fn queue(action: QueueCmd, config: &Config) -> Result<()> {
    use mta::queue::control;
    let q = mta::queue::Queue::open(&config.queue.dir)?;
    let known = |id: &str| -> Result<()> {
        if q.list()?.iter().chain(q.list_held()?.iter()).any(|i| i == id) {
            Ok(())
        } else {
            bail!("{id}: no such message in the queue")
        }
    };
    match action {
        QueueCmd::List { json: false } => print!("{}", control::mailq(&control::entries(&q)?)),
        QueueCmd::List { json: true } => println!("{}", serde_json::to_string_pretty(&control::entries(&q)?)?),
        QueueCmd::Show { id } => {
            known(&id)?;
            println!("{}", serde_json::to_string_pretty(&control::entry(&q, &id)?)?);
            print!("{}", String::from_utf8_lossy(&q.read_content(&id)?));
        }
        QueueCmd::Retry { id } if id == "all" => q.request_retry(None)?,
        QueueCmd::Retry { id } => {
            known(&id)?;
            q.request_retry(Some(&[id]))?;
        }
        QueueCmd::Hold { id } => {
            known(&id)?;
            q.hold(&id)?;
            println!("{id}: placed on hold");
        }
        QueueCmd::Release { id } => {
            known(&id)?;
            q.release(&id)?;
            q.request_retry(Some(std::slice::from_ref(&id)))?;
            println!("{id}: released from hold");
        }
        QueueCmd::Delete { id, bounce: false } => {
            known(&id)?;
            q.delete(&id)?;
            println!("{id}: removed");
        }
        QueueCmd::Delete { id, bounce: true } => {
            known(&id)?;
            let shared = mta::service::Shared::new(config.clone(), None, None)?;
            let n = mta::runner::delete_with_bounce(&shared, &id)?;
            println!("{id}: removed and bounced ({n} recipients undelivered)");
        }
    }
    Ok(())
}

/// Write a new key (mode 0600, owned by `user` when that is set, so mta can
/// read it after dropping root) and print its TXT record; never overwrites.
fn dkim_generate(config: &Config, domain: &str, selector: Option<String>, algorithm: KeyAlgorithm) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let valid_label = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !domain.split('.').all(valid_label) {
        bail!("{domain:?} is not a domain name");
    }
    let selector = selector.unwrap_or_else(|| match algorithm {
        KeyAlgorithm::Rsa => "mta".into(),
        KeyAlgorithm::Ed25519 => "mta-ed25519".into(),
    });
    if !valid_label(&selector) {
        bail!("{selector:?}: a selector is letters, digits and '-'");
    }
    let dir = &config.dkim.key_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dkim::key_path(dir, &domain, &selector);
    let key = dkim::generate(algorithm)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(key.private_pem.as_bytes())?;
    file.sync_all()?;
    let mut note = String::new();
    if !config.user.is_empty() && nix::unistd::geteuid().is_root() {
        // A staging root (a package) has no such user yet: its installation makes it.
        match nix::unistd::User::from_name(&config.user)? {
            Some(user) => nix::unistd::chown(&path, Some(user.uid), Some(user.gid))?,
            None => note = format!(" (owner {} not set: no such user here)", config.user),
        }
    }
    eprintln!("wrote {}{note}; publish:", path.display());
    println!("{}", dkim::dns_record(&domain, &selector, &key.txt));
    Ok(())
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        bail!("empty password on stdin");
    }
    Ok(pw)
}

fn check_address(address: &str) -> Result<(String, String)> {
    let mb =
        mta::envelope::Address::parse(address, false).map_err(|_| anyhow::anyhow!("{address:?} is not user@domain"))?;
    Ok((mb.local.to_ascii_lowercase(), mb.domain.to_ascii_lowercase()))
}

fn user(action: UserCmd, config: &Config) -> Result<()> {
    let path = &config.auth.users_file;
    let mut users = Users::load(path)?;
    match action {
        UserCmd::Add {
            address,
            allow_cram_md5,
            ..
        } => {
            if users.get(&address).is_some() {
                bail!("{address} exists; use `mtactl user passwd`");
            }
            let first = users.users.is_empty();
            set_password(config, &mut users, &address, allow_cram_md5)?;
            println!("added {address}");
            if first {
                point_postmaster_at(&config.files.aliases, &address)?;
            }
        }
        UserCmd::Passwd {
            address,
            allow_cram_md5,
            ..
        } => {
            if users.get(&address).is_none() {
                bail!("no such user {address}");
            }
            set_password(config, &mut users, &address, allow_cram_md5)?;
            println!("updated {address}");
        }
        UserCmd::Del { address } => {
            if !users.remove(&address) {
                bail!("no such user {address}");
            }
            users.save(path)?;
            println!("removed {address}");
        }
        UserCmd::List => {
            for u in &users.users {
                println!("{}{}", u.name, if u.cram_md5.is_some() { " (cram-md5)" } else { "" });
            }
        }
    }
    Ok(())
}

/// Set a password from stdin, save the file, and make sure the Maildir and its special folders exist.
fn set_password(config: &Config, users: &mut Users, address: &str, allow_cram_md5: bool) -> Result<()> {
    let (local, domain) = check_address(address)?;
    let pw = read_password()?;
    users.set(VirtualUser::new(address, &pw, allow_cram_md5)?);
    users.save(&config.auth.users_file)?;
    let (format, path) = config.delivery.virtual_mailbox(&local, &domain);
    if format == mta::config::MailboxFormat::Maildir {
        mta::store::Store::open(&path, None)
            .and_then(|store| store.ensure_special_folders())
            .with_context(|| format!("creating {}", path.display()))?;
        // Run as root for a daemon that becomes `user`: the new Maildir is that user's.
        if !config.user.is_empty() && nix::unistd::geteuid().is_root() {
            let who = mta::privileges::Identity::lookup(&config.user)?;
            mta::privileges::give_tree(&path, &who).with_context(|| format!("chown {}", path.display()))?;
            if let Some(domain_dir) = path.parent().filter(|d| *d != config.delivery.virtual_dir) {
                std::os::unix::fs::lchown(domain_dir, Some(who.uid), Some(who.gid))?;
            }
        }
    }
    Ok(())
}

/// What `init` writes for postmaster (RFC 5321 §4.5.1) until the first user is added.
const POSTMASTER_UNTIL_FIRST_USER: &str =
    "# RFC 5321: every domain has a postmaster; `mtactl user add` points it at the first user\npostmaster: root\n";

/// The first user becomes postmaster, unless the admin has changed what `init` wrote.
fn point_postmaster_at(aliases: &Path, address: &str) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(aliases) else {
        return Ok(());
    };
    if let Some(rest) = text.strip_suffix(POSTMASTER_UNTIL_FIRST_USER) {
        std::fs::write(aliases, format!("{rest}postmaster: {address}\n"))?;
        println!("postmaster (in {}) now goes to {address}", aliases.display());
    }
    Ok(())
}

/// The configuration of a self-contained directory `root` (for tests and
/// trials): every path under it, ports offset, the aliases' programs run as
/// whoever runs mta.
fn rooted(mut c: Config, root: &Path, listen: IpAddr, offset: u16) -> Result<Config> {
    std::fs::create_dir_all(root)?;
    let root = root.canonicalize()?;
    let port = |p: u16| -> Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(
            listen,
            p.checked_add(offset).context("port offset too large")?,
        )])
    };
    c.smtp.listen = port(25)?;
    c.smtp.submission = port(587)?;
    c.smtp.smtps = port(465)?;
    c.imap.listen = port(143)?;
    c.imap.tls_listen = port(993)?;
    c.pop3.listen = port(110)?;
    c.pop3.tls_listen = port(995)?;
    c.managesieve.listen = port(4190)?;
    c.web.listen = port(443)?;
    c.tls.cert = root.join("cert.pem");
    c.tls.key = root.join("key.pem");
    c.auth.users_file = root.join("users");
    c.files.aliases = root.join("aliases");
    c.files.virtusertable = root.join("virtusertable");
    c.files.local_host_names = root.join("local-host-names");
    c.files.relay_domains = root.join("relay-domains");
    c.queue.dir = root.join("queue");
    c.queue.submit_socket = root.join("submit.sock");
    c.dkim.key_dir = root.join("dkim");
    c.srs.key_file = root.join("srs.key");
    c.lists.dir = root.join("lists");
    c.delivery.virtual_dir = root.join("mail");
    c.delivery.mbox_dir = root.join("mbox");
    // A tree under --root belongs to whoever made it: mta stays that user.
    c.user = String::new();
    c.delivery.alias_user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| "nobody".into(), |u| u.name);
    Ok(c)
}

/// Where `init` writes the configuration: beside the users file (`/etc/mta/mta.toml` on a system).
fn config_path(c: &Config) -> PathBuf {
    c.auth.users_file.with_file_name("mta.toml")
}

/// Write the configuration `c` names and everything it refers to, through
/// `install`; a `system` also gets a DKIM key for each domain.
fn init(install: &Installer, mut c: Config, system: bool) -> Result<()> {
    // greyd in proxy mode connects from loopback: trusting loopback would make an open relay.
    c.relay.networks = Vec::new();
    // Everything mta writes belongs to the user it runs as (root while `user` is empty).
    let account = (!c.user.is_empty()).then(|| Owner::lookup(&c.user));
    let owner = match &account {
        Some(found) => Ownership::Account(&c.user, found.as_ref()),
        None => Ownership::Root,
    };
    let config_path = config_path(&c);
    if let Some(dir) = config_path.parent() {
        install.dir(dir, 0o755, Ownership::Root)?;
    }
    if let Some(dir) = c.files.aliases.parent() {
        install.dir(dir, 0o755, Ownership::Root)?;
    }
    install.dir(&c.queue.dir, 0o700, owner)?;
    if !install.dry_run() {
        mta::queue::Queue::open(&install.staged(&c.queue.dir))?;
    }
    for dir in [
        &c.delivery.virtual_dir,
        &c.delivery.mbox_dir,
        &c.dkim.key_dir,
        &c.lists.dir,
    ] {
        install.dir(dir, 0o700, owner)?;
    }
    let files: [(&Path, &str); 4] = [
        (
            &c.files.aliases,
            &format!("# sendmail aliases format: name: target, target...\n{POSTMASTER_UNTIL_FIRST_USER}"),
        ),
        (
            &c.files.virtusertable,
            "# user@domain target | @domain target | user@domain error:nouser text\n",
        ),
        (&c.files.local_host_names, "# one local domain a line\n"),
        (
            &c.files.relay_domains,
            "# domains we relay to, and client networks allowed to relay\n",
        ),
    ];
    for (path, text) in files {
        install.config(path, text.as_bytes(), 0o644, Ownership::Root)?;
    }
    // The users file holds password hashes: never readable by others.
    install.config(
        &c.auth.users_file,
        b"# mta virtual users: managed by `mtactl user`\n",
        0o600,
        owner,
    )?;
    // A new SRS key would invalidate the addresses bounces may still come back to: made once.
    install.once(&c.srs.key_file, 0o600, owner, || {
        Ok(format!("{}\n", mta::outbound::srs::SrsKey::generate_secret()).into_bytes())
    })?;
    let (cert, key) = (install.staged(&c.tls.cert), install.staged(&c.tls.key));
    if cert.exists() && key.exists() {
        println!("{:>12} {} and {}", "unchanged", cert.display(), key.display());
    } else if install.dry_run() {
        println!(
            "{:>12} {} and {} (self-signed)",
            "would create",
            cert.display(),
            key.display()
        );
    } else {
        mta::tls::write_self_signed(&[c.hostname.clone()], &cert, &key)?;
        println!(
            "{:>12} {} and {} (self-signed)",
            "created",
            cert.display(),
            key.display()
        );
    }
    // dkim_generate writes into the configured directory: here, the staged one.
    let mut staged_keys = c.clone();
    staged_keys.dkim.key_dir = install.staged(&c.dkim.key_dir);
    for domain in c.domains.iter().filter(|_| system) {
        let path = dkim::key_path(&staged_keys.dkim.key_dir, domain, "mta");
        if path.exists() {
            println!("{:>12} {}", "unchanged", path.display());
        } else if install.dry_run() {
            println!("{:>12} {} (DKIM key)", "would create", path.display());
        } else {
            dkim_generate(&staged_keys, domain, None, KeyAlgorithm::Rsa)?;
        }
    }
    let why_user = match c.user.is_empty() {
        true => "# An empty user: this tree belongs to whoever made it, so mta stays that user.\n",
        false => "",
    };
    let text = format!(
        "# written by mtactl init; README.md documents every key\n{why_user}{}",
        toml::to_string_pretty(&c)?
    );
    install.config(&config_path, text.as_bytes(), 0o644, Ownership::Root)?;
    if !system {
        println!("run: mta --config {}", config_path.display());
    }
    Ok(())
}
