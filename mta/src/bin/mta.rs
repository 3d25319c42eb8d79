//! `mta`: the mail daemon (SMTP, IMAP, POP3 and HTTPS listeners, queue runner, local delivery),
//! in the foreground, with the privileged helper forked first when it will
//! drop to `user`. Also the hidden `deliver-as-user` subcommand delivery
//! runs under a user's uid, and `serve-user`, the IMAP/POP3 session of a
//! system user that the privileged helper runs as that user.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use greyd_shared::logging::Destination;
use mta::config::Config;
use mta::deliver::{self, Message, Target};
use mta::net::{self, Gate};
use mta::privileges::{self, Identity};
use mta::privsep::protocol::Protocol;
use mta::service::Shared;
use mta::smtp::server;
use mta::smtp::session::Port;
use mta::tls::Tls;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "Mail server: SMTP, queue and local delivery (runs in the foreground)")]
struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', default_value = "/etc/mta/mta.toml", env = "MTA_CONFIG")]
    config: PathBuf,
    /// Log to syslog (facility mail, the maillog lines) instead of stderr
    /// (under systemd, stderr is the journal and this flag is not needed).
    #[arg(long, short = 's')]
    syslog: bool,
    /// Load the configuration, report what is wrong with it, and exit (status 0 when it is usable).
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    helper: Option<Helper>,
}

#[derive(Subcommand)]
enum Helper {
    /// Internal: deliver stdin to a Maildir or mbox as the current user.
    #[command(hide = true, name = deliver::helper::SUBCOMMAND)]
    DeliverAsUser(DeliverArgs),
    /// Internal: serve an authenticated session for the current user on stdin.
    #[command(hide = true, name = mta::privsep::helper::SERVE_USER)]
    ServeUser(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    #[arg(long)]
    protocol: String,
    #[arg(long)]
    user: String,
    /// The IMAP tag the session answers first.
    #[arg(long, default_value = "")]
    tag: String,
    #[arg(long, default_value = "")]
    how: String,
    #[arg(long)]
    peer: std::net::SocketAddr,
    #[arg(long)]
    tls: bool,
}

#[derive(clap::Args)]
struct DeliverArgs {
    #[arg(long)]
    sender: String,
    #[arg(long)]
    recipient: String,
    #[arg(long)]
    arrived: u64,
    #[arg(long)]
    maildir: Option<PathBuf>,
    #[arg(long)]
    folder: Option<String>,
    #[arg(long)]
    create: bool,
    #[arg(long)]
    flag: Vec<String>,
    #[arg(long)]
    mbox: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.helper {
        Some(Helper::DeliverAsUser(args)) => return deliver_as_user(&cli.config, args),
        Some(Helper::ServeUser(args)) => return serve_user(&cli.config, cli.syslog, args),
        None => {}
    }
    greyd_shared::logging::init(c"mta", "MTA_LOG", Destination::choose(!cli.syslog), false);
    let config = Config::load(&cli.config)?;
    if cli.check_config {
        println!("{}: ok", cli.config.display());
        return Ok(());
    }
    keep_large_blocks_mapped();
    let become_user = unprivileged_user(&config)?;
    if become_user.is_some() {
        // Still one thread: forking is safe only now.
        let channel = mta::privsep::helper::start(&config, &cli.config)?;
        mta::privsep::client::install(channel);
    }
    // Store and queue work runs on the blocking pool; a bounded pool keeps a
    // burst of logins from growing hundreds of threads (and their memory).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()?
        .block_on(daemon(config, become_user))
}

fn serve_user(config: &std::path::Path, syslog: bool, args: ServeArgs) -> Result<()> {
    greyd_shared::logging::init(c"mta", "MTA_LOG", Destination::choose(!syslog), false);
    let protocol = Protocol::from_name(&args.protocol).context("unknown --protocol")?;
    let config = Config::load(config)?;
    // SAFETY: the privileged helper put the client's connection on stdin; nothing else owns fd 0.
    let connection = unsafe { std::os::unix::net::UnixStream::from_raw_fd(0) };
    connection.set_nonblocking(true)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let io: Box<dyn net::Io> = Box::new(tokio::net::UnixStream::from_std(connection)?);
            let shared = Arc::new(Shared::new(config, None, None)?);
            match protocol {
                Protocol::Imap => {
                    mta::imap::session::Session::new(io, shared, args.peer, args.tls)
                        .resume(args.user, &args.tag, &args.how)
                        .await
                }
                Protocol::Pop3 => mta::pop3::server::resume(io, shared, args.peer, args.tls, args.user).await,
            }
            Ok(())
        })
}

