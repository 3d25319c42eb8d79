//! mta TLS and AUTH end to end with Python's smtplib and ssl: STARTTLS on
//! 25 and 587, implicit TLS on 465, AUTH PLAIN/LOGIN/CRAM-MD5, submission
//! rules, failed-login throttling, the STARTTLS injection, SIGHUP reload.

use greyd_tests::mta::*;
use std::process::Command;

/// argv: host port mode(starttls|smtps) mechanism(PLAIN|LOGIN|CRAM-MD5|none) user password rcpt
const SUBMIT: &str = r#"
import smtplib, ssl, sys
host, port, mode, mech, user, pw, rcpt = sys.argv[1:8]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if mode == "smtps":
    s = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=10)
else:
    s = smtplib.SMTP(host, int(port), timeout=10)
    s.ehlo()
    s.starttls(context=ctx)
s.ehlo()
print("AUTH:", s.esmtp_features.get("auth", ""))
try:
    if mech != "none":
        s.user, s.password = user, pw
        methods = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}
        s.auth(mech, methods[mech], initial_response_ok=(mech != "CRAM-MD5"))
    s.sendmail(user or "someone@remote.test", [rcpt], "Subject: py " + mech + "\r\n\r\nbody\r\n")
    print("SENT")
except smtplib.SMTPResponseException as e:
    print("CODE", e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print("RCPT", list(e.recipients.values())[0][0])
s.quit()
"#;

fn submit(port: u16, mode: &str, mech: &str, user: &str, pw: &str, rcpt: &str) -> String {
    let (ok, out, err) = python(SUBMIT, &["127.0.0.1", &port.to_string(), mode, mech, user, pw, rcpt]);
    assert!(ok, "python failed: {out}\n{err}");
    out
}

fn setup_with_users() -> MtaSetup {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "alice-pw");
    let out = greyd_tests::mta::run_with_input(
        Command::new(greyd_tests::bin("mtactl"))
            .args([
                "user",
                "add",
                "carol@example.test",
                "--password-stdin",
                "--allow-cram-md5",
                "--config",
            ])
            .arg(&setup.config),
        b"carol-pw\n",
    );
    assert!(out.status.success());
    setup
}

#[test]
fn auth_mechanisms_over_starttls_and_implicit_tls() {
    let setup = setup_with_users();
    let _mta = setup.start();
    let (p25, p587, p465) = (setup.smtp.port(), setup.submission.port(), setup.smtps.port());
    let out = submit(
        p25,
        "starttls",
        "PLAIN",
        "alice@example.test",
        "alice-pw",
        "carol@example.test",
    );
    assert!(
        out.contains("PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256") && out.contains("SENT"),
        "{out}"
    );
    assert!(
        submit(
            p587,
            "starttls",
            "LOGIN",
            "alice@example.test",
            "alice-pw",
            "carol@example.test"
        )
        .contains("SENT")
    );
    assert!(
        submit(
            p465,
            "smtps",
            "PLAIN",
            "alice@example.test",
            "alice-pw",
            "carol@example.test"
        )
        .contains("SENT")
    );
    assert!(
        submit(
            p465,
            "smtps",
            "CRAM-MD5",
            "carol@example.test",
            "carol-pw",
            "alice@example.test"
        )
        .contains("SENT")
    );
    // alice has no CRAM-MD5 secret.
    let out = submit(
        p465,
        "smtps",
        "CRAM-MD5",
        "alice@example.test",
        "alice-pw",
        "carol@example.test",
    );
    assert!(out.contains("CODE 535"), "{out}");
    assert_eq!(wait_messages(&setup.maildir("carol@example.test"), 3).len(), 3);
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains("with ESMTPSA"));
}

#[test]
fn submission_requires_tls_then_auth() {
    let setup = setup_with_users();
    let _mta = setup.start();
    let mut c = smtp(setup.submission);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    let r = c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==").unwrap();
    assert_eq!(r.code, 538, "plaintext AUTH: {r:?}");
    assert_eq!(c.cmd("MAIL FROM:<alice@example.test>").unwrap().code, 530);
    // Same on 25: no AUTH before TLS.
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("AUTH LOGIN").unwrap().code, 538);
    let out = submit(
        setup.submission.port(),
        "starttls",
        "none",
        "",
        "",
        "carol@example.test",
    );
    assert!(out.contains("CODE 530"), "{out}");
    // Authenticated submission may relay; without DNS the message waits in the queue.
    let out = submit(
        setup.submission.port(),
        "starttls",
        "PLAIN",
        "alice@example.test",
        "alice-pw",
        "dave@remote.test",
    );
    assert!(out.contains("SENT"), "{out}");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut q = String::new();
    while std::time::Instant::now() < end && !q.contains("temporary DNS failure") {
        std::thread::sleep(std::time::Duration::from_millis(200));
        q = run_ok(&mut setup.command("mailq"));
    }
    assert!(
        q.contains("dave@remote.test") && q.contains("temporary DNS failure"),
        "{q}"
    );
}

