//! `cargo xtask bench smtp`: Postfix's smtp-source sends the same load to
//! our `mta` (release build, Maildir delivery, fsync on) and to a private
//! Postfix instance on loopback (its own config and queue directories,
//! virtual(8) delivery to Maildir), one after the other in the same run.
//! A run counts from the first connection until every message is in the
//! Maildir. The two alternate (mta, Postfix, mta, …) for `--rounds` rounds
//! each, every run in fresh directories with a `sync` and a pause between
//! runs; both run under strace's sync log (see `measure`). Needs root
//! (Postfix's master) and the Debian packages postfix and strace; the
//! system's own Postfix service is neither used nor touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::measure::{RunFigures, SyncLog, Traced, Window, print_run, print_summary, scratch, settle};
use crate::{root, run};

/// The smtp-source load of the `smtp` and `relay` benchmarks.
#[derive(clap::Args)]
pub struct Load {
    #[arg(long, default_value_t = 5000)]
    pub messages: usize,
    /// Parallel SMTP sessions.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// Runs of each server, alternating.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

const DOMAIN: &str = "example.test";
pub(crate) const RCPT: &str = "alice@example.test";

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn wait_port(port: u16) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > end {
            bail!("nothing listens on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// smtp-source against `port`, until `maildir_new` holds all the messages.
fn load(port: u16, maildir_new: &Path, l: &Load) -> Result<()> {
    smtp_source(port, l, RCPT)?;
    wait_files(maildir_new, l.messages)
}

/// Send the load to `rcpt` with smtp-source.
pub(crate) fn smtp_source(port: u16, l: &Load, rcpt: &str) -> Result<()> {
    run(Command::new("smtp-source")
        .args([
            "-c",
            "-l",
            &l.size.to_string(),
            "-m",
            &l.messages.to_string(),
            "-s",
            &l.sessions.to_string(),
        ])
        .args(["-f", "bench@remote.test", "-t", rcpt, &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null()))
}

/// Wait (at most 10 minutes) until `dir` holds `n` entries.
pub(crate) fn wait_files(dir: &Path, n: usize) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(600);
    while count(dir) < n {
        if Instant::now() > end {
            bail!("only {} of {n} messages delivered to {}", count(dir), dir.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Both servers exist and mta's release build is fresh.
pub(crate) fn prepare() -> Result<()> {
    for tool in ["smtp-source", "smtp-sink", "postfix", "strace"] {
        if Command::new("which")
            .arg(tool)
            .output()
            .map_or(true, |o| !o.status.success())
        {
            bail!("{tool} not found: apt-get install postfix strace (both are in .ci/apt-packages.txt)");
        }
    }
    run(crate::cargo().args(["build", "--release", "--quiet", "-p", "mta", "--bins"]))
}

/// A child process killed (by PID) on drop.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mtactl init` in `dir` with every port moved by `offset`, the bench user
/// (password "bench"), and the daemon (release build) started.
pub(crate) fn start_mta(dir: &Path, offset: u16) -> Result<Traced> {
    run_mta(&init_mta(dir, offset)?)
}

/// `mtactl init` in `dir` as for `start_mta`; returns the config file.
pub(crate) fn init_mta(dir: &Path, offset: u16) -> Result<PathBuf> {
    let bin = root().join("target/release");
    run(Command::new(bin.join("mtactl"))
        .args(["init", "--root"])
        .arg(dir)
        .args([
            "--hostname",
            "mta-bench.test",
            "--domain",
            DOMAIN,
            "--port-offset",
            &offset.to_string(),
        ]))?;
    let config = dir.join("mta.toml");
    // The load comes from one loopback address: lift the per-client caps a
    // real server keeps. The Postfix peer checks no SPF, DKIM or DMARC, so
    // neither does mta here (nor waits for a resolver the bench has not got).
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        text.replace("max_connections_per_client = 50", "max_connections_per_client = 100000")
            .replace("[auth_checks]\nenabled = true", "[auth_checks]\nenabled = false"),
    )?;
    let mut child = Command::new(bin.join("mtactl"))
        .args(["user", "add", RCPT, "--password-stdin", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"bench\n")?;
    if !child.wait()?.success() {
        bail!("mtactl user add failed");
    }
    Ok(config)
}

/// The daemon (release build) on `config`, its sync calls logged beside it.
pub(crate) fn run_mta(config: &Path) -> Result<Traced> {
    Traced::spawn(config.with_file_name("syncs.log"), |cmd| {
        cmd.arg(root().join("target/release/mta"))
            .arg("--config")
            .arg(config)
            .env("MTA_LOG", "warn");
    })
}

/// The Maildir of the bench user under an mta root.
pub(crate) fn mta_maildir(dir: &Path) -> PathBuf {
    dir.join("mail").join(DOMAIN).join("alice")
}

fn mta(dir: &Path, l: &Load) -> Result<RunFigures> {
    let port = free_port()?;
    let daemon = start_mta(dir, port - 25)?;
    wait_port(port)?;
    let window = Window::measure(daemon.pid, || load(port, &mta_maildir(dir).join("new"), l))?;
    window.figures(&daemon.finish(), l.messages)
}

fn postconf(dir: &Path, settings: &[String]) -> Result<()> {
    run(Command::new("postconf").arg("-c").arg(dir).arg("-e").args(settings))
}

/// A private Postfix instance (`postfix -c DIR`) under strace's sync log, stopped on drop.
pub(crate) struct Postfix {
    dir: PathBuf,
    traced: Option<Traced>,
}

impl Postfix {
    /// Postfix of its own in `dir` (own config, queue and data directories,
    /// no chroot), smtpd on 127.0.0.1:`port`, `settings` added to main.cf.
    pub(crate) fn start(dir: &Path, port: u16, settings: &[String]) -> Result<Postfix> {
        for d in ["spool", "data"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        run(Command::new("chown").arg("postfix").arg(dir.join("data")))?;
        std::fs::write(dir.join("main.cf"), "")?;
        std::fs::copy("/usr/share/postfix/master.cf.dist", dir.join("master.cf"))
            .or_else(|_| std::fs::copy("/etc/postfix/master.cf", dir.join("master.cf")))?;
        let p = |s: &Path| s.display().to_string();
        let mut all = vec![
            "compatibility_level=3.6".into(),
            format!("queue_directory={}", p(&dir.join("spool"))),
            format!("data_directory={}", p(&dir.join("data"))),
            "mydestination=".into(),
            "inet_interfaces=127.0.0.1".into(),
            "inet_protocols=ipv4".into(),
            "mynetworks=127.0.0.0/8".into(),
            format!("maillog_file={}", p(&dir.join("maillog"))),
            format!("maillog_file_prefixes={}", p(dir)),
            "smtpd_banner=$myhostname ESMTP".into(),
        ];
        all.extend_from_slice(settings);
        postconf(dir, &all)?;
        // Its own port, and no chroot (the private queue has no chroot files).
        run(Command::new("postconf").arg("-c").arg(dir).args(["-M#", "smtp/inet"]))?;
        run(Command::new("postconf").arg("-c").arg(dir).args([
            "-M",
            &format!("127.0.0.1:{port}/inet=127.0.0.1:{port} inet n - n - - smtpd"),
        ]))?;
        run(Command::new("postconf").arg("-c").arg(dir).args(["-F", "*/*/chroot=n"]))?;
        let traced = Traced::spawn(dir.join("syncs.log"), |cmd| {
            cmd.arg("postfix").arg("-c").arg(dir).arg("start");
        })?;
        Ok(Postfix {
            dir: dir.to_path_buf(),
            traced: Some(traced),
        })
    }

    /// The master's PID (from its pid file, once `postfix start` has written it).
    pub(crate) fn master_pid(&self) -> Result<u32> {
        let file = self.dir.join("spool/pid/master.pid");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            match std::fs::read_to_string(&file).map(|t| t.trim().parse::<u32>()) {
                Ok(Ok(pid)) if Path::new(&format!("/proc/{pid}")).exists() => return Ok(pid),
                _ if Instant::now() > end => bail!("Postfix wrote no {}", file.display()),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Stop Postfix and hand over its complete sync log.
    pub(crate) fn finish(mut self) -> SyncLog {
        self.stop();
        self.traced.take().expect("running").finish()
    }

    fn stop(&self) {
        let _ = Command::new("postfix").arg("-c").arg(&self.dir).arg("stop").status();
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.traced.is_some() {
            self.stop();
        }
    }
}

/// Postfix with virtual(8) delivery to the bench user's Maildir.
fn postfix(dir: &Path, l: &Load) -> Result<RunFigures> {
    let port = free_port()?;
    let (uid, gid) = (id("-u")?, id("-g")?);
    let vmail = dir.join("vmail");
    std::fs::create_dir_all(&vmail)?;
    run(Command::new("chown").arg(format!("{uid}:{gid}")).arg(&vmail))?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("vmailbox"), format!("{RCPT} {DOMAIN}/alice/\n"))?;
    let p = |s: &Path| s.display().to_string();
    let instance = Postfix::start(
        dir,
        port,
        &[
            "myhostname=postfix-bench.test".into(),
            format!("virtual_mailbox_domains={DOMAIN}"),
            format!("virtual_mailbox_base={}", p(&vmail)),
            format!("virtual_mailbox_maps=texthash:{}", p(&dir.join("vmailbox"))),
            format!("virtual_uid_maps=static:{uid}"),
            format!("virtual_gid_maps=static:{gid}"),
            "virtual_minimum_uid=1".into(),
        ],
    )?;
    wait_port(port)?;
    let window = Window::measure(instance.master_pid()?, || {
        load(port, &vmail.join(DOMAIN).join("alice/new"), l)
    })?;
    window.figures(&instance.finish(), l.messages)
}

fn id(flag: &str) -> Result<String> {
    let out = Command::new("id").arg(flag).arg("nobody").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// `rounds` runs of each, alternating, in fresh directories under `work`
/// with the disk settled between runs; then the medians and the ratio.
pub(crate) fn alternate_mta_postfix(
    work: &Path,
    l: &Load,
    mta: fn(&Path, &Load) -> Result<RunFigures>,
    postfix: fn(&Path, &Load) -> Result<RunFigures>,
) -> Result<()> {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=l.rounds {
        let f = mta(&scratch(work, "mta")?, l)?;
        print_run("mta", round, "msg", &f);
        ours.push(f);
        settle();
        let f = postfix(&scratch(work, "postfix")?, l)?;
        print_run("postfix", round, "msg", &f);
        theirs.push(f);
        settle();
    }
    print_summary(("mta", &ours), ("postfix", &theirs), "msg", 2.0);
    Ok(())
}

pub fn smtp(l: &Load) -> Result<()> {
    prepare()?;
    let work: PathBuf = tempfile::tempdir()?.keep();
    println!(
        "{} messages of {} bytes, {} parallel sessions, Maildir delivery with fsync; {} rounds, mta and postfix alternating",
        l.messages, l.size, l.sessions, l.rounds
    );
    alternate_mta_postfix(&work, l, mta, postfix)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