/// glibc raises its mmap threshold to the largest block freed so far, after
/// which the 19 MiB of every argon2 password check stays in the heap of
/// whichever thread ran it: hundreds of MB kept after a burst of logins. A
/// fixed threshold keeps large blocks mapped, so they go back to the system
/// when freed.
fn keep_large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn deliver_as_user(config: &std::path::Path, args: DeliverArgs) -> Result<()> {
    let hostname = Config::load(config)
        .map(|c| c.hostname)
        .unwrap_or_else(|_| "localhost".into());
    let target = match (args.maildir, args.mbox) {
        (Some(dir), None) => Target::Maildir {
            dir,
            folder: args.folder,
            create: args.create,
            flags: args.flag,
        },
        (None, Some(path)) => Target::Mbox(path),
        _ => anyhow::bail!("give exactly one of --maildir and --mbox"),
    };
    let mut content = Vec::new();
    std::io::stdin().read_to_end(&mut content)?;
    let msg = Message {
        sender: Some(&args.sender).filter(|s| !s.is_empty()).map(String::as_str),
        recipient: &args.recipient,
        content: &content,
        arrived: args.arrived,
    };
    if let Err(e) = deliver::deliver_here(&target, &msg, &hostname) {
        eprintln!("{e}");
        std::process::exit(if e.temporary { deliver::pipe::EX_TEMPFAIL } else { 1 });
    }
    Ok(())
}

/// Bind the listeners of one service; implicit-TLS ones are skipped (with a
/// warning) when there is no certificate.
fn bind_all(
    addrs: &[std::net::SocketAddr],
    service: &str,
    implicit_tls: bool,
    has_tls: bool,
) -> Result<Vec<tokio::net::TcpListener>> {
    let mut listeners = Vec::new();
    for &addr in addrs {
        if implicit_tls && !has_tls {
            tracing::warn!("not listening on {addr}: {service} needs a certificate");
            continue;
        }
        listeners.push(net::bind(addr).with_context(|| format!("binding {addr}"))?);
        tracing::info!("listening on {addr} ({service})");
    }
    Ok(listeners)
}

/// Who to become after binding: `config.user`, if set and we are root;
/// checked now, so a file that user could not use stops the start with one message.
fn unprivileged_user(config: &Config) -> Result<Option<Identity>> {
    if config.user.is_empty() || !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let who = Identity::lookup(&config.user).with_context(|| {
        format!(
            "mta started as root becomes {0} after binding: create it \
             (useradd --system --no-create-home --shell /usr/sbin/nologin {0}, or cargo xtask install), \
             or set user = \"\" in the configuration to stay root",
            config.user
        )
    })?;
    privileges::check_usable(config, &who)?;
    Ok(Some(who))
}

