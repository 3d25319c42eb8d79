//! `cargo xtask bench imap`: a load generator (tokio; many concurrent
//! clients doing LOGIN and SELECT, then FETCH, SEARCH, STORE, APPEND and
//! IDLE in turn) against our `mta` (release build) and against Dovecot
//! (Debian dovecot-imapd, run unprivileged as `nobody` with its own config
//! directory and a passwd-file userdb, on loopback), each on its own copy
//! of the same generated Maildir, in the same run. Then N idle connections
//! (LOGIN, SELECT, IDLE) and the memory they cost: the growth of the
//! servers' summed PSS (proportional set size, so pages that Dovecot's
//! processes share are counted once) divided by N.
//!
//! Needs root: it installs dovecot-imapd if missing (with a policy-rc.d that
//! keeps the system service from starting) and runs Dovecot as `nobody`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio_rustls::client::TlsStream;

use crate::bench_smtp::{Running, free_port, mta_maildir, start_mta, wait_port};
use crate::measure::{RunFigures, Spread, print_run, print_summary, process_tree, scratch, settle, tree_cpu_seconds};
use crate::run;

/// The load of `bench imap`.
#[derive(clap::Args)]
pub struct ImapLoad {
    /// Messages in the generated Maildir.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Concurrent clients in the throughput run.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Idle connections (LOGIN, SELECT, IDLE) for the memory figure.
    #[arg(long, default_value_t = 500)]
    idle: usize,
    /// Runs of each server, alternating.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const USER: &str = crate::bench_smtp::RCPT;
const PASSWORD: &str = "bench";

/// A small, repeatable pseudo-random source (xorshift64; the state must not be 0).
struct XorShift(u64);

impl XorShift {
    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Write `n` messages into `dir/cur` (half of them seen) as a Maildir, named
/// as mta's delivery names them (time, microseconds, pid, counter, host).
/// Names must vary as real ones do: near-identical synthetic names collide
/// in Dovecot's filename hash and made each of its syncs take seconds.
fn generate_maildir(dir: &Path, n: usize) -> Result<()> {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n";
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut time = 1_700_000_000;
    for i in 0..n {
        let body = filler.repeat(5 + i % 40);
        let text = format!(
            "From: sender{a}@remote.test\nTo: {USER}\nSubject: bench message {i} topic{t}\n\
             Date: Sat, 28 Nov 2026 04:00:00 +0000\nMessage-ID: <{i}@bench.test>\n\n{body}",
            a = i % 97,
            t = i % 100,
        );
        let flags = if i % 2 == 0 { "S" } else { "" };
        time += 1 + rng.below(600);
        let name = format!(
            "{time}.M{}P{}Q{i}.mx.bench.test:2,{flags}",
            rng.below(1_000_000),
            1000 + rng.below(60_000)
        );
        std::fs::write(dir.join("cur").join(name), text)?;
    }
    Ok(())
}

/// Accepts any certificate: both servers run on loopback with a
/// self-signed one, and the bench measures IMAP, not PKI.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One IMAPS client connection: tagged commands, literals in responses.
struct Client {
    reader: BufReader<ReadHalf<TlsStream<TcpStream>>>,
    writer: WriteHalf<TlsStream<TcpStream>>,
    tag: u32,
    line: Vec<u8>,
}

impl Client {
    async fn connect(port: u16) -> Result<Client> {
        static CONNECTOR: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
        let connector = CONNECTOR.get_or_init(|| tls_connector().expect("a TLS client configuration"));
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::try_from("localhost")?;
        let (r, w) = tokio::io::split(connector.connect(name, stream).await?);
        let mut c = Client {
            reader: BufReader::new(r),
            writer: w,
            tag: 0,
            line: Vec::new(),
        };
        c.read_line().await?;
        if !c.line.starts_with(b"* OK") {
            bail!("greeting: {}", String::from_utf8_lossy(&c.line));
        }
        Ok(c)
    }

