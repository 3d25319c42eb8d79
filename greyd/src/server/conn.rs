//! One client connection: classify the source, then either splice it to the
//! MTA (whitelisted) or run the tarpit dialogue, stuttering as spamd does.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::limits::{Refusal, Slot};
use super::state::Shared;
use super::stutter::Outcome;
use crate::config::Pregreet;
use crate::control::{Effects, canonical};
use crate::grey::{self, Decision, Evidence, GreyTuple};
use crate::smtp::{Dialogue, DialogueConfig, LineReader, Mode, black_reply};
use greyd_shared::datetime::now;

/// The reply a trapped source gets, as spamd's greytrap list.
const TRAP_MESSAGE: &str = "Your address %A has mailed to spamtraps here";

/// What to do with a new connection.
enum Verdict {
    /// Whitelisted (`white`: refresh its entry) or allowed: splice to the MTA.
    Pass { white: bool },
    /// Blacklisted (list names for the log) or trapped.
    Black {
        lists: String,
        reply: String,
        trapped: bool,
    },
    /// Unknown: greylist (tuples recorded unless in blacklist-only mode).
    Grey,
}

impl Verdict {
    /// The connection's class in the metrics.
    fn class(&self) -> &'static str {
        match self {
            Verdict::Pass { white: true } => "white",
            Verdict::Pass { white: false } => "allowed",
            Verdict::Black { trapped: true, .. } => "trapped",
            Verdict::Black { .. } => "black",
            Verdict::Grey => "grey",
        }
    }
}

/// Most other addresses of a sender whose SPF is checked for one retry.
const MAX_SPF_CANDIDATES: usize = 4;

/// Counts a connection for as long as it lives.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Counted<'a> {
    /// Count one more; also returns how many are counted now, this one included.
    fn new(counter: &'a std::sync::atomic::AtomicUsize) -> (Self, usize) {
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        (Counted(counter), now)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn classify(shared: &Shared, ip: IpAddr, now: i64) -> Verdict {
    let config = &shared.config;
    let m = shared.memory();
    if config.nospamd.iter().any(|n| n.contains(&ip)) || m.lists.allowed(ip) {
        return Verdict::Pass { white: false };
    }
    let trapped = m.trapped.get(&ip).is_some_and(|&e| e > now);
    if !trapped && m.white.get(&ip).is_some_and(|&e| e > now) {
        return Verdict::Pass { white: true };
    }
    if trapped {
        let reply = crate::smtp::message_reply(TRAP_MESSAGE, ip, config.reply_code);
        return Verdict::Black {
            lists: "spamd-greytrap".into(),
            reply,
            trapped: true,
        };
    }
    let matches = m.lists.black_matches(ip);
    if !matches.is_empty() {
        let names: Vec<&str> = matches.iter().map(|l| l.name.as_str()).collect();
        return Verdict::Black {
            lists: names.join(" "),
            reply: black_reply(&matches, ip, config.reply_code),
            trapped: false,
        };
    }
    if config.blacklist_only {
        Verdict::Pass { white: false }
    } else {
        Verdict::Grey
    }
}

/// Take a connection just accepted: classify it, and unless it is passed to
/// the MTA claim its tarpit slot here, before its task starts, so no burst
/// runs past the limits. Over a limit it is told so and closed.
pub fn start(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let ip = canonical(peer.ip());
    let verdict = classify(shared, ip, now());
    let passed = matches!(verdict, Verdict::Pass { .. }) && shared.firewall.upstream().is_some();
    let slot = if passed {
        None
    } else {
        match shared.limits.claim(ip) {
            Ok(slot) => Some(slot),
            Err(refusal) => return refuse(shared, &stream, ip, refusal),
        }
    };
    tokio::spawn(serve(Arc::clone(shared), stream, peer, verdict, slot));
}

/// Turn away a connection over a limit with a 421, as a full SMTP server
/// does: the client closes and retries later. The reply fits any fresh
/// socket's send buffer, so writing it never waits.
fn refuse(shared: &Shared, stream: &TcpStream, ip: IpAddr, refusal: Refusal) {
    let (reply, why) = match refusal {
        Refusal::Full => (
            "421 4.3.2 Too many connections, try again later\r\n",
            format!("{} tarpit connections open (maxcon)", shared.config.maxcon),
        ),
        Refusal::SourceFull => (
            "421 4.7.0 Too many connections from your address, try again later\r\n",
            format!(
                "its source holds {} tarpit connections (max_per_source)",
                shared.config.max_per_source
            ),
        ),
    };
    let _ = stream.try_write(reply.as_bytes());
    info!("{ip}: refused, {why}");
}

/// Serve one accepted connection to its end; `_slot` holds its place in the
/// tarpit until then.
async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, verdict: Verdict, _slot: Option<Slot>) {
    let ip = canonical(peer.ip());
    let local = shared.firewall.original_destination(&stream);
    let started = Instant::now();
    let (verdict, class) = match verdict {
        Verdict::Grey if dnswl_pass(&shared, ip).await => (Verdict::Pass { white: false }, "white"),
        v => {
            let class = v.class();
            (v, class)
        }
    };
    let _open = crate::metrics::connection(class, ip);
    let outcome = match (verdict, shared.firewall.upstream()) {
        (Verdict::Pass { white }, Some(upstream)) => pass(&shared, stream, peer, local, upstream, white).await,
        (Verdict::Black { lists, reply, .. }, _) => {
            let (_black, black_open) = Counted::new(&shared.black);
            let stutter = black_open <= shared.config.maxblack;
            let sent = tarpit(&shared, stream, ip, local, Mode::Black { reply }, stutter).await;
            crate::metrics::tarpit_spent(class, sent, started.elapsed());
            format!("{sent} bytes sent, lists: {lists}")
        }
        // With no upstream (firewall none) a passed source can only be greylisted.
        (Verdict::Grey | Verdict::Pass { .. }, _) => {
            let sent = tarpit(&shared, stream, ip, local, Mode::Grey, true).await;
            crate::metrics::tarpit_spent("grey", sent, started.elapsed());
            format!("{sent} bytes sent, greylisted")
        }
    };
    info!(
        "{ip}: disconnected after {:.1}s, {outcome}",
        started.elapsed().as_secs_f64()
    );
}

