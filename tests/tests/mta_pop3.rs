//! mta POP3 end to end with Python's poplib, raw sockets and curl: STLS on
//! the plain port (nothing but CAPA, STLS and QUIT before it, pipelined
//! commands discarded), POP3S, RETR/TOP/UIDL/DELE/RSET/QUIT on Maildir and
//! on mbox (locked for the session), SASL with an initial response, bad input.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use greyd_tests::mta::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// argv: host port mode(plain|stls|ssl) user password actions...
/// Actions: stat, list, uidl, capa, retr:N, top:N:L, dele:N, rset, quit,
/// drop (close without QUIT), second (log in again in a parallel session).
/// Message bodies are printed in base64, un-stuffed, with CRLF line ends.
const CLIENT: &str = r#"
import base64, poplib, ssl, sys
host, port, mode, user, pw = sys.argv[1:6]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def connect():
    if mode == "ssl":
        return poplib.POP3_SSL(host, int(port), context=ctx, timeout=10)
    p = poplib.POP3(host, int(port), timeout=10)
    if mode == "stls":
        p.stls(context=ctx)
    return p
def out(*a):
    print(*a, flush=True)
def text(lines):
    return base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode()
p = connect()
try:
    out("LOGIN", p.user(user).decode(), "|", p.pass_(pw).decode())
except poplib.error_proto as e:
    out("ERR", "login", e.args[0].decode())
for action in sys.argv[6:]:
    name, *args = action.split(":")
    try:
        if name == "stat":
            out("STAT", *p.stat())
        elif name == "list":
            out("LIST", *[l.decode().replace(" ", "=") for l in p.list()[1]])
        elif name == "uidl":
            out("UIDL", *[l.decode().replace(" ", "=") for l in p.uidl()[1]])
        elif name == "capa":
            out("CAPA", "|".join(sorted(" ".join([k] + v) for k, v in p.capa().items())))
        elif name == "retr":
            resp, lines, _ = p.retr(int(args[0]))
            out("RETR", resp.decode().replace(" ", "_"), text(lines))
        elif name == "top":
            resp, lines, _ = p.top(int(args[0]), int(args[1]))
            out("TOP", text(lines))
        elif name == "dele":
            out("DELE", p.dele(int(args[0])).decode())
        elif name == "rset":
            out("RSET", p.rset().decode())
        elif name == "quit":
            out("QUIT", p.quit().decode())
        elif name == "drop":
            p.sock.close()
            out("DROPPED")
        elif name == "second":
            q = connect()
            q.user(user)
            try:
                out("SECOND", q.pass_(pw).decode())
            except poplib.error_proto as e:
                out("SECOND", e.args[0].decode())
            q.quit()
    except poplib.error_proto as e:
        out("ERR", name, e.args[0].decode())
"#;

/// argv: host port; speaks POP3 by hand on the plain port, then over STLS.
const RAW_BEFORE_TLS: &str = r#"
import base64, socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rb")
def line():
    return f.readline().decode().rstrip("\r\n")
def cmd(c):
    s.sendall(c.encode() + b"\r\n")
    return line()
print("GREETING", line())
s.sendall(b"CAPA\r\n")
caps = []
while True:
    l = line()
    if l == ".":
        break
    caps.append(l)
print("CAPA", "|".join(caps[1:]))
print("USER", cmd("USER alice@example.test"))
print("AUTH", cmd("AUTH PLAIN " + base64.b64encode(b"\0alice@example.test\0alice-pw").decode()))
print("LONG", cmd("NOOP " + "x" * 300))
s.sendall(b"STLS\r\nUSER injected\r\n")
print("STLS", line())
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
tf = t.makefile("rb")
t.sendall(b"NOOP\r\n")
print("AFTER", tf.readline().decode().rstrip("\r\n"))
"#;