    /// One response line, with any literals it announces read along.
    async fn read_line(&mut self) -> Result<()> {
        self.line.clear();
        loop {
            if self.reader.read_until(b'\n', &mut self.line).await? == 0 {
                bail!("connection closed");
            }
            let Some(len) = literal_len(&self.line) else {
                return Ok(());
            };
            let start = self.line.len();
            self.line.resize(start + len, 0);
            self.reader.read_exact(&mut self.line[start..]).await?;
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Send a command and wait for its tagged OK; `literal` follows a "+" continuation.
    async fn command(&mut self, cmd: &str, literal: Option<&[u8]>) -> Result<()> {
        self.tag += 1;
        let tag = format!("a{} ", self.tag);
        self.send(format!("{tag}{cmd}\r\n").as_bytes()).await?;
        if let Some(data) = literal {
            self.wait_continuation().await?;
            self.send(&[data, b"\r\n"].concat()).await?;
        }
        self.wait_tagged(&tag).await
    }

    async fn wait_continuation(&mut self) -> Result<()> {
        loop {
            self.read_line().await?;
            if self.line.starts_with(b"+") {
                return Ok(());
            }
            if !self.line.starts_with(b"*") {
                bail!("expected a continuation: {}", String::from_utf8_lossy(&self.line));
            }
        }
    }

    async fn wait_tagged(&mut self, tag: &str) -> Result<()> {
        loop {
            self.read_line().await?;
            if self.line.starts_with(tag.as_bytes()) {
                if self.line[tag.len()..].starts_with(b"OK") {
                    return Ok(());
                }
                bail!("{}", String::from_utf8_lossy(&self.line).trim_end());
            }
        }
    }

    async fn login(&mut self) -> Result<u32> {
        self.command(&format!("LOGIN \"{USER}\" \"{PASSWORD}\""), None).await?;
        self.tag += 1;
        let tag = format!("a{} ", self.tag);
        self.send(format!("{tag}SELECT INBOX\r\n").as_bytes()).await?;
        let mut exists = 0;
        loop {
            self.read_line().await?;
            let text = String::from_utf8_lossy(&self.line);
            if let Some(n) = text
                .strip_prefix("* ")
                .and_then(|t| t.trim_end().strip_suffix(" EXISTS"))
            {
                exists = n.parse()?;
            }
            if text.starts_with(&tag) {
                if !text[tag.len()..].starts_with("OK") {
                    bail!("SELECT: {text}");
                }
                return Ok(exists);
            }
        }
    }

    /// IDLE until the server confirms, then DONE (or stay idle if `stay`).
    async fn idle(&mut self, stay: bool) -> Result<()> {
        self.tag += 1;
        let tag = format!("a{} ", self.tag);
        self.send(format!("{tag}IDLE\r\n").as_bytes()).await?;
        self.wait_continuation().await?;
        if stay {
            return Ok(());
        }
        self.send(b"DONE\r\n").await?;
        self.wait_tagged(&tag).await
    }
}

/// `{n}` (or `{n+}`) at the end of a line: a literal of n bytes follows.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

const OPS: [&str; 6] = ["FETCH header", "FETCH body", "SEARCH", "STORE", "APPEND", "IDLE+DONE"];

/// Completed operations and their summed latency, per kind.
#[derive(Default)]
struct Tally {
    count: [AtomicU64; 6],
    micros: [AtomicU64; 6],
}

impl Tally {
    fn total(&self) -> u64 {
        self.count.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// "SEARCH 12.3 ms, ..." : mean latency of each kind.
    fn latencies(&self) -> String {
        let mean = |i: usize| {
            let n = self.count[i].load(Ordering::Relaxed).max(1);
            self.micros[i].load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
        };
        (0..OPS.len())
            .map(|i| format!("{} {:.1} ms", OPS[i], mean(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A client's loop for `seconds`: the six operations in turn on random
/// messages. The clock starts once every client has logged in and selected (`ready`).
async fn work(port: u16, seed: u64, seconds: u64, ready: Arc<Barrier>, tally: Arc<Tally>) -> Result<()> {
    let mut c = Client::connect(port).await?;
    let exists = c.login().await?.max(1);
    ready.wait().await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = XorShift(seed | 1);
    let append = b"From: load@bench.test\r\nSubject: appended\r\n\r\nA short appended message.\r\n";
    let mut round = 0u64;
    while Instant::now() < deadline {
        let n = rng.below(exists as u64) + 1;
        let kind = (round % 6) as usize;
        let started = Instant::now();
        match kind {
            0 => {
                c.command(&format!("FETCH {n} (FLAGS RFC822.SIZE BODY.PEEK[HEADER])"), None)
                    .await?
            }
            1 => c.command(&format!("FETCH {n} BODY.PEEK[]"), None).await?,
            2 => c.command(&format!("SEARCH SUBJECT \"topic{}\"", n % 100), None).await?,
            3 => c.command(&format!("STORE {n} +FLAGS (\\Flagged)"), None).await?,
            4 => {
                let cmd = format!("APPEND INBOX (\\Seen) {{{}}}", append.len());
                c.command(&cmd, Some(append)).await?
            }
            _ => c.idle(false).await?,
        }
        round += 1;
        tally.count[kind].fetch_add(1, Ordering::Relaxed);
        tally.micros[kind].fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
    c.command("LOGOUT", None).await
}

/// Operations per second with `clients` concurrent clients for `seconds`,
/// the CPU per operation of the server tree under `server`, and the mean
/// latency of each kind.
async fn throughput(port: u16, server: u32, clients: usize, seconds: u64) -> Result<(RunFigures, String)> {
    // Warm up as a mail client that has opened the folder before would have:
    // every header fetched once and one SEARCH, so both servers have read
    // (and may cache) what the timed operations ask for.
    let mut warm = Client::connect(port).await?;
    warm.login().await?;
    warm.command("FETCH 1:* (FLAGS RFC822.SIZE BODY.PEEK[HEADER])", None)
        .await?;
    warm.command("SEARCH SUBJECT \"topic0\"", None).await?;
    warm.command("LOGOUT", None).await?;
    let tally = Arc::new(Tally::default());
    let ready = Arc::new(Barrier::new(clients + 1));
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let seed = 0x9e37_79b9_7f4a_7c15 ^ i as u64;
            tokio::spawn(work(port, seed, seconds, Arc::clone(&ready), Arc::clone(&tally)))
        })
        .collect();
    if tokio::time::timeout(Duration::from_secs(300), ready.wait())
        .await
        .is_err()
    {
        bail!("the clients did not all log in and select within 5 minutes");
    }
    let (start, cpu) = (Instant::now(), tree_cpu_seconds(server));
    for t in tasks {
        t.await??;
    }
    let ops = tally.total().max(1) as f64;
    let figures = RunFigures {
        rate: ops / start.elapsed().as_secs_f64(),
        cpu_per_unit: (tree_cpu_seconds(server) - cpu) / ops,
        syncs_per_unit: None,
    };
    Ok((figures, tally.latencies()))
}

/// Summed PSS in kB of `pid` and all its descendants.
fn pss_kb(pid: u32) -> u64 {
    process_tree(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Pss:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .sum()
}

/// kB per idle connection: `n` clients LOGIN, SELECT and IDLE; PSS growth / n.
async fn idle_cost(port: u16, pid: u32, n: usize) -> Result<f64> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = pss_kb(pid);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = Client::connect(port).await?;
        c.login().await?;
        c.idle(true).await?;
        held.push(c);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pss_kb(pid);
    drop(held);
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

/// Install dovecot-imapd if missing, keeping its system service from starting.
fn ensure_dovecot() -> Result<()> {
    if Path::new("/usr/sbin/dovecot").exists() && Path::new("/usr/lib/dovecot/imap").exists() {
        return Ok(());
    }
    // A policy-rc.d of the machine's own (containers have one that denies
    // every start) is left as it is; otherwise ours keeps the system Dovecot
    // from starting, for the length of the install.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n")?;
        run(Command::new("chmod").arg("755").arg(policy))?;
    }
    let result = run(Command::new("apt-get").args(["update", "-q"])).and_then(|_| {
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", "dovecot-imapd"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    });
    if ours {
        std::fs::remove_file(policy)?;
    }
    result
}

/// Dovecot as `nobody` with everything under `dir` (its certificate too),
/// IMAPS on 127.0.0.1:`port`.
fn start_dovecot(dir: &Path, port: u16) -> Result<Running> {
    let id = |flag: &str| -> Result<String> {
        let out = Command::new("id").arg(flag).arg("nobody").output()?;
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    };
    let (uid, gid, group) = (id("-u")?, id("-g")?, id("-gn")?);
    let d = dir.display();
    std::fs::create_dir_all(dir.join("run"))?;
    std::fs::create_dir_all(dir.join("state"))?;
    std::fs::write(
        dir.join("passwd"),
        format!("{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{d}::\n"),
    )?;
    std::fs::write(
        dir.join("dovecot.conf"),
        format!(
            r#"protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log
ssl = required
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
default_login_user = nobody
default_internal_user = nobody
default_internal_group = {group}
default_process_limit = 2000
default_client_limit = 5000
default_vsz_limit = 0
mail_location = maildir:{d}/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
}}
protocol imap {{
  mail_max_userip_connections = 100000
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"#
        ),
    )?;
    run(Command::new("chown").args(["-R", &format!("{uid}:{gid}")]).arg(dir))?;
    let child = Command::new("setpriv")
        .args([
            "--reuid",
            &uid,
            "--regid",
            &gid,
            "--clear-groups",
            "/usr/sbin/dovecot",
            "-F",
            "-c",
        ])
        .arg(dir.join("dovecot.conf"))
        .spawn()
        .context("start dovecot")?;
    Ok(Running(child))
}

/// One server measured: the throughput run, then the idle connections (kB each).
async fn measure(port: u16, server: u32, l: &ImapLoad) -> Result<(RunFigures, f64, String)> {
    let (figures, latencies) = throughput(port, server, l.clients, l.seconds).await?;
    let kb = idle_cost(port, server, l.idle).await?;
    Ok((figures, kb, latencies))
}

/// mta (IMAPS, with the certificate mtactl made) on a fresh copy of `seed`.
fn mta_round(rt: &tokio::runtime::Runtime, dir: &Path, seed: &Path, l: &ImapLoad) -> Result<(RunFigures, f64, String)> {
    let imap_port = free_port()?;
    let mta = start_mta(dir, imap_port - 143)?;
    wait_port(imap_port - 143 + 25)?;
    run(Command::new("cp")
        .args(["-a", "--"])
        .arg(seed.join("cur"))
        .arg(mta_maildir(dir)))?;
    let imaps_port = imap_port - 143 + 993;
    wait_port(imaps_port)?;
    rt.block_on(measure(imaps_port, mta.pid, l))
}

/// Dovecot on a fresh copy of `seed`, with the certificate of mta's run in `certs`.
fn dovecot_round(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    seed: &Path,
    certs: &Path,
    l: &ImapLoad,
) -> Result<(RunFigures, f64, String)> {
    std::fs::create_dir_all(dir.join("Maildir"))?;
    for sub in ["cur", "new", "tmp"] {
        run(Command::new("cp")
            .args(["-a", "--"])
            .arg(seed.join(sub))
            .arg(dir.join("Maildir")))?;
    }
    for pem in ["cert.pem", "key.pem"] {
        std::fs::copy(certs.join(pem), dir.join(pem))?;
    }
    let port = free_port()?;
    let dovecot = start_dovecot(dir, port)?;
    wait_port(port)?;
    let measured = rt.block_on(measure(port, dovecot.0.id(), l));
    // SIGTERM lets Dovecot's master stop its children.
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(dovecot.0.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_secs(1));
    measured
}

pub fn imap(l: &ImapLoad) -> Result<()> {
    ensure_dovecot()?;
    run(crate::cargo().args(["build", "--release", "--quiet", "-p", "mta", "--bins"]))?;
    crate::measure::raise_nofile(65536);
    let work: PathBuf = tempfile::tempdir()?.keep();
    // Dovecot runs as nobody and must reach its directory.
    run(Command::new("chmod").arg("755").arg(&work))?;
    let seed = work.join("seed");
    generate_maildir(&seed, l.messages)?;
    println!(
        "{} messages; {} clients for {} s each doing FETCH header, FETCH body, SEARCH, STORE, APPEND, IDLE \
         in turn; {} idle connections; {} rounds, mta and dovecot alternating",
        l.messages, l.clients, l.seconds, l.idle, l.rounds
    );
    let rt = tokio::runtime::Runtime::new()?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_kb, mut their_kb) = (Vec::new(), Vec::new());
    for round in 1..=l.rounds {
        let mta_dir = scratch(&work, "mta")?;
        let (f, kb, latencies) = mta_round(&rt, &mta_dir, &seed, l)?;
        print_run("mta", round, "op", &f);
        println!("           {kb:.1} kB per idle connection; {latencies}");
        ours.push(f);
        our_kb.push(kb);
        settle();
        let (f, kb, latencies) = dovecot_round(&rt, &scratch(&work, "dovecot")?, &seed, &mta_dir, l)?;
        print_run("dovecot", round, "op", &f);
        println!("           {kb:.1} kB per idle connection; {latencies}");
        theirs.push(f);
        their_kb.push(kb);
        settle();
    }
    let (ours_kb, theirs_kb) = (Spread::of(our_kb).median, Spread::of(their_kb).median);
    println!("memory per idle connection, medians: mta {ours_kb:.1} kB, dovecot {theirs_kb:.1} kB");
    print_summary(("mta", &ours), ("dovecot", &theirs), "op", 1.5);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
