//! Helpers for the mta end-to-end tests: a configuration written by the real
//! `mtactl init` in a temporary directory, moved onto free loopback ports,
//! the daemon started on it, and readers for the mailboxes it fills.

use crate::{Daemon, SmtpClient, bin, free_port, wait_port};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const HOST: &str = "mx.test";
pub const DOMAIN: &str = "example.test";
const AUTH_CHECKS_ON: &str = "[auth_checks]\nenabled = true";
const AUTH_CHECKS_OFF: &str = "[auth_checks]\nenabled = false";
/// A loopback port where no DNS server listens.
const DEAD_DNS: &str = "127.0.0.1:9";
/// `mtactl init`'s ports are placeholders, replaced one by one with ports
/// from `free_port`; they lie outside its range (20000–32000), so a port
/// already put in can never be mistaken for a placeholder still to replace.
const PLACEHOLDER_OFFSET: &str = "40000";

/// A configuration directory made by `mtactl init`.
pub struct MtaSetup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub smtps: SocketAddr,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub pop3: SocketAddr,
    pub pop3s: SocketAddr,
    pub managesieve: SocketAddr,
    /// Webmail (HTTPS).
    pub web: SocketAddr,
}

/// Run a command and insist on success; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `cmd` with `input` on stdin.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

impl MtaSetup {
    pub fn new() -> MtaSetup {
        let dir = tempfile::tempdir().unwrap();
        run_ok(
            Command::new(bin("mtactl"))
                .args(["init", "--root"])
                .arg(dir.path())
                .args([
                    "--hostname",
                    HOST,
                    "--domain",
                    DOMAIN,
                    "--port-offset",
                    PLACEHOLDER_OFFSET,
                ]),
        );
        let config = dir.path().canonicalize().unwrap().join("mta.toml");
        let setup = MtaSetup {
            smtp: SocketAddr::from(([127, 0, 0, 1], free_port())),
            submission: SocketAddr::from(([127, 0, 0, 1], free_port())),
            smtps: SocketAddr::from(([127, 0, 0, 1], free_port())),
            imap: SocketAddr::from(([127, 0, 0, 1], free_port())),
            imaps: SocketAddr::from(([127, 0, 0, 1], free_port())),
            pop3: SocketAddr::from(([127, 0, 0, 1], free_port())),
            pop3s: SocketAddr::from(([127, 0, 0, 1], free_port())),
            managesieve: SocketAddr::from(([127, 0, 0, 1], free_port())),
            web: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir,
            config,
        };
        setup.edit("127.0.0.1:40025", &setup.smtp.to_string());
        setup.edit("127.0.0.1:40587", &setup.submission.to_string());
        setup.edit("127.0.0.1:40465", &setup.smtps.to_string());
        setup.edit("127.0.0.1:40143", &setup.imap.to_string());
        setup.edit("127.0.0.1:40993", &setup.imaps.to_string());
        setup.edit("127.0.0.1:40110", &setup.pop3.to_string());
        setup.edit("127.0.0.1:40995", &setup.pop3s.to_string());
        setup.edit("127.0.0.1:44190", &setup.managesieve.to_string());
        setup.edit("127.0.0.1:40443", &setup.web.to_string());
        // Never the host's resolvers: a test that routes mail starts its own
        // DNS server (`use_dns`); for the others lookups fail temporarily.
        setup.edit("nameservers = []", &format!("nameservers = [\"{DEAD_DNS}\"]"));
        // Test clients on port 25 are "other servers": without DNS every
        // inbound check would defer. Tests of them call `check_authentication`.
        setup.edit(AUTH_CHECKS_ON, AUTH_CHECKS_OFF);
        setup
    }

    /// Verify mail on port 25 (SPF, DKIM, DMARC, ...), as a fresh install does.
    pub fn check_authentication(&self) {
        self.edit(AUTH_CHECKS_OFF, AUTH_CHECKS_ON);
    }

    /// Resolve through `dns` and connect to MX hosts on `port`.
    pub fn use_dns(&self, dns: SocketAddr, port: u16) {
        self.edit(DEAD_DNS, &dns.to_string());
        self.edit("port = 25", &format!("port = {port}"));
    }

