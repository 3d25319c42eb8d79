//! ManageSieve (RFC 5804) end to end: scripts uploaded, listed, activated
//! and downloaded with Debian's sieve-connect, then mail sent over SMTP
//! landing in the folder the uploaded script chose; and a raw client in
//! Python for what sieve-connect hides: the capabilities before and after
//! STARTTLS, AUTHENTICATE refused in plaintext, PLAIN with an initial
//! response and with a continuation, SCRAM-SHA-256, the errors of
//! PUTSCRIPT (with the line number), HAVESPACE, DELETESCRIPT and
//! RENAMESCRIPT, names that would leave the user's folder, a literal too
//! large before login, and the throttling of failed logins.

use greyd_tests::mta::*;
use greyd_tests::{Daemon, wait_port};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ALICE: &str = "alice@example.test";
const PASS: &str = "pw-managesieve";

const FILTER: &str = r#"require ["fileinto", "mailbox"];
# Reports go to their own folder, made on first use.
if header :contains "subject" "report" {
    fileinto :create "Reports";
}
"#;

fn daemon() -> (MtaSetup, Daemon) {
    let setup = MtaSetup::new();
    setup.add_user(ALICE, PASS);
    let mta = setup.start();
    wait_port(setup.managesieve, Duration::from_secs(10));
    (setup, mta)
}

/// Run sieve-connect against the server with `args`; the password goes in on stdin.
fn sieve_connect(setup: &MtaSetup, args: &[&str]) -> String {
    let port = setup.managesieve.port().to_string();
    let out = run_with_input(
        Command::new("sieve-connect")
            .args(["--server", "127.0.0.1", "--port", &port, "--user", ALICE])
            .args(["--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN"])
            .args(args),
        format!("{PASS}\n").as_bytes(),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "sieve-connect {args:?}:\n{stdout}\n{stderr}");
    stdout + &stderr
}

fn subjects(messages: &[Vec<u8>]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(m);
            let line = text.lines().find(|l| l.starts_with("Subject: ")).unwrap_or("");
            line.trim_start_matches("Subject: ").to_string()
        })
        .collect()
}

#[test]
fn sieve_connect_uploads_activates_and_downloads_and_delivery_follows_the_script() {
    let (setup, _mta) = daemon();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("filter.sieve");
    std::fs::write(&local, FILTER).unwrap();
    let local = local.to_str().unwrap();

    sieve_connect(&setup, &["--upload", "--localsieve", local, "--remotesieve", "filter"]);
    let listed = sieve_connect(&setup, &["--list"]);
    assert!(
        listed.lines().any(|l| l == "\"filter\""),
        "nothing active yet: {listed}"
    );

    sieve_connect(&setup, &["--activate", "--remotesieve", "filter"]);
    let listed = sieve_connect(&setup, &["--list"]);
    assert!(listed.lines().any(|l| l == "\"filter\" ACTIVE"), "{listed}");

    let downloaded = work.path().join("back.sieve");
    sieve_connect(
        &setup,
        &[
            "--download",
            "--remotesieve",
            "filter",
            "--localsieve",
            downloaded.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&downloaded).unwrap(), FILTER);

    // The script sits where delivery reads it, marked as Pigeonhole marks it.
    let maildir = setup.maildir(ALICE);
    assert_eq!(
        std::fs::read_to_string(maildir.join("sieve/filter.sieve")).unwrap(),
        FILTER
    );
    assert_eq!(
        std::fs::read_link(maildir.join(".dovecot.sieve")).unwrap(),
        Path::new("sieve/filter.sieve")
    );

    send_note(&setup, ALICE, "the monthly report", "Figures.");
    send_note(&setup, ALICE, "lunch?", "At noon?");
    assert_eq!(
        subjects(&wait_messages(&maildir.join(".Reports"), 1)),
        ["the monthly report"]
    );
    assert_eq!(subjects(&wait_messages(&maildir, 1)), ["lunch?"]);

    sieve_connect(&setup, &["--deactivate"]);
    send_note(&setup, ALICE, "another report", "More figures.");
    assert_eq!(
        wait_messages(&maildir, 2).len(),
        2,
        "with no active script, mail stays in INBOX"
    );
}