/// A source the DNS allowlists vouch for (score at or below the threshold)
/// skips greylisting: it is whitelisted now, as a promotion would, and passed.
async fn dnswl_pass(shared: &Arc<Shared>, ip: IpAddr) -> bool {
    if !shared.dns.has_dnswl() {
        return false;
    }
    let score = shared.dns.dnswl_score(ip).await;
    let threshold = shared.config.dnswl_threshold;
    if score > threshold {
        return false;
    }
    let rules = shared.config.rules;
    let white = match shared
        .with_db(move |tx| grey::refresh_white(tx, ip, &rules, now()))
        .await
    {
        Ok(w) => w,
        Err(e) => {
            warn!("{ip}: cannot whitelist: {e}");
            return false;
        }
    };
    info!("{ip}: whitelisted: DNSWL score {score} is at or below {threshold}");
    crate::metrics::promotions("dnswl", 1);
    let fx = Effects {
        white_added: vec![(ip, white.expire)],
        ..Effects::default()
    };
    shared.announce(&fx);
    shared.mirror(fx, None);
    true
}

/// Splice a whitelisted client to the MTA after a PROXY v2 header.
async fn pass(
    shared: &Arc<Shared>,
    mut client: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    upstream: SocketAddr,
    white: bool,
) -> String {
    let ip = canonical(peer.ip());
    let connect = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(upstream)).await;
    let mut mta = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return refuse_pass(&mut client, format!("upstream {upstream} refused: {e}")).await;
        }
        Err(_) => return refuse_pass(&mut client, format!("upstream {upstream} timed out")).await,
    };
    let src = SocketAddr::new(ip, peer.port());
    let dst = local.map_or(upstream, |l| SocketAddr::new(canonical(l.ip()), l.port()));
    if let Err(e) = mta.write_all(&greyd_shared::proxy::header(src, dst)).await {
        return refuse_pass(&mut client, format!("upstream {upstream}: {e}")).await;
    }
    crate::metrics::passed();
    if white {
        // A whitelisted host that keeps talking stays whitelisted (spamlogd's inbound role).
        let rules = shared.config.rules;
        match shared
            .with_db(move |tx| grey::refresh_white(tx, ip, &rules, now()))
            .await
        {
            Ok(w) => {
                shared.memory_mut().white.insert(ip, w.expire);
            }
            Err(e) => warn!("{ip}: cannot refresh whitelist entry: {e}"),
        }
    }
    match tokio::io::copy_bidirectional(&mut client, &mut mta).await {
        Ok((up, down)) => format!("passed to {upstream}, {up} bytes in, {down} bytes out"),
        Err(e) => format!("passed to {upstream}, ended with {e}"),
    }
}

async fn refuse_pass(client: &mut TcpStream, why: String) -> String {
    warn!("{why}");
    let _ = client
        .write_all(b"421 4.3.0 Mail server unavailable, try again later\r\n")
        .await;
    format!("not passed: {why}")
}