    /// Move the MX listener to `addr` (e.g. 127.0.0.2 for a second server).
    pub fn listen_smtp(&mut self, addr: SocketAddr) {
        self.edit(&self.smtp.to_string(), &addr.to_string());
        self.smtp = addr;
    }

    pub fn root(&self) -> &Path {
        self.config.parent().unwrap()
    }

    /// Replace `from` (which must occur) in mta.toml.
    pub fn edit(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "{from:?} not in mta.toml:\n{text}");
        std::fs::write(&self.config, text.replacen(from, to, 1)).unwrap();
    }

    /// Write one of the classic files (aliases, virtusertable, ...) in the root.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.root().join(name), text).unwrap();
    }

    pub fn add_user(&self, address: &str, password: &str) {
        let out = run_with_input(
            Command::new(bin("mtactl"))
                .args(["user", "add", address, "--password-stdin", "--config"])
                .arg(&self.config),
            format!("{password}\n").as_bytes(),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn start(&self) -> Daemon {
        let mut cmd = Command::new(bin("mta"));
        cmd.arg("--config").arg(&self.config);
        let daemon = Daemon::spawn(cmd);
        wait_port(self.smtp, Duration::from_secs(10));
        daemon
    }

    /// The Maildir of a virtual user.
    pub fn maildir(&self, address: &str) -> PathBuf {
        let (user, domain) = address.split_once('@').unwrap();
        self.root().join("mail").join(domain).join(user)
    }

    /// A command for one of our binaries with MTA_CONFIG set.
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(bin(name));
        cmd.env("MTA_CONFIG", &self.config);
        cmd
    }
}

impl Default for MtaSetup {
    fn default() -> Self {
        MtaSetup::new()
    }
}

/// One SMTP transaction, each step asserted 250 (354 for DATA); `mail` and
/// `rcpts` are the arguments as sent (`<a@b> RET=HDRS`). Returns the queue id.
pub fn send_transaction(addr: SocketAddr, mail: &str, rcpts: &[&str], body: &str) -> String {
    let mut c = smtp(addr);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    let r = c.cmd(&format!("MAIL FROM:{mail}")).unwrap();
    assert_eq!(r.code, 250, "{r:?}");
    for rcpt in rcpts {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).unwrap();
        assert_eq!(r.code, 250, "{rcpt}: {r:?}");
    }
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    c.send_raw(body.as_bytes()).unwrap();
    let r = c.cmd(".").unwrap();
    assert_eq!(r.code, 250, "{r:?}");
    r.text().rsplit(' ').next().unwrap().to_string()
}