/// argv: host port user password. Speaks ManageSieve by hand and prints
/// each command (`> ...`) and the response lines, literals inlined.
const RAW_CLIENT: &str = r#"
import base64, hashlib, hmac, os, re, socket, ssl, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

class Client:
    def __init__(self):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.file = self.sock.makefile("rb")
        print("> (connect)", flush=True)
    def line(self):
        line = self.file.readline()
        if not line:
            return None
        assert line.endswith(b"\r\n"), line
        line = line[:-2]
        while (m := re.search(rb"\{(\d+)\}$", line)):
            line += b"\r\n" + self.file.read(int(m.group(1)))
            line += self.file.readline()[:-2]
        return line.decode()
    def response(self):
        lines = []
        while (line := self.line()) is not None:
            lines.append(line)
            print(line, flush=True)
            if re.match(r"(OK|NO|BYE)\b", line):
                break
        return lines
    def send(self, text):
        print(">", text.split("\r\n")[0], flush=True)
        self.sock.sendall(text.encode() + b"\r\n")
    def cmd(self, text):
        self.send(text)
        return self.response()
    def starttls(self):
        assert self.cmd("STARTTLS")[-1].startswith("OK")
        self.sock = ctx.wrap_socket(self.sock, server_hostname="mx.test")
        self.file = self.sock.makefile("rb")
        print("> (TLS)", flush=True)
        return self.response()

def literal(text):
    return "{%d+}\r\n%s" % (len(text.encode()), text)

plain = base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()
wrong = base64.b64encode(("\0%s\0wrong" % user).encode()).decode()

c = Client()
c.response()
c.cmd('AUTHENTICATE "PLAIN" "%s"' % plain)
c.cmd("LISTSCRIPTS")
c.starttls()
c.cmd('AUTHENTICATE "plain" "%s"' % wrong)
c.send('AUTHENTICATE "PLAIN"')
challenge = c.line()
print("CHALLENGE", challenge, flush=True)
c.sock.sendall(('"%s"\r\n' % plain).encode())
c.response()
c.cmd('PUTSCRIPT "broken" ' + literal('require "fileinto";\nkeep;\nfrobnicate;\n'))
c.cmd('CHECKSCRIPT ' + literal('require "fileinto";\nfileinto "Junk";\n'))
c.cmd('HAVESPACE "big" 2000000')
c.cmd('HAVESPACE "small" 2000')
c.cmd('PUTSCRIPT "one" ' + literal('keep;\n'))
c.cmd('PUTSCRIPT "two" "discard;"')
c.cmd('SETACTIVE "one"')
c.cmd('SETACTIVE "none"')
c.cmd('DELETESCRIPT "one"')
c.cmd('RENAMESCRIPT "two" "one"')
c.cmd('RENAMESCRIPT "one" "first"')
c.cmd('GETSCRIPT "../../../users"')
c.cmd('GETSCRIPT "first"')
c.cmd("LISTSCRIPTS")
c.cmd('DELETESCRIPT "two"')
c.cmd('NOOP "tag-1"')
c.cmd("LOGOUT")

d = Client()
d.response()
d.send('PUTSCRIPT "x" {100000+}')
d.response()
print("CLOSED" if d.line() is None else "OPEN", flush=True)

def unquote(line):
    assert line.startswith('"') and line.endswith('"'), line
    return base64.b64decode(line[1:-1]).decode()

