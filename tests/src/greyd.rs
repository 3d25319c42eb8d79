//! Running greyd for a test: its own directory, port, database and control
//! socket; and an upstream (a plain TCP listener in the MTA's place) that
//! decodes the PROXY v2 header greyd sends it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use crate::{Daemon, SmtpClient, bin, connect_from, free_port};

/// Greylisting a test can wait out: a 1 s pass time (1 h grey, 1 d white
/// expiry) and no stutter.
pub const QUICK_GREYLISTING: [&str; 6] = ["-G", "1s:1h:1d", "-S", "0", "-s", "0"];

/// A greyd process with its files in a temporary directory.
pub struct Greyd {
    pub daemon: Daemon,
    pub port: u16,
    pub dir: PathBuf,
    pub args: Vec<String>,
    /// The network namespace greyd runs in, if not the test's own.
    netns: Option<String>,
}

impl Greyd {
    /// Start greyd on 127.0.0.1 (plus `extra` arguments) in `dir`.
    pub fn start(dir: &Path, extra: &[&str]) -> Greyd {
        Greyd::start_on(dir, free_port(), extra)
    }

    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Greyd {
        Greyd::start_in(None, dir, port, extra)
    }

    /// Start greyd inside the network namespace `netns` (listening on all its addresses unless `-l` is given).
    pub fn start_in(netns: Option<&crate::netns::Netns>, dir: &Path, port: u16, extra: &[&str]) -> Greyd {
        let mut args: Vec<String> = vec!["-d".into(), "-p".into(), port.to_string()];
        if !extra.contains(&"-l") && netns.is_none() {
            args.extend(["-l".into(), "127.0.0.1".into()]);
        }
        args.extend(["--db".into(), dir.join("greyd.db").display().to_string()]);
        args.extend(["--control".into(), dir.join("greyd.sock").display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let netns = netns.map(|n| n.name.clone());
        let daemon = launch(netns.as_deref(), &args);
        Greyd {
            daemon,
            port,
            dir: dir.to_path_buf(),
            args,
            netns,
        }
    }

    /// Stop (SIGTERM) and start again with the same arguments.
    pub fn restart(&mut self) {
        self.daemon.terminate();
        self.daemon = launch(self.netns.as_deref(), &self.args);
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn control_path(&self) -> PathBuf {
        self.dir.join("greyd.sock")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("greyd.db")
    }

    /// Open an SMTP session from `from` and read the banner.
    pub fn smtp_from(&self, from: &str) -> (SmtpClient, crate::Reply) {
        self.smtp_to(from, self.addr())
    }

    pub fn smtp_to(&self, from: &str, to: SocketAddr) -> (SmtpClient, crate::Reply) {
        let stream = connect_from(from.parse().unwrap(), to).expect("connect to greyd");
        let mut c = SmtpClient::new(stream, Duration::from_secs(30));
        let banner = c.reply().expect("banner");
        (c, banner)
    }

    /// One raw JSON request on the control socket; returns the JSON response line.
    pub fn control(&self, request: &str) -> String {
        let mut s = UnixStream::connect(self.control_path()).expect("control socket");
        s.write_all(request.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    }

    /// Run greydb against this greyd (through its control socket) and return stdout.
    pub fn greydb(&self, args: &[&str]) -> String {
        let control = self.control_path();
        let out = Command::new(bin("greydb"))
            .args(args)
            .arg("--control")
            .arg(&control)
            .output()
            .expect("run greydb");
        assert!(
            out.status.success(),
            "greydb {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Run greyd with `args`, inside the named namespace if given, and wait until it is ready.
fn launch(netns: Option<&str>, args: &[String]) -> Daemon {
    let mut cmd = match netns {
        // nsenter changes only the network namespace, so pins under /sys/fs/bpf stay visible.
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg(bin("greyd"));
            c
        }
        None => Command::new(bin("greyd")),
    };
    cmd.args(args);
    let daemon = Daemon::spawn(cmd);
    daemon.wait_log("greyd ready", Duration::from_secs(20));
    daemon
}

/// Send one greylisting attempt (EHLO, MAIL, RCPT, DATA) and return the DATA reply code.
pub fn attempt(g: &Greyd, from_ip: &str, sender: &str, rcpt: &str) -> u16 {
    attempt_to(g, from_ip, g.addr(), sender, rcpt)
}

pub fn attempt_to(g: &Greyd, from_ip: &str, to: SocketAddr, sender: &str, rcpt: &str) -> u16 {
    let (mut c, banner) = g.smtp_to(from_ip, to);
    assert_eq!(banner.code, 220, "{banner:?}");
    assert_eq!(c.cmd("EHLO client.example").unwrap().code, 250);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{sender}>")).unwrap().code, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")).unwrap().code, 250);
    c.cmd("DATA").unwrap().code
}

/// What an upstream received on one connection: the PROXY v2 header's
/// source and destination, and the bytes that followed.
#[derive(Debug)]
pub struct Proxied {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// A stand-in MTA: accepts connections, decodes the PROXY v2 header, answers
/// `220 upstream ready` and reports each header on the channel.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: mpsc::Receiver<Result<Proxied, String>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let result = read_proxy_v2(&mut conn);
                let _ = conn.write_all(b"220 upstream ready\r\n");
                if tx.send(result).is_err() {
                    return;
                }
            }
        });
        Upstream { addr, seen }
    }

    pub fn next(&self) -> Proxied {
        self.seen
            .recv_timeout(Duration::from_secs(10))
            .expect("upstream saw no connection")
            .expect("PROXY v2 header")
    }
}

/// Decode a PROXY protocol v2 header (TCP over IPv4 or IPv6).
pub fn read_proxy_v2(r: &mut impl Read) -> Result<Proxied, String> {
    let mut head = [0u8; 16];
    r.read_exact(&mut head).map_err(|e| e.to_string())?;
    if &head[..12] != b"\r\n\r\n\0\r\nQUIT\n" {
        return Err(format!("bad signature {:?}", &head[..12]));
    }
    if head[12] != 0x21 {
        return Err(format!("bad version/command {:#x}", head[12]));
    }
    let len = u16::from_be_bytes([head[14], head[15]]) as usize;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    let (src, dst, ports) = match head[13] {
        0x11 if len >= 12 => {
            let ip = |b: &[u8]| IpAddr::from(<[u8; 4]>::try_from(b).unwrap());
            (ip(&body[0..4]), ip(&body[4..8]), &body[8..12])
        }
        0x21 if len >= 36 => {
            let ip = |b: &[u8]| IpAddr::from(<[u8; 16]>::try_from(b).unwrap());
            (ip(&body[0..16]), ip(&body[16..32]), &body[32..36])
        }
        f => return Err(format!("unexpected family/protocol {f:#x} with length {len}")),
    };
    Ok(Proxied {
        src: SocketAddr::new(src, u16::from_be_bytes([ports[0], ports[1]])),
        dst: SocketAddr::new(dst, u16::from_be_bytes([ports[2], ports[3]])),
    })
}

/// Wait until `f` holds, polling; panics with `what` after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}