async fn daemon(config: Config, become_user: Option<Identity>) -> Result<()> {
    let tls = match Tls::load(&config.tls.cert, &config.tls.key) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            tracing::warn!("TLS disabled: {e}");
            None
        }
    };
    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(config, tls, Some(wake_tx))?);
    let history = mta::metrics::history_path(&shared);
    if let Err(e) = shared.stats.restore(&history) {
        tracing::warn!("status history: starting afresh: {e}");
    }
    if let Some(addr) = shared.config.metrics.listen {
        mta::metrics::install(addr).with_context(|| format!("cannot serve metrics on {addr}"))?;
        tracing::info!("metrics on http://{addr}/metrics");
    }
    let has_tls = shared.tls.is_some();
    let descriptors = net::raise_descriptor_limit();
    let gate = Gate::for_descriptors(descriptors);
    tracing::info!(
        "descriptor limit {descriptors}: at most {} connections",
        gate.max_open()
    );
    let smtp = &shared.config.smtp;
    for (addrs, port) in [
        (&smtp.listen, Port::Mx),
        (&smtp.submission, Port::Submission),
        (&smtp.smtps, Port::Smtps),
    ] {
        for listener in bind_all(addrs, &format!("{port:?}"), port == Port::Smtps, has_tls)? {
            tokio::spawn(server::serve(listener, port, Arc::clone(&shared), Arc::clone(&gate)));
        }
    }
    let imap = &shared.config.imap;
    for (addrs, implicit_tls, name) in [(&imap.listen, false, "IMAP"), (&imap.tls_listen, true, "IMAPS")] {
        for listener in bind_all(addrs, name, implicit_tls, has_tls)? {
            let (shared, gate) = (Arc::clone(&shared), Arc::clone(&gate));
            tokio::spawn(mta::imap::server::serve(listener, implicit_tls, shared, gate));
        }
    }
    let pop3 = &shared.config.pop3;
    for (addrs, implicit_tls, name) in [(&pop3.listen, false, "POP3"), (&pop3.tls_listen, true, "POP3S")] {
        for listener in bind_all(addrs, name, implicit_tls, has_tls)? {
            let (shared, gate) = (Arc::clone(&shared), Arc::clone(&gate));
            tokio::spawn(mta::pop3::server::serve(listener, implicit_tls, shared, gate));
        }
    }
    for listener in bind_all(&shared.config.managesieve.listen, "ManageSieve", false, has_tls)? {
        let (shared, gate) = (Arc::clone(&shared), Arc::clone(&gate));
        tokio::spawn(mta::managesieve::server::serve(listener, shared, gate));
    }
    let web = mta::web::router(mta::web::WebState::new(Arc::clone(&shared)));
    for listener in bind_all(&shared.config.web.listen, "HTTPS", true, has_tls)? {
        let (shared, gate) = (Arc::clone(&shared), Arc::clone(&gate));
        tokio::spawn(mta::web::listener::serve(listener, web.clone(), shared, gate));
    }
    let submit_socket = &shared.config.queue.submit_socket;
    let submissions =
        mta::submit::bind(submit_socket).with_context(|| format!("binding {}", submit_socket.display()))?;
    tokio::spawn(mta::submit::serve(submissions, Arc::clone(&shared)));
    // Before dropping privileges: the smarthost password file may be root's.
    let outbound = Arc::new(mta::outbound::Outbound::new(&shared.config, Arc::clone(&shared.dns))?);
    if let Some(who) = &become_user {
        privileges::become_user(who)?;
        tracing::info!("running as {}", who.name);
    }
    tokio::spawn(mta::runner::run(Arc::clone(&shared), outbound, wake_rx));
    tokio::spawn(mta::reporting::run(Arc::clone(&shared)));
    tokio::spawn(mta::lists::digest::run(Arc::clone(&shared)));
    tokio::spawn(mta::metrics::run(Arc::clone(&shared)));
    greyd_shared::readiness::notify_ready("serving");
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match &shared.tls {
                Some(tls) => match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => tracing::error!("SIGHUP: keeping the old certificate: {e}"),
                },
                None => tracing::info!("SIGHUP: TLS is disabled, nothing to reload"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down");
    mta::metrics::save(&shared);
    greyd_shared::readiness::notify_stopping();
    Ok(())
}