/// argv: host port (POP3S) then lines to send; prints each reply on one line
/// (a multi-line one joined with "|").
const RAW_TLS: &str = r#"
import socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(socket.create_connection((host, port), timeout=10))
f = t.makefile("rb")
print(f.readline().decode().rstrip("\r\n"))
for c in sys.argv[3:]:
    t.sendall(c.encode() + b"\r\n")
    l = f.readline()
    if not l:
        print("CLOSED")
        break
    l = l.decode().rstrip("\r\n")
    multi = c in ("AUTH", "CAPA", "LIST", "UIDL") or c.split(" ")[0] in ("RETR", "TOP")
    while multi and l.startswith("+OK") and not l.endswith("|."):
        l += "|" + f.readline().decode().rstrip("\r\n")
    print(l)
"#;

const ALICE: &str = "alice@example.test";

fn pop(port: u16, mode: &str, user: &str, pw: &str, actions: &[&str]) -> Vec<String> {
    let mut args = vec![
        "127.0.0.1".to_string(),
        port.to_string(),
        mode.into(),
        user.into(),
        pw.into(),
    ];
    args.extend(actions.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = python(CLIENT, &args);
    assert!(ok, "python failed: {out}\n{err}");
    out.lines().map(str::to_string).collect()
}

/// The words of the first output line starting with `key`.
fn field(out: &[String], key: &str) -> Vec<String> {
    let line = out
        .iter()
        .find(|l| l.split(' ').next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} in {out:?}"));
    line.split(' ').skip(1).map(str::to_string).collect()
}

/// The UIDLs of a UIDL listing, without the message numbers.
fn uidl_values(out: &[String]) -> Vec<String> {
    field(out, "UIDL")
        .iter()
        .map(|u| u.split_once('=').unwrap().1.to_string())
        .collect()
}

/// The base64 message text at the end of the output line `key`.
fn body(out: &[String], key: &str) -> Vec<u8> {
    B64.decode(field(out, key).last().unwrap()).unwrap()
}

fn send(setup: &MtaSetup, subject: &str, text: &str) {
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<bob@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{ALICE}>")).unwrap().code, 250);
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    c.send_raw(format!("Subject: {subject}\r\n\r\n{text}").as_bytes())
        .unwrap();
    assert_eq!(c.cmd(".").unwrap().code, 250);
}

fn mbox_setup() -> MtaSetup {
    let setup = MtaSetup::new();
    setup.edit("format = \"maildir\"", "format = \"mbox\"");
    setup.add_user(ALICE, "alice-pw");
    // Delivery appends to the mbox but does not make its directory.
    std::fs::create_dir_all(mbox_path(&setup).parent().unwrap()).unwrap();
    setup
}

fn mbox_path(setup: &MtaSetup) -> std::path::PathBuf {
    setup.root().join("mail").join("example.test").join("alice.mbox")
}

/// Wait until the mbox holds `n` messages.
fn wait_mbox(path: &Path, n: usize) -> String {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let count = text.lines().filter(|l| l.starts_with("From ")).count();
        if count >= n || Instant::now() > end {
            assert_eq!(count, n, "{text}");
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn plaintext_login_refused_until_stls_and_pipelined_input_discarded() {
    let setup = mbox_setup();
    let _mta = setup.start();
    let (ok, out, err) = python(RAW_BEFORE_TLS, &["127.0.0.1", &setup.pop3.port().to_string()]);
    assert!(ok, "{out}\n{err}");
    let out: Vec<String> = out.lines().map(str::to_string).collect();
    let caps = field(&out, "CAPA").join(" ");
    assert!(
        caps.contains("STLS") && caps.contains("PIPELINING") && caps.contains("RESP-CODES"),
        "{caps}"
    );
    assert!(!caps.contains("USER") && !caps.contains("SASL"), "{caps}");
    assert_eq!(field(&out, "USER")[..2], ["-ERR", "[AUTH]"]);
    assert_eq!(field(&out, "AUTH")[..2], ["-ERR", "[AUTH]"]);
    assert_eq!(field(&out, "LONG").join(" "), "-ERR line too long");
    assert_eq!(field(&out, "STLS")[0], "+OK");
    // "USER injected" came in plaintext with STLS: dropped, so NOOP gets the first reply.
    assert_eq!(field(&out, "AFTER"), ["+OK"]);

    let out = pop(setup.pop3.port(), "stls", ALICE, "alice-pw", &["capa", "stat", "quit"]);
    assert_eq!(field(&out, "LOGIN")[0], "+OK", "{out:?}");
    let caps = field(&out, "CAPA").join(" ");
    assert!(
        !caps.contains("STLS") && caps.contains("UIDL") && caps.contains("TOP"),
        "{caps}"
    );
    assert_eq!(field(&out, "STAT"), ["0", "0"]);
    let out = pop(setup.pop3.port(), "stls", ALICE, "wrong", &[]);
    assert_eq!(field(&out, "ERR")[..2], ["login", "-ERR"]);
    assert_eq!(field(&out, "ERR")[2], "[AUTH]");
}

#[test]
fn mbox_retr_dele_and_a_second_session_in_use() {
    let setup = mbox_setup();
    let _mta = setup.start();
    send(&setup, "m1", "From the start\r\n..dot line\r\n>From quoted\r\n");
    send(&setup, "m2", "second\r\n");
    send(&setup, "m3", "third\r\n");
    let path = mbox_path(&setup);
    let before = wait_mbox(&path, 3);
    assert!(before.contains("\n>From the start\n"), "{before}");
    let port = setup.pop3s.port();
    let out = pop(
        port,
        "ssl",
        ALICE,
        "alice-pw",
        &["stat", "list", "uidl", "retr:1", "top:2:0", "second", "dele:2", "quit"],
    );
    assert_eq!(field(&out, "STAT")[0], "3", "{out:?}");
    let m1 = body(&out, "RETR");
    let m1_text = String::from_utf8(m1.clone()).unwrap();
    assert!(
        m1_text.contains("Subject: m1\r\n\r\nFrom the start\r\n.dot line\r\n>From quoted\r\n"),
        "{m1_text:?}"
    );
    assert!(!m1_text.replace("\r\n", "").contains('\n'), "bare LF in {m1_text:?}");
    assert_eq!(field(&out, "LIST")[0], format!("1={}", m1.len()));
    assert_eq!(field(&out, "RETR")[0], format!("+OK_{}_octets", m1.len()));
    let top = String::from_utf8(body(&out, "TOP")).unwrap();
    assert!(
        top.contains("Subject: m2\r\n") && top.ends_with("\r\n\r\n") && !top.contains("second"),
        "{top:?}"
    );
    assert_eq!(field(&out, "SECOND")[..2], ["-ERR", "[IN-USE]"]);
    assert_eq!(field(&out, "QUIT")[0], "+OK");
    let uidls = uidl_values(&out);
    assert_eq!(uidls.len(), 3);

    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.contains("Subject: m1") && !after.contains("Subject: m2") && after.contains("Subject: m3"));
    assert!(
        after.contains("\n>From the start\n"),
        "the rewrite keeps the quoting: {after}"
    );
    assert!(!path.with_extension("mbox.lock").exists());

    // Survivors keep their UIDLs; DELE then a dropped connection deletes nothing.
    let out = pop(port, "ssl", ALICE, "alice-pw", &["uidl", "dele:1", "drop"]);
    assert_eq!(uidl_values(&out), [uidls[0].clone(), uidls[2].clone()]);
    let out = pop(port, "ssl", ALICE, "alice-pw", &["stat", "quit"]);
    assert_eq!(field(&out, "STAT")[0], "2", "{out:?}");
}

#[test]
fn sasl_initial_response_throttling_and_bad_input() {
    let setup = mbox_setup();
    let _mta = setup.start();
    send(&setup, "hello", "curl reads me\r\n");
    wait_mbox(&mbox_path(&setup), 1);
    let port = setup.pop3s.port().to_string();
    let plain = |user: &str, pw: &str| format!("AUTH PLAIN {}", B64.encode(format!("\0{user}\0{pw}")));
    let (ok, out, err) = python(
        RAW_TLS,
        &["127.0.0.1", &port, "AUTH", &plain(ALICE, "alice-pw"), "STAT", "QUIT"],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("+OK"), "{out}");
    assert_eq!(lines[1], "+OK Mechanisms follow|PLAIN|LOGIN|SCRAM-SHA-256|.");
    assert!(lines[2].starts_with("+OK Maildrop has 1 messages"), "{out}");
    assert!(lines[3].starts_with("+OK 1 "), "{out}");

    // curl over POP3S fetches message 1.
    let curl = std::process::Command::new("curl")
        .args(["-k", "-s", "--max-time", "10", "-u", "alice@example.test:alice-pw"])
        .arg(format!("pop3s://127.0.0.1:{port}/1"))
        .output()
        .unwrap();
    let fetched = String::from_utf8_lossy(&curl.stdout);
    assert!(
        curl.status.success() && fetched.contains("Subject: hello\r\n\r\ncurl reads me\r\n"),
        "{fetched:?}"
    );

    // Five failures, then even the right password is refused for now (RFC 3206 SYS/TEMP).
    let bad = plain(ALICE, "nope");
    let mut args = vec!["127.0.0.1", &port];
    args.extend([bad.as_str(); 5]);
    let good = plain(ALICE, "alice-pw");
    args.push(&good);
    let (_, out, _) = python(RAW_TLS, &args);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1..6].iter().all(|l| l.starts_with("-ERR [AUTH]")), "{out}");
    assert!(lines[6].starts_with("-ERR [SYS/TEMP]"), "{out}");

    // Garbage gets -ERR, and enough of it closes the connection.
    let mut args = vec!["127.0.0.1", &port, "BOGUS", "RETR 1", "LIST x"];
    args.extend(["NOPE"; 10]);
    let (_, out, _) = python(RAW_TLS, &args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1..4],
        ["-ERR Unknown command", "-ERR Not logged in", "-ERR not a number"]
    );
    assert!(
        out.contains("-ERR Too many errors") && out.ends_with("CLOSED\n"),
        "{out}"
    );
}

