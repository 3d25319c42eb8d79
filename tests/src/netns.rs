//! Network namespaces for tests that need a kernel filter: a server and a
//! client namespace joined by a veth pair, with addresses that exist only
//! inside them. Everything is deleted on drop.
//!
//! These tests need root. Outside CI they are skipped with a message; under
//! CI (`CI` set) a missing capability fails the test loudly.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether this process may create namespaces; panics under CI when it may not.
pub fn have_root(test: &str) -> bool {
    let root = nix_is_root() && Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs root and iproute2, and CI must provide them"
        );
        eprintln!("skipping {test}: needs root and iproute2");
    }
    root
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    fn new(role: &str) -> Netns {
        let name = format!(
            "gt{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// A namespace of its own with `addrs` (`address/prefix`) on a veth pair
    /// whose both ends stay inside it: many source addresses of one network
    /// (an IPv6 /64, say) that only this namespace can reach.
    pub fn with_addresses(addrs: &[&str]) -> Netns {
        let ns = Netns::new("addr");
        ip(&[
            "-n", &ns.name, "link", "add", "ga", "type", "veth", "peer", "name", "gb",
        ]);
        for addr in addrs {
            ip(&["-n", &ns.name, "addr", "add", addr, "dev", "ga", "nodad"]);
        }
        ip(&["-n", &ns.name, "link", "set", "ga", "up"]);
        ip(&["-n", &ns.name, "link", "set", "gb", "up"]);
        ns
    }

    /// A command that runs inside the namespace (nsenter execs it, so its PID is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name)).arg(program);
        cmd
    }

    /// Run `program args` inside the namespace and return its stdout.
    pub fn output(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().expect("run in namespace");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `f` on a thread that has entered this namespace (sockets it makes live there).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open namespace");
            // SAFETY: setns on a namespace fd; affects only this thread.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A server namespace (`server_ip` on its veth end) and a client namespace
/// with `client_ips`, on one /24.
pub struct Pair {
    pub server: Netns,
    pub client: Netns,
    pub server_ip: IpAddr,
    /// The server's end of the veth pair (where XDP attaches).
    pub server_if: String,
}

impl Pair {
    pub fn new(server_ips: &[&str], client_ips: &[&str]) -> Pair {
        let (server, client) = (Netns::new("srv"), Netns::new("cli"));
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (
            format!("gv{}s{n}", std::process::id() % 10000),
            format!("gv{}c{n}", std::process::id() % 10000),
        );
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "netns", &server.name]);
        ip(&["link", "set", &b, "netns", &client.name]);
        for addr in server_ips {
            ip(&["-n", &server.name, "addr", "add", &format!("{addr}/24"), "dev", &a]);
        }
        for addr in client_ips {
            ip(&["-n", &client.name, "addr", "add", &format!("{addr}/24"), "dev", &b]);
        }
        ip(&["-n", &server.name, "link", "set", &a, "up"]);
        ip(&["-n", &client.name, "link", "set", &b, "up"]);
        Pair {
            server_ip: server_ips[0].parse().unwrap(),
            server,
            client,
            server_if: a,
        }
    }

    /// Connect from `from` (a client address) to `to` inside the client namespace.
    pub fn connect(&self, from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
        let from: IpAddr = from.parse().unwrap();
        self.client
            .run(move || crate::connect_from(from, to))
            .join()
            .expect("client thread")
    }
}

impl Pair {
    /// The first reply a client at `from` gets on `to` (None: nothing answered).
    pub fn banner(&self, from: &str, to: SocketAddr) -> Option<crate::Reply> {
        let s = self.connect(from, to).ok()?;
        crate::SmtpClient::new(s, Duration::from_secs(3)).reply().ok()
    }

    /// One greylisting attempt from `from` against greyd on `to`; the reply code to DATA.
    pub fn attempt(&self, from: &str, to: SocketAddr) -> u16 {
        let s = self.connect(from, to).expect("connect");
        let mut c = crate::SmtpClient::new(s, Duration::from_secs(10));
        assert!(c.reply().unwrap().text().contains("spamd"), "greyd answers");
        c.cmd("EHLO client.example").unwrap();
        c.cmd("MAIL FROM:<a@client.example>").unwrap();
        c.cmd("RCPT TO:<b@here.example>").unwrap();
        c.cmd("DATA").unwrap().code
    }
}

/// A stand-in MTA inside `ns` on `port` that greets with `220 real MTA`.
pub fn real_mta(ns: &Netns, port: u16) {
    let ready = ns.run(move || {
        let l = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind the MTA's port");
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let _ = std::io::Write::write_all(&mut &c, b"220 real MTA\r\n");
            }
        });
    });
    ready.join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
}
