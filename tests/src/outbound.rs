//! Helpers for the outbound delivery tests: a sending mta for
//! `sender.test` that resolves through the loopback DNS server, and
//! scripted SMTP peers that answer as a script says, record what they saw
//! and count their connections (in all and at once).

use crate::dns::DnsServer;
use crate::mta::{MtaSetup, run_ok, smtp};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SENDER: &str = "alice@sender.test";

/// A sending mta for `sender.test` resolving through `dns`, MX port `port`,
/// loopback allowed to relay; `queue` sets keys of `[queue]` (key, value).
pub fn sender(dns: &DnsServer, port: u16, queue: &[(&str, &str)]) -> MtaSetup {
    let s = MtaSetup::new();
    s.edit("hostname = \"mx.test\"", "hostname = \"out.sender.test\"");
    s.edit("domains = [\"example.test\"]", "domains = [\"sender.test\"]");
    s.edit("networks = []", "networks = [\"127.0.0.0/8\"]");
    let text = std::fs::read_to_string(&s.config).unwrap();
    let (before, after) = text.split_once("[queue]\n").unwrap();
    let (section, rest) = after.split_once("\n[").unwrap();
    let section: Vec<String> = section
        .lines()
        .map(
            |l| match queue.iter().find(|(k, _)| l.starts_with(&format!("{k} = "))) {
                Some((k, v)) => format!("{k} = \"{v}\""),
                None => l.to_string(),
            },
        )
        .collect();
    std::fs::write(&s.config, format!("{before}[queue]\n{}\n\n[{rest}", section.join("\n"))).unwrap();
    s.use_dns(dns.addr, port);
    s.add_user(SENDER, "pw");
    s
}