/// The files of a Maildir (new/ and cur/), sorted by name.
fn maildir_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = ["new", "cur"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.join(sub)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn maildir_setup() -> MtaSetup {
    let setup = MtaSetup::new();
    setup.add_user(ALICE, "alice-pw");
    setup
}

#[test]
fn maildir_retr_is_the_delivered_file_and_uidl_survives_a_restart() {
    let setup = maildir_setup();
    let mut mta = setup.start();
    send(&setup, "first", "one\r\n..leading dot\r\n");
    send(&setup, "second", "two\r\n");
    let delivered = wait_messages(&setup.maildir(ALICE), 2);
    let port = setup.pop3.port();
    let out = pop(
        port,
        "stls",
        ALICE,
        "alice-pw",
        &["stat", "uidl", "retr:1", "top:2:0", "quit"],
    );
    assert_eq!(field(&out, "STAT")[0], "2", "{out:?}");
    let retr = body(&out, "RETR");
    let file = delivered
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("Subject: first"))
        .unwrap();
    let crlf = String::from_utf8_lossy(file).replace('\n', "\r\n");
    assert_eq!(
        String::from_utf8_lossy(&retr),
        crlf,
        "RETR is the Maildir file with CRLF"
    );
    assert!(crlf.contains("\r\n.leading dot\r\n"));
    let top = String::from_utf8(body(&out, "TOP")).unwrap();
    assert!(top.contains("Subject: second\r\n") && !top.contains("two"), "{top:?}");
    let uidls = uidl_values(&out);
    assert_eq!(uidls.len(), 2);
    assert!(uidls.iter().all(|u| u.len() == 16), "{uidls:?}");

    // RETR set \Seen on the first message only (TOP does not).
    let names: Vec<String> = maildir_files(&setup.maildir(ALICE))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.iter().filter(|n| n.ends_with(":2,S")).count(), 1, "{names:?}");

    let again = pop(setup.pop3s.port(), "ssl", ALICE, "alice-pw", &["uidl", "quit"]);
    assert_eq!(uidl_values(&again), uidls);
    mta.terminate();
    let _mta = setup.start();
    greyd_tests::wait_port(setup.pop3s, Duration::from_secs(10));
    let restarted = pop(setup.pop3s.port(), "ssl", ALICE, "alice-pw", &["uidl", "quit"]);
    assert_eq!(uidl_values(&restarted), uidls, "UIDL stable across an mta restart");
}