# SCRAM-SHA-256 (RFC 5802/7677) from the client side; the server's last
# message comes as a challenge, answered by an empty string.
f = Client()
f.response()
f.starttls()
nonce = base64.b64encode(os.urandom(18)).decode()
first_bare = "n=%s,r=%s" % (user, nonce)
f.send('AUTHENTICATE "SCRAM-SHA-256" "%s"' % base64.b64encode(("n,," + first_bare).encode()).decode())
server_first = unquote(f.line())
attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
salted = hashlib.pbkdf2_hmac("sha256", pw.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
client_key = hmac.new(salted, b"Client Key", "sha256").digest()
without_proof = "c=biws,r=" + attrs["r"]
auth_message = ",".join([first_bare, server_first, without_proof]).encode()
signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
f.sock.sendall(('"%s"\r\n' % base64.b64encode((without_proof + ",p=" + proof).encode()).decode()).encode())
server_key = hmac.new(salted, b"Server Key", "sha256").digest()
expected = "v=" + base64.b64encode(hmac.new(server_key, auth_message, "sha256").digest()).decode()
print("SERVER-FINAL", "verified" if unquote(f.line()) == expected else "wrong", flush=True)
f.sock.sendall(b'""\r\n')
f.response()
f.cmd("LISTSCRIPTS")
f.cmd("LOGOUT")

e = Client()
e.response()
e.starttls()
for i in range(5):
    e.cmd('AUTHENTICATE "Plain" "%s"' % wrong)
e.cmd('AUTHENTICATE "pLAIN" "%s"' % plain)
"#;

/// The client's exchanges: each command (without `> `) and the lines
/// that answered it; a greeting answers `(connect)`.
fn exchanges(out: &str) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for line in out.lines() {
        match line.strip_prefix("> ") {
            Some(command) => all.push((command.to_string(), Vec::new())),
            None => all.last_mut().unwrap().1.push(line.to_string()),
        }
    }
    all
}