/// How replies are slowed down: one byte per `delay`, until `until` (for ever when None).
#[derive(Clone, Copy)]
struct Stutter {
    delay: Duration,
    until: Option<Instant>,
}

impl Stutter {
    fn active(&self) -> bool {
        self.until.is_none_or(|u| Instant::now() < u)
    }
}

/// Write `bytes`, stuttering on the shared clock while the stutter is active.
async fn send(
    shared: &Shared,
    stream: &Arc<TcpStream>,
    bytes: &[u8],
    stutter: Option<Stutter>,
    timeout: Duration,
) -> std::io::Result<()> {
    let write = async {
        match stutter.filter(Stutter::active) {
            None => write_all(stream, bytes).await,
            Some(s) => match shared.stutterer.send(stream, bytes, s.until).await {
                Outcome::Sent => Ok(()),
                Outcome::Rest(mut rest) => write_all(stream, rest.make_contiguous()).await,
                Outcome::Failed(e) => Err(e),
            },
        }
    };
    // A client that never reads cannot hold the connection past the idle limit per reply.
    let slowest = stutter.map_or(Duration::ZERO, |s| s.delay) * u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    tokio::time::timeout(timeout + slowest, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// `write_all` on a stream the stutter clock shares.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `read` on a stream the stutter clock shares.
async fn read(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            r => return r,
        }
    }
}

/// The tarpit dialogue. Returns the number of bytes sent.
async fn tarpit(
    shared: &Arc<Shared>,
    stream: TcpStream,
    ip: IpAddr,
    local: Option<SocketAddr>,
    mode: Mode,
    black_stutter: bool,
) -> usize {
    let stream = Arc::new(stream);
    let config = &shared.config;
    let started = Instant::now();
    let on_low_mx = matches!((config.low_priority_mx, local), (Some(mx), Some(l)) if canonical(l.ip()) == mx);
    let mut dialogue = Dialogue::new(
        ip,
        mode,
        DialogueConfig {
            hostname: config.hostname.clone(),
            max_bad_commands: config.max_bad_commands,
        },
    );
    // Blacklisted: stutter throughout (unless over maxblack); greylisted: for the first -S seconds.
    let stutter_now = |d: &Dialogue| -> Option<Stutter> {
        let until = match d.mode() {
            Mode::Black { .. } if black_stutter => None,
            Mode::Black { .. } => return None,
            Mode::Grey => Some(started + config.grey_stutter),
        };
        (!config.stutter.is_zero()).then_some(Stutter {
            delay: config.stutter,
            until,
        })
    };
    let mut sent = 0usize;
    let banner = dialogue.banner(&config.banner_name, now());
    // The last byte is held back to look for input that came before it.
    let (head, last) = banner.as_bytes().split_at(banner.len() - 1);
    if send(shared, &stream, head, stutter_now(&dialogue), config.idle_timeout)
        .await
        .is_err()
    {
        return sent;
    }
    let input_waiting = config.pregreet != Pregreet::Off && input_waiting(&stream);
    if send(shared, &stream, last, None, config.idle_timeout).await.is_err() {
        return sent;
    }
    sent += banner.len();
    if dialogue.banner_ended(input_waiting).pregreet {
        pregreet(shared, &mut dialogue, ip).await;
    }
    let mut lines = LineReader::new();
    let mut buf = [0u8; 512];
    loop {
        let n = match tokio::time::timeout(config.idle_timeout, read(&stream, &mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return sent,
            Ok(Ok(n)) => n,
            Err(_) => {
                let _ = write_all(&stream, b"421 4.4.2 Timeout, closing connection\r\n").await;
                return sent;
            }
        };
        lines.push(&buf[..n]);
        while let Some(line) = lines.next_line() {
            let step = dialogue.on_line(line.as_deref().map_err(|e| *e));
            if let Some(tuple) = step.tuple.filter(|_| !config.blacklist_only) {
                record(shared, &mut dialogue, tuple, on_low_mx).await;
            }
            if step.data_started {
                shrink_window(&stream, config.window);
            }
            if let Some(reply) = step.reply {
                if send(
                    shared,
                    &stream,
                    reply.as_bytes(),
                    stutter_now(&dialogue),
                    config.idle_timeout,
                )
                .await
                .is_err()
                {
                    return sent;
                }
                sent += reply.len();
            }
            if step.close {
                return sent;
            }
        }
    }
}

/// Whether the client has sent bytes not read yet (a peek, so they stay for the dialogue).
fn input_waiting(stream: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::uninit()];
    // The socket is non-blocking: nothing waiting is WouldBlock.
    matches!(socket2::SockRef::from(stream).peek(&mut byte), Ok(n) if n > 0)
}