#[test]
fn maildir_dele_removes_only_at_quit() {
    let setup = maildir_setup();
    let _mta = setup.start();
    for s in ["a", "b", "c"] {
        send(&setup, s, "text\r\n");
    }
    let dir = setup.maildir(ALICE);
    wait_messages(&dir, 3);
    let port = setup.pop3s.port();
    let out = pop(
        port,
        "ssl",
        ALICE,
        "alice-pw",
        &["uidl", "dele:1", "stat", "rset", "stat", "quit"],
    );
    let uidls = uidl_values(&out);
    let counts: Vec<&str> = out
        .iter()
        .filter_map(|l| l.strip_prefix("STAT "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(counts, ["2", "3"], "DELE hides the message, RSET brings it back");
    assert_eq!(maildir_files(&dir).len(), 3, "DELE then RSET keeps the message");
    pop(port, "ssl", ALICE, "alice-pw", &["dele:1", "drop"]);
    assert_eq!(maildir_files(&dir).len(), 3, "a dropped connection deletes nothing");
    let out = pop(port, "ssl", ALICE, "alice-pw", &["dele:1", "quit"]);
    assert_eq!(field(&out, "QUIT")[0], "+OK");
    assert_eq!(maildir_files(&dir).len(), 2, "DELE then QUIT removes the file");
    let out = pop(port, "ssl", ALICE, "alice-pw", &["uidl", "quit"]);
    assert_eq!(uidl_values(&out), uidls[1..], "the others keep their UIDLs");
}

#[test]
fn sasl_responses_may_exceed_the_command_line_limit() {
    // RFC 5034 §4: a SASL response is not a command, so RFC 2449's 255
    // octets do not bind it; a PLAIN response for a long password is longer.
    let setup = MtaSetup::new();
    let user = "long@example.test";
    let password = "p".repeat(300);
    setup.add_user(user, &password);
    let _mta = setup.start();
    greyd_tests::wait_port(setup.pop3s, Duration::from_secs(10));
    let port = setup.pop3s.port().to_string();
    let response = B64.encode(format!("\0{user}\0{password}"));
    assert!(response.len() > 253);
    let (ok, out, err) = python(RAW_TLS, &["127.0.0.1", &port, "AUTH PLAIN", &response, "STAT", "QUIT"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "+ ", "{out}");
    assert!(lines[2].starts_with("+OK"), "{out}");
    assert_eq!(lines[3], "+OK 0 0", "{out}");

    // Past 8 KiB the exchange is cancelled, the session goes on, and a
    // command line is held to 255 octets again.
    let huge = "A".repeat(9000);
    let long_command = format!("NOOP {}", "x".repeat(300));
    let (ok, out, err) = python(
        RAW_TLS,
        &["127.0.0.1", &port, "AUTH PLAIN", &huge, &long_command, "QUIT"],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "+ ", "{out}");
    assert!(lines[2].starts_with("-ERR"), "{out}");
    assert!(lines[3].starts_with("-ERR"), "{out}");
    assert!(lines[4].starts_with("+OK"), "{out}");
}