/// Submit a message from alice to `rcpts` over SMTP.
pub fn send(setup: &MtaSetup, rcpts: &[&str], subject: &str) {
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{SENDER}>")).unwrap().code, 250);
    for r in rcpts {
        assert_eq!(c.cmd(&format!("RCPT TO:<{r}>")).unwrap().code, 250, "{r}");
    }
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    let body = format!(
        "From: <{SENDER}>\r\nTo: <{}>\r\nSubject: {subject}\r\n\r\nhello\r\n..line starting with a dot\r\n.",
        rcpts[0]
    );
    assert_eq!(c.cmd(&body).unwrap().code, 250);
    let _ = c.cmd("QUIT");
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn queue_is_empty(setup: &MtaSetup) -> bool {
    run_ok(&mut setup.command("mailq")).contains("Mail queue is empty")
}

/// What a scripted peer does with one command (`.` stands for the message).
pub enum Act {
    Reply(&'static str),
    /// Reply after 0.7 s (keeps the session busy).
    Slow(&'static str),
    /// Close the connection without a reply.
    Drop,
    /// Never answer.
    Stall,
}

/// A scripted SMTP server: `script(connection number, command)` decides
/// each answer; every command and message it saw is recorded.
pub struct Peer {
    seen: Arc<Mutex<Vec<String>>>,
    sessions: Arc<Sessions>,
}

/// Connections a peer took: in all, open now, and the most open at once.
#[derive(Default)]
struct Sessions {
    total: AtomicUsize,
    open: AtomicUsize,
    most: AtomicUsize,
}

/// Counts a connection as open while it lives.
struct Open(Arc<Sessions>);

impl Open {
    fn new(s: &Arc<Sessions>) -> Open {
        s.total.fetch_add(1, Ordering::SeqCst);
        let now = s.open.fetch_add(1, Ordering::SeqCst) + 1;
        s.most.fetch_max(now, Ordering::SeqCst);
        Open(Arc::clone(s))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Peer {
    pub fn start(addr: SocketAddr, script: fn(usize, &str) -> Act) -> Peer {
        let listener = TcpListener::bind(addr).unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let sessions: Arc<Sessions> = Arc::default();
        let log = Arc::clone(&seen);
        let counts = Arc::clone(&sessions);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut out) = stream else { return };
                let log = Arc::clone(&log);
                let open = Open::new(&counts);
                std::thread::spawn(move || {
                    let _open = open;
                    let mut input = BufReader::new(out.try_clone().unwrap());
                    let _ = out.write_all(b"220 peer.test ESMTP\r\n");
                    let mut line = String::new();
                    // Accepted recipients of the transaction: DATA without any gets 554.
                    let mut accepted = 0;
                    loop {
                        line.clear();
                        if input.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        let upper = cmd.to_ascii_uppercase();
                        let act = if upper == "DATA" && accepted == 0 {
                            Act::Reply("554 5.5.1 no valid recipients")
                        } else if upper == "DATA" {
                            log.lock().unwrap().push(cmd);
                            accepted = 0;
                            let _ = out.write_all(b"354 go\r\n");
                            let mut msg = String::new();
                            loop {
                                line.clear();
                                if input.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                                    break;
                                }
                                msg.push_str(&line);
                            }
                            log.lock().unwrap().push(format!("MESSAGE {msg}"));
                            script(n, ".")
                        } else {
                            log.lock().unwrap().push(cmd.clone());
                            let act = script(n, &upper);
                            if upper.starts_with("RCPT") && matches!(act, Act::Reply(r) if r.starts_with('2')) {
                                accepted += 1;
                            }
                            if upper == "RSET" {
                                accepted = 0;
                            }
                            act
                        };
                        match act {
                            Act::Reply(r) => {
                                let _ = out.write_all(format!("{r}\r\n").as_bytes());
                                if upper == "QUIT" {
                                    return;
                                }
                            }
                            Act::Slow(r) => {
                                std::thread::sleep(Duration::from_millis(700));
                                let _ = out.write_all(format!("{r}\r\n").as_bytes());
                            }
                            Act::Drop => return,
                            Act::Stall => std::thread::sleep(Duration::from_secs(3600)),
                        }
                    }
                });
            }
        });
        Peer { seen, sessions }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.sessions.total.load(Ordering::SeqCst)
    }

    /// The most connections that were open at the same time.
    pub fn most_at_once(&self) -> usize {
        self.sessions.most.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    pub fn messages(&self) -> usize {
        self.seen().iter().filter(|l| l.starts_with("MESSAGE ")).count()
    }
}

/// A DNS server giving `host` the address 127.0.0.`octet`, a scripted peer
/// there, and a sender using both (`queue` as for `sender`).
pub fn scripted_host(
    host: &str,
    octet: u8,
    script: fn(usize, &str) -> Act,
    queue: &[(&str, &str)],
) -> (DnsServer, Peer, MtaSetup) {
    let dns = DnsServer::start();
    let port = crate::free_port();
    dns.a(host, Ipv4Addr::new(127, 0, 0, octet));
    let peer = Peer::start(SocketAddr::from(([127, 0, 0, octet], port)), script);
    let tx = sender(&dns, port, queue);
    (dns, peer, tx)
}

/// The usual answers of a server that takes everything.
pub fn accept_all(_: usize, cmd: &str) -> Act {
    match cmd {
        c if c.starts_with("EHLO") => Act::Reply("250-peer.test\r\n250-PIPELINING\r\n250 SIZE 100000"),
        "." => Act::Reply("250 2.0.0 queued as X1"),
        "QUIT" => Act::Reply("221 bye"),
        _ => Act::Reply("250 ok"),
    }
}

/// A server whose every mailbox is busy: each RCPT gets 450.
pub fn always_later(conn: usize, cmd: &str) -> Act {
    if cmd.starts_with("RCPT") {
        Act::Reply("450 4.2.0 mailbox busy")
    } else {
        accept_all(conn, cmd)
    }
}

/// The queue id of the message for `rcpt`, from `mtactl queue list --json`.
pub fn queue_id(setup: &MtaSetup, rcpt: &str) -> String {
    let json = run_ok(setup.command("mtactl").args(["queue", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["recipients"][0]["address"] == rcpt)
        .unwrap_or_else(|| panic!("{rcpt} not queued: {json}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}