#[test]
fn failed_logins_are_throttled() {
    let setup = setup_with_users();
    let _mta = setup.start();
    let port = setup.smtps.port();
    for _ in 0..5 {
        let out = submit(
            port,
            "smtps",
            "PLAIN",
            "alice@example.test",
            "wrong",
            "carol@example.test",
        );
        assert!(out.contains("CODE 535"), "{out}");
    }
    // Even the right password is refused now, for this address.
    let out = submit(
        port,
        "smtps",
        "PLAIN",
        "alice@example.test",
        "alice-pw",
        "carol@example.test",
    );
    assert!(out.contains("CODE 454"), "{out}");
}

/// Commands pipelined after STARTTLS, before the handshake, must be dropped.
const INJECT: &str = r#"
import socket, ssl, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
def reply(sock):
    data = b""
    while True:
        data += sock.recv(4096)
        lines = data.split(b"\r\n")
        if len(lines) > 1 and lines[-2][3:4] == b" ":
            return lines[-2][:3].decode()
reply(s)
s.sendall(b"EHLO x\r\n"); reply(s)
s.sendall(b"STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n")
print("starttls", reply(s))
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
t.sendall(b"EHLO x\r\n"); reply(t)
t.sendall(b"RCPT TO:<alice@example.test>\r\n")
print("rcpt", reply(t))
"#;

#[test]
fn starttls_injection_is_discarded() {
    let setup = setup_with_users();
    let _mta = setup.start();
    let (ok, out, err) = python(INJECT, &[&setup.smtp.port().to_string()]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "starttls 220\nrcpt 503\n");
}

const PEER_CERT: &str = r#"
import ssl, sys
pem = ssl.get_server_certificate(("127.0.0.1", int(sys.argv[1])))
print(ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert(open(sys.argv[2]).read()))
"#;

#[test]
fn sighup_reloads_the_certificate() {
    let setup = setup_with_users();
    let mta = setup.start();
    let port = setup.smtps.port().to_string();
    let cert = setup.root().join("cert.pem");
    let keep = setup.root().join("old.pem");
    std::fs::copy(&cert, &keep).unwrap();
    assert_eq!(python(PEER_CERT, &[&port, cert.to_str().unwrap()]).1, "True\n");
    run_ok(
        setup
            .command("mtactl")
            .args(["cert", "--name", "other.test", "--config"])
            .arg(&setup.config),
    );
    // SAFETY: kill(2) on the daemon we started.
    unsafe { libc::kill(mta.pid() as i32, libc::SIGHUP) };
    mta.wait_log("TLS certificate reloaded", std::time::Duration::from_secs(5));
    assert_eq!(python(PEER_CERT, &[&port, cert.to_str().unwrap()]).1, "True\n");
    assert_eq!(python(PEER_CERT, &[&port, keep.to_str().unwrap()]).1, "False\n");
}

/// A SCRAM-SHA-256 client written from RFC 5802/7677 with Python's hashlib.
const SCRAM: &str = r#"
import base64, hashlib, hmac, smtplib, ssl, sys
port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=10)
s.ehlo()
b64 = lambda b: base64.b64encode(b).decode()
first_bare = "n=" + user + ",r=pyclientnonce"
code, msg = s.docmd("AUTH", "SCRAM-SHA-256 " + b64(("n,," + first_bare).encode()))
assert code == 334, (code, msg)
server_first = base64.b64decode(msg).decode()
attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
salted = hashlib.pbkdf2_hmac("sha256", pw.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
client_key = hmac.new(salted, b"Client Key", "sha256").digest()
stored_key = hashlib.sha256(client_key).digest()
without_proof = "c=biws,r=" + attrs["r"]
auth_message = ",".join([first_bare, server_first, without_proof]).encode()
signature = hmac.new(stored_key, auth_message, "sha256").digest()
proof = bytes(a ^ b for a, b in zip(client_key, signature))
code, msg = s.docmd(b64((without_proof + ",p=" + b64(proof)).encode()))
if code != 334:
    print("CODE", code); sys.exit(0)
server_key = hmac.new(salted, b"Server Key", "sha256").digest()
expected = "v=" + b64(hmac.new(server_key, auth_message, "sha256").digest())
print("SERVER", base64.b64decode(msg).decode() == expected)
code, msg = s.docmd("")
print("CODE", code)
"#;

#[test]
fn scram_sha256_authenticates_both_ways() {
    let setup = setup_with_users();
    let _mta = setup.start();
    let port = setup.smtps.port().to_string();
    let (ok, out, err) = python(SCRAM, &[&port, "alice@example.test", "alice-pw"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "SERVER True\nCODE 235\n");
    let (ok, out, err) = python(SCRAM, &[&port, "alice@example.test", "wrong"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "CODE 535\n");
}