/// A client spoke before the banner ended: trap it (or log it), as `pregreet` says.
async fn pregreet(shared: &Arc<Shared>, dialogue: &mut Dialogue, ip: IpAddr) {
    if shared.config.pregreet == Pregreet::Log {
        return info!("{ip}: pregreet: sent before the banner ended (pregreet = log, not trapped)");
    }
    let rules = shared.config.rules;
    let trapped = shared.with_db(move |tx| grey::trap(tx, ip, &rules, now())).await;
    let entry = match trapped {
        Ok(t) => t,
        Err(e) => return warn!("{ip}: cannot trap: {e}"),
    };
    info!("{ip}: trapped (pregreet): sent before the banner ended");
    crate::metrics::trap_hit("pregreet");
    dialogue.trap(crate::smtp::message_reply(TRAP_MESSAGE, ip, shared.config.reply_code));
    let fx = Effects {
        trapped_added: vec![(ip, entry.expire)],
        ..Effects::default()
    };
    shared.announce(&fx);
    shared.mirror(fx, None);
}

/// spamd's -w: a small receive window makes a blacklisted sender's DATA crawl.
fn shrink_window(stream: &TcpStream, window: Option<u32>) {
    if let Some(w) = window {
        let sock = socket2::SockRef::from(stream);
        let _ = sock.set_recv_buffer_size(w as usize);
    }
}

/// SPF evidence for a retry whose sender and recipient first came from other
/// addresses that have waited out the pass time; asked only then, and only
/// when nothing else promotes the tuple, so most tuples cost no lookup.
async fn spf_evidence(shared: &Arc<Shared>, tuple: &GreyTuple) -> Evidence {
    let sender = grey::dequote(&tuple.from);
    if !shared.config.spf_promotion || !sender.contains('@') {
        return Evidence::default();
    }
    let (from, to) = (tuple.from.clone(), tuple.to.clone());
    let seen = match shared.with_db(move |tx| tx.greys_for(&from, &to)).await {
        Ok(seen) => seen,
        Err(e) => {
            warn!("{}: cannot read grey entries: {e}", tuple.ip);
            return Evidence::default();
        }
    };
    let candidates = grey::spf_candidates(tuple, &seen, &shared.config.rules, now());
    if candidates.is_empty() || !shared.dns.spf_passes(tuple.ip, &tuple.helo, &sender).await {
        return Evidence::default();
    }
    let mut spf_pass = vec![tuple.ip];
    for ip in candidates.into_iter().take(MAX_SPF_CANDIDATES) {
        if shared.dns.spf_passes(ip, &tuple.helo, &sender).await {
            spf_pass.push(ip);
            break;
        }
    }
    Evidence { spf_pass }
}

/// Greylist a tuple; a trap turns the rest of this dialogue black.
async fn record(shared: &Arc<Shared>, dialogue: &mut Dialogue, tuple: GreyTuple, on_low_mx: bool) {
    let evidence = spf_evidence(shared, &tuple).await;
    let rules = shared.config.rules;
    let shared2 = Arc::clone(shared);
    let t = tuple.clone();
    let when = now();
    let decision = shared
        .with_db(move |tx| grey::record_tuple(tx, &t, &shared2.allowed, on_low_mx, &evidence, &rules, when))
        .await;
    let ip = tuple.ip;
    let decision = match decision {
        Ok(d) => d,
        Err(e) => return warn!("{ip}: cannot record tuple: {e}"),
    };
    crate::metrics::tuple(matches!(decision, Decision::NewGrey(_)));
    match &decision {
        Decision::NewGrey(_) | Decision::StillGrey(_) => info!("(GREY) {ip}: {} -> {}", tuple.from, tuple.to),
        Decision::Promote(whites, reason) => {
            let also: Vec<String> = whites.iter().skip(1).map(|w| w.ip.to_string()).collect();
            let also = if also.is_empty() {
                String::new()
            } else {
                format!(", with {} where it was first seen", also.join(" "))
            };
            info!(
                "{ip}: whitelisted ({}): {} -> {} retried after the pass time{also}",
                reason.as_str(),
                tuple.from,
                tuple.to
            );
            crate::metrics::promotions(reason.as_str(), whites.len());
        }
        Decision::Trap(_, reason) => {
            info!("{ip}: trapped ({}): {} -> {}", reason.as_str(), tuple.from, tuple.to);
            crate::metrics::trap_hit(reason.name());
            dialogue.trap(crate::smtp::message_reply(TRAP_MESSAGE, ip, shared.config.reply_code));
        }
    }
    if let Some(sync) = &shared.sync {
        sync.send(&crate::sync::announce(&decision, &tuple, when));
    }
    shared.mirror(Effects::from(&decision), None);
}
