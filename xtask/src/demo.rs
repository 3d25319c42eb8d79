//! `cargo xtask demo`: the whole stack on loopback, without root: mta (from
//! `mtactl init`, with a user alice@example.org) behind greyd in proxy mode,
//! so a new user sees greylisting happen, mail arrive in a Maildir, and
//! reads it back over IMAPS and POP3S.

use std::process::{Child, Command};

use anyhow::{Context, Result};

use crate::{root, run};

const GREYD_PORT: u16 = 2525;
/// mta's ports are 25+N, 587+N, …; greyd passes whitelisted clients to 25+N.
const PORT_OFFSET: u16 = 10000;

/// Ends the demo's daemons (by PID) when the demo stops.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn run_demo() -> Result<()> {
    run(crate::cargo().args(["build", "--quiet", "-p", "greyd", "-p", "mta", "--bins"]))?;
    let bin = |name: &str| root().join("target/debug").join(name);
    let dir = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    let mta_dir = dir.join("mta");
    let mta_conf = mta_dir.join("mta.toml");
    run(Command::new(bin("mtactl"))
        .args(["init", "--hostname", "mx.example.org", "--domain", "example.org"])
        .arg("--root")
        .arg(&mta_dir)
        .args(["--port-offset", &PORT_OFFSET.to_string()]))?;
    // Trust greyd's PROXY header, so mta sees the real client address.
    let conf = std::fs::read_to_string(&mta_conf)?;
    std::fs::write(
        &mta_conf,
        conf.replace("proxy_from = []", "proxy_from = [\"127.0.0.1\"]"),
    )?;
    let mut add = Command::new(bin("mtactl"))
        .args(["user", "add", "alice@example.org", "--password-stdin", "--config"])
        .arg(&mta_conf)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(add.stdin.as_mut().context("stdin")?, b"secret\n")?;
    anyhow::ensure!(add.wait()?.success(), "mtactl user add failed");

    let mut running = Running(Vec::new());
    running.0.push(
        Command::new(bin("mta"))
            .arg("--config")
            .arg(&mta_conf)
            .spawn()
            .context("start mta")?,
    );
    let control = dir.join("greyd.sock");
    println!(
        "\ngreyd listens on 127.0.0.1:{GREYD_PORT} (pass time 30 s) in front of mta on 127.0.0.1:{}.\n\
         In another terminal:\n\
         \x20 swaks --server 127.0.0.1:{GREYD_PORT} --to alice@example.org     # greylisted: 451\n\
         \x20 {greydb} --control {control}    # the GREY tuple\n\
         \x20 sleep 30; swaks --server 127.0.0.1:{GREYD_PORT} --to alice@example.org   # retried: whitelisted\n\
         \x20 swaks --server 127.0.0.1:{GREYD_PORT} --to alice@example.org     # delivered by mta\n\
         \x20 ls {maildir}\n\
         \x20 curl -k imaps://127.0.0.1:{imaps}/INBOX -u alice@example.org:secret -X 'FETCH 1:* (FLAGS ENVELOPE)'   # over IMAPS\n\
         \x20 curl -k pop3s://127.0.0.1:{pop3s}/1 -u alice@example.org:secret   # the first message over POP3S\n\
         Ctrl-C stops the demo.\n",
        25 + PORT_OFFSET,
        imaps = 993 + PORT_OFFSET,
        pop3s = 995 + PORT_OFFSET,
        control = control.display(),
        greydb = bin("greydb").display(),
        maildir = mta_dir.join("mail/example.org/alice/new").display(),
    );
    let mut greyd = Command::new(bin("greyd"))
        .args([
            "-d",
            "-l",
            "127.0.0.1",
            "-p",
            &GREYD_PORT.to_string(),
            "-G",
            "30s:4h:36d",
            "-S",
            "2",
        ])
        .args(["--upstream", &format!("127.0.0.1:{}", 25 + PORT_OFFSET)])
        .arg("--db")
        .arg(dir.join("greyd.db"))
        .arg("--control")
        .arg(&control)
        .spawn()
        .context("start greyd")?;
    let status = greyd.wait()?;
    anyhow::ensure!(status.success(), "greyd exited with {status}");
    Ok(())
}