/// The maillog line of the first delivery attempt for `rcpt` that reached
/// `status` (`status=sent`, `status=deferred`), waiting up to 20 s for it.
pub fn delivery_line(out: &Daemon, rcpt: &str, status: &str) -> String {
    let needle = format!("to=<{rcpt}>, relay=");
    out.wait_log(&needle, Duration::from_secs(20));
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let log = out.log();
        if let Some(l) = log.lines().find(|l| l.contains(&needle) && l.contains(status)) {
            return l.to_string();
        }
        assert!(Instant::now() < end, "no {status} line for {rcpt}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connect to `addr`, read the greeting (asserting 220).
pub fn smtp(addr: SocketAddr) -> SmtpClient {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut c = SmtpClient::new(stream, Duration::from_secs(10));
    let greeting = c.reply().unwrap();
    assert_eq!(greeting.code, 220, "{greeting:?}");
    c
}

/// Wait until `dir/new` holds `n` messages; returns them in delivery order.
pub fn wait_messages(maildir: &Path, n: usize) -> Vec<Vec<u8>> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let mut names: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if names.len() >= n || Instant::now() > end {
            assert_eq!(names.len(), n, "messages in {}", maildir.display());
            names.sort_by_key(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let (secs, rest) = name.split_once(".M").unwrap();
                let usec: u64 = rest.split('P').next().unwrap().parse().unwrap();
                (secs.parse::<u64>().unwrap(), usec)
            });
            return names.iter().map(|p| std::fs::read(p).unwrap()).collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A started daemon with one user, its IMAP and IMAPS ports open, and `n`
/// messages delivered to the user (see [`deliver_notes`]).
pub fn imap_daemon(user: &str, password: &str, n: usize) -> (MtaSetup, Daemon) {
    let setup = MtaSetup::new();
    setup.add_user(user, password);
    let mta = setup.start();
    wait_port(setup.imap, Duration::from_secs(10));
    wait_port(setup.imaps, Duration::from_secs(10));
    deliver_notes(&setup, user, n);
    (setup, mta)
}

/// Deliver `n` messages to `user` over SMTP ("note 0", "note 1", ... from
/// bob@remote.test) and wait until they are in its Maildir.
pub fn deliver_notes(setup: &MtaSetup, user: &str, n: usize) {
    for i in 0..n {
        send_note(setup, user, &format!("note {i}"), &format!("Hello number {i}."));
    }
    wait_messages(&setup.maildir(user), n);
}

/// Send one message from bob@remote.test to `user` over SMTP, each step asserted.
pub fn send_note(setup: &MtaSetup, user: &str, subject: &str, text: &str) {
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<bob@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{user}>")).unwrap().code, 250);
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    let body = format!("From: Bob <bob@remote.test>\r\nSubject: {subject}\r\n\r\n{text}\r\n");
    c.send_raw(body.as_bytes()).unwrap();
    assert_eq!(c.cmd(".").unwrap().code, 250);
}

/// Wait until `path` exists and is non-empty; returns its contents.
pub fn wait_file(path: &Path) -> Vec<u8> {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if let Ok(bytes) = std::fs::read(path)
            && !bytes.is_empty()
        {
            return bytes;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

/// Split a delivered message into its Received: header (unfolded text) and the rest,
/// after checking the Return-Path line.
pub fn strip_trace(msg: &[u8], sender: &str) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(msg).into_owned();
    let rest = text
        .strip_prefix(&format!("Return-Path: <{sender}>\n"))
        .unwrap_or_else(|| panic!("no Return-Path <{sender}> in {text:?}"));
    assert!(rest.starts_with("Received: "), "{rest:?}");
    let mut end = rest.find('\n').unwrap() + 1;
    while rest[end..].starts_with('\t') {
        end += rest[end..].find('\n').unwrap() + 1;
    }
    let received = rest[..end].replace("\n\t", " ");
    (received, rest.as_bytes()[end..].to_vec())
}

/// Run a Python 3 script with arguments; returns (success, stdout, stderr).
pub fn python(script: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A system account made with useradd for one test (root only), with its
/// home under /tmp (traversable, so mta can deliver as that user), removed
/// with userdel -r when dropped.
pub struct SystemUser {
    pub name: String,
    pub home: PathBuf,
}

impl SystemUser {
    pub fn create(prefix: &str) -> SystemUser {
        let name = format!("{prefix}{}", std::process::id() % 100_000);
        let home = PathBuf::from(format!("/tmp/{name}-home"));
        run_ok(
            Command::new("useradd")
                .args(["--create-home", "--shell", "/usr/sbin/nologin", "--home-dir"])
                .arg(&home)
                .arg(&name),
        );
        SystemUser { name, home }
    }

    /// A system account with no home (`useradd --system`), such as the
    /// unprivileged user a daemon becomes.
    pub fn create_system(prefix: &str) -> SystemUser {
        let name = format!("{prefix}{}", std::process::id() % 100_000);
        run_ok(
            Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin"])
                .arg(&name),
        );
        SystemUser {
            name,
            home: PathBuf::from("/nonexistent"),
        }
    }

    /// Set the password (`chpasswd`, into /etc/shadow).
    pub fn set_password(&self, password: &str) {
        let out = run_with_input(
            &mut Command::new("chpasswd"),
            format!("{}:{password}\n", self.name).as_bytes(),
        );
        assert!(
            out.status.success(),
            "chpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Write a file in the home directory, owned by the user.
    pub fn write(&self, file: &str, text: &str) {
        let path = self.home.join(file);
        std::fs::write(&path, text).unwrap();
        run_ok(Command::new("chown").arg(&self.name).arg(&path));
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg("--remove").arg(&self.name).output();
    }
}

/// Python for IMAP tests that speak raw IMAPS where imaplib hides the
/// wire: `ctx` (TLS without verification), `imaps_port`, `user` and `pw`
/// from the arguments, and `RawClient(name)`, a logged-in session whose
/// `cmd(bytes)` returns (untagged, tagged), each untagged response a list
/// of its lines and the literals between them, each first given to `check`
/// (a hook for subclasses).
pub const RAW_IMAPS_CLIENT: &str = r#"
import socket, ssl, sys, re
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
imaps_port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class RawClient:
    def __init__(self, name="r"):
        self.name = name; self.n = 0; self.buf = b""
        self.s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imaps_port), timeout=20))
        self.line()
        assert self.cmd(b"LOGIN " + user.encode() + b" " + pw.encode())[1].split()[1] == b"OK"
    def fill(self):
        data = self.s.recv(65536)
        if not data: raise EOFError(self.name)
        self.buf += data
    def line(self):
        while b"\r\n" not in self.buf: self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line
    def read(self, n):
        while len(self.buf) < n: self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data
    def check(self, parts):
        pass
    def cmd(self, text):
        self.n += 1
        tag = b"%s%d" % (self.name.encode(), self.n)
        self.s.sendall(tag + b" " + text + b"\r\n")
        untagged = []
        while True:
            parts = [self.line()]
            if parts[0].startswith(tag + b" "):
                return untagged, parts[0]
            while (m := re.search(rb"\{(\d+)\}$", parts[-1])):
                parts.append(self.read(int(m.group(1))))
                parts.append(self.line())
            self.check(parts)
            untagged.append(parts)
"#;

/// Run [`RAW_IMAPS_CLIENT`], `prelude` and `body` as one Python script
/// with `setup`'s IMAPS port, `user` and `password` as arguments; insists on
/// success and returns the output (printed too, for failing assertions).
pub fn imaps_python(setup: &MtaSetup, user: &str, password: &str, prelude: &str, body: &str) -> String {
    let script = format!("{RAW_IMAPS_CLIENT}{prelude}{body}");
    let port = setup.imaps.port().to_string();
    let (ok, out, err) = python(&script, &[port.as_str(), user, password]);
    assert!(ok, "python failed:\n{out}\n{err}");
    println!("{out}");
    out
}

/// One curl request to an HTTPS listener on loopback (certificate not
/// checked): (status, response head, body). With `jar`, cookies are read
/// from and written to that file, as a browser keeps them.
pub fn curl_session(jar: Option<&Path>, url: &str, extra: &[&str]) -> (u16, String, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "--max-time", "20", "-D", "-", "-o", "-", "-w", "\n%{http_code}"]);
    if let Some(jar) = jar {
        cmd.arg("--cookie-jar").arg(jar).arg("--cookie").arg(jar);
    }
    let out = cmd.args(extra).arg(url).output().expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once('\n').unwrap();
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (code.trim().parse().unwrap(), headers.to_string(), body.to_string())
}

/// The token in the first form action (`...?csrf=TOKEN`) of a page.
pub fn form_token(html: &str) -> String {
    let at = html.find("csrf=").expect("a form with a token") + 5;
    html[at..].chars().take_while(char::is_ascii_hexdigit).collect()
}

/// Log in to the web listener at `base` as a browser would (the login
/// form's token, then the POST), keeping the session in `jar`.
pub fn web_login(jar: &Path, base: &str, user: &str, password: &str) {
    let (_, _, page) = curl_session(Some(jar), &format!("{base}/login"), &[]);
    let token = form_token(&page);
    let creds = format!("user={user}&password={password}");
    let (code, headers, _) = curl_session(Some(jar), &format!("{base}/login?csrf={token}"), &["--data", &creds]);
    assert_eq!(code, 303, "login as {user}: {headers}");
}

/// The same without cookies: (status, body).
pub fn curl(url: &str, extra: &[&str]) -> (u16, String) {
    let (code, _, body) = curl_session(None, url, extra);
    (code, body)
}
