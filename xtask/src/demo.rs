//! `cargo xtask demo`: greyd in proxy mode on loopback in front of a minimal
//! upstream MTA, so a new user can watch greylisting happen.
//!
//! The upstream here is a small SMTP sink that decodes greyd's PROXY v2
//! header and prints each message with the real client address; it stands in
//! for the mta until that is wired into the demo.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{root, run};

const GREYD_PORT: u16 = 2525;

pub fn run_demo() -> Result<()> {
    run(crate::cargo().args(["build", "--quiet", "-p", "greyd", "--bins"]))?;
    let dir = root().join("target").join("demo");
    std::fs::create_dir_all(&dir)?;
    let upstream = TcpListener::bind("127.0.0.1:0").context("bind the demo upstream")?;
    let up_addr = upstream.local_addr()?;
    std::thread::spawn(move || {
        for conn in upstream.incoming().flatten() {
            std::thread::spawn(move || {
                if let Err(e) = sink(conn) {
                    println!("[upstream] session ended: {e}");
                }
            });
        }
    });
    let control = dir.join("greyd.sock");
    let greydb = root().join("target/debug/greydb");
    println!(
        "\ngreyd listens on 127.0.0.1:{GREYD_PORT} (pass time 30 s) and passes whitelisted clients to {up_addr}.\n\
         In another terminal:\n\
         \x20 swaks --server 127.0.0.1:{GREYD_PORT} --to you@example.org     # greylisted: 451\n\
         \x20 {greydb} --control {control}   # the GREY tuple\n\
         \x20 sleep 30; swaks --server 127.0.0.1:{GREYD_PORT} --to you@example.org   # retried: whitelisted\n\
         \x20 swaks --server 127.0.0.1:{GREYD_PORT} --to you@example.org     # delivered through greyd\n\
         Ctrl-C stops the demo.\n",
        control = control.display(),
        greydb = greydb.display(),
    );
    let status = Command::new(root().join("target/debug/greyd"))
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
        .arg("--upstream")
        .arg(up_addr.to_string())
        .arg("--db")
        .arg(dir.join("greyd.db"))
        .arg("--control")
        .arg(&control)
        .status()
        .context("start greyd")?;
    anyhow::ensure!(status.success(), "greyd exited with {status}");
    Ok(())
}

/// A minimal SMTP receiver: reads the PROXY v2 header, accepts everything, prints messages.
fn sink(conn: TcpStream) -> Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = [0u8; 16];
    reader.read_exact(&mut head)?;
    let mut addrs = vec![0u8; usize::from(u16::from_be_bytes([head[14], head[15]]))];
    reader.read_exact(&mut addrs)?;
    let client: IpAddr = match head[13] {
        0x11 => IpAddr::from(<[u8; 4]>::try_from(&addrs[..4])?),
        _ => IpAddr::from(<[u8; 16]>::try_from(&addrs[..16])?),
    };
    let mut out = conn;
    out.write_all(b"220 demo-upstream ESMTP\r\n")?;
    let mut line = String::new();
    let mut in_data = false;
    while reader.read_line(&mut line)? > 0 {
        let cmd = line.trim_end().to_string();
        line.clear();
        if in_data {
            if cmd == "." {
                in_data = false;
                out.write_all(b"250 2.0.0 accepted by the demo upstream\r\n")?;
            } else {
                println!("[upstream] {client} | {cmd}");
            }
            continue;
        }
        let verb = cmd.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => b"250 ok\r\n",
        };
        out.write_all(reply)?;
    }
    Ok(())
}