#[test]
fn raw_client_sees_capabilities_errors_and_codes() {
    let (setup, _mta) = daemon();
    let port = setup.managesieve.port().to_string();
    let (ok, out, err) = python(RAW_CLIENT, &["127.0.0.1", &port, ALICE, PASS]);
    println!("{out}");
    assert!(ok, "python failed:\n{out}\n{err}");
    let exchanges = exchanges(&out);
    let after = |command: &str| -> &[String] {
        let found = exchanges.iter().find(|(c, _)| c.starts_with(command));
        &found.unwrap_or_else(|| panic!("no {command}")).1
    };
    let has = |lines: &[String], line: &str| lines.iter().any(|l| l == line);
    let greeting = after("(connect)");
    assert!(has(greeting, "\"STARTTLS\""), "{greeting:?}");
    assert!(has(greeting, "\"SASL\" \"\""), "no mechanism before TLS: {greeting:?}");
    assert!(has(greeting, "\"VERSION\" \"1.0\""), "{greeting:?}");
    assert!(has(greeting, "\"MAXREDIRECTS\" \"4\""), "{greeting:?}");
    assert!(
        greeting.iter().any(|l| l.starts_with("\"SIEVE\" \"fileinto envelope")),
        "{greeting:?}"
    );
    assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");

    assert_eq!(
        after("AUTHENTICATE \"PLAIN\" \""),
        ["NO (ENCRYPT-NEEDED) \"Use STARTTLS before AUTHENTICATE\""]
    );
    assert_eq!(after("LISTSCRIPTS"), ["NO \"Authenticate first\""]);
    assert_eq!(after("STARTTLS"), ["OK \"Begin TLS negotiation\""]);
    let caps = after("(TLS)");
    assert!(has(caps, "\"SASL\" \"PLAIN LOGIN SCRAM-SHA-256\""), "{caps:?}");
    assert!(!has(caps, "\"STARTTLS\""), "{caps:?}");
    assert_eq!(caps.last().unwrap(), "OK \"TLS active\"");
    assert_eq!(after("AUTHENTICATE \"plain\""), ["NO \"Authentication failed\""]);
    assert_eq!(
        exchanges.iter().find(|(c, _)| c == "AUTHENTICATE \"PLAIN\"").unwrap().1,
        ["CHALLENGE \"\"", "OK \"Logged in\""]
    );

    assert_eq!(
        after("PUTSCRIPT \"broken\""),
        ["NO \"line 3: unknown command \\\"frobnicate\\\"\""]
    );
    assert_eq!(after("CHECKSCRIPT"), ["OK \"Script is valid\""]);
    assert_eq!(
        after("HAVESPACE \"big\""),
        ["NO (QUOTA/MAXSIZE) \"Scripts are limited to 1048576 bytes\""]
    );
    assert_eq!(after("HAVESPACE \"small\""), ["OK \"Putscript would succeed\""]);
    assert_eq!(after("PUTSCRIPT \"one\""), ["OK \"Script stored\""]);
    assert_eq!(after("PUTSCRIPT \"two\""), ["OK \"Script stored\""]);
    assert_eq!(after("SETACTIVE \"one\""), ["OK \"Script is active\""]);
    assert_eq!(
        after("SETACTIVE \"none\""),
        ["NO (NONEXISTENT) \"No script \\\"none\\\"\""]
    );
    assert_eq!(
        after("DELETESCRIPT \"one\""),
        ["NO (ACTIVE) \"Script \\\"one\\\" is active\""]
    );
    assert_eq!(
        after("RENAMESCRIPT \"two\" \"one\""),
        ["NO (ALREADYEXISTS) \"A script \\\"one\\\" exists already\""]
    );
    assert_eq!(after("RENAMESCRIPT \"one\" \"first\""), ["OK \"Script renamed\""]);
    assert_eq!(
        after("GETSCRIPT \"../../../users\""),
        ["NO \"Invalid script name: contains \\\"/\\\"\""]
    );
    assert_eq!(
        after("GETSCRIPT \"first\""),
        ["{6}", "keep;", "", "OK \"Getscript completed\""]
    );
    assert_eq!(
        after("LISTSCRIPTS"),
        ["NO \"Authenticate first\""],
        "the first LISTSCRIPTS"
    );
    let listed = &exchanges.iter().filter(|(c, _)| c == "LISTSCRIPTS").nth(1).unwrap().1;
    assert_eq!(listed, &["\"first\" ACTIVE", "\"two\"", "OK \"Listscripts completed\""]);
    assert_eq!(after("DELETESCRIPT \"two\""), ["OK \"Script deleted\""]);
    assert_eq!(after("NOOP"), ["OK (TAG \"tag-1\") \"Done\""]);
    assert_eq!(after("LOGOUT"), ["OK \"Logout completed\""]);

    // The renamed script is still the active one, under its new name.
    let maildir = setup.maildir(ALICE);
    assert_eq!(
        std::fs::read_link(maildir.join(".dovecot.sieve")).unwrap(),
        Path::new("sieve/first.sieve")
    );
    let mut files: Vec<String> = std::fs::read_dir(maildir.join("sieve"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["first.sieve"], "no other files, no temporary ones");

    // Before login a literal is bounded: refused before a byte of it is read.
    assert_eq!(
        after("PUTSCRIPT \"x\" {100000+}"),
        ["BYE (QUOTA/MAXSIZE) \"Scripts are limited to 1048576 bytes\"", "CLOSED"]
    );

    assert_eq!(
        after("AUTHENTICATE \"SCRAM-SHA-256\""),
        ["SERVER-FINAL verified", "OK \"Logged in\""]
    );
    let listed = &exchanges.iter().filter(|(c, _)| c == "LISTSCRIPTS").nth(2).unwrap().1;
    assert_eq!(listed, &["\"first\" ACTIVE", "OK \"Listscripts completed\""]);

    // Failures count towards the throttling IMAP and POP3 share: after five,
    // even the right password is turned away for now.
    let failures: Vec<_> = exchanges
        .iter()
        .filter(|(c, _)| c.starts_with("AUTHENTICATE \"Plain\""))
        .collect();
    assert_eq!(failures.len(), 5);
    assert!(
        failures
            .iter()
            .all(|(_, lines)| lines == &["NO \"Authentication failed\""]),
        "{failures:?}"
    );
    assert_eq!(
        after("AUTHENTICATE \"pLAIN\""),
        ["NO (TRYLATER) \"Too many failed logins; try again later\""]
    );
}
